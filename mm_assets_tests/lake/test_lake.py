"""Tests of mm_assets.lake.Lake on a local folder and on an fsspec memory:// filesystem."""

from __future__ import annotations

import posixpath
import uuid

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mm_assets.lake.lake as lake_module
from mm_assets.lake import Lake, LakePathError


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def memory_lake():
    name = f"mmtest-{uuid.uuid4().hex}"
    the_lake = Lake(f"memory://{name}")
    yield the_lake
    fs = fsspec.filesystem("memory")
    if fs.exists(the_lake.root):
        fs.rm(the_lake.root, recursive=True)


def _frame(n: int = 20, seed: int = 0, store: str = "S01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "store": [store] * n,
            "item": [f"I{i % 4}" for i in range(n)],
            "ds": pd.date_range("2024-01-01", periods=n, freq="D"),
            "y": rng.poisson(10, size=n).astype(float),
            "price": rng.uniform(1, 3, size=n),
        }
    )


def _all_names(the_lake: Lake, *parts: str) -> list[str]:
    """Every name in a folder, dot-files included (Lake.list hides them)."""
    return sorted(posixpath.basename(p.rstrip("/")) for p in the_lake.fs.ls(the_lake.path(*parts), detail=False))


# ---- construction and paths ----------------------------------------------------------------------------


def test_local_lake_creates_its_root(tmp_path):
    root = tmp_path / "new" / "lake"
    the_lake = Lake(str(root))
    assert root.is_dir()
    assert the_lake.is_local
    assert the_lake.root == str(root)


def test_trailing_slash_is_ignored(tmp_path):
    the_lake = Lake(str(tmp_path / "lake") + "/")
    assert the_lake.root == str(tmp_path / "lake")
    assert the_lake.path("a") == str(tmp_path / "lake" / "a")


def test_path_joins_segments_under_root(lake):
    assert lake.path("datasets", "S01.parquet") == f"{lake.root}/datasets/S01.parquet"
    assert lake.path("models/S01", "run 1", "w0.bin") == f"{lake.root}/models/S01/run 1/w0.bin"
    assert lake.path("a.b") == f"{lake.root}/a.b"
    assert lake.path() == lake.root


@pytest.mark.parametrize(
    "parts",
    [
        ("..",),
        ("a", ".."),
        ("a/../b",),
        ("../../etc/passwd",),
        ("/etc",),  # absolute-looking part: empty first segment
        ("a", "/etc/passwd"),
        ("a//b",),
        ("a/",),
        ("a\\..\\b",),
        ("C:\\Windows",),
        (".",),
        ("",),
        ("a\x00b",),
    ],
)
def test_path_rejects_escaping_or_unsafe_segments(lake, parts):
    with pytest.raises(LakePathError):
        lake.path(*parts)


def test_lake_path_error_is_a_value_error():
    assert issubclass(LakePathError, ValueError)


def test_every_path_call_is_validated(lake):
    for call in (lake.exists, lake.read_bytes, lake.list, lake.delete, lake.full_uri, lake.read_table):
        with pytest.raises(LakePathError):
            call("..", "x")
    with pytest.raises(LakePathError):
        lake.write_bytes(b"x", "..", "escape.bin")
    with pytest.raises(LakePathError):
        lake.write_parquet(_frame(), "a/../../escape.parquet")
    assert not (lake.fs.exists(posixpath.join(posixpath.dirname(lake.root), "escape.bin")))


# ---- bytes ---------------------------------------------------------------------------------------------


def test_write_and_read_bytes(lake):
    path = lake.write_bytes(b"hello", "models", "S01", "bundle.bin")
    assert path == lake.path("models", "S01", "bundle.bin")
    assert lake.exists("models", "S01", "bundle.bin")
    assert lake.read_bytes("models", "S01", "bundle.bin") == b"hello"
    lake.write_bytes(b"replaced", "models", "S01", "bundle.bin")
    assert lake.read_bytes("models", "S01", "bundle.bin") == b"replaced"


def test_byte_range_reads(lake):
    path = lake.write_bytes(bytes(range(100)), "m.bin")
    assert lake.fs.cat_file(path, start=10, end=15) == bytes([10, 11, 12, 13, 14])
    assert lake.fs.cat_file(path, start=0, end=1) == b"\x00"
    assert lake.fs.cat_file(path, start=95, end=100) == bytes(range(95, 100))


def test_delete(lake):
    lake.write_bytes(b"x", "a", "f.bin")
    lake.write_bytes(b"y", "a", "g.bin")
    lake.delete("a", "f.bin")
    assert not lake.exists("a", "f.bin")
    assert lake.exists("a", "g.bin")
    lake.delete("a", "missing.bin")  # no error
    lake.delete("a", recursive=True)
    assert not lake.exists("a")


# ---- parquet -------------------------------------------------------------------------------------------


def test_parquet_round_trip(lake):
    frame = _frame()
    path = lake.write_parquet(frame, "datasets", "S01.parquet")
    assert path == lake.path("datasets", "S01.parquet")
    back = lake.read_parquet("datasets", "S01.parquet")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert pd.api.types.is_datetime64_any_dtype(back["ds"])


def test_parquet_round_trip_of_an_arrow_table_with_columns_and_filters(lake):
    frame = _frame(n=12)
    lake.write_parquet(pa.Table.from_pandas(frame, preserve_index=False), "datasets", "S01.parquet")
    back = lake.read_parquet("datasets", "S01.parquet", columns=["item", "y"], filters=[("item", "=", "I1")])
    expected = frame.loc[frame["item"] == "I1", ["item", "y"]].reset_index(drop=True)
    assert list(back.columns) == ["item", "y"]
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)


def test_write_parquet_does_not_store_the_pandas_index(lake):
    frame = _frame(n=5).set_index("ds")
    lake.write_parquet(frame, "x.parquet")
    back = lake.read_parquet("x.parquet")
    assert "ds" not in back.columns
    assert "__index_level_0__" not in back.columns
    assert len(back) == 5


def test_read_table_of_a_folder_with_filters(lake):
    days = pd.date_range("2024-01-01", periods=3, freq="D")
    frames = []
    for i, day in enumerate(days):
        part = pd.DataFrame(
            {"store": ["S01", "S02"], "item": ["I1", "I1"], "ds": [day, day], "y": [float(i), float(10 + i)]}
        )
        frames.append(part)
        lake.write_parquet(part, "raw", "sales", f"{day.date()}.parquet")
    # files that must be ignored: a hidden temp file and a non-parquet file
    lake.fs.pipe_file(lake.path("raw", "sales") + "/.tmp.parquet", b"garbage, not parquet")
    lake.write_bytes(b"notes", "raw", "sales", "README.txt")

    table = lake.read_table("raw", "sales")
    assert table.num_rows == 6
    got = table.to_pandas().sort_values(["ds", "store"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, pd.concat(frames, ignore_index=True), check_dtype=False)

    only = lake.read_parquet("raw", "sales", filters=[("store", "=", "S02")], columns=["ds", "y"])
    assert sorted(only["y"].tolist()) == [10.0, 11.0, 12.0]
    later = lake.read_parquet("raw", "sales", filters=[("ds", ">=", pd.Timestamp("2024-01-02"))])
    assert len(later) == 4


def test_read_table_of_an_empty_folder_raises(lake):
    lake.write_bytes(b"x", "empty", "not-parquet.txt")
    with pytest.raises(FileNotFoundError):
        lake.read_table("empty")


def test_failed_parquet_write_leaves_the_old_file_and_no_temp_file(lake, monkeypatch):
    old = _frame(seed=1)
    lake.write_parquet(old, "datasets", "S01.parquet")
    real_write_table = pq.write_table
    seen: list[str] = []

    def failing_write_table(table, where, *args, **kwargs):
        seen.append(where)
        real_write_table(table.slice(0, 1), where, *args, **kwargs)  # the temp file now exists
        raise OSError("disk full")

    monkeypatch.setattr(lake_module.pq, "write_table", failing_write_table)
    with pytest.raises(OSError, match="disk full"):
        lake.write_parquet(_frame(seed=2), "datasets", "S01.parquet")
    monkeypatch.undo()

    assert len(seen) == 1
    assert seen[0] != lake.path("datasets", "S01.parquet")  # written to a temp path, not in place
    assert posixpath.dirname(seen[0]) == lake.path("datasets")
    assert not lake.fs.exists(seen[0])
    assert _all_names(lake, "datasets") == ["S01.parquet"]
    pd.testing.assert_frame_equal(lake.read_parquet("datasets", "S01.parquet"), old, check_dtype=False)


def test_failed_bytes_write_leaves_the_old_file_and_no_temp_file(lake, monkeypatch):
    lake.write_bytes(b"good", "m", "bundle.bin")
    real_pipe = lake.fs.pipe_file

    def failing_pipe(path, data, *args, **kwargs):
        real_pipe(path, data[:1], *args, **kwargs)
        raise OSError("connection lost")

    monkeypatch.setattr(lake.fs, "pipe_file", failing_pipe)
    with pytest.raises(OSError, match="connection lost"):
        lake.write_bytes(b"new content", "m", "bundle.bin")
    monkeypatch.undo()
    assert lake.read_bytes("m", "bundle.bin") == b"good"
    assert _all_names(lake, "m") == ["bundle.bin"]


def test_successful_write_leaves_no_temp_file(lake):
    lake.write_parquet(_frame(), "d", "a.parquet")
    lake.write_parquet(_frame(seed=3), "d", "a.parquet")
    lake.write_bytes(b"x", "d", "b.bin")
    assert _all_names(lake, "d") == ["a.parquet", "b.bin"]


# ---- listing -------------------------------------------------------------------------------------------


def test_list_with_suffix_ignores_dot_files(lake):
    lake.write_bytes(b"1", "datasets", "S02.parquet")
    lake.write_bytes(b"1", "datasets", "S01.parquet")
    lake.write_bytes(b"1", "datasets", "notes.txt")
    lake.fs.pipe_file(lake.path("datasets") + "/.S03.parquet.abc.tmp", b"1")
    lake.fs.pipe_file(lake.path("datasets") + "/.hidden.parquet", b"1")
    lake.write_bytes(b"1", "datasets", "sub", "inner.parquet")

    assert lake.list("datasets", suffix=".parquet") == ["S01.parquet", "S02.parquet"]
    assert lake.list("datasets") == ["S01.parquet", "S02.parquet", "notes.txt", "sub"]
    assert lake.list("datasets", "sub") == ["inner.parquet"]


def test_list_of_a_missing_folder_is_empty(lake):
    assert lake.list("nothing", "here") == []


# ---- URIs ----------------------------------------------------------------------------------------------


def test_full_uri_and_relative_round_trip_local(lake):
    uri = lake.full_uri("models", "S01", "run1", "w0.bin")
    assert uri == lake.path("models", "S01", "run1", "w0.bin")  # local: a plain path
    assert lake.relative(uri) == "models/S01/run1/w0.bin"
    assert lake.relative("file://" + uri) == "models/S01/run1/w0.bin"


def test_relative_rejects_paths_outside_the_lake(lake, tmp_path):
    with pytest.raises(LakePathError):
        lake.relative(str(tmp_path / "elsewhere" / "x.bin"))
    with pytest.raises(LakePathError):
        lake.relative(lake.root + "-sibling/x.bin")  # shares the root as a string prefix only


def test_file_uri_lake_is_local(tmp_path):
    the_lake = Lake("file://" + str(tmp_path / "flake"))
    assert the_lake.is_local
    the_lake.write_bytes(b"abc", "a.bin")
    assert (tmp_path / "flake" / "a.bin").read_bytes() == b"abc"


# ---- a non-local (memory://) lake ----------------------------------------------------------------------


def test_memory_lake_round_trip(memory_lake):
    assert not memory_lake.is_local
    assert memory_lake.protocol == "memory"
    frame = _frame()
    memory_lake.write_parquet(frame, "datasets", "S01.parquet")
    memory_lake.write_parquet(_frame(store="S02"), "datasets", "S02.parquet")
    assert memory_lake.exists("datasets", "S01.parquet")
    assert memory_lake.list("datasets", suffix=".parquet") == ["S01.parquet", "S02.parquet"]
    pd.testing.assert_frame_equal(memory_lake.read_parquet("datasets", "S01.parquet"), frame, check_dtype=False)

    both = memory_lake.read_parquet("datasets", filters=[("store", "=", "S02")])
    assert len(both) == 20
    assert set(both["store"]) == {"S02"}
    assert memory_lake.read_table("datasets").num_rows == 40


def test_memory_lake_bytes_range_and_uri(memory_lake):
    path = memory_lake.write_bytes(b"0123456789", "models", "S01", "bundle.bin")
    assert memory_lake.fs.cat_file(path, start=3, end=6) == b"345"
    uri = memory_lake.full_uri("models", "S01", "bundle.bin")
    assert uri.startswith("memory://")
    assert memory_lake.relative(uri) == "models/S01/bundle.bin"
    # the URI alone is enough to read the object back (what the registry relies on)
    with fsspec.open(uri, "rb") as fh:
        assert fh.read() == b"0123456789"
    memory_lake.delete("models", recursive=True)
    assert memory_lake.list("models") == []


def test_memory_lake_rejects_escaping_paths(memory_lake):
    with pytest.raises(LakePathError):
        memory_lake.write_bytes(b"x", "..", "other-lake", "x.bin")


def test_a_copy_that_keeps_its_times_keeps_its_signatures_and_a_rewrite_does_not(tmp_path):
    """A lake restored with ``cp -a`` is the same lake: with the inode in the stamp, every dataset read as
    re-cut and every online answer left the published forecast, with a note saying it was not there."""
    import os
    import shutil

    lake = Lake(str(tmp_path / "a"))
    lake.write_parquet(pd.DataFrame({"x": [1, 2]}), "datasets", "S1.parquet")
    shutil.copytree(tmp_path / "a", tmp_path / "b", copy_function=shutil.copy2)
    restored = Lake(str(tmp_path / "b"))
    assert restored.signatures("datasets") == lake.signatures("datasets")
    path = tmp_path / "b" / "datasets" / "S1.parquet"
    stat = path.stat()
    restored.write_parquet(pd.DataFrame({"x": [3, 4]}), "datasets", "S1.parquet")  # same size, new content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert restored.signatures("datasets") != lake.signatures("datasets")


def test_a_stamp_recorded_with_the_inode_still_names_its_file():
    """Published forecasts name the dataset they were scored from; those of versions that kept the inode in the
    stamp (``size:mtime:inode``) were all read as made from another dataset after an upgrade, and every global
    model's series was forecast alone until the next batch run."""
    from mm_assets.lake.lake import same_stamp

    assert same_stamp("1234:1733338817.5", "1234:1733338817.5")
    assert same_stamp("1234:1733338817.5:998877", "1234:1733338817.5")
    assert not same_stamp("1234:1733338817.5:998877", "1234:1733338999.0")
    assert not same_stamp("1234:1733338817.5", "1234:1733338817.5:998877")
    assert not same_stamp("1234:1733338817.5:998877:1", "1234:1733338817.5")
    azure = '55:"0x8DC":2026-12-04 20:00:17+00:00'
    assert same_stamp(azure, azure) and not same_stamp(azure, '55:"0x8DD":2026-12-04 20:00:17+00:00')
