"""Training entry script (Azure ML parallel-job contract): one mini-batch = one series, or many (local runner).

``init()`` parses the job arguments and opens this worker's model bundle; ``run()`` trains the series (holdout
metrics, then refit on all data, the series' baseline when too short), appends the pickled model to the
bundle and returns one result row. Exceptions propagate on purpose: the runner retries the mini-batch, then
records it as failed with the error (Azure ML semantics), so a broken series is never silently dropped.

Fault injection: ``MM_ASSETS_INJECT_FAILURES`` (comma-separated series keys, e.g. ``S01/I003``) makes those
series raise, for drills and the end-to-end test of failure handling.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import uuid

import numpy as np
import pandas as pd

from mm_assets.forecasting.batch_linear import train_linear_batch
from mm_assets.forecasting.fit_digest import FIT_DIGEST, batch_digest, fit_digest, recipe_text, series_digests
from mm_assets.forecasting.global_lgbm import LIGHTGBM
from mm_assets.forecasting.global_training import train_global
from mm_assets.forecasting.metrics import metrics_json
from mm_assets.forecasting.model_types import ModelType
from mm_assets.forecasting.series import SeriesConfig
from mm_assets.forecasting.training import TrainOutcome, train_series
from mm_assets.ids import series_key
from mm_assets.lake import Lake
from mm_assets.parallel.contract import (
    CONTEXT_COLUMN,
    STATUS_FAILED,
    MiniBatchContext,
    SeriesRows,
    common_arguments,
    series_in,
    settings_from_json,
)

INJECT_ENV = "MM_ASSETS_INJECT_FAILURES"


class InjectedFailure(RuntimeError):
    """Raised for series named in MM_ASSETS_INJECT_FAILURES."""


class BundleWriter:
    """Appends pickled models to one file per worker; returns (uri, offset, size) of each.

    A model's bytes are in the lake before ``write`` returns, because the row pointing at them may be read as soon
    as ``run()`` returns it. Locally: one open file, flushed per model. On object storage a buffered handle
    uploads only when closed, so each model is one append of its own (adlfs ``"ab"``: an Azure append blob, the
    append is committed when the call returns); an append blob holds at most 50,000 appends, so a remote bundle
    rolls over to a fresh file well before that. Rows keep pointing at (file, offset, size) either way.
    """

    APPEND_BLOCK_BYTES = 4 * 1024 * 1024  # what one append may carry (the SDK splits larger models)
    MAX_APPENDS = 40_000  # per remote bundle; Azure's limit is 50,000 appends per append blob

    def __init__(self, lake: Lake, folder: str):
        self.lake = lake
        self.folder = folder
        lake.fs.makedirs(lake.path(folder), exist_ok=True)
        self.handle = None
        self._new_file()

    def _new_file(self) -> None:
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.bin"
        self.path = self.lake.path(self.folder, name)
        self.uri = self.lake.full_uri(self.folder, name)
        self.offset = 0
        self.appends = 0

    def write(self, blob: bytes) -> tuple[str, int, int]:
        if self.lake.is_local:
            if self.handle is None:
                self.handle = self.lake.fs.open(self.path, "ab")
            offset = self.offset
            self.handle.write(blob)
            self.handle.flush()
            self.offset += len(blob)
            return self.uri, offset, len(blob)
        appends = max(1, -(-len(blob) // self.APPEND_BLOCK_BYTES))
        if self.appends and self.appends + appends > self.MAX_APPENDS:
            self._new_file()
        with self.lake.fs.open(self.path, "ab") as handle:  # committed when the handle closes
            handle.write(blob)
        offset = self.offset
        self.offset += len(blob)
        self.appends += appends
        return self.uri, offset, len(blob)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


_state: dict = {}


def init() -> None:
    parser = common_arguments(argparse.ArgumentParser(description="mm-assets training entry script"))
    parser.add_argument("--model-dir", required=True, help="lake folder for this run's model bundles")
    args, _ = parser.parse_known_args()
    settings = settings_from_json(args.settings_json)
    lake = Lake(args.lake_uri)
    cfg = SeriesConfig.from_settings(settings)
    _state.update(
        settings=settings,
        cfg=cfg,
        recipe=recipe_text(settings.model.type, settings.model.params, cfg),
        lake=lake,
        writer=BundleWriter(lake, args.model_dir),
        run_id=args.run_id,
        inject={k.strip() for k in os.environ.get(INJECT_ENV, "").split(",") if k.strip()},
    )


def _result_row(id_cols: list[str], ids: list[str], key: str, outcome: TrainOutcome, data: int,
                artifact: tuple[str, int, int] | None = None) -> dict:
    """The registry row of one series; ``data``: the digest of the rows it was fitted from (``fit_digest``);
    ``artifact``: bytes already written (a global model's, shared)."""
    uri, offset, size = artifact or _state["writer"].write(
        pickle.dumps(outcome.model, protocol=pickle.HIGHEST_PROTOCOL))
    row = dict(zip(id_cols, ids))
    row.update(
        series_key=key,
        ids=json.dumps(dict(zip(id_cols, ids))),
        status=outcome.status,
        model_type=outcome.model_type,
        reason=outcome.reason,
        data_start=outcome.data_start,
        data_end=outcome.data_end,
        n_obs=outcome.n_obs,
        accuracy=outcome.metrics.get("accuracy"),
        wape=outcome.metrics.get("wape"),
        mase=outcome.metrics.get("mase"),
        metrics=metrics_json({**outcome.metrics, FIT_DIGEST: fit_digest(_state["recipe"], data)}),
        artifact_uri=uri,
        artifact_offset=offset,
        artifact_size=size,
        duration_s=outcome.fit_seconds,
        holdout=json.dumps(outcome.extra.get("holdout")),  # last 3 horizons of actuals + the holdout forecast
    )
    return row


def run(mini_batch: pd.DataFrame, mini_batch_context: MiniBatchContext) -> pd.DataFrame:
    """One series (Azure ML ``partition_keys``) or many (local runner, ``series_per_minibatch``).

    Many series: ``linear`` models of the whole mini-batch are fitted in one vectorised pass
    (``batch_linear``); other models and the series that pass does not take go through ``train_series`` one by
    one. Any exception fails the whole mini-batch, which the runner then reruns one series per mini-batch.
    """
    settings = _state["settings"]
    cfg = _state["cfg"]
    id_cols = list(settings.columns.ids)
    series = series_in(mini_batch, mini_batch_context, id_cols)
    keys = [series_key(ids) for _, _, ids in series]
    if settings.model.type == LIGHTGBM:
        return _run_global(mini_batch, series, keys, id_cols)
    for key in keys:
        if key in _state["inject"]:
            raise InjectedFailure(f"injected failure for series {key} ({INJECT_ENV})")
    outcomes: dict[int, TrainOutcome] = {}
    pending: list[int] = list(range(len(series)))
    if settings.model.type == ModelType.LINEAR and len(series) > 1:
        outcomes, pending = train_linear_batch(mini_batch, id_cols, cfg, settings.model.params, series.bounds)
    for index in pending:
        lo, hi, _ = series[index]
        outcomes[index] = train_series(mini_batch.iloc[lo:hi], cfg, settings.model.type, settings.model.params)
    digests = series_digests(mini_batch, *series.bounds, id_cols)
    return pd.DataFrame(
        [_result_row(id_cols, ids, keys[i], outcomes[i], digests[i]) for i, (_, _, ids) in enumerate(series)]
    )


def _run_global(mini_batch: pd.DataFrame, series: SeriesRows, keys: list[str], id_cols: list[str]) -> pd.DataFrame:
    """One global model over every series of the mini-batch (the whole batch of the run): the model is written
    once and every series it serves points at those bytes; a series the model cannot take is trained by the
    per-series rules, and one that fails there is returned as a ``failed`` row (a whole batch is not rerun
    series by series). Series whose rows ``CONTEXT_COLUMN`` marks (other stores') are learnt from only: no row."""
    settings, cfg = _state["settings"], _state["cfg"]
    if CONTEXT_COLUMN in mini_batch:
        learnt_only = mini_batch.pop(CONTEXT_COLUMN).to_numpy(dtype=bool)  # in place: no copy of the batch
    else:
        learnt_only = np.zeros(len(mini_batch), dtype=bool)
    failed = []
    injected = [i for i, key in enumerate(keys) if key in _state["inject"] and not learnt_only[series[i][0]]]
    if injected:  # drills: those series fail alone, the batch goes on without them
        drop = np.zeros(len(mini_batch), dtype=bool)
        for i in injected:
            lo, hi, ids = series[i]
            drop[lo:hi] = True
            failed.append({**dict(zip(id_cols, ids)), "series_key": keys[i], "status": STATUS_FAILED,
                           "error_type": InjectedFailure.__name__,
                           "reason": f"injected failure for series {keys[i]} ({INJECT_ENV})"})
        mini_batch, learnt_only = mini_batch[~drop].reset_index(drop=True), learnt_only[~drop]
        series = series_in(mini_batch, MiniBatchContext({}), id_cols)
        keys = [series_key(ids) for _, _, ids in series]
    digests = series_digests(mini_batch, *series.bounds, id_cols)
    learnt_from = batch_digest(keys, digests)  # the shared model's data: every series of the batch
    model, outcomes, pending = train_global(mini_batch, id_cols, cfg, settings.model.params)
    shared = None
    if model is not None:
        shared = _state["writer"].write(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    rows = []
    for index, (lo, hi, ids) in enumerate(series):
        if learnt_only[lo]:
            continue
        outcome = outcomes.get(index)
        if outcome is None:
            try:
                outcome = train_series(mini_batch.iloc[lo:hi], cfg, ModelType.BASELINE)
            except Exception as exc:  # noqa: BLE001 - recorded as this series' failure, the batch goes on
                failed.append({**dict(zip(id_cols, ids)), "series_key": keys[index], "status": STATUS_FAILED,
                               "error_type": type(exc).__name__, "reason": str(exc)})
                continue
        own = outcome.model is not None  # a per-series model (its baseline): fitted from its own rows
        rows.append(_result_row(id_cols, ids, keys[index], outcome, digests[index] if own else learnt_from,
                                artifact=None if own else shared))
    return pd.DataFrame(rows + failed)


def shutdown() -> None:
    writer = _state.get("writer")
    if writer is not None:
        writer.close()
