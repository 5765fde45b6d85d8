"""Train one series the many-models way: hold out the newest periods, measure, then refit on everything.

Why hold out then refit: the holdout metrics are what the promotion gate judges and what BI shows; the
served model should still have seen the most recent data. A series too short for its model is served by its
baseline (``forecasting.baseline``) and recorded as a fallback with the reason, never silently. The holdout is
judged against the series' baseline on the same periods (what the gate compares), and a holdout forecast that
leaves the sanity envelope is replaced by that baseline and counted (``envelope_replaced``).

Lead time (``gap``) and windows: the holdout is the newest windows of ``horizon`` periods (``forecasting.holdout``:
enough to cover ``holdout_periods``, one by default in code, 8 periods from the settings), the model is fitted on
the data before them and the lead time, and each window is forecast from its own origin ``gap`` periods before
it, so it is judged on the periods a forecast with that lead time covers, several times over.

``auto``: the model type is picked per series by a short rolling-origin backtest (``backtest.select_model``)
on the data *before the holdout's origin*; the holdout then judges the chosen type like any other model, so
the choice has not seen the periods it is measured on (choosing on all data would leak the holdout into the
gate's figures). The chosen type is refit on all data and registered under its own name; the choice and the
candidates' scores are in ``reason`` and in the metrics (``auto_wape_<type>``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting import envelope, holdout
from mm_assets.forecasting.backtest import AUTO, model_params, select_model
from mm_assets.forecasting.baseline import Baseline, intermittent_rows
from mm_assets.forecasting.metrics import FIT_RECENT_MAX, METRIC_NAMES, forecast_metrics
from mm_assets.forecasting.models import BASELINE, BASELINE_TYPES, Forecaster, make_model
from mm_assets.forecasting.series import (
    SeriesConfig,
    Y,
    future_frame,
    regularize,
    split_future,
    unplanned_values,
    without_slips,
)

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
    frame: pd.DataFrame, model_type: str, cfg: SeriesConfig, params: dict, windows: int = 1
) -> tuple[dict[str, float], np.ndarray, Forecaster]:
    """The holdout model (fitted before the ``windows`` newest windows of the horizon: ``forecasting.holdout``),
    its forecast of each window from the window's own origin, and the metrics of them all against the baseline
    chosen on the same data."""
    n_fit = len(frame) - holdout.held_out(windows, cfg)
    train = frame.iloc[:n_fit]
    y_train = train[Y].to_numpy(dtype=float)
    yardstick = Baseline(cfg).fit(train)
    model = yardstick if model_type == BASELINE else make_model(model_type, cfg, params).fit(train)
    preds, bases, tests, replaced = [], [], [], False
    for n_origin, periods in holdout.frame_windows(len(frame), windows, cfg):
        test = frame.iloc[periods]
        history = None if n_origin == n_fit else frame.iloc[:n_origin]  # the fit's own tail: as it was stored
        base = yardstick.predict(test, history=history)
        # a fallback is its own yardstick: fitted and scored once
        pred = base if model is yardstick else model.predict(test, history=history)
        replaced |= model.last_envelope_ is not None
        preds.append(np.asarray(pred, dtype=float))
        bases.append(np.asarray(base, dtype=float))
        tests.append(test[Y].to_numpy(dtype=float))
    actual, pred, baseline = np.concatenate(tests), np.concatenate(preds), np.concatenate(bases)
    metrics = forecast_metrics(actual, pred, y_train, cfg.season, y_baseline=baseline)
    base = metrics if model is yardstick else forecast_metrics(actual, baseline, y_train, cfg.season)
    metrics["intermittent"] = float(intermittent_rows(y_train[None, :], np.array([y_train.size]), cfg)[0])
    metrics["baseline_accuracy"] = base["accuracy"]
    metrics["baseline_wape"] = base["wape"]
    metrics["envelope_replaced"] = float(replaced)
    metrics[FIT_RECENT_MAX] = envelope.recent_max(y_train, cfg)
    return metrics, pred, model


def unmeasured_metrics() -> dict[str, float]:
    """The metrics of a series with no holdout to judge it on: every figure NaN, nothing replaced."""
    metrics = {k: math.nan for k in METRIC_NAMES}
    metrics.update(baseline_accuracy=math.nan, baseline_wape=math.nan, envelope_replaced=0.0)
    return metrics


def short_history_reason(periods: int, cfg: SeriesConfig) -> str:
    """Why a series of ``periods`` periods is served by its baseline instead of its model."""
    return (
        f"history of {periods} periods is shorter than min_train_periods + horizon"
        f"{' + gap' if cfg.gap else ''} = {cfg.min_train_periods + cfg.horizon + cfg.gap}"
    )


def train_series(
    rows: pd.DataFrame, cfg: SeriesConfig, model_type: str, params: dict | None = None
) -> TrainOutcome:
    """Rows of one series (ds, y, regressors) → fitted model, holdout metrics and status."""
    started = time.perf_counter()
    return train_regular(regularize(rows, cfg), cfg, model_type, params, started)


def train_regular(
    frame: pd.DataFrame, cfg: SeriesConfig, model_type: str, params: dict | None = None,
    started: float | None = None,
) -> TrainOutcome:
    """``train_series`` on a frame already on its regular grid (``series.regularize``'s output)."""
    params = params or {}
    started = time.perf_counter() if started is None else started
    n_obs = int(frame[Y].notna().sum())
    status, reason, used_type = STATUS_TRAINED, None, model_type
    periods = len(frame)
    held_out = cfg.horizon + cfg.gap
    auto_scores: dict[str, float] = {}
    windows = int(holdout.windows(periods, cfg))
    if model_type not in BASELINE_TYPES and periods < cfg.min_train_periods + held_out:
        status, used_type, reason = STATUS_FALLBACK, BASELINE, short_history_reason(periods, cfg)
    elif model_type == AUTO:  # chosen on the data before the holdout, which judges the choice
        choice = select_model(frame.iloc[:periods - holdout.held_out(windows, cfg)], cfg, params=params)
        used_type, reason, auto_scores = choice.model_type, choice.reason, choice.scores
    fit_params = model_params(used_type, params, model_type)
    record, held = None, None
    if periods > held_out + 1 and frame[Y].iloc[:-held_out].notna().any():
        metrics, pred, held = _holdout_metrics(frame, used_type, cfg, fit_params, windows)
        tail = frame.iloc[-(windows + 2) * cfg.horizon :]
        record = {
            "ds": [d.strftime("%Y-%m-%d") for d in tail.index],
            "actual": [None if np.isnan(v) else round(float(v), 4) for v in tail[Y].to_numpy(dtype=float)],
            "forecast": [round(float(v), 4) for v in pred],
        }
    else:
        metrics = unmeasured_metrics()
    metrics.update({f"auto_wape_{k}": v for k, v in auto_scores.items()})
    model = make_model(used_type, cfg, fit_params)
    if held is not None:
        model.start_from(held)
    model.fit(frame)
    form = getattr(model, "reason_", "")  # the method the baseline chose, the form ets chose
    if form:
        reason = f"{reason}; {form}" if reason else form
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
        extra={"holdout": record},
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
    Returns (frame with ds, yhat) and info: origin, periods that used planned regressors, and ``envelope``:
    why the model's forecast was replaced by the baseline (None when it was not).
    """
    horizon = horizon or cfg.horizon
    if rows is not None:
        history = regularize(rows, cfg)
        if planned is None and cfg.regressors:
            planned = split_future(rows, cfg)
    else:
        history = model.tail_
    assert history is not None
    unplanned = unplanned_values({c: history[c].to_numpy(dtype=float) for c in cfg.regressors}, model.kinds_, cfg)
    if planned is not None and not planned.empty:  # a planned price of 0 or below: no plan there
        columns = [c for c in cfg.regressors if c in planned.columns]
        planned = planned.assign(**without_slips({c: planned[c].to_numpy(dtype=float) for c in columns},
                                                 model.kinds_))
    fut, n_planned = future_frame(history.index[-1], unplanned, model.flags_, cfg, horizon, planned)
    yhat = model.predict(fut, history=history)
    out = pd.DataFrame({"ds": fut.index, "yhat": np.asarray(yhat, dtype=float)})
    return out, {"origin": history.index[-1], "planned_periods": n_planned, "envelope": model.last_envelope_}
