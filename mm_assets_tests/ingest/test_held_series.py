"""A bad row holds back its series, not the ingest (``ingest.on_bad_rows: hold``): the other series are ingested,
the held one keeps what the lake stored of it, it is listed with its problem, and too many held series refuse the
ingest as a whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_assets.checks.data_quality import held_back_verdicts
from mm_assets.ingest.held import HELD_FILE, held_back_line, held_series
from mm_assets.ingest.periods import PLAN_FILE, IngestError, raw_file
from mm_assets.ingest.validation import DataValidationError, validate_raw
from mm_assets.settings import Settings
from mm_assets_tests.ingest.test_periods import LAST_SALE, ingest

STORES = [f"S{i}" for i in range(1, 6)]


def source(days: pd.DatetimeIndex, stores=STORES) -> pd.DataFrame:
    """Five stores x two items (10 series) on ``days``; sales 3.0 up to ``LAST_SALE``, the plan after it."""
    rows = pd.DataFrame([{"date": d, "store": s, "item": i, "price": 2.0, "promo": 0}
                         for d in days for s in stores for i in ("I1", "I2")])
    rows["sales"] = np.where(rows["date"] <= LAST_SALE, 3.0, np.nan)
    return rows


def keys_of(days: pd.DatetimeIndex) -> list[str]:
    return [d.strftime("%Y-%m-%d") for d in days]


def at(frame: pd.DataFrame, store: str, item: str, day: str) -> pd.Series:
    return (frame["store"] == store) & (frame["item"] == item) & (frame["date"] == pd.Timestamp(day))


def rows_of(lake, key: str, store: str, item: str) -> pd.DataFrame:
    raw = lake.read_parquet(raw_file(key))
    return raw[(raw["store"] == store) & (raw["item"] == item)]


def test_a_bad_row_holds_back_its_series_which_keeps_what_was_stored(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-05")
    keys = keys_of(days)
    first, lake = ingest(tmp_path, source(days), keys)
    assert first.held == [] and held_series(lake).empty
    # the next day's source: every sale corrected to 4, and S2/I1 has lost its target on 3 March
    changed = source(days)
    changed.loc[changed["sales"].notna(), "sales"] = 4.0
    changed.loc[at(changed, "S2", "I1", "2025-03-03"), "sales"] = np.nan
    result, lake = ingest(tmp_path, changed, keys)

    assert [(h["series"], h["store"], h["bad_rows"], h["first_date"]) for h in result.held] == [
        ("S2/I1", "S2", 1, "2025-03-03")]
    assert "'sales' (columns.target)" in result.held[0]["problem"] and "fill them" in result.held[0]["problem"]
    for key in keys:  # the held series keeps every stored row (3.0), the others took the correction (4.0)
        assert rows_of(lake, key, "S2", "I1")["sales"].tolist() == [3.0]
        assert rows_of(lake, key, "S2", "I2")["sales"].tolist() == [4.0]
        assert rows_of(lake, key, "S1", "I1")["sales"].tolist() == [4.0]
    listed = held_series(lake)
    assert listed[["series", "store", "bad_rows"]].values.tolist() == [["S2/I1", "S2", 1]]

    # fixed in the source: the next ingest takes the series and lists nothing
    fixed, lake = ingest(tmp_path, source(days).assign(sales=4.0), keys)
    assert fixed.held == [] and held_series(lake).empty
    assert rows_of(lake, "2025-03-03", "S2", "I1")["sales"].tolist() == [4.0]


@pytest.mark.parametrize("store, item", [("S2 ", "I1"), ("S2", "I1\u200b"), ("\u00a0S2", "I1")])
def test_a_stored_series_whose_ids_come_with_spaces_keeps_its_stored_rows(tmp_path, store, item):
    """A store re-exported with a trailing space (or an id with an invisible character) is held back: the source
    no longer writes the stored series, so unless its rows are kept as the held series' own, every period file
    rewritten from the source would drop that history while the message said it stays."""
    days = pd.date_range("2025-03-01", "2025-03-05")
    keys = keys_of(days)
    ingest(tmp_path, source(days), keys)
    changed = source(days)
    changed.loc[changed["sales"].notna(), "sales"] = 4.0
    mine = (changed["store"] == "S2") & (changed["item"] == "I1")
    changed.loc[mine, "store"], changed.loc[mine, "item"] = store, item
    result, lake = ingest(tmp_path, changed, keys)
    assert [(h["series"], h["store"], h["ids"]) for h in result.held] == [(f"{store}/{item}", "S2", ("S2", "I1"))]
    assert "what the lake stored of them stays" in held_back_line(result.held)
    for key in keys:  # the stored rows (3.0) stay; its store's other series took the correction (4.0)
        assert rows_of(lake, key, "S2", "I1")["sales"].tolist() == [3.0], key
        assert rows_of(lake, key, "S2", "I2")["sales"].tolist() == [4.0], key
        assert rows_of(lake, key, store, item).empty  # nor a series of the spaced form beside it


def test_a_series_never_stored_is_left_out_until_its_rows_are_good(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-04")
    bad = source(days).astype({"price": object})
    bad.loc[at(bad, "S5", "I2", "2025-03-02"), "price"] = "cheap"
    result, lake = ingest(tmp_path, bad, keys_of(days))
    assert [h["series"] for h in result.held] == ["S5/I2"]
    assert "'price' (columns.regressors)" in result.held[0]["problem"]
    for key in keys_of(days):
        assert rows_of(lake, key, "S5", "I2").empty and len(rows_of(lake, key, "S5", "I1")) == 1
    assert "S5" in result.stores  # its store has a good series


def test_a_series_held_in_a_later_slice_loses_its_rows_of_the_earlier_slices_too(tmp_path):
    """A backfill read in slices: a series bad only in the last slice keeps the stored rows of every period."""
    days = pd.date_range("2025-02-01", "2025-03-05")  # 33 periods: a first slice of 7, then slices of 3
    settings = Settings.model_validate({"ingest": {"periods_per_read": 3}})
    ingest(tmp_path, source(days), keys_of(days), settings=settings)
    changed = source(days).assign(sales=lambda f: np.where(f["sales"].notna(), 5.0, np.nan))
    changed.loc[at(changed, "S3", "I2", "2025-03-04"), "sales"] = -1.0
    result, lake = ingest(tmp_path, changed, keys_of(days), settings=settings)
    assert [h["series"] for h in result.held] == ["S3/I2"] and "negative" in result.held[0]["problem"]
    for key in keys_of(days):
        assert rows_of(lake, key, "S3", "I2")["sales"].tolist() == [3.0], key
        assert rows_of(lake, key, "S3", "I1")["sales"].tolist() == [5.0], key
    counts = dict(result.periods)["2025-02-01"]
    assert counts["rows"] == 10 and counts["series"] == 10  # the staged period mended before its move


def test_too_many_held_series_refuse_the_ingest_and_nothing_changes(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-04")
    keys = keys_of(days)
    _, lake = ingest(tmp_path, source(days), keys)
    stored = {key: lake.read_parquet(raw_file(key)) for key in keys}
    bad = source(days).astype({"sales": object})
    for store in ("S1", "S2", "S3"):  # 3 of 10 series: above the default 20 %
        bad.loc[at(bad, store, "I1", "2025-03-02"), "sales"] = "n/a"
    with pytest.raises(IngestError) as err:
        ingest(tmp_path, bad, keys)
    message = str(err.value)
    assert "3 of 10 series read have bad rows, more than ingest.max_held_share 20%" in message
    assert "Nothing was written. By problem: 'sales' not a number: 3 series." in message
    assert ("The most common, 3 rows in 3 series, in the first of them: column 'sales' (columns.target): 1 values "
            "are not numbers") in message
    for key in keys:
        pd.testing.assert_frame_equal(lake.read_parquet(raw_file(key)), stored[key])
    # the problem of most series is named first, though the target is checked before the regressors
    worse = bad.astype({"price": object})
    for store, item in (("S4", "I1"), ("S4", "I2"), ("S5", "I1"), ("S5", "I2")):
        worse.loc[at(worse, store, item, "2025-03-03"), "price"] = "x"
    with pytest.raises(IngestError, match=r"By problem: 'price' not a number: 4 series; 'sales' not a number: 3 "
                                          r"series\. The most common, 4 rows in 4 series, in the first of them: regressor column 'price'"):
        ingest(tmp_path, worse, keys)
    # a higher share takes the 7 good series and holds the 3
    looser = Settings.model_validate({"ingest": {"max_held_share": 0.5}})
    result, _ = ingest(tmp_path, bad, keys, settings=looser)
    assert sorted(h["series"] for h in result.held) == ["S1/I1", "S2/I1", "S3/I1"]
    for h in result.held:  # each series' problem is told of its own rows, not of the batch's
        assert f"1 values are not numbers, e.g. store='{h['store']}', item='I1'" in h["problem"]


def test_the_held_share_is_of_the_most_series_a_slice_read(tmp_path):
    """A backfill read in slices: the newest slice reads fewer series (stores closed), and the share held back is
    judged against the most series any slice read, not against that slice's few."""
    days = pd.date_range("2025-02-01", "2025-03-05")  # a first slice of 7 periods, then slices of 3
    rows = source(days)
    rows = rows[(rows["date"] < pd.Timestamp("2025-03-03")) | rows["store"].isin(["S1", "S2"])]  # 4 series left
    rows.loc[at(rows, "S1", "I1", "2025-03-04"), "sales"] = -1.0
    settings = Settings.model_validate({"ingest": {"periods_per_read": 3}})
    result, _ = ingest(tmp_path, rows, keys_of(days), settings=settings)
    assert [h["series"] for h in result.held] == ["S1/I1"]  # 1 of 10 series, within 20 % (1 of 4 would not be)
    stricter = Settings.model_validate({"ingest": {"periods_per_read": 3, "max_held_share": 0.05}})
    with pytest.raises(IngestError, match="1 of 10 series read have bad rows"):
        ingest(tmp_path, rows, keys_of(days), settings=stricter)


def test_on_bad_rows_error_refuses_the_ingest_as_before(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-04")
    bad = source(days)
    bad.loc[at(bad, "S2", "I1", "2025-03-02"), "sales"] = np.nan
    strict = Settings.model_validate({"ingest": {"on_bad_rows": "error"}})
    with pytest.raises(IngestError, match="past rows have no value"):
        ingest(tmp_path, bad, keys_of(days), settings=strict)
    assert not (tmp_path / "lake" / "raw").exists()


def test_rows_without_an_id_and_duplicated_keys_are_held_the_rest_ingested(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-04")
    bad = source(days)
    bad.loc[at(bad, "S4", "I1", "2025-03-03"), "store"] = None
    bad = pd.concat([bad, bad[at(bad, "S1", "I2", "2025-03-02")]], ignore_index=True)
    result, lake = ingest(tmp_path, bad, keys_of(days))
    held = {h["series"]: h for h in result.held}
    assert set(held) == {"<NULL>/I1", "S1/I2"}
    assert held["<NULL>/I1"]["store"] is None and "(columns.ids) has 1 empty (NULL)" in held["<NULL>/I1"]["problem"]
    assert "share a (date, store, item) key" in held["S1/I2"]["problem"]
    assert ("e.g. date=2025-03-02, store='S1', item='I2', sales=3.0; date=2025-03-02, store='S1', item='I2', sales=3.0."
            in held["S1/I2"]["problem"])  # the rows of one key, their sales side by side
    raw = lake.read_parquet(raw_file("2025-03-03"))
    assert len(raw) == 8 and raw["store"].notna().all()  # S4/I1 without its id row: its other rows are S4/I1's
    assert rows_of(lake, "2025-03-02", "S1", "I2").empty


def test_a_row_whose_id_cannot_name_a_file_is_held_and_named(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-04")
    bad = source(days)
    bad.loc[at(bad, "S2", "I2", "2025-03-02"), "item"] = "I/../x"
    result, lake = ingest(tmp_path, bad, keys_of(days))
    # it belongs to its store S2 (the partition column's value is fine), whose check lists it
    assert [(h["series"], h["store"]) for h in result.held] == [("S2/I/../x", "S2")]
    assert "id column 'item': 'I/../x' contains" in result.held[0]["problem"]
    raw = lake.read_parquet(raw_file("2025-03-02"))
    assert len(raw) == 9 and "I/../x" not in set(raw["item"])
    verdicts = held_back_verdicts(held_series(lake), ["S1", "S2"])
    assert verdicts["S1"].passed and not verdicts["S2"].passed
    assert verdicts["S2"].metadata["series"] == ["S2/I/../x"]


def test_a_store_whose_every_series_is_held_is_not_told_to_retire(tmp_path):
    """Both series of S2 held: its dataset is empty, but it has not left the source. Its every_partition_has_rows
    says so (mend the source), where a store really gone is told to retire."""
    from mm_assets.checks.data_quality import quality_verdicts, rows_held_back
    from mm_assets.ingest.datasets import write_datasets

    days = pd.date_range("2025-03-01", "2025-03-04")
    bad = source(days).astype({"price": object})
    bad.loc[at(bad, "S2", "I1", "2025-03-02"), "sales"] = -1.0
    bad.loc[at(bad, "S2", "I2", "2025-03-03"), "price"] = "n/a"
    bad = bad[bad["store"] != "S5"]  # S5 left the source
    lenient = Settings.model_validate({"ingest": {"max_held_share": 0.5}})
    _, lake = ingest(tmp_path, bad, keys_of(days), settings=lenient)
    quality, missing = write_datasets(lake, Settings(), STORES, str(tmp_path / "spill"))
    assert sorted(missing) == ["S2", "S5"]
    no_rows = quality_verdicts(quality, missing, 3, pd.Timedelta(days=1))["every_partition_has_rows"]
    told = rows_held_back(no_rows, held_series(lake))
    assert not told["S2"].passed and "its 2 series in the source are held back" in told["S2"].description
    assert "do not retire it" in told["S2"].description and told["S2"].metadata["series_held_back"] == 2
    assert told["S5"] is no_rows["S5"] and "retire-partition" in told["S5"].description
    assert told["S1"].passed


def test_a_store_with_a_character_files_may_not_hold_and_an_invisible_item_id_are_held(tmp_path):
    """'S2?' is a fine id but names no file on Windows or in an Azure URL; 'I1' + a zero-width space looks like
    I1 and would be another series. Both are held and named; the invisible one belongs to its store and is I1's
    row written wrong, so I1 is held with it (ingested without it, I1 would silently lack that day)."""
    days = pd.date_range("2025-03-01", "2025-03-04")
    bad = source(days)
    bad.loc[bad["store"] == "S2", "store"] = "S2?"
    bad.loc[at(bad, "S3", "I1", "2025-03-02"), "item"] = "I1\u200b"
    lenient = Settings.model_validate({"ingest": {"max_held_share": 0.5}})
    result, lake = ingest(tmp_path, bad, keys_of(days), settings=lenient)
    held = {h["series"]: h for h in result.held}
    assert set(held) == {"S2?/I1", "S2?/I2", "S3/I1\u200b"}
    assert held["S2?/I1"]["store"] is None and "may not hold on Windows" in held["S2?/I1"]["problem"]
    assert held["S3/I1\u200b"]["store"] == "S3" and "U+200B (ZERO WIDTH SPACE)" in held["S3/I1\u200b"]["problem"]
    raw = lake.read_parquet(raw_file("2025-03-02"))
    assert held["S3/I1\u200b"]["ids"] == ("S3", "I1")
    assert "S2?" not in set(raw["store"]) and rows_of(lake, "2025-03-03", "S3", "I1").empty  # never stored: left out
    assert len(rows_of(lake, "2025-03-03", "S3", "I2")) == 1
    # partitioned by hash bucket, a store's value names no file: 'S2?' is then a store like any other
    buckets = Settings.model_validate({"partition": {"buckets": 4}, "ingest": {"max_held_share": 0.5}})
    result, _ = ingest(tmp_path / "buckets", bad, keys_of(days), settings=buckets)
    assert [h["series"] for h in result.held] == ["S3/I1\u200b"]


def test_a_row_whose_store_cannot_name_a_file_belongs_to_no_store(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-04")
    bad = source(days)
    bad.loc[at(bad, "S2", "I2", "2025-03-02"), "store"] = "S/2"
    result, lake = ingest(tmp_path, bad, keys_of(days))
    assert [(h["series"], h["store"]) for h in result.held] == [("S/2/I2", None)]
    assert all(v.passed for v in held_back_verdicts(held_series(lake), STORES).values())


def test_a_sale_dated_after_today_holds_its_series_not_the_ingest(tmp_path):
    """A sale mistyped as 2099: its series is held and named, the others are ingested, and the plan is still read
    after the newest sale up to today (the typo is not the newest sale)."""
    days = pd.date_range("2025-03-01", "2025-03-08")
    keys = keys_of(pd.date_range("2025-03-01", "2025-03-05"))
    bad = source(days)
    bad = pd.concat([bad, bad[at(bad, "S3", "I1", "2025-03-04")].assign(date=pd.Timestamp("2099-03-04"))],
                    ignore_index=True)
    result, lake = ingest(tmp_path, bad, keys)
    assert [(h["series"], h["store"], h["kind"]) for h in result.held] == [("S3/I1", "S3", "sale dated after today")]
    assert "2099-03-04" in result.held[0]["problem"] and "Fix the date in the source" in result.held[0]["problem"]
    assert rows_of(lake, "2025-03-04", "S3", "I1").empty and len(rows_of(lake, "2025-03-04", "S3", "I2")) == 1
    plan = lake.read_parquet(*PLAN_FILE)
    assert plan["sales"].isna().all() and plan["date"].max() == pd.Timestamp("2025-03-08")
    assert held_series(lake)["series"].tolist() == ["S3/I1"]
    strict = Settings.model_validate({"ingest": {"on_bad_rows": "error"}})
    with pytest.raises(IngestError, match="1 rows with a sale are dated after today"):
        ingest(tmp_path / "strict", bad, keys, settings=strict)


def with_sale_at(frame: pd.DataFrame, store: str, item: str, day: str, date: str) -> pd.DataFrame:
    """``frame`` with a copy of the row of (store, item, day) dated ``date`` (a mistyped date)."""
    return pd.concat([frame, frame[at(frame, store, item, day)].assign(date=pd.Timestamp(date))], ignore_index=True)


def test_a_sale_dated_far_after_the_rest_of_the_source_but_before_today_holds_its_series(tmp_path):
    """An extract of an older year with one row typed a year later: before today, so not caught as a sale after
    today, it became the source's newest sale. Now its series is held and named as a mistyped date, the newest sale
    is the rest's, and the plan is read after it."""
    from mm_assets.ingest.periods import newest_sales

    days = pd.date_range("2025-03-01", "2025-03-08")
    keys = keys_of(pd.date_range("2025-03-01", "2025-03-05"))
    bad = with_sale_at(source(days), "S3", "I1", "2025-03-04", "2026-03-04")
    result, lake = ingest(tmp_path, bad, keys)
    assert [(h["series"], h["kind"]) for h in result.held] == [
        ("S3/I1", "sale dated far after the rest (a mistyped date?)")]
    problem = result.held[0]["problem"]
    assert ("dated from 2026-03-04, 364 days after the rest of the source's newest sale (2025-03-05) with no sale "
            "between, by 1 series against the 10 that sold in that period: a mistyped date?") in problem, problem
    assert result.newest_sale == LAST_SALE
    assert rows_of(lake, "2025-03-04", "S3", "I1").empty and len(rows_of(lake, "2025-03-04", "S3", "I2")) == 1
    plan = lake.read_parquet(*PLAN_FILE)
    assert plan["sales"].isna().all() and plan["date"].max() == pd.Timestamp("2025-03-08")
    strict = Settings.model_validate({"ingest": {"on_bad_rows": "error"}})
    with pytest.raises(IngestError, match="1 rows with a sale are dated from 2026-03-04"):
        ingest(tmp_path / "strict", bad, keys, settings=strict)

    from mm_assets_tests.ingest.test_periods import FrameReader

    def newest(frame: pd.DataFrame) -> tuple:
        sale, leap = newest_sales(FrameReader(frame), Settings(), pd.Timestamp("2026-12-06"))
        return sale, None if leap is None else (leap.start, leap.before, leap.series, leap.selling)

    assert newest(bad) == (LAST_SALE, (pd.Timestamp("2026-03-04"), LAST_SALE, 1, 10))
    # not a leap: a feed that came back after an outage (most series sell again), a silence of at most
    # ingest.max_normal_gap periods, or a source whose rest reached the date
    back = pd.concat([bad, source(days).assign(date=lambda f: f["date"] + pd.Timedelta(days=400)).dropna(
        subset=["sales"])], ignore_index=True)
    assert newest(back) == (pd.Timestamp("2026-04-09"), None)
    near = with_sale_at(source(days), "S3", "I1", "2025-03-04", "2025-03-09")  # 3 days of silence: normal
    assert newest(near) == (pd.Timestamp("2025-03-09"), None)
    beyond = with_sale_at(source(days), "S3", "I1", "2025-03-04", "2025-03-10")  # 4 days: more than normal
    assert newest(beyond)[1] == (pd.Timestamp("2025-03-10"), LAST_SALE, 1, 10)
    weekly = Settings.model_validate({"frequency": "W-MON"})
    weeks = pd.date_range("2025-01-06", periods=10, freq="W-MON")
    rows = source(weeks).assign(sales=3.0)
    leap_weekly = newest_sales(FrameReader(with_sale_at(rows, "S1", "I2", "2025-03-10", "2025-06-02")), weekly,
                               pd.Timestamp("2026-12-06"))
    assert leap_weekly[0] == pd.Timestamp("2025-03-10") and leap_weekly[1].start == pd.Timestamp("2025-06-02")
    assert "12 weeks after the rest" in leap_weekly[1].words(weekly)
    normal_weekly = newest_sales(FrameReader(with_sale_at(rows, "S1", "I2", "2025-03-10", "2025-03-31")), weekly,
                                 pd.Timestamp("2026-12-06"))  # two weeks missing: normal for weekly data
    assert normal_weekly == (pd.Timestamp("2025-03-31"), None)


def test_a_held_series_keeps_its_stored_plan(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-08")  # sales up to 5 March, then the plan
    keys = keys_of(pd.date_range("2025-03-01", "2025-03-05"))
    _, lake = ingest(tmp_path, source(days), keys)
    new_plan = source(days).astype({"price": object})
    new_plan.loc[new_plan["date"] > LAST_SALE, "price"] = 1.5
    new_plan.loc[at(new_plan, "S1", "I1", "2025-03-07"), "price"] = "TBD"
    new_plan.loc[at(new_plan, "S1", "I1", "2025-03-05"), "sales"] = 7.0  # and a new sale, which is not held
    result, lake = ingest(tmp_path, new_plan, keys)
    assert [(h["series"], h["kind"]) for h in result.held] == [("S1/I1", "plan: 'price' not a number")]
    assert rows_of(lake, "2025-03-05", "S1", "I1")["sales"].tolist() == [7.0]
    plan = lake.read_parquet(*PLAN_FILE)
    mine = (plan["store"] == "S1") & (plan["item"] == "I1")
    assert plan.loc[mine, "price"].tolist() == [2.0, 2.0, 2.0]  # its stored plan
    assert set(plan.loc[~mine, "price"]) == {1.5} and len(plan) == 30
    assert len(lake.read_parquet(*HELD_FILE)) == 1
    # the store's check names the plan, not the sales of the period read (they are in)
    told = held_back_verdicts(held_series(lake), ["S1"])["S1"].description
    assert "S1/I1 (its plan after 2025-03-05; its sales are in): " in told and "periods 2025-03-05" not in told


def test_validate_raw_raises_without_a_held_list_and_holds_with_one():
    frame = source(pd.date_range("2025-03-01", "2025-03-02"))
    frame.loc[at(frame, "S1", "I1", "2025-03-01"), "sales"] = -2.0
    with pytest.raises(DataValidationError, match="negative"):
        validate_raw(frame, Settings())
    held: list[dict] = []
    out = validate_raw(frame, Settings(), held=held)
    assert len(out) == len(frame) - 2 and not ((out["store"] == "S1") & (out["item"] == "I1")).any()
    assert held[0]["ids"] == ("S1", "I1") and held[0]["bad_rows"] == 1
    assert "also have" not in held[0]["problem"]


def test_on_bad_rows_error_names_every_kind_of_bad_value_at_once():
    """A negative sale in one series and a text price in another: both in the one refusal, not the second only
    after the first was fixed and the ingest run again."""
    frame = source(pd.date_range("2025-03-01", "2025-03-02")).astype({"price": object})
    frame.loc[at(frame, "S1", "I1", "2025-03-01"), "sales"] = -2.0
    frame.loc[at(frame, "S3", "I2", "2025-03-02"), "price"] = "TBD"
    with pytest.raises(DataValidationError) as err:
        validate_raw(frame, Settings())
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and "'sales' (columns.target): 1 rows are negative" in lines[0]
    assert "regressor column 'price' (columns.regressors): 1 values are not numbers" in lines[1]


def test_a_held_series_names_every_kind_of_bad_value_its_rows_have():
    """Held for its first problem, it named only that one: a second (a text price) was found only after the first
    was fixed and the ingest run again."""
    frame = source(pd.date_range("2025-03-01", "2025-03-03")).astype({"price": object})
    frame.loc[at(frame, "S1", "I1", "2025-03-01"), "sales"] = -5.0
    frame.loc[at(frame, "S1", "I1", "2025-03-02"), "price"] = "abc"
    frame.loc[at(frame, "S1", "I1", "2025-03-03"), "price"] = "n/a"
    frame.loc[at(frame, "S2", "I2", "2025-03-02"), "price"] = "abc"  # one kind only
    held: list[dict] = []
    validate_raw(frame, Settings(), held=held)
    by_series = {h["series"]: h for h in held}
    assert by_series["S1/I1"]["kind"] == "'sales' negative"
    assert by_series["S1/I1"]["problem"].endswith("Its rows also have: 'price' not a number (2 rows).")
    assert "also have" not in by_series["S2/I2"]["problem"]


def test_a_held_series_stays_listed_until_its_periods_are_read_again(tmp_path):
    """The daily schedule ingests only the newest period: a series held yesterday still lacks yesterday's rows
    after today's ingest took today's, so it stays listed (and its store's check red) until those are read."""
    days = pd.date_range("2025-02-27", "2025-03-04")  # sales every day
    bad = source(days)
    bad.loc[at(bad, "S2", "I1", "2025-03-01"), "sales"] = -5.0
    result, lake = ingest(tmp_path, bad, keys_of(days[:5]))
    assert [h["series"] for h in result.held] == ["S2/I1"]
    today, lake = ingest(tmp_path, bad, keys_of(days[5:]))  # the next day's period alone: S2/I1's row is good
    assert today.held == [] and rows_of(lake, "2025-03-04", "S2", "I1")["sales"].tolist() == [3.0]
    listed = held_series(lake)
    assert listed[["series", "held_from", "held_to"]].values.tolist() == [["S2/I1", "2025-02-27", "2025-03-03"]]
    ingest(tmp_path, bad, keys_of(days[2:4]))  # part of its periods, still bad: listed once, over both spans
    assert held_series(lake)[["series", "held_from", "held_to"]].values.tolist() == [
        ["S2/I1", "2025-02-27", "2025-03-03"]]
    bad.loc[at(bad, "S2", "I1", "2025-03-01"), "sales"] = 5.0
    ingest(tmp_path, bad, keys_of(days[2:4]))  # fixed, but only part of its periods read: 27 Feb is still missing
    assert held_series(lake)["series"].tolist() == ["S2/I1"] and rows_of(lake, "2025-02-27", "S2", "I1").empty
    ingest(tmp_path, bad, keys_of(days[:5]))  # all of them read again
    assert held_series(lake).empty and rows_of(lake, "2025-02-27", "S2", "I1")["sales"].tolist() == [3.0]


def test_a_held_list_without_periods_is_read_as_empty_not_an_error(tmp_path):
    days = pd.date_range("2025-03-01", "2025-03-02")
    _, lake = ingest(tmp_path, source(days), keys_of(days))
    lake.write_parquet(pd.DataFrame({"series": ["S1/I1"], "store": ["S1"], "problem": ["old"]}), *HELD_FILE)
    assert held_series(lake).empty
    result, lake = ingest(tmp_path, source(days), keys_of(days))
    assert result.held == [] and held_series(lake).empty


def test_a_series_held_in_several_reads_counts_its_bad_rows_of_every_read():
    """Held once with its first problem, but its bad rows are those of every slice read (it said 7 of 110)."""
    from mm_assets.ingest.held import once_each

    def record(series: str, rows: int, kind: str = "'store' empty (NULL)") -> dict:
        return {"series": series, "store": None, "bad_rows": rows, "first_date": "2025-01-06", "kind": kind,
                "problem": f"has {rows} empty values"}

    held = once_each([record("<NULL>/B1", 7), record("S1/B2", 1)])
    held = once_each(held + [record("<NULL>/B1", 92), record("S1/B2", 3, kind="'price' not a number")])
    held = once_each(held + [record("<NULL>/B1", 11)])
    assert [(h["series"], h["bad_rows"]) for h in held] == [("<NULL>/B1", 110), ("S1/B2", 1)]
    assert held[0]["problem"] == "has 7 empty values (110 rows in all the periods read)"


def test_one_bad_plan_among_few_planned_series_holds_that_plan_not_the_ingest(tmp_path):
    """Three of ten series have a plan and one of them a typo: 1 of 3 is past the 20 % that refuses a mapping
    problem, but the share is judged against the series that sell, so that plan is held and the rest is read."""
    days = pd.date_range("2025-03-01", "2025-03-08")  # sales up to 5 March, then the plan
    keys = keys_of(pd.date_range("2025-03-01", "2025-03-05"))
    frame = source(days).astype({"price": object})
    planned = frame["date"] > LAST_SALE
    with_plan = frame["store"].isin(["S1", "S2"]) & (frame["item"] == "I1") | at(frame, "S3", "I2", "2025-03-06")
    frame = frame[~planned | with_plan].copy()
    frame.loc[at(frame, "S1", "I1", "2025-03-07"), "price"] = "TBD"
    result, lake = ingest(tmp_path, frame, keys)
    assert [(h["series"], h["kind"]) for h in result.held] == [("S1/I1", "plan: 'price' not a number")]
    assert len(lake.read_parquet(*PLAN_FILE)) == 3 + 1  # S2/I1's three planned days and S3/I2's one
    # with most of the selling series' plans bad, it is a mapping problem: refused, nothing written
    frame = source(days).astype({"price": object})
    frame.loc[(frame["date"] > LAST_SALE) & frame["store"].isin(["S1", "S2", "S3"]), "price"] = "TBD"
    with pytest.raises(IngestError, match="6 of 10 series read have bad rows"):
        ingest(tmp_path / "again", frame, keys)


def test_series_held_for_several_kinds_of_problem_are_told_the_first_of_each():
    """Ids held for a '/' and for spaces around them: the line told of the first kind only, and the other
    kind's fix was in a file under raw/held."""
    from mm_assets.ingest.held import first_of_each_kind, held_back_line

    held = [{"series": "ATL/KROGER", "kind": "id '/'", "problem": "store 'ATL/KROGER' contains '/'"},
            {"series": "B/1", "kind": "id '/'", "problem": "store 'B/1' contains '/'"},
            {"series": " S3 ", "kind": "id spaces", "problem": "store ' S3 ' has spaces around it"}]
    assert first_of_each_kind(held) == ("First of each kind: store 'ATL/KROGER' contains '/'; store ' S3 ' has "
                                        "spaces around it")
    assert first_of_each_kind(held[:2]) == "First: store 'ATL/KROGER' contains '/'"
    assert held_back_line(held).endswith(first_of_each_kind(held))
