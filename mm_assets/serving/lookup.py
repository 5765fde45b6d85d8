"""Which stored model serves a series online: the production champion, as in batch scoring.

- Production registry (``storage.production_registry``, default ``sqlite:///data/production.db``; written only
  by the promotion gate): when it exists, a series' champion is the ``champions`` row its ``champions_current``
  pointer names, as batch scoring reads it → ``model_source = "champion"``; a champion the gate retired (it no
  longer beats the baseline) has no pointer, and its baseline serves.
- Otherwise (no production registry yet, or no champion for this series) ``find`` returns None and the service
  serves the series' baseline, as batch scoring publishes it (``MM_ASSETS_SERVING_FALLBACK=baseline``, the
  default), or answers 404 (``none``). Only the explicit opt-in ``latest`` returns the training registry's
  highest ``model_versions.version`` of the series → ``model_source = "latest"``: a model the gate did not
  promote (or has not judged yet), whose forecasts the warehouse does not publish.

Reads are one indexed single-row query per registry (``series_key`` leads both indexes), never a scan, and
this module never creates or writes a registry: a SQLite file that does not exist is "not there".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from mm_assets.registry.model_registry import model_versions
from mm_assets.registry.production import champions, champions_current, log_marks, newest_champions
from mm_assets.sql import engine_for, redact

log = logging.getLogger("azmlinfsrv.mm_assets")

SOURCE_CHAMPION = "champion"
SOURCE_LATEST = "latest"
SOURCE_BASELINE = "baseline"


class RegistryUnavailable(RuntimeError):
    """The training registry the endpoint is configured with does not exist or cannot be read."""


@dataclass(frozen=True)
class ModelRef:
    series_key: str
    version: int
    model_type: str
    source: str
    artifact_uri: str
    artifact_offset: int
    artifact_size: int

    @classmethod
    def baseline(cls, series_key: str) -> ModelRef:
        """The series' baseline: no stored model, fitted on the series' rows when it is loaded (version 0, as the
        warehouse records it)."""
        return cls(series_key, 0, SOURCE_BASELINE, SOURCE_BASELINE, "", 0, 0)


@dataclass(frozen=True)
class SharedArtifact:
    """A model many champions point at (a global model): its byte range and how many series it serves."""

    artifact_uri: str
    artifact_offset: int
    artifact_size: int
    series: int

    @property
    def address(self) -> tuple[str, int, int]:
        return self.artifact_uri, self.artifact_offset, self.artifact_size


def _sqlite_file(url: str) -> Path | None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    db = parsed.database
    return Path(db) if db and db != ":memory:" else None


def _has_table(url: str, table: str) -> bool:
    """Whether ``table`` exists at ``url``; a missing SQLite file is never created by asking."""
    path = _sqlite_file(url)
    if path is not None and not path.is_file():
        return False
    engine = engine_for(url)
    try:
        return sa.inspect(engine).has_table(table)
    finally:
        engine.dispose()


class ModelLookup:
    """Finds the serving model of a series. Thread-safe (SQLAlchemy engines pool connections per thread)."""

    def __init__(
        self,
        registry_url: str,
        production_url: str | None = None,
        latest: bool = False,
        recheck_s: float = 300.0,
    ):
        if not _has_table(registry_url, model_versions.name):
            raise RegistryUnavailable(
                f"no model registry at {redact(registry_url)} (table {model_versions.name} not found): train "
                "models first (make demo), or point storage.registry (MM_ASSETS__STORAGE__REGISTRY) at your registry"
            )
        self.registry_url = registry_url
        self.production_url = production_url or None
        self.latest = latest  # a series without a champion: its latest trained version (the opt-in), else None
        self.recheck_s = recheck_s
        self._engine = engine_for(registry_url)
        self._champions = champions
        self._production: sa.Engine | None = None
        self._production_checked = -float("inf")
        self._lock = threading.Lock()
        self._latest_q = (
            sa.select(
                model_versions.c.version,
                model_versions.c.model_type,
                model_versions.c.artifact_uri,
                model_versions.c.artifact_offset,
                model_versions.c.artifact_size,
            )
            .where(model_versions.c.series_key == sa.bindparam("key"))
            .order_by(model_versions.c.version.desc())
            .limit(1)
        )
        c = self._champions.c
        columns = (c.version, c.model_type, c.artifact_uri, c.artifact_offset, c.artifact_size)
        # through the series' pointer, which the gate deletes when it retires a champion; a registry written
        # before the pointers existed has only the rows: each series' newest; rows the pointers have not taken in
        # yet (written by other code than the gate's) count as the series' newest too
        self._pointed_q = (sa.select(*columns).join(champions_current, champions_current.c.champion_id == c.id)
                           .where(champions_current.c.series_key == sa.bindparam("key")))
        self._newest_q = sa.select(*columns).where(c.series_key == sa.bindparam("key")).order_by(c.id.desc()).limit(1)
        marked = sa.select(log_marks.c.last_id).where(log_marks.c.log == champions.name).scalar_subquery()
        self._unmarked_q = self._newest_q.where(c.id > sa.func.coalesce(marked, 0))
        self._pointers = False  # whether the production registry has the pointer tables
        self.production_engine()  # log which registries serve, once at start

    def production_engine(self) -> sa.Engine | None:
        """The production registry's engine if it exists (re-checked every ``recheck_s`` while it does not)."""
        if self._production is not None or self.production_url is None:
            return self._production
        now = time.monotonic()
        interval = max(self.recheck_s, 10.0)  # looking for an absent registry costs a connection: not per request
        if now - self._production_checked < interval:
            return None
        with self._lock:
            if self._production is None and now - self._production_checked >= interval:
                self._production_checked = now
                if _has_table(self.production_url, self._champions.name):
                    self._pointers = all(_has_table(self.production_url, t.name) for t in (champions_current,
                                                                                             log_marks))
                    self._production = engine_for(self.production_url)
                    log.info("serving champions from the production registry %s", redact(self.production_url))
                else:
                    log.info(
                        "no production registry at %s yet: no series has a champion", redact(self.production_url),
                    )
        return self._production

    def find(self, series_key: str) -> ModelRef | None:
        production = self.production_engine()
        if production is not None:
            with production.connect() as conn:
                if self._pointers:
                    row = conn.execute(self._pointed_q, {"key": series_key}).first() or conn.execute(
                        self._unmarked_q, {"key": series_key}).first()
                else:
                    row = conn.execute(self._newest_q, {"key": series_key}).first()
            if row is not None:
                return self._ref(series_key, row, SOURCE_CHAMPION)
        if not self.latest:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(self._latest_q, {"key": series_key}).first()
        return None if row is None else self._ref(series_key, row, SOURCE_LATEST)

    def shared_champions(self, min_bytes: int) -> list[SharedArtifact]:
        """The models of at least ``min_bytes`` that current champions point at (global models, each serving many
        series), the most-served first, then the newest: what a worker loads before its first request. One
        grouped query over the newest champion row of every series; superseded models are not among them."""
        production = self.production_engine()
        if production is None:
            return []
        c = self._champions.c
        served, newest = sa.func.count().label("served"), sa.func.max(c.id).label("newest")
        with production.connect() as conn:
            current = newest_champions(conn)[0].subquery()
            query = (sa.select(c.artifact_uri, c.artifact_offset, c.artifact_size, served, newest)
                     .join(current, c.id == current.c.id).where(c.artifact_size >= min_bytes)
                     .group_by(c.artifact_uri, c.artifact_offset, c.artifact_size)
                     .order_by(served.desc(), newest.desc()))
            return [SharedArtifact(str(r.artifact_uri), int(r.artifact_offset), int(r.artifact_size), int(r.served))
                    for r in conn.execute(query)]

    def champion_partitions(self) -> list[str]:
        """The partitions of the series with a current champion, the most champions first (what a worker's start
        reads the small files of)."""
        production = self.production_engine()
        if production is None:
            return []
        c = self._champions.c
        count = sa.func.count().label("series")
        with production.connect() as conn:
            current = newest_champions(conn)[0].subquery()
            query = (sa.select(c.partition_key, count).join(current, c.id == current.c.id).group_by(c.partition_key)
                     .order_by(count.desc(), c.partition_key))
            return [str(r.partition_key) for r in conn.execute(query)]

    @staticmethod
    def _ref(series_key: str, row, source: str) -> ModelRef:
        return ModelRef(
            series_key=series_key,
            version=int(row.version),
            model_type=str(row.model_type),
            source=source,
            artifact_uri=str(row.artifact_uri),
            artifact_offset=int(row.artifact_offset),
            artifact_size=int(row.artifact_size),
        )

    def dispose(self) -> None:
        self._engine.dispose()
        if self._production is not None:
            self._production.dispose()
