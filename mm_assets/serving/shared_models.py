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
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger("azmlinfsrv.mm_assets")


class SharedModels:
    """Unpickled models by address (artifact URI, offset, size), least recently used dropped first once their
    pickled sizes exceed ``max_bytes``; the newest one is always kept, whatever its size.

    One lock covers lookups and loads: two threads asking for the same model unpickle it once."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._models: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._mine = threading.local()  # loads of the current thread since ``loads_here`` last asked
        self.loads = 0

    def get(self, address: Hashable, read: Callable[[], bytes]) -> Any:
        """The model at ``address``; ``read()`` gives its pickled bytes when it is not kept."""
        with self._lock:
            kept = self._models.get(address)
            if kept is not None:
                self._models.move_to_end(address)
                return kept[0]
            started = time.perf_counter()
            blob = read()
            model = pickle.loads(blob)
            self.loads += 1
            self._mine.loads = getattr(self._mine, "loads", 0) + 1
            self._models[address] = (model, len(blob))
            self._bytes += len(blob)
            while self._bytes > self.max_bytes and len(self._models) > 1:
                _, (_, size) = self._models.popitem(last=False)
                self._bytes -= size
            log.info("global model %s read in %.0f ms (%.1f MB); kept: %d models, %.1f of %.1f MB", address,
                     1e3 * (time.perf_counter() - started), len(blob) / 1e6, len(self._models), self._bytes / 1e6,
                     self.max_bytes / 1e6)
            return model

    def loads_here(self) -> int:
        """Models this thread read since it last asked (a request's count: the ``x-mm-shared-loads`` header)."""
        loads = getattr(self._mine, "loads", 0)
        self._mine.loads = 0
        return loads

    def __len__(self) -> int:
        return len(self._models)

    @property
    def bytes(self) -> int:
        """Pickled bytes of the models kept."""
        return self._bytes
