"""The online forecast service: validate a request, get each series' model (cached), forecast, answer JSON.

Request (``POST /score``)::

    {"series": [{"store": "S01", "item": "I001", "horizon": 14,
                 "regressors": [{"ds": "2026-11-25", "promo": 1}, {"ds": "2026-11-26", "price": 1.79}]}]}

- the configured id columns (``columns.ids``) name the series: strings (integers are taken as their text);
- ``horizon``: periods to forecast, 1..``horizon`` of the settings (default: that maximum);
- ``regressors`` (optional): known future values of the configured regressors by date (``YYYY-MM-DD``), each date
  inside the forecast window and each value one the series' model can take (``limits``: a flag 0 or 1, a share
  within 0..1, a price-like value > 0 and within 10x of the series' price range). Every period and regressor
  without a value keeps the value batch scoring used: the stored plan (the planned rows of the series' dataset in
  the lake), else 0 for a flag (no promotion), a share's median over the last season and the last known value for
  any other (the last price).

Answer::

    {"forecasts": [{"store": "S01", "item": "I001", "model_version": 3, "model_source": "champion",
                    "model_type": "linear", "origin": "2026-11-22", "horizon": 14, "planned_periods": 2,
                    "note": null, "points": [{"ds": "2026-11-23", "yhat": 4.63}, ...]}]}

Which model: the series' production champion; without one, its baseline fitted on its rows (``model_source:
baseline``, version 0), as batch scoring publishes it; ``MM_ASSETS_SERVING_FALLBACK`` opts into the latest trained
model or a 404 instead. ``origin`` is the series' last observed period, the one batch scoring forecasts from; the
points follow it. ``planned_periods``: the periods that used a planned value (the stored plan's or the request's).

Bad input is a 4xx with a JSON body naming the problem: 400 ``invalid_json`` / ``invalid_request`` (missing or
malformed field, bad id, horizon out of range, regressor outside the window or the values its model can take), 413
``too_many_series``, 404 ``unknown_series`` (the body is parsed and checked in ``request.py``; values a client sent
are echoed at most ``request.ECHO_CHARS`` long). A model that is read but fails to forecast is a 500
``model_unavailable`` with the reason; an unreadable registry, dataset or model file a 503 ``registry_unavailable``
/ ``data_unavailable`` / ``model_unavailable`` naming what to retry, for what truly needs it (below); the process
keeps serving.

Lake files may be rewritten in place by other writers, so a file that cannot be read costs only what truly needs
it: a series whose model cannot be read answers without regressors from its published batch forecast when that is
the same model's from the same rows (``UNREADABLE_NOTE``; a what-if is the 503), and a cached series whose refresh
cannot read its dataset or its published forecast keeps the answer it has (a series not cached is forecast alone
meanwhile, ``ALONE_UNREADABLE_NOTE``); each tries again after ``RETRY_S`` and logs the error once per version of the
file. Likewise a registry that cannot be asked at a refresh leaves a cached series answering from its cache, asking
again after ``RETRY_S`` (logged once per outage, and when it answers again); only series not cached are its 503.

Speed: a forecast is a pure function of the model, the series' rows and the regressor values, so when a model is
loaded its default forecast (the longest horizon it allows) is computed once and kept with it; requests without
``regressors`` are answered from that (a shorter horizon is its prefix), requests with ``regressors`` run the
model: a linear model from its forecast periods' design rows, built when it is loaded (``WhatIf``: a plan writes
only its regressor columns, then one dot product per period); any other model from a private copy unpickled per
request from the pickled bytes the cache keeps, so no model object that a forecast changes is shared between
threads. A cached entry is re-checked after ``MM_ASSETS_SERVING_REFRESH_S``: a new champion or a re-cut dataset
(new observations, a new plan) is loaded again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import pickle
import posixpath
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting import envelope
from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.model_types import GLOBAL_TYPES
from mm_assets.forecasting.models import as_series_model
from mm_assets.forecasting.series import (
    DS,
    FLAG,
    SeriesConfig,
    Y,
    future_regressors,
    regularize,
    unplanned_values,
)
from mm_assets.forecasting.training import forecast_from_model
from mm_assets.ids import SERIES_KEY_SEPARATOR
from mm_assets.ingest.datasets import dataset_file
from mm_assets.lake import Lake
from mm_assets.parallel.bundles import SHARED_MODEL_BYTES
from mm_assets.serving.cache import ModelCache
from mm_assets.serving.config import FALLBACK_BASELINE, FALLBACK_LATEST, ServingConfig, serving_settings
from mm_assets.serving.limits import Limit, limits_of
from mm_assets.serving.lookup import SOURCE_BASELINE, SOURCE_CHAMPION, SOURCE_LATEST, ModelLookup, ModelRef
from mm_assets.serving.request import (
    MAX_PROBLEMS,
    PlannedBool,
    SeriesRequest,
    ServingError,
    invalid,
    parse_request,
    public_reason,
)
from mm_assets.serving.rows import PublishedUnavailable, RowsUnavailable, SeriesRows, file_stamp
from mm_assets.serving.shared_models import SharedModels
from mm_assets.settings import Settings
from mm_assets.sql import redact

log = logging.getLogger("azmlinfsrv.mm_assets")

# Memory of a cached entry besides its bytes and forecast array: the entry object, the OrderedDict slot,
# the ModelRef and its strings (measured with tracemalloc: ~0.9 KB; rounded up).
ENTRY_OVERHEAD_BYTES = 1024


# ---- errors ---------------------------------------------------------------------------------------------
def _unavailable(code: str, what: str, detail: str) -> ServingError:
    """A 503: ``what`` cannot be read right now; the client retries, the server log has the traceback."""
    return ServingError(503, code, f"{what} cannot be read right now ({detail}); retry later, the server log has "
                        "details")


class ModelUnreadable(Exception):
    """A model's bytes cannot be read from the lake or unpickled: its file is missing, cut short, corrupt or being
    rewritten in place by another writer. Unlike a model that fails to forecast, the request is not at fault and
    the series' published batch forecast, where it is the same model's from the same rows, still answers its
    default request (``ForecastService._from_published``); what needs the model gets a 503 naming the file."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = file  # the model's file, as a path in the lake (never where the server keeps the lake)
        self.reason = reason  # the error's type


def _model_unavailable(ref: ModelRef, key: str, cause: str, what_if: bool = False) -> ServingError:
    """The 503 of a series whose model cannot be read (``cause``: its file and the error's type)."""
    needs = (": a what-if plan needs the model (the forecast without regressors is answered from the published "
             "batch forecast)" if what_if else "")
    return ServingError(503, "model_unavailable",
                        f"the {ref.source} model v{ref.version} of series {key} cannot be read from the lake right "
                        f"now ({cause}){needs}; retry later, the server log has details", logged=True)


# ---- cached models ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _dates(first: pd.Timestamp, step_days: int, n: int) -> tuple[str, ...]:
    """ISO dates of n periods from ``first``: shared by every entry with the same origin and step."""
    start = first.date()
    return tuple((start + dt.timedelta(days=step_days * k)).isoformat() for k in range(n))


def _check_finite(forecast: pd.DataFrame) -> None:
    bad = int((~np.isfinite(forecast["yhat"].to_numpy(dtype=float))).sum())
    if bad:
        raise ValueError(f"the forecast has {bad} non-finite values")


def stored_plan(rows: pd.DataFrame | None, cfg: SeriesConfig, first: pd.Timestamp, steps: int) -> dict[str, np.ndarray]:
    """The planned regressor values of ``steps`` forecast periods from ``first``, NaN where the plan has none:
    the series' planned rows (``split_future``, as batch scoring's ``forecast_from_model`` takes them from the same
    rows) on the forecast dates. No rows: no plan."""
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
    return out


def _with_request(plan: dict[str, np.ndarray], request_plan, first: pd.Timestamp, step: pd.Timedelta,
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


def _planned_mask(plan: dict[str, np.ndarray], steps: int) -> np.ndarray:
    """Per forecast period: whether the stored plan gives it any value (batch scoring's ``planned_periods``)."""
    mask = np.zeros(steps, dtype=bool)
    for values in plan.values():
        mask |= ~np.isnan(values[:steps])
    return mask


def _matching(published: pd.DataFrame | None, ref: ModelRef, origin: pd.Timestamp, first: pd.Timestamp,
              steps: int, data: str | None = None) -> tuple[np.ndarray, str | None] | None:
    """(the first ``steps`` values, the envelope's note) of a series' published batch forecast when model version
    ``ref.version`` made it from ``origin`` for the periods from ``first`` on (a champion's, or the baseline's
    that replaced it under the envelope) and from the dataset of signature ``data`` when the forecast names one;
    None otherwise (another model, an older origin, other rows or plan, too few periods)."""
    if published is None or len(published) < steps:
        return None
    scored_from = published.attrs.get("dataset_signature")
    if scored_from and data and scored_from != data:  # the dataset was re-cut (new rows, a new plan) since
        return None

    def head(column: str) -> np.ndarray:  # arrays, not a frame's slices: this runs on every cold load
        return published[column].to_numpy()[:steps]

    replaced = head("envelope_replaced") == 1
    same_model = (head("model_version") == ref.version) & ((head("model_source") == SOURCE_CHAMPION) | replaced)
    if not (same_model.all() and (pd.to_datetime(head("origin")) == origin).all()
            and pd.Timestamp(head("ds")[0]) == first):
        return None
    return head("yhat").astype(float), (str(head("note")[replaced][0]) if replaced.any() else None)


@dataclass
class CachedModel:
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
    last known regressor values the defaults come from, and the envelope's reference. Only read per request, so
    threads share it. Its size is counted in the entry's: the rows' bytes and, for a model object of its own, its
    pickle's size.

    ``published``: a global model's default forecast as batch scoring published it, with the store's other
    products. The endpoint has the series alone, which moves the forecast by about 0.4 % at the median, so a what-if
    answers the published forecast moved by the model's response to the plan, on the scale the model learns
    (log1p): the stored plan itself answers the published forecast, and a plan's effect is the model's own."""

    cfg: SeriesConfig
    rows: Any  # PlannedRows (with its linear model) or GlobalPlannedRows (asking for its global model)
    last: dict[str, float]
    zero_default: frozenset[str]
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
        last = unplanned_values(regs_hist, model.kinds_, cfg)  # a share's usual value, the last price
        zero_default = frozenset(model.flags_)
        default, _ = future_regressors(last, zero_default, cfg.regressors, steps, plan)
        start_day = float((history.index[0] - pd.Timestamp("1970-01-01")).days)
        try:
            rows = model.planned_rows(y_hist, regs_hist, start_day, default, cfg.gap, steps)
        except Exception:  # noqa: BLE001 - the general path answers, and raises what it deserves
            log.warning("what-if rows of a %s model cannot be built:\n%s", model.name, traceback.format_exc())
            return None
        if shared is not None:
            rows = dataclasses.replace(rows, model=shared)
        return cls(cfg, rows, last, zero_default, model.envelope_reference(y_hist), plan, published)

    @property
    def nbytes(self) -> int:
        """Its own arrays' bytes (the stored plan is the entry's, counted there)."""
        return int(self.rows.nbytes)

    @functools.cached_property
    def _alone(self) -> tuple[np.ndarray, np.ndarray]:
        """(the series-alone forecast of the stored plan, log1p(published) - log1p(it)) per period; computed at
        the first what-if (a series nobody asks a what-if of costs no second forecast)."""
        steps = len(self.published)
        default, _ = future_regressors(self.last, self.zero_default, self.cfg.regressors, steps, self.plan)
        return self._shift(self.rows.predict(default, steps))

    def _shift(self, alone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return alone, np.log1p(self.published) - np.log1p(np.clip(alone, 0.0, None))

    def _moved(self, pred: np.ndarray, h: int) -> np.ndarray:
        """The published forecast moved by what the plan changed of the series-alone forecast: exactly the
        published value where it changed nothing (a round trip through log1p is not exact to the last bit)."""
        alone, shift = self._alone
        moved = np.expm1(np.log1p(np.clip(pred, 0.0, None)) + shift[:h])
        return np.where(pred == alone[:h], self.published[:h], moved)

    def forecast(self, first: pd.Timestamp, h: int, plan=()) -> tuple[np.ndarray, int] | None:
        """``h`` periods from ``first`` (the first forecast period), the request's plan laid over the stored one
        and the rest defaulted by ``future_regressors`` (as batch scoring) → (forecast, periods that used a plan);
        None when the sanity envelope rejects it or it fails (the general path then replaces it and records why, or
        raises the error with the answer it deserves)."""
        cfg = self.cfg
        planned = _with_request(self.plan, plan, first, cfg.step, h)
        future, used = future_regressors(self.last, self.zero_default, cfg.regressors, h, planned)
        try:
            if self.published is not None and "_alone" not in self.__dict__ and hasattr(self.rows, "predict_many"):
                # the first what-if also forecasts the stored plan (``_alone``): one model run for both
                steps = len(self.published)
                default, _ = future_regressors(self.last, self.zero_default, cfg.regressors, steps, self.plan)
                pred, alone = self.rows.predict_many([(future, h), (default, steps)])
                self.__dict__["_alone"] = self._shift(alone)
            else:
                pred = self.rows.predict(future, h)
            if self.published is not None:
                pred = self._moved(pred, h)
        except Exception:  # noqa: BLE001 - see the docstring: the general path answers
            return None
        pred = np.clip(pred, 0.0, None)  # NaN stays NaN: the envelope catches it
        reason = envelope.violation(pred, self.reference, cfg.envelope_multiple)
        if reason is not None or not np.isfinite(pred).all():
            return None
        return pred, used


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Points:
    """One series' forecast as answered: the points, the periods that used a plan, and why the sanity envelope
    replaced the model's forecast by the baseline's (None: it did not)."""

    points: list[dict]
    planned: int
    envelope: str | None = None


BASELINE_NOTE = ("no production champion: the series' baseline serves it, fitted on its rows as batch scoring "
                 "does")
BASELINE_PLAN_NOTE = ("the baseline does not read regressors: this plan does not change its forecast (a what-if "
                      "needs a model that learnt them, the series' champion)")
TAIL_NOTE = ("forecast from the model's stored tail (the history it was trained on), without a plan: its partition's "
             "dataset has no rows of this series in the lake")
ALONE_NOTE = ("forecast from this series alone: its partition's published batch forecast of this model version and "
              "origin is not there (not re-scored since its dataset changed, or missing), and the warehouse's "
              "forecast read the store's other products too (about 0.4 % apart at the median)")
ALONE_UNREADABLE_NOTE = ("forecast from this series alone: its partition's published batch forecast cannot be read "
                         "from the lake right now (it is read again shortly: see the log), and the warehouse's "
                         "forecast read the store's other products too (about 0.4 % apart at the median)")
UNREADABLE_NOTE = ("the warehouse's forecast (its partition's published batch forecast of this model version, origin "
                   "and rows): the model itself cannot be read from the lake right now, so a what-if plan for this "
                   "series is refused (503) until it can")
LATEST_NOTE = ("no production champion: its latest trained model serves it (MM_ASSETS_SERVING_FALLBACK=latest); "
               "the warehouse publishes the series' baseline instead")


PRELOAD_FILL = 0.9  # the share of the kept files' budget a worker's start fills (the rest: what requests read)
# Seconds before what failed is tried again (a model that cannot be read; a dataset or published forecast a cached
# series' refresh could not read; a registry that cannot be asked): soon, so that a file rewritten in place serves
# again moments after its writer is done, but not per request, which would read a broken file (or wait for a
# registry that is down) for every request of its series.
RETRY_S = 10.0


class RegistryDown(Exception):
    """The registry cannot be asked for a series' model right now (the error's type): a cached series answers from
    its cache meanwhile, a series not cached is a 503."""


@dataclass
class _Outage:
    """The registry cannot be asked: since when (monotonic), the first error's type, when a cached series asks it
    again, and how many lookups failed (for the line logged when it answers again)."""

    since: float
    error: str
    retry_at: float
    failed: int = 1


def _beyond_history(entry: CachedModel, request: SeriesRequest) -> str | None:
    """What a tree model's what-if should say when its plan leaves the range of a price-like regressor in the
    series' history: trees are flat beyond the values they split on, so the effect of going further is not in the
    answer (a 20 % rise above the regular price moved the default model's forecast by about half of the known true
    effect: docs/models.md)."""
    beyond: dict[str, dict[float, None]] = {}  # regressor -> its planned values outside the history (in order)
    for _, values, _ in request.plan:
        for col, value in values.items():
            limit = entry.limits.get(col)
            if limit is not None and limit.seen is not None and not limit.seen[0] <= value <= limit.seen[1]:
                beyond.setdefault(col, {})[value] = None
    if not beyond:
        return None
    planned = ", ".join(f"{col} {value:g}" for col, values in beyond.items() for value in values)
    ranges = ", ".join(f"{col} {entry.limits[col].seen[0]:g}..{entry.limits[col].seen[1]:g}" for col in beyond)
    return (f"planned {planned} beyond this series' history ({ranges}): the model holds the response at the edge "
            "of what it saw, so the effect of going further is understated")


def _address(ref: ModelRef) -> tuple[str, int, int]:
    """Where a model's bytes are: its bundle's URI, their offset and size."""
    return ref.artifact_uri, ref.artifact_offset, ref.artifact_size


def _is_shared(ref: ModelRef) -> bool:
    """Whether the model ``ref`` points at is one that many series share (a global model: ``SharedModels``)."""
    return ref.artifact_size >= SHARED_MODEL_BYTES


class ForecastService:
    """Answers forecast requests; one instance per worker process, shared by its threads."""

    def __init__(self, settings: Settings, config: ServingConfig | None = None, lookup: ModelLookup | None = None,
                 lake: Lake | None = None):
        self.settings = settings
        self.config = config or ServingConfig()
        self.id_columns = list(settings.columns.ids)
        self.regressors = list(settings.columns.regressors)
        self.max_horizon = settings.horizon
        self.cfg = SeriesConfig.from_settings(settings)  # what batch scoring fits a series' baseline with
        self.lake = lake or Lake(settings.storage.lake)
        self.rows = SeriesRows(self.lake, settings)
        self.lookup = lookup or ModelLookup(
            settings.storage.registry,
            getattr(settings.storage, "production_registry", None),
            latest=self.config.fallback == FALLBACK_LATEST,
            recheck_s=self.config.refresh_s,
        )
        self.cache: ModelCache[CachedModel] = ModelCache(self.config.cache_models, self.config.cache_bytes)
        self._log_every = 1000
        self._log_lock = threading.Lock()
        self.shared = SharedModels(self.config.shared_bytes)  # global models, apart from the series' entries
        # (file, version) of datasets and (model address, file version) of models whose error the log has
        self._errors_logged: set[tuple] = set()
        self._unreadable: dict[tuple[str, int, int], tuple[float, str, str]] = {}  # model address -> (retry at,
        # its file, the error): a model that cannot be read is not read again before then (``_readable``)
        self._outage: _Outage | None = None  # the registry cannot be asked (``_find``)
        self._outage_lock = threading.Lock()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ForecastService:
        settings = serving_settings(environ)
        config = ServingConfig.from_env(environ)
        service = cls(settings, config)
        log.info(
            "mm-assets online scoring: registry %s, lake %s, ids %s, horizon 1..%d; a series without a champion: "
            "%s; cache %d models / %.4g MiB per worker and global models %.4g MiB apart, refresh %.0fs, max %d "
            "series per request",
            redact(settings.storage.registry),
            settings.storage.lake, service.id_columns, service.max_horizon, config.fallback, config.cache_models,
            config.cache_bytes / 2**20, config.shared_bytes / 2**20, config.refresh_s, config.max_series,
        )
        service.preload()
        return service

    def preload(self) -> tuple[int, int]:
        """Before the first request: the global models current champions point at (``preload_shared``), then the
        small files of the partitions with the most champions (``preload_rows``); returns (models, files) read."""
        return self.preload_shared(), self.preload_rows()

    def preload_shared(self) -> int:
        """Reads the global models that current champions point at into ``shared``, the most-served first, as many
        as fit its budget (``MM_ASSETS_SERVING_SHARED_BYTES``); returns how many.

        Why: a global model is megabytes to read, unpickle and parse (7 ms for a store of 100 products), and the
        first request of each store in each worker paid it, with the requests queued behind it. Models beyond the
        budget are read on first use, as before; one that cannot be read is logged and left to its first request
        (whose series then gets the 500 naming it)."""
        started = time.perf_counter()
        try:
            artifacts = self.lookup.shared_champions(SHARED_MODEL_BYTES)
        except Exception:  # noqa: BLE001 - preloading only saves time: requests still find their models
            log.warning("the global models to preload cannot be listed:\n%s", traceback.format_exc())
            return 0
        loaded, served, skipped = 0, 0, 0
        for artifact in artifacts:
            if self.shared.bytes + artifact.artifact_size > self.shared.max_bytes:
                skipped += 1
                continue
            try:
                self.shared.get(artifact.address, functools.partial(self._read_model, artifact))
                loaded, served = loaded + 1, served + artifact.series
            except Exception:  # noqa: BLE001 - see the docstring
                log.warning("global model %s cannot be preloaded:\n%s", artifact.address, traceback.format_exc())
        self.shared.loads_here()  # preloads are not a request's
        if artifacts:
            log.info("preloaded %d of %d global models of current champions (%.1f MB, %d series) in %.2f s; %d "
                     "beyond the budget of %.4g MiB are read on first use", loaded, len(artifacts),
                     self.shared.bytes / 1e6, served, time.perf_counter() - started, skipped,
                     self.shared.max_bytes / 2**20)
        return loaded

    def preload_rows(self) -> int:
        """Reads the small files (dataset, published forecast: ``SeriesRows.keep``) of the partitions with the
        most current champions until the kept files fill most of their budget; returns how many files it read.

        Why: the first request of a partition in a worker reads its whole file (5-20 ms, the others' rows are then
        cut from memory), and those requests were most of the slowest cold ones."""
        started = time.perf_counter()
        try:
            partitions = self.lookup.champion_partitions()
        except Exception:  # noqa: BLE001 - preloading only saves time: requests still read their rows
            log.warning("the partitions to preload cannot be listed:\n%s", traceback.format_exc())
            return 0
        files, done = 0, 0
        for partition in partitions:
            if self.rows.kept_bytes >= PRELOAD_FILL * self.rows.kept_max_bytes:
                break
            files += self.rows.keep(partition)
            done += 1
        if partitions:
            log.info("preloaded the small files of %d of %d partitions with champions (%d files, %.1f MB) in %.2f s",
                     done, len(partitions), files, self.rows.kept_bytes / 1e6, time.perf_counter() - started)
        return files

    # ---- models ---------------------------------------------------------------------------------------
    def _series_model(self, ref: ModelRef, key: str, blob: bytes = b""):
        """The series' model: a private unpickled copy of its bytes (models are not shared between threads), or,
        for a large model many series share (a global model), a fresh per-series view of the one copy in
        ``shared`` (its boosters only read), read from the lake only when it is not kept there. Raises
        ``ModelUnreadable`` when it has to be read and cannot be."""
        if not _is_shared(ref):
            return pickle.loads(blob) if blob else self._own_model(ref)[1]
        return as_series_model(self._shared_model(ref), key.split(SERIES_KEY_SEPARATOR))

    def _own_model(self, ref: ModelRef) -> tuple[bytes, Any]:
        """A per-series model's pickled bytes (what its cache entry keeps) and a copy of it; ModelUnreadable."""
        def read() -> tuple[bytes, Any]:
            blob = self._read_model(ref)
            return blob, pickle.loads(blob)

        return self._readable(ref, read)

    def _shared_model(self, ref: ModelRef):
        """The global model ``ref`` points at, unpickled once per worker while it is kept (``SharedModels``);
        ModelUnreadable."""
        return self._readable(ref, lambda: self.shared.get(_address(ref), functools.partial(self._read_model, ref)))

    def _readable(self, ref: ModelRef, read: Callable[[], Any]) -> Any:
        """``read()``: the model ``ref`` points at, from its bytes in the lake; ModelUnreadable naming its file when
        they cannot be read or unpickled. A failure is logged once per version of the file and remembered for
        ``RETRY_S`` (at most the refresh interval): every series of a global model would otherwise read the broken
        file again, and every request of theirs."""
        address = _address(ref)
        failed = self._unreadable.get(address)
        if failed is not None and time.monotonic() < failed[0]:
            raise ModelUnreadable(failed[1], failed[2])
        try:
            value = read()
        except Exception as exc:  # whatever the bytes or the store did: see ModelUnreadable
            error = self._model_unreadable(ref, exc)
            self._unreadable[address] = (time.monotonic() + self._retry_s, error.file, error.reason)
            raise error from exc
        recovered = self._unreadable.pop(address, None)
        if recovered is not None:
            log.info("model v%s of %s can be read again from %s", ref.version, ref.series_key, recovered[1])
        return value

    def _model_unreadable(self, ref: ModelRef, exc: BaseException) -> ModelUnreadable:
        """The ModelUnreadable of ``exc`` (being handled), its traceback logged once per model and version of its
        file (a file being rewritten, or broken for hours, is not one log line per request)."""
        try:
            file = self.lake.relative(ref.artifact_uri)
            path = self.lake.path(file)
        except Exception:  # noqa: BLE001 - not a path of this lake: name the file only, not where it is
            file, path = posixpath.basename(ref.artifact_uri), None
        try:
            version = file_stamp(self.lake.fs.info(path)) if path is not None else None
        except Exception:  # noqa: BLE001 - missing, or the store cannot say
            version = None
        seen = (*_address(ref), version)
        if seen not in self._errors_logged:
            self._errors_logged.add(seen)
            log.error("model v%s of %s (%s: %d bytes at %d of %s, file version %s) cannot be read: its series answer "
                      "without regressors from their published batch forecast where it is this model's, and a "
                      "what-if is a 503, until it can be read (tried again every %.0f s; logged once per version of "
                      "the file):\n%s", ref.version, ref.series_key, ref.source, ref.artifact_size,
                      ref.artifact_offset, file, version or "unknown", self._retry_s, traceback.format_exc())
        return ModelUnreadable(file, type(exc).__name__)

    @property
    def _retry_s(self) -> float:
        return min(RETRY_S, self.config.refresh_s)

    def _fresh(self, entry: CachedModel) -> bool:
        now = time.monotonic()
        if entry.retry_at is not None:  # a failed refresh, or no model: tried again soon (``RETRY_S``)
            return now < entry.retry_at
        return now - entry.checked_at < self.config.refresh_s

    def _find(self, key: str, cached: bool = False) -> ModelRef | None:
        """The series' serving model: its champion, the baseline fallback (the default), or what the opt-in
        ``MM_ASSETS_SERVING_FALLBACK`` says (None: no model serves it). RegistryDown when the registry cannot be
        asked: logged once per outage, with the traceback, and once when it answers again. A ``cached`` series
        does not ask it for ``RETRY_S`` after a lookup failed, since its cache answers meanwhile and a database that
        is down may take its connection timeout to say so; a series not cached asks (the 503 is its alternative)."""
        outage = self._outage
        if cached and outage is not None and time.monotonic() < outage.retry_at:
            raise RegistryDown(outage.error)
        try:
            ref = self.lookup.find(key)
        except Exception as exc:  # noqa: BLE001 - a registry that cannot be read: the cache answers, else a 503
            self._registry_failed(exc)
            raise RegistryDown(type(exc).__name__) from None
        if self._outage is not None:
            self._registry_answers()
        if ref is None and self.config.fallback == FALLBACK_BASELINE:
            return ModelRef.baseline(key)
        return ref

    def _registry_failed(self, exc: BaseException) -> None:
        """Records a failed lookup (``exc``, being handled); the first of an outage is logged with its traceback."""
        now = time.monotonic()
        with self._outage_lock:
            outage = self._outage
            if outage is not None:
                outage.retry_at, outage.failed = now + self._retry_s, outage.failed + 1
                return
            self._outage = _Outage(now, type(exc).__name__, now + self._retry_s)
        log.error("the model registry cannot be asked (%s): cached series keep answering from their cache and ask it "
                  "again every %.0f s, series not cached are a 503 registry_unavailable until it answers (logged once "
                  "per outage):\n%s", type(exc).__name__, self._retry_s, traceback.format_exc())

    def _registry_answers(self) -> None:
        """Ends an outage: logged, so that the log says how long cached answers may have been stale."""
        with self._outage_lock:
            outage, self._outage = self._outage, None
        if outage is not None:
            log.info("the model registry answers again after %.0f s (%s; %d lookups failed meanwhile)",
                     time.monotonic() - outage.since, outage.error, outage.failed)

    def _registry_down(self, stale: CachedModel | None, exc: RegistryDown) -> CachedModel:
        """What a series answers with while the registry cannot be asked (``exc``): a cached series keeps its entry
        and asks again from ``RETRY_S`` on (a champion promoted meanwhile is loaded then); a series not cached is a
        503 (its cause is logged once per outage, not per request)."""
        if stale is None:
            error = _unavailable("registry_unavailable", "the model registry", str(exc))
            error.logged = True  # once per outage: ``_registry_failed``
            raise error from None
        stale.retry_at = time.monotonic() + self._retry_s
        return stale

    def _series_data(self, key: str, stale: CachedModel | None) -> tuple[str | None, pd.DataFrame | None]:
        """(dataset signature, the series' rows) as batch scoring reads them; the rows are read only when the
        signature differs from the stale entry's (``stale``: None, or an entry whose model still serves). Raises
        RowsUnavailable."""
        ids = key.split(SERIES_KEY_SEPARATOR)
        partition = self.rows.partition_of(ids)
        signature = self.rows.signature(partition)
        if signature is None or (stale is not None and stale.data == signature):
            return signature, None
        return signature, self.rows.read(partition, ids)

    def _rows_unavailable(self, key: str, stale: CachedModel | None, exc: RowsUnavailable) -> CachedModel:
        """What a series whose dataset cannot be read (``exc``, being handled) answers with: a cached series keeps
        its entry (the rows it was read with) and checks again from ``RETRY_S`` on, so it serves as before while
        another writer rewrites the file in place, and from the new rows once it can be read; a series without
        its rows is a 503 naming the file. The traceback is logged once per version of the file."""
        seen = (exc.file, exc.version)
        first = seen not in self._errors_logged
        self._errors_logged.add(seen)
        if stale is not None:
            if first:
                log.warning("%s (version %s) cannot be read: its cached series keep answering from the rows they were "
                            "read with, and check it again every %.0f s (logged once per version of the file):\n%s",
                            exc.file, exc.version or "unknown", self._retry_s, traceback.format_exc())
            stale.retry_at = time.monotonic() + self._retry_s
            return stale
        if first:  # a file being rewritten fails every series of it: one line each, its traceback once
            log.error("rows of %s cannot be read:\n%s", key, traceback.format_exc())
        else:
            log.error("rows of %s cannot be read: %s", key, exc)
        error = _unavailable("data_unavailable", f"the rows of series {key}", f"from the lake: {exc}")
        error.logged = True  # just above
        raise error from None

    def _cannot_serve(self, ref: ModelRef, key: str, exc: BaseException) -> ServingError:
        """The 500 of a model that was read but cannot serve (``exc``, being handled: logged with its traceback)."""
        log.error("model v%s of %s (%s) cannot serve:\n%s", ref.version, key, ref.source, traceback.format_exc())
        return ServingError(
            500, "model_unavailable",
            f"the {ref.source} model v{ref.version} of series {key} cannot be loaded or forecast: {public_reason(exc)}",
        )

    def _load(self, key: str, stale: CachedModel | None) -> CachedModel | None:
        try:
            ref = self._find(key, cached=stale is not None)
        except RegistryDown as exc:
            return self._registry_down(stale, exc)
        if ref is None:
            return None
        same = stale if stale is not None and stale.ref == ref else None
        try:
            signature, rows = self._series_data(key, same)
        except RowsUnavailable as exc:
            return self._rows_unavailable(key, stale, exc)
        partition = self.rows.partition_of(key.split(SERIES_KEY_SEPARATOR))
        global_champion = ref.source == SOURCE_CHAMPION and _is_shared(ref)
        published_seen = published = published_data = published_unreadable = None
        try:
            if global_champion:
                published_seen = self.rows.published_info(partition)
                published_data = published_seen[0] if published_seen is not None else None
            if same is not None and same.data == signature:
                if (same.published_data == published_data and same.unreadable is None
                        and same.published_unreadable is None):  # refreshed: the same model, rows and published
                    same.checked_at, same.retry_at = time.monotonic(), None  # forecast
                    return same
                rows = same.rows  # the same rows; a re-published forecast, or a file to read again: rebuilt below
            if global_champion and rows is not None:
                published = self._published(key, published_seen)
        except PublishedUnavailable as exc:  # logged by ``rows``, once per version of the file
            if stale is not None:  # its answer stands while another writer rewrites the file: tried again soon
                stale.retry_at = time.monotonic() + self._retry_s
                return stale
            published_unreadable = str(exc)  # forecast alone meanwhile, and its note says why
        if ref.source == SOURCE_BASELINE and rows is None:
            if signature is None and self._published_or_none(key) is not None:  # published, its dataset gone
                missing = dataset_file(partition)
                log.error("%s is not in the lake, though its series' forecasts are published: its baseline-served "
                          "series cannot be answered", missing)
                raise _unavailable("data_unavailable", f"the rows of series {key}",
                                   f"{missing} is not in the lake, though its forecast is published")
            return None  # no champion, and no rows to fit its baseline on: not a series batch scoring forecasts
        model, blob = None, b""
        if ref.source != SOURCE_BASELINE:
            try:
                if _is_shared(ref):
                    model = self._series_model(ref, key)
                else:
                    blob, model = self._own_model(ref)
            except ModelUnreadable as exc:
                entry = self._from_published(ref, key, rows, signature, published, exc)
                entry.published_data = published_data
                return entry
            except Exception as exc:  # noqa: BLE001 - any failure of one model is that series' 500, the service goes on
                raise self._cannot_serve(ref, key, exc) from None
        try:
            if model is None:  # the baseline, as batch scoring fits it: on the series' rows
                model = Baseline(self.cfg).fit(regularize(rows, self.cfg))
                blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
            entry = self._entry(ref, blob, model, rows, signature, published)
            entry.published_data = published_data
            if published_unreadable is not None:
                entry.published_unreadable, entry.retry_at = published_unreadable, time.monotonic() + self._retry_s
        except Exception as exc:  # noqa: BLE001 - any failure of one model is that series' 500, the service goes on
            raise self._cannot_serve(ref, key, exc) from None
        self._maybe_log_stats()
        return entry

    def _from_published(self, ref: ModelRef, key: str, rows: pd.DataFrame | None, signature: str | None,
                        published: pd.DataFrame | None, exc: ModelUnreadable) -> CachedModel:
        """The entry of a series whose model cannot be read (``exc``), without the model. Its default answer is its
        partition's published batch forecast when this model version made it from the same origin and rows
        (``_matching``): the warehouse's forecast, the one the model would answer with (a global model's) or
        compute again (any other), so reading the model is not needed for it. A what-if needs the model: a 503
        naming the file (``forecast``). The model is tried again from ``RETRY_S`` on. Without such a forecast the
        series' request is that 503. ``published``: a global champion's, read already."""
        if published is None and rows is not None and ref.source == SOURCE_CHAMPION and not _is_shared(ref):
            published = self._published_or_none(key)
        if published is not None and len(published):
            cfg = self.cfg  # the model's is not at hand: the settings' (a mismatch fails ``_matching``'s dates)
            origin = pd.Timestamp(regularize(rows, cfg).index[-1])
            first = origin + cfg.step * (1 + cfg.gap)
            max_h = min(self.max_horizon, len(published))  # the periods the model forecasts (its reach, if less)
            batch = _matching(published, ref, origin, first, max_h, signature)
            if batch is not None:
                plan = stored_plan(rows, cfg, first, max_h)
                yhat, replaced = batch
                return CachedModel(
                    ref=ref, blob=b"", cfg=cfg, origin=origin, max_horizon=max_h,
                    ds=_dates(first, int(cfg.step / pd.Timedelta(days=1)), max_h), yhat=yhat, rows=rows,
                    data=signature, plan=plan, planned=_planned_mask(plan, max_h), envelope=replaced,
                    unreadable=str(exc), retry_at=time.monotonic() + self._retry_s,
                    size=yhat.nbytes + ENTRY_OVERHEAD_BYTES + int(rows.memory_usage(index=True).sum())
                    + sum(int(v.nbytes) for v in plan.values()),
                )
        raise _model_unavailable(ref, key, str(exc))

    def _published(self, key: str, seen: tuple[str, int] | None = None) -> pd.DataFrame | None:
        """The series' rows of its partition's latest batch forecast, for a global model's default answer
        (``_entry``); None when there are none. ``seen``: the file's ``published_info`` just asked.
        PublishedUnavailable when the file is there but cannot be read right now."""
        ids = key.split(SERIES_KEY_SEPARATOR)
        try:
            return self.rows.published(self.rows.partition_of(ids), ids, seen)
        except PublishedUnavailable:
            raise
        except Exception:  # noqa: BLE001 - without them the series is forecast alone, as before
            log.warning("the published forecast of %s cannot be read:\n%s", key, traceback.format_exc())
            return None

    def _published_or_none(self, key: str) -> pd.DataFrame | None:
        """``_published``, None when it cannot be read right now (logged by ``rows``)."""
        try:
            return self._published(key)
        except PublishedUnavailable:
            return None

    def _read_model(self, ref: ModelRef) -> bytes:
        """The model's pickled bytes: its byte range of its bundle in the lake."""
        path = self.lake.path(self.lake.relative(ref.artifact_uri))
        blob = self.lake.fs.cat_file(path, start=ref.artifact_offset, end=ref.artifact_offset + ref.artifact_size)
        if len(blob) != ref.artifact_size:  # the file ends before the model does: cut short, or being written
            raise EOFError(f"read {len(blob)} bytes of {ref.artifact_size} from {ref.artifact_uri}")
        return blob

    def _entry(self, ref: ModelRef, blob: bytes, model, rows: pd.DataFrame | None, signature: str | None,
               published: pd.DataFrame | None = None) -> CachedModel:
        """A cache entry: the model's default forecast from the series' rows (its history and stored plan, as batch
        scoring forecasts it), else from its stored tail; what its what-ifs need, and their limits.

        A global model's default forecast is batch scoring's own, read from ``published`` (its partition's latest
        batch forecast) when that was made by this model version from the same origin: its store-level features
        read the store's other products, which batch scoring forecasts together and the endpoint does not have
        (forecast alone, the series differs by about 0.4 % at the median, up to a few per cent); its what-ifs move
        that forecast (``WhatIf.published``)."""
        cfg: SeriesConfig = model.cfg
        reach = getattr(model, "reach", None)  # a direct multi-step model forecasts at most its reach
        max_h = min(self.max_horizon, int(reach)) if reach else self.max_horizon
        history = regularize(rows, cfg) if rows is not None else model.tail_
        origin = pd.Timestamp(history.index[-1])
        first = origin + cfg.step * (1 + cfg.gap)
        plan = stored_plan(rows, cfg, first, max_h)
        shared = _is_shared(ref)  # a global model: kept in ``shared``, not in the entry
        envelope = None
        batch = _matching(published, ref, origin, first, max_h, signature)
        # a what-if moves the published forecast of the model itself (not the baseline's that replaced it)
        anchor = batch[0] if batch is not None and batch[1] is None else None
        what_if = WhatIf.of(model, max_h, history, plan, anchor,
                            functools.partial(self._shared_model, ref) if shared else None)
        fast = None
        if batch is None and what_if is not None:
            fast = what_if.forecast(first, max_h)  # arrays: the same numbers
        if batch is not None:
            yhat, envelope = batch
        elif fast is not None:
            yhat = fast[0]
        else:
            forecast, info = forecast_from_model(model, cfg, horizon=max_h, rows=rows)
            _check_finite(forecast)
            yhat, envelope = forecast["yhat"].to_numpy(dtype=float).copy(), info["envelope"]
        step_days = int(cfg.step / pd.Timedelta(days=1))
        rows_bytes = int(rows.memory_usage(index=True).sum()) if rows is not None else 0
        return CachedModel(
            ref=ref, blob=blob, cfg=cfg, origin=origin, max_horizon=max_h, ds=_dates(first, step_days, max_h),
            yhat=yhat, rows=rows, data=signature, plan=plan, planned=_planned_mask(plan, max_h),
            limits=limits_of(model, history, cfg.regressors), envelope=envelope, what_if=what_if,
            alone=shared and ref.source == SOURCE_CHAMPION and batch is None, from_tail=rows is None,
            size=len(blob) + yhat.nbytes + ENTRY_OVERHEAD_BYTES + rows_bytes + sum(int(v.nbytes) for v in plan.values())
            + (what_if.nbytes + len(blob) if what_if is not None else 0),
        )

    def model(self, key: str) -> tuple[CachedModel | None, bool]:
        return self.cache.get(key, self._load, self._fresh)

    def _maybe_log_stats(self) -> None:
        stats = self.cache.stats
        if stats.loads and stats.loads % self._log_every == 0:
            with self._log_lock:
                log.info(
                    "model cache: %d models, %.1f MiB; hits %d, misses %d, loads %d, evictions %d, waits %d",
                    len(self.cache), self.cache.bytes / 2**20, stats.hits, stats.misses, stats.loads,
                    stats.evictions, stats.waits,
                )

    # ---- forecasts ------------------------------------------------------------------------------------
    def _plan_problems(self, entry: CachedModel, request: SeriesRequest) -> list[dict[str, str]]:
        """Every planned row of the request outside the series' forecast window, and every value its model
        cannot take (``limits``), each naming the field, the series and what is allowed."""
        cfg, h = entry.cfg, request.horizon
        first = entry.first
        last = first + cfg.step * (h - 1)
        step_ns = cfg.step.value
        where = f"series[{request.index}].regressors"
        problems = []
        for ds, values, j in request.plan:
            offset = ds.value - first.value  # nanoseconds: Timestamp arithmetic costs microseconds per request
            if offset < 0 or offset > step_ns * (h - 1) or offset % step_ns:
                problems.append({
                    "field": f"{where}[{j}].ds",
                    "problem": f"{ds.date()} is not a forecast period of series {request.key}: the {h} periods "
                               f"run from {first.date()} to {last.date()}"
                               + (f", every {cfg.step.days} days" if cfg.step.days != 1 else ""),
                })
            for col, value in values.items():
                limit = entry.limits.get(col)
                if isinstance(value, PlannedBool) and limit is not None and limit.kind != FLAG:
                    problems.append({"field": f"{where}[{j}].{col}",
                                     "problem": f"series {request.key}: {str(bool(value)).lower()} is a 0/1 flag's "
                                                f"value, and {col} is not a flag ({limit.kind}): give a number"})
                    continue
                reason = limit.problem(value) if limit is not None else None
                if reason is not None:
                    problems.append({"field": f"{where}[{j}].{col}", "problem": f"series {request.key}: {reason}"})
        return problems

    def _points(self, entry: CachedModel, request: SeriesRequest) -> Points:
        h = request.horizon
        if not request.plan:
            points = [{"ds": d, "yhat": y} for d, y in zip(entry.ds[:h], entry.yhat[:h].tolist())]
            return Points(points, int(entry.planned[:h].sum()), entry.envelope)
        first = entry.first
        fast = self._what_if_arrays(entry, request, first)
        if fast is not None:
            return fast
        # a model kept for what-ifs is only read; the general path gets a private copy (or a fresh view)
        try:
            model = self._series_model(entry.ref, request.key, entry.blob)
        except ModelUnreadable as exc:  # a global model dropped from ``shared`` since, now unreadable
            raise _model_unavailable(entry.ref, request.key, str(exc), what_if=True) from None
        cfg = entry.cfg
        planned = _with_request(entry.plan, request.plan, first, cfg.step, h)
        planned = pd.DataFrame(planned, index=pd.date_range(first, periods=h, freq=cfg.step, name=DS))
        try:
            forecast, info = forecast_from_model(model, cfg, horizon=h, rows=entry.rows, planned=planned)
            _check_finite(forecast)
        except Exception as exc:  # noqa: BLE001 - any failure of one forecast is that series' 500, the service goes on
            log.error("forecast of %s failed:\n%s", request.key, traceback.format_exc())
            raise ServingError(
                500, "model_unavailable",
                f"the {entry.ref.source} model v{entry.ref.version} of series {request.key} failed to forecast: "
                f"{public_reason(exc)}",
            ) from None
        dates = _dates(pd.Timestamp(forecast[DS].iloc[0]), int(cfg.step / pd.Timedelta(days=1)), h)
        points = [{"ds": d, "yhat": y} for d, y in zip(dates, forecast["yhat"].to_numpy(dtype=float).tolist())]
        return Points(points, int(info["planned_periods"]), info["envelope"])

    def _what_if_arrays(self, entry: CachedModel, request: SeriesRequest, first: pd.Timestamp) -> Points | None:
        """A planner's what-if on a model kept for them (``WhatIf``: the linear model), with no pandas object
        built per request; None: the general path."""
        if entry.what_if is None:
            return None
        fast = entry.what_if.forecast(first, request.horizon, request.plan)
        if fast is None:
            return None
        pred, used = fast
        return Points([{"ds": d, "yhat": y} for d, y in zip(entry.ds, pred.tolist())], used)  # the default's dates

    def _answer(self, entry: CachedModel, request: SeriesRequest, points: Points) -> dict[str, Any]:
        """One series' answer, labelled as the warehouse labels the same forecast: a forecast the sanity envelope
        replaced is the baseline's (``model_source`` and ``model_type`` baseline, the model's version kept, the
        reason in ``note``), a series without a champion is its baseline's (version 0)."""
        source, model_type = entry.ref.source, entry.ref.model_type
        note = {SOURCE_BASELINE: BASELINE_NOTE, SOURCE_LATEST: LATEST_NOTE}.get(source)
        if entry.from_tail and note is None:
            note = TAIL_NOTE
        elif entry.alone and note is None:
            note = ALONE_NOTE if entry.published_unreadable is None else ALONE_UNREADABLE_NOTE
        elif entry.unreadable is not None and note is None:
            note = UNREADABLE_NOTE
        if points.envelope is not None and source != SOURCE_BASELINE:
            source, model_type, note = SOURCE_BASELINE, SOURCE_BASELINE, points.envelope
        if request.plan and model_type == SOURCE_BASELINE:  # it says so rather than answer as if the plan counted
            note = f"{note}; {BASELINE_PLAN_NOTE}"
        elif request.plan and model_type in GLOBAL_TYPES:
            beyond = _beyond_history(entry, request)
            note = beyond if note is None else note if beyond is None else f"{note}; {beyond}"
        return {
            **dict(zip(self.id_columns, request.ids)),
            "model_version": entry.ref.version,
            "model_source": source,
            "model_type": model_type,
            "origin": entry.origin.date().isoformat(),
            "horizon": request.horizon,
            "planned_periods": points.planned,
            "note": note,
            "points": points.points,
        }

    def _unknown(self, unknown: list[SeriesRequest]) -> ServingError:
        """The 404 for series no model serves, with what would make one serve under this fallback."""
        names = [dict(zip(self.id_columns, r.ids)) for r in unknown]
        shown = ", ".join(r.key for r in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        hint = {
            FALLBACK_BASELINE: "a series without a champion is served by its baseline, which needs its rows in its "
                               "partition's dataset in the lake: check the ids, or ingest and cut the series first",
            FALLBACK_LATEST: "check the ids, or train the series first",
        }.get(self.config.fallback, "MM_ASSETS_SERVING_FALLBACK=none: only production champions serve; check the "
                                    "ids, or promote a model of the series")
        return ServingError(
            404, "unknown_series",
            f"no model serves {len(unknown)} of the requested series: {shown} ({'/'.join(self.id_columns)}; {hint})",
            series=names,
        )

    def forecast(self, requests: list[SeriesRequest], misses: list[int] | None = None) -> dict[str, Any]:
        """The answer body; raises ServingError. ``misses[0]`` counts the models this request had to load."""
        misses = [0] if misses is None else misses
        entries: dict[str, CachedModel] = {}
        unknown: list[SeriesRequest] = []
        for request in requests:
            if request.key in entries:
                continue
            entry, hit = self.model(request.key)
            misses[0] += not hit
            if entry is None:
                unknown.append(request)
            else:
                entries[request.key] = entry
        if unknown:
            raise self._unknown(unknown)
        too_long = [r for r in requests if r.horizon > entries[r.key].max_horizon]
        if too_long:
            raise invalid([
                {"field": f"series[{r.index}].horizon",
                 "problem": f"{r.horizon} is out of range for series {r.key}: its model forecasts at most "
                            f"{entries[r.key].max_horizon} periods"}
                for r in too_long
            ])
        without_model = [r for r in requests if r.plan and entries[r.key].unreadable is not None]
        if without_model:  # before the plan's values: what they may be is the model's to say
            r = without_model[0]
            raise _model_unavailable(entries[r.key].ref, r.key, entries[r.key].unreadable, what_if=True)
        problems = [p for r in requests for p in self._plan_problems(entries[r.key], r)]
        if problems:
            raise invalid(problems[:MAX_PROBLEMS])
        forecasts = [self._answer(entries[r.key], r, self._points(entries[r.key], r)) for r in requests]
        return {"forecasts": forecasts}

    def handle(self, raw: str | bytes | Mapping | None, content_type: str | None = None) -> Reply:
        """One request body → status, JSON body, headers. Never raises."""
        misses = [0]
        self.shared.loads_here()  # counts from this request on
        try:
            requests = parse_request(raw, self.id_columns, self.regressors, self.max_horizon,
                                     self.config.max_series, content_type)
            body = self.forecast(requests, misses)
            status = 200
        except ServingError as err:
            status, body = err.status, err.body()
            if status >= 500 and not err.logged:
                log.error("%s: %s", err.code, err.message)
        except Exception:  # noqa: BLE001 - a bug: say so without a stack trace in the answer; the log has it
            log.error("unexpected error while scoring:\n%s", traceback.format_exc())
            status = 500
            body = {"error": "internal_error", "message": "an unexpected error occurred; the server log has details"}
        headers = {
            "x-mm-cache-misses": str(misses[0]),
            "x-mm-shared-loads": str(self.shared.loads_here()),
            "x-mm-cache-models": str(len(self.cache)),
            "x-mm-cache-bytes": str(self.cache.bytes),
            "x-mm-worker-pid": str(os.getpid()),
        }
        return Reply(status, body, headers)
