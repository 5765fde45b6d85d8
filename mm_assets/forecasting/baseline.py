"""The baseline: per series, the best of naive, seasonal naive and recent moving averages by its own backtest.

Why not seasonal naive alone: on retail data with promotions it is often the worst simple forecast (last
year's promotion week repeated; so with a season of a year of weeks it repeats the median of the period a season
back and its neighbours, ``seasonal_naive_rows``); the last value or a short average is usually better, and which
one is best differs per series. The baseline is what serves a series that has no champion (the fallback), what replaces a
forecast that leaves the sanity envelope, and the yardstick the promotion gate holds every challenger to.

The choice: at ``cfg.auto_origins`` rolling origins inside the history (the newest one ``gap + horizon``
periods before the end, each earlier one ``horizon`` before the next), every method forecasts periods
``gap + 1 .. gap + horizon`` after the origin; the method with the lowest summed absolute error wins (ties: the
simpler, earlier one in ``METHODS``). Too short for an origin: seasonal naive when a full season exists, else
naive. The method and the reason are recorded with the model.

Intermittent series (a quarter or more of their periods without sales: a mean interval between sales of 1.32
periods or more, the usual line between smooth and intermittent demand) are judged by squared error instead:
where most periods are zero, the forecast of least absolute error is zero, or the last sale repeated, which tells a
planner to stock nothing or far too much; squared error picks the forecast of the mean rate (a moving average).

Everything works on left-aligned panels (series × periods, numpy) so the vectorised trainers and scorers use
the same code as the per-series ``Baseline`` model (a panel of one row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting import envelope
from mm_assets.forecasting.base import Forecaster, filled
from mm_assets.forecasting.panel import filled as filled_rows
from mm_assets.forecasting.panel import window_starts
from mm_assets.forecasting.series import SeriesConfig, Y

NAIVE, SEASONAL_NAIVE, MA_SHORT, MA_LONG = range(4)
INTERMITTENT_ZERO_SHARE = 1 - 1 / 1.32  # zero periods from which a series is intermittent (mean interval 1.32)
# a season of this many periods or more (a year of weeks) is repeated as the median of the period a season back and
# its two neighbours: one promotion week a year ago is not repeated as the forecast
ROBUST_SEASON_FROM = 13


def ma_windows(cfg: SeriesConfig) -> tuple[int, int]:
    """Moving-average windows in periods: a week and four weeks (daily), a month and a quarter (weekly)."""
    return (7, 28) if cfg.is_daily else (4, 13)


def history_periods(cfg: SeriesConfig) -> int:
    """Periods before a series' end that choosing (``choose_rows``) and forecasting its baseline read: every
    backtest origin's horizon, the gap, and the longest method's reach (a season, the long moving average)."""
    origins = max(cfg.auto_origins, 3)
    return cfg.gap + cfg.horizon * (origins + 1) + max(cfg.season, *ma_windows(cfg)) + 1


def newest_periods(y: np.ndarray, n: np.ndarray, cfg: SeriesConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each series' newest history that choosing and forecasting its baseline read, left-aligned: ``(y', n')``
    with ``y'[k, :n'[k]]`` the periods from ``window_starts`` (an observed target at least ``history_periods``
    back, else the first period) to the end. Both read the same numbers from it as from the whole history: the
    fill finds the same values after an observed start, and a window of at least ``history_periods`` leaves every
    method its full season and averages. At 4,000 days of history a fill of every period cost more than the rest
    of the choice."""
    periods = history_periods(cfg)
    if y.shape[1] <= periods or not len(n):
        return y, n
    start = window_starts(y, n, periods)
    if not start.any():
        return y, n
    kept = n - start
    width = max(int(kept.max()), 1)
    idx = start[:, None] + np.arange(width)[None, :]
    values = y[np.arange(len(n))[:, None], np.minimum(idx, y.shape[1] - 1)]
    return np.where(idx < n[:, None], values, np.nan), kept


def method_names(cfg: SeriesConfig) -> tuple[str, ...]:
    short, long = ma_windows(cfg)
    return ("naive", "seasonal_naive", f"moving_average_{short}", f"moving_average_{long}")


def candidate_forecasts(yf: np.ndarray, n: np.ndarray, steps: int, gap: int, cfg: SeriesConfig,
                        robust: bool = True) -> np.ndarray:
    """Every method's forecast of periods ``gap + 1 .. gap + steps`` after row ``n[k] - 1`` of each series
    (K × methods × steps). ``yf``: the filled target (no NaN before ``n``). ``robust``: the baseline's naive and
    seasonal naive (``naive_rows``, ``seasonal_naive_rows``), else the textbook ones (the ``seasonal_naive`` model
    type)."""
    K = yf.shape[0]
    rows = np.arange(K)[:, None]
    out = np.empty((K, 4, steps))
    out[:, NAIVE, :] = naive_rows(yf, n, robust)[:, None]
    out[:, SEASONAL_NAIVE, :] = seasonal_naive_rows(yf, n, steps, gap, cfg.season, robust)
    # the moving averages read only the longest window before each end (not a running sum over all of history)
    windows = ma_windows(cfg)
    reach = max(windows)
    back = np.arange(reach, 0, -1)[None, :]  # periods before the end: reach .. 1
    recent = yf[rows, np.clip(n[:, None] - back, 0, None)]
    recent = np.where(np.isnan(recent), 0.0, recent)
    for slot, w in zip((MA_SHORT, MA_LONG), windows):
        width = np.clip(np.minimum(w, n), 1, None)
        mean = np.where(back <= width[:, None], recent, 0.0).sum(axis=1) / width
        out[:, slot, :] = mean[:, None]
    return out


def naive_rows(yf: np.ndarray, n: np.ndarray, robust: bool = False) -> np.ndarray:
    """The last value of each series (K, row ``n[k] - 1`` of the filled target ``yf``); ``robust``: the median of
    the last three, from three periods of history on. Why: one promotion week is the last value as often as any
    other, and repeated as the forecast of every period after it, it stood for the series' level in the gate's
    yardstick, the fallback and every envelope replacement (orangeJuice: baselines above 5 x their series' median
    week, each a last week's promotion repeated). Two weeks of a new level make the median theirs."""
    K = yf.shape[0]
    last = np.clip(n - 1, 0, None)
    plain = yf[np.arange(K), last]
    if not robust:
        return plain
    three = np.stack([yf[np.arange(K), np.clip(n - d, 0, None)] for d in (3, 2, 1)])
    return np.where(n >= 3, np.median(three, axis=0), plain)


def seasonal_naive_rows(yf: np.ndarray, n: np.ndarray, steps: int, gap: int, season: int,
                        robust: bool = False) -> np.ndarray:
    """The last season repeated (K × steps, periods ``gap + 1 ..`` after row ``n[k] - 1`` of the filled target
    ``yf``); naive (the last value) for a series with less than a season of history: a "season" cut to the history
    repeated its first periods (a weekly series of 45 weeks was forecast with its 2nd and 3rd weeks).

    ``robust`` and a season of ``ROBUST_SEASON_FROM`` periods or more: each period repeats the median of the
    period a season back and its two neighbours. A year-old week is one week of data: the baseline of an
    orangeJuice series whose weeks sell 7,000-30,000 repeated last February's one promotion week of 280,960 (a
    seasonal peak of several weeks keeps its level; a daily series' weekly season is repeated as it is)."""
    rows = np.arange(yf.shape[0])[:, None]
    idx = n[:, None] - season + (np.arange(gap, gap + steps)[None, :] % season)
    short = (n < season)[:, None]
    plain = yf[rows, np.clip(np.where(short, n[:, None] - 1, idx), 0, None)]
    if not robust or season < ROBUST_SEASON_FROM:
        return plain
    last = np.maximum(n - 1, 0)[:, None]
    around = np.stack([yf[rows, np.clip(idx + d, 0, last)] for d in (-1, 0, 1)])
    return np.where(short, plain, np.median(around, axis=0))


def intermittent_rows(y: np.ndarray, n: np.ndarray, cfg: SeriesConfig) -> np.ndarray:
    """Per series: whether its newest history (what the choice reads) has ``INTERMITTENT_ZERO_SHARE`` or more of
    its observed periods at zero."""
    y, n = newest_periods(y, n, cfg)
    inside = np.arange(y.shape[1])[None, :] < n[:, None]
    observed = (inside & ~np.isnan(y)).sum(axis=1)
    zeros = (inside & (y == 0)).sum(axis=1)
    return (observed > 0) & (zeros >= INTERMITTENT_ZERO_SHARE * np.maximum(observed, 1))


def choose_rows(y: np.ndarray, n: np.ndarray, cfg: SeriesConfig, origins: int | None = None,
                intermittent: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per series (its history ``y[k, :n[k]]``): (method index, summed backtest error per method: absolute, or
    squared for an intermittent series, ``intermittent_rows``; ``intermittent``: those rows, when the caller
    has them already).

    Series too short for any origin get seasonal naive with a full season, else naive (errors NaN)."""
    origins = origins or max(cfg.auto_origins, 3)
    h, gap = cfg.horizon, cfg.gap
    K = y.shape[0]
    if origins <= max(cfg.auto_origins, 3):  # the newest periods hold every origin's history
        y, n = newest_periods(y, n, cfg)
    squared = (intermittent_rows(y, n, cfg) if intermittent is None else intermittent)[:, None, None]
    yf = filled_rows(y, n)
    errors = np.zeros((K, 4))
    scored = np.zeros(K, dtype=bool)
    for k in range(origins):
        origin_len = n - gap - h - k * h  # training periods at this origin
        ok = origin_len >= 2
        if not ok.any():
            break
        sel = np.flatnonzero(ok)
        fc = candidate_forecasts(yf[sel], origin_len[sel], h, gap, cfg)
        idx = origin_len[sel, None] + gap + np.arange(h)[None, :]
        actual = y[sel[:, None], idx]
        err = fc - actual[:, None, :]
        err = np.where(squared[sel], err * err, np.abs(err))
        err = np.where(np.isnan(actual)[:, None, :], 0.0, err)
        errors[sel] += err.sum(axis=2)
        scored[sel] |= (~np.isnan(actual)).any(axis=1)
    default = np.where(n >= cfg.season, SEASONAL_NAIVE, NAIVE)
    # ties go to the simpler method: a relative tolerance keeps rounding from deciding
    best = np.argmin(errors + 1e-9 * np.arange(4)[None, :] * (1 + np.abs(errors).max(axis=1, keepdims=True)), axis=1)
    errors = np.where(scored[:, None], errors, np.nan)
    return np.where(scored, best, default), errors


def choice_reason(names: tuple[str, ...], method: int, errors: np.ndarray, intermittent: bool = False) -> str:
    """Why a series' baseline is ``names[method]``: its backtest errors ranked (``choose_rows``' row), or too short;
    ``intermittent``: the series was judged by squared error (``intermittent_rows``)."""
    if np.isnan(errors).all():
        return f"baseline: {names[method]} (history too short for a backtest)"
    ranked = sorted(range(len(names)), key=lambda j: errors[j])
    scores = ", ".join(f"{names[j]} {errors[j]:.6g}" for j in ranked)
    how = ("squared error (intermittent: a quarter or more of its periods without sales)" if intermittent
           else "absolute error")
    return f"baseline: {names[method]} by backtest {how} ({scores})"


def forecast_rows(y: np.ndarray, n: np.ndarray, method: np.ndarray, steps: int, gap: int,
                  cfg: SeriesConfig, robust: bool = True) -> np.ndarray:
    """Each series' baseline forecast (its ``method``) of the ``steps`` periods ``gap`` after its history
    (``robust``: ``candidate_forecasts``)."""
    y, n = newest_periods(y, n, cfg)
    yf = filled_rows(y, n)
    fc = candidate_forecasts(yf, n, steps, gap, cfg, robust)
    return np.clip(fc[np.arange(len(n)), method], 0.0, None)


def replace_outside(pred: np.ndarray, y: np.ndarray, n: np.ndarray, cfg: SeriesConfig,
                    reference: np.ndarray | None = None, fallback: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts ``pred`` (K × steps, series k's history ``y[k, :n[k]]``) with every row that leaves the sanity
    envelope replaced by the series' baseline: ``fallback`` when the caller has it, else chosen now for those rows
    only. ``reference``: each series' recent maximum (default: from ``y``). Returns (forecasts, replaced mask)."""
    pred = np.clip(pred, 0.0, None)
    reference = envelope.recent_max_rows(y, n, cfg) if reference is None else reference
    outside = envelope.check(pred, reference, cfg.envelope_multiple)
    if outside.any():
        bad = np.flatnonzero(outside)
        if fallback is not None:
            pred[bad] = fallback[bad]
        else:
            method, _ = choose_rows(y[bad], n[bad], cfg)
            pred[bad] = forecast_rows(y[bad], n[bad], method, pred.shape[1], cfg.gap, cfg)
    return pred, outside


class Baseline(Forecaster):
    """The series' best simple forecast (``method_``), chosen at fit by its own backtest unless ``method`` is
    given (``seasonal_naive`` is the model type of that one method)."""

    name = "baseline"
    fixed_method: str | None = None

    def __init__(self, cfg: SeriesConfig, **params: Any):
        super().__init__(cfg, **params)
        self.method_: str = self.fixed_method or "naive"
        self.reason_: str = ""

    @property
    def tail_length(self) -> int:
        return max(self.cfg.season + 1, *ma_windows(self.cfg)) + 1  # a season back and the period before it

    def _fit(self, frame: pd.DataFrame) -> None:
        names = method_names(self.cfg)
        if self.fixed_method:
            self.method_, self.reason_ = self.fixed_method, f"baseline: {self.fixed_method}"
            return
        y = frame[Y].to_numpy(dtype=float)[None, :]
        n = np.array([y.shape[1]])
        intermittent = intermittent_rows(y, n, self.cfg)
        best, errors = choose_rows(y, n, self.cfg, intermittent=intermittent)
        self.method_ = names[int(best[0])]
        self.reason_ = choice_reason(names, int(best[0]), errors[0], bool(intermittent[0]))

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        if len(future) == 0:
            return np.zeros(0)
        y = filled(history[Y])[None, :]
        gap = self.gap_from(history, future)
        method = method_names(self.cfg).index(self.method_)
        return forecast_rows(y, np.array([y.shape[1]]), np.array([method]), len(future), gap, self.cfg,
                             robust=self.fixed_method is None)[0]


class SeasonalNaive(Baseline):
    """ŷ(origin + k) = y(origin - m + ((k - 1) mod m) + 1): last season repeated; naive if shorter."""

    name = "seasonal_naive"
    fixed_method = "seasonal_naive"
