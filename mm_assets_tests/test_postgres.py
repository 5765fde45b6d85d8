"""The registries, the warehouse and the whole cycle on a real PostgreSQL server (started on loopback)."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.registry import ModelRegistry
from mm_assets.registry.production import ProductionRegistry
from mm_assets.warehouse import Warehouse
from mm_assets_tests.warehouse.test_warehouse import (
    check_current_forecasts,
    check_publish_log,
    check_retention,
    predictions,
)

pytestmark = pytest.mark.postgres


def test_registry_bulk_register_and_latest_on_postgres(postgres_db):
    registry = ModelRegistry(postgres_db)
    n = 2000
    rows = pd.DataFrame({
        "series_key": [f"S{i % 20:02d}/I{i:05d}" for i in range(n)],
        "partition_key": [f"S{i % 20:02d}" for i in range(n)],
        "ids": "{}", "model_type": "linear", "status": "trained", "reason": None,
        "data_start": pd.Timestamp("2025-01-01"), "data_end": pd.Timestamp("2025-06-30"), "n_obs": 180,
        "accuracy": 0.8, "wape": 0.2, "mase": 0.7, "metrics": "{}", "artifact_uri": "/x.bin",
        "artifact_offset": range(n), "artifact_size": 10, "duration_s": 0.01,
    })
    registry.register(rows, "run-1")
    registry.register(rows.iloc[:500], "run-2")
    latest = registry.latest(["S00", "S01"])
    assert len(latest) == 200
    versions = latest.set_index("series_key")["version"]
    assert versions["S00/I00000"] == 2 and versions["S00/I01000"] == 1
    assert registry.count() == n + 500


def test_production_registry_on_postgres(postgres_db):
    reader = ProductionRegistry(postgres_db)
    assert reader.current().empty
    with pytest.raises(PermissionError):
        reader.apply(pd.DataFrame(), pd.DataFrame(), "r")
    writer = ProductionRegistry(postgres_db, writable=True)
    champion = {"series_key": "S1/I1", "partition_key": "S1", "ids": "{}", "model_type": "linear", "version": 3,
                "accuracy": 0.9, "wape": 0.1, "mase": 0.5, "metrics": "{}", "data_end": pd.Timestamp("2025-06-30"),
                "artifact_uri": "/p.bin", "artifact_offset": 0, "artifact_size": 5, "source_artifact_uri": "/t.bin"}
    decision = {"series_key": "S1/I1", "partition_key": "S1", "ids": "{}", "decision": "promoted", "reason": "ok",
                "challenger_version": 3, "challenger_model_type": "linear", "challenger_accuracy": 0.9,
                "challenger_mase": 0.5, "challenger_wape": 0.1, "champion_version": None, "champion_wape": None}
    writer.apply(pd.DataFrame([champion]), pd.DataFrame([decision]), "gate-1")
    writer.apply(pd.DataFrame([{**champion, "version": 4}]), pd.DataFrame([decision]), "gate-2")
    current = reader.current(["S1"])
    assert list(current["version"]) == [4]
    assert len(reader.decisions(["S1"])) == 2
    assert list(reader.newest_decisions(["S1"])["run_id"]) == ["gate-2"]  # through the pointers, on PostgreSQL


def test_the_current_forecasts_view_on_postgres(postgres_db):
    check_current_forecasts(Warehouse(postgres_db, ["store", "item"]))


def test_forecast_retention_on_postgres(postgres_db):
    check_retention(Warehouse(postgres_db, ["store", "item"]))


def test_publish_log_on_postgres(postgres_db):
    check_publish_log(Warehouse(postgres_db, ["store", "item"]))


def test_warehouse_publish_is_idempotent_and_atomic_on_postgres(postgres_db, monkeypatch):
    wh = Warehouse(postgres_db, ["store", "item"])
    first = predictions("S1", ["I1", "I2"], "2025-05-30", 5.0)
    wh.publish_partition("S1", "run-1", first)
    wh.publish_partition("S1", "run-2", predictions("S1", ["I1", "I2"], "2025-05-30", 6.0))
    rows = wh.read_predictions(["S1"])
    assert len(rows) == len(first) and set(rows["yhat"]) == {6.0} and set(rows["run_id"]) == {"run-2"}

    # a crash after the delete, inside the transaction: the previous rows stay
    import mm_assets.warehouse.warehouse as module

    calls = {"n": 0}
    real = module.insert_frame

    def failing(conn, table, frame, chunk_rows=10_000):
        calls["n"] += 1
        if calls["n"] == 2:  # the forecasts are in, the metrics are next
            raise RuntimeError("connection lost mid-publish")
        return real(conn, table, frame, chunk_rows)

    monkeypatch.setattr(module, "insert_frame", failing)
    bad_metrics = pd.DataFrame([{"store": "S1", "item": "I1", "model_type": "linear", "version": 1,
                                 "status": "trained", "reason": None, "accuracy": 0.9, "wape": 0.1, "mase": 0.5,
                                 "smape": 0.1, "mape": 0.1, "rmse": 1.0, "n_obs": 10,
                                 "data_start": pd.Timestamp("2025-01-01"), "data_end": pd.Timestamp("2025-05-30"),
                                 "trained_at": pd.Timestamp("2025-05-30"), "training_run_id": "t"}])
    with pytest.raises(RuntimeError, match="mid-publish"):
        wh.publish_partition("S1", "run-3", predictions("S1", ["I1", "I2"], "2025-05-30", 7.0), bad_metrics)
    rows = wh.read_predictions(["S1"])
    assert set(rows["yhat"]) == {6.0} and set(rows["run_id"]) == {"run-2"}
    assert wh.read_table("model_metrics").empty
    monkeypatch.setattr(module, "insert_frame", real)
    counts = wh.publish_partition("S1", "run-4", predictions("S1", ["I1", "I2"], "2025-05-30", 7.0), bad_metrics)
    assert counts == {"forecast_predictions": len(first), "model_metrics": 1}
    assert set(wh.read_predictions(["S1"])["yhat"]) == {7.0}


@pytest.mark.e2e
def test_whole_cycle_with_registries_and_warehouse_on_postgres(tiny_project, postgres_server):
    import sqlalchemy as sa

    settings, spec = tiny_project
    admin = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in ("cyc_registry", "cyc_production", "cyc_warehouse"):
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    storage = settings.storage.model_copy(update={
        "registry": f"{postgres_server}/cyc_registry",
        "production_registry": f"{postgres_server}/cyc_production",
        "warehouse": f"{postgres_server}/cyc_warehouse",
    })
    settings = settings.model_copy(update={
        "storage": storage,
        "promotion": settings.promotion.model_copy(update={"min_accuracy": 0.5}),
    })
    with dg.instance_for_test() as instance:
        assert run_cycle(build_definitions(settings), instance, settings, log=lambda m: None).ok
        assert run_cycle(build_definitions(settings), instance, settings, log=lambda m: None).ok
    series = spec.stores * spec.items
    wh = Warehouse(settings.storage.warehouse, ["store", "item"])
    preds = wh.read_predictions()
    assert len(preds) == series * settings.horizon
    assert not preds.duplicated(["store", "item", "origin", "ds"]).any()
    assert len(wh.read_table("promotion_decisions")) == 2 * series
    assert len(ModelRegistry(settings.storage.registry).latest()) == series
    champions = ProductionRegistry(settings.storage.production_registry).current()
    assert (champions["accuracy"] >= 0.5).all()


CYCLE = """
import sys
import dagster as dg
from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.settings import Settings
settings = Settings.model_validate_json(open(sys.argv[1]).read())
with dg.instance_for_test() as instance:
    run_cycle(build_definitions(settings), instance, settings, log=lambda m: None)
"""


def _warehouse_state(url: str) -> dict[str, pd.DataFrame]:
    wh = Warehouse(url, ["store", "item"])
    return {t: wh.read_table(t).sort_values(["store", "item", *(["ds"] if t == "forecast_predictions" else [])],
                                            ignore_index=True)
            for t in ("forecast_predictions", "model_metrics", "promotion_decisions")}


@pytest.mark.e2e
def test_a_cycle_killed_mid_publish_leaves_nothing_half_written_and_the_next_publishes_once(
        tiny_project, postgres_server, tmp_path):
    """kill -9 of the cycle while a store's publish transaction has written its forecasts and waits on the next
    table: the previous rows stay whole, and the next cycle publishes every series exactly once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import sqlalchemy as sa

    settings, spec = tiny_project
    admin = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text('DROP DATABASE IF EXISTS "kill_warehouse"'))
        conn.execute(sa.text('CREATE DATABASE "kill_warehouse"'))
    url = f"{postgres_server}/kill_warehouse"
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"warehouse": url})})
    with dg.instance_for_test() as instance:
        assert run_cycle(build_definitions(settings), instance, settings, log=lambda m: None).ok
    before = _warehouse_state(url)
    assert len(before["forecast_predictions"]) == spec.stores * spec.items * settings.horizon

    path = tmp_path / "settings.json"
    path.write_text(settings.model_dump_json())
    engine = sa.create_engine(url)
    locker = engine.connect()
    blocked = None
    cycle = None
    try:
        locker.execute(sa.text("LOCK TABLE model_metrics IN ACCESS EXCLUSIVE MODE"))  # held until rollback
        cycle = subprocess.Popen([sys.executable, "-c", CYCLE, str(path)], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and blocked is None and cycle.poll() is None:
            with admin.connect() as conn:
                blocked = conn.execute(sa.text(
                    "SELECT pid, query FROM pg_stat_activity WHERE datname = 'kill_warehouse' "
                    "AND wait_event_type = 'Lock'")).first()
            time.sleep(0.2)
        assert blocked is not None, "the cycle never reached the publish step"
        assert "model_metrics" in blocked.query  # inside publish_partition, after the store's forecasts
        os.killpg(cycle.pid, signal.SIGKILL)
        cycle.wait(30)
    finally:
        if cycle is not None and cycle.poll() is None:
            os.killpg(cycle.pid, signal.SIGKILL)
        locker.rollback()
        locker.close()
    with admin.connect() as conn:  # the orphaned backend finds its client gone and rolls back
        deadline = time.time() + 60
        while time.time() < deadline and conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": blocked.pid}).scalar():
            time.sleep(0.2)
    after = _warehouse_state(url)
    for table, rows in before.items():
        pd.testing.assert_frame_equal(after[table], rows)  # not one row of the killed cycle

    with dg.instance_for_test() as instance:
        assert run_cycle(build_definitions(settings), instance, settings, log=lambda m: None).ok
    final = _warehouse_state(url)
    preds = final["forecast_predictions"]
    assert len(preds) == len(before["forecast_predictions"])
    assert not preds.duplicated(["store", "item", "origin", "ds"]).any()
    assert set(preds["run_id"]).isdisjoint(set(before["forecast_predictions"]["run_id"]))  # all of the last cycle
    assert len(final["model_metrics"]) == spec.stores * spec.items


def test_the_newest_sale_before_a_date_on_postgres(postgres_db):
    """A typed DATE column and a query: the bound the ingest puts on the newest sale when one is dated 2099."""
    import datetime as dt

    import sqlalchemy as sa

    from mm_assets.ingest.source import SourceReader

    engine = sa.create_engine(postgres_db)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sales (date DATE, store TEXT, item TEXT, sales DOUBLE PRECISION)")
        conn.exec_driver_sql("INSERT INTO sales VALUES ('2025-01-04', 'S1', 'I1', 3), ('2025-01-05', 'S1', 'I1', 4), "
                             "('2025-01-06', 'S1', 'I1', NULL), ('2099-01-05', 'S1', 'I1', 5)")
    engine.dispose()
    table = SourceReader(url=postgres_db, table="sales", query=None, timestamp="date")
    query = SourceReader(url=postgres_db, table="ignored", timestamp="date",
                         query="SELECT date, store, item, sales FROM sales WHERE date >= :start AND date < :end")
    for reader in (table, query):
        assert reader.last_observed("sales") == pd.Timestamp(2099, 1, 5)
        assert reader.last_observed("sales", before=dt.datetime(2026, 12, 11)) == pd.Timestamp(2025, 1, 5)
        assert reader.first_observed("sales", dt.datetime(2025, 1, 5)) == pd.Timestamp(2025, 1, 5)  # from it on
        assert reader.first_observed("sales", dt.datetime(2025, 1, 6)) == pd.Timestamp(2099, 1, 5)  # a leap's start
        assert reader.first_observed("sales", dt.datetime(2099, 1, 6)) is None
