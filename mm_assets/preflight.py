"""Before a cycle writes anything: can every store it writes be reached and written?

Why: without this, an unreachable warehouse is found only at publishing, after training and the gate have
written their registries, and an unwritable registry after the model bundles were written to the lake
(orphans). One clear line naming the setting, before the first write, loses nothing.

No Dagster here.
"""

from __future__ import annotations

import uuid

import pandas as pd
import sqlalchemy as sa

from mm_assets.ids import partition_keys_for
from mm_assets.lake import Lake
from mm_assets.settings import Settings
from mm_assets.sql import engine_for, redact, redact_secrets


class StorageError(RuntimeError):
    """A store the cycle writes cannot be reached or written; the message names the setting."""


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


def _check_database(setting: str, url: str) -> None:
    try:
        engine = engine_for(url)
    except OSError as exc:  # a SQLite folder that cannot be created
        raise StorageError(f"{setting} {redact(url)}: {exc.strerror or exc}; fix the path or its permissions") from None
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                # SQLite opens a read-only file without complaint; a write transaction finds out
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS _mm_assets_preflight (x INTEGER)")
                conn.exec_driver_sql("DROP TABLE _mm_assets_preflight")
            else:
                conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        reason = redact_secrets(str(getattr(exc, "orig", exc))).strip().splitlines()[0]
        raise StorageError(f"{setting} {redact(url)} cannot be written: {reason}; check that the database is "
                           "running and reachable and that the account may write") from None
    finally:
        engine.dispose()


def check_stores(settings: Settings, lake: Lake | None = None) -> None:
    """Raise ``StorageError`` for the first store the cycle writes that cannot be reached or written."""
    storage = settings.storage
    probe = ("preflight", f"{uuid.uuid4().hex}.probe")
    try:
        lake = lake or Lake(storage.lake)
        lake.write_bytes(b"ok", *probe)
        lake.delete(*probe)
    except Exception as exc:  # noqa: BLE001 - any filesystem's error: the lake cannot be written
        raise StorageError(f"storage.lake {storage.lake} cannot be written ({type(exc).__name__}: "
                           f"{redact_secrets(str(exc))}); fix the path, its permissions or the credentials") from None
    for setting, url in (("storage.registry", storage.registry),
                         ("storage.production_registry", storage.production_registry),
                         ("storage.warehouse", storage.warehouse)):
        _check_database(setting, url)
    check_partitioning(settings)
