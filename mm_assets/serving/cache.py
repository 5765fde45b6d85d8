"""A bounded, thread-safe LRU cache that loads a missing value once, however many threads ask for it.

Why single-flight: ``azmlinfsrv`` serves requests from several threads of a worker process; when a burst asks
for the same cold model, one thread reads and unpickles it while the others wait for that result instead of
each doing the same work (and briefly holding copies past the memory bound).

Bounds: at most ``max_items`` values and ``max_bytes`` of their declared sizes; the least recently used go
first. A value larger than the whole byte budget is returned but not kept, unless ``keep_newest`` (then the
newest value is always kept, whatever its size: a model many series share would otherwise be read for every one
of them). Loads run outside the lock, so a slow load of one key never blocks hits on other keys.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Sized(Protocol):
    size: int


V = TypeVar("V", bound=Sized)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    loads: int = 0
    waits: int = 0  # requests that waited for another thread's load of the same key
    evictions: int = 0
    not_found: int = 0
    errors: int = 0


class ModelCache(Generic[V]):
    def __init__(self, max_items: int, max_bytes: int, keep_newest: bool = False):
        if max_items < 1 or max_bytes < 1:
            raise ValueError("cache limits must be positive")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.keep_newest = keep_newest
        self.bytes = 0
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._items: OrderedDict[str, V] = OrderedDict()
        self._loading: dict[str, Future] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def peek(self, key: str) -> V | None:
        return self._items.get(key)

    def get(
        self,
        key: str,
        load: Callable[[str, V | None], V | None],
        is_fresh: Callable[[V], bool] = lambda value: True,
    ) -> tuple[V | None, bool]:
        """The value of ``key`` and whether it was a hit.

        On a miss (absent, or present but not ``is_fresh``) one caller runs ``load(key, stale_value)``; callers
        arriving meanwhile wait for its result. ``load`` returns the value, or None when the key has none (not
        cached); its exceptions reach every waiting caller and nothing is cached.
        """
        with self._lock:
            value = self._items.get(key)
            if value is not None and is_fresh(value):
                self._items.move_to_end(key)
                self.stats.hits += 1
                return value, True
            self.stats.misses += 1
            future = self._loading.get(key)
            owner = future is None
            if owner:
                future = Future()
                self._loading[key] = future
            else:
                self.stats.waits += 1
        if not owner:
            return future.result(), False
        try:
            loaded = load(key, value)
        except BaseException as exc:
            with self._lock:
                self._loading.pop(key, None)
                self.stats.errors += 1
            future.set_exception(exc)
            raise
        with self._lock:
            self._loading.pop(key, None)
            if loaded is None:
                self.stats.not_found += 1
                self._remove(key)
            else:
                if loaded is not value:
                    self.stats.loads += 1
                self._put(key, loaded)
        future.set_result(loaded)
        return loaded, False

    def _remove(self, key: str) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old.size

    def _put(self, key: str, value: V) -> None:
        self._remove(key)
        if value.size > self.max_bytes and not self.keep_newest:
            return
        self._items[key] = value
        self.bytes += value.size
        kept = 1 if self.keep_newest else 0  # the newest, just put: the last item
        while len(self._items) > kept and (len(self._items) > self.max_items or self.bytes > self.max_bytes):
            _, old = self._items.popitem(last=False)
            self.bytes -= old.size
            self.stats.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
