"""Run retention (``mm_assets.run_retention``): the runs no partition or check needs any more are deleted, and
nothing the UI shows of the assets changes.

The assets reproduce what makes the instance grow: a day-partitioned asset ingested in ranged runs, with a
run-wide check (Dagster plans it for every day of the range and the one result resolves none of those rows),
beside an unpartitioned asset. Five runs: days 1-5, days 3-5, the unpartitioned asset twice, days 1-2. The first
run's days and the third run's asset were all recorded again since; the others each hold some newest record.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

from mm_assets.instance_storage import instance_config
from mm_assets.run_retention import history_bytes, prune_runs

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-06")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(),
          check_specs=[dg.AssetCheckSpec("run_wide", asset="days")])
def days() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="run_wide", passed=True)])


@dg.asset
def summary() -> int:
    return 1


def _run(instance, first: str | None = None, last: str | None = None) -> str:
    if first is None:
        result = dg.materialize([summary], instance=instance)
    else:
        result = dg.materialize([days], instance=instance, tags={RANGE_START: first, RANGE_END: last})
    assert result.success
    return result.run_id


def _state(instance) -> dict:
    """What the UI shows of the assets: materialized days, the unpartitioned asset's newest run, the check's
    newest execution."""
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("days"), "run_wide")])
    return {"days": sorted(instance.get_materialized_partitions(dg.AssetKey("days"))),
            "summary": instance.get_latest_materialization_event(dg.AssetKey("summary")).run_id,
            "check": {key: (r.run_id, r.status) for key, r in check.items()}}


def _check_rows(instance, run_id: str) -> int:
    with instance.event_log_storage.index_connection() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(AssetCheckExecutionsTable)
                            .where(AssetCheckExecutionsTable.c.run_id == run_id)).scalar()


def _local_instance(home: Path) -> dg.DagsterInstance:
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config(str(home))))
    return dg.DagsterInstance.from_config(str(home))


def _postgres_instance(home: Path, url: str) -> dg.DagsterInstance:
    home.mkdir()
    db = sa.engine.make_url(url)
    storage = {"postgres_db": {"username": db.username, "hostname": db.host, "port": db.port,
                               "db_name": db.database, "password": "", "scheme": "postgresql+psycopg2"}}
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": storage}}))
    return dg.DagsterInstance.from_config(str(home))


def _the_runs_nobody_needs_go_and_the_assets_look_the_same(instance) -> str:
    """Returns the id of a deleted run."""
    first = _run(instance, "2026-01-01", "2026-01-05")
    second = _run(instance, "2026-01-03", "2026-01-05")
    third, fourth = _run(instance), _run(instance)
    fifth = _run(instance, "2026-01-01", "2026-01-02")
    assert _check_rows(instance, first) == 6  # five days planned, never resolved, and the run's one result
    before = _state(instance)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)

    assert prune_runs(instance, 1).deleted == []  # every run ended within the day
    dry = prune_runs(instance, 1, now=later, dry_run=True)
    assert sorted(dry.deleted) == sorted([first, third]) and dry.kept_current == 3
    assert len(instance.get_run_records()) == 5

    result = prune_runs(instance, 1, now=later)
    assert sorted(result.deleted) == sorted([first, third]) and result.kept_current == 3
    assert {r.dagster_run.run_id for r in instance.get_run_records()} == {second, fourth, fifth}
    assert _state(instance) == before
    assert before["days"] == [f"2026-01-0{d}" for d in range(1, 6)] and before["summary"] == fourth
    assert _check_rows(instance, first) == 0 and result.check_rows_deleted == 6  # Dagster's delete leaves them
    assert _check_rows(instance, second) == 4
    assert prune_runs(instance, 1, now=later).deleted == []  # what is left is needed
    return first


def test_on_the_local_instance_its_run_files_go_too(tmp_path):
    with _local_instance(tmp_path / "home") as instance:
        runs = tmp_path / "home" / "history" / "runs"
        deleted = _the_runs_nobody_needs_go_and_the_assets_look_the_same(instance)
        kept = {r.dagster_run.run_id for r in instance.get_run_records()}
        assert {name.removesuffix(".db") for name in os.listdir(runs) if name.endswith(".db")} == kept | {"index"}
        assert history_bytes(instance) > 0
        assert instance.all_logs(deleted) == []


@pytest.mark.postgres
def test_on_a_postgresql_instance(tmp_path, postgres_db):
    with _postgres_instance(tmp_path / "home", postgres_db) as instance:
        deleted = _the_runs_nobody_needs_go_and_the_assets_look_the_same(instance)
        assert instance.all_logs(deleted) == []
        assert history_bytes(instance) is None


def test_the_command_asks_for_an_age_and_prunes_the_instance_of_dagster_home(tmp_path, monkeypatch, capsys):
    from mm_assets import cli
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path, storage={"run_retention_days": None})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert cli._prune_runs(settings, None, dry_run=False) == 2
    assert "--older-than DAYS (1 or more), or set storage.run_retention_days" in capsys.readouterr().err
    kept = settings.model_copy(update={"storage": settings.storage.model_copy(update={"run_retention_days": 3})})
    assert cli._prune_runs(kept, None, dry_run=True) == 0
    assert "\nwould delete 0 Dagster runs that ended more than 3 days ago" in capsys.readouterr().out  # a new home
    assert cli._prune_runs(settings, 1, dry_run=False) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted 0 Dagster runs that ended more than 1 day ago") and "run history on disk" in out


def test_the_sensor_prunes_only_with_the_setting(tmp_path):
    from mm_assets.definitions import build_definitions
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path)
    for days, said in ((None, "storage.run_retention_days is not set: every run is kept"),
                       (2, "deleted 0 Dagster runs that ended more than 2 days ago")):
        current = settings.model_copy(update={"storage": settings.storage.model_copy(
            update={"run_retention_days": days})})
        sensor = build_definitions(current).get_sensor_def("prune_runs")
        with _local_instance(tmp_path / f"home{days}") as instance:
            result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert result.skip_message.startswith(said)
