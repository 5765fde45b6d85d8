"""The model registry: a SQL index of model versions (any SQLAlchemy URL) with artifacts in the lake.

Why not one file and one registry call per series: with 10k–1M series, per-series REST calls or files are
the bottleneck. Models of one training task are appended to one bundle file; a registry row points to its
byte range. Registration is a bulk insert; "latest model of every series of these partitions" is one query.

Tables:
  model_versions   one row per model version: ids (JSON tags), series_key, partition, model_type, version,
                   status (trained|fallback), reason, data window, n_obs, metrics (JSON + key columns),
                   artifact_uri/offset/size, trained_at, run_id
  model_latest     one row per series: its latest version (``registry.pointers``: the latest models are read
                   without reading every version ever trained)
  series_failures  one row per failed series and run: error type and message, attempts
  log_marks        how far the pointers cover the log
"""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from mm_assets.lake import Lake, LakePathError
from mm_assets.registry import pointers
from mm_assets.sql import engine_for, in_chunks, plain_records, rows_after

metadata = sa.MetaData()


def series_columns() -> list[sa.Column]:
    """Columns naming a series in every registry table: its key, its Dagster partition and its id tags."""
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("series_key", sa.String(512), nullable=False),
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("ids", sa.Text, nullable=False),
    ]


def artifact_columns() -> list[sa.Column]:
    """Where a model's pickled bytes are: a bundle file in the lake and a byte range in it."""
    return [
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("artifact_offset", sa.BigInteger, nullable=False),
        sa.Column("artifact_size", sa.BigInteger, nullable=False),
    ]


model_versions = sa.Table(
    "model_versions",
    metadata,
    *series_columns(),
    sa.Column("model_type", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("data_start", sa.DateTime),
    sa.Column("data_end", sa.DateTime),
    sa.Column("n_obs", sa.Integer),
    sa.Column("accuracy", sa.Float),
    sa.Column("wape", sa.Float),
    sa.Column("mase", sa.Float),
    sa.Column("metrics", sa.Text),
    *artifact_columns(),
    sa.Column("trained_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("duration_s", sa.Float),
    sa.UniqueConstraint("series_key", "version", name="uq_model_versions_series_version"),
    sa.Index("ix_model_versions_partition", "partition_key", "series_key"),
)

series_failures = sa.Table(
    "series_failures",
    metadata,
    *series_columns(),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("error_type", sa.String(256)),
    sa.Column("error_message", sa.Text),
    sa.Column("attempts", sa.Integer),
    sa.Column("failed_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Index("ix_series_failures_partition", "partition_key", "run_id"),
)

model_latest = pointers.series_pointers(metadata, "model_latest", "version")
log_marks = pointers.marks_table(metadata)

MODEL_COLUMNS = [c.name for c in model_versions.columns if c.name != "id"]


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    return plain_records(frame, columns)


def retention_cutoff(days: int) -> dt.datetime:
    """When what is older falls out of ``storage.model_retention_days`` (naive UTC, as the registries store time);
    the training registry's versions and the production copies are pruned against the same cutoff."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=days)


def prune_old_versions(reg: ModelRegistry, production, keys: list[str], days: int | None) -> dict:
    """``storage.model_retention_days``: the stores' versions older than that, but each series' latest and its
    current champion's (``production``: a production registry reader), deleted with the bundle files no version
    needs any more, and the bundle files of older runs that no version ever pointed at (a run stopped before it
    registered them) → figures of what went."""
    if not days or not keys:
        return {}
    champions = production.current(keys)
    keep = set(zip(champions["series_key"], champions["version"].astype(int))) if len(champions) else set()
    cutoff = retention_cutoff(days)
    versions, files = reg.prune(keys, cutoff, keep)
    return {"pruned_versions": versions, "pruned_bundle_files": files,
            "pruned_orphan_bundle_files": reg.prune_orphan_bundles(cutoff)}


class ModelRegistry:
    """Index of model versions. ``read_only=True`` gives a handle that refuses every write."""

    def __init__(self, url: str, lake: Lake | None = None, read_only: bool = False):
        self.url = url
        self.lake = lake
        self.read_only = read_only
        self.engine = engine_for(url)
        if not read_only:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                self._catch_up(conn)  # versions written without the pointers (older code) are taken in

    def _check_writable(self) -> None:
        if self.read_only:
            raise PermissionError(f"registry {self.engine.url.render_as_string(hide_password=True)} is read-only here")

    # ---- writes --------------------------------------------------------------------------------------
    def register(self, models: pd.DataFrame, run_id: str, trained_at: dt.datetime | None = None) -> pd.DataFrame:
        """Bulk-register model rows; assigns each series its next version in one transaction.

        ``models`` needs: series_key, partition_key, ids (JSON), model_type, status, reason, data_start,
        data_end, n_obs, metrics (JSON), accuracy, wape, mase, artifact_uri, artifact_offset, artifact_size,
        duration_s. Returns the frame with ``version`` filled.
        """
        self._check_writable()
        if models.empty:
            return models.assign(version=pd.Series(dtype="int64"))
        frame = models.copy()
        frame["run_id"] = run_id
        frame["trained_at"] = trained_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            self._catch_up(conn)
            current = self._latest_versions(conn, frame["series_key"].unique().tolist())
            frame["version"] = frame["series_key"].map(current).fillna(0).astype("int64") + 1
            records = _records(frame, MODEL_COLUMNS)
            for chunk in in_chunks(records, 5000):
                conn.execute(model_versions.insert(), chunk)
            self._catch_up(conn)
        return frame

    @staticmethod
    def _catch_up(conn) -> None:
        """Point ``model_latest`` at the newest version of every series registered after the mark."""
        top, done = pointers.top_id(conn, model_versions), pointers.mark(conn, log_marks, model_versions)
        if top <= done:
            return
        newest = conn.execute(pointers.newest_per_group(model_versions, "series_key", done, order="version")
                              .with_only_columns(model_versions.c.series_key, model_versions.c.partition_key,
                                                 model_versions.c.version)).mappings().all()
        pointers.replace_rows(conn, model_latest, "series_key", [dict(r) for r in newest])
        pointers.set_mark(conn, log_marks, model_versions, top)

    def prune(self, partition_keys: Sequence[str], trained_before: dt.datetime,
              keep: set[tuple[str, int]] = frozenset()) -> tuple[int, int]:
        """Delete the model versions of these partitions trained before ``trained_before``, but each series'
        latest and the ``keep`` (series_key, version) pairs (the current champions: the gate heals a champion's
        production copy from its version here), then the bundle files no remaining version points at (a global
        model's bundle serves the series of several partitions: it stays while any of them needs it). Returns
        (versions deleted, files deleted). Why: every day's training writes a new version of every series; at
        100,000 series a day's global model bundle is 150 MB and its rows 100,000."""
        self._check_writable()
        assert self.lake is not None, "pruning deletes bundle files: the registry needs its lake"
        old = []
        with self.engine.begin() as conn:
            self._catch_up(conn)  # each series' latest is known before anything is chosen
            for chunk in in_chunks(list(partition_keys), 900):
                latest = model_latest.alias("latest")
                q = (sa.select(model_versions.c.id, model_versions.c.series_key, model_versions.c.version,
                               model_versions.c.artifact_uri)
                     .join(latest, sa.and_(latest.c.series_key == model_versions.c.series_key,
                                           latest.c.version == model_versions.c.version), isouter=True)
                     .where(model_versions.c.partition_key.in_(chunk), model_versions.c.trained_at < trained_before,
                            latest.c.series_key.is_(None)))
                old.append(pd.read_sql(q, conn))
        old = pd.concat(old, ignore_index=True) if old else pd.DataFrame(columns=["id", "artifact_uri"])
        if len(old) and keep:
            kept = pd.Series(list(zip(old["series_key"], old["version"].astype(int)))).isin(keep).to_numpy()
            old = old[~kept]
        if not len(old):
            return 0, 0
        uris = old["artifact_uri"].unique().tolist()
        with self.engine.begin() as conn:
            for chunk in in_chunks(old["id"].astype(int).tolist(), 900):
                conn.execute(model_versions.delete().where(model_versions.c.id.in_(chunk)))
            still = set()
            for chunk in in_chunks(uris, 900):
                still.update(conn.execute(sa.select(model_versions.c.artifact_uri).distinct()
                                          .where(model_versions.c.artifact_uri.in_(chunk))).scalars())
        unused = [uri for uri in uris if uri not in still]
        for uri in unused:  # after the rows: a file is never missing under a version that points at it
            self.lake.delete_file(self.lake.relative(uri))
        return len(old), len(unused)

    def prune_orphan_bundles(self, written_before: dt.datetime) -> int:
        """Delete the bundle files under the lake's ``models/`` that no version points at and that were last written
        before ``written_before`` (a retention cutoff: days ago, so never a running training's). Returns how many.
        Why: a training run stopped after its workers wrote their bundles and before their versions were registered
        leaves files that nothing reads and that ``prune`` (which follows versions) never finds."""
        self._check_writable()
        assert self.lake is not None, "pruning deletes bundle files: the registry needs its lake"
        candidates = self.lake.files_written_before(written_before, "models")
        if not candidates or not self._points_into_its_lake():
            return 0
        uris = {self.lake.full_uri(path): path for path in candidates}
        still = set()
        with self.engine.connect() as conn:
            for chunk in in_chunks(list(uris), 900):
                still.update(conn.execute(sa.select(model_versions.c.artifact_uri).distinct()
                                          .where(model_versions.c.artifact_uri.in_(chunk))).scalars())
        orphans = [path for uri, path in uris.items() if uri not in still]
        for path in orphans:
            self.lake.delete_file(path)
        return len(orphans)

    def _points_into_its_lake(self) -> bool:
        """Whether the newest version's file is named as this lake names its files: a lake moved to another account
        or folder without its registry's ``artifact_uri`` rewritten would make every file look unreferenced."""
        with self.engine.connect() as conn:
            uri = conn.execute(sa.select(model_versions.c.artifact_uri).order_by(model_versions.c.id.desc())
                               .limit(1)).scalar()
        if uri is None:
            return False
        try:
            return self.lake.full_uri(self.lake.relative(uri)) == uri
        except (LakePathError, ValueError):
            return False

    def record_failures(self, failures: pd.DataFrame, run_id: str, task: str) -> int:
        """Record failed series (series_key, partition_key, ids, error_type, error_message, attempts)."""
        self._check_writable()
        if failures.empty:
            return 0
        frame = failures.copy()
        frame["run_id"] = run_id
        frame["task"] = task
        frame["failed_at"] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        cols = [c.name for c in series_failures.columns if c.name != "id"]
        with self.engine.begin() as conn:
            conn.execute(series_failures.insert(), _records(frame, cols))
        return len(frame)

    # ---- reads ---------------------------------------------------------------------------------------
    @staticmethod
    def _latest_versions(conn, keys: list[str]) -> dict[str, int]:
        """The latest version of each of ``keys`` (the pointers are caught up): one key lookup each."""
        out: dict[str, int] = {}
        for chunk in in_chunks(keys, 900):
            q = sa.select(model_latest.c.series_key, model_latest.c.version).where(model_latest.c.series_key.in_(chunk))
            out.update({k: int(v) for k, v in conn.execute(q)})
        return out

    def series_per_partition(self) -> pd.Series:
        """How many series each partition has a model version of (one aggregate query, no rows loaded)."""
        q = sa.select(model_versions.c.partition_key, sa.func.count(sa.distinct(model_versions.c.series_key))
                      ).group_by(model_versions.c.partition_key)
        with self.engine.connect() as conn:
            return pd.Series(dict(conn.execute(q).all()), dtype=int)

    def latest(self, partition_keys: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The latest model version of every series (of the given partitions; only ``columns`` of it), in one query
        per 900 keys: through the ``model_latest`` pointers, or (a read-only handle on a registry whose pointers
        are behind) the newest version of each series in the whole log."""
        frames = []
        chunks = in_chunks(list(partition_keys), 900) if partition_keys is not None else [None]
        with self.engine.connect() as conn:
            if pointers.is_current(conn, log_marks, model_versions, model_latest):
                latest_q = sa.select(model_latest.c.series_key, model_latest.c.version)
                keyed = model_latest.c.partition_key
            else:
                latest_q = sa.select(model_versions.c.series_key,
                                     sa.func.max(model_versions.c.version).label("version")
                                     ).group_by(model_versions.c.series_key)
                keyed = model_versions.c.partition_key
            for chunk in chunks:
                sub = latest_q if chunk is None else latest_q.where(keyed.in_(chunk))
                sub = sub.subquery()
                picked = [model_versions.c[c] for c in ["series_key", *columns]] if columns else [model_versions]
                q = sa.select(*picked).join(
                    sub,
                    sa.and_(
                        model_versions.c.series_key == sub.c.series_key, model_versions.c.version == sub.c.version
                    ),
                )
                frames.append(pd.read_sql(q, conn))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["series_key"])
        return out.sort_values("series_key", ignore_index=True)

    def trained_after(self, after: dict[str, dt.datetime]) -> pd.DataFrame:
        """The versions of each partition in ``after`` trained after its time there: what a publish that
        never came (a run stopped at its publish) left out of the warehouse's model_metrics_history. One query per
        900 partitions, bounded below by the chunk's earliest time."""
        return rows_after(self.engine, model_versions.c.trained_at, after)

    def rows_of(self, series_keys: Sequence[str], versions: Sequence[int]) -> pd.DataFrame:
        """The rows of the given (series_key, version) pairs."""
        pairs = [(str(k), int(v)) for k, v in zip(series_keys, versions)]
        frames = []
        with self.engine.connect() as conn:
            for chunk in in_chunks(pairs, 400):
                key = sa.tuple_(model_versions.c.series_key, model_versions.c.version)
                frames.append(pd.read_sql(sa.select(model_versions).where(key.in_(list(chunk))), conn))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["series_key", "version"])

    def versions(self, series_key: str) -> pd.DataFrame:
        q = sa.select(model_versions).where(model_versions.c.series_key == series_key).order_by(
            model_versions.c.version
        )
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def failures(self, partition_keys: Sequence[str] | None = None, run_id: str | None = None) -> pd.DataFrame:
        q = sa.select(series_failures)
        if partition_keys is not None:
            q = q.where(series_failures.c.partition_key.in_(list(partition_keys)))
        if run_id is not None:
            q = q.where(series_failures.c.run_id == run_id)
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def newest_failures(self, partition_keys: Sequence[str], task: str) -> pd.DataFrame:
        """Each series' newest failure of ``task`` (of the given partitions): series_key, failed_at, error_type,
        error_message, run_id. One aggregate query per 900 partitions, so a long failure log is not read whole."""
        frames = []
        with self.engine.connect() as conn:
            for chunk in in_chunks(list(partition_keys), 900):
                newest = (sa.select(series_failures.c.series_key, sa.func.max(series_failures.c.id).label("id"))
                          .where(series_failures.c.partition_key.in_(chunk), series_failures.c.task == task)
                          .group_by(series_failures.c.series_key).subquery())
                q = sa.select(series_failures.c.series_key, series_failures.c.failed_at, series_failures.c.error_type,
                              series_failures.c.error_message, series_failures.c.run_id
                              ).join(newest, series_failures.c.id == newest.c.id)
                frames.append(pd.read_sql(q, conn))
        columns = ["series_key", "failed_at", "error_type", "error_message", "run_id"]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(model_versions)).scalar_one())

    # ---- artifacts -----------------------------------------------------------------------------------
    def load_model(self, row: dict[str, Any] | pd.Series):
        """Unpickle one model from its bundle byte range."""
        if self.lake is None:
            raise RuntimeError("load_model needs the registry to know the lake")
        start = int(row["artifact_offset"])
        data = self.lake.fs.cat_file(self.lake.path(self.lake.relative(row["artifact_uri"])), start=start,
                                     end=start + int(row["artifact_size"]))
        return pickle.loads(data)

