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


def test_databases_down_together_are_all_named_not_the_first_alone(tmp_path):
    """Three databases on one server that went away: the message names each, not the registry alone (a publish
    that failed on the warehouse was reported as a registry that cannot be written)."""
    down = "postgresql+psycopg2://mm:pw@127.0.0.1:9/{}?connect_timeout=2"
    settings = tiny_settings(tmp_path, storage={"registry": down.format("registry"),
                                                "warehouse": down.format("warehouse")})
    with pytest.raises(StorageError) as info:
        check_stores(settings)
    message = str(info.value)
    assert message.startswith("storage.registry postgresql+psycopg2://mm:***@127.0.0.1:9/registry?connect_timeout=2 cannot be written")
    assert message.endswith("(storage.warehouse cannot be written either)")
    assert "production_registry" not in message  # it is a SQLite file that can be written


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


def test_a_lake_the_cycle_refuses_is_not_recorded_as_the_instances(tmp_path, monkeypatch, capsys):
    """A mistyped lake, refused before any work, must not become the lake the instance was last used with."""
    import dagster as dg

    from mm_assets.cli import main
    from mm_assets.instance_project import LAKE_KEY

    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake's folder should be")
    settings = tmp_path / "s.yaml"
    settings.write_text(f"storage: {{lake: '{blocker}/lake'}}\n")
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(settings))
    assert main(["cycle"]) == 2
    assert capsys.readouterr().err.startswith("error: storage.lake")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_storage.get_cursor_values({LAKE_KEY}) == {}


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


def _role_url(postgres_db: str, role: str) -> str:
    return postgres_db.replace("postgresql+psycopg2://postgres@", f"postgresql+psycopg2://{role}@")


def _admin(postgres_db: str, *statements: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_db, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


@pytest.mark.postgres
def test_a_warehouse_login_that_may_only_read_is_refused_before_anything_is_written(tmp_path, postgres_db):
    """It connects and answers SELECT 1; before, training and the gate wrote their registries and the publish
    failed after them."""
    role = f"reader_{tmp_path.name[-8:].lower().replace('-', '_')}"
    _admin(postgres_db, f"CREATE ROLE {role} LOGIN", "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
           f"GRANT USAGE ON SCHEMA public TO {role}")
    settings = tiny_settings(tmp_path, storage={"warehouse": _role_url(postgres_db, role)})
    with pytest.raises(StorageError, match=r"^storage.warehouse .* cannot be written: permission denied for schema "
                                           rf"public; GRANT CREATE ON SCHEMA public TO {role} "):
        check_stores(settings)


@pytest.mark.postgres
def test_a_least_privilege_login_of_tables_an_owner_created_passes_and_publishes(tmp_path, postgres_db):
    """A DBA created the warehouse's tables and view and granted the login SELECT, INSERT and DELETE on them, not
    CREATE on the schema: the check refused it for the CREATE the run does not need."""
    import pandas as pd

    from mm_assets.warehouse import Warehouse

    role = f"least_{tmp_path.name[-8:].lower().replace('-', '_')}"
    Warehouse(postgres_db, ["store", "item"])  # the owner creates every table and the view
    _admin(postgres_db, f"CREATE ROLE {role} LOGIN", "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
           f"GRANT USAGE ON SCHEMA public TO {role}",
           f"GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    url = _role_url(postgres_db, role)
    check_stores(tiny_settings(tmp_path, storage={"warehouse": url}))
    rows = pd.DataFrame([{"store": "S01", "item": "I1", "series_key": "S01/I1", "origin": pd.Timestamp("2026-12-01"),
                          "ds": pd.Timestamp("2026-12-02"), "yhat": 3.0, "model_type": "linear",
                          "model_version": 1, "model_source": "champion", "note": None}])
    for _ in range(2):  # and publishes, again over its own rows
        assert Warehouse(url, ["store", "item"]).publish_partition("S01", "run", rows)["forecast_predictions"] == 1


@pytest.mark.postgres
def test_a_warehouse_table_the_login_may_not_insert_into_is_named(tmp_path, postgres_db):
    role = f"writer_{tmp_path.name[-8:].lower().replace('-', '_')}"
    _admin(postgres_db, f"CREATE ROLE {role} LOGIN", f"GRANT ALL ON SCHEMA public TO {role}",
           "CREATE TABLE forecast_predictions (x INTEGER)", "CREATE TABLE someone_elses (x INTEGER)",
           f"GRANT SELECT ON forecast_predictions, someone_elses TO {role}")
    settings = tiny_settings(tmp_path, storage={"warehouse": _role_url(postgres_db, role)})
    with pytest.raises(StorageError, match=r"cannot be written: permission denied: no INSERT on forecast_predictions; "
                                           r"no DELETE on forecast_predictions; GRANT SELECT, INSERT, DELETE ON <the "
                                           rf"tables named> TO {role} "):
        check_stores(settings)
    _admin(postgres_db, f"GRANT INSERT ON forecast_predictions TO {role}")
    with pytest.raises(StorageError, match=r"permission denied: no DELETE on forecast_predictions; GRANT"):
        check_stores(settings)  # a publish deletes the rows it replaces: it failed after training and the gate
    _admin(postgres_db, f"GRANT DELETE ON forecast_predictions TO {role}")
    check_stores(settings)  # another application's table in the same database is none of its business
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_db)
    assert set(sa.inspect(engine).get_table_names()) == {"forecast_predictions", "someone_elses"}  # no probe left
    engine.dispose()


@pytest.mark.postgres
def test_a_database_that_does_not_exist_says_to_create_it_or_correct_its_name(tmp_path, postgres_db):
    missing = postgres_db.rsplit("/", 1)[0] + "/mm_warehous"
    settings = tiny_settings(tmp_path, storage={"warehouse": missing})
    with pytest.raises(StorageError, match=r'database "mm_warehous" does not exist; create the database '
                                           r"\(CREATE DATABASE mm_warehous, as its owner\) or correct its name in the URL"):
        check_stores(settings)


def test_changed_ids_are_refused_before_anything_is_written_naming_every_store(tmp_path):
    """An id column added to a lake written under other ids: the ingest rewrote it and publishing failed on every
    later run. Now refused first; the ids as they were pass."""
    import pandas as pd

    from mm_assets.lake import Lake

    settings = tiny_settings(tmp_path)
    ids = list(settings.columns.ids)
    check_stores(settings)  # a new lake records its ids
    wider = tiny_settings(tmp_path, columns={**settings.columns.model_dump(), "ids": [*ids, "channel"]})
    with pytest.raises(StorageError) as info:
        check_stores(wider)
    message = str(info.value)
    assert f"was written under columns.ids = {ids}" in message and "Put columns.ids back" in message
    assert all(s in message for s in ("storage.lake", "storage.registry", "storage.production_registry",
                                      "storage.warehouse"))
    check_stores(settings)
    # a lake written before its ids were recorded is judged by its newest raw file
    legacy = tiny_settings(tmp_path / "legacy")
    lake = Lake(legacy.storage.lake)
    lake.write_parquet(pd.DataFrame({c: ["x"] for c in ids}).assign(date=pd.Timestamp("2025-01-01"), sales=1.0),
                       "raw", "sales", "2025-01-01.parquet")
    legacy_wider = tiny_settings(tmp_path / "legacy", columns={**legacy.columns.model_dump(), "ids": [*ids, "channel"]})
    with pytest.raises(StorageError, match=r"was written under columns.ids"):
        check_stores(legacy_wider)
    check_stores(legacy)
    assert Lake(legacy.storage.lake).exists("meta", "columns_ids.json")


def test_an_azureml_runner_without_its_workspace_is_refused_before_the_first_write(tmp_path):
    """Before: the whole ingest ran, then train_job failed naming the missing settings (exit 1)."""
    settings = tiny_settings(tmp_path, runner={"kind": "azureml"}, azureml={"workspace": "ws"})
    with pytest.raises(StorageError) as info:
        check_stores(settings)
    assert str(info.value).startswith("runner.kind=azureml needs the Azure ML workspace: set "
                                      "azureml.subscription_id, azureml.resource_group in mm_assets.yaml")
    check_stores(tiny_settings(tmp_path, runner={"kind": "azureml"},
                               azureml={"workspace": "ws", "subscription_id": "sub", "resource_group": "rg"}))
