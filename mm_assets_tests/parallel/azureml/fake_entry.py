"""An entry script for the azureml tests (workers import it by module name, so it lives in a module).

It reports what it was handed, so the tests can compare the Azure code path (the shim, the MLTable input) with
the local one: the arguments (``sys.argv`` after ``init``), the types of the key values in the context and of
the id columns in the mini-batch, the rows. Behaviour per series key (``store/item``) from the environment:
``FAKE_FAIL`` (always raises ValueError), ``FAKE_EMPTY`` (returns no rows), ``FAKE_HANG`` (sleeps far past any
timeout), ``FAKE_FLAKY`` (fails its first attempt only; counted with a marker file in ``FAKE_STATE_DIR``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from mm_assets.runs import key_boundaries

_state: dict = {}


def _keys(name: str) -> set[str]:
    return {k.strip() for k in os.environ.get(name, "").split(",") if k.strip()}


def init() -> None:
    _state.update(argv=list(sys.argv[1:]), fail=_keys("FAKE_FAIL"), empty=_keys("FAKE_EMPTY"),
                  hang=_keys("FAKE_HANG"), flaky=_keys("FAKE_FLAKY"))


def run(mini_batch: pd.DataFrame, mini_batch_context) -> pd.DataFrame:
    values = dict(mini_batch_context.partition_key_value)
    if "store" in values:  # one series per mini-batch: its ids in the context
        return _one(mini_batch, values, 1)
    # a chunk of many series (entry scripts that take many): each found by its id columns; one failure fails all
    starts, stops = key_boundaries(mini_batch, ["store", "item"])
    return pd.concat([_one(mini_batch.iloc[lo:hi], {"store": mini_batch["store"].iloc[lo],
                                                    "item": mini_batch["item"].iloc[lo]}, len(starts))
                      for lo, hi in zip(starts, stops)], ignore_index=True)


def _one(mini_batch: pd.DataFrame, values: dict, series_in_mini_batch: int) -> pd.DataFrame:
    key = "/".join(str(values[k]) for k in ("store", "item"))
    if key in _state["fail"]:
        raise ValueError(f"boom in {key} (with spaces)")
    if key in _state["empty"]:
        return pd.DataFrame()
    if key in _state["hang"]:
        time.sleep(60)
    if key in _state["flaky"]:
        marker = Path(os.environ["FAKE_STATE_DIR"]) / f"flaky-{key.replace('/', '_')}"
        try:
            marker.touch(exist_ok=False)  # atomic: only the very first attempt creates it
        except FileExistsError:
            pass
        else:
            raise RuntimeError(f"first attempt of {key} fails")
    return pd.DataFrame([{
        "store": values["store"],
        "item": values["item"],
        "series_key": key,
        "rows": len(mini_batch),
        "y_sum": float(mini_batch["y"].sum()),
        "first_ds": pd.Timestamp(mini_batch["ds"].min()),
        "key_types": ",".join(type(v).__name__ for v in values.values()),
        "column_types": ",".join(str(mini_batch[c].dtype) for c in ("store", "item")),
        "argv": json.dumps(_state["argv"]),
        "note": "a text with spaces, \"quotes\" and a\nnewline",
        "series_in_mini_batch": series_in_mini_batch,
    }])
