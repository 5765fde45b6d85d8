"""The production registry: champions and promotion decisions, in a database of its own.

Why separate: the training pipeline must not be able to change what serves. Training and scoring get a
``ProductionRegistry`` opened read-only (every write raises); only the promotion step opens it writable, and a
promoted model's bytes are copied into the production area of the lake, so cleaning training artifacts can
never break serving.

Tables:
  champions             one row per promotion (history); the current champion of a series is its newest row
  promotion_decisions   one row per series and gate run: decision (promoted | kept_champion | rejected), reason,
                        challenger and champion versions and metrics
  champions_current     one row per series: its current champion's row (``registry.pointers``)
  gate_runs             one row per partition: its newest gate run, whose decisions are the current ones
  log_marks             how far the pointers cover the logs
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from mm_assets.lake import Lake
from mm_assets.registry import pointers
from mm_assets.registry.model_registry import _records, artifact_columns, series_columns
from mm_assets.sql import engine_for, in_chunks, rows_after

metadata = sa.MetaData()

champions = sa.Table(
    "champions",
    metadata,
    *series_columns(),
    sa.Column("model_type", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("accuracy", sa.Float),
    sa.Column("wape", sa.Float),
    sa.Column("mase", sa.Float),
    sa.Column("metrics", sa.Text),
    sa.Column("data_end", sa.DateTime),
    *artifact_columns(),
    sa.Column("source_artifact_uri", sa.Text),
    sa.Column("promoted_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Index("ix_champions_series", "series_key", "id"),
    sa.Index("ix_champions_partition", "partition_key"),
)

decisions = sa.Table(
    "promotion_decisions",
    metadata,
    *series_columns(),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("challenger_version", sa.Integer),
    sa.Column("challenger_model_type", sa.String(64)),
    sa.Column("challenger_accuracy", sa.Float),
    sa.Column("challenger_mase", sa.Float),
    sa.Column("challenger_wape", sa.Float),
    sa.Column("champion_version", sa.Integer),
    sa.Column("champion_wape", sa.Float),
    sa.Column("decided_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Index("ix_decisions_partition", "partition_key", "run_id"),
)

champions_current = pointers.series_pointers(metadata, "champions_current", "champion_id")
gate_runs = sa.Table(
    "gate_runs",
    metadata,
    sa.Column("partition_key", sa.String(256), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
)
log_marks = pointers.marks_table(metadata)

CHAMPION_COLUMNS = [c.name for c in champions.columns if c.name != "id"]
DECISION_COLUMNS = [c.name for c in decisions.columns if c.name != "id"]


def newest_champions(conn: sa.Connection) -> tuple[sa.Select, sa.Column]:
    """(series_key, id) of every series' current champion row, and the partition column to filter it by: through
    the ``champions_current`` pointers, or (pointers behind the rows: a read-only handle, older code) each series'
    newest row. Reads only: the online endpoint asks it of a registry it must never write."""
    if pointers.is_current(conn, log_marks, champions, champions_current):
        return (sa.select(champions_current.c.series_key, champions_current.c.champion_id.label("id")),
                champions_current.c.partition_key)
    return (sa.select(champions.c.series_key, sa.func.max(champions.c.id).label("id")).group_by(
        champions.c.series_key), champions.c.partition_key)


class ProductionRegistry:
    def __init__(self, url: str, lake: Lake | None = None, writable: bool = False):
        self.url = url
        self.lake = lake
        self.writable = writable
        self.engine = engine_for(url)
        metadata.create_all(self.engine)  # reading an empty production registry is normal: no champions yet
        if writable:
            with self.engine.begin() as conn:
                self._catch_up(conn)  # rows written without the pointers (older code) are taken in

    @staticmethod
    def _catch_up(conn) -> None:
        """Point ``champions_current`` at each series' newest champion row and ``gate_runs`` at each partition's
        newest gate run, for the rows written after the marks."""
        for log, table, group, columns in (
            (champions, champions_current, "series_key",
             {"series_key": "series_key", "partition_key": "partition_key", "champion_id": "id"}),
            (decisions, gate_runs, "partition_key", {"partition_key": "partition_key", "run_id": "run_id"}),
        ):
            top, done = pointers.top_id(conn, log), pointers.mark(conn, log_marks, log)
            if top <= done:
                continue
            q = pointers.newest_per_group(log, group, done).with_only_columns(
                *(log.c[source].label(name) for name, source in columns.items()))
            pointers.replace_rows(conn, table, group, [dict(r) for r in conn.execute(q).mappings()])
            pointers.set_mark(conn, log_marks, log, top)

    def _check_writable(self) -> None:
        if not self.writable:
            raise PermissionError("the production registry is read-only here; only the promotion gate writes it")

    # ---- reads ---------------------------------------------------------------------------------------
    def current(self, partition_keys: Sequence[str] | None = None) -> pd.DataFrame:
        """The current champion of every series (of the given partitions): through the ``champions_current``
        pointers, or (a read-only handle on a registry whose pointers are behind) each series' newest row."""
        frames = []
        chunks = in_chunks(list(partition_keys), 900) if partition_keys is not None else [None]
        with self.engine.connect() as conn:
            newest, keyed = newest_champions(conn)
            for chunk in chunks:
                sub = newest if chunk is None else newest.where(keyed.in_(chunk))
                sub = sub.subquery()
                q = sa.select(champions).join(sub, champions.c.id == sub.c.id)
                frames.append(pd.read_sql(q, conn))
        if not frames:
            return pd.DataFrame(columns=["id", *CHAMPION_COLUMNS])
        return pd.concat(frames, ignore_index=True).sort_values("series_key", ignore_index=True)

    def champions_per_partition(self) -> pd.Series:
        """How many series of each partition have a champion (one aggregate query, no rows loaded)."""
        q = sa.select(champions.c.partition_key, sa.func.count(sa.distinct(champions.c.series_key))
                      ).group_by(champions.c.partition_key)
        with self.engine.connect() as conn:
            return pd.Series(dict(conn.execute(q).all()), dtype=int)

    def decisions(self, partition_keys: Sequence[str] | None = None, run_id: str | None = None) -> pd.DataFrame:
        q = sa.select(decisions)
        if partition_keys is not None:
            q = q.where(decisions.c.partition_key.in_(list(partition_keys)))
        if run_id is not None:
            q = q.where(decisions.c.run_id == run_id)
        with self.engine.connect() as conn:
            return pd.read_sql(q.order_by(decisions.c.id), conn)

    def newest_decisions(self, partition_keys: Sequence[str]) -> pd.DataFrame:
        """The decisions of each partition's newest gate run (what the warehouse's promotion_decisions shows):
        through the ``gate_runs`` pointers, or (pointers behind) from every decision of those partitions."""
        with self.engine.connect() as conn:
            if not pointers.is_current(conn, log_marks, decisions, gate_runs):
                return newest_gate_run(self.decisions(partition_keys))
            frames = []
            for chunk in in_chunks(list(partition_keys), 900):
                runs = sa.select(gate_runs).where(gate_runs.c.partition_key.in_(chunk)).subquery()
                q = sa.select(decisions).join(runs, sa.and_(decisions.c.partition_key == runs.c.partition_key,
                                                            decisions.c.run_id == runs.c.run_id))
                frames.append(pd.read_sql(q.order_by(decisions.c.id), conn))
        if not frames:
            return pd.DataFrame(columns=["id", *DECISION_COLUMNS])
        return pd.concat(frames, ignore_index=True).sort_values("id", ignore_index=True)

    def decisions_after(self, after: dict[str, dt.datetime]) -> pd.DataFrame:
        """The decisions of each given partition made after its time in ``after``: the gate runs a publish never
        carried (a run stopped between the gate and its publish, then a newer gate run). One query per 900
        partitions, bounded below by the chunk's earliest time."""
        return rows_after(self.engine, decisions.c.decided_at, after, order_by=decisions.c.id)

    # ---- the gate's write ----------------------------------------------------------------------------
    def apply(self, promoted: pd.DataFrame, decided: pd.DataFrame, run_id: str, retired: Sequence[str] = ()) -> None:
        """Insert the new champions and every decision in one transaction; the series ``retired`` lose their
        champion (their pointer: the champion's row stays in the history, and the decision says why), so that
        their baseline serves them until a challenger passes."""
        self._check_writable()
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            if len(promoted):
                rows = promoted.assign(promoted_at=now, run_id=run_id)
                for chunk in in_chunks(_records(rows, CHAMPION_COLUMNS), 5000):
                    conn.execute(champions.insert(), list(chunk))
            if len(decided):
                rows = decided.assign(decided_at=now, run_id=run_id)
                for chunk in in_chunks(_records(rows, DECISION_COLUMNS), 5000):
                    conn.execute(decisions.insert(), list(chunk))
            self._catch_up(conn)
            for chunk in in_chunks(list(retired), 900):
                conn.execute(champions_current.delete().where(champions_current.c.series_key.in_(chunk)))

    def copy_artifacts(self, challengers: pd.DataFrame, folder: str) -> pd.DataFrame:
        """Copy promoted models' bytes into one production bundle; returns the rows pointing at the copies."""
        self._check_writable()
        assert self.lake is not None
        if challengers.empty:
            return challengers
        blobs: list[bytes] = []
        offsets, sizes = [], []
        position = 0
        copied: dict[tuple[str, int, int], int] = {}  # a model many series share (global) is copied once
        for uri, group in challengers.groupby("artifact_uri", sort=False):
            data = self.lake.fs.cat_file(self.lake.path(self.lake.relative(uri)))
            for _, row in group.iterrows():
                start, size = int(row["artifact_offset"]), int(row["artifact_size"])
                key = (uri, start, size)
                if key not in copied:
                    copied[key] = position
                    blobs.append(data[start : start + size])
                    position += size
                offsets.append((row.name, copied[key]))
                sizes.append((row.name, size))
        self.lake.write_bytes(b"".join(blobs), folder, "champions.bin")
        out = challengers.copy()
        out["source_artifact_uri"] = out["artifact_uri"]
        out["artifact_uri"] = self.lake.full_uri(folder, "champions.bin")
        out["artifact_offset"] = pd.Series(dict(offsets))
        out["artifact_size"] = pd.Series(dict(sizes))
        return out

    def prune_copies(self, promoted_before: dt.datetime) -> int:
        """Delete the production bundle files written before ``promoted_before`` that no current champion (of any
        partition) points at: the copies of champions since replaced. Their champion rows stay, as the record of
        who served when (``promotion_decisions`` says why). Returns the files deleted."""
        self._check_writable()
        assert self.lake is not None, "pruning deletes bundle files: the registry needs its lake"
        with self.engine.begin() as conn:
            self._catch_up(conn)
            old = set(conn.execute(sa.select(champions.c.artifact_uri).distinct()
                                   .where(champions.c.promoted_at < promoted_before)).scalars())
            current = (sa.select(champions.c.artifact_uri).distinct()
                       .join(champions_current, champions_current.c.champion_id == champions.c.id))
            needed = set(conn.execute(current).scalars())
        # the rows stay, so an earlier run's deleted files are among them: only the files still there count
        unused = [path for path in sorted(self.lake.relative(uri) for uri in old - needed) if self.lake.exists(path)]
        for path in unused:
            self.lake.delete_file(path)
        return len(unused)

    def restore(self, sources: pd.DataFrame, folder: str, run_id: str) -> tuple[pd.DataFrame, dict[str, str]]:
        """Heal champions whose production bytes cannot be loaded: copy each one's model again from the training
        registry (``sources``: its ``model_versions`` rows of the champions' versions), as new champion rows of
        the same versions. Returns (the restored rows, {series_key: why not} for models that cannot be loaded
        from the training registry either: those series stay on the baseline until a challenger passes)."""
        from mm_assets.parallel.bundles import BundleCache, BundleError

        self._check_writable()
        assert self.lake is not None
        if sources.empty:
            return sources, {}
        cache, ok, failed = BundleCache(self.lake), [], {}
        for index, row in sources.iterrows():
            try:
                cache.model(row["artifact_uri"], int(row["artifact_offset"]), int(row["artifact_size"]))
                ok.append(index)
            except BundleError as exc:
                failed[row["series_key"]] = str(exc)
        rows = sources.loc[ok]
        if rows.empty:
            return rows, failed
        copied = self.copy_artifacts(rows.set_index(pd.RangeIndex(len(rows))), folder)
        self.apply(copied, pd.DataFrame(), run_id)
        return copied, failed


def newest_gate_run(decided: pd.DataFrame) -> pd.DataFrame:
    """Of decision rows (``decisions``), those of each partition's newest gate run (its highest decision id)."""
    if not len(decided):
        return decided
    newest = decided.groupby("partition_key")["id"].transform("max")
    newest_run = decided.loc[decided["id"] == newest, ["partition_key", "run_id"]]
    return decided.merge(newest_run, on=["partition_key", "run_id"])
