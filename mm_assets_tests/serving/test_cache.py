"""The bounded LRU cache: limits in items and bytes, single-flight loading under concurrency."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from mm_assets.serving.cache import ModelCache

pytestmark = pytest.mark.serving


@dataclass
class Item:
    name: str
    size: int = 10


def loader(calls: list, size: int = 10):
    def load(key, stale):
        calls.append(key)
        return Item(key, size)

    return load


def test_least_recently_used_goes_first_past_the_item_limit():
    cache = ModelCache(max_items=3, max_bytes=10_000)
    calls: list = []
    for key in "abc":
        cache.get(key, loader(calls))
    assert cache.get("a", loader(calls)) == (Item("a"), True)  # a is now the most recent
    cache.get("d", loader(calls))
    assert "b" not in cache and {"a", "c", "d"} == set(cache._items)
    assert cache.stats.evictions == 1 and cache.stats.hits == 1 and calls == list("abcd")
    assert len(cache) == 3 and cache.bytes == 30


def test_byte_limit_evicts_and_an_oversized_value_is_served_but_not_kept():
    cache = ModelCache(max_items=100, max_bytes=25)
    calls: list = []
    cache.get("a", loader(calls))
    cache.get("b", loader(calls))
    cache.get("c", loader(calls))  # 30 bytes > 25: a goes
    assert set(cache._items) == {"b", "c"} and cache.bytes == 20
    value, hit = cache.get("big", loader(calls, size=26))
    assert value == Item("big", 26) and not hit and "big" not in cache and cache.bytes == 20


def test_a_missing_key_is_not_cached_and_errors_are_not_cached():
    cache = ModelCache(max_items=10, max_bytes=1000)
    assert cache.get("x", lambda key, stale: None) == (None, False)
    assert "x" not in cache and cache.stats.not_found == 1

    def broken(key, stale):
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        cache.get("y", broken)
    assert "y" not in cache and cache.stats.errors == 1
    assert cache.get("y", loader([]))[0] == Item("y")  # a later request loads it again


def test_concurrent_requests_for_one_cold_key_load_it_once():
    cache = ModelCache(max_items=10, max_bytes=1000)
    calls: list = []
    started = threading.Barrier(16)
    results = []

    def slow(key, stale):
        calls.append(key)
        time.sleep(0.2)  # every other thread arrives while this load runs
        return Item(key)

    def ask():
        started.wait()
        results.append(cache.get("cold", slow))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["cold"]
    assert len(results) == 16 and all(value is results[0][0] for value, _ in results)
    assert cache.stats.loads == 1 and cache.stats.waits + cache.stats.hits == 15


def test_a_failed_load_reaches_every_waiting_thread():
    cache = ModelCache(max_items=10, max_bytes=1000)
    gate = threading.Event()
    errors = []

    def failing(key, stale):
        gate.wait(1)
        raise ValueError("corrupt model")

    def ask():
        try:
            cache.get("k", failing)
        except ValueError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert errors == ["corrupt model"] * 4 and "k" not in cache


def test_a_stale_value_is_handed_to_the_loader():
    cache = ModelCache(max_items=10, max_bytes=1000)
    cache.get("k", loader([]))
    seen = []

    def refresh(key, stale):
        seen.append(stale)
        return stale  # the same model still serves: kept, not counted as a load

    value, hit = cache.get("k", refresh, is_fresh=lambda v: False)
    assert not hit and seen == [Item("k")] and value is seen[0] and cache.stats.loads == 1
    assert cache.get("k", refresh)[1] is True


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        ModelCache(max_items=0, max_bytes=1)
