"""Which lake a Dagster instance works for: the instance holds the store partitions and runs of one project, and
a second project run on it (your own data after the demo, under the same ``.dagster_home``) would train the first
one's stores empty every cycle and offer to retire them, naming models and forecasts that are not its own."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mm_assets.sql import redact_secrets

LAKE_KEY = "mm_assets/lake"


SAME_SCHEMES = {"abfss": "abfs", "wasbs": "wasb"}  # fsspec's spellings of one store, over TLS or not


def lake_identity(lake: str) -> str:
    """The lake as the instance records it: a local folder resolved (relative paths are relative to where the
    command runs); a URI without a trailing slash, its scheme and account in lower case, ``abfss`` as ``abfs``
    (adlfs reads both the same). The same lake spelt ``abfss://`` after ``abfs://``, or with a trailing ``/``,
    was refused as another project's."""
    if "://" not in lake:
        return str(Path(lake).resolve())
    scheme, rest = lake.split("://", 1)
    scheme = SAME_SCHEMES.get(scheme.lower(), scheme.lower())
    where, _, path = rest.partition("/")
    path = path.rstrip("/")
    return f"{scheme}://{where.lower()}" + (f"/{path}" if path else "")


class OtherProjectError(RuntimeError):
    """The instance holds another lake's store partitions: this command would make them its own."""


def instance_lake_note(instance: dg.DagsterInstance, lake: str, stores: list[str],
                       new_lake: bool = False, record: bool = True) -> str | None:
    """Check that ``instance`` works for ``lake`` and record it as the instance's lake; → what to say of a change,
    or None. ``stores``: the instance's store partitions.

    An instance last used with another lake that holds store partitions is refused (``OtherProjectError``), and
    nothing is recorded: a cycle would register this project's stores beside the other's for good, and train
    the other's empty every day. ``new_lake`` (the command's ``--new-lake``): this lake replaced that one for good,
    so it is recorded and said once. An instance without store partitions takes the new lake with a note.
    ``record=False``: the check alone (a lake not checked yet is not recorded: a mistyped one would stay)."""
    here = lake_identity(lake)
    before = instance.run_storage.get_cursor_values({LAKE_KEY}).get(LAKE_KEY)
    if before is None or lake_identity(before) == here:
        if before is None and record:
            instance.run_storage.set_cursor_values({LAKE_KEY: here})
        return None
    some = ", ".join(stores[:5]) + (f" and {len(stores) - 5:,} more" if len(stores) > 5 else "")
    said = (f"this Dagster instance ({instance.root_directory}) was last used with the lake {redact_secrets(before)}, "
            f"and these settings use {redact_secrets(here)}")
    if stores and not new_lake:
        raise OtherProjectError(
            f"{said}; it holds {len(stores):,} store partitions ({some}) of that lake, which this run would keep "
            "beside its own. Another project needs an instance of its own: set DAGSTER_HOME to another folder for "
            "it (its stores and runs stay apart). If this lake replaced that one for good, run again with "
            "--new-lake: the instance then records this lake. Nothing was run or recorded")
    if record:
        instance.run_storage.set_cursor_values({LAKE_KEY: here})
    if stores:
        return (f"{said}; --new-lake: this lake is now the instance's, and its {len(stores):,} store partitions "
                f"({some}) are those runs' (retire-partition the ones this lake does not hold)")
    return f"{said}; it holds no store partitions: this lake is now the instance's"
