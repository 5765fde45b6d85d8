"""Train one series the many-models way: hold out the last horizon, measure, then refit on everything.

Why hold out then refit: the holdout metrics are what the promotion gate judges and what BI shows; the
served model should still have seen the most recent data. A series too short for its model is served by the
seasonal-naive baseline and recorded as a fallback with the reason, never silently.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting.metrics import forecast_metrics
from mm_assets.forecasting.models import Forecaster, SeasonalNaive, make_model
from mm_assets.forecasting.series import Y, SeriesConfig, future_frame, regularize, split_future

STATUS_TRAINED = "trained"
STATUS_FALLBACK = "fallback"
STATUS_FAILED = "failed"


@dataclass
class TrainOutcome:
    model: Forecaster
    model_type: str
    status: str
    reason: str | None
    metrics: dict[str, float]
    n_obs: int
    data_start: pd.Timestamp
    data_end: pd.Timestamp
    fit_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _holdout_metrics(
    frame: pd.DataFrame, model_type: str, cfg: SeriesConfig, params: dict
) -> tuple[dict[str, float], np.ndarray]:
    h = cfg.horizon
    train, test = frame.iloc[:-h], frame.iloc[-h:]
    y_train = train[Y].to_numpy(dtype=float)
    baseline = SeasonalNaive(cfg).fit(train).predict(test)
    if model_type == "seasonal_naive":
        pred = baseline
    else:
        pred = make_model(model_type, cfg, params).fit(train).predict(test)
    metrics = forecast_metrics(test[Y].to_numpy(dtype=float), pred, y_train, cfg.season, y_baseline=baseline)
    base = forecast_metrics(test[Y].to_numpy(dtype=float), baseline, y_train, cfg.season)
    metrics["baseline_accuracy"] = base["accuracy"]
    metrics["baseline_wape"] = base["wape"]
    return metrics, np.asarray(pred, dtype=float)


def train_series(
    rows: pd.DataFrame, cfg: SeriesConfig, model_type: str, params: dict | None = None
) -> TrainOutcome:
    """Rows of one series (ds, y, regressors) → fitted model, holdout metrics and status."""
    params = params or {}
    started = time.perf_counter()
    frame = regularize(rows, cfg)
    n_obs = int(frame[Y].notna().sum())
    status, reason, used_type = STATUS_TRAINED, None, model_type
    periods = len(frame)
    if model_type != "seasonal_naive" and periods < cfg.min_train_periods + cfg.horizon:
        status, used_type = STATUS_FALLBACK, "seasonal_naive"
        reason = (
            f"history of {periods} periods is shorter than min_train_periods + horizon = "
            f"{cfg.min_train_periods + cfg.horizon}"
        )
    holdout = None
    if periods > cfg.horizon + 1 and frame[Y].iloc[: -cfg.horizon].notna().any():
        metrics, pred = _holdout_metrics(frame, used_type, cfg, params)
        tail = frame.iloc[-3 * cfg.horizon :]
        holdout = {
            "ds": [d.strftime("%Y-%m-%d") for d in tail.index],
            "actual": [None if np.isnan(v) else round(float(v), 4) for v in tail[Y].to_numpy(dtype=float)],
            "forecast": [round(float(v), 4) for v in pred],
        }
    else:
        metrics = {k: math.nan for k in ("wape", "accuracy", "mape", "smape", "rmse", "mase", "rel_mae_snaive")}
        metrics.update(baseline_accuracy=math.nan, baseline_wape=math.nan)
    model = make_model(used_type, cfg, params if used_type == model_type else None).fit(frame)
    return TrainOutcome(
        model=model,
        model_type=used_type,
        status=status,
        reason=reason,
        metrics={k: float(v) for k, v in metrics.items()},
        n_obs=n_obs,
        data_start=frame.index[0],
        data_end=frame.index[-1],
        fit_seconds=time.perf_counter() - started,
        extra={"holdout": holdout},
    )


def forecast_from_model(
    model: Forecaster,
    cfg: SeriesConfig,
    horizon: int | None = None,
    rows: pd.DataFrame | None = None,
    planned: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Forecast ``horizon`` periods after the origin.

    ``rows``: the series' current rows (ds, y, regressors, possibly planned future rows); when given, the
    origin is its last observed timestamp and its history feeds the lags, else the model's stored tail.
    Returns (frame with ds, yhat) and info: origin, periods that used planned regressors.
    """
    horizon = horizon or cfg.horizon
    if rows is not None:
        history = regularize(rows, cfg)
        if planned is None and cfg.regressors:
            planned = split_future(rows, cfg)
    else:
        history = model.tail_
    assert history is not None
    last_regs = {c: float(history[c].iloc[-1]) for c in cfg.regressors}
    fut, n_planned = future_frame(history.index[-1], last_regs, model.binary_, cfg, horizon, planned)
    yhat = model.predict(fut, history=history)
    out = pd.DataFrame({"ds": fut.index, "yhat": np.asarray(yhat, dtype=float)})
    return out, {"origin": history.index[-1], "planned_periods": n_planned}
