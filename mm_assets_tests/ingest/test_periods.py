"""Tests of ingest_periods: what each period's metadata says (sales or plan), the plan's refresh, and that rows off
the frequency's grid or an unreadable source stop the ingest before any file is written."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mm_assets.ingest.periods import PLAN_FILE, IngestError, ingest_periods
from mm_assets.ingest.source import SourceError
from mm_assets.lake import Lake
from mm_assets.settings import Settings

LAST_SALE = pd.Timestamp("2025-03-05")


class FrameReader:
    """A source of rows in memory, read the way SourceReader reads: [start, end) windows."""

    def __init__(self, frame: pd.DataFrame, fail: bool = False):
        self.frame, self.fail = frame, fail

    def read(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        if self.fail:
            raise SourceError("cannot read the source at sqlite:///gone.db: disk I/O error")
        ts = self.frame["date"]
        return self.frame[(ts >= start) & (ts < end)].reset_index(drop=True)

    def last_observed(self, target: str, before: dt.datetime | None = None) -> pd.Timestamp | None:
        sold = self.frame[target].notna() & (self.frame["date"] < (before or dt.datetime(9999, 1, 1)))
        return self.frame.loc[sold, "date"].max() if sold.any() else None

    def first_observed(self, target: str, start: dt.datetime) -> pd.Timestamp | None:
        sold = self.frame[target].notna() & (self.frame["date"] >= start)
        return self.frame.loc[sold, "date"].min() if sold.any() else None


def source(days: pd.DatetimeIndex) -> pd.DataFrame:
    """Two stores x two items on ``days``; no sales (the plan: price and promotion) after ``LAST_SALE``."""
    rows = pd.DataFrame([{"date": d, "store": s, "item": i, "price": 2.0, "promo": 0}
                         for d in days for s in ("S1", "S2") for i in ("I1", "I2")])
    rows["sales"] = np.where(rows["date"] <= LAST_SALE, 3.0, np.nan)
    return rows


def ingest(tmp_path, frame, keys, refresh_plan=True, settings=None, fail=False):
    lake = Lake(str(tmp_path / "lake"))
    end = (pd.Timestamp(keys[-1]) + (settings or Settings()).step).to_pydatetime()
    result = ingest_periods(FrameReader(frame, fail), lake, settings or Settings(), keys, end, refresh_plan, "run1")
    return result, lake


def test_a_period_of_plan_only_says_its_rows_are_planned_not_sales(tmp_path):
    frame = source(pd.date_range("2025-03-03", "2025-03-12"))
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    result, lake = ingest(tmp_path, frame, keys)
    meta = dict(result.periods)
    assert meta["2025-03-05"] == {"rows": 4, "rows_with_sales": 4, "planned_rows": 0, "series": 4,
                                  "series_with_sales": 4, "stores": 2, "plan_refreshed": True, "file": "new",
                                  "plan_file": "new"}
    assert meta["2025-03-06"] == {"rows": 4, "rows_with_sales": 0, "planned_rows": 4, "series": 4,
                                  "series_with_sales": 0, "stores": 2, "plan_refreshed": True, "file": "new",
                                  "plan_file": "new"}
    assert result.plan_rows == 4 * 4  # 9..12 March, after the newest period
    assert len(lake.read_parquet(*PLAN_FILE)) == 16
    # read again: every file and the plan unchanged (the training sensor then retrains nothing); a new plan is new
    again, _ = ingest(tmp_path, frame, keys)
    assert {(m["file"], m["plan_file"]) for _, m in again.periods} == {("unchanged", "unchanged")}
    replanned = frame.assign(price=np.where(frame["date"] == pd.Timestamp("2025-03-10"), 1.5, frame["price"]))
    moved, _ = ingest(tmp_path, replanned, keys)
    assert {(m["file"], m["plan_file"]) for _, m in moved.periods} == {("unchanged", "rewritten")}
    assert (lake.read_parquet(*PLAN_FILE).query("date == '2025-03-10'")["price"] == 1.5).all()


def test_a_store_that_reported_a_day_before_the_others_holds_nothing_back(tmp_path):
    """S1's sales of the 6th arrived, S2's not yet: S2's rows of the 6th stay its plan, nothing is held back. S2's
    sales arrive the next day: late sales, not a correction; its plan changed alone: replanned."""
    frame = source(pd.date_range("2025-03-03", "2025-03-10"))
    frame.loc[(frame["date"] == pd.Timestamp("2025-03-06")) & (frame["store"] == "S1"), "sales"] = 4.0
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    result, lake = ingest(tmp_path, frame, keys)
    assert result.held == [] and result.newest_sale == pd.Timestamp("2025-03-06")
    sixth = dict(result.periods)["2025-03-06"]
    assert (sixth["rows_with_sales"], sixth["planned_rows"]) == (2, 2)
    replanned = frame.copy()
    replanned.loc[(replanned["date"] == pd.Timestamp("2025-03-06")) & (replanned["store"] == "S2"), "price"] = 1.5
    again, _ = ingest(tmp_path, replanned, keys)
    assert dict(again.periods)["2025-03-06"]["file"] == "replanned" and again.rewritten == again.late_sales == []
    reported = replanned.copy()
    reported.loc[(reported["date"] == pd.Timestamp("2025-03-06")) & (reported["store"] == "S2"), "sales"] = 5.0
    late, _ = ingest(tmp_path, reported, keys)
    assert late.late_sales == ["2025-03-06"] and late.rewritten == []


def test_a_period_whose_rows_changed_is_named_rewritten(tmp_path):
    """Ingested again: the same rows leave every file as it was; a corrected row rewrites its period, named; rows
    of sales added beside unchanged ones are late sales, not a correction."""
    from mm_assets.ingest.periods import corrections

    frame = source(pd.date_range("2025-03-03", "2025-03-08"))
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    result, lake = ingest(tmp_path, frame, keys)
    assert {m["file"] for _, m in result.periods} == {"new"} and result.rewritten == []
    again, _ = ingest(tmp_path, frame, keys)
    assert {m["file"] for _, m in again.periods} == {"unchanged"} and again.rewritten == []
    corrected = frame.copy()
    corrected.loc[corrected["date"] == pd.Timestamp("2025-03-04"), "sales"] += 1
    fixed, _ = ingest(tmp_path, corrected, keys)
    assert fixed.rewritten == ["2025-03-04"] and dict(fixed.periods)["2025-03-04"]["file"] == "rewritten"
    assert fixed.resized == [] and "rows_before" not in dict(fixed.periods)["2025-03-04"]  # values, not rows
    # a store new to the source, with two days of history: sales added to those periods, no stored one changed
    opened = pd.concat([corrected, corrected[(corrected["store"] == "S1") & (corrected["date"] >= "2025-03-04")
                                             & (corrected["date"] <= "2025-03-05")].assign(store="S3")])
    grown, lake = ingest(tmp_path, opened, keys)
    assert grown.rewritten == grown.resized == [] and grown.late_sales == ["2025-03-04", "2025-03-05"]
    assert dict(grown.periods)["2025-03-04"]["file"] == "late_sales"
    # judged again by forecast_accuracy (a late store's points of periods judged already)
    assert corrections(lake)["period"].tolist()[-2:] == ["2025-03-04", "2025-03-05"]
    # the store gone again: rows removed, a rewrite said apart
    shrunk, _ = ingest(tmp_path, corrected, keys)
    assert shrunk.rewritten == shrunk.resized == ["2025-03-04", "2025-03-05"] and shrunk.late_sales == []
    assert dict(shrunk.periods)["2025-03-04"]["rows_before"] == 6
    # a late row with a value changed beside it is a correction
    late = pd.concat([corrected, corrected[(corrected["store"] == "S1") & (corrected["date"] == "2025-03-05")
                                           ].assign(store="S3")])
    late.loc[(late["store"] == "S2") & (late["date"] == pd.Timestamp("2025-03-05")), "sales"] += 1
    mixed, _ = ingest(tmp_path, late, keys)
    assert mixed.rewritten == mixed.resized == ["2025-03-05"] and mixed.late_sales == []


def test_a_plan_only_period_that_gets_its_sales_or_a_new_plan_is_no_correction(tmp_path):
    """The 6th..8th held plan rows alone; their sales arrive (6th) or their plan changes (7th): neither corrects an
    actual, so neither is named rewritten nor judged again as a correction."""
    from mm_assets.ingest.periods import corrections

    frame = source(pd.date_range("2025-03-03", "2025-03-08"))
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    ingest(tmp_path, frame, keys)
    later = frame.copy()
    later.loc[later["date"] == pd.Timestamp("2025-03-06"), "sales"] = 4.0
    later.loc[later["date"] == pd.Timestamp("2025-03-07"), "price"] = 1.5
    later.loc[later["date"] == pd.Timestamp("2025-03-04"), "sales"] += 1  # and one true correction
    result, lake = ingest(tmp_path, later, keys)
    files = {key: m["file"] for key, m in result.periods}
    assert files["2025-03-06"] == "first_sales" and files["2025-03-07"] == "replanned"
    assert files["2025-03-08"] == "unchanged" and result.rewritten == ["2025-03-04"]
    assert corrections(lake)["period"].tolist() == ["2025-03-04"]


def test_a_damaged_period_file_is_rebuilt_from_the_source_not_called_a_correction(tmp_path):
    """A period file cut short in the lake is written again from the source and named ``rebuilt``, not
    ``rewritten`` (its rows did not change), also while a series is held back (its stored rows of that period
    cannot be kept from a file that cannot be read; the others go on)."""
    from mm_assets.ingest.periods import raw_file

    frame = source(pd.date_range("2025-03-03", "2025-03-08"))
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    _, lake = ingest(tmp_path, frame, keys)
    damaged = lake.path(raw_file("2025-03-04"))
    with open(damaged, "r+b") as handle:
        handle.truncate(100)
    assert not lake.readable(raw_file("2025-03-04")) and lake.readable(raw_file("2025-03-05"))
    again, _ = ingest(tmp_path, frame, keys)
    assert again.rebuilt == ["2025-03-04"] and again.rewritten == []
    assert dict(again.periods)["2025-03-04"]["file"] == "rebuilt" and lake.readable(raw_file("2025-03-04"))
    # a series held back (a text price) while another period file is damaged: the ingest goes on
    with open(lake.path(raw_file("2025-03-05")), "r+b") as handle:
        handle.truncate(100)
    bad = frame.astype({"price": object})
    bad.loc[(bad["store"] == "S1") & (bad["item"] == "I1") & (bad["date"] == pd.Timestamp("2025-03-07")),
            "price"] = "abc"
    held, _ = ingest(tmp_path, bad, keys, settings=Settings.model_validate({"ingest": {"max_held_share": 0.5}}))
    assert [h["series"] for h in held.held] and held.rebuilt == ["2025-03-05"]
    assert len(lake.read_parquet(raw_file("2025-03-05"))) == 3  # the held series' row was in the damaged file
    assert len(lake.read_parquet(raw_file("2025-03-04"))) == 4  # kept from the readable file


def test_a_plan_not_refreshed_has_no_plan_row_count(tmp_path):
    frame = source(pd.date_range("2025-03-03", "2025-03-12"))
    result, lake = ingest(tmp_path, frame, ["2025-03-03", "2025-03-04"], refresh_plan=False)
    assert result.plan_rows is None  # not -1: no plan was read
    assert [m["plan_refreshed"] for _, m in result.periods] == [False, False]
    assert not lake.exists("/".join(PLAN_FILE))


def _lake_files(tmp_path) -> dict[str, bytes]:
    root = tmp_path / "lake"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("per_read", [92, 2])  # one slice, or several (staged, then moved)
def test_daily_rows_under_a_weekly_frequency_stop_the_ingest_and_change_no_file(tmp_path, per_read):
    days = pd.date_range("2025-01-05", "2025-03-05")
    good, _ = ingest(tmp_path, source(days), [d.strftime("%Y-%m-%d") for d in days[-3:]])
    before = _lake_files(tmp_path)
    weekly = Settings(frequency="W-SUN", ingest={"periods_per_read": per_read})
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-01-05", "2025-03-02", freq="W-SUN")]
    with pytest.raises(IngestError) as info:
        ingest(tmp_path, source(days), keys, settings=weekly)
    message = str(info.value)
    assert "frequency W-SUN dates every week by its Sunday" in message
    assert "the source's dates are daily" in message and "Set frequency: D" in message
    assert _lake_files(tmp_path) == before  # nothing written, nothing replaced, no staging left
    assert len(good.periods) == 3


def test_a_new_week_of_one_row_off_the_weekday_holds_its_series_back_once_weeks_are_stored(tmp_path):
    """The newest week read alone holds one mistyped row (a Tuesday under W-MON): all of what was read is off
    the weekday, which before any week is stored is the frequency mistaken for the source (refused), but beside
    stored Monday weeks is a slip of its series, held back as a few off-weekday rows are in a larger read."""
    weekly = Settings.model_validate({"frequency": "W-MON", "ingest": {"max_held_share": 1.0}})
    mondays = pd.date_range("2025-01-06", "2025-03-03", freq="W-MON")
    frame = source(mondays)
    keys = [d.strftime("%Y-%m-%d") for d in mondays]
    ingest(tmp_path, frame, keys, settings=weekly)
    slip = frame[frame["date"] == mondays[-1]].head(1).assign(date=pd.Timestamp("2025-03-11"), sales=4.0)
    newest = pd.concat([frame, slip], ignore_index=True)
    result, lake = ingest(tmp_path, newest, ["2025-03-10"], settings=weekly, refresh_plan=False)
    assert [(h["series"], h["kind"]) for h in result.held] == [("S1/I1", "'date' not a Monday")]
    with pytest.raises(IngestError, match="fall on other weekdays"):  # the same read into an empty lake
        ingest(tmp_path / "empty", newest, ["2025-03-10"], settings=weekly, refresh_plan=False)


def test_a_source_that_cannot_be_read_is_an_ingest_error_with_its_message(tmp_path):
    frame = source(pd.date_range("2025-03-03", "2025-03-05"))
    with pytest.raises(IngestError, match=r"raw_sales 2025-03-03\.\.\.2025-03-04: cannot read the source at "
                                          r"sqlite:///gone\.db"):
        ingest(tmp_path, frame, ["2025-03-03", "2025-03-04"], fail=True)
    assert _lake_files(tmp_path) == {}


def test_monthly_rows_under_daily_settings_stop_a_backfill_at_its_first_reads(tmp_path):
    # the user trial: 28 months of rows dated on the 1st, ingested as 824 daily periods, 796 of them empty
    months = pd.date_range("2023-01-01", "2025-03-01", freq="MS")
    days = pd.date_range(months[0], "2025-03-05")
    with pytest.raises(IngestError) as info:
        ingest(tmp_path, source(months), [d.strftime("%Y-%m-%d") for d in days], refresh_plan=False)
    message = str(info.value)
    # the second read, of 92 days (the first, of 7 days, holds one date: no step to judge)
    assert "frequency D (daily), but the 3 distinct dates of columns.timestamp 'date' (2023-02-01 .. 2023-04-01)" \
        in message
    assert "are not daily: they are about a month apart" in message
    assert "Only daily (D) and weekly (W-<day>) series are supported" in message
    assert not (tmp_path / "lake" / "raw").exists()


def test_a_backfill_reads_slices_of_about_rows_per_read_rows_whatever_the_number_of_series(tmp_path):
    """Memory follows a slice's rows: many series take fewer periods a query, few take up to periods_per_read."""
    from mm_assets.ingest.periods import FIRST_READ_PERIODS, periods_that_fit

    assert periods_that_fit(rows=700_000, periods=7, rows_per_read=1_000_000, periods_per_read=92) == 10
    assert periods_that_fit(rows=70, periods=7, rows_per_read=1_000_000, periods_per_read=92) == 92
    assert periods_that_fit(rows=5_000_000, periods=1, rows_per_read=1_000_000, periods_per_read=92) == 1
    assert periods_that_fit(rows=0, periods=7, rows_per_read=1_000_000, periods_per_read=92) == 92  # empty periods

    days = pd.date_range("2025-01-01", "2025-03-05")  # 64 days x 4 series
    keys = [d.strftime("%Y-%m-%d") for d in days]
    reads = []

    class Counting(FrameReader):
        def read(self, start, end):
            out = super().read(start, end)
            reads.append(len(out))
            return out

    def ingest_with(rows_per_read):
        lake = Lake(str(tmp_path / f"lake{rows_per_read}"))
        settings = Settings(ingest={"rows_per_read": rows_per_read})
        reads.clear()
        result = ingest_periods(Counting(source(days)), lake, settings, keys, dt.datetime(2025, 3, 6), False, "r1")
        return result, list(reads)

    # the first read is the plan after the newest sale (none here), then the slices
    few, few_reads = ingest_with(20)  # 5 days of 4 series a query after the first 7 days
    assert few_reads == [0, 4 * FIRST_READ_PERIODS] + [20] * 11 + [4 * 2]
    many, many_reads = ingest_with(1_000_000)  # the rest in one query
    assert many_reads == [0, 4 * FIRST_READ_PERIODS, 4 * (64 - FIRST_READ_PERIODS)]
    assert few.rows == many.rows == 4 * 64 and len(few.periods) == len(many.periods) == 64
    files = [sorted(p.name for p in (tmp_path / lake / "raw" / "sales").iterdir()) for lake in ("lake20", "lake1000000")]
    assert files[0] == files[1] and len(files[0]) == 64  # the same period files, however they were read


def test_the_plan_is_read_when_the_periods_reach_the_sources_newest_sale_not_only_the_calendars_newest(tmp_path):
    """A source a day behind: its newest sale is the day before the newest period. Ingesting up to that sale (the
    newest period is not ingested) still reads the plan after it, or the forecasts would ignore every plan."""
    frame = source(pd.date_range("2025-03-03", "2025-03-12"))  # sales up to 5 March, then the plan
    result, lake = ingest(tmp_path, frame, ["2025-03-04", "2025-03-05"], refresh_plan=False)
    assert result.plan_rows == 4 * 7 and len(lake.read_parquet(*PLAN_FILE)) == 28  # 6..12 March
    assert [m["plan_refreshed"] for _, m in result.periods] == [True, True]
    older, _ = ingest(tmp_path / "older", frame, ["2025-03-03", "2025-03-04"], refresh_plan=False)
    assert older.plan_rows is None  # a backfill before the newest sale leaves the plan alone


def test_a_query_that_returns_rows_outside_its_window_stops_the_ingest_before_any_file(tmp_path):
    """A source.query that ignores its window returned every row for every slice of a backfill: each was filed
    under the slice's first or last period, once per slice (three copies of every row), and only the datasets'
    duplicate-keys check turned red, without a word."""
    days = pd.date_range("2025-01-01", "2025-03-05")
    keys = [d.strftime("%Y-%m-%d") for d in days]

    class WholeTable(FrameReader):
        query = "SELECT * FROM sales WHERE date >= :start OR date < :end"  # both bounds, but no window

        def read(self, start, end):
            return self.frame.copy()

    lake = Lake(str(tmp_path / "lake"))
    with pytest.raises(IngestError, match=r"source.query returned 228 rows dated outside the window it was asked "
                                          r"for \(2025-01-01 up to 2025-01-08\), e.g. 2025-01-08, 2025-01-09, "
                                          r"2025-01-10: it must filter"):
        ingest_periods(WholeTable(source(days)), lake, Settings(), keys, dt.datetime(2025, 3, 6), False, "r1")
    assert not lake.exists("raw")
    with pytest.raises(ValueError, match=r"source.query does not use :end"):
        Settings.model_validate({"source": {"query": "SELECT * FROM sales WHERE date >= :start"}})


@pytest.mark.parametrize("days", [6, 12], ids=["one-slice", "staged"])
def test_a_regressor_dropped_from_the_settings_rewrites_the_periods_as_reshaped_not_as_corrections(tmp_path, days):
    """Changing only ``columns.regressors`` writes every period again with the new columns, but its actuals did
    not change: the periods are named ``reshaped``, not ``rewritten``, and forecast_accuracy is not told to judge
    them again; a sale corrected in the same ingest still makes its period a correction. Twelve periods are read
    in slices through the staging folder, six in one."""
    from mm_assets.ingest.periods import corrections, raw_file

    frame = source(pd.date_range("2025-02-25", periods=days))
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-02-25", periods=days)]
    _, lake = ingest(tmp_path, frame, keys)
    fewer = Settings.model_validate({"columns": {"regressors": ["price"]}})
    dropped, _ = ingest(tmp_path, frame, keys, settings=fewer)
    assert dropped.reshaped == keys and dropped.rewritten == []
    assert {m["file"] for _, m in dropped.periods} == {"reshaped"} and corrections(lake).empty
    assert "promo" not in lake.footer_columns(raw_file(keys[0]))
    corrected = frame.copy()
    corrected.loc[corrected["date"] == pd.Timestamp("2025-02-27"), "sales"] += 1
    back, _ = ingest(tmp_path, corrected, keys)  # promo back, and one corrected day
    assert back.rewritten == ["2025-02-27"] and back.reshaped == [k for k in keys if k != "2025-02-27"]
    assert corrections(lake)["period"].tolist() == ["2025-02-27"]
    again, _ = ingest(tmp_path, corrected, keys)
    assert {m["file"] for _, m in again.periods} == {"unchanged"}


def test_rewritten_periods_are_recorded_with_the_time_for_the_accuracy_to_judge_again(tmp_path):
    from mm_assets.ingest.periods import corrections

    frame = source(pd.date_range("2025-03-01", "2025-03-04"))
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-01", "2025-03-04")]
    _, lake = ingest(tmp_path, frame, keys)
    assert corrections(lake).empty  # new periods are no correction
    before = pd.Timestamp.now("UTC").tz_localize(None)
    frame.loc[frame["date"] == pd.Timestamp("2025-03-02"), "sales"] += 1
    ingest(tmp_path, frame, keys)
    frame.loc[frame["date"] == pd.Timestamp("2025-03-03"), "sales"] += 1
    ingest(tmp_path, frame, keys)
    log = corrections(lake)
    assert log["period"].tolist() == ["2025-03-02", "2025-03-03"]
    assert (pd.to_datetime(log["rewritten_at"]) >= before).all() and log["rewritten_at"].is_monotonic_increasing


def test_a_cycle_of_the_recent_periods_reads_them_and_what_the_lake_lacks_or_a_held_series_waits_for(tmp_path):
    """``mm-assets cycle --recent N``: the newest N periods, and from the first period before them that is not in
    the lake, or that a series held back still lacks (one range: a run reads contiguous periods)."""
    from mm_assets.ingest.held import HELD_FILE, OUTSTANDING_COLUMNS
    from mm_assets.ingest.periods import periods_to_read, raw_file

    lake = Lake(str(tmp_path / "lake"))
    keys = [f"2025-03-{d:02d}" for d in range(1, 11)]
    for key in keys[:8]:
        lake.write_bytes(b"x", raw_file(key))
    assert periods_to_read(keys, lake, 1) == keys[8:]  # the two newest were never stored
    for key in keys[8:]:
        lake.write_bytes(b"x", raw_file(key))
    assert periods_to_read(keys, lake, 2) == keys[8:] and periods_to_read(keys, lake, 99) == keys
    lake.delete(raw_file(keys[3]))  # a period missing in the middle: read from there on
    assert periods_to_read(keys, lake, 2) == keys[3:]
    lake.write_bytes(b"x", raw_file(keys[3]))
    held = pd.DataFrame([{"series": "S1/I1", "store": "S1", "bad_rows": 1, "first_date": keys[5], "kind": "k",
                          "problem": "p", "held_from": keys[5], "held_to": keys[6]}], columns=list(OUTSTANDING_COLUMNS))
    lake.write_parquet(held, *HELD_FILE)
    assert periods_to_read(keys, lake, 2) == keys[5:]



def test_a_cycle_of_the_recent_periods_reads_the_plan_only_periods_whose_sales_have_arrived(tmp_path):
    """The lake holds the 6th..8th as plan rows alone; the source now has sales up to the 7th: ``--recent 1``
    must read from the 6th, or those sales wait for a cycle without --recent and every forecast stays old."""
    from mm_assets.ingest.periods import periods_to_read

    frame = source(pd.date_range("2025-03-03", "2025-03-08"))  # sales up to the 5th (LAST_SALE)
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    _, lake = ingest(tmp_path, frame, keys)
    assert periods_to_read(keys, lake, 1) == keys[-1:]
    assert periods_to_read(keys, lake, 1, "sales", pd.Timestamp("2025-03-05")) == keys[-1:]  # nothing new sold
    assert periods_to_read(keys, lake, 1, "sales", pd.Timestamp("2025-03-07")) == keys[3:]  # from the 6th
    assert periods_to_read(keys, lake, 1, "no_such_column", pd.Timestamp("2025-03-07")) == keys[-1:]


def test_stores_are_registered_in_natural_order():
    """New store partitions are registered in the order the UI lists them and a run's range follows: numbers by value
    ("S98" before "S100"), not text order ("S100" before "S98"); ids equal as numbers ("007", "7") in one order."""
    from mm_assets.ingest.periods import store_order

    stores = ["S100", "S98", "S2", "S10", "S1", "7", "007", "S10b", "S10a", "Store_a"]
    assert sorted(stores, key=store_order) == ["007", "7", "S1", "S2", "S10", "S10a", "S10b", "S98", "S100", "Store_a"]
    assert sorted(reversed(stores), key=store_order) == sorted(stores, key=store_order)


def test_ids_the_source_now_writes_another_way_stop_the_ingest_and_change_no_file(tmp_path):
    """Items 1 and 2 exported as '001' and '002' would start two new series beside the stored ones, without
    their history or models: refused, naming both forms, unless the settings accept them as new series."""
    frame = source(pd.date_range("2025-03-03", "2025-03-08"))
    frame["item"] = frame["item"].map({"I1": "1", "I2": "2"})
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    ingest(tmp_path, frame, keys)
    before = _lake_files(tmp_path)
    padded = frame.assign(item=frame["item"].str.zfill(3))
    with pytest.raises(IngestError) as err:
        ingest(tmp_path, padded, keys[-2:])
    message = str(err.value)
    assert "id column 'item'" in message and "S1/001 (stored as S1/1)" in message
    assert "S2/001 (stored as S2/1)" in message and "and 1 more series" in message
    assert "ingest.on_rewritten_ids: accept" in message and "CAST(item AS INTEGER)" in message
    assert _lake_files(tmp_path) == before
    accept = Settings.model_validate({"ingest": {"on_rewritten_ids": "accept"}})
    result, _ = ingest(tmp_path, padded, keys[-2:], settings=accept)
    assert result.rows == len(padded[padded["date"] >= pd.Timestamp(keys[-2])])


def test_ids_written_two_ways_in_one_read_are_named_and_ingested_as_they_are(tmp_path):
    """A first ingest with item '1' in some rows and '1.0' in others (a column read as numbers here and as text
    there), and 'I2' beside 'i2': each spelling is a series of its own, so the run names them with the fix (a
    warning: two products may differ in case only); the rows are ingested as they are. One spelling each: no word."""
    from mm_assets.reporting.ingest_summary import ingest_log, ingest_metadata

    days = pd.date_range("2025-03-03", "2025-03-08")
    keys = [d.strftime("%Y-%m-%d") for d in days]
    frame = source(days)
    frame["item"] = frame["item"].map({"I1": "1", "I2": "I2"})
    frame.loc[(frame["store"] == "S2") & (frame["item"] == "1"), "item"] = "1.0"
    frame.loc[(frame["store"] == "S1") & (frame["item"] == "I2") & (frame["date"] > days[0]), "item"] = "i2"
    result, _ = ingest(tmp_path, frame, keys)
    assert result.rows == len(frame)
    assert result.spellings == ["item: '1' and '1.0'; 'I2' and 'i2' (one spelling in source.query, e.g. "
                                "CAST(item AS INTEGER), if they are one)"]
    assert ("warning", "id values written two ways in the rows read, each spelling a series of its own: "
            + result.spellings[0]) in ingest_log(result)
    figures = ingest_metadata(result, len(keys), 0, 2, None, days[0], days[-1], "raw")
    assert "'1' and '1.0'" in figures["id_spellings"]
    clean, _ = ingest(tmp_path / "clean", source(days), keys)
    assert clean.spellings == [] and "id_spellings" not in ingest_metadata(
        clean, len(keys), 0, 2, None, days[0], days[-1], "raw")
    # the UI's check on raw_sales warns with the values and the fix, and passes on one spelling each
    from mm_assets.assets.ingest import IDS_WRITTEN_ONE_WAY, ingest_checks

    check = next(c for c in ingest_checks(result, None) if c.check_name == IDS_WRITTEN_ONE_WAY)
    assert not check.passed and check.severity.value == "WARN" and "'I2' and 'i2'" in check.description
    assert next(c for c in ingest_checks(clean, None) if c.check_name == IDS_WRITTEN_ONE_WAY).passed


def test_an_id_rewritten_from_a_date_on_is_refused_in_a_read_of_both_forms_and_a_backfill_of_many_reads(tmp_path):
    """The source writes I1 as 'i1' from 6 March on: one read holds both forms (the old up to the 5th), so the
    old form is not gone from the read; and a backfill of many reads must judge it before any staged file moves.
    A discontinued item and a new one spelt alike, each in its own years, are left alone."""
    frame = source(pd.date_range("2025-03-03", "2025-03-08"))
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    ingest(tmp_path, frame, keys)
    before = _lake_files(tmp_path)
    lower = frame.copy()
    lower.loc[(lower["item"] == "I1") & (lower["date"] >= pd.Timestamp("2025-03-06")), "item"] = "i1"
    with pytest.raises(IngestError, match=r"S1/i1 \(stored as S1/I1\).*UPPER\(item\)"):
        ingest(tmp_path, lower, keys)
    sliced = Settings.model_validate({"ingest": {"periods_per_read": 2}})  # three reads, staged
    with pytest.raises(IngestError, match=r"S1/i1 \(stored as S1/I1\)"):
        ingest(tmp_path, lower, keys, settings=sliced)
    assert _lake_files(tmp_path) == before


def test_a_store_renamed_in_its_whole_history_after_its_sales_stopped_is_refused(tmp_path):
    """S2's sales stop on the 5th; then the source writes it 's2' in every row. The newest stored period holds no
    row of S2, so a rule on that period alone let 's2' in as a new store beside 'S2' (BI totals counted the store
    twice); each period read again holds 's2' where its stored file held 'S2': a rename, refused, in one read and
    in many."""
    days = pd.date_range("2025-03-03", "2025-03-08")
    frame = source(days)
    frame = frame[(frame["store"] == "S1") | (frame["date"] <= LAST_SALE)]
    keys = [d.strftime("%Y-%m-%d") for d in days]
    ingest(tmp_path, frame, keys)
    before = _lake_files(tmp_path)
    renamed = frame.assign(store=frame["store"].replace({"S2": "s2"}))
    for settings in (None, Settings.model_validate({"ingest": {"periods_per_read": 2}})):
        with pytest.raises(IngestError) as err:
            ingest(tmp_path, renamed, keys, settings=settings)
        message = str(err.value)
        assert "id column 'store'" in message and "s2/I1 (stored as S2/I1)" in message
        assert "s2/I2 (stored as S2/I2)" in message and "UPPER(store)" in message
        assert _lake_files(tmp_path) == before
    # the same rows read again, and a day read alone (its stored file holds no S2): no rename
    assert ingest(tmp_path, frame, keys)[0].rows == len(frame)
    assert ingest(tmp_path, renamed, keys[-1:])[0].rows == len(renamed[renamed["date"] >= days[-1]])


def test_a_new_item_spelt_like_a_discontinued_one_is_not_a_rewrite(tmp_path):
    days = pd.date_range("2025-01-06", "2025-03-08")
    frame = source(days)
    frame = frame[frame["item"] == "I1"].copy()
    frame["item"] = np.where(frame["date"] < pd.Timestamp("2025-02-01"), "123", "0123")  # 123 ends, 0123 begins
    keys = [d.strftime("%Y-%m-%d") for d in days]
    ingest(tmp_path, frame, keys)
    sliced = Settings.model_validate({"ingest": {"periods_per_read": 7}})
    again, _ = ingest(tmp_path, frame, keys, settings=sliced)  # read again whole, in many reads
    assert again.rewritten == []


def test_a_store_with_rows_in_any_ingested_period_is_still_in_the_source(tmp_path):
    """S2's sales stop on the 5th and its plan is gone: the newest period file holds no row of it, but the next
    cycle reads every period again and would register it again."""
    from mm_assets.ingest.retiring import still_in_the_source

    frame = source(pd.date_range("2025-03-03", "2025-03-08"))
    frame = frame[(frame["store"] == "S1") | (frame["date"] <= LAST_SALE)]
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    _, lake = ingest(tmp_path, frame, keys)
    found = still_in_the_source(lake, ["S1", "S2", "S9"])
    assert found == {"S1": "the ingested period 2025-03-08 (its newest with rows of it)",
                     "S2": "the ingested period 2025-03-05 (its newest with rows of it)"}
    assert still_in_the_source(Lake(str(tmp_path / "empty")), ["S1"]) == {}


def test_a_damaged_period_file_is_named_not_a_traceback(tmp_path):
    """A period file cut short: whether the store still has rows there is unknown, so the refusal names the file
    and the fix."""
    from mm_assets.ingest.periods import RAW_FOLDER
    from mm_assets.ingest.retiring import PeriodsUnreadable, still_in_the_source

    frame = source(pd.date_range("2025-03-03", "2025-03-08"))
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-08")]
    _, lake = ingest(tmp_path, frame, keys)
    damaged = lake.path(*RAW_FOLDER, "2025-03-05.parquet")
    with open(damaged, "r+b") as f:
        f.truncate(100)
    with pytest.raises(PeriodsUnreadable, match=r"raw/sales/2025-03-05\.parquet\).*mm-assets cycle"):
        still_in_the_source(lake, ["S2"])


def test_the_newest_sold_period_skips_the_plan_and_reads_a_footer_again_only_when_its_file_changed(tmp_path):
    """The periods after the newest sale hold the plan alone (rows without a target): the newest sale is the newest
    file with a sale. A caller's memory spares the footers of unchanged files."""
    import numpy as np

    from mm_assets.ingest.periods import RAW_FOLDER, newest_sale_of, newest_sold_period, raw_file
    from mm_assets.lake import Lake

    lake = Lake(str(tmp_path / "lake"))
    for day, sales in (("2026-11-20", 3.0), ("2026-11-21", 2.0), ("2026-11-22", np.nan), ("2026-11-23", np.nan)):
        lake.write_parquet(pd.DataFrame({"date": [pd.Timestamp(day)], "store": ["S1"], "sales": [sales]}),
                           raw_file(day))
    files = lake.signatures(*RAW_FOLDER, suffix=".parquet")
    known: dict = {}
    assert newest_sold_period(lake, "sales", files, known) == pd.Timestamp("2026-11-21")
    assert set(known) == {"2026-11-21.parquet", "2026-11-22.parquet", "2026-11-23.parquet"}
    lake.write_parquet(pd.DataFrame({"date": [pd.Timestamp("2026-11-22")], "store": ["S1"], "sales": [1.0]}),
                       raw_file("2026-11-22"))  # the store reported it
    assert newest_sold_period(lake, "sales", lake.signatures(*RAW_FOLDER, suffix=".parquet"), known) == \
        pd.Timestamp("2026-11-22")
    said: list[str] = []
    assert newest_sale_of(lake, "sales", said.append) == pd.Timestamp("2026-11-22") and not said

    def unreachable(*parts, **kwargs):
        raise OSError("the lake went away")

    lake.signatures = unreachable
    assert newest_sale_of(lake, "sales", said.append) is None
    assert said == ["the lake's newest sale is not known (OSError: the lake went away): no store is measured "
                    "against it"]


def test_a_store_whose_rows_stopped_is_named_in_its_forecasts_figures():
    """Measured within the store, series_from_earlier_origin is 0 when the whole store is behind: its forecasts'
    figures measure its newest origin against the lake's newest sale too."""
    from mm_assets.reporting.partition_figures import store_behind

    step = pd.Timedelta(days=1)
    assert store_behind(pd.Timestamp("2026-11-21"), pd.Timestamp("2026-11-23"), step, 3) is None  # a late day
    words = store_behind(pd.Timestamp("2026-10-24"), pd.Timestamp("2026-11-23"), step, 3)
    assert words.startswith("the store's newest origin 2026-10-24 is 30 periods before the lake's newest sale "
                            "2026-11-23 (ingest.max_normal_gap 3)")
    assert store_behind(None, pd.Timestamp("2026-11-23"), step, 3) is None
    assert store_behind(pd.Timestamp("2026-10-24"), None, step, 3) is None


@pytest.mark.parametrize("policy", ["sum", "last"])
def test_rows_merged_by_on_duplicates_are_counted_and_said(tmp_path, policy):
    """ingest.on_duplicates sum | last merges as asked, but says so: a feed that began sending each row twice
    doubled its sales under 'sum' without a word."""
    from mm_assets.reporting.ingest_summary import ingest_log, ingest_metadata

    frame = source(pd.date_range("2025-03-03", "2025-03-05"))
    twice = pd.concat([frame, frame[frame["store"] == "S1"]], ignore_index=True)  # S1's 6 rows sent again
    keys = [d.strftime("%Y-%m-%d") for d in pd.date_range("2025-03-03", "2025-03-05")]
    settings = Settings.model_validate({"ingest": {"on_duplicates": policy}})
    result, _ = ingest(tmp_path, twice, keys, refresh_plan=False, settings=settings)
    assert result.rows == len(frame)
    assert result.merged.startswith("6 source rows shared a (date, store, item) key with another row and were "
                                    + ("summed into one" if policy == "sum" else "dropped for the last of them"))
    assert f"(ingest.on_duplicates: {policy}), e.g. date=2025-03-03, store='S1'" in result.merged
    assert ("info", result.merged) in ingest_log(result)
    meta = ingest_metadata(result, 3, 0, 2, None, dt.datetime(2025, 3, 3), dt.datetime(2025, 3, 6), "lake")
    assert meta["duplicate_rows_merged"] == result.merged
    clean, _ = ingest(tmp_path / "clean", frame, keys, refresh_plan=False, settings=settings)
    assert clean.merged is None and "duplicate_rows_merged" not in ingest_metadata(
        clean, 3, 0, 2, None, dt.datetime(2025, 3, 3), dt.datetime(2025, 3, 6), "lake")
    # the rows are written with the source's columns in their order whatever was merged: a duplicate in one
    # period reordered every period read (summing put the target after the ids), and all of them were "written
    # again with the columns now configured"
    once = pd.concat([frame, frame[(frame["store"] == "S1") & (frame["date"] == "2025-03-04")]], ignore_index=True)
    again, _ = ingest(tmp_path / "clean", once, keys, refresh_plan=False, settings=settings)
    files = dict(again.periods)
    assert again.reshaped == [] and files["2025-03-03"]["file"] == files["2025-03-05"]["file"] == "unchanged"
    assert files["2025-03-04"]["file"] == ("rewritten" if policy == "sum" else "unchanged")
