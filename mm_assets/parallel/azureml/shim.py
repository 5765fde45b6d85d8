"""The Azure ML entry script of every mm-assets parallel job: the real entry script, wrapped.

Azure ML loads ``entry_script`` (a file at the root of the uploaded code folder, see ``job.stage_code``) which
imports ``init``/``run``/``shutdown`` from here. The wrapper:

- ``init()``: reads ``--mm-assets-args <token>`` from ``sys.argv`` (a URL-safe base64 JSON of the entry script's
  module name, its arguments and the partition keys: no quoting can mangle it on Azure ML's command line), sets
  ``sys.argv`` to exactly the arguments the local runner hands the entry script (settings JSON, lake URI, run
  id, model dir or manifest), imports the entry script and calls its ``init()``; opens the progress channel
  when the job carries one;
- ``run(mini_batch, mini_batch_context)``: calls the entry script's ``run`` unchanged; a failure is reported
  (progress channel) and re-raised, so Azure ML retries and counts it as it would; the returned rows are encoded
  as append-row tokens (``codec``);
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
from collections.abc import Sequence

from mm_assets.ids import series_key
from mm_assets.parallel.azureml import codec
from mm_assets.parallel.azureml.progress import ProgressReporter

ARGS_FLAG = "--mm-assets-args"
SHIM_MODULE = __name__

_state: dict = {}


def encode_arguments(entry_script: str, arguments: Sequence[str], partition_keys: Sequence[str]) -> str:
    payload = {"entry": entry_script, "arguments": list(arguments), "keys": list(partition_keys)}
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
    _state.update(module=module, keys=list(payload["keys"]), reporter=ProgressReporter.from_environment())


def run(mini_batch, mini_batch_context):
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


def shutdown() -> None:
    module = _state.get("module")
    try:
        if module is not None and hasattr(module, "shutdown"):
            module.shutdown()
    finally:
        reporter = _state.get("reporter")
        if reporter is not None:
            reporter.close()
