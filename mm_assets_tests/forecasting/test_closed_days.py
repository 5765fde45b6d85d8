"""Weekdays a daily series is closed on get forecasts of 0, not a day's typical sales."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.closed_days import closed_weekdays, zero_closed_days
from mm_assets.lake import Lake
from mm_assets.parallel.contract import SCORE_ENTRY, JobSpec
from mm_assets.parallel.local_runner import run_job
from mm_assets.settings import Settings

IDS = ["store", "item"]


def _rows(store: str, item: str, days: int = 120, closed: tuple[int, ...] = (), end: str = "2026-11-30",
          seed: int = 0) -> pd.DataFrame:
    ds = pd.date_range(end=end, periods=days, freq="D")
    ds = ds[~ds.day_of_week.isin(closed)]
    y = np.random.default_rng(seed).poisson(20, len(ds)).astype(float)
    return pd.DataFrame({"store": store, "item": item, "ds": ds, "y": y, "price": 2.0, "promo": 0.0})


def test_a_weekday_without_rows_in_the_newest_weeks_is_closed_and_others_are_not():
    rows = pd.concat([
        _rows("S1", "A", closed=(6,)),  # never on Sundays
        _rows("S1", "B"),  # every day
        _rows("S2", "new", days=20, closed=(6,)),  # three weeks old: too new to tell
        _rows("S2", "feed", closed=(1, 3, 5)),  # three weekdays missing: a feed, not a closing day
        _rows("S2", "sunday_off_lately", closed=()).pipe(lambda f: f[~((f["ds"].dt.day_of_week == 6)
                                                                          & (f["ds"] > "2026-09-01"))]),
    ], ignore_index=True)
    closed = closed_weekdays(rows, IDS)
    assert sorted(map(tuple, closed[["series_key", "weekday"]].to_numpy().tolist())) == [
        ("S1/A", 6), ("S2/sunday_off_lately", 6)]
    assert not closed["from_store"].any()


@pytest.mark.parametrize("plan_days", [0, 7, 14, 28])
def test_the_weeks_are_the_newest_with_sales_whatever_the_length_of_the_plan(plan_days):
    """The plan's rows (no target) after the newest sale do not move the weeks judged: a 14-day plan left no
    series spanning them, and a store closed on Sundays was forecast its Sundays (a trial: a sixth too much)."""
    rows = pd.concat([_rows("S1", "A", closed=(6,)), _rows("S1", "B", closed=(6,), seed=1)], ignore_index=True)
    plan = pd.DataFrame({"store": "S1", "item": "A", "ds": pd.date_range("2026-12-01", periods=plan_days, freq="D"),
                         "y": np.nan, "price": 1.5, "promo": 1.0})
    closed = closed_weekdays(pd.concat([rows, plan], ignore_index=True), IDS, store_column="store")
    assert sorted(map(tuple, closed[["series_key", "weekday"]].to_numpy().tolist())) == [("S1/A", 6), ("S1/B", 6)]


def test_a_new_product_takes_its_stores_closed_weekdays_where_it_has_no_row_itself():
    """Three weeks old, it cannot tell its closing days, but most of its store's series can: a store closed on
    Sundays closes them on its new product too (forecast above its weekdays before). A new product that did sell
    on Sundays keeps them; a store where only some series miss Sundays, or too few to tell, passes nothing on."""
    rows = pd.concat([
        *(_rows("S1", f"old{i}", closed=(6,), seed=i) for i in range(4)),
        _rows("S1", "open", seed=9),  # one old series open every day: the store closes on Sundays still (4 of 5)
        _rows("S1", "new", days=20, closed=(6,)),
        _rows("S1", "new_on_sundays", days=20),
        *(_rows("S2", f"old{i}", closed=(6,) if i < 2 else (), seed=i) for i in range(5)),  # 2 of 5: not most
        _rows("S2", "new", days=20, closed=(6,)),
        *(_rows("S3", f"old{i}", closed=(6,), seed=i) for i in range(2)),  # 2: too few to tell
        _rows("S3", "new", days=20, closed=(6,)),
    ], ignore_index=True)
    closed = closed_weekdays(rows, IDS, store_column="store")
    got = {(k, d, f) for k, d, f in closed[["series_key", "weekday", "from_store"]].itertuples(index=False)}
    assert got == {*((f"S1/old{i}", 6, False) for i in range(4)), ("S1/new", 6, True),
                   ("S2/old0", 6, False), ("S2/old1", 6, False), ("S3/old0", 6, False), ("S3/old1", 6, False)}
    assert set(closed_weekdays(rows, IDS)["series_key"]) == {k for k, _, taken in got if not taken}  # no store
    ds = pd.date_range("2026-12-01", periods=7, freq="D")
    out = zero_closed_days(pd.DataFrame({"series_key": "S1/new", "ds": ds, "yhat": 5.0, "note": None}), closed)
    assert out.loc[out["ds"].dt.day_of_week == 6, "note"].iloc[0] == (
        "closed on Sun (no row in its store's other series' newest 8 weeks, nor in its own): forecast 0 there")


def test_closed_days_are_forecast_zero_with_a_note():
    ds = pd.date_range("2026-12-01", periods=14, freq="D")
    forecasts = pd.DataFrame({"series_key": np.repeat(["S1/A", "S1/B"], 14), "ds": np.tile(ds, 2), "yhat": 20.0,
                              "baseline_yhat": 19.0, "note": [None] * 14 + ["kept"] * 14})
    closed = pd.DataFrame({"series_key": ["S1/A", "S1/B"], "weekday": [6, 6]})
    out = zero_closed_days(forecasts, closed)
    sunday = out["ds"].dt.day_of_week == 6
    assert (out.loc[sunday, ["yhat", "baseline_yhat"]] == 0).all().all() and sunday.sum() == 4
    assert (out.loc[~sunday, "yhat"] == 20).all() and out.loc[~sunday, "note"].isna().tolist()[:2] == [True, True]
    notes = out.loc[sunday, "note"].tolist()
    assert notes[0].startswith("closed on Sun") and notes[-1].startswith("kept; closed on Sun")
    assert zero_closed_days(forecasts, closed.iloc[0:0]) is forecasts


@pytest.mark.parametrize("multi_series", [False, True])
def test_batch_scoring_forecasts_a_store_closed_on_sundays_at_zero_there(tmp_path, multi_series):
    """Through the scoring entry script (one series per mini-batch, or a store's series together): the store
    without Sunday rows is forecast 0 on Sundays, the one open every day is not."""
    lake = Lake(str(tmp_path / "lake"))
    frame = pd.concat([_rows("S1", "A", closed=(6,), seed=1), _rows("S1", "B", seed=2)], ignore_index=True)
    lake.write_parquet(frame.sort_values(IDS + ["ds"], ignore_index=True), "datasets", "S1.parquet")
    lake.write_parquet(pd.DataFrame({"series_key": pd.Series(dtype=str), "model_type": pd.Series(dtype=str),
                                     "artifact_uri": pd.Series(dtype=str), "version": pd.Series(dtype="int64"),
                                     "artifact_offset": pd.Series(dtype="int64"),
                                     "artifact_size": pd.Series(dtype="int64")}), "manifests", "m.parquet")
    settings = Settings(horizon=14)
    spec = JobSpec(entry_script=SCORE_ENTRY, arguments=["--settings-json", settings.model_dump_json(), "--lake-uri",
                                                         lake.uri, "--run-id", "r1", "--manifest", "manifests/m.parquet"],
                   lake_uri=lake.uri, input_files=["datasets/S1.parquet"], partition_keys=IDS, max_concurrency=1,
                   multi_series=multi_series, series_per_minibatch=2, series_per_task=2, mini_batch_timeout_s=120)
    rows = run_job(spec).rows
    sunday = pd.to_datetime(rows["ds"]).dt.day_of_week == 6
    closed = rows["series_key"] == "S1/A"
    assert (rows.loc[closed & sunday, "yhat"] == 0).all() and (closed & sunday).sum() == 2
    assert (rows.loc[closed & ~sunday, "yhat"] > 5).all() and (rows.loc[~closed, "yhat"] > 5).all()
    assert rows.loc[closed & sunday, "note"].str.contains("closed on Sun").all()
    from mm_assets.forecasting.closed_days import series_closed_days

    assert series_closed_days(rows) == 1  # the figure batch_predictions' partition metadata shows
