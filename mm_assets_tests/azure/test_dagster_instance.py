"""The production Dagster instance (deploy/dagster/dagster.yaml) against a real PostgreSQL and Azurite.

The instance is built from the deploy file itself, changed only where this machine cannot be Azure:
  - sign-in: Microsoft Entra tokens (``auth_provider: azure_wif``) become the loopback server's trust auth, and
    ``sslmode: require`` becomes ``disable`` (the throwaway server has no certificate), on its random port;
  - compute logs: dagster-azure's AzureBlobComputeLogManager runs with its own upload code, its client pointed at
    Azurite instead of https://<account>.blob.core.windows.net (``AzuriteBlobComputeLogManager``).
The run coordinator, run monitoring and everything else are the file's. The daily cycle then runs through it, one
store partition per run, and the test reads the runs, the materializations of each store partition and the
captured step logs back from PostgreSQL and from the blob container.

The same cycle also runs on the laptop's instance (mm_assets/local_instance.yaml: SQLite) and the time spent
storing Dagster's events (event log writes and run-status updates, timed around the storage calls) is reported
per store partition and per raw_sales day for both, printed and written to test-artifacts/azure/bookkeeping.json.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.registry import ModelRegistry

pytestmark = [pytest.mark.postgres, pytest.mark.azurite, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_INSTANCE = ROOT / "deploy" / "dagster" / "dagster.yaml"
LOCAL_INSTANCE = ROOT / "mm_assets" / "local_instance.yaml"
ARTIFACTS = ROOT / "test-artifacts" / "azure"
STORAGES = ("run_storage", "event_log_storage", "schedule_storage")
STORE_JOBS = ("train_job", "promote_job", "publish_job")


def loopback_instance_config(port: int, local_dir: Path) -> dict:
    """deploy/dagster/dagster.yaml with the changes this machine needs, and only those (see the module doc)."""
    config = yaml.safe_load(DEPLOY_INSTANCE.read_text())
    for key in STORAGES:
        storage = copy.deepcopy(config[key]["config"])
        assert "azure_wif" in storage.pop("auth_provider")
        assert storage["postgres_db"]["params"] == {"sslmode": "require"}
        storage["postgres_db"]["params"] = {"sslmode": "disable"}
        storage["postgres_db"]["port"] = port
        config[key]["config"] = storage
    assert config["compute_logs"]["class"] == "AzureBlobComputeLogManager"
    config["compute_logs"]["module"] = "mm_assets_tests.azure.azurite_compute_logs"
    config["compute_logs"]["class"] = "AzuriteBlobComputeLogManager"
    config["compute_logs"]["config"]["local_dir"] = str(local_dir)
    return config


class StorageTimer:
    """Seconds and calls spent in the instance's storage writes for events, per run."""

    def __init__(self, instance: dg.DagsterInstance, monkeypatch):
        self.seconds: dict[str, float] = defaultdict(float)
        self.events: dict[str, int] = defaultdict(int)
        events, runs = instance.event_log_storage, instance.run_storage

        def timed(obj, name, run_of, count_of):
            real = getattr(obj, name)

            def wrapper(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return real(*args, **kwargs)
                finally:
                    run_id = run_of(*args, **kwargs)
                    self.seconds[run_id] += time.perf_counter() - started
                    self.events[run_id] += count_of(*args, **kwargs)

            monkeypatch.setattr(obj, name, wrapper)

        timed(events, "store_event", lambda e, *a, **k: e.run_id, lambda *a, **k: 1)
        timed(events, "store_event_batch", lambda es, *a, **k: es[0].run_id, lambda es, *a, **k: len(es))
        timed(runs, "handle_run_event", lambda run_id, *a, **k: run_id, lambda *a, **k: 0)
        timed(runs, "add_run", lambda run, *a, **k: run.run_id, lambda *a, **k: 0)


def _cycle(settings, instance, monkeypatch) -> dict:
    timer = StorageTimer(instance, monkeypatch)
    started = time.perf_counter()
    report = run_cycle(build_definitions(settings), instance, settings, log=lambda m: None)
    wall = time.perf_counter() - started
    assert report.ok, report.runs
    runs = {r.run_id: r for r in instance.get_runs()}
    per_job: dict[str, dict] = defaultdict(lambda: {"runs": 0, "storage_s": 0.0, "events": 0})
    for run_id, run in runs.items():
        job = per_job[run.job_name]
        job["runs"] += 1
        job["storage_s"] += timer.seconds[run_id]
        job["events"] += timer.events[run_id]
    stores = len(instance.get_dynamic_partitions("stores"))
    days = report.periods
    store_s = sum(per_job[j]["storage_s"] for j in STORE_JOBS)
    store_events = sum(per_job[j]["events"] for j in STORE_JOBS)
    return {
        "wall_s": round(wall, 2),
        "runs": len(runs),
        "stores": stores,
        "days": days,
        "per_store_partition_s": round(store_s / stores, 4),
        "events_per_store_partition": store_events / stores,
        "per_store_partition_by_job_s": {j: round(per_job[j]["storage_s"] / stores, 4) for j in STORE_JOBS},
        "per_raw_day_s": round(per_job["ingest_job"]["storage_s"] / days, 5),
        "events_per_raw_day": per_job["ingest_job"]["events"] / days,
        "event_ms": round(1000 * sum(j["storage_s"] for j in per_job.values())
                          / max(1, sum(j["events"] for j in per_job.values())), 3),
    }


def test_production_instance_on_postgres_with_blob_compute_logs(tiny_project, postgres_server, azure_env,
                                                                azure_container, tmp_path, monkeypatch):
    base, spec = tiny_project
    settings_for = {}
    for name in ("sqlite", "postgres"):  # the same project twice, each with its own lake and databases
        root = tmp_path / name
        storage = base.storage.model_copy(update={
            "lake": str(root / "lake"), "registry": f"sqlite:///{root}/registry.db",
            "warehouse": f"sqlite:///{root}/warehouse.db", "production_registry": f"sqlite:///{root}/production.db",
        })
        settings_for[name] = base.model_copy(update={
            "storage": storage, "schedule": base.schedule.model_copy(update={"partitions_per_run": 1}),
        })

    # the database of the instance, on the session's PostgreSQL server
    db = f"dagster_{uuid.uuid4().hex[:8]}"
    assert re.fullmatch(r"[a-z0-9_]+", db)
    admin = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    port = sa.engine.make_url(postgres_server).port
    for name, value in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_USERNAME": "postgres", "DAGSTER_PG_DB": db,
                        "DAGSTER_COMPUTE_LOGS_ACCOUNT": azure_env.account,
                        "DAGSTER_COMPUTE_LOGS_CONTAINER": azure_container}.items():
        monkeypatch.setenv(name, value)

    pg_home, sqlite_home = tmp_path / "pg_home", tmp_path / "sqlite_home"
    pg_home.mkdir()
    sqlite_home.mkdir()
    (pg_home / "dagster.yaml").write_text(yaml.safe_dump(loopback_instance_config(port, tmp_path / "logs")))
    (sqlite_home / "dagster.yaml").write_text(LOCAL_INSTANCE.read_text())

    results = {}
    monkeypatch.setenv("DAGSTER_HOME", str(sqlite_home))  # the file's storages live in $DAGSTER_HOME
    with dg.DagsterInstance.from_config(str(sqlite_home)) as instance:
        assert type(instance.event_log_storage).__name__ == "PooledSqliteEventLogStorage"
        assert type(instance.run_storage).__name__ == "PooledSqliteRunStorage"
        results["sqlite"] = _cycle(settings_for["sqlite"], instance, monkeypatch)
    with dg.DagsterInstance.from_config(str(pg_home)) as instance:
        # the instance is the deploy file's: PostgreSQL storages, the Blob compute log manager, the queue limits
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert isinstance(instance.compute_log_manager, __import__(
            "dagster_azure.blob.compute_log_manager", fromlist=["x"]).AzureBlobComputeLogManager)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 6
        assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 2}]
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 600
        results["postgres"] = _cycle(settings_for["postgres"], instance, monkeypatch)
        run_ids = {r.run_id for r in instance.get_runs()}
        stores = sorted(instance.get_dynamic_partitions("stores"))

    # what is in PostgreSQL: every run, succeeded; every store partition of every store asset materialized
    engine = sa.create_engine(f"{postgres_server}/{db}")
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("select run_id, status from runs")).all())
        materialized = conn.execute(sa.text(
            "select asset_key, partition, count(*) from event_logs where dagster_event_type = "
            "'ASSET_MATERIALIZATION' and partition is not null group by asset_key, partition")).all()
    engine.dispose()
    assert set(stored) == run_ids and set(stored.values()) == {"SUCCESS"}
    by_asset = defaultdict(set)
    for asset_key, partition, _ in materialized:
        by_asset[json.loads(asset_key)[-1]].add(partition)
    for asset in ("series_datasets", "trained_models", "production_models", "batch_predictions",
                  "forecast_predictions", "model_metrics", "promotion_decisions"):
        assert by_asset[asset] == set(stores), asset
    assert len(by_asset["raw_sales"]) == results["postgres"]["days"]
    assert len(ModelRegistry(settings_for["postgres"].storage.registry).latest()) == spec.stores * spec.items

    # the steps' stdout/stderr went to the blob container, under the configured prefix
    logs = [b.name for b in azure_env.service().get_container_client(azure_container).list_blobs()]
    assert logs and all(name.startswith("mm-assets/storage/") for name in logs)
    assert {name.rsplit(".", 1)[-1] for name in logs} >= {"out", "err"}
    assert {run_id for run_id in run_ids if any(f"/{run_id}/" in name for name in logs)} == run_ids

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "bookkeeping.json").write_text(json.dumps(results, indent=2))
    table = pd.DataFrame(results).T[["per_store_partition_s", "events_per_store_partition", "per_raw_day_s",
                                      "event_ms", "runs", "wall_s"]]
    print("\nDagster event bookkeeping (time in event/run storage writes), same tiny cycle, one store per run:\n"
          + table.to_string())
