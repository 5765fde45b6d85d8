"""A planner's what-if on the ``lightgbm`` model: one series' rows built once, and only the regressor features
written again for each plan before the boosters run.

Why apart from the model: the online endpoint answers what-ifs by the thousand per second, and each must not
redo the pandas work and the whole history that a forecast through ``GlobalSeriesModel`` does; these rows give
the same numbers (tested) from a few kilobytes kept with the cached series. No Dagster here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mm_assets.forecasting.global_batch import Batch, reader

if TYPE_CHECKING:
    from mm_assets.forecasting.global_lgbm import GlobalModel

FIXED_ROWS_BYTES = 28 * 40 * 4  # a what-if's fixed rows: ~28 forecast periods of ~40 float32 features



@dataclass(frozen=True)
class GlobalPlannedRows:
    """One series' history cut to what its forecasts read (``read_window``), followed by its forecast periods:
    a planner's what-if only writes its regressor values there and runs the boosters, without the pandas work
    and the whole history of ``GlobalSeriesModel._predict`` (which forecasts through it: the same numbers).

    ``model`` gives the global model when a forecast needs it: the online endpoint keeps these rows with a cached
    series and the model apart (``SharedModels``), so that a cached series does not hold megabytes of model."""

    model: Callable[[], GlobalModel]
    batch: Batch  # one series: the periods the features read, the gap, the forecast periods (default regressors)
    first: int  # position of the first forecast period
    gap: int
    targets: dict[str, np.ndarray]  # the batch's ``_target_sources``: no plan changes what is read of them

    @property
    def nbytes(self) -> int:
        """Its arrays' bytes, and the rows of its first what-if (``_fixed``: a few kilobytes) once built."""
        arrays = [self.batch.y, *self.batch.regs.values(), *self.targets.values()]
        return int(sum(v.nbytes for v in arrays)) + FIXED_ROWS_BYTES

    def predict(self, future_regs: dict[str, np.ndarray], steps: int) -> np.ndarray:
        """Forecast of the first ``steps`` periods with these regressor values (``steps`` each)."""
        return self.predict_many([(future_regs, steps)])[0]

    def predict_many(self, plans: list[tuple]) -> list[np.ndarray]:
        """Forecasts of several plans, one booster call per lead for all of them. A plan is (regressor values,
        steps) or (regressor values, steps, start): the periods ``start`` .. ``steps - 1`` only (NaN before
        ``start``). A period's features read the regressors of that period and earlier ones, never later, so a
        plan that changes nothing before ``start`` has the stored plan's forecast there: the caller keeps it, and
        the boosters of those periods do not run.

        Only the regressor features are built per plan, from the periods they read (the price's quarter before the
        first forecast period, and the lead): the rest of every row (the target's lags and levels, the calendar,
        the codes) was built once, under the stored plan (``_fixed``). The same numbers as the model on the whole
        history (tested)."""
        model, fixed, b = self.model(), self._fixed, self.batch
        lo, T = fixed.lo, b.y.shape[1]
        plans = [(plan[0], plan[1], plan[2] if len(plan) > 2 else 0) for plan in plans]
        parts: dict[int, list[np.ndarray]] = {slot: [] for slot in fixed.rows}
        spans: dict[int, list[tuple[int, int]]] = {slot: [] for slot in fixed.rows}  # per plan: its rows' span
        for future_regs, steps, start in plans:
            regs = {}
            for col, values in b.regs.items():
                row = values[:, lo:T].copy()
                row[0, self.first - lo:self.first - lo + steps] = future_regs[col][:steps]
                row[0, self.first - lo + steps:] = np.nan  # not read by the periods asked for
                regs[col] = row
            narrow = Batch(b.y[:, lo:T], regs, b.n_hist - lo, b.start_days + lo * float(model.cfg.step.days),
                           b.codes)
            sources = model._regressor_sources(narrow)
            for slot, (js, X) in fixed.rows.items():
                a, n = int(np.searchsorted(js, start)), int(np.searchsorted(js, steps))
                spans[slot].append((a, n))
                if n <= a:
                    continue
                X = X[a:n].copy()
                back = reader(sources, np.zeros(n - a, dtype=np.int64), self.first - lo + js[a:n], T - lo)
                model._fill_regressors(X, fixed.regressors_at[slot], back, model.leads[slot])
                parts[slot].append(X)
        out = [np.full(steps, np.nan) for _, steps, _ in plans]
        for slot, pieces in parts.items():
            if not pieces:
                continue
            js = fixed.rows[slot][0]
            raw = model.booster(slot).predict(pieces[0] if len(pieces) == 1 else np.concatenate(pieces), num_threads=1)
            pred = model.lift(raw[None, :], fixed.factors[slot])[0]
            at = 0
            for k, (a, n) in enumerate(spans[slot]):
                if n > a:
                    out[k][js[a:n]] = pred[at:at + n - a]
                    at += n - a
        return out

    @functools.cached_property
    def _fixed(self) -> _FixedRows:
        """Every forecast period's feature rows under the stored plan, per booster, and where a plan's
        regressor features start reading: built at the first what-if of the series."""
        model, b = self.model(), self.batch
        slots, pos, valid = model._steps_by_booster(np.array([self.first]), b.y.shape[1] - self.first, self.gap)
        rows = model._rows(b, pos, valid, self.targets, regressors=False)  # each plan writes its own
        # a regressor feature reads the price's quarter up to the origin (its mean and highest), the previous
        # period, and the price ``lead`` periods back
        lo = max(0, self.first - model.regressor_reach - 1)
        return _FixedRows(lo, {slot: (np.array(js), rows[model.leads[slot]]) for slot, js in slots.items()},
                          {slot: model._regressors_at(model.leads[slot]) for slot in slots},
                          {slot: model._level_factors_of(b.codes[:, 0], slot) for slot in slots})


@dataclass(frozen=True)
class _FixedRows:
    """What every what-if of a series reads the same: asked of the model once, not per request."""

    lo: int  # the first position a plan's regressor features read
    rows: dict[int, tuple[np.ndarray, np.ndarray]]  # booster slot -> (its forecast steps, their rows)
    regressors_at: dict[int, int]  # booster slot -> the first column of its regressor features
    factors: dict[int, np.ndarray]  # booster slot -> the series' level factor (``GlobalModel.level``)


