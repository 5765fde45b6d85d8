"""The Azure ML parallel-job entry-script contract, shared by both runners.

An entry script is a module with ``init()`` (once per worker process; reads its arguments from ``sys.argv``
the way Azure ML passes them) and ``run(mini_batch, mini_batch_context)`` (once per mini-batch). With
``partition_keys`` set, a mini-batch is the pandas DataFrame of one partition (here: one series) and
``mini_batch_context.partition_key_value`` is a dict of its key values, as *strings*, which is how Azure ML
hands them over. ``run`` returns a DataFrame whose rows are appended to the job output (``append_row``).
An optional ``shutdown()`` runs when the worker stops.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.memory import release_freed
from mm_assets.settings import Settings

TRAIN_ENTRY = "mm_assets.parallel.train_entry"
SCORE_ENTRY = "mm_assets.parallel.score_entry"
PROMOTE_ENTRY = "mm_assets.parallel.promote_entry"
BACKTEST_ENTRY = "mm_assets.parallel.backtest_entry"

# The scoring manifest (one row per series: the model to forecast with), written by the batch_predictions asset
# and read by the scoring entry script
MANIFEST_COLUMNS = ["series_key", "model_type", "version", "artifact_uri", "artifact_offset", "artifact_size"]

# Where batch scoring keeps the latest forecast of each partition (one row per series and period): publishing
# reads it, and the online endpoint answers a global model's default request from it
PREDICTIONS_FOLDER = "predictions"


def predictions_file(partition_key: str) -> str:
    return f"{PREDICTIONS_FOLDER}/{partition_key}.parquet"


# Footer key of a predictions file: the signature of the partition's dataset it was scored from. The online endpoint
# answers with the published forecast only when its series' rows come from that same dataset (a re-cut dataset, a
# new plan, is not yet in a forecast made before it)
DATASET_SIGNATURE_KEY = "mm_assets.dataset_signature"


# Columns every result row carries (beside the id columns), so failures and successes share one table.
RESULT_STATUS = "status"
# A row of an entry script's output with this status is a series that failed inside a whole-batch mini-batch
# (a global model's batch cannot be rerun series by series); ``reason`` holds the error
STATUS_FAILED = "failed"

# Global models learn from every series of a batch at once: the batch is staged as one input whose rows all
# carry this column with one value, and the job partitions on it, so both runners hand the entry script the
# whole batch as one mini-batch (the entry finds the series inside by the id columns, as always).
WHOLE_BATCH_KEY = "mm_batch"
# In a staged whole batch, true on the rows of other stores' series that a global model learns from but trains no
# model for (``model.global_context_rows``); absent when there are none.
CONTEXT_COLUMN = "mm_context"


def training_window(settings: Settings) -> tuple[int, int] | None:
    """(periods, a period in ns): each series' newest rows that a whole-batch training job reads, or None when
    it reads all of them (per-series models decide their own windows): the window a dataset's training rows are
    counted in (``datasets.training_window_of``)."""
    from mm_assets.forecasting.models import is_global
    from mm_assets.ingest.datasets import training_window_of

    return training_window_of(settings) if is_global(settings.model.type) else None


def group_column(settings: Settings) -> str | None:
    """``JobSpec.group_column`` of the jobs that forecast (promotion, scoring, backtest): the first id column (the
    store) for a global model, whose group features read a store's other series; None otherwise."""
    from mm_assets.forecasting.models import is_global

    ids = list(settings.columns.ids)
    return ids[0] if is_global(settings.model.type) and len(ids) > 1 else None


def _recent(table, id_columns: list[str], window: tuple[int, int]):
    """The rows of ``table`` (sorted by the ids) inside ``window`` (``training_window``)."""
    import pyarrow as pa

    from mm_assets.forecasting.panel import recent_mask

    return table.filter(pa.array(recent_mask(table, id_columns, *window)))


class InputUnreadable(RuntimeError):
    """A job's input file (a store's dataset) is not in the lake, or cannot be read."""


def read_input(lake, path: str, **kwargs):
    """A job input file as an Arrow table (``pyarrow.parquet.read_table`` options); ``InputUnreadable`` naming
    the file and the fix when it is damaged: the series of a store whose dataset cannot be read are not known, so
    none of them can be recorded as failed; the run fails, saying how to heal it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(lake.path(path), filesystem=lake.fs, **kwargs)
    except FileNotFoundError:
        raise InputUnreadable(
            f"{path} is not in the lake: the store's dataset was never cut (or was removed). Materialize "
            "series_datasets of that store (its train_job does, as mm-assets cycle), then run this again"
        ) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputUnreadable(
            f"{path} in the lake cannot be read ({exc}). A store's dataset is cut from the raw files: materialize "
            "series_datasets of that store again (its train_job does, as mm-assets cycle), then run this again"
        ) from None


def stage_whole_batch(lake, input_files: list[str], id_columns: list[str], path: str,
                      window: tuple[int, int] | None = None, context_files: Sequence[str] = ()) -> int:
    """Write the rows of ``input_files`` (each sorted by the ids) as one Parquet file at ``path`` with the
    ``WHOLE_BATCH_KEY`` column, only each series' newest rows when a ``window`` is given (``training_window``:
    the one worker of the batch then holds what it reads, not the whole history); returns the number of series.
    ``context_files``: other stores' datasets after them, their rows marked in ``CONTEXT_COLUMN`` (learnt from,
    not counted)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mm_assets.runs import key_boundaries, run_firsts

    tables, firsts = [], []
    for f, learnt_only in [*((f, False) for f in input_files), *((f, True) for f in context_files)]:
        if lake.exists(f):  # one file at a time: with a window, only the rows kept are held
            table = read_input(lake, f)
            table = table if window is None else _recent(table, id_columns, window)
            if context_files:
                table = table.append_column(CONTEXT_COLUMN, pa.repeat(pa.scalar(learnt_only), table.num_rows))
            tables.append(table)
            if not learnt_only:  # the ids of each run of rows (a series, in a sorted file): distinct ones counted below
                firsts.append(run_firsts(table, id_columns, key_boundaries(table, id_columns)[0]))
            del table
    if not firsts:  # none of the run's own stores has a dataset: nothing to train
        return 0
    table = pa.concat_tables(tables, promote_options="default")
    # one value for every row, dictionary-encoded: the worker's frame holds it as a categorical (1 byte a row), not
    # as millions of strings (0.1 GB at 11M rows)
    batch = pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(0, pa.int8()), table.num_rows), pa.array(["all"]))
    table = table.append_column(WHOLE_BATCH_KEY, batch)
    lake.fs.makedirs(lake.path(path.rsplit("/", 1)[0]), exist_ok=True)
    pq.write_table(table, lake.path(path), filesystem=lake.fs)
    series = pa.concat_tables(firsts, promote_options="default").group_by(id_columns).aggregate([]).num_rows
    del table, tables, firsts
    release_freed()  # the pools keep freed buffers otherwise: gigabytes here
    return series


@dataclass
class MiniBatchContext:
    """What Azure ML passes as ``mini_batch_context`` for a tabular input with partition keys."""

    partition_key_value: dict[str, str]
    minibatch_index: int = 0
    dataset: Any = None
    global_row_index_lower_bound: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # where each series' rows start and stop in a mini-batch of many series, when the caller knows (the local
    # runner found them to cut its tasks); Azure ML does not pass it, and ``series_in`` finds them in the rows
    series_rows: tuple[np.ndarray, np.ndarray] | None = None


def common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments both entry scripts take (identical under the local and the Azure ML runner)."""
    parser.add_argument("--settings-json", required=True, help="Settings.model_dump_json() of the run")
    parser.add_argument("--lake-uri", required=True)
    parser.add_argument("--run-id", required=True)
    return parser


def settings_from_json(text: str) -> Settings:
    return Settings.model_validate(json.loads(text))


def ids_of(context: MiniBatchContext, mini_batch: pd.DataFrame, id_columns: list[str]) -> list[str]:
    """The series' id values: from the context (Azure ML semantics), else from the rows."""
    values = context.partition_key_value or {}
    if all(c in values for c in id_columns):
        return [str(values[c]) for c in id_columns]
    return [str(mini_batch[c].iloc[0]) for c in id_columns]


@dataclass(frozen=True, eq=False)
class SeriesRows:
    """The series of a mini-batch: where each one's rows start and stop (arrays, as the vectorised paths take
    them) and its id values. Iterating yields ``(first row, stop row, id values)`` per series."""

    starts: np.ndarray
    stops: np.ndarray
    ids: list[list[str]]

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.starts, self.stops

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[int, int, list[str]]:
        return int(self.starts[i]), int(self.stops[i]), self.ids[i]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def series_in(mini_batch: pd.DataFrame, context: MiniBatchContext, id_columns: list[str]) -> SeriesRows:
    """The series of a mini-batch: one (Azure ML ``partition_keys``: ids from the context, as strings) or many
    (a chunk, or the local runner's ``series_per_minibatch``: ids from the rows; rows the runner found are
    taken from ``context.series_rows``)."""
    from mm_assets.runs import key_boundaries

    known = context.series_rows if context is not None else None
    starts, stops = known if known is not None else key_boundaries(mini_batch, id_columns)
    if len(starts) <= 1:
        return SeriesRows(np.array([0]), np.array([len(mini_batch)]), [ids_of(context, mini_batch, id_columns)])
    ids = zip(*([str(v) for v in mini_batch[c].iloc[starts].tolist()] for c in id_columns))  # one take per column
    return SeriesRows(np.asarray(starts), np.asarray(stops), [list(values) for values in ids])


def _plain_values(column: pd.Series) -> list:
    """A column's values as ``DataFrame.to_dict`` gives them: plain Python scalars, pandas' NA as None (a
    nullable integer column, e.g. the champion version of a series without one)."""
    values = column.tolist()
    if isinstance(column.dtype, pd.api.extensions.ExtensionDtype) and column.hasnans:
        values = [None if v is pd.NA else v for v in values]
    return values


class Manifest:
    """A model manifest's rows by series key, each made a dict only when its series asks: a worker serves a
    slice of the series, and 10,000 dicts made up front in every worker cost more than the gate's decisions."""

    def __init__(self, frame: pd.DataFrame):
        keys = frame["series_key"].tolist()
        self._row = {key: i for i, key in enumerate(keys)}
        if len(self._row) != len(keys):
            raise ValueError("the model manifest names a series twice; write one row per series_key")
        self._columns = {c: _plain_values(frame[c]) for c in frame.columns if c != "series_key"}

    def get(self, key: str, default: dict | None = None) -> dict | None:
        i = self._row.get(key)
        return default if i is None else {c: values[i] for c, values in self._columns.items()}

    def __contains__(self, key: str) -> bool:
        return key in self._row

    def __len__(self) -> int:
        return len(self._row)


def manifest_init(description: str) -> dict[str, Any]:
    """``init()`` of an entry script that reads a model manifest: parses the arguments Azure ML passes and
    returns settings, series config, lake, a bundle cache and the manifest keyed by series (no model loaded)."""
    from mm_assets.forecasting.series import SeriesConfig
    from mm_assets.lake import Lake
    from mm_assets.parallel.bundles import BundleCache

    parser = common_arguments(argparse.ArgumentParser(description=description))
    parser.add_argument("--manifest", required=True, help="lake path of the manifest Parquet")
    args, _ = parser.parse_known_args()
    settings = settings_from_json(args.settings_json)
    lake = Lake(args.lake_uri)
    manifest = lake.read_parquet(args.manifest)
    return {
        "settings": settings,
        "cfg": SeriesConfig.from_settings(settings),
        "lake": lake,
        "cache": BundleCache(lake),
        "manifest": Manifest(manifest),
        "run_id": args.run_id,
    }


# ---- what a runner is given and gives back (the local and the azureml runner alike) ----------------------
@dataclass(frozen=True)
class JobSpec:
    """One parallel job: an entry script over the series of some Parquet files in the lake."""

    entry_script: str
    arguments: Sequence[str]
    lake_uri: str
    input_files: Sequence[str]  # lake-relative Parquet paths, each sorted by the partition keys
    partition_keys: Sequence[str]
    max_concurrency: int = 0
    mini_batch_timeout_s: float = 300.0
    max_retries: int = 2
    mini_batch_error_threshold: int = -1
    series_per_task: int = 250
    # Entry scripts that accept many series per mini-batch (train, score) set multi_series; the local runner then
    # hands them up to series_per_minibatch series at once and reruns a failing mini-batch one series at a time.
    multi_series: bool = False
    series_per_minibatch: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    # series under one partition-key value: 1, or every series of a whole-batch job (a global model), which
    # scales that mini-batch's timeout as if its series were handed one by one
    series_per_key: int = 1
    partitions: Sequence[str] = ()  # the Dagster partitions the job covers (default: the input files' names)
    # an id column whose series stay in one task and one mini-batch (``runs.group_slices``; Azure ML: chunks are
    # hash buckets of it): a global model forecasts a store's series from each other's prices and promotions, so
    # every runner and batch size must hand it whole stores. None: series are cut anywhere
    group_column: str | None = None
    # modules the workers need that are slow to import (Prophet): the local runner imports them once, in the
    # process its workers are forked from, when it starts that process
    preload: Sequence[str] = ()


@dataclass
class JobResult:
    rows: pd.DataFrame
    failures: pd.DataFrame
    series_total: int
    series_done: int
    wall_seconds: float
    tasks: int
    aborted: bool = False
    worker_crashes: int = 0  # times a worker process died and broke the pool (its tasks were rerun or failed)


class ParallelJobError(RuntimeError):
    """The job exceeded its mini-batch error threshold; carries what was produced before it stopped."""

    def __init__(self, message: str, result: JobResult):
        super().__init__(message)
        self.result = result



def exceeds_error_threshold(failed_mini_batches: int, threshold: int) -> bool:
    """Azure ML's ``mini_batch_error_threshold``: the job fails once more mini-batches than ``threshold`` have
    failed; -1 never fails it."""
    return threshold >= 0 and failed_mini_batches > threshold
