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
  the lake), else 0 for a flag (no promotion), a share's median over the last season, a price's regular value
  (the highest of its last quarter) and the last known value for any other;
- ``skip_unknown`` (optional, beside ``series``, default false): true answers the series a model serves and lists
  the others in ``not_served`` (ids, ``error``, ``message``) instead of a 404 for the whole request.

Answer::

    {"forecasts": [{"store": "S01", "item": "I001", "model_version": 3, "model_source": "champion",
                    "model_type": "linear", "origin": "2026-11-22",
                    "checked_at": "2026-11-23T06:02:11Z", "horizon": 14, "planned_periods": 2,
                    "note": null, "points": [{"ds": "2026-11-23", "yhat": 4.63}, ...]}]}

Which model: the series' production champion; without one, its baseline fitted on its rows (``model_source:
baseline``, version 0), as batch scoring publishes it; ``MM_ASSETS_SERVING_FALLBACK`` opts into the latest trained
model or a 404 instead. ``origin`` is the series' last observed period, the one batch scoring forecasts from; the
points follow it. ``planned_periods``: the periods that used a planned value (the stored plan's or the request's).
``checked_at`` (UTC): when this worker last asked the registry which model serves the series; a cycle's new
champions reach a worker at its first check after the cycle (``MM_ASSETS_SERVING_REFRESH_S``).

Bad input is a 4xx with a JSON body naming the problem: 400 ``invalid_json`` / ``invalid_request`` (missing or
malformed field, bad id, horizon out of range, regressor outside the window or the values its model can take), 413
``too_many_series`` / ``body_too_large`` (over ``MM_ASSETS_SERVING_MAX_BODY_BYTES``, refused unread), 405
``method_not_allowed`` / 415 ``unsupported_encoding`` (not a POST of uncompressed JSON, refused unread), 404 ``unknown_series`` / ``series_not_in_data`` (a model, but no row in its dataset: delisted; with ``"skip_unknown": true``
at the top of the request such series are listed in the 200 answer's ``not_served`` instead) (the body is parsed and checked in ``request.py``; values a client sent
are echoed at most ``request.ECHO_CHARS`` long). A model that is read but fails to forecast is a 500
``model_unavailable`` with the reason; an unreadable registry, dataset or model file a 503 ``registry_unavailable``
/ ``data_unavailable`` / ``model_unavailable`` naming what to retry, for what truly needs it (below); the process
keeps serving.

Lake files may be rewritten in place by other writers, so a file that cannot be read costs only what truly needs it:
a series whose model cannot be read answers without regressors from its published batch forecast when that is the
same model's from the same rows (``answer.UNREADABLE_NOTE``; a what-if is the 503), and a cached series whose
refresh cannot read its dataset or its published forecast keeps the answer it has (a series not cached is forecast
alone meanwhile, ``answer.ALONE_UNREADABLE_NOTE``); each tries again after ``RETRY_S`` and logs the error once per
version of the file. Likewise a registry that cannot be asked at a refresh leaves a cached series answering from its
cache, asking again after ``RETRY_S`` (logged once per outage, and when it answers again); only series not cached
are its 503.

Speed: a forecast is a pure function of the model, the series' rows and the regressor values, so when a model is
loaded its default forecast (the longest horizon it allows) is computed once and kept with it; requests without
``regressors`` are answered from that (a shorter horizon is its prefix; a champion's is its published batch
forecast when the same model version made it from the same rows), requests with ``regressors`` run the model:
a linear model from its forecast periods' design rows, built when it is loaded (``cache_entry.WhatIf``: a plan
writes only its regressor columns, then one dot product per period); any other model from a private copy unpickled
per request from the pickled bytes the cache keeps, so no model object that a forecast changes is shared between
threads. A cached entry is re-checked after ``MM_ASSETS_SERVING_REFRESH_S``: a new champion or a re-cut dataset (new
observations, a new plan) is loaded again.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import posixpath
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.envelope import capped as capped_note
from mm_assets.forecasting.models import as_series_model, cannot_serve
from mm_assets.forecasting.series import DS, SeriesConfig, regularize
from mm_assets.forecasting.training import forecast_from_model
from mm_assets.ids import SERIES_KEY_SEPARATOR
from mm_assets.ingest.datasets import dataset_file
from mm_assets.ingest.periods import RAW_FOLDER, newest_sold_period
from mm_assets.lake import Lake
from mm_assets.lake.lake import file_stamp
from mm_assets.parallel.bundles import SHARED_MODEL_BYTES
from mm_assets.serving.answer import Points, behind_note, series_answer
from mm_assets.serving.cache import ModelCache
from mm_assets.serving.cache_entry import (
    ENTRY_OVERHEAD_BYTES,
    CachedModel,
    WhatIf,
    matching_published,
    period_dates,
    plan_with_request,
    planned_mask,
    stored_plan,
)
from mm_assets.serving.config import (
    FALLBACK_BASELINE,
    FALLBACK_LATEST,
    ServingConfig,
    serving_settings,
    settings_file,
)
from mm_assets.serving.limits import limits_of
from mm_assets.serving.lookup import SOURCE_BASELINE, SOURCE_CHAMPION, ModelLookup, ModelRef
from mm_assets.serving.plan_checks import plan_problems
from mm_assets.serving.preload import keep_partition_files, read_shared_models
from mm_assets.serving.request import (
    Request,
    SeriesRequest,
    ServingError,
    echo,
    invalid,
    parse_request,
    public_reason,
)
from mm_assets.serving.rows import (
    Published,
    PublishedUnavailable,
    RowsUnavailable,
    SeriesRows,
    rows_bytes,
)
from mm_assets.serving.settings_watch import SettingsWatch
from mm_assets.serving.shared_models import SharedModels
from mm_assets.serving.startup import check_serving_stores
from mm_assets.serving.unavailable import ModelUnreadable, RegistryDown, model_unavailable, unavailable
from mm_assets.settings import Settings, settings_path
from mm_assets.sql import redact

log = logging.getLogger("azmlinfsrv.mm_assets")


def _check_finite(forecast: pd.DataFrame) -> None:
    bad = int((~np.isfinite(forecast["yhat"].to_numpy(dtype=float))).sum())
    if bad:
        raise ValueError(f"the forecast has {bad} non-finite values")


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


# Seconds before what failed is tried again (a model that cannot be read; a dataset or published forecast a cached
# series' refresh could not read; a registry that cannot be asked): soon, so that a file rewritten in place serves
# again moments after its writer is done, but not per request, which would read a broken file (or wait for a
# registry that is down) for every request of its series.
RETRY_S = 10.0


@dataclass
class _Outage:
    """The registry cannot be asked: since when (monotonic), the first error's type, when a cached series asks it
    again, and how many lookups failed (for the line logged when it answers again)."""

    since: float
    error: str
    retry_at: float
    failed: int = 1


def _address(ref: ModelRef) -> tuple[str, int, int]:
    """Where a model's bytes are: its bundle's URI, their offset and size."""
    return ref.artifact_uri, ref.artifact_offset, ref.artifact_size


def _not_in_data(key: str, partition: str) -> ServingError:
    """The 404 of a series that has a model but no row in its partition's dataset: gone from the source (a
    delisted item). Batch scoring no longer forecasts it, and its last published forecasts stay in the warehouse;
    forecast from the model's stored tail it would answer numbers the warehouse does not have."""
    return ServingError(
        404, "series_not_in_data",
        f"series {key} has a model but no row in its partition's dataset (datasets/{partition}.parquet): it left the "
        "source (a delisted item?), or it has had no row for ingest.dormant_after periods (dormant: its rows are in "
        f"datasets/dormant/{partition}.parquet), so batch scoring no longer forecasts it; its last published "
        "forecasts stay in the warehouse (forecast_predictions). If it should sell, check the source's rows of it "
        "and run the cycle")


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
        self._newest: tuple[float, pd.Timestamp | None] = (-np.inf, None)  # (asked again after, the lake's newest
        # period with sales: ``_newest_period``)
        self.settings_watch: SettingsWatch | None = None  # the file the settings came from (``from_environment``)
        self._sold_files: dict[str, tuple[str, bool]] = {}  # period file -> (signature, holds a sale)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ForecastService:
        settings = serving_settings(environ)
        config = ServingConfig.from_env(environ)
        check_serving_stores(settings)  # one line naming the setting, before the preload's warnings
        service = cls(settings, config)
        environ = dict(os.environ if environ is None else environ)
        service.settings_watch = SettingsWatch(settings_file(environ) or settings_path(environ), settings, environ,
                                               config.refresh_s)
        log.info(
            "mm-assets online scoring: registry %s, lake %s, ids %s, horizon 1..%d; a series without a champion: "
            "%s; cache %d models / %.4g MiB per worker and global models %.4g MiB apart, refresh %.0fs, max %d "
            "series and %.4g MiB per request",
            redact(settings.storage.registry),
            settings.storage.lake, service.id_columns, service.max_horizon, config.fallback, config.cache_models,
            config.cache_bytes / 2**20, config.shared_bytes / 2**20, config.refresh_s, config.max_series,
            config.max_body_bytes / 2**20,
        )
        service.preload()
        return service

    def preload(self) -> tuple[int, int]:
        """Before the first request: the global models current champions point at (``preload_shared``), then the
        small files of the partitions with the most champions (``preload_rows``); returns (models, files) read."""
        return self.preload_shared(), self.preload_rows()

    def preload_shared(self) -> int:
        """Reads the global models that current champions point at into ``shared``, within its budget
        (``preload.read_shared_models``); returns how many."""
        return read_shared_models(self.lookup, self.shared, self._read_model)

    def preload_rows(self) -> int:
        """Reads the small files of the partitions with the most current champions, within most of the kept
        files' budget (``preload.keep_partition_files``); returns how many files it read."""
        return keep_partition_files(self.lookup, self.rows)

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

    def _newest_period(self) -> pd.Timestamp | None:
        """The newest period the lake holds sales of (its newest ``raw/sales`` file with a sale), what an answer's
        origin is measured against (``answer.behind_note``); listed at most once per refresh interval (one listing
        call), None when the folder is empty or cannot be listed (the answers then say nothing of it)."""
        due, newest = self._newest
        now = time.monotonic()
        if now < due:
            return newest
        try:
            newest = self._newest_sold(self.lake.signatures(*RAW_FOLDER, suffix=".parquet"))
        except Exception as exc:  # noqa: BLE001 - a listing that fails costs only the note; the answers go on
            log.warning("the lake's period files cannot be listed (%s: %s): answers say nothing of series whose "
                        "rows stopped until they can", type(exc).__name__, exc)
            newest = None
        self._newest = (now + self._retry_s if newest is None else now + self.config.refresh_s, newest)
        return newest

    def _newest_sold(self, files: dict[str, str]) -> pd.Timestamp | None:
        """The newest period file holding a sale (``newest_sold_period``): every answer of the demo said its rows
        had stopped 13 days before the newest period, the last of its plan. A file's footer is read again only when
        its signature changed, so a refresh reads none on most days."""
        return newest_sold_period(self.lake, self.settings.columns.target, files, self._sold_files)

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
            error = unavailable("registry_unavailable", "the model registry", str(exc))
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
        error = unavailable("data_unavailable", f"the rows of series {key}", f"from the lake: {exc}")
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
        if (ref.source != SOURCE_BASELINE and signature is not None and rows is None
                and (same is None or same.data != signature)):
            raise _not_in_data(key, partition)
        champion = ref.source == SOURCE_CHAMPION  # its default answer is the published one, when it matches
        published_seen = published = published_data = published_unreadable = None
        try:
            if champion:
                published_seen = self.rows.published_info(partition)
                published_data = published_seen[0] if published_seen is not None else None
            if same is not None and same.data == signature:
                if (same.published_data == published_data and same.unreadable is None
                        and same.published_unreadable is None):  # refreshed: the same model, rows and published
                    same.checked_at, same.retry_at = time.monotonic(), None  # forecast
                    return same
                rows = same.rows  # the same rows; a re-published forecast, or a file to read again: rebuilt below
            if champion and rows is not None:
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
                raise unavailable("data_unavailable", f"the rows of series {key}",
                                  f"{missing} is not in the lake, though its forecast is published")
            return None  # no champion, and no rows to fit its baseline on: not a series batch scoring forecasts
        model, blob, unfit = None, b"", None
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
            unfit = cannot_serve(model, self.cfg.horizon, self.cfg.gap, self.cfg.regressors, self.cfg.target)
            if unfit is not None and rows is not None:  # batch scoring forecasts it with its baseline: so does this
                log.warning("the %s model v%s of %s cannot forecast with these settings (%s): its baseline answers, "
                            "as batch scoring's", ref.source, ref.version, key, unfit)
                unfit = f"model v{ref.version} cannot forecast with these settings: {unfit}"  # batch scoring's note
                ref, model, blob, published = ModelRef.baseline(key), None, b"", None
            else:
                unfit = None
        try:
            if model is None:  # the baseline, as batch scoring fits it: on the series' rows
                model = Baseline(self.cfg).fit(regularize(rows, self.cfg))
                blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
            entry = self._entry(ref, blob, model, rows, signature, published)
            entry.published_data, entry.unfit = published_data, unfit
            if published_unreadable is not None:
                entry.published_unreadable, entry.retry_at = published_unreadable, time.monotonic() + self._retry_s
        except Exception as exc:  # noqa: BLE001 - any failure of one model is that series' 500, the service goes on
            raise self._cannot_serve(ref, key, exc) from None
        self._maybe_log_stats()
        return entry

    def _from_published(self, ref: ModelRef, key: str, rows: pd.DataFrame | None, signature: str | None,
                        published: Published | None, exc: ModelUnreadable) -> CachedModel:
        """The entry of a series whose model cannot be read (``exc``), without the model. Its default answer is its
        partition's published batch forecast when this model version made it from the same origin and rows
        (``matching_published``): the warehouse's forecast, the one the model would answer with (a global model's) or
        compute again (any other), so reading the model is not needed for it. A what-if needs the model: a 503
        naming the file (``forecast``). The model is tried again from ``RETRY_S`` on. Without such a forecast the
        series' request is that 503. ``published``: a champion's, read already (``_load``)."""
        if published is not None and len(published):
            cfg = self.cfg  # the model's is not at hand: the settings' (``matching_published`` fails on a mismatch)
            origin = pd.Timestamp(regularize(rows, cfg).index[-1])
            first = origin + cfg.step * (1 + cfg.gap)
            max_h = min(self.max_horizon, len(published))  # the periods the model forecasts (its reach, if less)
            batch = matching_published(published, ref, origin, first, max_h, signature)
            if batch is not None:
                plan = stored_plan(rows, cfg, first, max_h)
                yhat, replaced = batch
                return CachedModel(
                    ref=ref, blob=b"", cfg=cfg, origin=origin, max_horizon=max_h,
                    ds=period_dates(first, int(cfg.step / pd.Timedelta(days=1)), max_h), yhat=yhat, rows=rows,
                    data=signature, plan=plan, planned=planned_mask(plan, max_h), envelope=replaced,
                    unreadable=str(exc), retry_at=time.monotonic() + self._retry_s,
                    size=yhat.nbytes + ENTRY_OVERHEAD_BYTES + rows_bytes(rows)
                    + sum(int(v.nbytes) for v in plan.values()),
                )
        raise model_unavailable(ref, key, str(exc))

    def _published(self, key: str, seen: tuple[str, int] | None = None) -> Published | None:
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

    def _published_or_none(self, key: str) -> Published | None:
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
               published: Published | None = None) -> CachedModel:
        """A cache entry: the model's default forecast from the series' rows (its history and stored plan, as batch
        scoring forecasts it), else from its stored tail; what its what-ifs need, and their limits.

        A champion's default forecast is batch scoring's own, read from ``published`` (its partition's latest
        batch forecast) when that was made by this model version from the same origin and rows, so the endpoint
        answers what the warehouse holds: a global model's store-level features read the store's other products,
        which batch scoring forecasts together and the endpoint does not have (forecast alone, the series differs:
        0.4 % at the median on the demo's stores of 20 products, 7.8 % on orangeJuice's of 11), and a per-series
        model's forecast moves with the code that computes it (an upgraded endpoint, before the next batch run,
        answered a version's forecast made its new way, a third below the warehouse's). Its what-ifs move that
        forecast (``WhatIf.published``)."""
        cfg: SeriesConfig = model.cfg
        # a direct multi-step model (a global one's view reads its model's) forecasts at most its reach past the
        # history, of which its gap comes first: a champion trained for a shorter horizon than today's, without
        # rows in the lake to fit the baseline that batch scoring serves instead (``_load``), answers the periods
        # it can, and longer requests are refused (400) rather than failing (500)
        reach = getattr(getattr(model, "global_", model), "reach", None)
        max_h = max(1, min(self.max_horizon, int(reach) - cfg.gap)) if reach else self.max_horizon
        history = regularize(rows, cfg) if rows is not None else model.tail_
        origin = pd.Timestamp(history.index[-1])
        first = origin + cfg.step * (1 + cfg.gap)
        plan = stored_plan(rows, cfg, first, max_h, model.kinds_)
        shared = _is_shared(ref)  # a global model: kept in ``shared``, not in the entry
        envelope = None
        batch = matching_published(published, ref, origin, first, max_h, signature)
        # a what-if moves the published forecast of the model itself (not the baseline's that replaced it)
        anchor = batch[0] if batch is not None and batch[1] is None else None
        what_if = WhatIf.of(model, max_h, history, plan, anchor,
                            functools.partial(self._shared_model, ref) if shared else None)
        fast = None
        if batch is None and what_if is not None:
            fast = what_if.forecast(first, max_h)  # arrays: the same numbers (no cap: batch scoring's)
        if batch is not None:
            yhat, envelope = batch
        elif fast is not None:
            yhat = fast[0]
        else:
            forecast, info = forecast_from_model(model, cfg, horizon=max_h, rows=rows)
            _check_finite(forecast)
            yhat, envelope = forecast["yhat"].to_numpy(dtype=float).copy(), info["envelope"]
        step_days = int(cfg.step / pd.Timedelta(days=1))
        return CachedModel(
            ref=ref, blob=blob, cfg=cfg, origin=origin, max_horizon=max_h, ds=period_dates(first, step_days, max_h),
            yhat=yhat, rows=rows, data=signature, plan=plan, planned=planned_mask(plan, max_h),
            limits=limits_of(model, history, cfg.regressors), envelope=envelope, what_if=what_if,
            alone=shared and ref.source == SOURCE_CHAMPION and batch is None, from_tail=rows is None,
            size=len(blob) + yhat.nbytes + ENTRY_OVERHEAD_BYTES + rows_bytes(rows) + sum(int(v.nbytes) for v in plan.values())
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
            raise model_unavailable(entry.ref, request.key, str(exc), what_if=True) from None
        cfg = entry.cfg
        planned = plan_with_request(entry.plan, request.plan, first, cfg.step, h)
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
        dates = period_dates(pd.Timestamp(forecast[DS].iloc[0]), int(cfg.step / pd.Timedelta(days=1)), h)
        points = [{"ds": d, "yhat": y} for d, y in zip(dates, forecast["yhat"].to_numpy(dtype=float).tolist())]
        return Points(points, int(info["planned_periods"]), info["envelope"])

    def _what_if_arrays(self, entry: CachedModel, request: SeriesRequest, first: pd.Timestamp) -> Points | None:
        """A planner's what-if on a model kept for them (``WhatIf``: the linear model), with no pandas object
        built per request; None: the general path."""
        if entry.what_if is None:
            return None
        fast = entry.what_if.forecast(first, request.horizon, request.plan, cap=entry.envelope is None)
        if fast is None:
            return None
        pred, used, top = fast
        capped = None if top is None else capped_note(top, entry.what_if.reference, entry.cfg.envelope_multiple)
        return Points([{"ds": d, "yhat": y} for d, y in zip(entry.ds, pred.tolist())], used,  # the default's dates
                      capped=capped)

    def _unknown_hint(self) -> str:
        """What would make a series no model serves be served, under this fallback."""
        return {
            FALLBACK_BASELINE: "a series without a champion is served by its baseline, which needs its rows in its "
                               "partition's dataset in the lake: check the ids, or ingest and cut the series first; "
                               "a series without a row for ingest.dormant_after periods is dormant (its rows are in "
                               "datasets/dormant/<partition>.parquet), not forecast until its next row",
            FALLBACK_LATEST: "check the ids, or train the series first",
        }.get(self.config.fallback, "MM_ASSETS_SERVING_FALLBACK=none: only production champions serve; check the "
                                    "ids, or promote a model of the series")

    def _unknown(self, unknown: list[SeriesRequest]) -> ServingError:
        """The 404 for series no model serves, with what would make one serve under this fallback."""
        names = [dict(zip(self.id_columns, r.ids)) for r in unknown]
        shown = ", ".join(r.key for r in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        return ServingError(
            404, "unknown_series",
            f"no model serves {len(unknown)} of the requested series: {shown} ({'/'.join(self.id_columns)}; "
            f"{self._unknown_hint()}; or send \"skip_unknown\": true to be answered the others)",
            series=names,
        )

    def _not_served(self, request: SeriesRequest, error: ServingError | None) -> dict[str, Any]:
        """A ``not_served`` item of a ``skip_unknown`` answer: the series' ids, the 404's code and why."""
        if error is None:
            error = ServingError(404, "unknown_series", f"no model serves series {request.key}: {self._unknown_hint()}")
        return {**dict(zip(self.id_columns, request.ids)), "error": error.code, "message": error.message}

    def forecast(self, request: Request, misses: list[int] | None = None) -> dict[str, Any]:
        """The answer body; raises ServingError. ``misses[0]`` counts the models this request had to load.

        A series no model serves (404 ``unknown_series`` / ``series_not_in_data``) fails the whole request, unless
        it asked ``skip_unknown``: then it is listed in ``not_served`` and the others are answered."""
        misses = [0] if misses is None else misses
        entries: dict[str, CachedModel] = {}
        missing: dict[str, ServingError | None] = {}  # key → its 404 (None: no model serves it)
        for r in request.series:
            if r.key in entries or r.key in missing:
                continue
            try:
                entry, hit = self.model(r.key)
            except ServingError as err:
                if not (request.skip_unknown and err.status == 404):
                    raise
                missing[r.key] = err
                continue
            misses[0] += not hit
            if entry is None:
                missing[r.key] = None
            else:
                entries[r.key] = entry
        if missing and not request.skip_unknown:
            raise self._unknown([r for r in request.series if r.key in missing])
        requests = [r for r in request.series if r.key in entries]
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
            raise model_unavailable(entries[r.key].ref, r.key, entries[r.key].unreadable, what_if=True)
        problems = [p for r in requests for p in plan_problems(entries[r.key], r)]
        if problems:
            raise invalid(problems)
        newest = self._newest_period() if requests else None
        changed = self.settings_watch.note() if requests and self.settings_watch is not None else None
        body: dict[str, Any] = {"forecasts": [
            series_answer(self.id_columns, entries[r.key], r, self._points(entries[r.key], r),
                          behind_note(entries[r.key].origin, newest, self.settings.step, self.settings.max_normal_gap),
                          changed)
            for r in requests]}
        if request.skip_unknown:
            shown: set[str] = set()
            body["not_served"] = [self._not_served(r, missing[r.key]) for r in request.series
                                  if r.key in missing and not (r.key in shown or shown.add(r.key))]
        return body

    def handle(self, raw: str | bytes | Mapping | None, content_type: str | None = None) -> Reply:
        """One request body → status, JSON body, headers. Never raises."""
        misses = [0]
        self.shared.loads_here()  # counts from this request on
        try:
            request = parse_request(raw, self.id_columns, self.regressors, self.max_horizon,
                                    self.config.max_series, content_type)
            body = self.forecast(request, misses)
            status = 200
        except ServingError as err:
            status, body = err.status, err.body()
            if status >= 500 and not err.logged:
                log.error("%s: %s", err.code, err.message)
        except Exception:  # noqa: BLE001 - a bug: say so without a stack trace in the answer; the log has it
            log.error("unexpected error while scoring:\n%s", traceback.format_exc())
            status = 500
            body = {"error": "internal_error", "message": "an unexpected error occurred; the server log has details"}
        return Reply(status, body, self._headers(misses[0]))

    def refuse_request(self, method: str, encoding: str | None) -> Reply | None:
        """The answer to a request that is not a scoring request, before its body is read; None for one that is.
        Scoring is a POST of uncompressed JSON. A GET with a body used to be scored, and one without a body told
        to send a body; OPTIONS (a browser's preflight) is answered with the methods allowed; a compressed body
        (``Content-Encoding: gzip``) is refused by name, not read as text that is not UTF-8."""
        allow = {"Allow": "POST, OPTIONS"}
        if method == "OPTIONS":
            return Reply(200, {}, {**self._headers(0), **allow})
        if method != "POST":
            err = ServingError(405, "method_not_allowed", f"{echo(method)} is not a scoring request: send it with POST "
                               'and a JSON body {"series": [...]}')
            return Reply(err.status, err.body(), {**self._headers(0), **allow})
        if encoding and encoding.strip().lower() not in ("identity", ""):
            err = ServingError(415, "unsupported_encoding", f"the request body is sent with Content-Encoding: "
                               f"{echo(encoding)}; only an uncompressed JSON body is read: send it without compression")
            return Reply(err.status, err.body(), self._headers(0))
        return None

    def refuse_body(self, received: int | None) -> Reply:
        """The 413 of a body over ``max_body_bytes`` (``received``: its Content-Length; None: sent without one),
        answered before it is read."""
        limit = self.config.max_body_bytes
        size = f"{received:,} bytes" if received is not None else f"over {limit:,} bytes (sent without a length)"
        err = ServingError(413, "body_too_large",
                           f"the request body is {size}; at most {limit:,} are read (MM_ASSETS_SERVING_MAX_BODY_BYTES):"
                           " send fewer series per request, or raise the limit", limit=limit, received=received)
        return Reply(err.status, err.body(), self._headers(0))

    def _headers(self, misses: int) -> dict[str, str]:
        """The cache's observability headers of an answer (``misses``: series models this request loaded)."""
        return {
            "x-mm-cache-misses": str(misses),
            "x-mm-shared-loads": str(self.shared.loads_here()),
            "x-mm-cache-models": str(len(self.cache)),
            "x-mm-cache-bytes": str(self.cache.bytes),
            "x-mm-worker-pid": str(os.getpid()),
        }
