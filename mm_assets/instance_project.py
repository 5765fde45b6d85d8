"""Which lake a Dagster instance works for: the instance holds the store partitions and runs of one project, and
a second project run on it (your own data after the demo, under the same ``.dagster_home``) would train the first
one's stores empty every cycle and offer to retire them, naming models and forecasts that are not its own."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mm_assets.sql import redact_secrets

LAKE_KEY = "mm_assets/lake"


def lake_identity(lake: str) -> str:
    """The lake as the instance records it: a local folder resolved (relative paths are relative to where the
    command runs), a URI as written."""
    return lake if "://" in lake else str(Path(lake).resolve())


def instance_lake_note(instance: dg.DagsterInstance, lake: str, stores: list[str]) -> str | None:
    """What to say when ``instance`` was last used with another lake than ``lake`` (then recorded as its lake,
    so a lake that moved for good is said once), or None. ``stores``: the instance's store partitions."""
    here = lake_identity(lake)
    before = instance.run_storage.get_cursor_values({LAKE_KEY}).get(LAKE_KEY)
    if before != here:
        instance.run_storage.set_cursor_values({LAKE_KEY: here})
    if before is None or before == here:
        return None
    some = ", ".join(stores[:5]) + (f" and {len(stores) - 5:,} more" if len(stores) > 5 else "")
    held = f"; its {len(stores):,} store partitions ({some}) are those runs'" if stores else ""
    return (f"this Dagster instance ({instance.root_directory}) was last used with the lake "
            f"{redact_secrets(before)}, and these settings use {redact_secrets(here)}{held}. Another project needs "
            "an instance of its own: set DAGSTER_HOME to another folder for it (its stores and runs stay apart). If "
            "this lake replaced that one for good, nothing is to be done: this is said once")
