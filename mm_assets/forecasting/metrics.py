"""Point-forecast accuracy metrics for one series' holdout.

Definitions (the ones forecasting practitioners and the promotion gate use):

- WAPE  = sum|y - ŷ| / sum|y|            (pooled; robust to zero actuals, undefined if all actuals are 0)
- accuracy = 1 - WAPE                     (the business metric; NaN when WAPE is undefined)
- MAPE  = mean(|y - ŷ| / |y|) over points with y != 0  (zero actuals are *excluded*, not divided by)
- sMAPE = mean(2|y - ŷ| / (|y| + |ŷ|)) over points where |y| + |ŷ| > 0
- RMSE  = sqrt(mean((y - ŷ)^2))
- MASE  = MAE / mean|y_t - y_{t-m}| on the training data (Hyndman & Koehler): < 1 means the forecast beats
          the in-sample seasonal-naive one-step error; m = 1 when the training data hold fewer than a season of
          observed seasonal pairs (``seasonal_naive_scales``)
- rel_mae_baseline = MAE / MAE of the series' baseline forecast on the same holdout: < 1 means the model beats
          the baseline it would otherwise be replaced by
- rel_rmse_baseline = RMSE / RMSE of the baseline on the same holdout: what an intermittent series is judged by
          (absolute error prefers a forecast of zero, or the lower of two, on sales that are mostly zero)
- intermittent = 1 when the history before the holdout is intermittent (``baseline.intermittent_rows``)
- fit_recent_max = the largest value of the holdout model's data over the sanity envelope's window: 0 says the
          series sold nothing there, so the envelope allowed its holdout forecast nothing but 0 (the gate's reason)
- holdout_points = the holdout's observed actuals the metrics are computed on
- holdout_periods = the holdout's periods (the horizon it was judged over, observed or not): a version judged over
          another number of periods (a changed horizon) is not compared with it (``reporting.changes``)
- holdout_fingerprint = a position-weighted sum of the holdout's actuals (``same_actuals``): two versions trained on
          data of the same end were judged on the same periods, but only on the same actuals if these agree (a late
          correction of a holdout period changes the actuals, not the periods)

Missing actuals (closed days) are ignored point by point.
"""

from __future__ import annotations

import json
import math

import numpy as np

from mm_assets.forecasting import envelope

METRIC_NAMES = ("wape", "accuracy", "mape", "smape", "rmse", "mase", "rel_mae_baseline", "rel_rmse_baseline")


def seasonal_naive_scale(y_train: np.ndarray, season: int) -> float:
    """Mean absolute seasonal difference of the training data (the MASE denominator); NaN if undefined."""
    y = np.asarray(y_train, dtype=float)
    return float(seasonal_naive_scales(y[None, :], np.array([y.size]), season)[0])


def forecast_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_train: np.ndarray,
    season: int,
    y_baseline: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of one holdout, as plain floats (NaN where a metric is undefined): ``forecast_metrics_rows``
    of one row."""
    row = forecast_metrics_rows(
        np.asarray(y_true, dtype=float)[None, :], np.asarray(y_pred, dtype=float)[None, :],
        np.array([seasonal_naive_scale(y_train, season)]),
        y_baseline=None if y_baseline is None else np.asarray(y_baseline, dtype=float)[None, :],
    )
    return {name: float(values[0]) for name, values in row.items()}


def seasonal_naive_scales(y: np.ndarray, n: np.ndarray, season: int) -> np.ndarray:
    """``seasonal_naive_scale(y[k, :n[k]], season)`` of every row k of a panel (K × T) at once: a batch's series
    need no Python loop for their MASE denominators.

    The seasonal scale needs a whole season of observed seasonal pairs (``season`` of them): taken from fewer,
    it weighs some weeks of the year and not others, and a weekly series one year and a week long would be
    scaled by the single difference between two weeks a year apart (a steady series' MASE then reads 60 for a
    good forecast, and ``promotion.max_mase`` would reject it). Such a series, and one whose seasonal
    differences are all zero, is scaled by its one-step differences instead."""
    y = np.asarray(y, dtype=float)
    n = np.asarray(n, dtype=np.int64)
    out = np.full(len(n), np.nan)
    if y.ndim != 2 or not len(n):
        return out

    def mean_abs_diff(rows: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean |y_t - y_{t-lag}| over the observed pairs within each row's length, number of those pairs)."""
        T = y.shape[1]
        if not len(rows) or lag >= T:
            return np.full(len(rows), np.nan), np.zeros(len(rows), dtype=np.int64)
        diffs = np.abs(y[rows, lag:] - y[rows, :-lag])
        ok = (np.arange(T - lag)[None, :] < (n[rows] - lag)[:, None]) & ~np.isnan(diffs)
        count = ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(ok, diffs, 0.0).sum(axis=1) / count
        return np.where((count > 0) & (scale > 0), scale, np.nan), count

    seasonal_rows = np.flatnonzero(n > season)
    scale, pairs = mean_abs_diff(seasonal_rows, season)
    enough = (pairs >= season) & np.isfinite(scale)
    out[seasonal_rows[enough]] = scale[enough]
    rest = np.setdiff1d(np.flatnonzero(n > 1), seasonal_rows[enough])
    out[rest] = mean_abs_diff(rest, 1)[0]
    return out


def forecast_metrics_rows(
    y_true: np.ndarray, y_pred: np.ndarray, scale: np.ndarray, y_baseline: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``forecast_metrics`` of many holdouts at once: rows of ``y_true``/``y_pred`` (K × h), ``scale`` (K,) their
    MASE denominators (``seasonal_naive_scales``) → {metric: (K,)}, NaN where a metric is undefined."""
    yt, yp = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    mask = ~np.isnan(yt) & ~np.isnan(yp)
    count = mask.sum(axis=1)
    err = np.where(mask, yt - yp, 0.0)
    abs_err = np.abs(err)
    abs_true = np.where(mask, np.abs(yt), 0.0)
    nan = np.full(len(yt), np.nan)

    def mean_over(values: np.ndarray, where: np.ndarray) -> np.ndarray:
        n = where.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.where(where, values, 0.0).sum(axis=1) / n, np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        denom = abs_true.sum(axis=1)
        wape = np.where(denom > 0, abs_err.sum(axis=1) / denom, np.nan)
        mae = mean_over(abs_err, mask)
        nonzero = mask & (yt != 0)
        sden = abs_true + np.abs(np.where(mask, yp, 0.0))
        spos = mask & (sden > 0)
        out = {
            "wape": wape, "accuracy": 1.0 - wape,
            "mape": mean_over(abs_err / np.where(nonzero, abs_true, 1.0), nonzero),
            "smape": mean_over(2 * abs_err / np.where(spos, sden, 1.0), spos),
            "rmse": np.sqrt(mean_over(err**2, mask)),
            "mase": mae / np.asarray(scale, dtype=float),
            "rel_mae_baseline": nan.copy(),
            "rel_rmse_baseline": nan.copy(),
        }
        if y_baseline is not None:
            yb = np.asarray(y_baseline, dtype=float)
            base_ok = mask & ~np.isnan(yb)
            base_mae = mean_over(np.abs(yt - np.where(base_ok, yb, 0.0)), base_ok)
            out["rel_mae_baseline"] = np.where(base_mae > 0, mae / np.where(base_mae > 0, base_mae, 1.0),
                                               np.where(mae == 0, 1.0, np.nan))
            # over the points both forecasts cover, as the MAE ratio
            err2 = np.where(base_ok, err, 0.0) ** 2
            base_err2 = np.where(base_ok, yt - np.where(base_ok, yb, 0.0), 0.0) ** 2
            mse, base_mse = mean_over(err2, base_ok), mean_over(base_err2, base_ok)
            out["rel_rmse_baseline"] = np.where(base_mse > 0, np.sqrt(mse / np.where(base_mse > 0, base_mse, 1.0)),
                                                np.where(mse == 0, 1.0, np.nan))
    none = count == 0
    for values in out.values():
        values[none] = np.nan
    # how much evidence the holdout is: the gate weighs a short holdout with the run's other series
    return {**{name: out[name] for name in METRIC_NAMES}, "holdout_points": count.astype(float),
            HOLDOUT_PERIODS: np.full(len(yt), float(yt.shape[1])),
            FINGERPRINT: np.where(none, np.nan, fingerprints(yt))}


FINGERPRINT = "holdout_fingerprint"
FIT_RECENT_MAX = "fit_recent_max"
HOLDOUT_PERIODS = "holdout_periods"
FINGERPRINT_STEP = 0.6180339887  # weights 1, 1.618, 2.236, ...: a sale moved from one period to another shows


def holdout_periods_or_one_window(periods, horizon: int | None):
    """Recorded ``holdout_periods`` (a number or an array), a version registered before versions recorded them
    read as one window of ``horizon`` periods (NaN stays NaN without a horizon): what the gate re-scores a champion
    on and what "what got worse" compares."""
    periods = np.asarray(periods, dtype=float)
    return np.where(np.isnan(periods), float(horizon), periods) if horizon else periods


def fingerprints(y_true: np.ndarray) -> np.ndarray:
    """Per row of holdout actuals (K × h): a position-weighted sum of the observed ones (NaN when none is)."""
    yt = np.asarray(y_true, dtype=float)
    observed = ~np.isnan(yt)
    weights = 1.0 + FINGERPRINT_STEP * np.arange(yt.shape[1])
    return np.where(observed.any(axis=1), np.where(observed, yt, 0.0) @ weights, np.nan)


def same_actuals(a, b) -> np.ndarray:
    """Whether holdouts of the same periods held the same actuals, by their ``holdout_fingerprint`` values; unknown
    (a model registered before fingerprints were) is taken as the same, as it was then."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.isnan(a) | np.isnan(b) | np.isclose(a, b, rtol=1e-9, atol=1e-9)


def holdout_metrics_rows(y: np.ndarray, length: np.ndarray, pred: np.ndarray, base_pred: np.ndarray,
                         replaced: np.ndarray, horizon: int, gap: int, season: int,
                         intermittent: np.ndarray | None = None, windows: np.ndarray | None = None,
                         envelope_window: int | None = None) -> list[dict[str, float]]:
    """The metrics a trained model is registered with, for many series at once: the holdout forecast ``pred``
    (K × span, its windows of ``horizon`` periods in ``forecasting.holdout``'s layout, NaN where a series has
    fewer: ``windows``, one each by default) against the newest ``span`` periods of each row of ``y`` (K × T,
    ``length`` periods of history), MASE scaled by the history before the holdout's first window and its lead
    time, beside the baseline's (``base_pred``) figures and whether the envelope ``replaced`` the forecast;
    ``intermittent``: each series' flag (recorded as ``intermittent``, which of the two baseline ratios the gate
    judges); ``envelope_window``: the envelope's window (``envelope.window``), to record ``fit_recent_max``."""
    length = np.asarray(length, dtype=np.int64)
    pred, base_pred = np.asarray(pred, dtype=float), np.asarray(base_pred, dtype=float)
    span = pred.shape[1]
    w = np.ones(len(length), dtype=np.int64) if windows is None else np.asarray(windows, dtype=np.int64)
    n_train = length - horizon * w - gap
    test_idx = np.clip((length - span)[:, None] + np.arange(span)[None, :], 0, max(y.shape[1] - 1, 0))
    absent = np.arange(span)[None, :] < (span - horizon * w)[:, None]  # the windows a series has not
    y_test = np.where(absent, np.nan, np.take_along_axis(y, test_idx, axis=1))
    scale = seasonal_naive_scales(y, n_train, season)
    model = forecast_metrics_rows(y_test, pred, scale, y_baseline=base_pred)
    base = forecast_metrics_rows(y_test, base_pred, scale)
    model.update(baseline_accuracy=base["accuracy"], baseline_wape=base["wape"],
                 envelope_replaced=np.asarray(replaced, dtype=float))
    model[HOLDOUT_PERIODS] = (horizon * w).astype(float)
    if intermittent is not None:
        model["intermittent"] = np.asarray(intermittent, dtype=float)
    if envelope_window is not None:
        model[FIT_RECENT_MAX] = envelope.max_of_last(y, n_train, envelope_window)
    names = list(model)
    columns = np.column_stack([model[name] for name in names]).tolist()
    return [dict(zip(names, row)) for row in columns]


def metrics_json(metrics: dict[str, float]) -> str:
    """Metrics as JSON, NaN written as null (JSON has no NaN)."""
    return json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()})


def metric_columns(metrics_json_values, names: list[str]) -> dict[str, np.ndarray]:
    """Several metrics out of a column of ``metrics_json`` strings, each string parsed once (NaN where absent or
    unreadable)."""
    out = {name: [] for name in names}
    for raw in metrics_json_values:
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            parsed = {}
        parsed = parsed if isinstance(parsed, dict) else {}
        for name in names:
            value = parsed.get(name)
            out[name].append(math.nan if value is None else float(value))
    return {name: np.array(values, dtype=float) for name, values in out.items()}


def metric_column(metrics_json_values, name: str) -> list[float]:
    """One metric out of a column of ``metrics_json`` strings (NaN where absent or unreadable)."""
    return metric_columns(metrics_json_values, [name])[name].tolist()
