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
        if col is not None:
            differs = pc.not_equal(col.slice(1), col.slice(0, n - 1))
            change[1:] |= differs.to_numpy(zero_copy_only=False).astype(bool)
        else:
            values = rows[column].to_numpy()
            change[1:] |= values[1:] != values[:-1]
    starts = np.flatnonzero(change)
    return starts, np.r_[starts[1:], n]


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
