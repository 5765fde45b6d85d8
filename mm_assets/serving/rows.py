"""The rows batch scoring forecasts a series from, read from the lake for the endpoint.

Why: batch scoring forecasts every series from its rows in its partition's dataset (``datasets/<partition>.parquet``,
cut by ``series_datasets``): the history up to the series' newest observation and, after it, the planned rows (the
prices and promotions the source already knows, ingested from its plan). A model's stored tail holds the history it
was trained on, but no plan, and a champion trained days ago holds an older history than today's dataset. So the
endpoint reads the same rows: its origin, history and future regressor values are then the ones batch scoring used,
and its default forecast is the one the warehouse publishes (``forecast_predictions``).

A small partition file (at most ``SMALL_FILE_BYTES`` on disk and, by its footer's rows and columns,
``KEPT_FILE_MAX_BYTES`` in memory: repeated prices and zero sales shrink 15-100 times on disk; the demo's stores, a
few hundred series of a few years) is read whole once and kept, by its signature, within ``KEPT_BYTES`` per worker: its other series are then cut from
memory (0.4 ms instead of a 2.1 ms read of the file; a cold request reads two files, the dataset and the published
forecast). A larger one is one filtered read per series: the file is sorted by the ids and written in row groups
(``Lake.write_parquet``), so the read skips the groups whose statistics exclude the series (4 ms instead of 27 ms
for one series of a 2.4M-row partition). A lake without the partition's dataset (a registry built without the pipeline) has no rows:
the model's stored tail serves then, without a plan.
"""

from __future__ import annotations

import functools
import logging
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mm_assets.forecasting.series import DS, Y
from mm_assets.ids import partition_keys_for
from mm_assets.ingest.datasets import dataset_file
from mm_assets.lake import Lake
from mm_assets.lake.lake import file_stamp
from mm_assets.parallel.contract import DATASET_SIGNATURE_KEY, predictions_file
from mm_assets.runs import key_boundaries, run_firsts
from mm_assets.serving.cache import ModelCache
from mm_assets.settings import Settings

log = logging.getLogger("azmlinfsrv.mm_assets")
SMALL_FILE_BYTES = 8 * 1024**2  # compressed bytes of a partition file read whole and kept (see the module's doc)
KEPT_BYTES = 128 * 1024**2  # Arrow bytes of such files kept per worker process, least recently used dropped first
KEPT_FILE_MAX_BYTES = KEPT_BYTES // 4  # uncompressed bytes of a file kept whole: a larger one is read per series
INDEX_ENTRY_BYTES = 200  # a kept file's index entry of one series (its key and row range), roughly
PUBLISHED_COLUMNS = ["origin", "ds", "yhat", "model_version", "model_source", "envelope_replaced", "note"]


class RowsUnavailable(RuntimeError):
    """A partition's dataset exists but cannot be read: its series cannot be forecast as batch scoring does.
    ``file``: the dataset's path in the lake (what an answer may name); ``version``: its signature when it was
    asked (None: not even its information could be read), so that its error is logged once per version of it."""

    def __init__(self, file: str, reason: str, version: str | None = None):
        super().__init__(f"{file} cannot be read: {reason}")
        self.file = file
        self.version = version


class PublishedUnavailable(RuntimeError):
    """A partition's published forecast file is there but cannot be read right now: cut short or half written by
    another writer rewriting it in place, or the lake does not answer. Unlike a file that is not there, this says
    nothing about the forecast, so a series cached with it keeps its answer (``ForecastService._load``).
    ``file``: the file's path in the lake; ``version``: its signature (None: not even its information could be
    read)."""

    def __init__(self, file: str, reason: str, version: str | None = None):
        super().__init__(f"{file} cannot be read: {reason}")
        self.file = file
        self.version = version


@functools.lru_cache(maxsize=65_536)
def _bucket(value: str, column: str, buckets: int) -> str:
    """The hash bucket of one partition value, as ingestion computes it (a frame per call: cached)."""
    return str(partition_keys_for(pd.DataFrame({column: [value]}), column, buckets).iloc[0])


def rows_bytes(rows: pd.DataFrame | None) -> int:
    """A series' rows' bytes in memory (0: none), 8 a value: ``SeriesRows.read`` gives dates and numbers
    (float64, int64). ``DataFrame.memory_usage`` took 0.65 ms of a cold load for the same figure."""
    return 0 if rows is None else 8 * rows.shape[0] * rows.shape[1]


@dataclass(frozen=True)
class Published:
    """A series' rows of its partition's latest batch forecast (``PUBLISHED_COLUMNS``), sorted by date, as arrays:
    a cold load reads a few of their first values, and a pandas frame of them cost more than the rest of the read
    (about 1 ms: pyarrow's conversion of the text columns).

    ``dataset_signature``: the dataset it was scored from (``DATASET_SIGNATURE_KEY``; older files: unknown, "")."""

    columns: dict[str, np.ndarray]
    dataset_signature: str = ""

    @classmethod
    def of(cls, table: pa.Table) -> Published:
        columns = {name: column.to_numpy() for name, column in zip(table.column_names, table.columns)}
        order = np.argsort(columns["ds"], kind="stable")
        signature = (table.schema.metadata or {}).get(DATASET_SIGNATURE_KEY.encode(), b"").decode()
        return cls({name: values[order] for name, values in columns.items()}, signature)

    def __len__(self) -> int:
        return len(self.columns["ds"])

    def __getitem__(self, column: str) -> np.ndarray:
        return self.columns[column]


@dataclass(frozen=True)
class _Kept:
    """A small file, whole: its rows without the id columns and where each series' rows are, when every series'
    rows are together (the files the project writes); else with the id columns, filtered per series."""

    signature: str
    table: pa.Table
    index: dict[tuple[str, ...], tuple[int, int]] | None

    @property
    def size(self) -> int:
        return int(self.table.nbytes) + INDEX_ENTRY_BYTES * len(self.index or ())

    @classmethod
    def of(cls, signature: str, table: pa.Table, ids: list[str], columns: list[str]) -> _Kept:
        if any(table.column(c).null_count for c in ids):  # a row without an id is nobody's: filtered per series
            return cls(signature, table, None)
        starts, stops = key_boundaries(table, ids)
        keys = [tuple(str(v) for v in row.values()) for row in run_firsts(table, ids, starts).to_pylist()]
        if len(set(keys)) != len(keys):  # a series in several places: filtered per series
            return cls(signature, table, None)
        return cls(signature, table.select(columns), dict(zip(keys, zip(starts.tolist(), stops.tolist()))))

    def rows(self, ids: Sequence[str], flt, columns: list[str]) -> pa.Table:
        if self.index is None:
            return self.table.filter(flt).select(columns)
        start, stop = self.index.get(tuple(str(v) for v in ids), (0, 0))
        return self.table.slice(start, stop - start).select(columns)


class SeriesRows:
    """Reads one series' rows (``ds``, ``y``, regressors; history then plan) from its partition's dataset."""

    def __init__(self, lake: Lake, settings: Settings):
        self.lake = lake
        self.id_columns = list(settings.columns.ids)
        self.columns = [DS, Y, *settings.columns.regressors]
        self.partition_column = settings.partition.column
        self.buckets = settings.partition.buckets
        self._absent_logged: set[str] = set()
        self._unreadable_logged: set[tuple[str, str | None]] = set()  # (file, signature) of published files not read
        self._infos: dict[str, tuple[str, int]] = {}  # path -> (signature, size) as ``signature`` last saw it
        self._kept: ModelCache[_Kept] = ModelCache(100_000, KEPT_BYTES)  # small files, whole (path -> _Kept)
        self._unpacked_sizes: dict[str, tuple[str, int]] = {}  # path -> (signature, estimated bytes in memory)

    def _info(self, path: str) -> tuple[str, int]:
        """(signature, size in bytes) of a lake file; FileNotFoundError when it is not there."""
        info = self.lake.fs.info(path)
        seen = (file_stamp(info), int(info.get("size") or 0))
        self._infos[path] = seen
        return seen

    def _rows_of(self, path: str, seen: tuple[str, int] | None, columns: list[str], ids: Sequence[str]) -> pa.Table:
        """The series' rows of the file at ``path`` (``seen``: its signature and size, None when not known): cut
        from the whole file, kept, when it is small, else one filtered read."""
        flt = pq.filters_to_expression([(c, "==", str(v)) for c, v in zip(self.id_columns, ids)])

        def file() -> pads.Dataset:
            return pads.dataset(path, filesystem=self.lake.fs, format="parquet")

        if not self._keepable(path, seen):
            return file().to_table(columns=columns, filter=flt)
        signature = seen[0]
        kept, _ = self._kept.get(
            path, lambda _path, _stale: _Kept.of(signature, file().to_table(columns=[*self.id_columns, *columns]),
                                                 self.id_columns, columns),
            lambda value: value.signature == signature)
        return kept.rows(ids, flt, columns)

    def _keepable(self, path: str, seen: tuple[str, int] | None) -> bool:
        """Whether the file is small enough to be read whole and kept: on disk, and in memory."""
        return seen is not None and seen[1] <= SMALL_FILE_BYTES and self._unpacked(path, seen[0]) <= KEPT_FILE_MAX_BYTES

    def _unpacked(self, path: str, signature: str) -> int:
        """The file's size in memory, roughly, by its footer (rows x columns x 8 bytes), once per signature: a file
        small on disk can be hundreds of MB in memory (repeated prices, zero sales compress 15-100x; the footer's
        ``total_byte_size`` is after dictionary/RLE encoding, as small)."""
        known = self._unpacked_sizes.get(path)
        if known is None or known[0] != signature:
            meta = pq.ParquetFile(path, filesystem=self.lake.fs).metadata
            known = (signature, 8 * meta.num_rows * meta.num_columns)
            self._unpacked_sizes[path] = known
        return known[1]

    def partition_of(self, ids: Sequence[str]) -> str:
        """The partition whose dataset holds the series (the store, or its hash bucket): the rule ingestion
        partitions by, so the endpoint needs no registry row to find a series' data."""
        value = str(ids[self.id_columns.index(self.partition_column)])
        return value if self.buckets <= 0 else _bucket(value, self.partition_column, self.buckets)

    def _path(self, partition: str) -> str:
        return self.lake.path(dataset_file(partition))

    def signature(self, partition: str) -> str | None:
        """The dataset's signature (None: the lake has no dataset for the partition). Asked before every read and
        at every refresh, so that a re-cut dataset (new observations, a new plan) is read again."""
        try:
            return self._info(self._path(partition))[0]
        except FileNotFoundError:
            if partition not in self._absent_logged:
                self._absent_logged.add(partition)
                log.info("no dataset %s in the lake: its series are forecast from their models' stored tails, "
                         "without a plan", posixpath.basename(self._path(partition)))
            return None
        except Exception as exc:  # any store's error (an unreachable Azure lake raises AzureError)
            raise RowsUnavailable(dataset_file(partition), type(exc).__name__) from exc

    def published_info(self, partition: str) -> tuple[str, int] | None:
        """(signature, size) of the partition's published forecast file (None: there is none); PublishedUnavailable
        when the lake cannot say."""
        path = self.lake.path(predictions_file(partition))
        try:
            return self._info(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # any store's error, as ``signature``
            raise self._published_unavailable(partition, exc, None) from exc

    def _published_unavailable(self, partition: str, exc: BaseException, version: str | None) -> PublishedUnavailable:
        """The PublishedUnavailable of ``exc``, logged once per version of the file, not per series."""
        file = predictions_file(partition)
        if (file, version) not in self._unreadable_logged:
            self._unreadable_logged.add((file, version))
            log.warning("the published forecast %s (version %s) cannot be read (%s: %s): the series cached with it "
                        "keep their answers and read it again shortly, its other global-model series are forecast "
                        "alone meanwhile (logged once per version of the file)", file, version or "unknown",
                        type(exc).__name__, str(exc)[:200])
        return PublishedUnavailable(file, type(exc).__name__, version)

    @property
    def kept_bytes(self) -> int:
        return self._kept.bytes

    @property
    def kept_max_bytes(self) -> int:
        return self._kept.max_bytes

    def keep(self, partition: str) -> int:
        """Reads the partition's small files (its dataset and its published forecast) into the kept tables, before
        a request asks for them; returns how many it read. A file that is missing, large or unreadable is left to
        the requests, which read it as they always do."""
        read = 0
        for path, columns in ((self._path(partition), self.columns),
                              (self.lake.path(predictions_file(partition)), PUBLISHED_COLUMNS)):
            try:
                seen = self._info(path)
                if self._keepable(path, seen) and self._kept.peek(path) is None:
                    self._rows_of(path, seen, columns, ["" for _ in self.id_columns])
                    read += 1
            except (FileNotFoundError, OSError, pa.ArrowException, KeyError):
                continue
        return read

    def published(self, partition: str, ids: Sequence[str], seen: tuple[str, int] | None = None
                  ) -> Published | None:
        """The series' rows of its partition's latest batch forecast (``predictions/<partition>.parquet``: what
        the warehouse publishes), sorted by date; None when there is none (the endpoint then forecasts the series
        itself), PublishedUnavailable when it is there but cannot be read. ``seen``: the file's ``published_info``,
        when the caller has just asked."""
        path = self.lake.path(predictions_file(partition))
        seen = seen or self.published_info(partition)
        if seen is None:
            return None  # not published yet (or gone): the answer says so (``answer.ALONE_NOTE``)
        try:
            table = self._rows_of(path, seen, PUBLISHED_COLUMNS, ids)
        except Exception as exc:  # cut short, being rewritten, or a store that cannot be reached
            raise self._published_unavailable(partition, exc, seen[0]) from exc
        return Published.of(table) if table.num_rows else None

    def read(self, partition: str, ids: Sequence[str]) -> pd.DataFrame | None:
        """The series' rows as batch scoring reads them (None: the partition's dataset has none of it)."""
        path = self._path(partition)
        seen = self._infos.get(path)
        try:
            table = self._rows_of(path, seen, self.columns, ids)
        except FileNotFoundError:
            return None
        except Exception as exc:  # damaged, cut short, being rewritten, or an unreachable store
            raise RowsUnavailable(dataset_file(partition), type(exc).__name__, seen[0] if seen else None) from exc
        if table.num_rows == 0:
            return None
        return table.to_pandas()
