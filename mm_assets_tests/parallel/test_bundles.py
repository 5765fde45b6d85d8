"""Reading models out of bundle files: each file read once while its models are in use, and a global model
unpickled once however many series point at it, even when two days' global models take turns."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mm_assets.lake import Lake
from mm_assets.parallel.bundles import SHARED_MODEL_BYTES, BundleCache, BundleError


def _bundle(lake: Lake, name: str, models: list) -> tuple[str, list[tuple[int, int]]]:
    blobs = [pickle.dumps(m) for m in models]
    spans, offset = [], 0
    for blob in blobs:
        spans.append((offset, len(blob)))
        offset += len(blob)
    lake.write_bytes(b"".join(blobs), "models", name)
    return lake.full_uri("models", name), spans


class CountingReads:
    def __init__(self, fs):
        self.fs, self.reads = fs, []

    def cat_file(self, path, start=None, end=None):
        self.reads.append((path.rsplit("/", 1)[1], start, end))
        return self.fs.cat_file(path, start=start, end=end)


def test_two_global_models_taking_turns_are_read_once_each_not_once_a_turn(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    big = SHARED_MODEL_BYTES * 2
    day1, (span1,) = _bundle(lake, "day1.bin", [np.arange(big // 8, dtype=np.float64)])
    day2, (span2,) = _bundle(lake, "day2.bin", [np.arange(big // 8, dtype=np.float64) + 1])
    cache = BundleCache(lake, max_bytes=big)  # room for one file's bytes: two would evict each other
    cache.lake.fs = counting = CountingReads(lake.fs)
    for _ in range(50):  # series of yesterday's and today's champion in turn, as a scoring task meets them
        first, second = cache.model(day1, *span1), cache.model(day2, *span2)
    assert first[1] == 1.0 and second[1] == 2.0
    assert counting.reads == [("day1.bin", 0, span1[1]), ("day2.bin", 0, span2[1])]
    assert cache.bytes == 0  # their bytes are not kept: the unpickled models are


def test_small_models_share_their_files_bytes_and_a_cut_global_model_is_named(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    uri, spans = _bundle(lake, "series.bin", [{"series": k} for k in range(5)])
    cache = BundleCache(lake)
    cache.lake.fs = counting = CountingReads(lake.fs)
    assert [cache.model(uri, *span)["series"] for span in spans] == list(range(5))
    assert counting.reads == [("series.bin", None, None)]  # the file once for its five models
    lake = Lake(str(tmp_path / "lake"))
    big, (span,) = _bundle(lake, "global.bin", [np.zeros(SHARED_MODEL_BYTES, dtype=np.float64)])
    path = lake.path("models", "global.bin")
    with open(path, "r+b") as handle:
        handle.truncate(span[1] // 2)
    with pytest.raises(BundleError, match=r"is cut off: the file ends before byte .*\(a truncated file\)"):
        BundleCache(lake).model(big, *span)
    with pytest.raises(BundleError, match="does not exist"):
        BundleCache(lake).model(big.replace("global.bin", "gone.bin"), *span)


def test_a_model_of_a_lake_that_was_moved_is_an_unreadable_bundle_naming_the_setting(tmp_path):
    """The registries keep each model's full address: after the lake's folder moved, the gate failed for every
    series with a champion (LakePathError) instead of judging its challenger without it, as for a lost file."""
    import shutil

    old = Lake(str(tmp_path / "lake"))
    uri, spans = _bundle(old, "series.bin", [{"series": 1}])
    shutil.move(str(tmp_path / "lake"), str(tmp_path / "moved"))
    with pytest.raises(BundleError, match=r"is not in the lake .*moved \(storage.lake\): a lake moved or renamed"):
        BundleCache(Lake(str(tmp_path / "moved"))).model(uri, *spans[0])
