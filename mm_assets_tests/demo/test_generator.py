"""Tests of the demo source generator.

Each realism property is checked on the generated *output* (not only on the parameters), with thresholds loose
enough for sampling noise but tight enough that removing the effect makes the test fail.
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import mm_assets.demo.generator as gen
from mm_assets.demo.generator import (
    COLUMNS,
    DemoSpec,
    easter_sunday,
    generate_sales,
    holiday_calendar,
    item_catalogue,
    iter_sales,
    write_source,
)

SMALL = DemoSpec(stores=3, items=12, days=400, seed=7)


@pytest.fixture(scope="module")
def sales() -> pd.DataFrame:
    """The default demo (10 stores x 20 items x 1095 days, ~200k rows); generated once, it takes ~0.1 s."""
    return generate_sales(DemoSpec())


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    return item_catalogue(DemoSpec()).set_index("item")


def _regular_items(catalogue: pd.DataFrame) -> pd.Index:
    return catalogue.index[catalogue["role"] == "regular"]


# ------------------------------------------------------------------------------------------------ shape and types
def test_columns_dtypes_and_values(sales):
    assert list(sales.columns) == COLUMNS
    assert sales["date"].dtype == np.dtype("datetime64[ns]")
    assert (sales["date"] == sales["date"].dt.normalize()).all()
    assert pd.api.types.is_string_dtype(sales["store"]) and pd.api.types.is_string_dtype(sales["item"])
    assert isinstance(sales["store"].iloc[0], str) and isinstance(sales["item"].iloc[-1], str)
    assert sales["sales"].dtype == np.float64 and sales["price"].dtype == np.float64
    assert sales["promo"].dtype == np.int64
    assert sales["sales"].notna().all()
    assert (sales["sales"] >= 0).all()
    assert (sales["sales"] == np.round(sales["sales"])).all()  # counts stored as float
    assert (sales["price"] > 0).all()
    assert set(sales["promo"].unique()) == {0, 1}


def test_defaults_are_10_stores_20_items_3_years(sales):
    assert sorted(sales["store"].unique()) == [f"S{i:02d}" for i in range(1, 11)]
    assert sorted(sales["item"].unique()) == [f"I{i:03d}" for i in range(1, 21)]
    assert sales.groupby(["store", "item"]).ngroups == 200
    assert sales["date"].min() == pd.Timestamp("2023-11-24")  # the pipeline's default ingest start date
    assert sales["date"].max() == pd.Timestamp("2026-11-22")
    assert 150_000 < len(sales) < 220_000  # 219k cells minus late launches, delistings and closed days


def test_sorted_by_store_item_date_without_duplicates(sales):
    keys = sales[["store", "item", "date"]]
    assert not keys.duplicated().any()
    order = keys.sort_values(["store", "item", "date"], kind="stable").index
    assert (order == sales.index).all()


def test_id_width_follows_the_largest_id():
    frame = generate_sales(DemoSpec(stores=120, items=1000, days=2, seed=1))
    assert frame["store"].iloc[0] == "S001" and frame["store"].iloc[-1] == "S120"
    assert frame["item"].iloc[0] == "I0001" and frame["item"].max() == "I1000"


def test_invalid_spec_is_rejected():
    with pytest.raises(ValueError):
        DemoSpec(stores=0)
    with pytest.raises(ValueError):
        DemoSpec(future_days=-1)
    with pytest.raises(ValueError):
        next(iter_sales(SMALL, chunk_stores=0))


# ------------------------------------------------------------------------------------------------ determinism
def test_same_spec_gives_identical_frames():
    a, b = generate_sales(SMALL), generate_sales(SMALL)
    pd.testing.assert_frame_equal(a, b)
    assert (pd.util.hash_pandas_object(a, index=False) == pd.util.hash_pandas_object(b, index=False)).all()


def test_chunking_does_not_change_output():
    whole = generate_sales(SMALL)
    for chunk_stores in (1, 2, 50):
        chunks = list(iter_sales(SMALL, chunk_stores=chunk_stores))
        assert len(chunks) == -(-SMALL.stores // chunk_stores)
        pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)


def test_store_output_does_not_depend_on_other_stores():
    three = generate_sales(DemoSpec(stores=3, items=6, days=200))
    five = generate_sales(DemoSpec(stores=5, items=6, days=200))
    pd.testing.assert_frame_equal(five[five["store"] <= "S03"].reset_index(drop=True), three)


def test_other_seed_gives_other_data():
    other = generate_sales(DemoSpec(stores=3, items=12, days=400, seed=8))
    assert not generate_sales(SMALL)["sales"].equals(other["sales"])


# ------------------------------------------------------------------------------------------------ seasonality
def test_weekly_seasonality_weekend_peak(sales):
    weekend = sales["date"].dt.day_of_week >= 5
    assert sales.loc[weekend, "sales"].mean() > 1.2 * sales.loc[~weekend, "sales"].mean()


def test_weekly_profile_varies_by_item(sales, catalogue):
    """The empirical Saturday share of each item tracks that item's own weekly profile."""
    items = _regular_items(catalogue)
    frame = sales[sales["item"].isin(items)]
    by_dow = frame.groupby(["item", frame["date"].dt.day_of_week])["sales"].mean().unstack()
    sat_share = by_dow[5] / by_dow.mean(axis=1)
    true_share = catalogue.loc[sat_share.index, "dow_sat"]
    assert true_share.std() > 0.05
    assert np.corrcoef(sat_share, true_share)[0, 1] > 0.5


def test_yearly_seasonality(sales, catalogue):
    month = sales["date"].dt.month
    monthly = sales.groupby(month)["sales"].mean()
    assert monthly[12] > 1.15 * monthly[[2, 3, 4]].mean()  # smooth pre-Christmas peak
    # Summer items sell more in summer than in winter, winter items the other way round.
    items = _regular_items(catalogue)
    frame = sales[sales["item"].isin(items) & ~month.isin([11, 12])]
    summer = frame[frame["date"].dt.month.isin([6, 7, 8])].groupby("item")["sales"].mean()
    winter = frame[frame["date"].dt.month.isin([1, 2, 3])].groupby("item")["sales"].mean()
    ratio = np.log(summer / winter)
    assert np.corrcoef(ratio, catalogue.loc[ratio.index, "summer_amp"])[0, 1] > 0.5


def test_mild_trend_per_series(sales, catalogue):
    """Price-adjusted growth from the first to the last year follows each item's trend, and stays mild."""
    items = _regular_items(catalogue)
    frame = sales[sales["item"].isin(items) & (sales["promo"] == 0)].copy()
    cat = catalogue.loc[frame["item"]]
    # Remove the price effect with the true elasticity, so only trend (and noise) is left.
    frame["adj"] = frame["sales"].to_numpy() / (frame["price"].to_numpy() / cat["base_price"].to_numpy()) ** cat[
        "elasticity"
    ].to_numpy()
    first = frame[frame["date"] < pd.Timestamp("2024-11-24")].groupby("item")["adj"].mean()
    last = frame[frame["date"] >= pd.Timestamp("2025-11-23")].groupby("item")["adj"].mean()
    growth = np.log(last / first) / 2.0
    assert np.corrcoef(growth, catalogue.loc[growth.index, "trend_per_year"])[0, 1] > 0.5
    assert growth.abs().max() < 0.4  # mild: well under 50% a year


# ------------------------------------------------------------------------------------------------ levels
def test_store_and_item_levels_differ(sales, catalogue):
    per_store = sales.groupby("store")["sales"].mean()
    assert per_store.max() > 2 * per_store.min()
    per_item = sales[sales["item"].isin(_regular_items(catalogue))].groupby("item")["sales"].mean()
    assert per_item.max() > 5 * per_item.min()


# ------------------------------------------------------------------------------------------------ price and promo
def test_regular_price_steps_are_chain_wide(sales, catalogue):
    regular = sales[sales["promo"] == 0]
    # Same shelf price in every store on a given day.
    assert (regular.groupby(["item", "date"])["price"].nunique() == 1).all()
    per_item = regular.groupby("item")["price"].nunique()
    assert (per_item >= 2).mean() > 0.7  # most items were repriced at least once
    # Steps, not daily jitter: few distinct regular prices per series.
    assert regular.groupby(["store", "item"])["price"].nunique().max() <= 12
    assert (catalogue["price_changes"] >= 1).mean() > 0.7


def test_promotions_runs_share_price_and_uplift(sales, catalogue):
    share = sales["promo"].mean()
    assert 0.04 <= share <= 0.12
    same_series = (sales["store"] == sales["store"].shift()) & (sales["item"] == sales["item"].shift())
    starts = (sales["promo"] == 1) & ~((sales["promo"].shift() == 1) & same_series)
    assert sales["promo"].sum() / starts.sum() >= 3.0  # runs of several days
    # Promo price is below the regular price of the same item on the same day.
    regular = sales[sales["promo"] == 0].groupby(["item", "date"])["price"].first().rename("regular")
    promo = sales[sales["promo"] == 1].join(regular, on=["item", "date"]).dropna(subset=["regular"])
    assert len(promo) > 1000
    assert (promo["price"] < promo["regular"]).all()
    # Higher sales on promo days, item by item.
    items = _regular_items(catalogue)
    by = sales[sales["item"].isin(items)].groupby(["item", "promo"])["sales"].mean().unstack()
    assert (by[1] > 1.2 * by[0]).all()


def test_log_sales_fall_with_log_price_within_items(sales, catalogue):
    items = _regular_items(catalogue)
    corr = (
        sales[sales["item"].isin(items)]
        .groupby("item")[["sales", "price"]]
        .apply(lambda g: np.corrcoef(np.log1p(g["sales"]), np.log(g["price"]))[0, 1])
    )
    assert (corr < 0).all()
    elasticity = catalogue["elasticity"]
    assert -2.0 < elasticity.mean() < -1.0 and elasticity.std() > 0.2


def test_regular_price_changes_move_demand(sales, catalogue):
    """Around each regular price change (promos excluded), demand moves against the price: elasticity < 0."""
    frame = sales[sales["item"].isin(_regular_items(catalogue)) & (sales["promo"] == 0)]
    d_price, d_sales = [], []
    for (_, _), g in frame.groupby(["store", "item"]):
        price = g["price"].to_numpy()
        dates = g["date"].to_numpy()
        y = g["sales"].to_numpy()
        for i in np.flatnonzero(np.diff(price) != 0) + 1:
            before = (dates >= dates[i] - np.timedelta64(28, "D")) & (dates < dates[i])
            after = (dates >= dates[i]) & (dates < dates[i] + np.timedelta64(28, "D"))
            if before.sum() >= 14 and after.sum() >= 14 and y[before].mean() > 0 and y[after].mean() > 0:
                d_price.append(np.log(price[i] / price[i - 1]))
                d_sales.append(np.log(y[after].mean() / y[before].mean()))
    assert len(d_price) > 100
    slope = np.polyfit(d_price, d_sales, 1)[0]
    assert slope < -0.7


# ------------------------------------------------------------------------------------------------ calendar
def test_holiday_calendar_dates():
    assert [easter_sunday(y) for y in (2024, 2025, 2026)] == [
        datetime.date(2024, 3, 31),
        datetime.date(2025, 4, 20),
        datetime.date(2026, 4, 5),
    ]
    cal = holiday_calendar(datetime.date(2023, 11, 24), datetime.date(2026, 11, 22))
    black_fridays = cal.loc[cal["holiday"] == "Black Friday", "date"].dt.date.tolist()
    assert black_fridays == [datetime.date(2023, 11, 24), datetime.date(2024, 11, 29), datetime.date(2025, 11, 28)]
    closed = cal.loc[cal["closed"], "date"].dt.date.tolist()
    assert closed == [datetime.date(y, 12, 25) for y in (2023, 2024, 2025)]


def test_christmas_day_absent_and_holiday_effects(sales):
    dates = set(sales["date"].dt.date.unique())
    for year in (2023, 2024, 2025):
        assert datetime.date(year, 12, 25) not in dates
    daily = sales.groupby("date")["sales"].sum()
    for bf in ("2024-11-29", "2025-11-28"):
        fridays = [pd.Timestamp(bf) - pd.Timedelta(weeks=w) for w in (1, 2, 3)]
        assert daily[pd.Timestamp(bf)] > 1.4 * daily[fridays].mean()
    for year in (2023, 2024, 2025):
        assert daily[pd.Timestamp(f"{year}-12-24")] > 1.2 * daily[pd.Timestamp(f"{year}-12-17")]
    for year in (2024, 2025, 2026):
        assert daily[pd.Timestamp(f"{year}-01-01")] < 0.8 * daily[pd.Timestamp(f"{year}-01-08")]


def test_random_store_closure_days(sales, catalogue):
    full = _regular_items(catalogue)
    all_days = pd.date_range("2023-11-24", "2026-11-22")
    missing = {}
    for store, g in sales[sales["item"].isin(full)].groupby("store"):
        per_item = [set(all_days.difference(gi["date"])) for _, gi in g.groupby("item")]
        assert all(m == per_item[0] for m in per_item)  # a closure is the whole store, rows absent
        missing[store] = per_item[0] - {pd.Timestamp(f"{y}-12-25") for y in (2023, 2024, 2025)}
    assert sum(len(m) > 0 for m in missing.values()) >= 5
    assert len({frozenset(m) for m in missing.values()}) > 1  # stores close on different days
    assert max(len(m) for m in missing.values()) < 20  # a few days, not a gap


# ------------------------------------------------------------------------------------------------ lifecycle
def test_late_launches_and_discontinued_items(sales):
    spans = sales.groupby(["store", "item"])["date"].agg(["min", "max"])
    start, end = pd.Timestamp("2023-11-24"), pd.Timestamp("2026-11-22")
    late = spans["min"] > start
    assert 0.05 <= late.mean() <= 0.2
    assert ((end - spans["min"]).dt.days < 60).sum() >= 3  # some with very short history
    assert (late & ((end - spans["min"]).dt.days > 120)).any()  # and some launched earlier
    discontinued = spans["max"] < end - pd.Timedelta(days=14)
    assert 0.02 <= discontinued.mean() <= 0.1
    # Stores take a few days to list / delist an item, so starts of one item differ across stores.
    assert spans.loc[late, "min"].groupby(level="item").nunique().max() > 1


# ------------------------------------------------------------------------------------------------ noise
def test_slow_movers_have_many_zero_days(sales, catalogue):
    zero_share = (sales["sales"] == 0).groupby(sales["item"]).mean()
    slow = catalogue.index[catalogue["slow_mover"]]
    assert 0.1 <= len(slow) / len(catalogue) <= 0.2
    assert (zero_share[slow] > 0.5).all()
    assert zero_share[_regular_items(catalogue)].median() < 0.15


def test_counts_are_overdispersed(sales, catalogue):
    """Variance above the mean inside homogeneous cells (series x month x weekday): negative binomial noise."""
    frame = sales[sales["item"].isin(_regular_items(catalogue)) & (sales["promo"] == 0)]
    cells = frame.groupby(["store", "item", frame["date"].dt.to_period("M"), frame["date"].dt.day_of_week])
    stats = cells["sales"].agg(["mean", "var", "count"])
    stats = stats[stats["count"] >= 3]
    assert stats["var"].mean() > 1.3 * stats["mean"].mean()


def test_outlier_spikes(monkeypatch):
    """About 0.1% of rows are spikes of ~5x the usual level.

    Spikes are hidden among heavy negative-binomial tails, so they are found by regenerating with the spike factor
    set to 1: the random stream is unchanged, so exactly the spike rows differ.
    """
    spec = DemoSpec(stores=4, items=20, days=730)
    spiky = generate_sales(spec)
    monkeypatch.setattr(gen, "_SPIKE_FACTOR", 1.0)
    plain = generate_sales(spec)
    differ = spiky["sales"] != plain["sales"]
    assert 0.0005 < differ.mean() < 0.002
    assert (spiky.loc[differ, "sales"] > 2.5 * plain.loc[differ, "sales"]).mean() > 0.8
    median = spiky.groupby(["store", "item"])["sales"].transform(
        lambda s: s.rolling(29, center=True, min_periods=10).median()
    )
    assert (spiky.loc[differ, "sales"] > 3 * median[differ].clip(lower=1)).mean() > 0.7


# ------------------------------------------------------------------------------------------------ future rows
def test_future_rows_are_planned_price_and_promo_with_null_sales():
    spec = DemoSpec(stores=3, items=20, days=300, future_days=14, seed=3)
    frame = generate_sales(spec)
    history = generate_sales(DemoSpec(stores=3, items=20, days=300, future_days=0, seed=3))
    end = pd.Timestamp(spec.end_date)
    future = frame[frame["date"] > end]
    # The history does not change when the future is switched on.
    pd.testing.assert_frame_equal(frame[frame["date"] <= end].reset_index(drop=True), history)
    assert future["sales"].isna().all() and frame.loc[frame["date"] <= end, "sales"].notna().all()
    assert (future["price"] > 0).all() and set(future["promo"].unique()) <= {0, 1}
    assert future["date"].min() == end + pd.Timedelta(days=1)
    assert future["date"].max() == end + pd.Timedelta(days=14)
    spans = history.groupby(["store", "item"])["date"].max()
    listed = set(spans.index[spans >= end - pd.Timedelta(days=14)])
    counts = future.groupby(["store", "item"]).size()
    assert set(counts.index) == listed  # every listed series, no discontinued one
    assert (counts == 14).all()
    assert future["promo"].sum() > 0
    ordered = frame.sort_values(["store", "item", "date"], kind="stable").index
    assert (ordered == frame.index).all()


# ------------------------------------------------------------------------------------------------ source database
def test_write_source_round_trip(tmp_path):
    spec = DemoSpec(stores=3, items=8, days=90, future_days=5)
    expected = generate_sales(spec)
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'source.db'}"  # parent directories do not exist yet
    assert write_source(spec, url, progress=True) == len(expected)
    # Written again: replaced, not appended.
    assert write_source(spec, url) == len(expected)

    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        types = {c["name"]: type(c["type"]).__name__ for c in inspector.get_columns("sales")}
        assert types == {
            "date": "DATE",
            "store": "VARCHAR",
            "item": "VARCHAR",
            "sales": "FLOAT",
            "price": "FLOAT",
            "promo": "INTEGER",
        }
        indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("sales")}
        assert {("date",), ("store", "item")} <= indexed

        table = sa.Table("sales", sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.store, table.c.item, table.c.date)).all()
        back = pd.DataFrame(rows, columns=COLUMNS)
        assert isinstance(back["date"].iloc[0], datetime.date)
        assert back["date"].tolist() == expected["date"].dt.date.tolist()
        assert back["store"].tolist() == expected["store"].tolist()
        assert back["item"].tolist() == expected["item"].tolist()
        np.testing.assert_array_equal(back["sales"].astype(float).to_numpy(), expected["sales"].to_numpy())
        np.testing.assert_array_equal(back["price"].to_numpy(), expected["price"].to_numpy())
        np.testing.assert_array_equal(back["promo"].to_numpy(), expected["promo"].to_numpy())

        # pandas sees the same frame (future sales come back as NULL -> NaN).
        frame = pd.read_sql_query(
            "SELECT * FROM sales ORDER BY store, item, date", engine, parse_dates=["date"], dtype={"promo": "int64"}
        )
        frame["date"] = frame["date"].astype("datetime64[ns]")
        pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
        assert frame["sales"].isna().sum() == (expected["date"] > pd.Timestamp(spec.end_date)).sum() > 0
    finally:
        engine.dispose()


def test_write_source_portable_core_path(tmp_path, monkeypatch):
    """The dialect-neutral path (Core executemany of dicts with datetime.date) writes the same table."""
    monkeypatch.setattr(gen, "_SQLITE_FAST_PATH", False)
    spec = DemoSpec(stores=2, items=5, days=40, future_days=3)
    expected = generate_sales(spec)
    url = f"sqlite:///{tmp_path / 'core.db'}"
    assert write_source(spec, url, table="demo_sales") == len(expected)
    engine = sa.create_engine(url)
    try:
        table = sa.Table("demo_sales", sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.store, table.c.item, table.c.date)).all()
    finally:
        engine.dispose()
    back = pd.DataFrame(rows, columns=COLUMNS)
    assert back["date"].tolist() == expected["date"].dt.date.tolist()
    np.testing.assert_array_equal(back["sales"].astype(float).to_numpy(), expected["sales"].to_numpy())
    np.testing.assert_array_equal(back["price"].to_numpy(), expected["price"].to_numpy())


def test_tiny_specs_do_not_break():
    for spec in (
        DemoSpec(stores=1, items=1, days=1),
        DemoSpec(stores=2, items=3, days=5, future_days=2),
        DemoSpec(stores=1, items=10, days=20, end_date=datetime.date(2024, 12, 31)),
    ):
        frame = generate_sales(spec)
        assert list(frame.columns) == COLUMNS
        assert frame["date"].max() <= pd.Timestamp(spec.end_date) + pd.Timedelta(days=spec.future_days)
        assert frame["date"].min() >= pd.Timestamp(spec.start_date)
        assert (frame["price"] > 0).all()
