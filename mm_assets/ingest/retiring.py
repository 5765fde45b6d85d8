"""Whether a store partition can be retired: one the source still sells in comes back at the next ingest.

Why: the ingest registers every store partition it finds in the periods it reads and in the plan. Retiring one
that still has rows there was undone by the next cycle without a word; the operator believed it stopped.
"""

from __future__ import annotations

from mm_assets.ingest.periods import PLAN_FILE, newest_period_file
from mm_assets.ingest.validation import PARTITION_COLUMN


def still_in_the_source(lake, keys: list[str]) -> dict[str, str]:
    """Of store partitions ``keys``, those with rows in the newest period file the lake holds or in the current
    plan (what the next ingest reads again) → {key: where, e.g. "the period 2026-11-23"}. Only the partition column
    of those two files is read, filtered to ``keys``."""
    found: dict[str, str] = {}
    newest = newest_period_file(lake)
    places = []
    if newest is not None:
        places.append((newest, f"the newest ingested period, {newest[-1].removesuffix('.parquet')}"))
    if lake.exists(*PLAN_FILE):
        places.append((PLAN_FILE, "the current plan (raw/plan/current.parquet)"))
    for parts, where in places:
        table = lake.read_table(*parts, columns=[PARTITION_COLUMN], filters=[(PARTITION_COLUMN, "in", list(keys))])
        for key in set(table.column(PARTITION_COLUMN).to_pylist()):
            found.setdefault(key, where)
    return found
