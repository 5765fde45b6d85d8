"""Entry scripts for the local-runner tests (the workers import them by module name, so they live here).

Behaviour is read from the environment (``JobSpec.environment``) and ``sys.argv`` (``JobSpec.arguments``),
exactly the channels the runner uses to configure a worker:

- ``--tag X``                 echoed in every result row (proves the arguments reached the worker)
- ``FAKE_STATE_DIR``          folder where attempts and init calls are logged (one file per event kind)
- ``FAKE_FAIL``               comma-separated series keys whose ``run`` always raises ValueError
- ``FAKE_FLAKY``              series keys that raise on their first attempt only (counted across processes)
- ``FAKE_HANG``               series keys whose ``run`` sleeps far past any timeout
- ``FAKE_CRASH``              series keys whose ``run`` kills the worker process (``os._exit(1)``)
- ``FAKE_SLEEP_S``            seconds every other series sleeps (to keep workers busy)
- ``FAKE_INIT_FAIL``          if set, ``init`` raises in every worker

A series key is the partition key values joined by ``/`` in key order (e.g. ``1/10``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import pandas as pd

_state: dict = {}


def _keys(name: str) -> set[str]:
    return {k.strip() for k in os.environ.get(name, "").split(",") if k.strip()}


def _log(kind: str, text: str) -> None:
    folder = os.environ.get("FAKE_STATE_DIR")
    if folder:
        # one file per event: appends from several processes never interleave; written under another name and
        # renamed, so that the test never reads one created but not yet written (a worker killed in between, or
        # read in between, gave an empty pid)
        name = f"{kind}.{os.getpid()}.{uuid.uuid4().hex}"
        (Path(folder) / f"_{name}").write_text(text)
        os.replace(Path(folder) / f"_{name}", Path(folder) / name)


def events(folder: Path, kind: str) -> list[str]:
    """Texts of the ``kind`` events logged under ``folder`` (used by the tests, in the parent)."""
    return sorted(p.read_text() for p in Path(folder).glob(f"{kind}.*"))


def init() -> None:
    if os.environ.get("FAKE_INIT_FAIL"):
        raise RuntimeError("cannot reach the model store (FAKE_INIT_FAIL)")
    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", default="")
    args, _ = parser.parse_known_args(sys.argv[1:])
    _state.update(
        tag=args.tag,
        fail=_keys("FAKE_FAIL"),
        flaky=_keys("FAKE_FLAKY"),
        hang=_keys("FAKE_HANG"),
        crash=_keys("FAKE_CRASH"),
        sleep=float(os.environ.get("FAKE_SLEEP_S", "0") or 0),
    )
    _log("init", str(os.getpid()))


def run(mini_batch: pd.DataFrame, mini_batch_context) -> pd.DataFrame:
    if not mini_batch_context.partition_key_value:  # many series in one mini-batch (JobSpec.multi_series)
        return _run_many(mini_batch, mini_batch_context)
    values = dict(mini_batch_context.partition_key_value)
    key = "/".join(str(v) for v in values.values())
    _log("attempt", key)
    if key in _state["crash"]:
        os._exit(1)
    if key in _state["hang"]:
        time.sleep(30)
    if key in _state["fail"]:
        raise ValueError(f"boom in {key}")
    if key in _state["flaky"]:
        folder = Path(os.environ["FAKE_STATE_DIR"])
        marker = folder / f"flaky-{key.replace('/', '_')}"
        try:
            marker.touch(exist_ok=False)  # atomic: only the very first attempt creates it
        except FileExistsError:
            pass
        else:
            raise RuntimeError(f"first attempt of {key} fails")
    if _state["sleep"]:
        time.sleep(_state["sleep"])
    columns = list(values)
    row = {
        "series_key": key,
        "key_types": ",".join(type(v).__name__ for v in values.values()),
        "rows": len(mini_batch),
        "distinct_series": len(mini_batch[columns].drop_duplicates()),
        "minibatch_index": mini_batch_context.minibatch_index,
        "pid": os.getpid(),
        "tag": _state["tag"],
        "threads": os.environ.get("MM_ASSETS_WORKER_THREADS", ""),
    }
    row.update({f"key_{k}": v for k, v in values.items()})
    return pd.DataFrame([row])


def shutdown() -> None:
    _log("shutdown", str(os.getpid()))


def _run_many(mini_batch: pd.DataFrame, mini_batch_context) -> pd.DataFrame:
    """A multi-series mini-batch: raises if any of its series is in FAKE_FAIL, else one row per series."""
    columns = ["store", "item"]
    groups = mini_batch.groupby(columns, sort=False)
    keys = ["/".join(str(v) for v in key) for key in groups.groups]
    _log("batch", ",".join(keys))
    failing = [k for k in keys if k in _state["fail"]]
    if failing:
        raise ValueError(f"boom in {failing[0]}")
    # the rows the runner says each series has are the ones the ids say
    from mm_assets.parallel.contract import MiniBatchContext, series_in

    told = mini_batch_context.series_rows is not None and (
        list(series_in(mini_batch, mini_batch_context, columns))
        == list(series_in(mini_batch, MiniBatchContext({}), columns)))
    return pd.DataFrame(
        [
            {"series_key": key, "rows": len(rows), "distinct_series": len(keys), "pid": os.getpid(),
             "tag": _state["tag"], "series_rows_told": told}
            for key, (_, rows) in zip(keys, groups)
        ]
    )
