"""A day's datasets cut appends the new period files to the last cut, and gives what a cut from every file gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mm_assets.ingest.datasets import dataset_file, dormant_file, write_datasets
from mm_assets.ingest.periods import PLAN_FILE, RAW_FOLDER
from mm_assets.ingest.validation import PARTITION_COLUMN
from mm_assets.lake import Lake
from mm_assets.settings import Settings

KEYS = ["P1", "P2", "P3"]  # P3 gets its first rows on day 6


def _day(day: pd.Timestamp, rng) -> pd.DataFrame:
    rows = []
    for p in KEYS:
        if p == "P3" and day < pd.Timestamp("2025-01-06"):
            continue
        for item in range(4):
            if rng.random() < 0.15:  # a missing day: a gap inside the series
                continue
            if item == 3 and day < pd.Timestamp("2025-01-04"):  # a series that starts later
                continue
            rows.append({PARTITION_COLUMN: p, "store": p, "item": f"I{item}", "date": day,
                         "sales": float(rng.poisson(4)), "price": 2.0 + rng.random(), "promo": float(rng.random() < .2)})
    return pd.DataFrame(rows)


def _plan(after: pd.Timestamp) -> pd.DataFrame:
    days = pd.date_range(after + pd.Timedelta(days=1), periods=3, freq="D")
    return pd.DataFrame([{PARTITION_COLUMN: p, "store": p, "item": f"I{i}", "date": d, "sales": np.nan,
                          "price": 1.5, "promo": 1.0} for p in KEYS for i in range(4) for d in days])


def _cut(lake: Lake, settings: Settings, tmp_path) -> pd.DataFrame:
    spill = tmp_path / "spill"
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir()
    quality, _ = write_datasets(lake, settings, KEYS, str(spill))
    return quality


def _same_as_a_cut_from_every_file(lake: Lake, settings: Settings, quality: pd.DataFrame, tmp_path) -> None:
    fresh = Lake(str(tmp_path / "fresh"))
    shutil.rmtree(fresh.path(), ignore_errors=True)
    shutil.copytree(lake.path("raw"), fresh.path("raw"))
    expected_quality = _cut(fresh, settings, tmp_path)
    assert set(expected_quality["cut"]) == {f"cut from all {len(lake.list(*RAW_FOLDER))} period files"}
    columns = [c for c in expected_quality.columns if c != "cut"]
    pd.testing.assert_frame_equal(quality[columns], expected_quality[columns])
    for key in KEYS:
        pd.testing.assert_frame_equal(lake.read_parquet(dataset_file(key)), fresh.read_parquet(dataset_file(key)))
        assert lake.exists(dormant_file(key)) == fresh.exists(dormant_file(key))
        if fresh.exists(dormant_file(key)):  # the dormant series' rows too
            pd.testing.assert_frame_equal(lake.read_parquet(dormant_file(key)), fresh.read_parquet(dormant_file(key)))


def test_daily_cuts_append_and_equal_a_cut_from_every_file(tmp_path):
    settings = Settings()
    lake = Lake(str(tmp_path / "lake"))
    rng = np.random.default_rng(3)
    days = pd.date_range("2025-01-01", periods=9, freq="D")
    for n, day in enumerate(days):
        lake.write_parquet(_day(day, rng), *RAW_FOLDER, f"{day.date()}.parquet")
        lake.write_parquet(_plan(day), *PLAN_FILE)  # the plan moves on every day
        quality = _cut(lake, settings, tmp_path)
        cuts = quality["cut"].to_dict()
        if n == 0:
            assert cuts == {k: "cut from all 1 period files" for k in KEYS}
        else:  # P3 had no rows before day 6: its first cut with rows reads every file
            assert cuts["P1"] == cuts["P2"] == "appended 1 new period file"
            assert cuts["P3"] == ("appended 1 new period file" if day > pd.Timestamp("2025-01-06")
                                  else f"cut from all {n + 1} period files")
    _same_as_a_cut_from_every_file(lake, settings, quality, tmp_path)
    # the planned rows of the day before were replaced, not kept: only the current plan follows the data
    p1 = lake.read_parquet(dataset_file("P1"))
    assert p1.loc[p1["y"].isna(), "ds"].min() == days[-1] + pd.Timedelta(days=1)
    assert p1["ds"].max() == days[-1] + pd.Timedelta(days=3)

    # a second cut with nothing new leaves the files as they are: the published forecasts name the file they were
    # scored from, and a run that only needs the datasets (a backtest) made the endpoint stop answering them
    before = lake.signatures("datasets", suffix=".parquet")
    again = _cut(lake, settings, tmp_path)
    assert set(again["cut"]) == {"unchanged: no new period file and the same plan, the file is kept as it is"}
    assert lake.signatures("datasets", suffix=".parquet") == before
    pd.testing.assert_frame_equal(again.drop(columns="cut"), quality.drop(columns="cut"))  # the same figures
    pd.testing.assert_frame_equal(lake.read_parquet(dataset_file("P1")), p1)
    # a new plan without a new period file is written
    lake.write_parquet(_plan(days[-1]).assign(price=9.99), *PLAN_FILE)
    replanned = _cut(lake, settings, tmp_path)
    assert set(replanned["cut"]) == {"appended 0 new period files"}
    assert (lake.read_parquet(dataset_file("P1")).loc[lambda d: d["y"].isna(), "price"] == 9.99).all()


def _history(lake: Lake, days: int = 5, seed: int = 4) -> list[pd.Timestamp]:
    rng = np.random.default_rng(seed)
    dates = list(pd.date_range("2025-01-01", periods=days, freq="D"))
    for day in dates:
        lake.write_parquet(_day(day, rng), *RAW_FOLDER, f"{day.date()}.parquet")
    return dates


@pytest.mark.parametrize("change", ["rewritten", "inserted", "deleted", "settings", "duplicates"])
def test_anything_but_new_files_after_the_last_cuts_again_from_every_file(tmp_path, change):
    settings = Settings()
    lake = Lake(str(tmp_path / "lake"))
    dates = _history(lake)
    rng = np.random.default_rng(9)
    if change == "duplicates":  # a cut with duplicate keys lost rows to the dedup: it cannot be extended
        first = lake.read_parquet(*RAW_FOLDER, f"{dates[0].date()}.parquet")
        lake.write_parquet(pd.concat([first, first.iloc[:2]]), *RAW_FOLDER, f"{dates[0].date()}.parquet")
    assert set(_cut(lake, settings, tmp_path)["cut"]) == {"cut from all 5 period files"}
    if change == "rewritten":  # a period ingested again (a correction)
        lake.write_parquet(_day(dates[1], rng), *RAW_FOLDER, f"{dates[1].date()}.parquet")
    elif change == "inserted":  # a period before the last one arrives late
        lake.write_parquet(_day(pd.Timestamp("2024-12-31"), rng), *RAW_FOLDER, "2024-12-31.parquet")
    elif change == "deleted":
        lake.delete(*RAW_FOLDER, f"{dates[2].date()}.parquet")
    elif change == "settings":
        settings = Settings(horizon=14)  # the short-series figure depends on it
    new = dates[-1] + pd.Timedelta(days=1)
    lake.write_parquet(_day(new, rng), *RAW_FOLDER, f"{new.date()}.parquet")
    quality = _cut(lake, settings, tmp_path)
    everything = f"cut from all {len(lake.list(*RAW_FOLDER))} period files"
    if change == "duplicates":  # only P1 had them; P2 is extended
        assert quality["cut"].to_dict() == {"P1": everything, "P2": "appended 1 new period file", "P3": everything}
    else:
        assert set(quality["cut"]) == {everything}
    _same_as_a_cut_from_every_file(lake, settings, quality, tmp_path)


def test_a_new_file_written_during_a_cut_waits_for_the_next_one(tmp_path, monkeypatch):
    """The scan reads exactly the files listed at the start: a file that lands meanwhile is new next time, and
    its rows are appended once, not twice."""
    from mm_assets.ingest import datasets as ds_module

    settings = Settings()
    lake = Lake(str(tmp_path / "lake"))
    dates = _history(lake)
    late = dates[-1] + pd.Timedelta(days=1)
    real = ds_module.spill_by_partition

    def spill_while_a_file_lands(dataset, keys, folder):
        if not lake.exists(*RAW_FOLDER, f"{late.date()}.parquet"):
            lake.write_parquet(_day(late, np.random.default_rng(1)), *RAW_FOLDER, f"{late.date()}.parquet")
        return real(dataset, keys, folder)

    monkeypatch.setattr(ds_module, "spill_by_partition", spill_while_a_file_lands)
    first = _cut(lake, settings, tmp_path)
    assert first["last_ds"].max() == dates[-1]
    monkeypatch.setattr(ds_module, "spill_by_partition", real)
    quality = _cut(lake, settings, tmp_path)
    assert quality.loc[["P1", "P2"], "cut"].tolist() == ["appended 1 new period file"] * 2
    assert quality["last_ds"].max() == late
    _same_as_a_cut_from_every_file(lake, settings, quality, tmp_path)


def test_a_damaged_previous_dataset_is_cut_again_from_every_file_and_says_so(tmp_path):
    settings = Settings()
    lake = Lake(str(tmp_path / "lake"))
    dates = _history(lake, days=6)
    _cut(lake, settings, tmp_path)
    path = Path(lake.path(dataset_file("P1")))
    data = bytearray(path.read_bytes())
    data[4:200] = b"\xff" * 196  # its data pages; the footer (at the end) still reads
    path.write_bytes(bytes(data))
    new = dates[-1] + pd.Timedelta(days=1)
    lake.write_parquet(_day(new, np.random.default_rng(2)), *RAW_FOLDER, f"{new.date()}.parquet")
    quality = _cut(lake, settings, tmp_path)
    assert quality.loc["P1", "cut"].startswith("cut from all 7 period files (the previous dataset could not be read:")
    assert quality.loc["P2", "cut"] == "appended 1 new period file"
    _same_as_a_cut_from_every_file(lake, settings, quality, tmp_path)
    # cut short, footer and all: the same full cut, and the same note
    path.write_bytes(path.read_bytes()[:100])
    quality = _cut(lake, settings, tmp_path)
    assert quality.loc["P1", "cut"] == ("cut from all 7 period files (the previous dataset could not be read: its "
                                        "footer cannot be read (cut short, or not Parquet))")
    _same_as_a_cut_from_every_file(lake, settings, quality, tmp_path)


def test_a_regressor_added_after_the_history_was_ingested_says_to_re_ingest_it(tmp_path):
    """The daily schedule ingests the newest period only: the older period files lack the new column, and the cut
    failed with pandas' KeyError for every store."""
    from mm_assets.ingest.datasets import DatasetsError

    lake = Lake(str(tmp_path / "lake"))
    dates = _history(lake)
    _cut(lake, Settings(), tmp_path)
    before = lake.signatures("datasets", suffix=".parquet")
    new = dates[-1] + pd.Timedelta(days=1)
    lake.write_parquet(_day(new, np.random.default_rng(1)).assign(feat=0.5), *RAW_FOLDER, f"{new.date()}.parquet")
    added = Settings.model_validate({"columns": {"regressors": ["price", "promo", "feat"]}})
    with pytest.raises(DatasetsError, match=r"lack the column feat that the settings now read .* Re-ingest every "
                                            r"period"):
        _cut(lake, added, tmp_path)
    assert lake.signatures("datasets", suffix=".parquet") == before


def test_a_store_wide_slip_of_the_newest_day_is_left_out_and_read_again_once_a_later_day_comes(tmp_path):
    """P1's newest day at ten times every series' usual sales (a ×10 slip of its feed): that day's rows are left out
    of its dataset (forecast from the day before) and the cut does not append to it. The next day P1 is as usual:
    the cut reads every file again and keeps the day (the sales may have been real), as a cut from every file."""
    settings = Settings()
    lake = Lake(str(tmp_path / "lake"))
    dates = _history(lake, days=40, seed=6)
    _cut(lake, settings, tmp_path)
    slip_day = dates[-1] + pd.Timedelta(days=1)
    slipped = _day(slip_day, np.random.default_rng(7))
    slipped = pd.concat([slipped[slipped[PARTITION_COLUMN] != "P1"], pd.DataFrame(  # every P1 series, about 10 x 4
        [{PARTITION_COLUMN: "P1", "store": "P1", "item": f"I{i}", "date": slip_day, "sales": 40.0 + i, "price": 2.0,
          "promo": 0.0} for i in range(4)])], ignore_index=True)
    lake.write_parquet(slipped, *RAW_FOLDER, f"{slip_day.date()}.parquet")
    quality = _cut(lake, settings, tmp_path)
    assert quality.loc["P1", "store_newest_level"] > 6 and quality.loc["P1", "store_newest_held_rows"] > 0
    assert quality.loc["P2", "store_newest_held_rows"] == 0
    assert lake.read_parquet(dataset_file("P1"))["ds"].max() == dates[-1]  # forecast from the day before
    assert lake.read_parquet(dataset_file("P2"))["ds"].max() == slip_day
    next_day = slip_day + pd.Timedelta(days=1)
    lake.write_parquet(_day(next_day, np.random.default_rng(8)), *RAW_FOLDER, f"{next_day.date()}.parquet")
    quality = _cut(lake, settings, tmp_path)
    assert quality.loc["P1", "cut"] == f"cut from all {len(dates) + 2} period files"
    assert quality.loc["P2", "cut"] == "appended 1 new period file"
    p1 = lake.read_parquet(dataset_file("P1"))
    assert (p1["ds"] == slip_day).sum() > 0 and p1["ds"].max() == next_day
    _same_as_a_cut_from_every_file(lake, settings, quality, tmp_path)


def test_a_dormant_series_is_kept_apart_and_comes_back_whole(tmp_path):
    """A series without a row for ``ingest.dormant_after`` periods leaves its store's dataset (not trained, scored
    or published: it would be forecast from its own last row, for periods past) but not the lake: the daily
    appends carry its rows in the dormant file, and its first new row brings it back with its whole history, as
    a cut from every file has it. A cut interrupted between the two files is cut again from every file."""
    settings = Settings.model_validate({"ingest": {"dormant_after": 3}})
    lake = Lake(str(tmp_path / "lake"))
    rng = np.random.default_rng(5)
    days = pd.date_range("2025-01-01", periods=10, freq="D")
    away = (days >= days[2]) & (days <= days[7])  # P1/I1 has no row on days 3..8

    def asleep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["store"] == "P1") & (frame["item"] == "I1")]

    history = None
    for n, day in enumerate(days):
        rows = _day(day, rng)
        if away[n]:
            rows = rows.drop(asleep(rows).index)
        elif n < 2:
            rows = pd.concat([rows.drop(asleep(rows).index),
                              pd.DataFrame([{PARTITION_COLUMN: "P1", "store": "P1", "item": "I1", "date": day,
                                             "sales": 5.0 + n, "price": 2.0, "promo": 0.0}])], ignore_index=True)
        lake.write_parquet(rows, *RAW_FOLDER, f"{day.date()}.parquet")
        quality = _cut(lake, settings, tmp_path)
        dataset = lake.read_parquet(dataset_file("P1"))
        in_dataset = (dataset["item"] == "I1").any()
        dormant_now = n >= 4 and away[n]  # its last row (day 2) 3 or more days before the store's newest
        assert int(quality.loc["P1", "series_dormant"]) == int(dormant_now), day
        assert in_dataset == (not dormant_now), day
        assert lake.exists(dormant_file("P1")) == dormant_now, day
        if dormant_now:
            kept = lake.read_parquet(dormant_file("P1"))
            assert kept["y"].tolist() == [5.0, 6.0]  # its history, in the lake
            assert quality.loc["P1", "series_dormant_examples"] == ["P1/I1 last 2025-01-02"]
            assert int(quality.loc["P1", "series_ending_early"]) == 0  # dormant, not warned of as ending early
            if n >= 5:
                assert quality.loc["P1", "cut"] == "appended 1 new period file"  # carried by the appends
        history = dataset
    assert history.loc[history["item"] == "I1", "y"].tolist()[:2] == [5.0, 6.0]  # back, with its first days
    _same_as_a_cut_from_every_file(lake, settings, _cut(lake, settings, tmp_path), tmp_path)


def test_a_cut_interrupted_between_the_dormant_file_and_the_dataset_is_cut_again_from_every_file(tmp_path):
    settings = Settings.model_validate({"ingest": {"dormant_after": 2}})
    lake = Lake(str(tmp_path / "lake"))
    rng = np.random.default_rng(6)
    days = pd.date_range("2025-01-01", periods=6, freq="D")
    for n, day in enumerate(days):
        rows = _day(day, rng)
        rows = rows[~((rows["store"] == "P2") & (rows["item"] == "I0"))]
        if n == 0:  # P2/I0 sells on the first day only
            rows = pd.concat([rows, pd.DataFrame([{PARTITION_COLUMN: "P2", "store": "P2", "item": "I0", "date": day,
                                                   "sales": 3.0, "price": 2.0, "promo": 0.0}])], ignore_index=True)
        lake.write_parquet(rows, *RAW_FOLDER, f"{day.date()}.parquet")
        if n == 4:
            _cut(lake, settings, tmp_path)
    assert lake.exists(dormant_file("P2"))
    lake.delete(dormant_file("P2"))  # as if the cut had stopped before it
    quality = _cut(lake, settings, tmp_path)
    assert quality.loc["P2", "cut"] == "cut from all 6 period files"
    assert quality.loc["P1", "cut"] == "appended 1 new period file"
    assert lake.read_parquet(dormant_file("P2"))["item"].unique().tolist() == ["I0"]
    _same_as_a_cut_from_every_file(lake, settings, quality, tmp_path)


def test_a_period_of_planned_rows_whose_sales_arrive_is_read_again_not_the_whole_history(tmp_path):
    """A source whose plan runs ahead of its sales ingests the day after its newest sale as planned rows; the next
    day that period has its sales. Every file up to the newest sale is unchanged, so the cut appends from there
    (the planned period read again) rather than reading every file of the history each day."""
    settings = Settings()
    lake = Lake(str(tmp_path / "lake"))
    rng = np.random.default_rng(5)
    dates = _history(lake, days=6)
    ahead = dates[-1] + pd.Timedelta(days=1)
    for day in range(3):
        planned = _day(ahead, rng).assign(sales=np.nan)  # the day after the newest sale: its plan only
        lake.write_parquet(planned, *RAW_FOLDER, f"{ahead.date()}.parquet")
        lake.write_parquet(_plan(ahead), *PLAN_FILE)
        quality = _cut(lake, settings, tmp_path)
        if day == 0:
            assert set(quality["cut"]) == {f"cut from all {len(lake.list(*RAW_FOLDER))} period files"}
        else:
            assert quality.loc[["P1", "P2"], "cut"].tolist() == [
                "appended 2 new period files (with the periods of planned rows after its newest sale, read again)"] * 2
        _same_as_a_cut_from_every_file(lake, settings, quality, tmp_path)
        # the next day: that period's sales have arrived, and the day after is planned
        lake.write_parquet(_day(ahead, rng), *RAW_FOLDER, f"{ahead.date()}.parquet")
        ahead = ahead + pd.Timedelta(days=1)
    assert lake.read_parquet(dataset_file("P1"))["ds"].max() == ahead - pd.Timedelta(days=1) + pd.Timedelta(days=3)
