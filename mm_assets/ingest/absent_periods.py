"""Periods without a row in a series, up to the partition's newest period, filled under ``ingest.absent_periods:
zero``.

Why: many sources store a row only for a period with sales (a day's receipts, a sparse daily extract). Read as
missing, such a series ends at its last sale: it is forecast from that period, so its published periods start days
or weeks before the other series' and no forecast covers the days that follow. Read as zero, which is what an
absent row means there, every series runs up to the partition's newest period and is forecast from it.

``fill_absent_periods`` takes a partition's dataset rows as ``cut_partition`` makes them: sorted by ids then
``ds``, one row per (ids, ds), planned rows (no target, after the newest observed period) at the end of their
series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_assets.forecasting.series import DS, Y
from mm_assets.runs import key_boundaries


def flag_columns(part: pd.DataFrame, regressors: list[str]) -> list[str]:
    """Regressors that are 0/1 flags in this partition: an absent period is not promoted, so it gets 0; every
    other regressor (a price, a share) carries its last value. A flag is a column of integers or booleans that are
    all 0 or 1, or of other numbers all 0 or 1 with some 0 (a price that is 1.0 every period is not a flag)."""
    flags = []
    for col in regressors:
        values = part[col].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        whole = pd.api.types.is_integer_dtype(part[col]) or pd.api.types.is_bool_dtype(part[col])
        if len(values) and np.isin(values, (0.0, 1.0)).all() and (whole or values.min() == 0.0):
            flags.append(col)
    return flags


def fill_absent_periods(part: pd.DataFrame, ids: list[str], regressors: list[str], step: pd.Timedelta,
                        newest: pd.Timestamp) -> tuple[pd.DataFrame, int]:
    """Every series with a row for each period from its first up to ``newest`` (the partition's newest observed
    period), the added rows with target 0 (``flag_columns`` 0, other regressors carried forward) → (rows, rows
    added).

    A series with a period off the grid of its first one is left as it is (the models' own check names it).
    Vectorised: the added rows are placed by one sort of (series, period), not built series by series."""
    if not len(part):
        return part, 0
    starts, stops = key_boundaries(part, ids)
    ds = part[DS].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    newest = newest.value
    sid = np.repeat(np.arange(len(starts)), stops - starts)
    first = ds[starts]
    offset = ds - first[sid]
    history = ds <= newest
    on_grid = np.ones(len(starts), dtype=bool)
    off = np.flatnonzero(history & (offset % step.value != 0))
    on_grid[sid[off]] = False
    length = np.where(on_grid & (first <= newest), (newest - first) // step.value + 1, 0)
    dense_rows = history & on_grid[sid]  # rows that land on a cell of their series' full grid
    added = int(length.sum() - dense_rows.sum())
    if not added:
        return part, 0
    cell_start = np.cumsum(length) - length
    cells = int(length.sum())
    cell_sid = np.repeat(np.arange(len(starts)), length)
    cell_ds = first[cell_sid] + (np.arange(cells) - cell_start[cell_sid]) * step.value
    cell_row = np.full(cells, -1, dtype=np.int64)
    rows = np.flatnonzero(dense_rows)
    cell_row[cell_start[sid[rows]] + offset[rows] // step.value] = rows
    # an added cell takes ids and regressors from the row before it (every series' first cell is a row)
    present = cell_row >= 0
    carried = cell_row[np.maximum.accumulate(np.where(present, np.arange(cells), 0))]
    other = np.flatnonzero(~dense_rows)  # planned rows, and the rows of series left as they are
    source = np.r_[carried, other]
    order = np.lexsort((np.r_[cell_ds, ds[other]], np.r_[cell_sid, sid[other]]))
    source, own = source[order], np.r_[present, np.ones(len(other), dtype=bool)][order]
    out = part.take(source).reset_index(drop=True)
    out[DS] = pd.Series(np.r_[cell_ds, ds[other]][order].astype("datetime64[ns]")).astype(part[DS].dtype)
    new = ~own
    out.loc[new, Y] = 0.0
    for col in flag_columns(part, regressors):
        out.loc[new, col] = 0.0
    return out, added
