"""Staging the whole batch of a global model: only the newest rows training reads travel to its one worker."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mm_assets.lake import Lake
from mm_assets.parallel.contract import WHOLE_BATCH_KEY, stage_whole_batch, training_window
from mm_assets.settings import Settings

DAY_NS = 86_400 * 10**9


def _store_file(lake: Lake, store: str) -> str:
    rows = []
    for item, days, observed_until in (("I1", 100, 95), ("I2", 30, 30), ("I3", 50, -1)):
        ds = pd.date_range("2024-01-01", periods=days, freq="D")
        y = np.where(np.arange(days) < observed_until, 1.0, np.nan)  # after it: planned rows (no target yet)
        rows.append(pd.DataFrame({"store": store, "item": item, "ds": ds, "y": y, "price": 2.0}))
    path = f"datasets/{store}.parquet"
    lake.write_parquet(pd.concat(rows, ignore_index=True), path)
    return path


def test_the_staged_batch_holds_each_series_newest_rows_and_its_planned_rows(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    files = [_store_file(lake, "S1"), _store_file(lake, "S2")]
    series = stage_whole_batch(lake, files, ["store", "item"], "staging/whole.parquet", (20, DAY_NS))
    staged = pq.read_table(lake.path("staging/whole.parquet")).to_pandas()
    assert series == 6 and set(staged[WHOLE_BATCH_KEY]) == {"all"}
    # the batch key is read back as a categorical: one byte a row in the worker's frame, not a string per row
    assert isinstance(staged[WHOLE_BATCH_KEY].dtype, pd.CategoricalDtype)
    assert staged[WHOLE_BATCH_KEY].memory_usage(deep=True, index=False) < 2 * len(staged) + 1000
    counts = staged.groupby(["store", "item"]).size()
    assert counts[("S1", "I1")] == 20 + 5  # 20 periods up to the newest target, then its 5 planned rows
    assert counts[("S1", "I2")] == 20
    assert counts[("S1", "I3")] == 50  # no target at all: every row (the model's own checks name the problem)
    first = staged[staged["item"] == "I1"].groupby("store")["ds"].min()
    assert (first == pd.Timestamp("2024-01-01") + pd.Timedelta(days=95 - 20)).all()
    whole = stage_whole_batch(lake, files, ["store", "item"], "staging/all.parquet")
    assert whole == 6 and pq.read_metadata(lake.path("staging/all.parquet")).num_rows == 2 * 180


def test_only_a_global_model_trains_on_a_window(tmp_path):
    base = {"source": {"url": f"sqlite:///{tmp_path}/s.db"}, "frequency": "W-MON", "horizon": 2, "gap": 1,
            "season_length": 52}
    assert training_window(Settings.model_validate({**base, "model": {"type": "linear"}})) is None
    periods, step = training_window(Settings.model_validate(
        {**base, "model": {"type": "lightgbm", "params": {"max_train_periods": 80}}}))
    assert step == 7 * DAY_NS and periods == 80 + 3 + 56  # + the holdout and lead, + a year and a lead of lags


def test_the_batch_counts_each_series_once_wherever_its_rows_are(tmp_path):
    """Series are counted from the first ids of each run of rows, then made distinct: a series whose rows are in
    two files, or come back within one, is one series."""
    lake = Lake(str(tmp_path / "lake"))
    first = _store_file(lake, "S1")
    rows = lake.read_parquet(first)
    lake.write_parquet(rows, "datasets/copy.parquet")  # the same three series again
    lake.write_parquet(pd.concat([rows.iloc[:10], rows.iloc[100:], rows.iloc[10:100]], ignore_index=True),
                       "datasets/returning.parquet")  # I1's rows split around the others'
    assert stage_whole_batch(lake, [first, "datasets/copy.parquet"], ["store", "item"], "staging/a.parquet") == 3
    assert stage_whole_batch(lake, ["datasets/returning.parquet"], ["store", "item"], "staging/b.parquet") == 3
    lake.write_parquet(rows.iloc[0:0], "datasets/empty.parquet")  # a store with no rows yet
    assert stage_whole_batch(lake, ["datasets/empty.parquet", first], ["store", "item"], "staging/c.parquet") == 3
    staged = pq.read_table(lake.path("staging/b.parquet"))
    assert staged.num_rows == len(rows) and staged.column(WHOLE_BATCH_KEY).unique().to_pylist() == ["all"]


def test_other_stores_rows_are_staged_marked_and_not_counted(tmp_path):
    """A small run's global model learns from other stores' datasets too: their rows follow the run's, marked in
    ``CONTEXT_COLUMN`` (what the entry script trains no model for), and the count is of the run's series."""
    from mm_assets.parallel.contract import CONTEXT_COLUMN

    lake = Lake(str(tmp_path / "lake"))
    own, other, gone = _store_file(lake, "S1"), _store_file(lake, "S2"), "datasets/S9.parquet"
    assert stage_whole_batch(lake, [own], ["store", "item"], "staging/w.parquet", None, [other, gone]) == 3
    staged = pq.read_table(lake.path("staging/w.parquet")).to_pandas()
    assert staged.groupby("store")[CONTEXT_COLUMN].agg(set).to_dict() == {"S1": {False}, "S2": {True}}
    assert list(staged["store"].unique()) == ["S1", "S2"] and len(staged) == 2 * 180
    # without other stores the batch is as before: no such column
    stage_whole_batch(lake, [own], ["store", "item"], "staging/v.parquet")
    assert CONTEXT_COLUMN not in pq.read_schema(lake.path("staging/v.parquet")).names
    # no dataset of the run's own: nothing staged to learn from, nothing to train
    assert stage_whole_batch(lake, [gone], ["store", "item"], "staging/u.parquet", None, [other]) == 0
    assert not lake.exists("staging/u.parquet")
