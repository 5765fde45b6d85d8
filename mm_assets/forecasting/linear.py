"""The ``linear`` model: ridge regression on calendar, recent levels and regressors in the form their kind needs.

One implementation for one series and for many: features are built on a left-aligned panel (series × periods,
numpy; ``forecasting.panel``) and every series' ridge is solved from its own sufficient statistics (a p × p
Gram matrix), so a batch of 10,000 series is a few batched BLAS calls and one series is a batch of one.

Features of period t (direct multi-step: every lag is at least ``reach = horizon + gap`` periods old, so one
model forecasts every step of the horizon without feeding forecasts back):

- calendar: trend (years), day-of-week dummies (daily), yearly Fourier terms;
- recent levels: the value ``reach`` periods back and trailing means over a week, a month and a year (daily)
  or a month, a quarter and a year (weekly) ending there; the seasonal lag (a year of periods back, or a
  multiple of a short season beyond the reach), filled with the year's level where the history is shorter;
- regressors by kind (``series.kind_of``, decided on the training data and stored with the model): flags and
  shares as they are, positive (price-like) columns as log and log relative to their own trailing quarter,
  signed columns as they are.

The target is log1p(y) by default (multiplicative promotion and price effects); the forecast is the
back-transformed fit, a median-like forecast. ``bias_correction`` (0 .. 1) adds that share of the log-normal
mean correction (half the residual variance): on the real retail sets it raised MAPE and WAPE, so it is off.

Regularisation: the ridge strength of each series is chosen by generalised cross-validation over a grid (an
inner validation that costs one eigendecomposition of the p × p Gram matrix per series), unless ``alpha`` is
set.

Training window: a fit learns from each series' newest ``max_train_periods`` periods (default four years), and
reads ``tail_length`` periods more for their features. Demand a decade old describes another shop; on the real
weekly set with the longest history a window of four years forecast as well as the whole history
(``docs/models.md``), and at 4,000 days of history the window is what makes daily retraining cheap. The rows read start at an observed target
(``fit_rows``), so that every feature of the window's rows has the value the whole history gives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting.base import Forecaster, filled
from mm_assets.forecasting.panel import ffill, rolling_mean, rolling_means, shift, window_start
from mm_assets.forecasting.panel import filled as filled_panel
from mm_assets.forecasting.series import FLAG, POSITIVE, SeriesConfig, Y, quarter_periods

ALPHA_GRID = np.logspace(-3, 1, 9)  # ridge strength per usable row (alpha = grid × n), searched by GCV


def level_windows(cfg: SeriesConfig) -> tuple[int, ...]:
    """Trailing-mean windows: a week, four weeks and a year of days, or a month, a quarter and a year of weeks."""
    return (7, 28, 365) if cfg.is_daily else (4, 13, 52)


@dataclass
class RidgeFit:
    mean: np.ndarray  # (K, p)
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray  # (K,)
    log_bias: np.ndarray  # (K,) half the residual variance: exp(mean + this) is the mean of a log-normal
    alpha: np.ndarray  # (K,) the ridge strength used
    ok: np.ndarray  # (K,) bool: at least two usable rows


def train_periods(max_train_periods: Any, step_days: int) -> int:
    """The newest periods a fit learns from: ``max_train_periods``, or four years (1,461 days, 209 weeks); a
    value that is not a whole number of at least 2 periods is refused, naming the setting."""
    if max_train_periods is None:
        return math.ceil(4 * 365.25 / step_days)
    if isinstance(max_train_periods, bool) or not isinstance(max_train_periods, int) or max_train_periods < 2:
        raise ValueError(
            f"model.params.max_train_periods must be a whole number of periods >= 2 (got {max_train_periods!r});"
            " leave it out for the default of four years"
        )
    return max_train_periods


def calendar_flags(proto: LinearForecaster, n_periods: np.ndarray, step_days: int) -> np.ndarray:
    """(K, 2): whether each series, fitted on ``n_periods`` periods (its training window's at most), has the
    years a trend (column 0) and yearly terms (column 1) need to be told apart from noise. Decided at fit and
    stored with the model."""
    periods = np.minimum(np.asarray(n_periods, dtype=float), float(proto.train_periods))
    years = periods * float(step_days) / 365.25
    return np.stack([years >= proto.trend_years, years >= proto.fourier_years], axis=1)


def design(proto: LinearForecaster, start_days: np.ndarray, step_days: int, yt: np.ndarray,
           regs: dict[str, np.ndarray], kinds: tuple[str, ...], n_hist: np.ndarray,
           calendar: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The features of every period of a batch sharing one kind signature → (names, X of K × p × T).

    ``yt``: the transformed, filled target, NaN from each series' ``n_hist`` on (never look at the future).
    ``start_days``: each series' first period, in whole days since 1970-01-01.
    ``calendar``: ``calendar_flags`` of each series; a series without the years has trend and yearly terms as
    constant columns (no effect), so that every series of a batch keeps one design.
    Features are the middle axis so that each one is written contiguously.
    """
    K, T = yt.shape
    cfg = proto.cfg
    windows = level_windows(cfg)
    p = (1 + (6 if cfg.is_daily else 0) + 2 * proto.fourier_order + 2 + len(windows)
         + sum(2 if kind == POSITIVE else 1 for kind in kinds))
    X = np.empty((K, p, T))
    names: list[str] = []

    def put(name: str, values: np.ndarray) -> None:
        X[:, len(names), :] = values
        names.append(name)

    days = start_days[:, None] + np.arange(T)[None, :] * float(step_days)
    put("trend", np.where(calendar[:, :1], days / 365.25, 0.0))
    seasonal = calendar[:, 1:2]
    # the calendar terms of each distinct day once (the series of a batch share most of their days), then
    # gathered: a sine per cell cost more than the rest of the design
    first_day = int(days.min()) if days.size else 0
    day_index = days.astype(np.int64) - first_day
    calendar_days = np.arange(first_day, first_day + (int(day_index.max()) + 1 if days.size else 0), dtype=float)
    if cfg.is_daily:
        dow = (day_index + (first_day + 3) % 7) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        for d in range(1, 7):
            put(f"dow_{d}", dow == d)
    for k in range(1, proto.fourier_order + 1):
        angle = 2 * np.pi * k * calendar_days / 365.25
        put(f"sin_{k}", np.where(seasonal, np.sin(angle)[day_index], 0.0))
        put(f"cos_{k}", np.where(seasonal, np.cos(angle)[day_index], 0.0))
    put("lag_recent", shift(yt, proto.reach))
    levels = {w: shift(mean, proto.reach) for w, mean in rolling_means(yt, windows).items()}
    for w in windows:
        put(f"level_{w}", levels[w])
    lag_season = shift(yt, proto.seasonal_lag)
    put("lag_season", np.where(np.isnan(lag_season), levels[windows[-1]], lag_season))
    history = np.arange(T)[None, :] < n_hist[:, None]
    for col, kind in zip(cfg.regressors, kinds):
        values = regs[col]
        if kind != POSITIVE:
            # a column without a value in a series' history (NULL in the source: a join that found nothing) tells
            # its fit nothing: a constant 0 for that series, not a NaN that left no row usable and failed the fit
            empty = ~(history & ~np.isnan(values)).any(axis=1)
            put(col, np.where(empty[:, None], 0.0, values) if empty.any() else values)
            continue
        logv = positive_log(values)
        ref, last = reference_log_price(logv, n_hist, proto.price_window)
        after = np.arange(T)[None, :] >= n_hist[:, None]
        ref = np.where(after, last[:, None], ref)  # the reference price is frozen at the origin
        put(f"log_{col}", logv)
        put(f"rel_{col}", logv - ref)
    return names, X


def positive_log(values: np.ndarray) -> np.ndarray:
    """log of a positive (price-like) column; NaN, not -inf, where a value is not positive. Such a value can lie
    only outside the rows the kind was decided on (before a training window, or in a planned period): NaN keeps
    it out of the trailing reference price (a cumulative sum that -inf would spoil for every later period) and
    out of the fit's rows, and a forecast period reads it as the column's mean."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(np.where(values > 0, values, np.nan))


def reference_log_price(logv: np.ndarray, n_hist: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference (log) price of every period, the mean of the ``window`` periods before it, and each series'
    reference at its origin, the last history period: what every forecast period's relative price is measured
    against (K,; NaN for a series without history)."""
    ref = shift(rolling_mean(logv, window), 1)
    T = ref.shape[1]
    at_origin = np.where(n_hist > 0, ref[np.arange(len(n_hist)), np.clip(n_hist - 1, 0, T - 1)], np.nan)
    return ref, at_origin


def regressor_rows(kind: str, values: np.ndarray, reference: float) -> list[np.ndarray]:
    """The feature columns one regressor adds at forecast periods (``design``'s, after the origin): the value
    itself, or for a positive column its log and its log relative to the origin's reference."""
    if kind != POSITIVE:
        return [values]
    logv = positive_log(values)
    return [logv, logv - reference]


@dataclass(frozen=True)
class PlannedRows:
    """A series' design rows at its forecast periods, ready for planners' what-ifs: everything a forecast row
    reads of the history (lags, levels, calendar, the reference price) is fixed at the origin, so a what-if only
    writes the regressor columns (``regressor_rows``) and takes one dot product per period, the same numbers as
    ``predict_arrays`` without building the design again."""

    model: LinearForecaster
    rows: np.ndarray  # (steps, p) design rows with the default future regressors
    columns: tuple[tuple[str, str, int, float, float], ...]  # regressor, kind, first column, reference, last value

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes)

    def predict(self, future_regs: dict[str, np.ndarray], steps: int) -> np.ndarray:
        """Forecast of the first ``steps`` periods with these regressor values (``steps`` each; NaN is carried
        forward from the last known value, as ``predict_arrays`` does)."""
        rows = self.rows[:steps].copy()
        for col, kind, first, reference, last in self.columns:
            values = np.asarray(future_regs[col][:steps], dtype=float)
            if np.isnan(values).any():
                values = ffill(np.r_[last, values][None, :])[0, 1:]
            for offset, column in enumerate(regressor_rows(kind, values, reference)):
                rows[:, first + offset] = column
        return predict_design(rows[None], self.model.fit_, self.model.log_target)[0]


def statistics(X: np.ndarray, target: np.ndarray, usable: np.ndarray):
    """Sufficient statistics of each series' usable rows: count, column sums, Gram matrix, the zero-filled
    target, X·t and Σt². Zeroes ``X``'s unusable rows in place (one design tensor in memory)."""
    np.copyto(X, 0.0, where=np.isnan(X))  # the design's values are finite or NaN (inputs are validated finite)
    X *= usable[:, None, :]
    t = np.where(usable, target, 0.0)
    gram = np.matmul(X, X.transpose(0, 2, 1))
    xt = np.matmul(X, t[:, :, None])[:, :, 0]
    return usable.sum(axis=1).astype(float), X.sum(axis=2), gram, t, xt, (t * t).sum(axis=1)


def solve(n, sums, gram, t_sum, xt, t2_sum, alpha: float | None) -> RidgeFit:
    """Ridge with an intercept on standardised columns, from sufficient statistics (scikit-learn's Ridge for a
    fixed ``alpha``). ``alpha=None``: per series, the strength of ``ALPHA_GRID`` × n with the lowest GCV score
    RSS/n / (1 - df/n)², df = 1 + Σ dᵢ/(dᵢ + α) over the eigenvalues d of the standardised Gram matrix."""
    safe_n = np.where(n > 0, n, 1.0)
    mean = sums / safe_n[:, None]
    centred = gram - safe_n[:, None, None] * mean[:, :, None] * mean[:, None, :]
    var = np.diagonal(centred, axis1=1, axis2=2) / safe_n[:, None]
    std = np.sqrt(np.clip(var, 0.0, None))
    # a constant column gets scale 1 (scikit-learn). Its variance from sums of squares is rounding, up to about
    # n·eps·mean² (more where a fit's statistics are another's minus some rows): a constant price 20 periods in a
    # row must not become a column of rounding noise blown up to unit variance
    constant = var <= 1e-10 * (mean * mean + 1.0)
    scale = np.where(constant, 1.0, std)
    A = centred / (scale[:, :, None] * scale[:, None, :])
    t_mean = t_sum / safe_n
    b = (xt - t_mean[:, None] * sums) / scale
    stt = np.clip(t2_sum - safe_n * t_mean**2, 0.0, None)
    d, V = np.linalg.eigh(A)
    d = np.clip(d, 0.0, None)
    c = np.einsum("kpq,kp->kq", V, b)  # b in the eigenbasis
    if alpha is None:
        alphas = ALPHA_GRID[None, :] * safe_n[:, None]  # K × G
    else:
        alphas = np.full((len(n), 1), float(alpha))
    shrink = 1.0 / (d[:, None, :] + alphas[:, :, None])  # K × G × p
    rss = stt[:, None] - 2 * (c[:, None, :] ** 2 * shrink).sum(axis=2) \
        + (d[:, None, :] * c[:, None, :] ** 2 * shrink**2).sum(axis=2)
    rss = np.clip(rss, 0.0, None)
    df = 1.0 + (d[:, None, :] * shrink).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        gcv = np.where(df < safe_n[:, None], rss / safe_n[:, None] / (1.0 - df / safe_n[:, None]) ** 2, np.inf)
    best = np.where(np.isfinite(gcv).any(axis=1), np.argmin(np.where(np.isfinite(gcv), gcv, np.inf), axis=1),
                    alphas.shape[1] - 1)
    rows = np.arange(len(n))
    chosen = shrink[rows, best]  # K × p
    coef = np.einsum("kpq,kq->kp", V, c * chosen)
    resid_var = rss[rows, best] / np.clip(safe_n - df[rows, best], 1.0, None)
    return RidgeFit(mean=mean, scale=scale, coef=coef, intercept=t_mean, log_bias=0.5 * resid_var,
                    alpha=alphas[rows, best], ok=n >= 2)


def fit_ridge(X: np.ndarray, target: np.ndarray, usable: np.ndarray, alpha: float | None) -> RidgeFit:
    n, sums, gram, t, xt, t2 = statistics(X, target, usable)
    return solve(n, sums, gram, t.sum(axis=1), xt, t2, alpha)


def fit_holdout_and_full(X, target, usable, n_fit, tail, alpha: float | None, window: int
                         ) -> tuple[RidgeFit, RidgeFit]:
    """Both fits of a series from one pass over the design, each on the usable rows of its own training window:
    the served model's, the newest ``window`` periods, and the holdout model's, the ``window`` periods before
    ``n_fit`` (= length - ``tail``; ``tail`` one number or one per series). ``usable`` spans both (``window +
    tail`` periods back from the length): the holdout's statistics are those minus the last ``tail`` periods',
    the served model's those minus the first ``tail`` periods'. Zeroes ``X``'s unusable rows in place."""
    n_all, sums, gram, t, xt, t2 = statistics(X, target, usable)
    t_sum = t.sum(axis=1)
    T = X.shape[2]
    rows = np.arange(X.shape[0])[:, None]

    tail = np.broadcast_to(np.asarray(tail, dtype=np.int64), (X.shape[0],))

    def without(first: np.ndarray) -> tuple:
        """The statistics without the ``tail`` periods from ``first`` (those before the first period: none)."""
        steps = np.arange(int(tail.max()) if len(tail) else 0)[None, :]
        idx = first[:, None] + steps
        inside = (idx >= 0) & (idx < T) & (steps < tail[:, None])
        idx = np.clip(idx, 0, T - 1)
        weight = usable[rows, idx] & inside
        Xp = X[rows, :, idx] * weight[:, :, None]  # K × tail × p
        tp = t[rows, idx] * weight
        return (n_all - weight.sum(axis=1), sums - Xp.sum(axis=1), gram - np.matmul(Xp.transpose(0, 2, 1), Xp),
                t_sum - tp.sum(axis=1), xt - np.einsum("ksp,ks->kp", Xp, tp), t2 - (tp * tp).sum(axis=1))

    hold = solve(*without(n_fit), alpha)
    full = solve(*without(n_fit - window), alpha)
    return hold, full


def predict_design(rows: np.ndarray, fit: RidgeFit, log_target: bool) -> np.ndarray:
    """Forecasts from design rows (K × steps × p), back-transformed; may be negative or not finite (the
    envelope decides what is published)."""
    rows = np.where(np.isnan(rows), fit.mean[:, None, :], rows)
    pred = np.einsum("ksp,kp->ks", (rows - fit.mean[:, None, :]) / fit.scale[:, None, :], fit.coef)
    pred += fit.intercept[:, None]
    if not log_target:
        return pred
    with np.errstate(over="ignore"):
        return np.expm1(pred + fit.log_bias[:, None])


def predict_rows(X: np.ndarray, fit: RidgeFit, first: np.ndarray, steps: int, log_target: bool) -> np.ndarray:
    """Forecasts at rows ``first[k] .. first[k] + steps - 1`` of each series (K × steps)."""
    idx = first[:, None] + np.arange(steps)[None, :]
    return predict_design(X[np.arange(X.shape[0])[:, None], :, idx], fit, log_target)


def usable_rows(proto: LinearForecaster, X: np.ndarray, target: np.ndarray, n: np.ndarray,
                window: int | None = None) -> np.ndarray:
    """Rows a fit may use: inside the history's newest ``window`` periods (the training window by default),
    target observed, every feature defined, lags real."""
    T = target.shape[1]
    pos = np.arange(T)[None, :]
    window = proto.train_periods if window is None else window
    usable = (pos < n[:, None]) & (pos >= (n - window)[:, None]) & ~np.isnan(target) & ~np.isnan(X).any(axis=1)
    usable[:, : proto.reach] = False
    return usable


class LinearForecaster(Forecaster):
    """Ridge regression, direct multi-step (module docstring); one series is a panel of one."""

    name = "linear"

    def __init__(self, cfg: SeriesConfig, alpha: float | None = None, fourier_order: int | None = None,
                 log_target: bool = True, bias_correction: float = 0.0, fourier_years: float = 3.0,
                 trend_years: float = 2.0, max_train_periods: int | None = None, **params: Any):
        super().__init__(cfg, alpha=alpha, fourier_order=fourier_order, log_target=log_target,
                         bias_correction=bias_correction, fourier_years=fourier_years, trend_years=trend_years,
                         max_train_periods=max_train_periods, **params)
        self.train_periods = train_periods(max_train_periods, cfg.step.days)
        self.alpha = alpha
        self.bias_correction = float(bias_correction)
        self.fourier_years = fourier_years
        self.trend_years = trend_years
        self.fourier_order = fourier_order if fourier_order is not None else (4 if cfg.is_daily else 3)
        self.log_target = log_target
        self.reach = cfg.horizon + cfg.gap  # the farthest step a forecast must reach
        self.seasonal_lag = max(cfg.seasonal_lag, cfg.season * math.ceil(self.reach / cfg.season))
        self.price_window = quarter_periods(cfg.step.days)  # the price a customer remembers as usual
        self.fit_: RidgeFit | None = None
        self.columns_: list[str] = []
        self.calendar_: tuple[bool, bool] = (False, False)  # trend, yearly terms: decided at fit

    @property
    def tail_length(self) -> int:
        return max(self.seasonal_lag, max(level_windows(self.cfg)) + self.reach, self.price_window + 1) + 1

    @property
    def read_periods(self) -> int:
        """Periods a fit reads back from its last: the training window and what its first rows' features read."""
        return self.train_periods + self.tail_length

    def fit_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows a fit reads: from the newest observed target at least ``read_periods`` back (``window_start``).
        The regressors of a regular frame are filled already, and the target's fill starts at an observed value, so
        every feature of the training window has the value the whole history gives it."""
        return frame.iloc[window_start(frame[Y].notna().to_numpy(), self.read_periods):]

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return np.log1p(np.clip(y, 0.0, None)) if self.log_target else y

    def kind_signature(self) -> tuple[str, ...]:
        return tuple(self.kinds_.get(c, FLAG) for c in self.cfg.regressors)

    def _arrays(self, frame: pd.DataFrame, n_hist: int) -> tuple[list[str], np.ndarray]:
        """The design of one regular frame (history rows then future rows on the same grid)."""
        y = frame[Y].to_numpy(dtype=float).copy()
        y[n_hist:] = np.nan
        yt = np.full(len(frame), np.nan)
        yt[:n_hist] = self.transform_y(filled(pd.Series(y[:n_hist])))
        regs = {c: frame[c].to_numpy(dtype=float)[None, :] for c in self.cfg.regressors}
        start = np.array([(frame.index[0] - pd.Timestamp("1970-01-01")).days], dtype=float)
        return design(self, start, self.cfg.step.days, yt[None, :], regs, self.kind_signature(), np.array([n_hist]),
                      np.array([self.calendar_]))

    def _fit(self, frame: pd.DataFrame) -> None:
        self.calendar_ = tuple(bool(v) for v in calendar_flags(self, np.array([len(frame)]), self.cfg.step.days)[0])
        names, X = self._arrays(frame, len(frame))
        target = self.transform_y(frame[Y].to_numpy(dtype=float))[None, :]
        usable = usable_rows(self, X, target, np.array([len(frame)]))
        if usable.sum() < 2:
            raise ValueError("too few usable rows for the linear model")
        self.columns_ = names
        self.fit_ = fit_ridge(X, target, usable, self.alpha)
        self.fit_.log_bias *= self.bias_correction

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        regs = list(self.cfg.regressors)
        start_day = float((history.index[0] - pd.Timestamp("1970-01-01")).days)
        return self.predict_arrays(history[Y].to_numpy(dtype=float), {c: history[c].to_numpy(dtype=float) for c in regs},
                                   start_day, {c: future[c].to_numpy(dtype=float) for c in regs},
                                   self.gap_from(history, future), len(future))

    def predict_arrays(self, y_hist: np.ndarray, regs_hist: dict[str, np.ndarray], start_day: float,
                       future_regs: dict[str, np.ndarray], gap: int, n_future: int) -> np.ndarray:
        """The forecast of ``n_future`` consecutive periods, ``gap`` periods after a history that starts on
        ``start_day`` (days since 1970-01-01), from numpy arrays: the one implementation behind ``predict`` and the
        online what-if path (no pandas per request). Before the sanity envelope (``within_envelope``)."""
        X = self._forecast_design(y_hist, regs_hist, start_day, future_regs, gap, n_future)
        return predict_rows(X, self.fit_, np.array([len(y_hist) + gap]), n_future, self.log_target)[0]

    def planned_rows(self, y_hist: np.ndarray, regs_hist: dict[str, np.ndarray], start_day: float,
                     default_regs: dict[str, np.ndarray], gap: int, n_future: int) -> PlannedRows:
        """``PlannedRows`` of ``n_future`` periods after this history (``default_regs``: the regressors without a
        plan), for forecasting the same history under many plans."""
        n = len(y_hist)
        X = self._forecast_design(y_hist, regs_hist, start_day, default_regs, gap, n_future)
        columns = []
        for col, kind in zip(self.cfg.regressors, self.kind_signature()):
            hist = ffill(np.asarray(regs_hist[col], dtype=float)[None, :])  # as the design reads it
            reference = (float(reference_log_price(np.log(hist), np.array([n]), self.price_window)[1][0])
                         if kind == POSITIVE else np.nan)
            columns.append((col, kind, self.columns_.index(col if kind != POSITIVE else f"log_{col}"), reference,
                            float(hist[0, -1]) if n else np.nan))  # the last known value (carried forward)
        rows = X[0, :, n + gap : n + gap + n_future].T.copy()
        return PlannedRows(self, rows, tuple(columns))

    def _forecast_design(self, y_hist: np.ndarray, regs_hist: dict[str, np.ndarray], start_day: float,
                         future_regs: dict[str, np.ndarray], gap: int, n_future: int) -> np.ndarray:
        """The design of a history followed by ``gap`` unknown and ``n_future`` forecast periods (1 × p × T)."""
        assert self.fit_ is not None
        if gap + n_future > self.reach:
            raise ValueError(
                f"forecast reaches {gap + n_future} periods past the history; the model was trained for "
                f"horizon+gap={self.reach}"
            )
        n = len(y_hist)
        width = n + gap + n_future
        regs = {}
        for col in self.cfg.regressors:
            values = np.full((1, width), np.nan)
            values[0, :n] = regs_hist[col]
            values[0, n + gap :] = future_regs[col]
            regs[col] = ffill(values)  # the gap's periods keep the last known value
        yt = np.full((1, width), np.nan)
        yt[0, :n] = self.transform_y(filled_panel(y_hist[None, :], np.array([n]))[0])
        names, X = design(self, np.array([start_day]), self.cfg.step.days, yt, regs, self.kind_signature(),
                          np.array([n]), np.array([self.calendar_]))
        if names != self.columns_:
            raise ValueError(f"the linear model's features changed: {self.columns_} → {names}")
        return X

    def coefficients(self) -> dict[str, float]:
        """The fitted coefficients on the standardised features (what planners ask: does price matter?)."""
        assert self.fit_ is not None
        return dict(zip(self.columns_, map(float, self.fit_.coef[0])))
