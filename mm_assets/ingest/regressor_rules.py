"""The rules a partition's regressor values are judged by as its dataset is cut: a price-like column's newest or
planned value at many times its usual one (a unit slip, cents read as dollars), a value of a kind its column
never takes (a flag of 3), a share stored as NULL for 0, and columns empty at the newest period.

Why a module of its own: the models read the regressors as they are, so a slip moves forecasts without leaving the
sanity envelope; the cutter (``ingest.datasets``) calls these on one partition's sorted rows and the data quality
checks name what they find.

No Dagster.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mm_assets.forecasting.series import POSITIVE, REGULAR_PRICE_MULTIPLE, kind_of, nanmedian_rows
from mm_assets.ingest.target_rules import newest_observed_rows

# a price-like regressor's newest value this many times its usual (or under its reciprocal): a unit slip, cents read
# as dollars? Real prices against the median of their 26 periods before: 0.29-1.69 on orangeJuice, 0.40-1.55 on
# cheese, 0.33-1.28 on tuna (every week of every series)
PRICE_SLIP_MULTIPLE = REGULAR_PRICE_MULTIPLE  # the bound past which a forecast's regular price leaves a price out
PRICE_USUAL_PERIODS = 26  # the periods whose median is a price's usual value (at least a third of them observed)


def newest_price_slips(frame: pd.DataFrame, regressors, starts: np.ndarray, observed: np.ndarray,
                       recent: int = 1) -> list[tuple[str, int, float, float]]:
    """(column, row, value, usual) of each series' newest value of a price-like (positive) regressor among its
    ``recent`` newest rows (observed) that is ``PRICE_SLIP_MULTIPLE`` times its usual value (the median of the
    series' ``PRICE_USUAL_PERIODS`` rows before its newest) or under its reciprocal: one per series and column.
    Why: a price slip passes every other check, the models read it, and a ×100 one is the quarter's highest, which a
    forecast period without a plan takes as the price to come (one ×100 moved an orangeJuice forecast by 30 %)
    and the models' discount reads as the regular price. ``recent``: the quarter those read; judged at the newest
    period only, a slip was named for one cycle and moved a cheese forecast by a fifth for a quarter unnamed. A
    column positive in this partition only (a display share above 0 every week of one store) is named here too: the
    check keeps the columns positive over the run (``run_positive_columns``), as for ``regressor_slips``."""
    if not len(frame) or not len(starts):
        return []
    newest = newest_observed_rows(observed, starts)
    ok = newest >= 0
    last, first = newest[ok], starts[ok]
    back = last[:, None] - np.arange(max(1, recent))[None, :]  # newest first
    inside = back >= first[:, None]
    inside[inside] = observed[back[inside]]
    owner = np.broadcast_to(np.arange(len(last))[:, None], back.shape)[inside]
    found = _price_slips(frame, regressors, back[inside], owner, last, first)
    newest_first: dict[tuple[str, int], tuple[str, int, float, float]] = {}
    for slip in found:  # rows come series by series, newest first: a series' first found is its newest
        newest_first.setdefault((slip[0], int(np.searchsorted(first, slip[1], side="right"))), slip)
    return list(newest_first.values())


def planned_price_slips(frame: pd.DataFrame, regressors, starts: np.ndarray, observed: np.ndarray
                        ) -> list[tuple[str, int, float, float]]:
    """(column, row, value, usual) of each series' first planned value (a row after its newest observed one) of a
    price-like regressor ``PRICE_SLIP_MULTIPLE`` times the series' usual value before its newest observed period, or
    under its reciprocal. Why: batch scoring forecasts with the plan as given, and a planned price of 99 for a
    product sold at 5.6 makes a forecast near zero that no sanity envelope stops (it is not absurd, only wrong)."""
    n = len(frame)
    if not n or not len(starts):
        return []
    newest = newest_observed_rows(observed, starts)
    ok = newest >= 0
    judged = np.full(len(starts), -1)
    judged[ok] = np.arange(int(ok.sum()))  # a series' place among those with a newest observed row
    sid = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    planned = np.flatnonzero((newest[sid] >= 0) & (np.arange(n) > newest[sid]))
    found = _price_slips(frame, regressors, planned, judged[sid[planned]], newest[ok], starts[ok])
    firsts: dict[tuple[str, int], tuple[str, int, float, float]] = {}
    for slip in found:  # a series' first slipped period per column: a plan of 28 days at one wrong price is one slip
        firsts.setdefault((slip[0], int(sid[slip[1]])), slip)
    return list(firsts.values())


def _price_slips(frame: pd.DataFrame, regressors, rows: np.ndarray, owner: np.ndarray, newest: np.ndarray,
                 first: np.ndarray) -> list[tuple[str, int, float, float]]:
    """(column, row, value, usual) of the ``rows`` whose value of a positive regressor is ``PRICE_SLIP_MULTIPLE``
    times its series' usual one or under its reciprocal. A series' usual value (``owner``: each row's series, an
    index into ``newest`` and ``first``) is the median of the ``PRICE_USUAL_PERIODS`` rows before its newest observed
    row ``newest`` (the series starts at ``first``), at least a third of them priced; computed once a series."""
    back = newest[:, None] - np.arange(1, PRICE_USUAL_PERIODS + 1)[None, :]
    inside = back >= first[:, None]
    out = []
    for col in regressors:
        values = frame[col].to_numpy(dtype=float)
        if kind_of(values) != POSITIVE:
            continue
        before = np.where(inside, values[np.clip(back, 0, None)], np.nan)
        before[~(before > 0)] = np.nan
        enough = np.sum(~np.isnan(before), axis=1) >= PRICE_USUAL_PERIODS // 3
        usual = nanmedian_rows(before)  # NaN for a series without a price before: no usual value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ratio = values[rows] / usual[owner]
        bad = (enough[owner] & ((ratio > PRICE_SLIP_MULTIPLE) | (ratio < 1.0 / PRICE_SLIP_MULTIPLE))
               & (values[rows] > 0))
        out.extend((col, int(r), float(values[r]), float(usual[o])) for r, o in zip(rows[bad], owner[bad]))
    return out


def regressor_slips(frame: pd.DataFrame, regressors) -> tuple[list[tuple[str, int]], dict[str, list[int]]]:
    """(column, row) of each value of 0 or below in a regressor column that is otherwise positive (a price): the
    models read it as missing (``series.kind_of``), so the check names it rather than letting it pass unseen. And
    per column, [values observed, values of 0 or below]: the run's stores pooled decide whether a column is
    positive as the global model decides it on the run's rows, where one store's rare zeros of a share would make
    it look like a price."""
    slips, counts = [], {}
    for col in regressors:
        values = frame[col].to_numpy(dtype=float)
        bad = np.flatnonzero(values <= 0)
        counts[col] = [int(np.count_nonzero(~np.isnan(values))), len(bad)]
        if len(bad) and (kind_of(values) == POSITIVE or len(bad) <= MOSTLY_POSITIVE_SLIPS * counts[col][0]):
            slips.extend((col, int(i)) for i in bad)
    return slips, counts


# a column whose values of 0 or below are at most this share of a partition's: its slips are recorded there, and the
# run's stores pooled decide whether they are (``checks.data_quality.run_positive_columns``). Why not the
# partition's own kind: a store of one series has a few dozen periods, and a price typed 0 in two of them made its
# column signed there, so the more zeros a price had, the less it was named
MOSTLY_POSITIVE_SLIPS = 0.25


def share_slips(frame: pd.DataFrame, regressors) -> tuple[list[tuple[str, int]], dict[str, list[int]]]:
    """(column, row) of each value above 1 in a regressor column (a display share, a flag: a percent entered as a
    number, 45 for 0.45?; at most ``SHARE_SLIPS_KEPT`` a column, for the examples), and per column [values
    observed, values within 0..1, values of 0, values above 1]: the run's stores
    pooled decide whether the column is a share (``checks.data_quality.run_share_columns``). Why named: the models
    decide a column's kind on the run's rows, and one such value made the display share of 88 cheese stores a
    plain number, moving 37 stores' forecasts by more than 5 %."""
    slips, counts = [], {}
    for col in regressors:
        values = frame[col].to_numpy(dtype=float)
        above = np.flatnonzero(values > 1)
        counts[col] = [int(np.count_nonzero(~np.isnan(values))), int(np.count_nonzero((values >= 0) & (values <= 1))),
                       int(np.count_nonzero(values == 0)), len(above)]
        slips.extend((col, int(i)) for i in above[:SHARE_SLIPS_KEPT])
    return slips, counts


SHARE_SLIPS_KEPT = 1_000  # rows recorded per column and partition: a column above 1 throughout is no share


# a regressor within (0, 1] that reaches 1, is never 0 and is empty in this share of its rows or more: a share whose
# 0 is stored as NULL?
NULL_FOR_ZERO_SHARE = 0.25


def shares_without_zero(frame: pd.DataFrame, regressors) -> dict[str, float]:
    """The share of empty (NULL) rows of each regressor whose values lie within (0, 1], reach 1 and are never 0,
    empty in ``NULL_FOR_ZERO_SHARE`` of the rows or more: a share (a display share, the stores with a feature) whose
    0 is stored as NULL, as a LEFT JOIN writes it. Why named: an empty value is read as missing and carried forward
    from the period before, and without its zeros the column reads as a price (log, relative to its level); on
    orangeJuice with its deal and feature so stored, WAPE went from 41.6 % to 50.4 %. Not refused (a flag of only
    1s is, at ingest): a price below 1 that is empty where nothing sold looks alike, though it rarely reaches 1."""
    out = {}
    for col in regressors:
        values = frame[col].to_numpy(dtype=float)
        seen = values[~np.isnan(values)]
        empty = 1.0 - seen.size / values.size if values.size else 0.0
        if seen.size and empty >= NULL_FOR_ZERO_SHARE and seen.min() > 0.0 and seen.max() == 1.0:
            out[col] = round(empty, 3)
    return out


def regressors_empty_at_newest(frame: pd.DataFrame, regressors, ds: np.ndarray, observed: np.ndarray
                               ) -> tuple[list[str], int]:
    """The regressors empty (NULL) in every row of the partition's newest period with sales though they have values
    before it, and the series with sales in that period. Why named: each series' value there is read as missing
    and carried forward from the period before, silently; a whole period without a column is an extract that
    missed it (a promotion feed not in yet), and the period can be ingested again once the source has it."""
    if not observed.any():
        return [], 0
    newest = ds[observed].max()
    at, before = observed & (ds == newest), ds < newest
    out = [col for col in regressors
           if np.isnan(values := frame[col].to_numpy(dtype=float))[at].all() and (~np.isnan(values[before])).any()]
    return out, int(np.count_nonzero(at))
