"""Large models many series share (a global ``lightgbm`` model serves every product of the stores it was trained
on), unpickled once per worker process and kept within a byte budget.

Why apart from the per-series cache: a series' cache entry is a few kilobytes of forecasts and arrays, its global
model megabytes (its boosters and every series' stored tail). When each entry held its model, a worker kept one
unpickled copy per store it had met and, once a small table of them overflowed, one per series: the byte limit
of the series cache did not see them, and 2,000 cached series of 20 stores took 7 GB. Entries now hold only the
model's address; a what-if asks this store, which reads the model again if it was dropped meanwhile.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from mm_assets.serving.cache import ModelCache

log = logging.getLogger("azmlinfsrv.mm_assets")
MAX_MODELS = 1_000_000  # the byte budget bounds them, not a count


@dataclass(frozen=True)
class _Kept:
    model: Any
    size: int  # its pickled bytes


class SharedModels:
    """Unpickled models by address (artifact URI, offset, size) in a ``ModelCache``: least recently used dropped
    first once their pickled sizes exceed ``max_bytes``, the newest always kept, whatever its size; a model that
    several threads ask for at once is read and unpickled once, and a load never blocks the other models' hits."""

    def __init__(self, max_bytes: int):
        self._cache: ModelCache[_Kept] = ModelCache(MAX_MODELS, max_bytes, keep_newest=True)
        self._mine = threading.local()  # loads of the current thread since ``loads_here`` last asked

    def get(self, address: Hashable, read: Callable[[], bytes]) -> Any:
        """The model at ``address``; ``read()`` gives its pickled bytes when it is not kept."""
        def load(_address, _stale) -> _Kept:
            started = time.perf_counter()
            blob = read()
            kept = _Kept(pickle.loads(blob), len(blob))
            self._mine.loads = getattr(self._mine, "loads", 0) + 1
            log.info("global model %s read in %.0f ms (%.1f MB); kept before it: %d models, %.1f of %.1f MB",
                     address, 1e3 * (time.perf_counter() - started), len(blob) / 1e6, len(self._cache),
                     self._cache.bytes / 1e6, self._cache.max_bytes / 1e6)
            return kept

        return self._cache.get(address, load)[0].model

    def loads_here(self) -> int:
        """Models this thread read since it last asked (a request's count: the ``x-mm-shared-loads`` header)."""
        loads = getattr(self._mine, "loads", 0)
        self._mine.loads = 0
        return loads

    @property
    def loads(self) -> int:
        return self._cache.stats.loads

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def max_bytes(self) -> int:
        return self._cache.max_bytes

    @property
    def bytes(self) -> int:
        """Pickled bytes of the models kept."""
        return self._cache.bytes
