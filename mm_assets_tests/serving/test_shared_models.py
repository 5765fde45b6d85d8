"""The store of global models: unpickled once, least recently used dropped beyond the byte budget."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

from mm_assets.serving.shared_models import SharedModels


def reader(value, reads: list):
    blob = pickle.dumps(value)

    def read() -> bytes:
        reads.append(value)
        return blob

    return read, len(blob)


def test_models_are_read_once_and_dropped_least_recently_used_beyond_the_budget():
    reads: list = []
    read_a, size = reader(["a"] * 100, reads)
    read_b, _ = reader(["b"] * 100, reads)
    read_c, _ = reader(["c"] * 100, reads)
    models = SharedModels(max_bytes=2 * size)
    assert models.get("a", read_a)[0] == "a" and models.get("b", read_b)[0] == "b"
    assert models.get("a", read_a)[0] == "a" and reads == [["a"] * 100, ["b"] * 100]  # a kept
    models.get("c", read_c)  # over the budget: b, the least recently used, is dropped
    assert len(models) == 2 and models.bytes == 2 * size
    models.get("a", read_a)
    assert len(reads) == 3
    models.get("b", read_b)
    assert len(reads) == 4 and models.loads == 4


def test_the_newest_model_is_kept_whatever_its_size():
    reads: list = []
    read_a, _ = reader(list(range(1000)), reads)
    models = SharedModels(max_bytes=1)
    models.get("a", read_a)
    models.get("a", read_a)
    assert len(models) == 1 and len(reads) == 1


def test_threads_asking_for_one_model_unpickle_it_once():
    reads: list = []
    read_a, _ = reader(list(range(10_000)), reads)
    models = SharedModels(max_bytes=10**9)
    barrier = threading.Barrier(8)

    def ask(_):
        barrier.wait()  # all eight ask at once
        return models.get("a", read_a)

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(ask, range(8)))
    assert len(reads) == 1 and models.loads == 1 and all(g is got[0] for g in got)
