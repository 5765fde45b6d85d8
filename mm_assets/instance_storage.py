"""The local Dagster instance's run and event storage: Dagster's SQLite files, with database connections kept open.

Why: Dagster's SQLite storages build a new SQLAlchemy engine, open the database file, and close both again for
every statement batch they run. The event log does this up to three times for each event (the run's database,
then the cross-run index), and it reflects the schema again for every asset event. On 2 cores a stored event cost
about 10 ms, four times the SQL it runs. A day's cycle at 2,000 series stores about 250 events, so Dagster's
bookkeeping was a fifth of the cycle; every backfill of day partitions pays the same per event.

These subclasses change only how connections are made. What is stored, and where, stays the same:

- one engine per database file, kept for the few files in use (the run index, the event index, the current runs),
  so connections and compiled statements are reused. Every statement batch still runs in its own committed
  transaction;
- an engine is dropped when its file is deleted or replaced (a wipe, a run deleted by another process), and when
  the process has forked (a child never uses its parent's connections);
- an engine retired because newer files are in use is closed on a thread of its own: closing the last connection
  to a file in write-ahead-log mode copies the log into the file and waits for the disk twice, and that wait
  (2-5 ms a run on a virtual disk) fell on the first event of a later run. The same checkpoint is made a moment
  later; until then the log holds the events and every reader sees them. A wipe, an upgrade and ``dispose`` wait
  for the closes still queued;
- the schema questions the event log asks for every asset event and asset read (does this table, this column
  exist, is this data migration done?) are answered from memory once the answer is yes. They cannot become no
  while the storage runs, except by a wipe or an upgrade, and those clear the memory. The run storage's alike
  (asked two or three times for every run event, 0.6 ms each), and whether a job's or a plan's snapshot is
  stored (asked for every run; a snapshot is named by its content and deleted only by a wipe); its memory is
  cleared also when its file is replaced;
- a new run's file is a copy of a blank one, made once per process with the tables, write-ahead log and migration
  stamp Dagster gives it: Dagster reads its migration scripts twice for every run (~0.35 s) and creates the
  tables one statement at a time (~10 ms), more than the run's events;
- two statements Dagster runs for most events are written the cheap way round, with the same result: an asset
  event updates its asset's row first and inserts it only if there is none (Dagster inserts first and, for every
  event but an asset's first, catches the duplicate-key error and updates); the lookup of a dynamic partition,
  asked dozens of times per run, is one prepared statement instead of a query built anew each time.

The files are the ones Dagster's default SQLite storage writes (``<home>/history/runs.db``,
``<home>/history/runs/<run_id>.db`` and ``index.db``), so a home switched to these classes keeps its history, and
Dagster's own classes and tools read it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import sqlite3
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster import StringSource
from dagster._core.storage.event_log.schema import (
    AssetKeyTable,
    DynamicPartitionsTable,
    SqlEventLogStorageMetadata,
)
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sql import create_engine, get_alembic_config
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS

OPEN_EVENT_LOGS = 4  # event-log files kept open: the index, the current run, a few runs the UI or a sensor reads

logger = logging.getLogger(__name__)


def history_directory(dagster_home: str) -> str:
    """Where Dagster's default SQLite storage keeps the runs of an instance home (``runs.db``)."""
    return os.path.join(dagster_home, "history")


def event_logs_directory(dagster_home: str) -> str:
    """Where Dagster's default SQLite storage keeps the event logs of an instance home."""
    return os.path.join(history_directory(dagster_home), "runs")


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


@functools.cache
def _event_log_migrations() -> ScriptDirectory:
    """Dagster's event-log migration scripts (the newest names the revision a new file is stamped with)."""
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


def _set_up_run_file(conn) -> bool:
    """Give an empty run file Dagster's tables, write-ahead log and newest migration stamp; False (and nothing
    done) when it is stamped already. The write-ahead log is switched on first, so the tables are made without a
    journal file synced per statement. A file with tables and no stamp (left by a crash) fails here."""
    context = MigrationContext.configure(conn)
    if context.get_current_revision():
        return False
    conn.execute(sa.text("PRAGMA journal_mode=WAL;"))
    SqlEventLogStorageMetadata.create_all(conn, checkfirst=False)
    context.stamp(_event_log_migrations(), "head")
    conn.commit()
    return True


@functools.cache
def _blank_run_file() -> bytes:
    """The bytes of a run's event-log file as Dagster sets it up, before its first event (made once per process,
    by the installed Dagster's schema and migrations)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "blank.db")
        engine = create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                _set_up_run_file(conn)
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the file itself
        finally:
            engine.dispose()
        with open(path, "rb") as f:
            return f.read()


def _place_blank_run_file(path: str) -> bool:
    """Create ``path`` as a copy of the blank run file, whole or not at all; True when this call placed it.

    The copy is written beside it and linked into place, so a reader (the UI, another process) never opens a
    half-written file, and a file another process made first is kept (and set up as usual, if it needs it). Where
    links are not supported nothing is placed (Dagster's set-up follows)."""
    part = f"{path}.{os.getpid()}.{threading.get_ident()}.part"
    with open(part, "wb") as f:
        f.write(_blank_run_file())
    try:
        os.link(part, path)
        return True
    except OSError:  # FileExistsError: made by another process; others: no hard links here
        return False
    finally:
        os.unlink(part)


_HAS_DYNAMIC_PARTITION = (
    sa.select(DynamicPartitionsTable.c.partition)
    .where(DynamicPartitionsTable.c.partitions_def_name == sa.bindparam("name"),
           DynamicPartitionsTable.c.partition == sa.bindparam("key"))
    .limit(1)
)


def _yes_remembered(known: set[str], name: str, ask) -> bool:
    """``ask()`` about ``name`` until it answers yes, then yes from ``known`` (a schema fact that cannot become
    no while the storage runs, but by a wipe or an upgrade, which clear ``known``)."""
    if name in known:
        return True
    found = ask()
    if found:
        known.add(name)
    return found


def _write_ahead_log_sync(dbapi_connection, _record) -> None:
    """Dagster's SQLite files are in write-ahead-log mode; SQLite's advice for that mode is ``synchronous=NORMAL``:
    a commit does not wait for the disk (the log is synced at checkpoints), the database cannot be corrupted by a
    crash, and a power cut may lose only the last events before it."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class BackgroundCloser:
    """Disposes retired engines on a daemon thread, so that the checkpoint SQLite makes when the last connection
    to a file closes does not wait for the disk on the thread storing events (see the module docstring).

    The thread is started when there is something to close and ends after ``idle_seconds`` without work (a
    process holding many instances keeps no idle threads); a forked child starts its own and never closes its
    parent's engines (what the parent queued is the parent's). ``drain`` waits until everything queued is closed."""

    def __init__(self, idle_seconds: float = 30.0):
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue = queue.Queue()
        self._working = False  # a thread is taking from the queue

    def close(self, engine: sa.engine.Engine) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._queue, self._working = os.getpid(), queue.Queue(), False
            self._queue.put(engine)
            if not self._working:
                self._working = True
                threading.Thread(target=self._work, args=(self._queue,), name="mm-assets-sqlite-closer",
                                 daemon=True).start()

    def _work(self, work: queue.Queue) -> None:
        while True:
            try:
                engine = work.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if work.empty():  # else a close came in meanwhile: this thread takes it
                        if work is self._queue:
                            self._working = False
                        return
                continue
            try:
                engine.dispose()
            except Exception:  # a file deleted since: nothing left to close
                logger.debug("closing a retired engine failed", exc_info=True)
            finally:
                work.task_done()

    def drain(self) -> None:
        with self._lock:
            work = self._queue if self._pid == os.getpid() else None
        if work is not None:
            work.join()


class KeptEngines:
    """SQLAlchemy engines by database file, at most ``limit`` (least recently used dropped first, closed in the
    background).

    An engine is handed out again only while its file is the one it opened (same device and inode) and only in the
    process that made it."""

    def __init__(self, limit: int, pool_size: int):
        self._limit = limit
        self._pool_size = pool_size
        self._engines: OrderedDict[str, list] = OrderedDict()  # path -> [engine, identity of the file it opened]
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closer = BackgroundCloser()
        self.opened = 0  # engines made so far: a change means a file was opened anew (new, replaced, forked)

    def get(self, path: str, conn_string: str) -> tuple[sa.engine.Engine, bool]:
        """The file's engine, and whether the file exists (False: it is new, or was deleted since)."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connections are not ours to use or to close
                self._drop(close=False)
                self._pid = os.getpid()
            identity = _file_identity(path)
            entry = self._engines.get(path)
            if entry is not None:
                # the same device and inode is the same file: the kept connection holds it open, so its inode
                # number cannot have been given to another file
                if identity is not None and entry[1] == identity:
                    self._engines.move_to_end(path)
                    return entry[0], True
                entry[0].dispose()
                del self._engines[path]
            engine = create_engine(conn_string, pool_size=self._pool_size, max_overflow=8,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            sa.event.listen(engine, "connect", _write_ahead_log_sync)
            engine.connect().close()  # opens (creating if need be) the file; the pool keeps it open
            self._engines[path] = [engine, _file_identity(path)]
            self.opened += 1
            while len(self._engines) > self._limit:
                _, (old, _) = self._engines.popitem(last=False)
                # none of its connections is in use: the event log's uses hold its lock (the run storage keeps one
                # file, so never retires one)
                self._closer.close(old)
            return engine, identity is not None

    def _drop(self, close: bool = True) -> None:
        for engine, _ in self._engines.values():
            engine.dispose(close=close)
        self._engines.clear()

    def forget(self) -> None:
        """Close every engine, those kept and those retired but still queued for closing."""
        with self._lock:
            self._drop()
        self._closer.drain()

    def discard(self, path: str) -> None:
        """Close the file's engine, if one is kept (its file is about to be deleted)."""
        with self._lock:
            entry = self._engines.pop(path, None)
        if entry is not None:
            entry[0].dispose()

    def __contains__(self, path: str) -> bool:
        return path in self._engines

    def __len__(self) -> int:
        return len(self._engines)


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with its connections kept open (see the module docstring).

    ``dagster.yaml``::

        event_log_storage:
          module: mm_assets.instance_storage
          class: PooledSqliteEventLogStorage
          config:
            dagster_home: {env: DAGSTER_HOME}
    """

    def __init__(self, dagster_home: str, inst_data=None):
        # one connection at a time is used: every use holds the storage's lock
        self._kept = KeptEngines(OPEN_EVENT_LOGS, pool_size=1)
        self._known_tables: set[str] = set()
        self._known_asset_key_columns: set[str] = set()
        self._known_secondary_indexes: set[str] = set()
        super().__init__(event_logs_directory(dagster_home), inst_data)

    @classmethod
    def config_type(cls):
        return {"dagster_home": StringSource}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        with self._db_lock:
            path = self.path_for_shard(shard)
            placed = shard != INDEX_SHARD_NAME and not os.path.exists(path) and _place_blank_run_file(path)
            engine, exists = self._kept.get(path, self.conn_string_for_shard(shard))
            if placed:  # set up as the blank is
                self._initialized_dbs.add(shard)
            elif not exists:  # new, or deleted since it was set up: set it up (again)
                self._initialized_dbs.discard(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _initdb(self, engine, for_index_shard: bool = False) -> None:
        """Set up a run's event-log file that is not a copy of the blank one (an empty file a reader created) as
        Dagster does, reading Dagster's migration scripts once per process. A file set up already is left as it
        is; the index file, and any error (another process setting the same file up, a file left half set up by
        a crash), take Dagster's own path, with its retries."""
        if for_index_shard:
            super()._initdb(engine, for_index_shard=True)
            return
        try:
            with engine.connect() as conn:
                _set_up_run_file(conn)
        except (sa.exc.DatabaseError, sqlite3.DatabaseError):
            super()._initdb(engine)

    def _store_asset_event(self, conn, event, event_id: int) -> None:
        """Dagster's row of the event's asset, updated first and inserted only when there is none (the same row
        as Dagster's insert-first, without an error caught for every event but the asset's first)."""
        if not (event.dagster_event and event.dagster_event.asset_key):
            return
        values = self._get_asset_entry_values(event, event_id, self._has_asset_key_index_cols_on_connection(conn))
        if not values:
            return
        asset_key = event.dagster_event.asset_key.to_string()
        update = AssetKeyTable.update().values(**values).where(AssetKeyTable.c.asset_key == asset_key)
        if conn.execute(update).rowcount:
            return
        try:
            conn.execute(AssetKeyTable.insert().values(asset_key=asset_key, **values))
        except sa.exc.IntegrityError:  # inserted by another process in between
            conn.execute(update)

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        self._check_partitions_table()
        with self.index_connection() as conn:
            found = conn.execute(_HAS_DYNAMIC_PARTITION, {"name": partitions_def_name, "key": partition_key})
            return found.first() is not None

    def has_table(self, table_name: str) -> bool:
        return _yes_remembered(self._known_tables, table_name, functools.partial(super().has_table, table_name))

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        return _yes_remembered(self._known_asset_key_columns, column_name,
                               functools.partial(super()._has_asset_key_col_on_connection, conn, column_name))

    def has_secondary_index(self, name: str) -> bool:
        """Whether a data migration of the index is done: asked twice by every asset-record read."""
        return _yes_remembered(self._known_secondary_indexes, name, functools.partial(super().has_secondary_index, name))

    def _forget(self) -> None:
        with self._db_lock:
            self._kept.forget()
        self._known_tables.clear()
        self._known_asset_key_columns.clear()
        self._known_secondary_indexes.clear()

    def wipe(self) -> None:
        self._forget()
        super().wipe()

    def delete_events(self, run_id: str) -> None:
        """Dagster's deletion, then the run's own file: emptied, it kept its size (a full re-ingest's run file is
        megabytes), and a run deleted is never written again."""
        super().delete_events(run_id)
        path = self.path_for_shard(run_id)
        with self._db_lock:
            self._kept.discard(path)
            self._initialized_dbs.discard(run_id)
            for name in (path, path + "-wal", path + "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)

    def upgrade(self) -> None:
        self._forget()
        super().upgrade()
        self._forget()

    def dispose(self) -> None:
        super().dispose()
        self._forget()


class PooledSqliteRunStorage(SqliteRunStorage):
    """``SqliteRunStorage`` (``<home>/history/runs.db``) with its connections kept open.

    ``dagster.yaml``::

        run_storage:
          module: mm_assets.instance_storage
          class: PooledSqliteRunStorage
          config:
            dagster_home: {env: DAGSTER_HOME}
    """

    def __init__(self, conn_string: str, inst_data=None):
        # no lock around its uses (the webserver's threads read runs at once): a small pool
        self._kept = KeptEngines(1, pool_size=2)
        self._path = sa.engine.make_url(conn_string).database
        self._known: set[str] = set()  # schema facts and snapshot ids known to be there
        self._known_while = 0  # ... in the file of this engine (KeptEngines.opened)
        super().__init__(conn_string, inst_data)

    @classmethod
    def config_type(cls):
        return {"dagster_home": StringSource}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(history_directory(config_value["dagster_home"]), inst_data=inst_data)

    @contextmanager
    def connect(self) -> Iterator:
        engine, _ = self._kept.get(self._path, self._conn_string)
        with engine.connect() as conn, conn.begin():
            yield conn

    def _remembered(self, fact: str, ask) -> bool:
        """``ask()`` until it answers yes, then yes from memory while the file is the same one (see the module
        docstring)."""
        self._kept.get(self._path, self._conn_string)  # notices a file replaced since (a stat)
        if self._known_while != self._kept.opened:  # another file (replaced, or new): ask it again
            self._known.clear()
            self._known_while = self._kept.opened
        return _yes_remembered(self._known, fact, ask)

    def has_run_stats_index_cols(self) -> bool:
        return self._remembered("run_stats_index_cols", super().has_run_stats_index_cols)

    def has_bulk_actions_selector_cols(self) -> bool:
        return self._remembered("bulk_actions_selector_cols", super().has_bulk_actions_selector_cols)

    def has_backfill_id_column(self) -> bool:
        return self._remembered("backfill_id_column", super().has_backfill_id_column)

    def has_bulk_action_job_name_column(self) -> bool:
        return self._remembered("bulk_action_job_name_column", super().has_bulk_action_job_name_column)

    def has_backfill_tags_table(self) -> bool:
        return self._remembered("backfill_tags_table", super().has_backfill_tags_table)

    def has_built_index(self, migration_name: str) -> bool:
        return self._remembered(f"index:{migration_name}", functools.partial(super().has_built_index, migration_name))

    def has_job_snapshot(self, job_snapshot_id: str) -> bool:
        return self._remembered(f"snapshot:{job_snapshot_id}",
                                functools.partial(super().has_job_snapshot, job_snapshot_id))

    def has_execution_plan_snapshot(self, execution_plan_snapshot_id: str) -> bool:
        return self._remembered(f"snapshot:{execution_plan_snapshot_id}",
                                functools.partial(super().has_execution_plan_snapshot, execution_plan_snapshot_id))

    def _forget(self) -> None:
        self._known.clear()

    def wipe(self) -> None:
        self._forget()
        super().wipe()
        self._forget()

    def upgrade(self) -> None:
        self._forget()
        super().upgrade()
        self._forget()

    def migrate(self, *args, **kwargs) -> None:
        self._forget()
        super().migrate(*args, **kwargs)
        self._forget()

    def optimize(self, *args, **kwargs) -> None:
        self._forget()
        super().optimize(*args, **kwargs)
        self._forget()

    def dispose(self) -> None:
        super().dispose()
        self._kept.forget()
        self._forget()


def instance_config(dagster_home) -> dict:
    """The storage entries of ``dagster.yaml`` with the home written out, for an instance opened from a directory
    that is not ``$DAGSTER_HOME`` (the benchmark's, a test's)."""
    config = {"config": {"dagster_home": str(dagster_home)}}
    return {"run_storage": {"module": __name__, "class": PooledSqliteRunStorage.__name__, **config},
            "event_log_storage": {"module": __name__, "class": PooledSqliteEventLogStorage.__name__, **config}}
