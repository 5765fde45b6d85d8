"""The Azure ML entry script of every mm-assets parallel job: the real entry script, wrapped.

Azure ML loads ``entry_script`` (a file at the root of the uploaded code folder, see ``job.stage_code``) which
imports ``init``/``run``/``shutdown`` from here. The wrapper:

- ``init()``: reads ``--mm-assets-args <token>`` from ``sys.argv`` (a URL-safe base64 JSON of the entry script's
  module name, its arguments and the partition keys: no quoting can mangle it on Azure ML's command line), sets
  ``sys.argv`` to exactly the arguments the local runner hands the entry script (settings JSON, lake URI, run
  id, model dir or manifest), imports the entry script and calls its ``init()``; opens the progress channel
  when the job carries one;
- ``run(mini_batch, mini_batch_context)``: calls the entry script's ``run`` unchanged.
  One series per mini-batch (partition keys = the id columns): a failure is reported (progress channel) and
  re-raised, so Azure ML retries and counts it as it would.
  A chunk of many series (partition key ``mltable.CHUNK_KEY``): the entry script gets the whole chunk (its
  vectorised path); if that raises, the chunk is rerun series by series, each with up to ``max_retries``
  retries, so a series that still fails is recorded as exactly that series' failure (a failure token) and the
  rest of the chunk keeps its results. Either way the returned rows are encoded as append-row tokens
  (``codec``), each under its own series' key;
- ``shutdown()``: the entry script's ``shutdown()``, then the last progress message.

The same module runs under the local runner (``JobSpec(entry_script="mm_assets.parallel.azureml.shim")``),
which is how the tests run the Azure code path offline. This module does not import Dagster.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import sys
import traceback
from collections.abc import Sequence

import pandas as pd

from mm_assets.ids import series_key, series_keys
from mm_assets.parallel.azureml import codec
from mm_assets.parallel.azureml.mltable import CHUNK_KEY
from mm_assets.parallel.azureml.progress import ProgressReporter
from mm_assets.parallel.contract import MiniBatchContext, series_in

ARGS_FLAG = "--mm-assets-args"
SHIM_MODULE = __name__

_state: dict = {}


def encode_arguments(entry_script: str, arguments: Sequence[str], partition_keys: Sequence[str],
                     id_columns: Sequence[str] = (), max_retries: int = 0) -> str:
    """The token of ``--mm-assets-args``; a chunked job (``partition_keys`` = [CHUNK_KEY]) also carries the id
    columns (to find the series of a chunk) and ``max_retries`` (each series' retries when a chunk fails)."""
    payload = {"entry": entry_script, "arguments": list(arguments), "keys": list(partition_keys),
               "ids": list(id_columns), "retries": int(max_retries)}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_arguments(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.encode()).decode())


def init() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(ARGS_FLAG, dest="payload", required=True)
    known, _ = parser.parse_known_args(sys.argv[1:])
    payload = decode_arguments(known.payload)
    sys.argv = [sys.argv[0], *payload["arguments"]]
    module = importlib.import_module(payload["entry"])
    module.init()
    _state.update(module=module, keys=list(payload["keys"]), ids=list(payload.get("ids") or []),
                  retries=int(payload.get("retries") or 0), reporter=ProgressReporter.from_environment())


def run(mini_batch, mini_batch_context):
    if CHUNK_KEY in _state["keys"]:
        return codec.result_frame(run_chunk(mini_batch, mini_batch_context))
    module, keys, reporter = _state["module"], _state["keys"], _state["reporter"]
    values = dict(getattr(mini_batch_context, "partition_key_value", None) or {})
    ids = {k: str(values[k]) if k in values else str(mini_batch[k].iloc[0]) for k in keys}
    key = series_key([ids[k] for k in keys])
    try:
        out = module.run(mini_batch, mini_batch_context)
    except BaseException as exc:
        if reporter is not None:
            reporter.attempt_failed(key, ids, exc)
        raise
    if reporter is not None:
        reporter.series_done(key)
    return codec.result_frame(codec.encode_rows(out, key))


def run_chunk(mini_batch: pd.DataFrame, mini_batch_context) -> list[str]:
    """The tokens of one chunk: the whole chunk at once, or series by series when that fails."""
    module, id_cols, reporter = _state["module"], _state["ids"], _state["reporter"]
    batch = mini_batch.drop(columns=[CHUNK_KEY], errors="ignore").reset_index(drop=True)
    series = series_in(batch, MiniBatchContext({}), id_cols)  # the chunk's context names no series: ids from rows
    try:
        out = module.run(batch, mini_batch_context)
    except Exception as exc:  # noqa: BLE001 - rerun series by series: the failing ones are found and recorded
        print(f"mm-assets: chunk of {len(series)} series failed ({type(exc).__name__}: {exc}); rerunning them "
              "one by one")
        tokens: list[str] = []
        for lo, hi, ids in series:
            tokens.extend(_run_one(module, batch.iloc[lo:hi].reset_index(drop=True), ids))
        return tokens
    tokens = _tokens_by_series(out, [series_key(ids) for _, _, ids in series], id_cols)
    if reporter is not None:
        for _, _, ids in series:
            reporter.series_done(series_key(ids))
    return tokens


def _run_one(module, rows: pd.DataFrame, ids: list[str]) -> list[str]:
    """One series of a failed chunk, alone, with its retries: its tokens, or one failure token."""
    id_cols, reporter, retries = _state["ids"], _state["reporter"], _state["retries"]
    key = series_key(ids)
    context = MiniBatchContext(partition_key_value=dict(zip(id_cols, ids)))
    for attempt in range(1, retries + 2):
        try:
            out = module.run(rows, context)
        except Exception as exc:  # noqa: BLE001 - recorded as this series' failure after its last attempt
            if reporter is not None:
                reporter.attempt_failed(key, dict(zip(id_cols, ids)), exc)
            if attempt == retries + 1:
                return [codec.encode_failure(key, type(exc).__name__, str(exc),
                                             "".join(traceback.format_exception(exc)), attempt)]
            continue
        if reporter is not None:
            reporter.series_done(key)
        return codec.encode_rows(out, key)
    return []  # unreachable: the loop returns on its last attempt


def _tokens_by_series(out, keys: list[str], id_cols: list[str]) -> list[str]:
    """Each returned row under its own series' key (from its id columns, else its ``series_key`` column); a
    series of the chunk without rows still reports (an empty token)."""
    frame = out if isinstance(out, pd.DataFrame) else pd.DataFrame(list(out or []))
    if frame.empty:
        return [t for key in keys for t in codec.encode_rows(None, key)]
    if all(c in frame.columns for c in id_cols):
        row_keys = series_keys(frame, id_cols)
    elif "series_key" in frame.columns:
        row_keys = frame["series_key"].astype(str)
    else:
        raise ValueError(f"the entry script's rows carry neither the id columns {id_cols} nor series_key: a "
                         "chunk's rows cannot be told apart")
    tokens: list[str] = []
    for key, rows in frame.groupby(row_keys.to_numpy(), sort=False):
        tokens.extend(codec.encode_rows(rows, str(key)))
    present = set(row_keys)
    tokens.extend(t for key in keys if key not in present for t in codec.encode_rows(None, key))
    return tokens


def shutdown() -> None:
    module = _state.get("module")
    try:
        if module is not None and hasattr(module, "shutdown"):
            module.shutdown()
    finally:
        reporter = _state.get("reporter")
        if reporter is not None:
            reporter.close()
