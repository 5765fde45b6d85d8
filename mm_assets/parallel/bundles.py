"""Reading pickled models out of bundle files (many models per file, each a byte range).

Workers score or judge thousands of series whose models sit in a handful of bundles: each bundle is read once
and kept in memory, least recently used first out past a byte budget.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict

from mm_assets.lake import Lake, LakePathError

BUNDLE_CACHE_BYTES = 256 * 1024 * 1024
SHARED_MODEL_BYTES = 64 * 1024  # a model this large is likely a global model that many series point at


class BundleError(RuntimeError):
    """A model's bytes cannot be read back: the bundle file is missing, cut short or corrupted."""


def _unpickle(data: bytes, uri: str, offset: int, size: int, first: int = 0):
    """The model at bytes ``offset``..``offset + size`` of the bundle ``uri``, of which ``data`` holds the bytes
    from ``first`` on."""
    if offset + size > first + len(data):
        raise BundleError(f"the model at bytes {offset:,}..{offset + size:,} of {uri} is cut off: the file ends "
                          f"before byte {offset + size:,} (a truncated file)")
    try:
        return pickle.loads(data[offset - first : offset - first + size])
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
        if size >= SHARED_MODEL_BYTES:
            return self._shared(uri, offset, size)
        data = self.files.get(uri)
        if data is None:
            data = self._read(uri)
            self.files[uri] = data
            self.bytes += len(data)
            while self.bytes > self.max_bytes and len(self.files) > 1:
                _, old = self.files.popitem(last=False)
                self.bytes -= len(old)
        else:
            self.files.move_to_end(uri)
        return _unpickle(data, uri, offset, size)

    def _shared(self, uri: str, offset: int, size: int):
        """A large model, unpickled once and kept (the last 4): only its own byte range is read, and not kept,
        so that series of two days' global models taking turns never read a whole bundle again (it used to be
        read, into the byte budget, before the unpickled model was looked up)."""
        key = (uri, offset, size)
        model = self.shared.get(key)
        if model is not None:
            self.shared.move_to_end(key)
            return model
        model = _unpickle(self._read(uri, offset, offset + size), uri, offset, size, first=offset)
        self.shared[key] = model
        while len(self.shared) > 4:
            self.shared.popitem(last=False)
        return model

    def _read(self, uri: str, start: int | None = None, end: int | None = None) -> bytes:
        try:
            return self.lake.fs.cat_file(self.lake.path(self.lake.relative(uri)), start=start, end=end)
        except FileNotFoundError:
            raise BundleError(f"the bundle {uri} does not exist") from None
        except LakePathError:  # the registries keep each model's full address: a lake moved elsewhere is not there
            raise BundleError(f"the bundle {uri} is not in the lake {self.lake.uri} (storage.lake): a lake moved or "
                              "renamed leaves the registries pointing at the old place; the next training registers "
                              "models at the new one") from None
