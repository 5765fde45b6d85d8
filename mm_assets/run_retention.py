"""Deleting the Dagster runs an instance no longer needs (``storage.run_retention_days``, ``mm-assets prune-runs``).

Why: Dagster keeps every run with all its events and has no retention of its own. A full cycle re-ingests every
period of the source in one run, and Dagster records for each period a materialization, a planned materialization
and, for each of ``raw_sales``' three run-wide checks, a planned evaluation that no result ever resolves (the
result is the run's, not a period's): on SQLite about 20 KB a period of history and cycle, 16 MB a full cycle of
2 stores × 800 days, gigabytes in a year of daily cycles, and the UI's queries slow down with it.

Which runs go: those that ended (succeeded, failed or were canceled) more than the retention before now and hold
no asset partition's newest event — its newest materialization, planned materialization, failure to materialize
or observation — and no check's newest execution for any partition. So every partition keeps the run that
materialized it last (the UI shows the same partitions materialized, failed and checked before and after), and a
run of a week ago whose periods were all ingested again since is deleted. Dagster's ``delete_run`` removes a run
and its events; it leaves the run's check executions in place (they are indexed apart), which are deleted here
too, and the local SQLite instance's per-run file (``history/runs/<run id>.db``) is removed with its events.

Works on any SQL event log (the local SQLite instance, PostgreSQL); the index keeps the space of deleted rows for
new ones, so the files stop growing rather than shrink (SQLite's ``VACUUM`` on ``history/runs/index.db``, with
nothing running, gives the space back).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass, field

import dagster as dg
import sqlalchemy as sa
from dagster._core.events import DagsterEventType
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from mm_assets.reporting.words import counted

ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
# the events whose newest per asset partition decides what the UI shows of it
PARTITION_STATE_EVENTS = [
    DagsterEventType.ASSET_MATERIALIZATION.value,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
    DagsterEventType.ASSET_FAILED_TO_MATERIALIZE.value,
    DagsterEventType.ASSET_OBSERVATION.value,
]


@dataclass
class PruneResult:
    """What a pruning did: the runs deleted, and the ended runs older than the retention that were kept because
    some partition's or check's newest record is theirs."""

    deleted: list[str] = field(default_factory=list)
    kept_current: int = 0
    check_rows_deleted: int = 0
    unsupported: str | None = None

    def words(self, days: float, dry_run: bool = False) -> str:
        if self.unsupported:
            return f"runs not pruned: {self.unsupported}"
        return (f"{'would delete' if dry_run else 'deleted'} {counted(len(self.deleted), 'Dagster run')} that ended "
                f"more than {_age(days)} ago (every partition and check they recorded was recorded again since); "
                f"kept {counted(self.kept_current, 'such run')} that still hold a partition's or a check's newest "
                "record")

    def short(self, days: float) -> str:
        """The cycle summary's words."""
        if self.unsupported:
            return f"runs not pruned: {self.unsupported}"
        return (f"{counted(len(self.deleted), 'run')} deleted that ended more than {_age(days)} ago and held no "
                "partition's or check's newest record (storage.run_retention_days)")


def _age(days: float) -> str:
    return f"{days:g} day{'' if days == 1 else 's'}"


def runs_holding_newest(storage: SqlEventLogStorage) -> set[str]:
    """The runs that hold the newest state event of some asset partition (or of an unpartitioned asset), or the
    newest execution of some asset check for some partition: one grouped query each, on the event log's index."""
    events = SqlEventLogStorageTable
    checks = AssetCheckExecutionsTable
    newest_event = (sa.select(sa.func.max(events.c.id))
                    .where(events.c.asset_key.is_not(None), events.c.dagster_event_type.in_(PARTITION_STATE_EVENTS))
                    .group_by(events.c.asset_key, events.c.partition, events.c.dagster_event_type))
    newest_check = (sa.select(sa.func.max(checks.c.id))
                    .group_by(checks.c.asset_key, checks.c.check_name, checks.c.partition))
    with storage.index_connection() as conn:
        held = {row[0] for row in conn.execute(sa.select(events.c.run_id).where(events.c.id.in_(newest_event)))}
        if storage.has_table(checks.name):
            held |= {row[0] for row in conn.execute(sa.select(checks.c.run_id).where(checks.c.id.in_(newest_check)))}
    return {run_id for run_id in held if run_id}


def prune_runs(instance: dg.DagsterInstance, days: float, now: dt.datetime | None = None,
               dry_run: bool = False) -> PruneResult:
    """Delete the runs that ended more than ``days`` before ``now`` and hold no partition's or check's newest
    record (the module docstring says why and what stays)."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        return PruneResult(unsupported=f"the instance's event log ({type(storage).__name__}) is not a SQL one")
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=days)
    ended = [record for record in instance.get_run_records(filters=dg.RunsFilter(statuses=ENDED,
                                                                                 updated_before=cutoff))
             if record.end_time is not None and record.end_time < cutoff.timestamp()]
    if not ended:
        return PruneResult()
    held = runs_holding_newest(storage)
    result = PruneResult(kept_current=sum(r.dagster_run.run_id in held for r in ended),
                         deleted=[r.dagster_run.run_id for r in ended if r.dagster_run.run_id not in held])
    if not dry_run:
        for run_id in result.deleted:
            instance.delete_run(run_id)
        result.check_rows_deleted = _delete_check_rows(storage, result.deleted)
    return result


def _delete_check_rows(storage: SqlEventLogStorage, run_ids: list[str]) -> int:
    """The runs' rows of check executions, which Dagster's ``delete_run`` leaves behind."""
    if not run_ids or not storage.has_table(AssetCheckExecutionsTable.name):
        return 0
    deleted = 0
    with storage.index_connection() as conn:
        for start in range(0, len(run_ids), 500):
            deleted += conn.execute(AssetCheckExecutionsTable.delete().where(
                AssetCheckExecutionsTable.c.run_id.in_(run_ids[start:start + 500]))).rowcount
    return deleted


def history_bytes(instance: dg.DagsterInstance) -> int | None:
    """The size of a local SQLite instance's run history on disk (``history/``: the run index, the event index and
    every run's file); None for an instance whose storage is a server's (PostgreSQL)."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqliteEventLogStorage):
        return None
    total = 0
    for folder, _, files in os.walk(os.path.dirname(storage._base_dir)):
        for name in files:
            with contextlib.suppress(OSError):  # a run file deleted meanwhile
                total += os.path.getsize(os.path.join(folder, name))
    return total
