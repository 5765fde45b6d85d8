"""What a model version was fitted from, as one number: its training rows, the model type and options, and the
settings a fit depends on (``fit_digest``, kept in the version's metrics).

Why: a run again over unchanged data (a retried cycle, a partition materialized twice, a backfill over days
already done) refits every series to the very model its champion is. Promoting it changed nothing a planner
sees, yet wrote a new production version of every series and said "promoted" for each: the gate keeps the
champion when the two digests are equal, and says why.

A global model learns from every series of its batch, so its versions carry the digest of the whole batch: a
row changed in another store is another fit. Rows are hashed by pandas (``hash_pandas_object``) and summed per
series, so their order does not count and one pass over a mini-batch gives every series' digest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd

FIT_DIGEST = "fit_digest"
DIGEST_BITS = 48  # a float holds 53 bits exactly: the metrics JSON keeps the digest as a number


def recipe_text(model_type: str, params: dict[str, Any] | None, cfg: Any) -> str:
    """The model type, its options and the series settings (``SeriesConfig``: horizon, gap, season, regressors,
    holdout, envelope, ...) as one text: a change of any of them makes another fit of the same rows."""
    return json.dumps({"type": str(model_type), "params": params or {}, "series": repr(cfg)}, sort_keys=True,
                      default=str)


def series_digests(frame: pd.DataFrame, starts: np.ndarray, stops: np.ndarray, id_columns: list[str]) -> np.ndarray:
    """Per series (rows ``starts[i]:stops[i]`` of ``frame``): the sum of its rows' hashes over every column but the
    ids (uint64, wrapping). Equal for equal rows in any order; one value changed, added or removed changes it."""
    columns = [c for c in frame.columns if c not in id_columns]
    if not len(frame) or not columns:
        return np.zeros(len(starts), dtype=np.uint64)
    hashes = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy(dtype=np.uint64)
    total = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(hashes, dtype=np.uint64)])
    starts, stops = np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64)
    return total[stops] - total[starts]  # uint64 arithmetic wraps: the sums' difference is the series' sum


def batch_digest(keys: list[str], digests: np.ndarray) -> int:
    """One digest of many series' rows, with which series each belongs to (a global model's training data)."""
    order = np.argsort(np.asarray(keys, dtype=object), kind="stable")
    text = "\n".join(f"{keys[i]}:{int(digests[i])}" for i in order)
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


def fit_digest(recipe: str, data: int) -> float:
    """The recorded digest of a fit: the recipe and the data digest, ``DIGEST_BITS`` bits as a float."""
    digest = hashlib.sha256(f"{recipe}\n{int(data)}".encode()).hexdigest()
    return float(int(digest, 16) >> (256 - DIGEST_BITS))


def same_fit(a, b) -> bool:
    """Whether two versions' recorded digests say they are the same fit; unknown (a version registered before
    digests were) is never the same."""
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(a) and np.isfinite(b) and a == b)
