"""The local instance's run and event storage (``mm_assets.instance_storage``): Dagster's files, connections kept open.

What could go wrong with connections kept open, each tested here: the files are not the ones Dagster's default
storage reads and writes; a connection keeps writing to a file another process has deleted; a forked child
uses its parent's connection; the schema answers kept in memory outlive a wipe.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

from mm_assets.instance_storage import (
    OPEN_EVENT_LOGS,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    event_logs_directory,
    history_directory,
    instance_config,
)

ROOT = Path(__file__).resolve().parents[1]


@dg.asset
def numbers() -> int:
    return 1


def _log(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(error_info=None, level=20, user_message=message, run_id=run_id, timestamp=time.time())


def _messages(storage, run_id: str) -> list[str]:
    return [e.user_message for e in storage.get_logs_for_run(run_id)]


def test_the_projects_instance_uses_it_on_the_files_of_dagsters_default_storage(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    # a home that Dagster's default storage wrote first
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert type(instance.run_storage) is SqliteRunStorage
        before = dg.materialize([numbers], instance=instance).run_id
    # then the project's mm_assets/local_instance.yaml, as make demo / make ui install it ($DAGSTER_HOME: the home)
    (home / "dagster.yaml").write_text((ROOT / "mm_assets" / "local_instance.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage) is PooledSqliteEventLogStorage
        assert type(instance.run_storage) is PooledSqliteRunStorage
        assert instance.get_latest_materialization_event(numbers.key).run_id == before  # the history is kept
        assert instance.get_run_by_id(before).is_success
        after = dg.materialize([numbers], instance=instance).run_id
        assert instance.get_latest_materialization_event(numbers.key).run_id == after
    runs = Path(event_logs_directory(str(home)))
    assert (runs / f"{after}.db").exists() and (runs / "index.db").exists()
    plain = SqliteEventLogStorage(str(runs))  # Dagster's own class reads what the pooled one wrote
    try:
        kinds = {e.dagster_event.event_type_value for e in plain.get_logs_for_run(after) if e.is_dagster_event}
        assert {"ASSET_MATERIALIZATION", "STEP_SUCCESS", "PIPELINE_SUCCESS"} <= kinds
        assert plain.get_latest_materialization_events([numbers.key])[numbers.key].run_id == after
    finally:
        plain.dispose()
    plain_runs = SqliteRunStorage.from_local(history_directory(str(home)))
    assert {r.run_id for r in plain_runs.get_runs()} == {before, after}
    assert plain_runs.get_runs(dg.RunsFilter(run_ids=[after]))[0].is_success


def test_instance_config_writes_the_home_out(tmp_path):
    home = tmp_path / "a home: with 'quotes'"
    home.mkdir()
    _home_with(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage) is PooledSqliteEventLogStorage
        assert type(instance.run_storage) is PooledSqliteRunStorage
        dg.materialize([numbers], instance=instance)
    assert (Path(event_logs_directory(str(home))) / "index.db").exists()


def test_a_file_deleted_by_another_process_is_not_written_through_the_kept_connection(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    other = SqliteEventLogStorage(event_logs_directory(str(tmp_path)))
    try:
        storage.store_event(_log("run-a", "first"))
        assert _messages(other, "run-a") == ["first"]
        other.wipe()  # another process deletes every run's file (a wipe from the CLI) ...
        storage.store_event(_log("run-a", "second"))  # ... the file is gone: a new one
        assert _messages(other, "run-a") == ["second"]
        other.wipe()
        other.store_event(_log("run-a", "third"))  # ... another file now has the name
        storage.store_event(_log("run-a", "fourth"))
        assert _messages(other, "run-a") == ["third", "fourth"]
        assert _messages(storage, "run-a") == ["third", "fourth"]
    finally:
        storage.dispose()
        other.dispose()


def test_its_own_wipe_forgets_connections_and_schema_answers(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event(_log("run-a", "first"))
        assert storage.has_table("asset_event_tags")
        assert storage.has_secondary_index("asset_key_table")  # a data migration a new index file has done
        storage.wipe()
        assert storage.path_for_shard("run-a") not in storage._kept  # its file was deleted; the index was emptied, not deleted
        assert not storage._known_secondary_indexes
        storage.store_event(_log("run-a", "second"))
        assert _messages(storage, "run-a") == ["second"]
    finally:
        storage.dispose()


def _child_stores(storage: PooledSqliteEventLogStorage, answer) -> None:
    path = storage.path_for_shard("run-a")
    inherited = storage._kept._engines[path][0]
    storage.store_event(_log("run-a", "from the child"))
    answer.put(storage._kept._engines[path][0] is not inherited)


def test_a_forked_child_opens_its_own_connections(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event(_log("run-a", "from the parent"))
        context = multiprocessing.get_context("fork")
        answer = context.Queue()
        child = context.Process(target=_child_stores, args=(storage, answer))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert answer.get(timeout=5) is True  # the child did not use the parent's engine
        storage.store_event(_log("run-a", "from the parent again"))
        assert _messages(storage, "run-a") == ["from the parent", "from the child", "from the parent again"]
    finally:
        storage.dispose()


def test_only_a_few_files_stay_open(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        for i in range(OPEN_EVENT_LOGS + 5):
            storage.store_event(_log(f"run-{i}", "x"))
        assert len(storage._kept) == OPEN_EVENT_LOGS
        assert all(_messages(storage, f"run-{i}") == ["x"] for i in range(OPEN_EVENT_LOGS + 5))
    finally:
        storage.dispose()


def test_a_retired_runs_file_is_closed_on_another_thread_and_checkpointed(tmp_path, monkeypatch):
    """Closing the last connection to a file copies its write-ahead log into it and waits for the disk: done on the
    closer's thread, not on the one storing the next run's events; ``dispose`` waits for it."""
    import threading

    import sqlalchemy as sa

    closed_on = []
    dispose = sa.engine.Engine.dispose

    def recorded(engine, close=True):
        closed_on.append((str(engine.url), threading.current_thread().name))
        return dispose(engine, close)

    monkeypatch.setattr(sa.engine.Engine, "dispose", recorded)
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    first = Path(storage.path_for_shard("run-0"))
    try:
        for i in range(OPEN_EVENT_LOGS + 1):  # the index and run-0 .. run-N: run-0's file is retired
            storage.store_event(_log(f"run-{i}", "x"))
        storage._kept._closer.drain()
        assert [name for url, name in closed_on if url.endswith("run-0.db")] == ["mm-assets-sqlite-closer"]
        assert not Path(f"{first}-wal").exists()  # checkpointed into the file: the last connection closed
        plain = SqliteEventLogStorage(event_logs_directory(str(tmp_path)))
        try:
            assert _messages(plain, "run-0") == ["x"]
        finally:
            plain.dispose()
        storage.store_event(_log("run-0", "y"))  # opened again
        assert _messages(storage, "run-0") == ["x", "y"]
    finally:
        storage.dispose()
    assert not any(Path(f"{storage.path_for_shard(f'run-{i}')}-wal").exists() for i in range(OPEN_EVENT_LOGS + 1))


def test_the_closers_thread_ends_when_idle_and_starts_again_for_the_next_close(tmp_path):
    import threading

    from mm_assets.instance_storage import BackgroundCloser, create_engine

    def closers() -> set:
        return {t for t in threading.enumerate() if t.name == "mm-assets-sqlite-closer" and t.is_alive()}

    closer = BackgroundCloser(idle_seconds=1.0)
    for round_ in range(2):
        engine = create_engine(f"sqlite:///{tmp_path}/x{round_}.db")
        engine.connect().close()
        pool = engine.pool
        assert pool.checkedin() == 1  # the file is open
        others = closers()  # other closers of the process (earlier tests' instances) may end meanwhile: not counted
        closer.close(engine)
        mine = closers() - others
        assert len(mine) == 1  # the close started a thread (again, in the second round)
        closer.drain()
        assert pool.checkedin() == 0  # closed
        deadline = time.monotonic() + 5
        while any(t.is_alive() for t in mine) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.is_alive() for t in mine)  # no thread left waiting


def test_run_storage_reads_runs_written_by_another_process_and_survives_a_replaced_file(tmp_path):
    home = tmp_path
    with dg.DagsterInstance.from_config(str(_home_with(home))) as instance:
        first = dg.materialize([numbers], instance=instance).run_id
        pooled = instance.run_storage
        assert type(pooled) is PooledSqliteRunStorage
        other = SqliteRunStorage.from_local(history_directory(str(home)))  # another process's view
        assert other.get_runs(dg.RunsFilter(run_ids=[first]))[0].is_success
        # another process replaces runs.db (a restored backup, a home wiped by hand): the kept engine is dropped
        runs_db = Path(history_directory(str(home))) / "runs.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{runs_db}{suffix}").unlink(missing_ok=True)
        SqliteRunStorage.from_local(history_directory(str(home)))
        assert pooled.get_runs(dg.RunsFilter(run_ids=[first])) == []
        second = dg.materialize([numbers], instance=instance).run_id
        assert [r.run_id for r in SqliteRunStorage.from_local(history_directory(str(home))).get_runs()] == [second]


def _home_with(home: Path) -> Path:
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}, **instance_config(home)}))
    return home


def test_commits_do_not_wait_for_the_disk_in_write_ahead_log_mode(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event(_log("run-a", "x"))
        with storage.run_connection("run-a") as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        storage.dispose()


def _file_setup(path: Path) -> tuple:
    """What a run's event-log file is, apart from its events: schema, journal mode, migration stamp."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        schema = sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall(),
                        key=lambda row: (row[0], row[1]))
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        stamp = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return schema, mode, stamp


def test_a_new_runs_file_is_set_up_as_dagster_sets_it_up(tmp_path):
    """The pooled storage sets a run's file up without reading Dagster's migrations again: the same tables,
    indexes, write-ahead log and migration stamp as Dagster's own class gives it, and Dagster's class then
    reads and writes it without setting it up again."""
    ours = PooledSqliteEventLogStorage(str(tmp_path / "ours"))
    theirs = SqliteEventLogStorage(event_logs_directory(str(tmp_path / "theirs")))
    try:
        for storage in (ours, theirs):
            storage.store_event(_log("run-a", "first"))
        ours_file = Path(ours.path_for_shard("run-a"))
        theirs_file = Path(theirs.path_for_shard("run-a"))
        assert _file_setup(ours_file) == _file_setup(theirs_file)
        assert _file_setup(ours_file)[1] == "wal" and len(_file_setup(ours_file)[2]) == 1
        ours.store_event(_log("run-a", "second"))  # set up already: left as it is
        assert _messages(ours, "run-a") == ["first", "second"]
    finally:
        ours.dispose()
        theirs.dispose()
    plain = SqliteEventLogStorage(event_logs_directory(str(tmp_path / "ours")))
    try:
        plain.store_event(_log("run-a", "third"))
        assert _messages(plain, "run-a") == ["first", "second", "third"]
    finally:
        plain.dispose()


def test_a_runs_file_left_half_set_up_is_finished_by_dagsters_path(tmp_path):
    """A crash between making the tables and stamping them leaves a file with tables and no stamp: the fast
    path cannot create them again, and Dagster's own path finishes the file."""
    import sqlite3

    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event(_log("run-b", "before"))
        path = Path(storage.path_for_shard("run-b"))
    finally:
        storage.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE alembic_version")
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event(_log("run-b", "after"))
        assert _messages(storage, "run-b") == ["before", "after"]
        assert len(_file_setup(path)[2]) == 1  # stamped again
    finally:
        storage.dispose()


def test_a_runs_file_another_process_made_first_is_kept(tmp_path):
    """A new run's file is a copy of a blank one, linked into place only if no file has the name yet: one made
    by another process first (Dagster's own class here) keeps its events, and no copy is left behind."""
    ours = PooledSqliteEventLogStorage(str(tmp_path))
    theirs = SqliteEventLogStorage(event_logs_directory(str(tmp_path)))
    try:
        theirs.store_event(_log("run-c", "theirs"))
        ours.store_event(_log("run-c", "ours"))
        ours.store_event(_log("run-d", "only ours"))
        assert _messages(theirs, "run-c") == ["theirs", "ours"]
        assert _messages(theirs, "run-d") == ["only ours"]
        assert not list(Path(event_logs_directory(str(tmp_path))).glob("*.part"))
    finally:
        ours.dispose()
        theirs.dispose()


def _asset_event(run_id: str, kind: str, asset: str, partition: str | None = None) -> EventLogEntry:
    from dagster._core.events import (
        AssetMaterializationPlannedData,
        AssetObservationData,
        DagsterEvent,
        DagsterEventType,
        StepMaterializationData,
    )

    key = dg.AssetKey(asset)
    data = {"ASSET_MATERIALIZATION": lambda: StepMaterializationData(dg.AssetMaterialization(key, partition=partition)),
            "ASSET_OBSERVATION": lambda: AssetObservationData(dg.AssetObservation(key, partition=partition)),
            "ASSET_MATERIALIZATION_PLANNED": lambda: AssetMaterializationPlannedData(key, partition=partition)}[kind]()
    event = DagsterEvent(DagsterEventType(kind).value, "job", event_specific_data=data, step_key="step")
    return EventLogEntry(error_info=None, level=20, user_message="", run_id=run_id, timestamp=time.time(),
                         step_key="step", job_name="job", dagster_event=event)


def test_an_assets_row_is_the_one_dagsters_class_writes(tmp_path):
    """The asset's row (last materialization, last run, newest event time) is updated first and inserted only
    when missing: after the same events, it is what Dagster's insert-first writes, and Dagster reads it."""
    import sqlite3

    ours = PooledSqliteEventLogStorage(str(tmp_path / "ours"))
    theirs = SqliteEventLogStorage(event_logs_directory(str(tmp_path / "theirs")))
    events = [_asset_event("run-1", "ASSET_MATERIALIZATION_PLANNED", "a", "s1"),
              _asset_event("run-1", "ASSET_MATERIALIZATION", "a", "s1"),
              _asset_event("run-1", "ASSET_OBSERVATION", "b"),
              _asset_event("run-2", "ASSET_MATERIALIZATION_PLANNED", "a", "s2"),
              _asset_event("run-2", "ASSET_MATERIALIZATION", "a", "s2"),
              _asset_event("run-2", "ASSET_OBSERVATION", "a")]

    def rows(storage) -> list:
        storage.dispose()
        with sqlite3.connect(storage.path_for_shard("index")) as conn:
            return conn.execute("SELECT asset_key, last_materialization, last_run_id, last_materialization_timestamp "
                                "FROM asset_keys ORDER BY asset_key").fetchall()

    try:
        for storage in (ours, theirs):
            for event in events:
                storage.store_event(event)
        assert rows(ours) == rows(theirs)
        assert [r[0] for r in rows(ours)] == ['["a"]', '["b"]']
        assert rows(ours)[0][2] == "run-2" and rows(ours)[1][1] is None  # an observation is no materialization
        plain = SqliteEventLogStorage(event_logs_directory(str(tmp_path / "ours")))
        assert plain.get_latest_materialization_events([dg.AssetKey("a")])[dg.AssetKey("a")].run_id == "run-2"
        plain.dispose()
    finally:
        ours.dispose()
        theirs.dispose()


def test_a_dynamic_partition_is_found_as_dagster_finds_it(tmp_path):
    ours = PooledSqliteEventLogStorage(str(tmp_path / "ours"))
    theirs = SqliteEventLogStorage(event_logs_directory(str(tmp_path / "theirs")))
    try:
        for storage in (ours, theirs):
            storage.add_dynamic_partitions("stores", ["s1", "s2"])
            storage.add_dynamic_partitions("other", ["s3"])
        questions = [("stores", "s1"), ("stores", "s2"), ("stores", "s3"), ("other", "s3"), ("other", "s1"),
                     ("none", "s1"), ("stores", "S1")]
        answers = [ours.has_dynamic_partition(*q) for q in questions]
        assert answers == [theirs.has_dynamic_partition(*q) for q in questions]
        assert answers == [True, True, False, True, False, False, False]
        ours.delete_dynamic_partition("stores", "s1")
        assert not ours.has_dynamic_partition("stores", "s1") and ours.has_dynamic_partition("stores", "s2")
    finally:
        ours.dispose()
        theirs.dispose()


def test_a_done_data_migration_is_asked_once_and_one_not_done_every_time(tmp_path, monkeypatch):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event(_log("run-a", "x"))
        asked = []
        real = SqliteEventLogStorage.has_secondary_index
        monkeypatch.setattr(SqliteEventLogStorage, "has_secondary_index",
                            lambda self, name: asked.append(name) or real(self, name))
        answers = [storage.has_secondary_index(name) for name in ("asset_key_table", "asset_key_table", "none", "none")]
        assert answers == [True, True, False, False]
        assert asked == ["asset_key_table", "none", "none"]
    finally:
        storage.dispose()


def test_run_storage_remembers_schema_facts_and_snapshots_until_its_file_changes(tmp_path, monkeypatch):
    """The run storage's schema questions (asked for every run event) and whether a snapshot is stored (asked for
    every run) are answered from memory once yes; a wipe, or a file another process replaced, asks again."""
    from dagster._core.storage.runs.sql_run_storage import SqlRunStorage

    asked = []
    plain = SqlRunStorage.has_run_stats_index_cols
    monkeypatch.setattr(SqlRunStorage, "has_run_stats_index_cols", lambda self: asked.append(1) or plain(self))
    with dg.DagsterInstance.from_config(str(_home_with(tmp_path))) as instance:
        storage = instance.run_storage
        run = instance.get_run_by_id(dg.materialize([numbers], instance=instance).run_id)
        asked.clear()
        assert storage.has_run_stats_index_cols() and storage.has_run_stats_index_cols()
        assert dg.materialize([numbers], instance=instance).success
        assert asked == []  # known since the first run's events
        assert storage.has_job_snapshot(run.job_snapshot_id)
        assert storage.has_execution_plan_snapshot(run.execution_plan_snapshot_id)
        assert not storage.has_job_snapshot("not-a-snapshot")  # a no is asked every time
        storage.wipe()
        assert not storage.has_job_snapshot(run.job_snapshot_id)
        run = instance.get_run_by_id(dg.materialize([numbers], instance=instance).run_id)
        assert storage.has_job_snapshot(run.job_snapshot_id)
        # another process replaces runs.db: its snapshots are not the ones remembered
        runs_db = Path(history_directory(str(tmp_path))) / "runs.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{runs_db}{suffix}").unlink(missing_ok=True)
        SqliteRunStorage.from_local(history_directory(str(tmp_path)))
        before = len(asked)
        assert not storage.has_job_snapshot(run.job_snapshot_id)
        assert storage.has_run_stats_index_cols() and len(asked) == before + 1
        assert dg.materialize([numbers], instance=instance).success  # and its runs are stored as before


def test_a_command_leaves_no_write_ahead_log_beside_the_instance_files(tmp_path):
    """``mm-assets`` commands open the instance with ``cli._instance``: its kept connections were never closed, so
    each cycle left three run files whose events were all in a ``-wal`` beside an empty ``.db`` (308 MB after
    38 cycles; a copy of the ``.db`` alone had no events). The instance is now disposed at exit, which lets SQLite
    move each log into its file."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import time
        from dagster._core.events.log import EventLogEntry
        from mm_assets import cli
        instance = cli._instance()
        for run_id in ("r1", "r2", "r3"):
            for i in range(50):
                instance.event_log_storage.store_event(EventLogEntry(
                    error_info=None, level=20, user_message=f"m{i}", run_id=run_id, timestamp=time.time()))
        instance.get_runs_count()
    """)
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-c", script], check=True, env={**__import__("os").environ,
                                                                  "DAGSTER_HOME": str(home)}, cwd=tmp_path)
    runs = home / "history" / "runs"
    assert {p.name for p in runs.glob("r*.db")} == {"r1.db", "r2.db", "r3.db"}
    assert [p.name for p in home.rglob("*-wal")] == []
    storage = PooledSqliteEventLogStorage(str(home))
    try:  # the events are in the files themselves
        assert len(_messages(storage, "r2")) == 50
    finally:
        storage.dispose()
