"""Before a cycle writes anything, every store it writes is reachable and writable, or one line says which."""

from __future__ import annotations

import pytest

from mm_assets.preflight import StorageError, check_stores
from mm_assets_tests.conftest import tiny_settings


def test_writable_stores_pass_and_leave_no_probe(tmp_path):
    settings = tiny_settings(tmp_path)
    check_stores(settings)
    assert list((tmp_path / "lake" / "preflight").iterdir()) == []


def test_an_unwritable_lake_is_named_before_anything_is_written(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake's folder should be")
    settings = tiny_settings(tmp_path, storage={"lake": str(blocker / "lake")})
    with pytest.raises(StorageError, match=r"storage.lake .*not-a-folder/lake cannot be written"):
        check_stores(settings)
    assert not (tmp_path / "registry.db").exists()


def test_an_unreachable_warehouse_is_named_without_its_password(tmp_path):
    url = "postgresql+psycopg2://mm:s3cret@127.0.0.1:9/warehouse?connect_timeout=2"
    settings = tiny_settings(tmp_path, storage={"warehouse": url})
    with pytest.raises(StorageError) as info:
        check_stores(settings)
    message = str(info.value)
    assert message.startswith("storage.warehouse postgresql+psycopg2://mm:***@127.0.0.1:9/warehouse")
    assert "s3cret" not in message and "reachable" in message


def test_the_cycle_command_says_it_in_one_line(tmp_path, monkeypatch, capsys):
    from mm_assets.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    settings = tmp_path / "s.yaml"
    settings.write_text("storage: {warehouse: 'postgresql+psycopg2://mm:pw@127.0.0.1:9/wh?connect_timeout=2'}\n")
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(settings))
    assert main(["cycle"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: storage.warehouse") and len(err.strip().splitlines()) == 1


def test_a_changed_partitioning_under_a_published_warehouse_is_refused_naming_the_setting(tmp_path):
    """Publishing S01 under bucket b00xx would collide with its rows under partition S01."""
    import pandas as pd

    from mm_assets.warehouse import Warehouse

    settings = tiny_settings(tmp_path)
    wh = Warehouse(settings.storage.warehouse, ["store", "item"])
    with wh.engine.begin() as conn:
        conn.execute(wh.metrics.insert(), [
            {"store": store, "item": "I1", "model_type": "linear", "version": 1, "status": "trained",
             "partition_key": store, "run_id": "run", "published_at": pd.Timestamp("2026-12-01").to_pydatetime()}
            for store in ("S01", "S02")])
    check_stores(settings)  # as published
    bucketed = tiny_settings(tmp_path, partition={"buckets": 2})
    with pytest.raises(StorageError) as info:
        check_stores(bucketed)
    assert str(info.value).startswith("partition.buckets = 2 / partition.column = 'store'")
    assert "store 'S01' under partition 'S01'" in str(info.value) and "Put partition.buckets" in str(info.value)
