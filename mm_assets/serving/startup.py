"""Before the endpoint's first request: can it read what it serves from? One line naming the setting if not.

Why: a wrong password or storage key otherwise came out of the scoring script's ``init()`` as the driver's or the
storage SDK's exception, after pages of warnings from the models' preload, naming no setting; on an Azure ML
online endpoint that is what the operator reads in the deployment's log. No Dagster here.
"""

from __future__ import annotations

import sqlalchemy as sa

from mm_assets.lake import Lake
from mm_assets.lake.errors import lake_fix, lake_problem
from mm_assets.settings import Settings
from mm_assets.sql import DatabaseUrlError, database_error_line, engine_for, redact, redact_secrets


class ServingStartError(RuntimeError):
    """A store the endpoint reads cannot be reached or read; the message names the setting."""


def check_serving_stores(settings: Settings) -> None:
    """Raise ``ServingStartError`` for the first store the endpoint reads that it cannot reach: the registries
    (a query each) and the lake (a listing)."""
    storage = settings.storage
    for setting, url in (("storage.registry", storage.registry),
                         ("storage.production_registry", storage.production_registry)):
        if not url or url.startswith("sqlite"):  # a local file: reading it says clearly enough, and a probe would
            continue                             # create an empty one where none is yet
        try:
            engine = engine_for(url)
        except DatabaseUrlError as exc:
            raise ServingStartError(f"{setting} {exc}") from None
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa.exc.DBAPIError as exc:
            raise ServingStartError(f"{setting} {redact(url)} cannot be read: {database_error_line(exc)}; check "
                                    "that the database is running and reachable and the account's credentials") from None
        finally:
            engine.dispose()
    try:
        Lake(storage.lake).list("production")
    except Exception as exc:  # noqa: BLE001 - any filesystem's error: the lake cannot be read
        raise ServingStartError(f"storage.lake {redact_secrets(storage.lake)} cannot be read ({lake_problem(exc)}); "
                                f"{lake_fix(exc, storage.lake)}") from None
