"""The sanity envelope: the range a forecast of a series must stay in to be published.

A forecast is plausible when every value is finite, non-negative and at most ``multiple`` × the largest value
of the series' recent history (its last year of periods, or four seasons when they are longer: 208 weeks for a
weekly series with a yearly season). A model
that leaves it (a regressor it never saw at that value, an extrapolated trend, a broken fit) is replaced by
the series' baseline, and the replacement is recorded with its reason wherever forecasts are made.

Why the maximum of the last year and not a statistical interval: it is cheap, needs no distributional
assumption, keeps every promotion peak the series has shown (a planner's ×5 week is inside) and still catches
the failures that matter (10⁸ units for a series that never sold 30,000).

No Dagster, no pandas: plain numpy, for the per-series and the vectorised paths alike.
"""

from __future__ import annotations

import numpy as np

from mm_assets.forecasting.panel import last_periods

DEFAULT_MULTIPLE = 3.0
REPLACED = "envelope: forecast left 0 .. {multiple:g} x recent maximum; replaced by the baseline"
WINDOW_WORDS = "year of periods, or four seasons when longer"  # ``window``, in words


def window(cfg) -> int:
    """Periods of recent history the envelope looks at: a year (365 days / 52 weeks), at least 4 seasons. Four
    years of a weekly series with a yearly season, not one: tuna's deepest promotions sell more than 3 × the
    largest week of the year before, and a 52-week window replaced 3 of its 98 backtest points by the baseline
    (WAPE 47.7 → 56.1 %; cheese, 61 weeks, the same either way)."""
    per_year = 365 if cfg.is_daily else 52
    return int(max(per_year, 4 * cfg.season))


def recent_max(y: np.ndarray, cfg) -> float:
    """Largest observed value of the last ``window`` periods (NaN when none is observed)."""
    tail = np.asarray(y, dtype=float)[-window(cfg):]
    tail = tail[np.isfinite(tail)]
    return float(tail.max()) if tail.size else np.nan


def recent_max_rows(y: np.ndarray, length: np.ndarray, cfg) -> np.ndarray:
    """``recent_max`` of each row of a left-aligned panel (series k's history is ``y[k, :length[k]]``)."""
    return max_of_last(y, length, window(cfg))


def max_of_last(y: np.ndarray, length: np.ndarray, w: int) -> np.ndarray:
    """Largest observed value of each row's last ``w`` periods before ``length`` (NaN when none is observed)."""
    K, T = y.shape
    if not T or not K:
        return np.full(K, np.nan)
    values = last_periods(y, length, w)
    out = np.where(np.isfinite(values), values, -np.inf).max(axis=1)
    return np.where(np.isfinite(out), out, np.nan)


def with_fit_reference(reference, length, fit_max, fit_periods) -> np.ndarray:
    """The recent maximum of a forecast's history (``reference``, of ``length`` periods), raised to the model's fit
    data's (``fit_max``, read over its newest ``fit_periods``) only where that history is shorter than what the fit
    read: a stored tail, which does not show the year the fit saw. A history at least as long shows those periods
    as they are now, and it alone counts: a series whose source was corrected to zero everywhere kept its old
    champion's forecasts of hundreds, passed by the maximum the champion had been fitted on."""
    reference = np.asarray(reference, dtype=float)
    short = np.asarray(length) < np.asarray(fit_periods)
    return np.where(short & np.isfinite(np.asarray(fit_max, dtype=float)),
                    np.fmax(reference, np.asarray(fit_max, dtype=float)), reference)


def upper_bound(reference: float | np.ndarray, multiple: float) -> np.ndarray:
    """The largest plausible value: ``multiple`` × the recent maximum (0 for a series without a sale)."""
    ref = np.nan_to_num(np.asarray(reference, dtype=float), nan=0.0)
    return multiple * np.clip(ref, 0.0, None)


def check(pred: np.ndarray, reference: np.ndarray, multiple: float) -> np.ndarray:
    """Per row of ``pred`` (K × steps, ``reference`` K): True where the forecast leaves the envelope."""
    pred = np.atleast_2d(np.asarray(pred, dtype=float))
    upper = upper_bound(reference, multiple).reshape(-1, 1)
    bad = ~np.isfinite(pred) | (pred < 0) | (pred > upper + 1e-9)
    return bad.any(axis=1)


def capped(top: float, reference: float, multiple: float) -> str:
    """The note of a planner's what-if capped at the envelope's bound (the model's answer ``top`` above it)."""
    return (f"envelope: this plan's forecast reaches {top:.6g}, above {multiple:g} x the series' largest value of its "
            f"last {WINDOW_WORDS} ({reference:.6g}); capped there: the plan is beyond anything the series has sold "
            "lately, and the model has no evidence of how far beyond")


def violation(pred: np.ndarray, reference: float, multiple: float) -> str | None:
    """Why one series' forecast leaves the envelope, or None when it stays inside."""
    pred = np.asarray(pred, dtype=float)
    if pred.size == 0:
        return None
    if not np.isfinite(pred).all():
        return "envelope: forecast is not finite; replaced by the baseline"
    if (pred < 0).any():
        return "envelope: negative forecast; replaced by the baseline"
    upper = multiple * max(float(reference), 0.0) if np.isfinite(reference) else 0.0  # ``upper_bound``, one value
    top = float(pred.max())
    if top > 1e-9 and upper <= 0.0:  # nothing to scale by: say so, not "> 3 x recent maximum 0"
        return (f"envelope: no sale in the series' last {WINDOW_WORDS} (recent maximum 0), and a forecast of "
                f"{top:.6g}; replaced by the baseline")
    if top > upper + 1e-9:
        return (f"envelope: forecast {top:.6g} > {multiple:g} x recent maximum {upper / multiple if multiple else 0:.6g}; "
                "replaced by the baseline")
    return None
