"""Whether a store partition can be retired: one the source still has rows of comes back at the next ingest.

Why: the ingest registers every store partition it finds in the periods it reads and in the plan, and
``mm-assets cycle`` reads every period of the source. Retiring one that still has rows in any period the lake holds
was undone by the next cycle without a word; the operator believed it stopped.
"""

from __future__ import annotations

import posixpath

import pyarrow as pa
import pyarrow.dataset as pads

from mm_assets.ingest.periods import PLAN_FILE, RAW_FOLDER
from mm_assets.ingest.validation import PARTITION_COLUMN


class PeriodsUnreadable(RuntimeError):
    """A period file (or the plan) of the lake cannot be read, so whether a store still has rows there is unknown."""


def still_in_the_source(lake, keys: list[str]) -> dict[str, str]:
    """Of store partitions ``keys``, those with rows in a period file of the lake or in the current plan (what the
    next cycle reads again) → {key: where, e.g. "the ingested period 2026-11-23" (its newest)}. One scan of the
    partition column of those files, filtered to ``keys``; ``PeriodsUnreadable`` naming the damaged files."""
    try:
        return _scan(lake, keys)
    except (pa.ArrowInvalid, OSError) as exc:
        names = [*(posixpath.join(*RAW_FOLDER, n) for n in lake.list(*RAW_FOLDER, suffix=".parquet")
                   if not lake.readable(*RAW_FOLDER, n)),
                 *([posixpath.join(*PLAN_FILE)] if lake.exists(*PLAN_FILE) and not lake.readable(*PLAN_FILE) else [])]
        damaged = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") if names else (
            f"{type(exc).__name__}: {exc}")
        raise PeriodsUnreadable(
            f"the lake's period files cannot be read ({damaged}), so whether the store still has rows there is not "
            "known. Run `mm-assets cycle` first (it writes a damaged period file again from the source), then retire "
            "it; nothing was changed") from None


def _scan(lake, keys: list[str]) -> dict[str, str]:
    """``still_in_the_source`` without the damage report."""
    found: dict[str, str] = {}
    names = lake.list(*RAW_FOLDER, suffix=".parquet")
    if names:
        table = lake.files_dataset(RAW_FOLDER, names).to_table(
            columns=[PARTITION_COLUMN, "__filename"], filter=pads.field(PARTITION_COLUMN).isin(list(keys)))
        frame = table.to_pandas()
        for key, files in frame.groupby(PARTITION_COLUMN)["__filename"]:
            newest = max(posixpath.basename(str(f)) for f in files).removesuffix(".parquet")
            found[str(key)] = f"the ingested period {newest} (its newest with rows of it)"
    if lake.exists(*PLAN_FILE):
        table = lake.read_table(*PLAN_FILE, columns=[PARTITION_COLUMN], filters=[(PARTITION_COLUMN, "in", list(keys))])
        for key in set(table.column(PARTITION_COLUMN).to_pylist()):
            found.setdefault(key, "the current plan (raw/plan/current.parquet)")
    return found
