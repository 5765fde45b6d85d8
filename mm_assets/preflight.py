"""Before a cycle writes anything: can every store it writes be reached and written?

Why: without this, an unreachable warehouse is found only at publishing, after training and the gate have
written their registries, and an unwritable registry after the model bundles were written to the lake
(orphans). One clear line naming the setting, before the first write, loses nothing.

No Dagster here.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Collection

import pandas as pd
import sqlalchemy as sa

from mm_assets.ids import partition_keys_for
from mm_assets.lake import Lake
from mm_assets.lake.errors import EndpointUnreachable, lake_fix, lake_problem
from mm_assets.lake.lake import blob_endpoint
from mm_assets.registry import model_registry, production
from mm_assets.settings import Settings
from mm_assets.sql import DatabaseUrlError, database_error_line, engine_for, redact, redact_secrets
from mm_assets.warehouse.warehouse import CURRENT_FORECASTS, table_definitions


class StorageError(RuntimeError):
    """A store the cycle writes cannot be reached or written; the message names the setting."""


IDS_FILE = ("meta", "columns_ids.json")  # the columns.ids the lake, registries and warehouse were written under
PARTITION_SAMPLE = 500  # published series read to compare their partition with the settings' (one cheap query)


def check_partitioning(settings: Settings) -> None:
    """Raise ``StorageError`` when the warehouse holds series published under partitions the settings no longer
    give them (``partition.buckets`` or ``partition.column`` changed). Every table is replaced per partition:
    publishing a store under its new partition would collide with its rows under the old one, after the day's
    training and gate had already run."""
    column, buckets = settings.partition.column, settings.partition.buckets
    if column not in settings.columns.ids:
        return
    engine = engine_for(settings.storage.warehouse)
    try:
        if not sa.inspect(engine).has_table("model_metrics"):
            return
        with engine.connect() as conn:
            rows = pd.DataFrame(conn.execute(sa.text(
                f"SELECT partition_key, {engine.dialect.identifier_preparer.quote(column)} FROM model_metrics"
            )).fetchmany(PARTITION_SAMPLE), columns=["partition_key", column])
    finally:
        engine.dispose()
    if rows.empty:
        return
    expected = partition_keys_for(rows, column, buckets)
    moved = rows[rows["partition_key"] != expected]
    if len(moved):
        first = moved.iloc[0]
        raise StorageError(
            f"partition.buckets = {buckets} / partition.column = {column!r}: the warehouse "
            f"{redact(settings.storage.warehouse)} holds series published under another partitioning ({column} "
            f"{first[column]!r} under partition {first['partition_key']!r}, which these settings call "
            f"{expected[moved.index[0]]!r}). Publishing would collide with those rows. Put partition.buckets and "
            "partition.column back as they were, or start the new partitioning on new storage (storage.lake, "
            "storage.registry, storage.production_registry, storage.warehouse).")


def check_ids(settings: Settings, lake: Lake) -> None:
    """Raise ``StorageError`` when the lake was written under other ``columns.ids``; record them when it has none.

    Why: a series is named by its ids everywhere (its lake rows, its registry versions, its warehouse rows). With
    an id column added or removed, the ingest rewrote every period and the gate promoted the new keys beside the old
    ones, then publishing failed, and failed again on every later run even on a new warehouse (the registries
    still held the old keys). A lake written before the ids were recorded is judged by its newest raw file."""
    from mm_assets.ingest.periods import RAW_FOLDER  # the ingest's layout; not needed to load this module

    ids = list(settings.columns.ids)
    if lake.exists(*IDS_FILE):
        stored = json.loads(lake.read_bytes(*IDS_FILE))
    else:
        names = lake.list(*RAW_FOLDER, suffix=".parquet")
        columns = list(lake.read_parquet(*RAW_FOLDER, names[-1]).columns) if names else ids
        stored = [c for c in ids if c in columns]  # an id column added since: the ids the lake's rows have
    if stored == ids:
        if not lake.exists(*IDS_FILE):
            lake.write_bytes(json.dumps(ids).encode(), *IDS_FILE)
        return
    raise StorageError(
        f"columns.ids = {ids}: the lake {redact_secrets(settings.storage.lake)} was written under columns.ids = "
        f"{stored}, and its series, models and published rows are named by those. Put columns.ids back as it was, or "
        "start with the new ids on new storage (storage.lake, storage.registry, storage.production_registry, "
        "storage.warehouse).")


def _check_database(setting: str, url: str, tables: Collection[str], views: Collection[str] = ()) -> None:
    """Raise ``StorageError`` unless the database at ``url`` can be reached and written (``tables``, ``views``: the
    names of the project's tables and views there)."""
    try:
        engine = engine_for(url)
    except OSError as exc:  # a SQLite folder that cannot be created
        raise StorageError(f"{setting} {redact(url)}: {exc.strerror or exc}; fix the path or its permissions") from None
    except DatabaseUrlError as exc:
        raise StorageError(f"{setting} {exc}") from None
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                # SQLite opens a read-only file without complaint; a write transaction finds out
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS _mm_assets_preflight (x INTEGER)")
                conn.exec_driver_sql("DROP TABLE _mm_assets_preflight")
                problem = None
            elif engine.dialect.name == "postgresql":
                problem = _postgres_write_problem(conn, tables, views)
            else:
                conn.exec_driver_sql("SELECT 1")
                problem = None
    except sa.exc.DBAPIError as exc:
        problem = database_error_line(exc)
    finally:
        engine.dispose()
    if problem:
        raise StorageError(f"{setting} {redact(url)} cannot be written: {problem}; {_database_fix(problem, url)}"
                           ) from None


def unreadable_database(settings: Settings) -> str | None:
    """For a command that only reads (a report) and met a database error: the first of the registries and the
    warehouse that cannot be connected to, named with its setting and the fix, or None (all answer: the error was
    of another kind)."""
    storage = settings.storage
    for setting, url in (("storage.registry", storage.registry),
                         ("storage.production_registry", storage.production_registry),
                         ("storage.warehouse", storage.warehouse)):
        try:
            engine = engine_for(url)
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
        except (sa.exc.DBAPIError, OSError, DatabaseUrlError) as exc:
            problem = database_error_line(exc) if isinstance(exc, sa.exc.DBAPIError) else str(exc)
            return f"{setting} {redact(url)} cannot be read: {problem}; {_database_fix(problem, url, 'read')}"
    return None


def _database_fix(problem: str, url: str, access: str = "write") -> str:
    """What to do about a database that cannot be written (or read: ``access``), from its error line."""
    if "does not exist" in problem and "database" in problem:
        name = sa.engine.make_url(url).database or "<name>"
        return f"create the database (CREATE DATABASE {name}, as its owner) or correct its name in the URL"
    if "password authentication failed" in problem or "Login failed" in problem:
        return "correct the user or password (in the URL, or PGPASSWORD for PostgreSQL)"
    account = sa.engine.make_url(url).username or "<account>"
    if problem.startswith("permission denied: no "):
        return (f"GRANT {', '.join(ROW_PRIVILEGES)} ON <the tables named> TO {account} (a run reads, inserts and "
                "deletes the rows it replaces)")
    if "permission denied for schema" in problem:
        schema = problem.rsplit(" ", 1)[-1]
        return (f"GRANT CREATE ON SCHEMA {schema} TO {account} (a run creates the project's tables and views there "
                f"that are not there yet), or have an owner create them and GRANT {', '.join(ROW_PRIVILEGES)} on "
                f"them to {account}")
    return f"check that the database is running and reachable and that the account may {access}"


# what a run does to the rows of the project's tables: reads them, inserts, and deletes the rows it replaces (a
# publish deletes a store's rows of the origins it publishes, then inserts them)
ROW_PRIVILEGES = ("SELECT", "INSERT", "DELETE")


def _postgres_write_problem(conn: sa.Connection, tables: Collection[str], views: Collection[str] = ()) -> str | None:
    """What this account may not do of what a run does in this database, or None: create a table in its schema when
    one of the project's ``tables`` or ``views`` is not there yet (the run creates it; the database's own error is
    raised), and read, insert and delete the rows of those already there. A login that may only read connects and
    answers ``SELECT 1`` like any other, and was found out only when the run wrote; one without DELETE passed and
    the publish failed after training and the gate; a least-privilege login, whose tables an owner created, was
    refused for want of a CREATE it does not need. The probe table is created inside a savepoint that is rolled
    back (PostgreSQL's DDL is transactional)."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names()) & set(tables)
    if set(tables) - present or set(views) - set(inspector.get_view_names()):
        probe = f"_mm_assets_preflight_{uuid.uuid4().hex[:12]}"
        savepoint = conn.begin_nested()
        try:
            conn.exec_driver_sql(f"CREATE TABLE {probe} (x INTEGER)")
            conn.exec_driver_sql(f"INSERT INTO {probe} VALUES (1)")
        finally:
            savepoint.rollback()
    lacking: dict[str, list[str]] = {}
    for name in sorted(present):
        for privilege in ROW_PRIVILEGES:  # has_table_privilege of a list answers whether any of them is held
            if not conn.execute(sa.text("SELECT has_table_privilege(quote_ident(current_schema()) || '.' || "
                                        "quote_ident(:t), :p)"), {"t": name, "p": privilege}).scalar():
                lacking.setdefault(privilege, []).append(name)
    if not lacking:
        return None
    return "permission denied: " + "; ".join(f"no {privilege} on {', '.join(names)}"
                                             for privilege, names in lacking.items())


ENDPOINT_TIMEOUT_S = 5.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _answers(lake: Lake) -> None:
    """Raise ``EndpointUnreachable`` when an Azure lake's blob endpoint does not take a connection within
    ``ENDPOINT_TIMEOUT_S``. Why: the storage SDK retries a connection that fails for about 90 s before it gives
    up, and an operator with a mistyped account or a stopped emulator waited that long for the same answer. Not
    asked through a proxy (the SDK's connection is the proxy's, not this one)."""
    if lake.is_local or any(os.environ.get(v) for v in PROXY_VARIABLES):
        return
    endpoint = blob_endpoint(lake.uri)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=ENDPOINT_TIMEOUT_S).close()
    except OSError as exc:
        raise EndpointUnreachable(f"no connection to {endpoint[0]}:{endpoint[1]} ({exc})") from None


def check_stores(settings: Settings, lake: Lake | None = None) -> None:
    """Raise ``StorageError`` for the first store the cycle writes that cannot be reached or written (and for an
    ``azureml`` runner without its workspace: the runs it starts would fail after the ingest)."""
    storage = settings.storage
    probe = ("preflight", f"{uuid.uuid4().hex}.probe")
    try:
        lake = lake or Lake(storage.lake)
        _answers(lake)
        lake.write_bytes(b"ok", *probe)
        lake.delete(*probe)
    except Exception as exc:  # noqa: BLE001 - any filesystem's error: the lake cannot be written
        raise StorageError(f"storage.lake {redact_secrets(storage.lake)} cannot be written ({lake_problem(exc)}); "
                           f"{lake_fix(exc, storage.lake)}") from None
    down: list[StorageError] = []  # every one: three databases on one server are all down, not the first alone
    for setting, url, tables, views in (
            ("storage.registry", storage.registry, model_registry.metadata.tables, ()),
            ("storage.production_registry", storage.production_registry, production.metadata.tables, ()),
            ("storage.warehouse", storage.warehouse, table_definitions(settings.columns.ids), (CURRENT_FORECASTS,))):
        try:
            _check_database(setting, url, tables, views)
        except StorageError as exc:
            down.append(exc)
    if down:
        others = [str(exc).split(" ", 1)[0] for exc in down[1:]]
        raise StorageError(str(down[0]) + (f" ({' and '.join(others)} cannot be written either)" if others else ""))
    check_ids(settings, lake)
    check_partitioning(settings)
    workspace = settings.azureml.workspace_problem() if settings.runner.kind == "azureml" else None
    if workspace:
        raise StorageError(workspace)
