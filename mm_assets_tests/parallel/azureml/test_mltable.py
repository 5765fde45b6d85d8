"""A batch staged as an MLTable folder partitioned by the id columns, and read back the way Azure ML reads it."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from mm_assets.lake import Lake
from mm_assets.parallel.azureml.mltable import (
    MLTABLE_FILE,
    StagingError,
    mltable_as_local_input,
    mltable_document,
    read_mltable,
    stage_mltable,
)
from mm_assets_tests.parallel.azureml.helpers import KEYS, write_store


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def test_one_folder_per_series_with_its_rows_and_no_id_columns(lake):
    files = [write_store(lake, "S1", ["I1", "I2"]), write_store(lake, "S2", ["I1"])]
    staged = stage_mltable(lake, files, KEYS, "azureml/b1/input")
    assert staged.total == 3 and staged.rows == 5 + 6 + 5
    assert list(staged.series["series_key"]) == ["S1/I1", "S1/I2", "S2/I1"]
    part = lake.read_parquet("azureml/b1/input/S1/I2/part.parquet")
    assert len(part) == 6 and "store" not in part.columns and "item" not in part.columns
    original = lake.read_parquet(files[0])
    expected = original[original["item"] == "I2"].drop(columns=KEYS).reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected)


def test_mltable_file_follows_the_partition_format_layout():
    doc = mltable_document(["store", "item"])
    assert doc["type"] == "mltable"
    assert doc["paths"] == [{"pattern": "./*/*/*.parquet"}]
    steps = [next(iter(s)) for s in doc["transformations"]]
    assert steps == ["read_parquet", "extract_columns_from_partition_format", "drop_columns"]
    fmt = doc["transformations"][1]["extract_columns_from_partition_format"]["partition_format"]
    assert fmt == "{store}/{item}/{file_name}.{extension}"


def test_staged_file_is_the_mltable_document(lake):
    staged = stage_mltable(lake, [write_store(lake, "S1", ["I1"])], KEYS, "azureml/b2/input")
    assert yaml.safe_load(lake.read_bytes(staged.folder, MLTABLE_FILE)) == mltable_document(KEYS)


def test_reading_the_folder_gives_the_rows_back_with_string_keys(lake):
    files = [write_store(lake, 7, [10, 20], int_ids=True)]
    staged = stage_mltable(lake, files, KEYS, "azureml/b3/input")
    back = read_mltable(lake, staged.folder).sort_values(["item", "ds"], ignore_index=True)
    assert set(back.columns) == {"store", "item", "ds", "y", "price"}  # Path, file_name, extension dropped
    assert {type(v) for v in back["store"]} == {str} and set(back["item"]) == {"10", "20"}
    original = lake.read_parquet(files[0]).astype({"store": str, "item": str})
    pd.testing.assert_frame_equal(back[original.columns], original, check_dtype=False)


def test_local_input_is_grouped_by_the_keys(lake):
    files = [write_store(lake, "S1", ["I2", "I1"])]  # written I2 first: the MLTable reader lists folders sorted
    staged = stage_mltable(lake, files, KEYS, "azureml/b4/input")
    path = mltable_as_local_input(lake, staged.folder, KEYS, "azureml/b4/local.parquet")
    frame = lake.read_parquet(path)
    assert list(dict.fromkeys(frame["item"])) == ["I1", "I2"]
    assert frame.groupby("item")["ds"].is_monotonic_increasing.all()


def test_restaging_replaces_an_earlier_attempt(lake):
    stage_mltable(lake, [write_store(lake, "S1", ["I1", "I2"])], KEYS, "azureml/b5/input")
    stage_mltable(lake, [write_store(lake, "S1", ["I1"])], KEYS, "azureml/b5/input")
    assert lake.list("azureml/b5/input/S1") == ["I1"]


def test_ids_an_azure_partition_path_cannot_carry_are_refused(lake):
    file = write_store(lake, "S1", ["50%off"])
    with pytest.raises(StagingError, match="S1/50%off.*'%'"):
        stage_mltable(lake, [file], KEYS, "azureml/b6/input")


def test_unsorted_input_and_series_in_two_files_are_refused(lake):
    frame = lake.read_parquet(write_store(lake, "S1", ["I1", "I2"]))
    lake.write_parquet(pd.concat([frame, frame.iloc[:2]]), "datasets", "bad.parquet")
    with pytest.raises(StagingError, match="not grouped"):
        stage_mltable(lake, ["datasets/bad.parquet"], KEYS, "azureml/b7/input")
    lake.write_parquet(frame, "datasets", "copy.parquet")
    with pytest.raises(StagingError, match="S1/I1 appears in more than one input file"):
        stage_mltable(lake, ["datasets/S1.parquet", "datasets/copy.parquet"], KEYS, "azureml/b8/input")


def test_rows_not_grouped_by_the_keys_are_refused_and_grouped_ones_in_any_order_are_staged(lake):
    """A series whose rows come back after another's would be split over two mini-batch slices: refused. Rows
    grouped but not sorted (I2 before I1) and numeric ids are staged, one slice per series."""
    rows = lake.read_parquet(write_store(lake, "S1", ["I1", "I2"]))
    lake.write_parquet(pd.concat([rows.iloc[:2], rows.iloc[5:], rows.iloc[2:5]], ignore_index=True),
                       "datasets", "returning.parquet")
    with pytest.raises(StagingError, match=r"returning.parquet: rows are not grouped by \['store', 'item'\]"):
        stage_mltable(lake, ["datasets/returning.parquet"], KEYS, "azureml/b7/input")
    staged = stage_mltable(lake, [write_store(lake, "S2", ["I2", "I1"]), write_store(lake, 3, [9, 4], int_ids=True)],
                           KEYS, "azureml/b8/input")
    assert staged.series[KEYS].values.tolist() == [["S2", "I2"], ["S2", "I1"], ["3", "9"], ["3", "4"]]
    assert staged.rows == 5 + 6 + 5 + 6


def test_chunks_by_a_group_column_keep_each_store_whole(lake):
    from mm_assets.parallel.azureml.mltable import CHUNK_KEY

    files = [write_store(lake, f"S{s}", [f"I{i}" for i in range(1, 6)]) for s in range(1, 9)]  # 8 stores x 5
    by_series = stage_mltable(lake, files, KEYS, "azureml/g1/input", series_per_chunk=4, max_mini_batches=10)
    split = by_series.series.groupby("store")[CHUNK_KEY].nunique()
    assert (split > 1).any()  # hash buckets of the series key scatter a store's products
    by_store = stage_mltable(lake, files, KEYS, "azureml/g2/input", series_per_chunk=4, max_mini_batches=10,
                             group_column="store")
    assert (by_store.series.groupby("store")[CHUNK_KEY].nunique() == 1).all()
    assert by_store.total == 40 and by_store.mini_batches > 1


def test_a_store_far_larger_than_a_chunk_is_staged_in_pieces_of_about_a_chunk(lake):
    from mm_assets.parallel.azureml.mltable import CHUNK_KEY

    files = [write_store(lake, "S1", [f"I{i:02d}" for i in range(40)]), write_store(lake, "S2", ["I1", "I2", "I3"])]
    staged = stage_mltable(lake, files, KEYS, "azureml/g3/input", series_per_chunk=4, max_mini_batches=50,
                           group_column="store")
    chunks = staged.series.groupby("store")[CHUNK_KEY].nunique()
    assert chunks["S2"] == 1  # within twice a chunk: whole
    assert chunks["S1"] > 4  # 40 series: pieces of about 4 (hash buckets may share a chunk)
    again = stage_mltable(lake, files, KEYS, "azureml/g4/input", series_per_chunk=4, max_mini_batches=50,
                          group_column="store")
    assert list(again.series[CHUNK_KEY]) == list(staged.series[CHUNK_KEY])  # stable
