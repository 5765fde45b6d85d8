"""The rows batch scoring forecasts a series from, read from the lake for the endpoint.

Why: batch scoring forecasts every series from its rows in its partition's dataset (``datasets/<partition>.parquet``,
cut by ``series_datasets``): the history up to the series' newest observation and, after it, the planned rows (the
prices and promotions the source already knows, ingested from its plan). A model's stored tail holds the history it
was trained on, but no plan, and a champion trained days ago holds an older history than today's dataset. So the
endpoint reads the same rows: its origin, history and future regressor values are then the ones batch scoring used,
and its default forecast is the one the warehouse publishes (``forecast_predictions``).

One series is one filtered read of its partition's file (the file is sorted by the ids; nothing else of the
partition is kept). A lake without the partition's dataset (a registry built without the pipeline) has no rows:
the model's stored tail serves then, without a plan.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from mm_assets.forecasting.series import DS, Y
from mm_assets.ids import partition_keys_for
from mm_assets.ingest.datasets import dataset_file
from mm_assets.lake import Lake
from mm_assets.parallel.contract import predictions_file
from mm_assets.settings import Settings

log = logging.getLogger("azmlinfsrv.mm_assets")
PUBLISHED_COLUMNS = ["origin", "ds", "yhat", "model_version", "model_source", "envelope_replaced", "note"]


class RowsUnavailable(RuntimeError):
    """A partition's dataset exists but cannot be read: its series cannot be forecast as batch scoring does."""


def _stamp(info: dict) -> str:
    """A file's ``size:stamp`` as ``Lake.signatures`` builds it: a rewritten file gets another one."""
    stamp = [str(info[k]) for k in ("etag", "mtime", "ino", "last_modified") if info.get(k) is not None]
    return ":".join([str(info.get("size")), *stamp])


class SeriesRows:
    """Reads one series' rows (``ds``, ``y``, regressors; history then plan) from its partition's dataset."""

    def __init__(self, lake: Lake, settings: Settings):
        self.lake = lake
        self.id_columns = list(settings.columns.ids)
        self.columns = [DS, Y, *settings.columns.regressors]
        self.partition_column = settings.partition.column
        self.buckets = settings.partition.buckets
        self._absent_logged: set[str] = set()

    def partition_of(self, ids: Sequence[str]) -> str:
        """The partition whose dataset holds the series (the store, or its hash bucket): the rule ingestion
        partitions by, so the endpoint needs no registry row to find a series' data."""
        value = ids[self.id_columns.index(self.partition_column)]
        return str(partition_keys_for(pd.DataFrame({self.partition_column: [value]}), self.partition_column,
                                      self.buckets).iloc[0])

    def _path(self, partition: str) -> str:
        return self.lake.path(dataset_file(partition))

    def signature(self, partition: str) -> str | None:
        """The dataset's signature (None: the lake has no dataset for the partition). Asked before every read and
        at every refresh, so that a re-cut dataset (new observations, a new plan) is read again."""
        try:
            return _stamp(self.lake.fs.info(self._path(partition)))
        except FileNotFoundError:
            if partition not in self._absent_logged:
                self._absent_logged.add(partition)
                log.info("no dataset %s in the lake: its series are forecast from their models' stored tails, "
                         "without a plan", posixpath.basename(self._path(partition)))
            return None
        except OSError as exc:
            raise RowsUnavailable(f"the dataset of partition {partition} cannot be read: {type(exc).__name__}") from exc

    def published(self, partition: str, ids: Sequence[str]) -> pd.DataFrame | None:
        """The series' rows of its partition's latest batch forecast (``predictions/<partition>.parquet``: what
        the warehouse publishes), sorted by date; None when there is none or it cannot be read (the endpoint then
        forecasts the series itself)."""
        filters = [(column, "==", str(value)) for column, value in zip(self.id_columns, ids)]
        try:
            table = self.lake.read_table(predictions_file(partition), columns=PUBLISHED_COLUMNS, filters=filters)
        except (FileNotFoundError, OSError, pa.ArrowException, KeyError):
            return None
        return table.to_pandas().sort_values("ds", ignore_index=True) if table.num_rows else None

    def read(self, partition: str, ids: Sequence[str]) -> pd.DataFrame | None:
        """The series' rows as batch scoring reads them (None: the partition's dataset has none of it)."""
        filters = [(column, "==", str(value)) for column, value in zip(self.id_columns, ids)]
        try:
            table = self.lake.read_table(dataset_file(partition), columns=self.columns, filters=filters)
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:  # a damaged or unreadable dataset: the caller answers 503
            raise RowsUnavailable(f"the dataset of partition {partition} cannot be read: {type(exc).__name__}") from exc
        if table.num_rows == 0:
            return None
        return table.to_pandas()
