"""A planner's what-if on the ``lightgbm`` model: one series' rows built once, only the regressor features
written again for each plan, and the boosters run only on the periods whose rows the plan changes (the others keep
the stored plan's forecast, to the last bit).

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
from mm_assets.forecasting.series import changed_periods, unequal

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
        """Its arrays' bytes, and the rows of its what-ifs (``_Booster``: a few kilobytes) once built."""
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
        stored plan's forecast of those periods). ``whole``: the forecast of every period from ``start`` (the
        stored plan's where the plan changes nothing), else only of the periods it changes (NaN elsewhere).

        A period's features read the planned regressors of that period and of at most ``plan_reach`` periods
        before it (a promotion's previous period; a price is measured against its quarter up to the origin), so
        only the rows of those periods are built under a plan, and only the regressor features: the rest of each
        row (the target's lags and levels, the calendar, the codes) is built once per booster (``_Booster``).
        The boosters then run only on the rows that differ from the stored plan's: a booster's output is a
        function of its row alone, so the other rows have the stored plan's forecast to the last bit, computed
        once per row when first asked. A plan of a few periods: one booster call of a few rows."""
        model = self.model()
        plans = [(plan[0], plan[1], plan[2] if len(plan) > 2 else 0) for plan in plans]
        boosters = self._boosters
        asked: dict[int, list[np.ndarray]] = {slot: [] for slot in boosters}  # the plans' rows that differ
        # per booster and plan: (its rows asked, those the plan changes), None for a booster a what-if never runs
        spans: dict[int, list[tuple[np.ndarray, np.ndarray] | None]] = {slot: [] for slot in boosters}
        for future_regs, steps, start in plans:
            reached, columns = self._reached(model, future_regs, steps, start)
            sources = self._sources(model, future_regs, steps, columns) if reached.any() else None
            mine = {int(slot) for slot in self._slot_of_step[:steps][reached]}
            for slot, kept in boosters.items():
                if not whole and slot not in mine:
                    spans[slot].append(None)
                    continue
                at = np.flatnonzero((kept.js >= start) & (kept.js < steps))  # the booster's rows asked
                hit = reached[kept.js[at]]  # those the plan can change
                differs = np.zeros(len(at), dtype=bool)
                if hit.any():
                    rows = self._rows(model, kept, at[hit], sources)
                    reference = self._stored_rows(model, kept)[at[hit]]
                    moved = unequal(rows, reference).any(axis=1)
                    differs[np.flatnonzero(hit)[moved]] = True
                    if moved.any():
                        asked[slot].append(rows[moved])
                spans[slot].append((at, differs))
        out = [(np.zeros(steps, dtype=bool), np.full(steps, np.nan), np.full(steps, np.nan))
               for _, steps, _ in plans]
        for slot, kept in boosters.items():
            if all(span is None for span in spans[slot]):
                continue
            need = np.zeros(len(kept.js), dtype=bool)  # the stored plan's rows whose forecast is asked
            for span in spans[slot]:
                if span is not None:
                    need[span[0] if whole else span[0][span[1]]] = True
            need &= ~kept.known
            pieces = asked[slot] + ([self._stored_rows(model, kept)[need]] if need.any() else [])
            values = np.empty(0)
            if pieces:
                raw = model.booster(slot).predict(pieces[0] if len(pieces) == 1 else np.concatenate(pieces),
                                                  num_threads=1)
                values = model.lift(raw[None, :], kept.factor)[0]
                n_plans = len(values) - int(need.sum())  # the plans' rows first, then the stored plan's asked
                values, kept.forecast[need] = values[:n_plans], values[n_plans:]
                kept.known |= need
            used = 0
            for (periods, forecast, reference), span in zip(out, spans[slot], strict=True):
                if span is None:
                    continue
                at, differs = span
                js = kept.js[at[differs]]
                if whole:
                    forecast[kept.js[at]] = kept.forecast[at]
                forecast[js] = values[used:used + len(js)]
                periods[js] = True
                reference[js] = kept.forecast[at[differs]]
                used += len(js)
        return out

    def _reached(self, model: GlobalModel, future_regs: dict[str, np.ndarray], steps: int, start: int
                 ) -> tuple[np.ndarray, list[str]]:
        """(the periods of ``steps`` whose features can read a planned value of ``future_regs`` that differs from
        the stored plan's: those periods and the ``plan_reach`` after each; the regressors it differs in)."""
        n = np.arange(steps)
        changed, columns = changed_periods(future_regs, self._stored_plan, steps)
        last = np.maximum.accumulate(np.where(changed, n, -steps - model.plan_reach - 1))
        return (n - last <= model.plan_reach) & (n >= start), columns

    def _sources(self, model: GlobalModel, future_regs: dict[str, np.ndarray], steps: int,
                 columns: list[str] | None = None) -> dict[str, np.ndarray]:
        """The regressor sources (``_regressor_sources``) under a plan of ``steps`` periods, over the periods
        its features read (from ``_lo``). ``columns``: the regressors the plan changes; the others' sources are
        the stored plan's (a source is made of its own regressor and reads no later period, so it is the same
        wherever its regressor is: a promotion-only what-if builds no price source)."""
        if columns is not None and len(columns) < len(self.batch.regs):
            return self._stored_sources | self._sources(model, {c: future_regs[c] for c in columns}, steps, None)
        b, lo = self.batch, self._lo(model)
        T = b.y.shape[1]
        regs = {}
        for col in future_regs:
            row = b.regs[col][:, lo:T].copy()
            row[0, self.first - lo:self.first - lo + steps] = future_regs[col][:steps]
            row[0, self.first - lo + steps:] = np.nan  # not read by the periods asked for
            regs[col] = row
        narrow = Batch(b.y[:, lo:T], regs, b.n_hist - lo, b.start_days + lo * float(model.cfg.step.days), b.codes)
        return model._regressor_sources(narrow, list(regs))

    def _rows(self, model: GlobalModel, kept: _Booster, at: np.ndarray, sources: dict[str, np.ndarray]
              ) -> np.ndarray:
        """The booster's rows ``at`` (positions among its periods) with the regressor features of ``sources``
        written over its fixed rows."""
        lo, T = self._lo(model), self.batch.y.shape[1]
        X = self._fixed_rows(model, kept)[at]  # a copy: fancy indexing
        back = reader(sources, np.zeros(len(at), dtype=np.int64), self.first - lo + kept.js[at], T - lo)
        model._fill_regressors(X, kept.regressors_at, back, kept.lead)
        return X

    def _fixed_rows(self, model: GlobalModel, kept: _Booster) -> np.ndarray:
        """The booster's rows of the target's features, the calendar and the codes (regressor features NaN),
        built at its first what-if."""
        if kept.fixed is None:
            b = self.batch
            pos = self.first + np.arange(b.y.shape[1] - self.first)[None, :]
            valid = np.zeros(pos.shape, dtype=bool)
            valid[0, kept.js] = True
            kept.fixed = model._rows(b, pos, {kept.lead: valid}, self.targets, regressors=False)[kept.lead]
        return kept.fixed

    def _stored_rows(self, model: GlobalModel, kept: _Booster) -> np.ndarray:
        """The booster's rows under the stored plan, built as a plan's are (``_rows``), so that a plan's row equal
        to the stored plan's is one to the last bit."""
        if kept.stored is None:
            kept.stored = self._rows(model, kept, np.arange(len(kept.js)), self._stored_sources)
        return kept.stored

    @functools.cached_property
    def _stored_plan(self) -> dict[str, np.ndarray]:
        """Each regressor's values over the forecast periods under the stored plan (the batch's own)."""
        return {col: values[0, self.first:] for col, values in self.batch.regs.items()}

    @functools.cached_property
    def _stored_sources(self) -> dict[str, np.ndarray]:
        return self._sources(self.model(), self._stored_plan, self.batch.y.shape[1] - self.first)

    def _lo(self, model: GlobalModel) -> int:
        """The first position a plan's regressor features read: the price's quarter up to the origin (its mean
        and highest), the previous period, and the price ``lead`` periods back."""
        return max(0, self.first - model.regressor_reach - 1)

    @functools.cached_property
    def _slot_of_step(self) -> np.ndarray:
        """The booster slot of each forecast step."""
        out = np.zeros(self.batch.y.shape[1] - self.first, dtype=np.int64)
        for slot, kept in self._boosters.items():
            out[kept.js] = slot
        return out

    @functools.cached_property
    def _boosters(self) -> dict[int, _Booster]:
        """Per booster slot, its forecast periods; their rows are built when a plan first reaches them."""
        model, b = self.model(), self.batch
        slots, _, _ = model._steps_by_booster(np.array([self.first]), b.y.shape[1] - self.first, self.gap)
        factors = {slot: model._level_factors_of(b.codes[:, 0], slot) for slot in slots}
        return {slot: _Booster(np.array(js), model.leads[slot], model._regressors_at(model.leads[slot]),
                               factors[slot], np.full(len(js), np.nan), np.zeros(len(js), dtype=bool))
                for slot, js in slots.items()}


@dataclass
class _Booster:
    """One booster's forecast periods of a series: their rows, built when a plan first reaches them (the
    target's features once, and under the stored plan), and the stored plan's forecasts once asked."""

    js: np.ndarray  # its forecast steps
    lead: int
    regressors_at: int  # the first column of its regressor features
    factor: np.ndarray  # the series' level factor (``GlobalModel.level``)
    forecast: np.ndarray  # the stored plan's forecasts where ``known``
    known: np.ndarray
    fixed: np.ndarray | None = None  # rows of the target's features, the calendar, the codes (regressors NaN)
    stored: np.ndarray | None = None  # the rows under the stored plan
