"""Where a series' holdout is: the newest windows of ``horizon`` periods, each forecast from its own origin by one
model fitted before the first.

Why several windows: the gate judges a challenger against its baseline on the holdout, and a weekly holdout of
two periods is one draw of the chain's luck. On tuna (7 brands of one store, horizon 2 after a 1-week gap) the
global model's MAE was 1.06 × the baseline's on the newest two weeks, pooled over the brands, and 0.64-0.70 ×
over the newest 4 to 16 weeks (its backtest: WAPE 53 % against the baseline's 75 %); judged on one window the
gate served the model to 3 brands of 7.

The layout, for a series of ``length`` periods with ``w`` windows (``windows``): the holdout model is fitted on
the first ``length - gap - w * horizon`` periods (``fit_lengths``); window ``j`` (0 the newest) is forecast from
the origin row ``length - gap - (j + 1) * horizon - 1`` with the target after it hidden (the regressors as they
were, as if planned) and covers the ``horizon`` periods ``gap`` after it. The windows tile the newest
``w * horizon`` periods. One window (``holdout_periods`` up to the horizon, or a history too short for more) is
the holdout as it always was: the model fitted ``gap + horizon`` periods before the end, judged on the newest
``horizon``.

No Dagster here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mm_assets.forecasting import baseline
from mm_assets.forecasting.series import SeriesConfig


def windows(length, cfg: SeriesConfig) -> np.ndarray:
    """Per series of ``length`` periods: its holdout windows, up to ``cfg.holdout_windows``, as many as leave
    ``min_train_periods`` before the first and take at most half of the history with their lead time (at least
    one: a series too short for its model is judged on one window, as its baseline fallback).

    Half: the model judged should be the one served, fitted on most of the same history; a holdout of 1,000
    periods on tuna's 338 weeks would otherwise judge a model fitted on the first 4 weeks."""
    length = np.asarray(length, dtype=np.int64)
    after_min_train = (length - cfg.min_train_periods - cfg.gap - cfg.horizon) // cfg.horizon + 1
    within_half = (length // 2 - cfg.gap) // cfg.horizon
    return np.clip(np.minimum(after_min_train, within_half), 1, cfg.holdout_windows).astype(np.int64)


def fit_lengths(length, w, cfg: SeriesConfig) -> np.ndarray:
    """The periods the holdout model is fitted on: all but the ``w`` windows and the lead time before them."""
    return np.asarray(length, dtype=np.int64) - cfg.gap - cfg.horizon * np.asarray(w, dtype=np.int64)


def held_out(w: int, cfg: SeriesConfig) -> int:
    """Periods after the holdout model's data: the lead time and ``w`` windows."""
    return cfg.gap + cfg.horizon * int(w)


def origin_lengths(length, j: int, cfg: SeriesConfig) -> np.ndarray:
    """The history window ``j`` (0 the newest) is forecast from: every period up to its origin."""
    return np.asarray(length, dtype=np.int64) - cfg.gap - (j + 1) * cfg.horizon


def frame_windows(periods: int, w: int, cfg: SeriesConfig) -> list[tuple[int, slice]]:
    """One series of ``periods`` periods with ``w`` windows: per window, the oldest first as the periods run,
    (the history it is forecast from: every period up to its origin, the rows of its periods)."""
    out = []
    for j in reversed(range(w)):
        n_origin = int(origin_lengths(periods, j, cfg))
        out.append((n_origin, slice(n_origin + cfg.gap, n_origin + cfg.gap + cfg.horizon)))
    return out


def forecast_windows(forecast_at: Callable[[np.ndarray], np.ndarray], length, w, cfg: SeriesConfig
                     ) -> np.ndarray:
    """Every series' holdout forecast, K × (W · horizon) with W the most windows of any series: window j of
    series k in columns ``(W - 1 - j) · horizon`` onwards (the newest window last, as the periods run), NaN where
    a series has fewer windows. ``forecast_at(n_origin)``: every series' forecast (K × horizon) from its first
    ``n_origin[k]`` periods; series without window j are asked from their newest window's origin (and ignored)."""
    length = np.asarray(length, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    h = cfg.horizon
    W = int(w.max()) if len(w) else 1
    out = np.full((len(length), W * h), np.nan)
    for j in range(W):
        has = w > j
        n_origin = np.where(has, origin_lengths(length, j, cfg), origin_lengths(length, 0, cfg))
        pred = np.asarray(forecast_at(n_origin), dtype=float)
        out[has, (W - 1 - j) * h:(W - j) * h] = pred[has]
    return out


def baseline_windows(y: np.ndarray, length, w, method: np.ndarray, cfg: SeriesConfig) -> np.ndarray:
    """The baseline's forecast of every window (``forecast_windows``' layout): the ``method`` chosen on the
    holdout model's data, forecast from each window's own origin."""
    return forecast_windows(lambda n: baseline.forecast_rows(y, n, method, cfg.horizon, cfg.gap, cfg), length, w,
                            cfg)


def replace_outside_windows(pred: np.ndarray, base: np.ndarray, y: np.ndarray, length, w, cfg: SeriesConfig
                            ) -> tuple[np.ndarray, np.ndarray]:
    """``baseline.replace_outside`` of each window (the envelope read at the window's own origin, the window's
    baseline forecast ``base`` as the fallback) → (forecasts, per series: whether any window was replaced)."""
    length = np.asarray(length, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    h = cfg.horizon
    W = pred.shape[1] // h
    pred = pred.copy()
    outside = np.zeros(len(length), dtype=bool)
    for j in range(W):
        has = np.flatnonzero(w > j)
        if not len(has):
            continue
        cols = slice((W - 1 - j) * h, (W - j) * h)
        n_origin = origin_lengths(length[has], j, cfg)
        fixed, out = baseline.replace_outside(pred[has, cols], y[has], n_origin, cfg, fallback=base[has, cols])
        pred[has, cols] = fixed
        outside[has] |= out
    return pred, outside
