"""The arrays the ``lightgbm`` model's features are read from (``Batch``), and the reads its features make of
them: a value some periods back, the mean of the other series of a group at the same date, calendar terms.

Kept apart from the model so that training, batch scoring and a planner's what-if (``global_what_if``) read
their features through the same few functions. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mm_assets.forecasting.panel import ffill


@dataclass
class Batch:
    """The arrays features are built from: ``K`` series, each on its own grid from position 0."""

    y: np.ndarray  # (K, T) target, NaN where missing or after the history
    regs: dict[str, np.ndarray]  # (K, T) regressors over history and the forecast periods
    n_hist: np.ndarray  # (K,) history length: positions >= n_hist are never read as targets
    start_days: np.ndarray  # (K,) first period, days since 1970-01-01
    codes: np.ndarray  # (K, 1 + len(id_columns)) categorical codes (series, then each id column); NaN unknown

    def subset(self, sl) -> Batch:
        return Batch(self.y[sl], {c: v[sl] for c, v in self.regs.items()}, self.n_hist[sl], self.start_days[sl],
                     self.codes[sl])

    def from_positions(self, lo: np.ndarray, width: int, step_days: int) -> Batch:
        """Each series from its own position ``lo[k]`` on, ``width`` periods (NaN past its end), the target's
        first period carried forward from the last observed one before it (what a forward fill of the whole
        history would put there): a forecast that reads ``lookback`` periods back needs no more of the history."""
        K, T = self.y.shape
        at = lo[:, None] + np.arange(width)[None, :]
        inside = at < T
        rows = np.arange(K)[:, None]

        def cut(values: np.ndarray) -> np.ndarray:
            return np.where(inside, values[rows, np.minimum(at, T - 1)], np.nan)

        y = cut(self.y)
        y[:, 0] = ffill(self.y[:, : int(lo.max()) + 1])[np.arange(K), lo]
        return Batch(y, {c: cut(v) for c, v in self.regs.items()}, self.n_hist - lo,
                     self.start_days + lo * float(step_days), self.codes)


def others_mean(values: np.ndarray, group: np.ndarray, start_days: np.ndarray, step_days: int) -> np.ndarray:
    """Per series and period: the mean of ``values`` over the *other* series of its group at the same date
    (NaN where it has no other series with a value). Series are on their own grids; dates align them."""
    K, T = values.shape
    if K <= 1:  # no other series (a what-if forecasts one alone)
        return np.full(values.shape, np.nan)
    base = start_days.min()
    offset = np.rint((start_days - base) / step_days).astype(np.int64)
    period = offset[:, None] + np.arange(T)[None, :]
    groups = np.nan_to_num(group, nan=-1).astype(np.int64)
    _, g = np.unique(groups, return_inverse=True)
    P = int(period.max()) + 1
    ok = ~np.isnan(values)
    cell = g[:, None] * P + period  # (group, date) as one index: bincount sums them in one pass
    size = (g.max() + 1) * P
    sums = np.bincount(cell[ok], weights=values[ok], minlength=size)
    counts = np.bincount(cell[ok], minlength=size).astype(float)
    total, n = sums[cell], counts[cell]
    own = np.where(ok, values, 0.0)
    n_others = n - ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_others > 0, (total - own) / np.where(n_others > 0, n_others, 1.0), np.nan)


def calendar_terms(days: np.ndarray, daily: bool) -> list[np.ndarray]:
    """Month, then day of week and day of year (daily) or week of year (weekly), of days since 1970-01-01 (one
    table lookup per row: the few distinct days are converted once)."""
    first = int(np.floor(days.min())) if len(days) else 0
    index = np.floor(days).astype(np.int64) - first
    span = np.arange(first, first + (int(index.max()) + 1 if len(days) else 0))
    dates = span.astype("datetime64[D]")
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64).astype(float)
    month = (dates.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(float)
    if daily:
        return [month[index], ((span + 3) % 7).astype(float)[index], doy[index]]
    return [month[index], (np.floor(doy / 7.0) + 1)[index]]


def reader(sources: dict[str, np.ndarray], k: np.ndarray, t: np.ndarray, T: int
            ) -> Callable[[str, int], np.ndarray]:
    """``back(source, n)``: the values of ``source`` (K × T) ``n`` periods before positions ``t`` of series ``k``,
    NaN before a series' first period; the positions of each ``n`` are computed once."""
    here = k * T + t  # flat positions in the (K, T) sources
    reads: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def back(source: str, n: int) -> np.ndarray:
        if n not in reads:  # where n periods back is, and where it is before the series' first period
            before = t < n if n else None
            reads[n] = (np.where(before, here, here - n) if n else here, before)
        at, before = reads[n]
        values = sources[source].ravel().take(at)
        return values if before is None else np.where(before, np.nan, values)

    return back


