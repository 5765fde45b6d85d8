"""Point-forecast accuracy metrics for one series' holdout.

Definitions (the ones forecasting practitioners and the promotion gate use):

- WAPE  = sum|y - ŷ| / sum|y|            (pooled; robust to zero actuals, undefined if all actuals are 0)
- accuracy = 1 - WAPE                     (the business metric; NaN when WAPE is undefined)
- MAPE  = mean(|y - ŷ| / |y|) over points with y != 0  (zero actuals are *excluded*, not divided by)
- sMAPE = mean(2|y - ŷ| / (|y| + |ŷ|)) over points where |y| + |ŷ| > 0
- RMSE  = sqrt(mean((y - ŷ)^2))
- MASE  = MAE / mean|y_t - y_{t-m}| on the training data (Hyndman & Koehler): < 1 means the forecast beats
          the in-sample seasonal-naive one-step error
- rel_mae_baseline = MAE / MAE of the series' baseline forecast on the same holdout: < 1 means the model beats
          the baseline it would otherwise be replaced by

Missing actuals (closed days) are ignored point by point.
"""

from __future__ import annotations

import json
import math

import numpy as np

METRIC_NAMES = ("wape", "accuracy", "mape", "smape", "rmse", "mase", "rel_mae_baseline")


def _nan_dict() -> dict[str, float]:
    return {name: math.nan for name in METRIC_NAMES}


def seasonal_naive_scale(y_train: np.ndarray, season: int) -> float:
    """Mean absolute seasonal difference of the training data (the MASE denominator); NaN if undefined."""
    y = np.asarray(y_train, dtype=float)
    if y.size <= season:
        season = 1
    if y.size <= season:
        return math.nan
    diffs = np.abs(y[season:] - y[:-season])
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size == 0:
        return math.nan
    scale = float(diffs.mean())
    return scale if scale > 0 else math.nan


def forecast_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray,
    season: int,
    y_baseline: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of one holdout, as plain floats (NaN where a metric is undefined)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    mask = ~np.isnan(y_true) & ~np.isnan(y_pred)
    if not mask.any():
        return _nan_dict()
    yt, yp = y_true[mask], y_pred[mask]
    err = yt - yp
    abs_err = np.abs(err)
    out = _nan_dict()
    denom = np.abs(yt).sum()
    if denom > 0:
        out["wape"] = float(abs_err.sum() / denom)
        out["accuracy"] = 1.0 - out["wape"]
    nonzero = yt != 0
    if nonzero.any():
        out["mape"] = float(np.mean(abs_err[nonzero] / np.abs(yt[nonzero])))
    sden = np.abs(yt) + np.abs(yp)
    spos = sden > 0
    if spos.any():
        out["smape"] = float(np.mean(2 * abs_err[spos] / sden[spos]))
    out["rmse"] = float(np.sqrt(np.mean(err**2)))
    mae = float(abs_err.mean())
    scale = seasonal_naive_scale(y_train, season)
    if not math.isnan(scale):
        out["mase"] = mae / scale
    if y_baseline is not None:
        yb = np.asarray(y_baseline, dtype=float)[mask]
        base_mae = float(np.nanmean(np.abs(yt - yb))) if yb.size else math.nan
        if base_mae > 0:
            out["rel_mae_baseline"] = mae / base_mae
        elif mae == 0:
            out["rel_mae_baseline"] = 1.0
    return out


def metrics_json(metrics: dict[str, float]) -> str:
    """Metrics as JSON, NaN written as null (JSON has no NaN)."""
    return json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()})


def metric_column(metrics_json_values, name: str) -> list[float]:
    """One metric out of a column of ``metrics_json`` strings (NaN where absent or unreadable)."""
    out = []
    for raw in metrics_json_values:
        try:
            value = json.loads(raw).get(name) if isinstance(raw, str) else None
        except ValueError:
            value = None
        out.append(math.nan if value is None else float(value))
    return out
