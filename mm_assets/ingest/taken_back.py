"""Period files after the source's newest date that hold no row: removed, not read again by every cycle.

Why: the lake can hold periods after the source's newest date, whose rows the source took back (a load rolled
back) or never had (a mistyped date, since fixed, made the cycle read every period up to it: hundreds of empty
weeks). The cycle reads those holding rows once more, so that what the source took back leaves the lake; written
again without rows, or empty from the start, they said nothing, yet each cycle read them all again (and the
Dagster history grew by 33-55 MB a cycle for 553 of them). An empty period file after the newest date is the same
as none: the datasets take nothing from it, and a period the source fills later is ingested anew (the cycle reads
every period up to the source's newest date, and ``--recent`` any the lake lacks).

Only files that hold no row are removed (their footers say so; no data is read): one whose rows the source still
has (a series held back keeps its stored rows) or that cannot be read stays and is read again. No Dagster here;
the Dagster partitions of the removed periods stay materialized (their runs are history), which the cycle says.
"""

from __future__ import annotations

from mm_assets.ingest.periods import RAW_FOLDER


def stored_after(lake, key: str) -> list[str]:
    """The period keys after ``key`` the lake holds a raw file of, oldest first."""
    names = (name.removesuffix(".parquet") for name in lake.list(*RAW_FOLDER, suffix=".parquet"))
    return sorted(k for k in names if k > key)


def with_rows_after(lake, key: str) -> list[str]:
    """Of ``stored_after``, the periods whose file holds rows, or cannot be read (its footer says nothing): those
    are read again."""
    return [k for k in stored_after(lake, key) if lake.footer_rows(*RAW_FOLDER, f"{k}.parquet") != 0]


def remove_empty_after(lake, key: str) -> list[str]:
    """Delete the raw files of the periods after ``key`` that hold no row → their keys, oldest first."""
    empty = [k for k in stored_after(lake, key) if lake.footer_rows(*RAW_FOLDER, f"{k}.parquet") == 0]
    for k in empty:
        lake.delete(*RAW_FOLDER, f"{k}.parquet")
    return empty
