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

FIXED_ROWS_BYTES = 2 * 28 * 40 * 4  # a what-if's fixed and stored rows: ~28 periods of ~40 float32 features



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
        ``start``). The same numbers as the model on the whole history (tested): see ``_forecasts``."""
        return [forecast for _, forecast, _ in self._forecasts(plans, whole=True)]

    def changes(self, future_regs: dict[str, np.ndarray], steps: int, start: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a plan changes of the stored plan's forecast of ``steps`` periods (from ``start``): (the periods
        whose feature rows it changes, its forecast there, the stored plan's there; NaN elsewhere). A planner's
        what-if is answered against the stored plan: the periods it does not change need no booster, and those it
        changes are forecast under both plans in one call of their booster."""
        return self._forecasts([(future_regs, steps, start)], whole=False)[0]

    def _forecasts(self, plans: list[tuple], whole: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per plan (regressor values, steps[, start]): (the periods whose rows it changes, its forecast, the
        stored plan's forecast of those periods). ``whole``: the forecast of every period from ``start`` (the stored plan's
        where the plan changes nothing), else only of the periods it changes (NaN elsewhere).

        A period's features read the regressors of that period and earlier ones, never later, so a plan that
        changes nothing before ``start`` has the stored plan's forecast there. Only the regressor features are
        built per plan, from the periods they read (the price's quarter before the first forecast period, and the
        lead): the rest of every row (the target's lags and levels, the calendar, the codes) was built once, under
        the stored plan (``_fixed``). The boosters then run only on the rows whose features differ from the stored
        plan's (``_stored``): a booster's output is a function of its row alone, so the other rows have the stored
        plan's forecast to the last bit, computed once per row when first asked. A plan that changes a few periods
        changes the rows of those periods and the next one (a promotion's previous period), not the rest of the
        horizon (a price is measured against its quarter up to the origin): one booster call of a few rows."""
        model, stored = self.model(), self._stored
        plans = [(plan[0], plan[1], plan[2] if len(plan) > 2 else 0) for plan in plans]
        changed: dict[int, list[np.ndarray]] = {slot: [] for slot in stored}  # the plans' rows that differ
        spans: dict[int, list[tuple[int, int, np.ndarray]]] = {slot: [] for slot in stored}  # per plan: which
        for future_regs, steps, start in plans:
            for slot, (a, n, rows) in self._plan_rows(model, future_regs, steps, start).items():
                reference = stored[slot].rows[a:n]
                differs = ~((rows == reference) | (np.isnan(rows) & np.isnan(reference))).all(axis=1)
                spans[slot].append((a, n, differs))
                if differs.any():
                    changed[slot].append(rows[differs])
        out = [(np.zeros(steps, dtype=bool), np.full(steps, np.nan), np.full(steps, np.nan))
               for _, steps, _ in plans]
        for slot, kept in stored.items():
            need = np.zeros(len(kept.js), dtype=bool)  # the stored plan's rows whose forecast is asked
            for a, n, differs in spans[slot]:
                need[a:n] |= True if whole else differs
            need &= ~kept.known
            pieces = changed[slot] + ([kept.rows[need]] if need.any() else [])
            moved = np.empty(0)
            if pieces:
                raw = model.booster(slot).predict(pieces[0] if len(pieces) == 1 else np.concatenate(pieces),
                                                  num_threads=1)
                values = model.lift(raw[None, :], self._fixed.factors[slot])[0]
                n_plans = len(values) - int(need.sum())  # the plans' rows first, then the stored plan's asked
                moved, kept.forecast[need] = values[:n_plans], values[n_plans:]
                kept.known |= need
            at = 0
            for (periods, forecast, reference), (a, n, differs) in zip(out, spans[slot], strict=True):
                js = kept.js[a:n][differs]
                if whole:
                    forecast[kept.js[a:n]] = kept.forecast[a:n]
                forecast[js] = moved[at:at + len(js)]
                periods[js] = True
                reference[js] = kept.forecast[a:n][differs]
                at += len(js)
        return out

    def _plan_rows(self, model: GlobalModel, future_regs: dict[str, np.ndarray], steps: int, start: int
                   ) -> dict[int, tuple[int, int, np.ndarray]]:
        """Each booster's rows of the periods ``start`` .. ``steps - 1`` under this plan: {slot: (first row, end
        row, the rows)} among the booster's own (``_fixed``), the regressor features written over the stored
        ones."""
        fixed, b = self._fixed, self.batch
        lo, T = fixed.lo, b.y.shape[1]
        regs = {}
        for col, values in b.regs.items():
            row = values[:, lo:T].copy()
            row[0, self.first - lo:self.first - lo + steps] = future_regs[col][:steps]
            row[0, self.first - lo + steps:] = np.nan  # not read by the periods asked for
            regs[col] = row
        narrow = Batch(b.y[:, lo:T], regs, b.n_hist - lo, b.start_days + lo * float(model.cfg.step.days), b.codes)
        sources = model._regressor_sources(narrow)
        out = {}
        for slot, (js, X) in fixed.rows.items():
            a, n = int(np.searchsorted(js, start)), int(np.searchsorted(js, steps))
            X = X[a:n].copy()
            if n > a:
                back = reader(sources, np.zeros(n - a, dtype=np.int64), self.first - lo + js[a:n], T - lo)
                model._fill_regressors(X, fixed.regressors_at[slot], back, model.leads[slot])
            out[slot] = (a, n, X)
        return out

    @functools.cached_property
    def _stored(self) -> dict[int, _Stored]:
        """Per booster slot, its periods' rows under the stored plan, built as a plan's are (``_plan_rows``), so
        that a plan's row equal to the stored plan's is one to the last bit; their forecasts are computed when
        first asked."""
        b = self.batch
        stored = {col: values[0, self.first:] for col, values in b.regs.items()}
        return {slot: _Stored(self._fixed.rows[slot][0], X, np.full(len(X), np.nan), np.zeros(len(X), dtype=bool))
                for slot, (_, _, X) in self._plan_rows(self.model(), stored, b.y.shape[1] - self.first, 0).items()}

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


@dataclass
class _Stored:
    """One booster's periods under the stored plan: their rows and, once asked, their forecasts."""

    js: np.ndarray  # the booster's forecast steps
    rows: np.ndarray  # their feature rows under the stored plan
    forecast: np.ndarray  # their forecasts where ``known``
    known: np.ndarray


@dataclass(frozen=True)
class _FixedRows:
    """What every what-if of a series reads the same: asked of the model once, not per request."""

    lo: int  # the first position a plan's regressor features read
    rows: dict[int, tuple[np.ndarray, np.ndarray]]  # booster slot -> (its forecast steps, their rows)
    regressors_at: dict[int, int]  # booster slot -> the first column of its regressor features
    factors: dict[int, np.ndarray]  # booster slot -> the series' level factor (``GlobalModel.level``)


