"""Tests of mm_assets.forecasting.series: the regular grid, planned future rows and the future frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.series import (
    DS,
    SeriesConfig,
    Y,
    future_frame,
    future_regressors,
    kind_of,
    regressor_kinds,
    regularize,
    split_future,
    unplanned_values,
    zero_default_columns,
)
from mm_assets.settings import load_settings

DAILY = SeriesConfig(frequency="D", horizon=7, season=7, regressors=("price", "promo"))
WEEKLY = SeriesConfig(frequency="W", horizon=4, season=52, regressors=("price",))


def _rows(dates, y, price=None, promo=None) -> pd.DataFrame:
    n = len(dates)
    return pd.DataFrame(
        {
            "ds": pd.to_datetime(dates),
            "y": y,
            "price": price if price is not None else [2.0] * n,
            "promo": promo if promo is not None else [0] * n,
        }
    )


# ---- SeriesConfig --------------------------------------------------------------------------------------


def test_config_step_and_from_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./mm_assets.yaml may leak into the settings
    assert DAILY.step == pd.Timedelta(days=1)
    assert WEEKLY.step == pd.Timedelta(days=7)
    assert DAILY.is_daily and not WEEKLY.is_daily
    settings = load_settings(path=None, environ={"MM_ASSETS__HORIZON": "14"})
    cfg = SeriesConfig.from_settings(settings)
    assert cfg.frequency == "D"
    assert cfg.horizon == 14
    assert cfg.season == 7
    assert cfg.regressors == ("price", "promo")
    assert cfg.min_train_periods == settings.min_train_periods
    explicit = load_settings(path=None, environ={"MM_ASSETS__MODEL__MIN_TRAIN_PERIODS": "33"})
    assert SeriesConfig.from_settings(explicit).min_train_periods == 33
    weekly = SeriesConfig.from_settings(load_settings(path=None, environ={"MM_ASSETS__FREQUENCY": "W"}))
    assert weekly.season == 52
    assert weekly.step == pd.Timedelta(days=7)


# ---- regularize ----------------------------------------------------------------------------------------


def test_regularize_fills_missing_dates_with_nan_and_carries_regressors():
    rows = _rows(
        ["2024-01-05", "2024-01-01", "2024-01-02", "2024-01-06"],  # unsorted, 3rd and 4th missing
        [5.0, 1.0, 2.0, 6.0],
        price=[2.5, 1.0, 1.5, 3.0],
        promo=[0, 0, 1, 1],
    )
    out = regularize(rows, DAILY)
    assert out.index.name == "ds"
    assert list(out.index) == list(pd.date_range("2024-01-01", "2024-01-06", freq="D"))
    np.testing.assert_array_equal(out["y"].to_numpy(), [1.0, 2.0, np.nan, np.nan, 5.0, 6.0])
    # the closed days keep the last known regressor values
    np.testing.assert_array_equal(out["price"].to_numpy(), [1.0, 1.5, 1.5, 1.5, 2.5, 3.0])
    np.testing.assert_array_equal(out["promo"].to_numpy(), [0, 1, 1, 1, 0, 1])
    assert out["y"].dtype == float
    assert list(out.columns) == ["y", "price", "promo"]


def test_regularize_backfills_leading_missing_regressors():
    rows = _rows(["2024-01-01", "2024-01-02", "2024-01-03"], [1.0, 2.0, 3.0], price=[np.nan, 4.0, 5.0])
    out = regularize(rows, DAILY)
    np.testing.assert_array_equal(out["price"].to_numpy(), [4.0, 4.0, 5.0])


def test_regularize_drops_rows_after_the_last_observation_and_extra_columns():
    rows = _rows(
        ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
        [1.0, 2.0, np.nan, np.nan],
        price=[1.0, 1.0, 0.5, 0.5],
    )
    rows["store"] = "S01"
    out = regularize(rows, DAILY)
    assert out.index[-1] == pd.Timestamp("2024-01-02")
    assert len(out) == 2
    assert "store" not in out.columns


def test_regularize_accepts_string_dates():
    rows = _rows(["2024-01-01", "2024-01-03"], [1.0, 3.0])
    rows["ds"] = ["2024-01-01", "2024-01-03"]
    out = regularize(rows, DAILY)
    assert len(out) == 3
    assert isinstance(out.index, pd.DatetimeIndex)


def test_regularize_rejects_duplicate_timestamps():
    rows = _rows(["2024-01-01", "2024-01-02", "2024-01-02"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="duplicate timestamps.*2024-01-02"):
        regularize(rows, DAILY)


def test_regularize_rejects_empty_and_unobserved_series():
    with pytest.raises(ValueError, match="no rows"):
        regularize(_rows([], []), DAILY)
    with pytest.raises(ValueError, match="no observed target"):
        regularize(_rows(["2024-01-01", "2024-01-02"], [np.nan, np.nan]), DAILY)


def test_regularize_weekly_on_a_seven_day_grid():
    dates = pd.date_range("2024-01-07", periods=6, freq="W-SUN")
    keep = [0, 1, 3, 4, 5]  # week 3 missing
    rows = _rows(dates[keep], [10.0, 11.0, 13.0, 14.0, 15.0], price=[1.0, 2.0, 3.0, 4.0, 5.0])
    out = regularize(rows, WEEKLY)
    assert list(out.index) == list(dates)
    assert (out.index.to_series().diff().dropna() == pd.Timedelta(days=7)).all()
    np.testing.assert_array_equal(out["y"].to_numpy(), [10.0, 11.0, np.nan, 13.0, 14.0, 15.0])
    np.testing.assert_array_equal(out["price"].to_numpy(), [1.0, 2.0, 2.0, 3.0, 4.0, 5.0])


def test_regularize_weekly_anchored_at_the_data_not_at_sunday():
    dates = pd.date_range("2024-01-03", periods=4, freq="W-WED")
    out = regularize(_rows(dates, [1.0, 2.0, 3.0, 4.0], price=[1.0] * 4), WEEKLY)
    assert list(out.index) == list(dates)


def test_regularize_weekly_off_grid_date_inside_raises():
    dates = pd.to_datetime(["2024-01-07", "2024-01-14", "2024-01-17", "2024-01-21"])  # a Wednesday among Sundays
    with pytest.raises(ValueError, match="off the W grid"):
        regularize(_rows(dates, [1.0, 2.0, 3.0, 4.0], price=[1.0] * 4), WEEKLY)


def test_regularize_weekly_off_grid_last_date_raises():
    dates = pd.to_datetime(["2024-01-07", "2024-01-14", "2024-01-24"])
    with pytest.raises(ValueError, match="grid"):
        regularize(_rows(dates, [1.0, 2.0, 3.0], price=[1.0] * 3), WEEKLY)


# ---- split_future --------------------------------------------------------------------------------------


def test_split_future_returns_planned_rows_after_the_last_observation():
    rows = _rows(
        pd.date_range("2024-01-01", periods=8, freq="D"),
        [1.0, 2.0, np.nan, 4.0, 5.0, np.nan, np.nan, np.nan],
        price=[1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.7, 0.6],
        promo=[0, 0, 0, 0, 0, 1, 1, 0],
    )
    fut = split_future(rows.sample(frac=1.0, random_state=0), DAILY)  # input order must not matter
    assert list(fut.index) == list(pd.date_range("2024-01-06", periods=3, freq="D"))
    assert fut.index.name == "ds"
    assert list(fut.columns) == ["price", "promo"]
    np.testing.assert_array_equal(fut["price"].to_numpy(), [0.8, 0.7, 0.6])
    np.testing.assert_array_equal(fut["promo"].to_numpy(), [1, 1, 0])


def test_split_future_empty_when_nothing_is_planned_or_observed():
    rows = _rows(pd.date_range("2024-01-01", periods=3, freq="D"), [1.0, 2.0, 3.0])
    assert split_future(rows, DAILY).empty
    unobserved = _rows(pd.date_range("2024-01-01", periods=3, freq="D"), [np.nan] * 3)
    assert split_future(unobserved, DAILY).empty


# ---- regressor kinds -----------------------------------------------------------------------------------


def test_regressor_kinds_each_kind():
    frame = pd.DataFrame(
        {
            "promo": [0, 1, 1, np.nan],
            "holiday": [0.0, 0.0, 0.0, 0.0],
            "display": [0.0, 0.0, 0.35, 1.0],
            "price_per_oz": [0.031, 0.045, 0.02, 0.04],
            "price": [1.0, 2.0, 1.5, 1.0],
            "count": [0, 1, 2, 1],
            "temperature": [-3.5, 2.0, 11.0, 0.0],
            "empty": [np.nan] * 4,
        }
    )
    kinds = regressor_kinds(frame, tuple(frame.columns))
    assert kinds == {"promo": "flag", "holiday": "flag", "display": "share", "price_per_oz": "positive",
                     "price": "positive",
                     "count": "signed", "temperature": "signed", "empty": "signed"}
    # flags and shares default to 0 in the future (no promotion, no display); the rest keep their last value
    assert zero_default_columns(kinds) == ("promo", "holiday", "display")


def test_kind_of_a_share_that_is_zero_most_periods_is_not_logged_or_flagged():
    values = np.r_[np.zeros(50), [0.2, 0.0, 0.9]]
    assert kind_of(values) == "share"
    assert kind_of(np.array([0.5, 2.0])) == "positive"  # a price may fall below 1
    assert kind_of(np.array([0.0, 2.0])) == "signed"  # a zero price is not price-like: never logged


def test_a_few_prices_of_zero_or_below_are_slips_not_a_new_kind():
    """A price column with a slip (a missing price stored as 0, a negative typo) stays positive, the slip read as
    missing, within 2 % of its values; more is a column that is not price-like. The vectorised kinds agree, and the
    value a future period takes without a plan is the last real price, not the slip."""
    from types import SimpleNamespace

    from mm_assets.forecasting.panel import kinds_of
    from mm_assets.forecasting.series import unplanned_values

    price = 2.0 + 0.1 * np.arange(60) % 3
    slipped = price.copy()
    slipped[-1] = 0.0
    batch = np.tile(price, 25)
    batch[[7, 300, 901]] = [0.0, -2.5, 0.0]  # three stores' slips in a batch of 1,500 values
    assert kind_of(slipped) == kind_of(batch) == "positive"
    two = slipped.copy()
    two[10] = -1.0
    assert kind_of(two) == "signed"  # 2 of 60: beyond 2 %
    assert kind_of(slipped[-15:]) == "signed"  # too few values to call one a slip
    temperature = np.r_[np.linspace(-5, 30, 40), np.linspace(30, -5, 40)]
    assert kind_of(temperature) == "signed"
    rows = np.vstack([slipped, two, price])
    panel = SimpleNamespace(regs={"price": rows})  # what kinds_of reads of a panel
    assert [k[0] for k in kinds_of(panel, np.arange(3), np.full(3, 60))] == [kind_of(r) for r in rows]
    assert unplanned_values({"price": slipped}, {"price": "positive"}, WEEKLY)["price"] == price[-2]


# ---- future_frame --------------------------------------------------------------------------------------


def test_future_frame_defaults_flags_to_zero_and_others_to_last_value():
    fut, n_planned = future_frame(
        pd.Timestamp("2024-01-10"), {"price": 2.5, "promo": 1.0}, ("promo",), DAILY, horizon=5
    )
    assert list(fut.index) == list(pd.date_range("2024-01-11", periods=5, freq="D"))
    assert fut.index.name == "ds"
    np.testing.assert_array_equal(fut["price"].to_numpy(), [2.5] * 5)
    np.testing.assert_array_equal(fut["promo"].to_numpy(), [0.0] * 5)  # last value was 1: no promo assumed
    assert n_planned == 0


def test_future_frame_uses_plans_where_given():
    planned = pd.DataFrame(
        {"price": [1.5, 1.4, 9.9], "promo": [1.0, 1.0, 1.0]},
        index=pd.DatetimeIndex(["2024-01-12", "2024-01-13", "2024-02-01"], name="ds"),  # last one beyond horizon
    )
    fut, n_planned = future_frame(
        pd.Timestamp("2024-01-10"), {"price": 2.5, "promo": 0.0}, ("promo",), DAILY, horizon=5, planned=planned
    )
    np.testing.assert_array_equal(fut["price"].to_numpy(), [2.5, 1.5, 1.4, 2.5, 2.5])
    np.testing.assert_array_equal(fut["promo"].to_numpy(), [0.0, 1.0, 1.0, 0.0, 0.0])
    assert n_planned == 2


def test_future_frame_partial_plan_falls_back_per_value():
    planned = pd.DataFrame(
        {"price": [np.nan, 1.5], "promo": [1.0, np.nan]},
        index=pd.DatetimeIndex(["2024-01-11", "2024-01-12"], name="ds"),
    )
    fut, _ = future_frame(
        pd.Timestamp("2024-01-10"), {"price": 2.0, "promo": 0.0}, ("promo",), DAILY, horizon=3, planned=planned
    )
    np.testing.assert_array_equal(fut["price"].to_numpy(), [2.0, 1.5, 2.0])
    np.testing.assert_array_equal(fut["promo"].to_numpy(), [1.0, 0.0, 0.0])


def test_future_frame_counts_every_period_that_used_a_plan():
    # price planned on day 2, promo on day 3: two periods used a plan
    planned = pd.DataFrame(
        {"price": [1.5, np.nan], "promo": [np.nan, 1.0]},
        index=pd.DatetimeIndex(["2024-01-12", "2024-01-13"], name="ds"),
    )
    _, n_planned = future_frame(
        pd.Timestamp("2024-01-10"), {"price": 2.0, "promo": 0.0}, ("promo",), DAILY, horizon=5, planned=planned
    )
    assert n_planned == 2


def test_future_frame_with_gap_and_weekly_step():
    cfg = SeriesConfig(frequency="W", horizon=3, season=52, regressors=("price",), gap=2)
    fut, _ = future_frame(pd.Timestamp("2024-01-07"), {"price": 3.0}, (), cfg, horizon=3)
    assert list(fut.index) == list(pd.to_datetime(["2024-01-28", "2024-02-04", "2024-02-11"]))
    np.testing.assert_array_equal(fut["price"].to_numpy(), [3.0, 3.0, 3.0])


def test_future_frame_without_regressors():
    cfg = SeriesConfig(frequency="D", horizon=4, season=7)
    fut, n_planned = future_frame(pd.Timestamp("2024-01-01"), {}, (), cfg, horizon=4)
    assert fut.shape == (4, 0)
    assert fut.index[0] == pd.Timestamp("2024-01-02")
    assert n_planned == 0


def _regularize_with_pandas(frame: pd.DataFrame, cfg: SeriesConfig) -> pd.DataFrame:
    """The definition ``regularize`` keeps, step by step in pandas (what it was, 2.4 ms for three years of days)."""
    if frame.empty:
        raise ValueError("series has no rows")
    df = frame[[DS, Y, *cfg.regressors]].copy()
    df[DS] = pd.to_datetime(df[DS])
    df = df.sort_values(DS, kind="stable")
    observed = df[Y].notna()
    if not observed.any():
        raise ValueError("series has no observed target values")
    last_obs = df.loc[observed, DS].max()
    df = df[df[DS] <= last_obs]
    if df[DS].duplicated().any():
        raise ValueError(f"series has duplicate timestamps (first: {df.loc[df[DS].duplicated(), DS].iloc[0].date()})")
    grid = pd.date_range(df[DS].iloc[0], last_obs, freq=cfg.step)
    if grid[-1] != last_obs:
        raise ValueError(f"timestamps are not on a {cfg.frequency} grid (step {cfg.step})")
    off_grid = len(df) - int(df[DS].isin(grid).sum())
    if off_grid:
        raise ValueError(f"{off_grid} timestamps are off the {cfg.frequency} grid anchored at {grid[0].date()}; "
                         "weekly data must fall on one weekday")
    out = df.set_index(DS).reindex(grid)
    out.index.name = DS
    if cfg.regressors:
        out[list(cfg.regressors)] = out[list(cfg.regressors)].ffill().bfill()
    out[Y] = out[Y].astype(float)
    return out


@pytest.mark.parametrize("frequency", ["D", "W-MON"])
def test_regularize_equals_its_definition_on_random_series(frequency):
    """Holes, missing targets and prices, integer flags, planned rows, shuffled rows, and each error's message."""
    cfg = SeriesConfig(frequency=frequency, horizon=4, regressors=("price", "promo"))
    rng = np.random.default_rng(5)
    errors = 0
    for case in range(300):
        n = int(rng.integers(1, 30))
        ds = pd.date_range("2026-01-05", periods=n, freq=cfg.step)
        frame = pd.DataFrame({DS: ds, Y: rng.uniform(0, 9, n), "price": rng.uniform(1, 3, n),
                              "promo": rng.integers(0, 2, n), "other": 1.0})
        frame.loc[rng.random(n) < 0.2, Y] = np.nan
        frame.loc[rng.random(n) < 0.2, "price"] = np.nan
        frame = frame.drop(index=rng.choice(n, size=int(rng.integers(0, n // 2 + 1)), replace=False))
        if case % 10 == 1 and len(frame):  # a repeated date
            frame = pd.concat([frame, frame.iloc[[0]]])
        if case % 10 == 2 and len(frame):  # a date off the grid
            frame.iloc[-1, 0] = frame.iloc[-1, 0] + pd.Timedelta(hours=5)
        frame = frame.sample(frac=1.0, random_state=case)
        try:
            expected = _regularize_with_pandas(frame, cfg)
        except ValueError as exc:
            errors += 1
            with pytest.raises(ValueError) as got:
                regularize(frame, cfg)
            assert str(got.value) == str(exc)
            continue
        got = regularize(frame, cfg)
        pd.testing.assert_frame_equal(got, expected, check_freq=False)
        assert got.index.freq == cfg.step
    assert 20 < errors < 200


def test_without_a_plan_a_share_takes_its_usual_value_a_flag_0_and_a_price_its_regular_one():
    cfg = SeriesConfig(frequency="W", horizon=3, season=4, regressors=("price", "deal", "display"))
    kinds = {"price": "positive", "deal": "flag", "display": "share"}
    history = {"price": np.array([2.0, 2.0, 1.5, 1.8, 1.9]), "deal": np.array([0, 1, 1, 0, 1.0]),
               "display": np.array([0.9, 0.0, 0.3, np.nan, 0.5])}  # its last season (4): 0, 0.3, NaN, 0.5
    usual = unplanned_values(history, kinds, cfg)
    assert usual == {"price": 2.0, "deal": 1.0, "display": 0.3}  # the quarter's highest price: no promotion
    future, used = future_regressors(usual, ("deal",), cfg.regressors, 3,
                                     {"display": np.array([np.nan, 0.8, np.nan])})
    assert future["price"].tolist() == [2.0] * 3 and future["deal"].tolist() == [0.0] * 3  # no deal nobody planned
    # the regular price is of the last quarter (13 weeks): a price raised for good is the new one, a higher price
    # of half a year ago is not; a price of 0 (a slip read as missing) is never one
    older = np.r_[np.full(13, 3.0), np.full(13, 2.2), [1.6, 0.0]]
    assert unplanned_values({"price": older}, kinds, cfg)["price"] == 2.2
    assert unplanned_values({"price": np.array([0.0, 0.0])}, kinds, cfg)["price"] == 0.0
    # a price typed ×100 weeks ago is no regular price (it was, for a quarter, and moved forecasts by a fifth)
    slipped = np.r_[np.full(10, 2.2), [220.0], [1.9, 2.1]]
    assert unplanned_values({"price": slipped}, kinds, cfg)["price"] == 2.2
    from mm_assets.forecasting.series import regular_prices
    np.testing.assert_array_equal(regular_prices(np.array([[2.0, 200.0, 1.8], [np.nan, 0.0, -1.0], [2.0, 2.4, 1.5]])),
                                  [2.0, np.nan, 2.4])
    assert future["display"].tolist() == [0.3, 0.8, 0.3] and used == 1
    # a share mostly 0 stays 0 (no promotion); one never known is 0
    assert unplanned_values({"display": np.array([0, 0, 0.4, 0])}, kinds, cfg)["display"] == 0.0
    assert unplanned_values({"display": np.array([np.nan, np.nan])}, kinds, cfg)["display"] == 0.0


def test_nanmedian_rows_is_numpys_nanmedian_to_the_last_bit():
    """Rows of any length, NaN anywhere, rows without a value (NaN), infinities, odd and even counts."""
    import warnings

    from mm_assets.forecasting.series import nanmedian_rows

    rng = np.random.default_rng(3)
    for rows, cols in ((1, 1), (1, 13), (1, 91), (40, 2), (700, 13), (50, 700)):
        a = rng.choice([0.5, 1.6, 1.8, 2.0, 2.2, 1e6, np.inf, np.nan], size=(rows, cols),
                       p=[0.05, 0.2, 0.2, 0.15, 0.1, 0.05, 0.05, 0.2]) * rng.uniform(0.9, 1.1, (rows, cols))
        a[0] = np.nan  # a row without any value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(a, axis=1)
        np.testing.assert_array_equal(nanmedian_rows(a), expected)
    assert nanmedian_rows(np.empty((3, 0))).shape == (3,)
