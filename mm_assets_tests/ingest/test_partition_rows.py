"""Rows per store partition, which size the runs of a cycle: a dataset's footer, else the raw period files."""

from __future__ import annotations

import pandas as pd

from mm_assets.ingest.datasets import dataset_file
from mm_assets.ingest.partition_rows import partition_rows, runs_by_rows
from mm_assets.ingest.periods import RAW_FOLDER
from mm_assets.ingest.validation import PARTITION_COLUMN
from mm_assets.lake import Lake


def _raw(lake: Lake, day: str, counts: dict[str, int]) -> None:
    keys = [k for k, n in counts.items() for _ in range(n)]
    frame = pd.DataFrame({"date": pd.Timestamp(day), "store": keys, "sales": 1.0, PARTITION_COLUMN: keys})
    lake.write_parquet(frame, *RAW_FOLDER, f"{day}.parquet")


def test_rows_come_from_the_datasets_else_from_the_raw_files(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    assert partition_rows(lake, ["S1"]) == {"S1": 0}  # nothing ingested yet
    _raw(lake, "2026-01-01", {"S1": 3, "S2": 2})
    _raw(lake, "2026-01-02", {"S1": 4, "S3": 1})
    assert partition_rows(lake, ["S1", "S2", "S3", "S9"]) == {"S1": 7, "S2": 2, "S3": 1, "S9": 0}
    # a cut dataset's footer counts (its rows, absent periods filled, not the raw ones), no raw file read for it
    lake.write_parquet(pd.DataFrame({"y": range(50)}), dataset_file("S1"))
    assert partition_rows(lake, ["S1", "S2"]) == {"S1": 50, "S2": 2}
    # an unreadable dataset is counted from the raw files
    lake.write_bytes(b"not parquet", dataset_file("S2"))
    assert partition_rows(lake, ["S1", "S2"]) == {"S1": 50, "S2": 2}


def test_runs_hold_partitions_while_their_rows_fit():
    rows = {"a": 6, "b": 5, "c": 20, "d": 1}
    assert runs_by_rows(["a", "b", "c", "d"], rows, max_partitions=10, max_rows=10) == [["a"], ["b"], ["c"], ["d"]]
    assert runs_by_rows(["a", "b", "c", "d"], rows, max_partitions=10, max_rows=11) == [["a", "b"], ["c"], ["d"]]
    assert runs_by_rows(["a", "b", "d"], rows, max_partitions=2, max_rows=100) == [["a", "b"], ["d"]]
    assert runs_by_rows([], rows, max_partitions=2, max_rows=100) == []


def test_a_small_run_learns_from_whole_other_stores_in_order_while_their_rows_fit(tmp_path):
    from mm_assets.ingest.partition_rows import context_partitions

    lake = Lake(str(tmp_path / "lake"))
    for key, n in {"A": 10, "B": 30, "C": 50, "D": 5, "E": 0}.items():
        lake.write_parquet(pd.DataFrame({"y": range(n)}), dataset_file(key))
    stores = ["A", "B", "C", "D", "E", "F"]  # F: no dataset yet
    assert context_partitions(lake, ["A"], stores, 100) == ["B", "C", "D"]  # 10 + 30 + 50 + 5
    assert context_partitions(lake, ["A"], stores, 50) == ["B", "D"]  # C does not fit; D after it does
    assert context_partitions(lake, ["C"], stores, 50) == []  # the run alone reaches the budget
    assert context_partitions(lake, ["A", "B"], stores, 60) == ["D"]  # the run's own are never its context
    assert context_partitions(lake, ["A"], stores, 0) == []


def test_a_dataset_counts_the_rows_a_global_model_trains_on(tmp_path):
    """A store's rows, for sizing runs, are those a global model's training reads: each series' newest
    ``training_window_of`` periods (1,152 days of a daily series) and its planned rows, as its dataset recorded when
    it was cut. Counted over every row, 10,000 daily series of 4,000 days made two global models where one fits."""
    from mm_assets.ingest.datasets import TRAINING_ROWS_KEY, training_window_of, training_window_rows
    from mm_assets.settings import Settings

    settings = Settings.model_validate({"model": {"type": "lightgbm"}})
    periods, step = training_window_of(settings)
    assert (periods, step) == (1_152, pd.Timedelta(days=1).value)
    days = pd.date_range("2015-01-01", periods=2_000, freq="D")
    long = pd.DataFrame({"store": "S1", "item": "I1", "ds": days, "y": 1.0})
    short = pd.DataFrame({"store": "S1", "item": "I2", "ds": days[-100:], "y": 1.0})
    plan = pd.DataFrame({"store": "S1", "item": "I2", "ds": days[-1] + pd.to_timedelta(range(1, 8), "D"), "y": None})
    part = pd.concat([long, short, plan], ignore_index=True)
    assert training_window_rows(part, settings, (periods, step)) == 1_152 + 100 + 7
    assert training_window_of(Settings.model_validate({"model": {"type": "linear"}})) == (periods, step)

    lake = Lake(str(tmp_path / "lake"))
    lake.write_parquet(part, dataset_file("S1"), metadata={TRAINING_ROWS_KEY: "1259"})
    lake.write_parquet(part, dataset_file("S2"))  # cut before the count was recorded: every row
    lake.write_parquet(part, dataset_file("S3"), metadata={TRAINING_ROWS_KEY: "many"})  # edited: every row
    assert partition_rows(lake, ["S1", "S2", "S3"]) == {"S1": 1_259, "S2": len(part), "S3": len(part)}
