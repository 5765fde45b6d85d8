"""How many rows each store partition holds: what sizes the runs of a cycle (``schedule.rows_per_run``).

Why: a global model learns from the series of its run, so a run should hold as many stores as its memory allows,
not a fixed count (a run smaller than ``model.global_context_rows`` learns from other stores' datasets too:
``context_partitions``). orangeJuice's 83 stores of 11 brands, backtested in runs of 25 stores and in one run: WAPE
43.2 → 42.7 %; cheese's 88 accounts of one series each: 20.3 → 19.1 % (and 259 → 183 s). A fixed count of big
stores, on the other hand, can hold more rows than a process has memory for.

A partition's count is the rows of its dataset that a global model's training reads (each series' newest
``max_train_periods`` and what their features look back on), recorded in the footer of
``datasets/<partition>.parquet`` when it is cut (no data read here; a dataset cut before: all its rows);
partitions without one yet (the first cycle, new stores) are counted in the raw period files, reading only their
partition column (every row: more than training reads, so their first runs are smaller).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow.compute as pc

from mm_assets.ingest.datasets import TRAINING_ROWS_KEY, dataset_file
from mm_assets.ingest.periods import RAW_FOLDER
from mm_assets.ingest.validation import PARTITION_COLUMN
from mm_assets.lake import Lake

FOOTER_READS = 16  # footers read at once


def partition_rows(lake: Lake, keys: Sequence[str]) -> dict[str, int]:
    """Rows per partition of ``keys`` (0 for a partition with no rows anywhere)."""
    found = _footers(lake, list(keys))  # a footer is two small reads: on ADLS, a round trip each
    # none yet, or unreadable: counted in the raw files
    rows = {k: n for k, n in found.items() if n is not None}
    missing = [k for k in keys if k not in rows]
    if missing:
        raw = _raw_counts(lake)
        rows.update({k: raw.get(k, 0) for k in missing})
    return rows


def _raw_counts(lake: Lake) -> dict[str, int]:
    """Rows per partition over every raw period file (their partition column only)."""
    if not lake.exists(*RAW_FOLDER):
        return {}
    try:
        column = lake.dataset(*RAW_FOLDER).to_table(columns=[PARTITION_COLUMN]).column(PARTITION_COLUMN)
    except FileNotFoundError:
        return {}
    counts = pc.value_counts(column)
    return {str(k): int(n) for k, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())}


def runs_by_rows(keys: Sequence[str], rows: dict[str, int], max_partitions: int, max_rows: int) -> list[list[str]]:
    """``keys`` in order, cut into runs of at most ``max_partitions`` partitions and ``max_rows`` rows (a partition
    above ``max_rows`` alone makes a run)."""
    out: list[list[str]] = []
    run: list[str] = []
    held = 0
    for key in keys:
        n = rows.get(key, 0)
        if run and (len(run) == max_partitions or held + n > max_rows):
            out.append(run)
            run, held = [], 0
        run.append(key)
        held += n
    if run:
        out.append(run)
    return out


def context_partitions(lake: Lake, run_keys: Sequence[str], candidates: Sequence[str], budget: int) -> list[str]:
    """Other stores (of ``candidates``, in their order) whose datasets a global model of the run's stores
    ``run_keys`` learns from too: whole stores, added while the run's dataset rows and theirs stay within
    ``budget`` (``model.global_context_rows``, at most ``schedule.rows_per_run``); none when the run alone
    reaches it. Their footers are read only then."""
    mine = set(run_keys)
    used = sum(n or 0 for n in _footers(lake, list(run_keys)).values())
    if budget <= 0 or used >= budget:
        return []
    picked = []
    for key, rows in _footers(lake, [k for k in candidates if k not in mine]).items():
        if rows and used + rows <= budget:
            picked.append(key)
            used += rows
    return picked


def _footers(lake: Lake, keys: list[str]) -> dict[str, int | None]:
    """Each partition's rows from its dataset's footer (None: no dataset yet), in ``keys``' order: the rows a
    global model's training reads of it (``TRAINING_ROWS_KEY``), or all of them (a dataset cut before the count
    was written, or whose count is not a whole number: a file written by another tool, or edited)."""
    def rows(key: str) -> int | None:
        footer = lake.footer(dataset_file(key))
        if footer is None:
            return None
        recorded = (footer.metadata or {}).get(TRAINING_ROWS_KEY.encode(), b"")
        return int(recorded) if recorded.isdigit() else footer.num_rows

    with ThreadPoolExecutor(FOOTER_READS) as pool:
        return dict(zip(keys, pool.map(rows, keys)))
