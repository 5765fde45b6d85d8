"""Reading pickled models out of bundle files (many models per file, each a byte range).

Workers score or judge thousands of series whose models sit in a handful of bundles: each bundle is read once
and kept in memory, least recently used first out past a byte budget.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict

from mm_assets.lake import Lake

BUNDLE_CACHE_BYTES = 256 * 1024 * 1024
SHARED_MODEL_BYTES = 64 * 1024  # a model this large is likely a global model that many series point at


class BundleError(RuntimeError):
    """A model's bytes cannot be read back: the bundle file is missing, cut short or corrupted."""


def _unpickle(data: bytes, uri: str, offset: int, size: int):
    if offset + size > len(data):
        raise BundleError(f"{uri} holds {len(data):,} bytes, the model at bytes {offset:,}..{offset + size:,} is cut "
                          "off (a truncated file)")
    try:
        return pickle.loads(data[offset : offset + size])
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the stored bytes are not the model written
        raise BundleError(f"the model at bytes {offset:,}..{offset + size:,} of {uri} cannot be unpickled "
                          f"({type(exc).__name__}: {exc})") from None


class BundleCache:
    """Whole bundle files kept in memory, least recently used evicted past a byte budget."""

    def __init__(self, lake: Lake, max_bytes: int = BUNDLE_CACHE_BYTES):
        self.lake = lake
        self.max_bytes = max_bytes
        self.bytes = 0
        self.files: OrderedDict[str, bytes] = OrderedDict()
        # large models unpickled once: a global model's thousands of series share one (uri, offset, size)
        self.shared: OrderedDict[tuple[str, int, int], object] = OrderedDict()

    def model(self, uri: str, offset: int, size: int):
        data = self.files.get(uri)
        if data is None:
            try:
                data = self.lake.fs.cat_file(self.lake.path(self.lake.relative(uri)))
            except FileNotFoundError:
                raise BundleError(f"the bundle {uri} does not exist") from None
            self.files[uri] = data
            self.bytes += len(data)
            while self.bytes > self.max_bytes and len(self.files) > 1:
                _, old = self.files.popitem(last=False)
                self.bytes -= len(old)
        else:
            self.files.move_to_end(uri)
        if size < SHARED_MODEL_BYTES:
            return _unpickle(data, uri, offset, size)
        key = (uri, offset, size)
        model = self.shared.get(key)
        if model is None:
            model = _unpickle(data, uri, offset, size)
            self.shared[key] = model
            while len(self.shared) > 4:
                self.shared.popitem(last=False)
        else:
            self.shared.move_to_end(key)
        return model
