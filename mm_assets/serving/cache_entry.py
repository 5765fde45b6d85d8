"""A series' cache entry (``CachedModel``) and the what-if state kept with it (``WhatIf``), with the arrays they
are built from: the stored plan over the forecast periods (``stored_plan``) and the periods it sets, the request's
plan laid over it, the series' published batch forecast when it is the same model's (``matching_published``) and
the forecast dates.

Why apart from ``service.py``: an entry is a value computed once when a series' model is loaded and then only read
per request, by every thread; building it needs the model and the series' rows, nothing of the lake, registry or
cache. ``ForecastService`` decides when an entry is built, refreshed or kept while something cannot be read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting import envelope
from mm_assets.forecasting.series import (
    DS,
    SeriesConfig,
    Y,
    changed_periods,
    future_regressors,
    unplanned_values,
    without_slips,
)
from mm_assets.lake.lake import same_stamp
from mm_assets.serving.limits import Limit
from mm_assets.serving.lookup import SOURCE_CHAMPION, ModelRef
from mm_assets.serving.rows import Published

log = logging.getLogger("azmlinfsrv.mm_assets")

# Memory of a cached entry besides its bytes and forecast array: the entry object, the OrderedDict slot,
# the ModelRef and its strings (measured with tracemalloc: ~0.9 KB; rounded up).
ENTRY_OVERHEAD_BYTES = 1024


@functools.lru_cache(maxsize=4096)
def period_dates(first: pd.Timestamp, step_days: int, n: int) -> tuple[str, ...]:
    """ISO dates of n periods from ``first``: shared by every entry with the same origin and step."""
    start = first.date()
    return tuple((start + dt.timedelta(days=step_days * k)).isoformat() for k in range(n))


def first_change(future: dict[str, np.ndarray], default: dict[str, np.ndarray], h: int) -> int:
    """The first of the ``h`` periods where any regressor of ``future`` differs from ``default`` (NaN equal to
    NaN), or ``h`` when none does."""
    changed, _ = changed_periods(future, default, h)
    return int(np.argmax(changed)) if changed.any() else h


def stored_plan(rows: pd.DataFrame | None, cfg: SeriesConfig, first: pd.Timestamp, steps: int,
                kinds: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """The planned regressor values of ``steps`` forecast periods from ``first``, NaN where the plan has none:
    the series' planned rows (``split_future``, as batch scoring's ``forecast_from_model`` takes them from the same
    rows) on the forecast dates, without a price of 0 or below (``kinds``: the model's; ``series.without_slips``).
    No rows: no plan."""
    out = {c: np.full(steps, np.nan) for c in cfg.regressors}
    if rows is None or not cfg.regressors:
        return out
    ds = pd.to_datetime(rows[DS]).to_numpy(dtype="datetime64[ns]").view(np.int64)
    observed = rows[Y].notna().to_numpy()
    if not observed.any():
        return out
    # arrays, not split_future's frame and a reindex (1.4 ms of a cold request): planned rows on the forecast dates
    offset = ds - first.value
    k = offset // cfg.step.value
    on = (ds > ds[observed].max()) & (offset % cfg.step.value == 0) & (k >= 0) & (k < steps)
    for c in cfg.regressors:
        out[c][k[on]] = rows[c].to_numpy(dtype=float)[on]
    return without_slips(out, kinds)


def plan_with_request(plan: dict[str, np.ndarray], request_plan, first: pd.Timestamp, step: pd.Timedelta,
                      h: int) -> dict[str, np.ndarray]:
    """The first ``h`` periods of the stored plan with the request's values written over it: a period or a
    regressor the request leaves out keeps the stored plan's value (NaN: the default batch scoring uses)."""
    planned = {c: values[:h].copy() for c, values in plan.items()}
    for ds, values, _ in request_plan:
        k = (ds.value - first.value) // step.value
        for col, value in values.items():
            if col in planned:
                planned[col][k] = value
    return planned


def planned_mask(plan: dict[str, np.ndarray], steps: int) -> np.ndarray:
    """Per forecast period: whether the stored plan gives it any value (batch scoring's ``planned_periods``)."""
    mask = np.zeros(steps, dtype=bool)
    for values in plan.values():
        mask |= ~np.isnan(values[:steps])
    return mask


def matching_published(published: Published | None, ref: ModelRef, origin: pd.Timestamp, first: pd.Timestamp,
                       steps: int, data: str | None = None) -> tuple[np.ndarray, str | None] | None:
    """(the first ``steps`` values, the envelope's note) of a series' published batch forecast when model version
    ``ref.version`` made it from ``origin`` for the periods from ``first`` on (a champion's, or the baseline's
    that replaced it under the envelope) and from the dataset of signature ``data`` when the forecast names one;
    None otherwise (another model, an older origin, other rows or plan, too few periods)."""
    if published is None or len(published) < steps:
        return None
    scored_from = published.dataset_signature
    if scored_from and data and not same_stamp(scored_from, data):  # the dataset was re-cut (new rows, a new plan)
        return None

    def head(column: str) -> np.ndarray:
        return published[column][:steps]

    replaced = head("envelope_replaced") == 1
    same_model = (head("model_version") == ref.version) & ((head("model_source") == SOURCE_CHAMPION) | replaced)
    if not (same_model.all() and (head("origin").astype("datetime64[ns]") == origin.to_datetime64()).all()
            and pd.Timestamp(head("ds")[0]) == first):
        return None
    return head("yhat").astype(float), (str(head("note")[replaced][0]) if replaced.any() else None)


@dataclass
class CachedModel:
    """A series' serving model as the cache keeps it (built by ``ForecastService._entry``): its default forecast,
    computed once when it is loaded, what a request with regressors needs (``what_if``, else the pickled ``blob`` a
    private copy is unpickled from per request), and what the answer's labels say about where it came from."""

    ref: ModelRef
    blob: bytes  # the pickled model, as stored in its bundle (a baseline: as fitted on the series' rows); a
    # global model's is not kept here (``SharedModels``): empty
    cfg: SeriesConfig
    origin: pd.Timestamp
    max_horizon: int
    ds: tuple[str, ...]  # default forecast dates (max_horizon)
    yhat: np.ndarray  # default forecast (the stored plan, else the defaults), max_horizon values
    size: int
    rows: pd.DataFrame | None = None  # the series' rows in the lake (history, then plan); None: the stored tail
    data: str | None = None  # the signature of the dataset the rows came from (a re-cut one is read again)
    published_data: str | None = None  # a global champion's: the signature of the published forecast file it read
    plan: dict[str, np.ndarray] = field(default_factory=dict)  # the stored plan over the forecast periods
    planned: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # periods the stored plan sets
    limits: dict[str, Limit] = field(default_factory=dict)  # the values each regressor's plan may take
    envelope: str | None = None  # why the sanity envelope replaced the default forecast by the baseline's
    alone: bool = False  # a global champion forecast alone: its published forecast was not there to answer with
    published_unreadable: str | None = None  # alone because its published forecast cannot be read right now (the
    # error): tried again after ``RETRY_S``
    from_tail: bool = False  # no rows in the lake: forecast from the model's stored tail
    unfit: str | None = None  # why its champion cannot forecast with these settings: its baseline answers, as batch
    # scoring's (that note)
    unreadable: str | None = None  # its model cannot be read (its file, the error): answered from the published
    # forecast, without a model; a what-if is a 503
    checked_at: float = field(default_factory=time.monotonic)
    retry_at: float | None = None  # a failed refresh, or a missing model: checked again from then on, not later
    what_if: WhatIf | None = None  # a model that forecasts from arrays, ready for planners' what-ifs

    @property
    def first(self) -> pd.Timestamp:
        """The first forecast period."""
        return self.origin + self.cfg.step * (1 + self.cfg.gap)


@dataclass(frozen=True)
class WhatIf:
    """What a what-if request needs of a model that forecasts from planned rows (``planned_rows``: the linear
    model's design rows, the global model's history cut to what its features read), kept with the cached entry and
    computed once when it is loaded: those rows (a plan only writes its regressor values), the stored plan and the
    regressor values where no plan sets them (``series.unplanned_values``), and the envelope's reference. Only
    read per request, so threads share it. Its size is counted in the entry's: the rows' bytes and, for a model
    object of its own, its pickle's size.

    ``published``: a global model's default forecast as batch scoring published it, with the store's other
    products. The endpoint has the series alone, which moves the forecast (0.4 % at the median on the demo, 7.8 % on
    orangeJuice's stores of 11 products), so a what-if
    answers the published forecast moved by the model's response to the plan, on the scale the model learns
    (log1p): the stored plan itself answers the published forecast, and a plan's effect is the model's own."""

    cfg: SeriesConfig
    rows: Any  # PlannedRows (with its linear model) or GlobalPlannedRows (asking for its global model)
    unplanned: dict[str, float]  # each regressor's value where no plan sets it (``series.unplanned_values``)
    flags: frozenset[str]  # the flags: 0 where no plan sets them
    reference: float  # the sanity envelope's recent maximum of the history
    plan: dict[str, np.ndarray]  # the stored plan over the forecast periods, NaN where it has no value
    published: np.ndarray | None = None

    @classmethod
    def of(cls, model, steps: int, history: pd.DataFrame, plan: dict[str, np.ndarray],
           published: np.ndarray | None = None, shared: Callable[[], Any] | None = None) -> WhatIf | None:
        """The what-if state of ``steps`` forecast periods after ``history`` (the series' rows, else the model's
        stored tail) under the stored ``plan`` (None: the model has no planned rows, or they cannot be built;
        the general path answers). ``shared``: how a global model's rows find the model (not kept with them)."""
        if getattr(model, "planned_rows", None) is None or history is None or len(history) == 0:
            return None
        cfg = model.cfg
        y_hist = history[Y].to_numpy(dtype=float)
        regs_hist = {c: history[c].to_numpy(dtype=float) for c in cfg.regressors}
        unplanned = unplanned_values(regs_hist, model.kinds_, cfg)  # a share's usual value, a price's regular one
        flags = frozenset(model.flags_)
        default, _ = future_regressors(unplanned, flags, cfg.regressors, steps, plan)
        start_day = float((history.index[0] - pd.Timestamp("1970-01-01")).days)
        try:
            rows = model.planned_rows(y_hist, regs_hist, start_day, default, cfg.gap, steps)
        except Exception:  # noqa: BLE001 - the general path answers, and raises what it deserves
            log.warning("what-if rows of a %s model cannot be built:\n%s", model.name, traceback.format_exc())
            return None
        if shared is not None:
            rows = dataclasses.replace(rows, model=shared)
        return cls(cfg, rows, unplanned, flags, model.envelope_reference(y_hist), plan, published)

    @property
    def nbytes(self) -> int:
        """Its own arrays' bytes (the stored plan is the entry's, counted there)."""
        return int(self.rows.nbytes)

    @functools.cached_property
    def _default(self) -> dict[str, np.ndarray]:
        """The regressors of the published forecast's periods without a request's plan (the stored plan, the
        rest defaulted as batch scoring does)."""
        return future_regressors(self.unplanned, self.flags, self.cfg.regressors, len(self.published), self.plan)[0]

    def _moved(self, changed: np.ndarray, pred: np.ndarray, alone: np.ndarray, h: int) -> np.ndarray:
        """The published forecast moved, in the periods a plan changes (``changed``), by what it changed of the
        series-alone forecast (``pred``, against the stored plan's ``alone``): exactly the published value
        elsewhere and where the model's forecast did not move (a round trip through log1p is not exact to the
        last bit)."""
        out = self.published[:h].copy()
        moved = changed & (pred != alone)
        if moved.any():
            shift = np.log1p(out[moved]) - np.log1p(np.clip(alone[moved], 0.0, None))
            out[moved] = np.expm1(np.log1p(np.clip(pred[moved], 0.0, None)) + shift)
        return out

    def _series_alone(self, future: dict[str, np.ndarray], h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the periods of ``h`` where ``future`` changes the series-alone forecast, its forecast there, the
        stored plan's there). A period's features read no later regressor values, so nothing before the first
        change is forecast; a global model's boosters run on the rows the plan changes only, with the stored
        plan's rows the first time they are asked (``GlobalPlannedRows.changes``); a per-series model forecasts
        every period, and the stored plan's forecast once."""
        steps = len(self.published)
        if h > steps:
            raise ValueError(f"a what-if of {h} periods on a published forecast of {steps}")
        start = first_change(future, self._default, h)
        if start >= h:
            return np.zeros(h, dtype=bool), np.full(h, np.nan), np.full(h, np.nan)
        if hasattr(self.rows, "changes"):
            return self.rows.changes(future, h, start)
        pred = np.asarray(self.rows.predict(future, h), dtype=float).copy()
        if "_alone" not in self.__dict__:
            self.__dict__["_alone"] = np.asarray(self.rows.predict(self._default, steps), dtype=float).copy()
        return np.ones(h, dtype=bool), pred, self.__dict__["_alone"][:h]

    def forecast(self, first: pd.Timestamp, h: int, plan=(), cap: bool = False) -> tuple[np.ndarray, int, float | None] | None:
        """``h`` periods from ``first`` (the first forecast period), the request's plan laid over the stored one
        and the rest defaulted by ``future_regressors`` (as batch scoring) → (forecast, periods that used a plan,
        the model's own largest value when it was capped, else None); None when the sanity envelope rejects it or
        it fails (the general path then replaces it and records why, or raises the error with the answer it
        deserves).

        ``cap``: a planner's what-if whose forecast is finite but above the envelope's bound is capped at the
        bound, not replaced by the baseline. The model served the stored plan inside the envelope; a plan beyond
        anything the series sold (a deeper promotion than its last year's) takes it above, and the baseline,
        which reads no plan, would answer a promotion with less than no promotion."""
        cfg = self.cfg
        planned = plan_with_request(self.plan, plan, first, cfg.step, h)
        future, used = future_regressors(self.unplanned, self.flags, cfg.regressors, h, planned)
        try:
            if self.published is not None:
                pred = self._moved(*self._series_alone(future, h), h)
            else:
                pred = self.rows.predict(future, h)
        except Exception:  # noqa: BLE001 - see the docstring: the general path answers
            return None
        pred = np.clip(pred, 0.0, None)  # NaN stays NaN: the envelope catches it
        if not np.isfinite(pred).all():
            return None
        if envelope.violation(pred, self.reference, cfg.envelope_multiple) is None:
            return pred, used, None
        bound = float(envelope.upper_bound(self.reference, cfg.envelope_multiple))
        if not cap or bound <= 0.0:
            return None
        return np.minimum(pred, bound), used, float(pred.max())

