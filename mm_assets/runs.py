"""Runs of equal keys in sorted rows: where each series starts and stops in a sorted table.

Why a module of its own: the dataset cutter, the local runner, the entry-script contract and the forecasting
panels all walk sorted rows series by series; none of them should import another for it.

No Dagster here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def key_boundaries(rows: pd.DataFrame | pa.Table, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop index of each run of equal key tuples (rows grouped by the keys), comparing neighbours
    column by column: no per-row key strings are built (they cost more than the models at 10k series)."""
    n = len(rows) if isinstance(rows, pd.DataFrame) else rows.num_rows
    if n == 0:
        return np.array([], dtype=int), np.array([], dtype=int)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for column in columns:
        col = rows.column(column) if isinstance(rows, pa.Table) else _arrow_backed(rows[column])
        if col is not None and pa.types.is_dictionary(col.type):  # compare codes of one shared dictionary
            col = col.unify_dictionaries()
            col = pa.chunked_array([chunk.indices for chunk in col.chunks], type=col.type.index_type)
        if col is not None:
            differs = pc.not_equal(col.slice(1), col.slice(0, n - 1))
            change[1:] |= differs.to_numpy(zero_copy_only=False).astype(bool)
        else:
            values = rows[column].to_numpy()
            change[1:] |= values[1:] != values[:-1]
    starts = np.flatnonzero(change)
    return starts, np.r_[starts[1:], n]


def runs_are_distinct(rows: pa.Table, columns: list[str], starts: np.ndarray) -> bool:
    """Whether the runs ``key_boundaries`` found in ``rows`` each hold a different key, i.e. the rows are grouped
    by the keys. Sorted rows (every file the project writes) answer with one comparison per run: runs whose keys
    increase strictly are all different. Otherwise the distinct keys are counted (rows grouped but not sorted)."""
    n = len(starts)
    if any(rows.column(c).null_count for c in columns):  # a missing id hides inside a run: count
        return _distinct_keys(rows, columns) == n
    if n <= 1:
        return True
    firsts = _decoded(run_firsts(rows, columns, starts))
    increasing = np.zeros(n - 1, dtype=bool)
    tied = np.ones(n - 1, dtype=bool)  # equal on every column so far
    for column in columns:
        before, after = firsts.column(column).slice(0, n - 1), firsts.column(column).slice(1)
        increasing |= tied & pc.less(before, after).to_numpy(zero_copy_only=False)  # no nulls: counted above
        tied &= pc.equal(before, after).to_numpy(zero_copy_only=False)
    return bool(increasing.all()) or _distinct_keys(rows, columns) == n


def run_firsts(rows: pa.Table, columns: list[str], starts: np.ndarray) -> pa.Table:
    """The ``columns`` of the first row of each run (``starts`` from ``key_boundaries``), sliced: a take would
    first join the table's chunks, copying every row."""
    ids = rows.select(columns)
    return pa.concat_tables([ids.slice(int(s), 1) for s in starts]) if len(starts) else ids.slice(0, 0)


def _distinct_keys(rows: pa.Table, columns: list[str]) -> int:
    return _decoded(rows.select(columns)).group_by(columns).aggregate([]).num_rows


def _decoded(table: pa.Table) -> pa.Table:
    """``table`` with dictionary columns (ids read with ``read_dictionary``) as their values."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def _arrow_backed(series: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow array under a pandas column stored in Arrow (pandas' default strings): compared there, not as
    millions of Python strings (15x faster at 10M rows). None for other columns."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype) or (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        values = pa.array(series.array)
        return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return None


def slice_boundaries(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop index of each run of equal values in a sorted array."""
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.array([], dtype=int)
    stops = np.r_[starts[1:], len(values)] if len(values) else np.array([], dtype=int)
    return starts, stops


def group_slices(groups: np.ndarray | None, count: int, size: int,
                 largest: int | None = None) -> list[tuple[int, int]]:
    """Consecutive slices ``[lo, hi)`` of ``count`` items (series, in their order) of at most ``size`` items each,
    cut only where ``groups`` (one value per item, equal values adjacent) changes: a group larger than ``size`` is
    one slice of its own, up to ``largest`` items (default ``2 * size``); a larger one is cut every ``size``
    items. ``groups`` None: cut every ``size`` items.

    Why: a global model's group features read the other series of the group (a store's other products) scored
    with it, so a store split over two mini-batches would be forecast from half its context. The bound keeps a
    worker's memory to what a slice of ``largest`` series needs: a store of thousands of products is read in
    pieces of hundreds, whose means of the other products are close to the whole store's."""
    size = max(1, size)
    if groups is None or count == 0:
        return [(lo, min(lo + size, count)) for lo in range(0, count, size)]
    largest = max(size, largest or 2 * size)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]).tolist()
    whole, lo = [], 0
    for start, end in zip(starts, [*starts[1:], count]):
        if end - lo > size and start > lo:  # the group would overflow the slice: close it before the group
            whole.append((lo, start))
            lo = start
    whole.append((lo, count))
    out = []
    for lo, hi in whole:
        out.extend([(lo, hi)] if hi - lo <= largest else [(a, min(a + size, hi)) for a in range(lo, hi, size)])
    return out
