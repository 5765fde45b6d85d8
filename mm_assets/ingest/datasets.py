"""Cutting raw rows into the per-partition series datasets the fan-out reads.

One Parquet file per Dagster partition holds every series of it, in canonical columns (ids, ``ds``, ``y``,
regressors) and sorted by ids then ``ds``: a worker task is a contiguous slice of one file, and a
mini-batch (one series) is a contiguous slice of that.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mm_assets.forecasting.series import DS, Y, quarter_periods
from mm_assets.ids import series_key, series_keys
from mm_assets.ingest.absent_periods import fill_absent_periods
from mm_assets.ingest.regressor_rules import (
    newest_price_slips,
    planned_price_slips,
    regressor_slips,
    regressors_empty_at_newest,
    share_slips,
    shares_without_zero,
)
from mm_assets.ingest.target_rules import (
    STOPPED_EXPECTED_SALES,
    ZEROED_MIN_SERIES,
    extreme_targets,
    lifted_runs,
    newest_jumps,
    newest_ratios,
    series_slips,
    stopped_selling,
    store_slips,
    zeroed_by_source,
    zeroed_newest,
)
from mm_assets.ingest.validation import PARTITION_COLUMN
from mm_assets.memory import release_freed
from mm_assets.runs import key_boundaries
from mm_assets.settings import Settings


def to_series_frame(raw: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Raw lake rows → canonical series rows sorted by partition, ids, ds (keeps ``_partition``).

    Duplicate (ids, ds) rows are kept here so that ``quality_by_partition`` can count them; ``deduplicate``
    then keeps the last of each.
    """
    cols = settings.columns
    frame = raw.rename(columns={cols.timestamp: DS, cols.target: Y})
    keep = [PARTITION_COLUMN, *cols.ids, DS, Y, *cols.regressors]
    return frame[keep].sort_values([PARTITION_COLUMN, *cols.ids, DS], ignore_index=True, kind="stable")


def deduplicate(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    return frame.drop_duplicates([*settings.columns.ids, DS], keep="last", ignore_index=True)


def quality_by_partition(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per partition: series, rows, duplicate keys, negative or missing past targets, gaps, short series.

    ``short_series`` counts series whose history (periods) is below min_train_periods + horizon: they will be
    served by the seasonal-naive fallback.

    Gaps are missing periods inside a series' own span up to its newest sale (store-closure days, missing
    weeks; planned rows after it are not history);
    ``series_with_long_gaps`` counts the series with a run of more than ``settings.max_normal_gap`` missing
    periods in a row (an outage, not a closed day).
    """
    cols = settings.columns
    step = settings.step
    key = series_keys(frame, cols.ids)
    observed = frame[Y].notna()
    per_series = (
        frame.assign(_key=key, _obs=observed, _ds_obs=frame[DS].where(observed))
        .groupby([PARTITION_COLUMN, "_key"], sort=False)
        .agg(first=(DS, "min"), last=(DS, "max"), last_obs=("_ds_obs", "max"), rows=(DS, "nunique"),
             obs=("_obs", "sum"))
    )
    # gaps up to the newest sale: planned rows after it are not history (a plan row years ahead is no outage)
    past = frame[DS] <= frame[DS].where(observed).groupby(key).transform("max")  # up to the series' newest sale
    past_rows = frame.assign(_key=key)[past].groupby([PARTITION_COLUMN, "_key"], sort=False)[DS].nunique()
    expected = ((per_series["last_obs"] - per_series["first"]) / step).fillna(-1).astype("int64") + 1
    per_series["gaps"] = (expected - past_rows.reindex(per_series.index).fillna(0)).clip(lower=0).astype("int64")
    distinct = frame.assign(_key=key, _past=past)[
        [PARTITION_COLUMN, "_key", DS, "_past"]].drop_duplicates([PARTITION_COLUMN, "_key", DS]).sort_values(["_key", DS])
    run = (distinct.groupby("_key", sort=False)[DS].diff() / step - 1).fillna(0).where(distinct["_past"], 0)
    longest = run.groupby([distinct[PARTITION_COLUMN], distinct["_key"]], sort=False).max()
    per_series["longest_gap"] = longest.reindex(per_series.index).fillna(0).astype("int64")
    # history = the regular grid up to the last observation (planned future rows are not history)
    history = ((per_series["last_obs"] - per_series["first"]) / step).fillna(-1).astype("int64") + 1
    per_series["short"] = history < settings.min_train_periods + settings.horizon
    dup = frame.duplicated([*cols.ids, DS], keep=False)
    neg = frame[Y] < 0
    # a missing target is only legitimate on planned rows after the series' last observation
    missing_past = ~observed & past
    out = per_series.groupby(level=0).agg(
        series=("rows", "size"),
        rows=("rows", "sum"),  # distinct (series, ds) rows
        gaps=("gaps", "sum"),
        series_with_gaps=("gaps", lambda g: int((g > 0).sum())),
        series_with_long_gaps=("longest_gap", lambda g: int((g > settings.max_normal_gap).sum())),
        short_series=("short", "sum"),
        first_ds=("first", "min"),
        last_ds=("last", "max"),
    )
    out["duplicate_keys"] = dup.groupby(frame[PARTITION_COLUMN]).sum().reindex(out.index).fillna(0).astype(int)
    out["negative_target"] = neg.groupby(frame[PARTITION_COLUMN]).sum().reindex(out.index).fillna(0).astype(int)
    out["missing_target"] = (
        missing_past.groupby(frame[PARTITION_COLUMN]).sum().reindex(out.index).fillna(0).astype(int)
    )
    return out


SPILL_KEY = "_spill_partition"  # a copy of the partition column that the spill's folders are named by


def spill_by_partition(dataset: pads.Dataset, keys: list[str], folder: str) -> dict[str, str]:
    """Scan the raw dataset once (only the rows of ``keys``) and write each partition's rows, in scan order, to
    its own folder of Parquet files under the local ``folder``. Returns partition → folder for the partitions
    that had rows.

    Why: cutting the datasets of many partitions out of thousands of period files must neither hold all their
    rows at once nor rescan every file per partition. Arrow's dataset writer splits the scan by partition in
    C++ with bounded buffers (10 s for 36.5M rows where sorting each 2M-row batch by partition in Python took
    17.5 s); the order of the rows is kept, so a duplicate key keeps its source order for the dedup later.
    """
    columns = {name: pc.field(name) for name in dataset.schema.names}
    columns[SPILL_KEY] = pc.field(PARTITION_COLUMN)
    scanner = dataset.scanner(columns=columns, filter=pc.field(PARTITION_COLUMN).isin(list(keys)))
    key_type = dataset.schema.field(PARTITION_COLUMN).type
    written: list[str] = []
    pads.write_dataset(
        scanner, folder, format="parquet",
        partitioning=pads.partitioning(pa.schema([(SPILL_KEY, key_type)]), flavor="hive"),
        file_options=pads.ParquetFileFormat().make_write_options(compression="lz4"),  # a local scratch copy
        min_rows_per_group=1 << 17, max_rows_per_group=1 << 20, preserve_order=True,
        existing_data_behavior="overwrite_or_ignore", file_visitor=lambda f: written.append(f.path),
    )
    prefix = f"{SPILL_KEY}="
    files: dict[str, str] = {}
    for path in written:
        parent = os.path.dirname(path)
        files[unquote(os.path.basename(parent).removeprefix(prefix))] = parent
    return files


def read_spilled(folder: str) -> pa.Table:
    """One partition's spilled rows in scan order (its files are numbered in the order they were started)."""
    names = sorted(os.listdir(folder), key=lambda n: int(n.removeprefix("part-").removesuffix(".parquet")))
    return pa.concat_tables([pq.read_table(os.path.join(folder, n)) for n in names])


def sorted_rows(frame: pd.DataFrame, ids: list[str], presorted: int = 0) -> pd.DataFrame:
    """``frame`` (canonical columns, one partition) sorted by ids then ``ds``, stable: duplicate keys keep their
    order (``sorted_order``)."""
    order, _, _ = sorted_order(frame, ids, presorted)
    return frame.reset_index(drop=True) if order is None else frame.take(order).reset_index(drop=True)


def sorted_order(frame: pd.DataFrame, ids: list[str], presorted: int = 0
                 ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The order that sorts ``frame`` by ids then ``ds``, stable (None: it is sorted already), and where each series
    starts and stops in that order → (order, starts, stops). The cut takes its rows once, in this order, for what it
    keeps: a sorted copy of the whole partition first was a tenth of its time.

    Its first ``presorted`` rows are already sorted with no duplicate keys (the previous cut's rows): then only the
    rest is sorted by the id strings, and the whole by integer ranks of the series (the strings of millions of rows
    are not compared again); when every new row is dated at or after its series' previous ones (a day's append),
    the two are merged as whole blocks per series, with no sort of the rows at all."""
    n = len(frame)
    if presorted >= n:
        starts, stops = key_boundaries(frame, ids)
        return None, starts, stops
    ds_all = frame[DS].to_numpy(dtype="datetime64[ns]").view(np.int64)
    if presorted <= 0:  # integer codes in the ids' sorted order: one stable sort of integers, as sort_values makes
        codes = [pd.factorize(frame[c], sort=True)[0] for c in ids]
        order = np.lexsort((ds_all, *reversed(codes)))
        change = np.zeros(n, dtype=bool)
        change[0] = True
        for c in codes:
            sorted_codes = c[order]
            change[1:] |= sorted_codes[1:] != sorted_codes[:-1]
        starts = np.flatnonzero(change)
        return order, starts, np.r_[starts[1:], n]
    head = frame.iloc[:presorted]
    tail = frame.iloc[presorted:].reset_index(drop=True)
    tail_order = tail.sort_values([*ids, DS], kind="stable").index.to_numpy()
    tail = tail.take(tail_order)
    h_starts, h_stops = key_boundaries(head, ids)
    t_starts, t_stops = key_boundaries(tail, ids)
    keys = pd.concat([head[ids].iloc[h_starts], tail[ids].iloc[t_starts]], ignore_index=True)
    rank = keys.groupby(ids, sort=True).ngroup().to_numpy()
    h_rank, t_rank = rank[: len(h_starts)], rank[len(h_starts):]
    positions = np.r_[np.arange(presorted), presorted + tail_order]
    ds = ds_all[positions]
    series_rank = np.r_[np.repeat(h_rank, h_stops - h_starts), np.repeat(t_rank, t_stops - t_starts)]
    block_order = _appended_blocks(ds, h_rank, h_starts, h_stops, t_rank, presorted + t_starts, presorted + t_stops,
                                   len(rank))
    if block_order is None:
        block_order = np.lexsort((ds, series_rank))
    sorted_rank = series_rank[block_order]
    starts = np.flatnonzero(np.r_[True, sorted_rank[1:] != sorted_rank[:-1]])
    return positions[block_order], starts, np.r_[starts[1:], n]


def _appended_blocks(ds: np.ndarray, h_rank, h_starts, h_stops, t_rank, t_starts, t_stops, ranks: int
                     ) -> np.ndarray | None:
    """The sorted order of a sorted head and a sorted tail as whole blocks of rows, when every series' new rows
    come after its previous ones (the daily append: a new day's file) → the rows' order, each series' head block
    then its tail block; None when some new row is dated before its series' last previous one.

    ``ds`` the rows' periods (head, then the sorted tail), blocks by series rank. Equal periods keep the head row
    first, as a stable sort would. O(rows), where a sort of millions of rows is not."""
    newest = np.full(ranks, np.iinfo(np.int64).min)
    newest[h_rank] = ds[h_stops - 1]
    if len(t_starts) and (ds[t_starts] < newest[t_rank]).any():
        return None
    block_rank = np.r_[h_rank, t_rank]
    block_start = np.r_[h_starts, t_starts]
    block_length = np.r_[h_stops - h_starts, t_stops - t_starts]
    order = np.lexsort((np.r_[np.zeros(len(h_rank)), np.ones(len(t_rank))], block_rank))  # blocks, not rows
    start, length = block_start[order], block_length[order]
    first_out = np.cumsum(length) - length  # where each block lands
    return np.repeat(start - first_out, length) + np.arange(len(ds))


def cut_partition(raw: pd.DataFrame, settings: Settings, key: str, presorted: int = 0,
                  data_end: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``cut_partition_apart`` without its dormant series' rows → (dataset, quality row)."""
    part, _, quality = cut_partition_apart(raw, settings, key, presorted, data_end)
    return part, quality


def cut_partition_apart(raw: pd.DataFrame, settings: Settings, key: str, presorted: int = 0,
                        data_end: pd.Timestamp | None = None, zeroed_at: pd.Timestamp | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Raw rows of one partition, in source order → (its dataset: canonical columns sorted by ids then ds,
    duplicates resolved keeping the last; the rows of its dormant series, kept apart from it the same way; its
    quality row, as ``quality_by_partition`` computes it).
    ``presorted``: the first rows are a previous cut's (``sorted_rows``). ``data_end``: the newest period of the
    whole source (every partition), which a series' rows are expected to reach; the partition's own when None.
    ``zeroed_at``: the source's newest period when its feed sent zeros (``zeroed_source_period``): the series' rows
    of 0 there after a sale before are held as ``zeroed_newest`` holds a store's.

    A dormant series (``Settings.dormant_after``: no row in a quarter before its store's newest period, under
    ``ingest.absent_periods: missing``) is a discontinued item: in the dataset it would be trained every day on
    the same rows and forecast from its own last row, for periods long past, and published as such. Its rows are
    returned apart so that the lake keeps them (``write_datasets``) and its first new row brings it back whole.

    The same result as ``to_series_frame`` + ``quality_by_partition`` + ``deduplicate``, computed on the sorted
    rows with neighbour comparisons and ``reduceat`` instead of per-row key strings and hash group-bys, which
    is what a partition of millions of rows needs.
    """
    cols = settings.columns
    frame = raw.rename(columns={cols.timestamp: DS, cols.target: Y})[[*cols.ids, DS, Y, *cols.regressors]]
    n = len(frame)
    order, starts, stops = sorted_order(frame, list(cols.ids), presorted)  # stable: duplicates keep source order

    def rows_of(sorted_rows_):  # positions in ``frame`` of rows (one or many) in the sorted order
        return sorted_rows_ if order is None else order[sorted_rows_]

    def taken(mask: np.ndarray) -> pd.DataFrame:  # the sorted rows of ``mask``, every column: the cut's one take
        return frame.take(rows_of(np.flatnonzero(mask))).reset_index(drop=True)

    # the values the rules read, sorted; the id strings are taken once, for the rows kept (``taken``)
    numeric = frame[[DS, Y, *cols.regressors]]
    values = numeric.reset_index(drop=True) if order is None else numeric.take(order).reset_index(drop=True)
    ds = values[DS].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    y = values[Y].to_numpy(dtype=float)
    observed = ~np.isnan(y)
    sid = np.repeat(np.arange(len(starts)), stops - starts)
    same_prev = np.zeros(n, dtype=bool)
    if n:
        same_prev[1:] = (ds[1:] == ds[:-1]) & (sid[1:] == sid[:-1])
    same_next = np.r_[same_prev[1:], False] if n else same_prev
    step = settings.step.value
    first, last = ds[starts], ds[stops - 1]
    rows = np.add.reduceat((~same_prev).astype(np.int64), starts) if n else np.zeros(0, np.int64)
    never = np.iinfo(np.int64).min
    last_obs = np.maximum.reduceat(np.where(observed, ds, never), starts) if n else np.zeros(0, np.int64)
    # gaps are missing periods up to a series' newest sale: planned rows after it are not history, and a plan row
    # dated years ahead is no outage
    sold = last_obs != never
    past = ds <= last_obs[sid] if n else np.zeros(0, dtype=bool)  # never: a series without a sale has no past
    past_rows = np.add.reduceat((~same_prev & past).astype(np.int64), starts) if n else np.zeros(0, np.int64)
    gaps = np.where(sold, np.clip((np.where(sold, last_obs, first) - first) // step + 1 - past_rows, 0, None), 0)
    distinct = np.flatnonzero(~same_prev)  # one row per (series, ds), sorted by series then ds
    d_ds, d_sid = ds[distinct], sid[distinct]
    run = np.zeros(len(distinct), dtype=np.int64)  # missing periods just before each distinct row
    if len(distinct) > 1:
        run[1:] = np.where(d_sid[1:] == d_sid[:-1], (d_ds[1:] - d_ds[:-1]) // step - 1, 0)
    run[~past[distinct]] = 0
    d_starts = np.flatnonzero(np.r_[True, d_sid[1:] != d_sid[:-1]]) if len(distinct) else distinct
    longest = np.maximum.reduceat(run, d_starts) if len(distinct) else np.zeros(0, np.int64)
    newest_obs = last_obs.max() if n else never
    # a long gap that ended within the newest year is news (an outage); an older one is history, counted only
    recent_run = np.where(d_ds >= newest_obs - recent_gap_periods(settings) * step, run, 0) if n else run
    longest_recent = np.maximum.reduceat(recent_run, d_starts) if len(distinct) else np.zeros(0, np.int64)
    zero_filled = settings.ingest.absent_periods == "zero"  # every series then runs up to the newest period
    history = np.where(last_obs == never, 0, ((newest_obs if zero_filled else last_obs) - first) // step + 1)
    missing_past = ~observed & past
    def named(row: int) -> str:  # the series of a row (in the sorted order), as the examples name it
        return series_key(frame.iloc[int(rows_of(row))][list(cols.ids)].tolist())

    extreme = extreme_targets(y, starts, sid) if n else np.zeros(0, dtype=np.int64)
    examples = [f"{named(i)} {pd.Timestamp(ds[i]).date()}: {y[i]:.6g}" for i in extreme[:3]]
    empty = [c for c in cols.regressors if not values[c].notna().any()] if n else []  # no rows: nothing to say
    slips, regressor_values = regressor_slips(values, cols.regressors)
    slip_examples: dict[str, list[str]] = {}
    for c, i in slips:
        if len(slip_examples.setdefault(c, [])) < 3:
            slip_examples[c].append(f"{named(i)} {pd.Timestamp(ds[i]).date()}: {c} = {values[c].iloc[i]:.6g}")
    above_one, share_values = share_slips(values, cols.regressors)
    above_one_examples: dict[str, list[str]] = {}
    for c, i in above_one:
        if len(above_one_examples.setdefault(c, [])) < 3:
            above_one_examples[c].append(f"{named(i)} {pd.Timestamp(ds[i]).date()}: {c} = {values[c].iloc[i]:.6g}")
    # a share whose 0 is stored as NULL reads as a price: named as such (``shares_without_zero``), not as a slip,
    # and it is empty in a newest period without displays: not named as late either
    without_zero = shares_without_zero(values, cols.regressors)
    not_null_for_zero = [c for c in cols.regressors if c not in without_zero]
    price_slips = newest_price_slips(values, not_null_for_zero, starts, observed & ~same_next,
                                     quarter_periods(int(step // 86_400_000_000_000))) if n else []
    planned_slips = planned_price_slips(values, not_null_for_zero, starts, observed & ~same_next) if n else []

    def slip_examples_of(found: list) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c, i, v, u in found:
            if len(out.setdefault(c, [])) < 3:
                out[c].append(f"{named(i)} {pd.Timestamp(ds[i]).date()}: {c} = {v:.6g}, {v / u:.3g}× its usual {u:.6g}")
        return out
    price_slip_examples = slip_examples_of(price_slips)
    empty_at_newest, empty_at_newest_series = regressors_empty_at_newest(values, not_null_for_zero, ds, observed & ~same_next)
    expected_end = max(newest_obs, pd.Timestamp(data_end).value) if data_end is not None else newest_obs
    # judged store by store: a hash bucket of stores (partition.buckets) holds many, each its own feed
    # each row's store, repeated from each series' first row: the store is one of the ids, constant within a series,
    # and converting millions of Arrow strings to Python objects cost a tenth of the cut
    series_store = frame[settings.partition.column].iloc[rows_of(starts)].to_numpy()
    store_of = np.repeat(series_store, stops - starts)
    dormant = dormant_series(last_obs, series_store, step,
                             0 if zero_filled else settings.dormant_after)
    # a series read as missing whose rows stop early; zero fills every series up to its partition's newest period
    # (a store whose rows stop early as a whole is named by the check from ``last_observed_ds`` and ``data_end``)
    early = np.flatnonzero((last_obs != never) & ~dormant
                           & ((newest_obs - last_obs) // step > settings.max_normal_gap))
    def with_last_row(k: int) -> str:  # a series named with its newest observed period
        return f"{named(starts[k])} last {pd.Timestamp(last_obs[k]).date()}"

    dormant_examples = [with_last_row(k) for k in np.flatnonzero(dormant)[:3]]
    early_examples = [] if zero_filled else [with_last_row(k) for k in early[:3]]
    long_recent = longest_recent > settings.max_normal_gap
    gap_examples = [] if zero_filled else _longest_gap_examples(
        np.flatnonzero(long_recent)[:3], recent_run, d_ds, d_starts, step, lambda k: named(starts[k]))
    older_gap_examples = [] if zero_filled else _longest_gap_examples(
        np.flatnonzero((longest > settings.max_normal_gap) & ~long_recent)[:3], run, d_ds, d_starts, step,
        lambda k: named(starts[k]))
    stopped, stopped_run, stopped_mean = (stopped_selling(y, ds, starts, sid, last_obs, step) if n
                                          else (np.zeros(0, np.int64),) * 3)
    awake = ~dormant[stopped]  # a dormant series is not forecast: its last quiet spell is no warning
    stopped, stopped_run, stopped_mean = stopped[awake], stopped_run[awake], stopped_mean[awake]
    stopped_examples = [f"{named(starts[k])}: no sale in its newest {r} periods (about {m * r:.0f} expected at its "
                        f"earlier mean of {m:.3g})" for k, r, m in zip(stopped[:3], stopped_run[:3], stopped_mean[:3])]
    # a series with planned rows only (a product not sold yet) has nothing to learn from: it waits for its first
    # sale, counted here, rather than failing in training every day
    unsold = last_obs == never
    # an absurd target (``extreme_targets``: a unit or decimal slip) is left out of the dataset, as a period without
    # a row: every model, the baseline and the envelope would otherwise forecast from it (one 100,000 among sales
    # of 20 made a moving-average baseline of 3,590); values_plausible names it, and the lake keeps the raw row
    absurd = np.zeros(n, dtype=bool)
    absurd[extreme] = True
    # a store's newest period at many times its series' usual level is a slip of its feed: left out like an absurd
    # target (the store is forecast from the period before); the next cut reads it again (the CutState says so)
    judged_rows = observed & ~absurd & ~same_next
    newest_rows, to_usual, usual = newest_ratios(y, ds, sid, judged_rows)
    held_newest, held_dates, store_level, level_series = store_slips(
        y, ds, store_of, judged_rows, newest_rows, to_usual, usual)
    zeroed, zeroed_stores = zeroed_newest(y, ds, store_of, judged_rows, newest_rows, usual, settings.is_daily)
    if zeroed_at is not None and n:  # the whole source's feed sent zeros: this partition's part of it
        extra = np.setdiff1d(zeroed_by_source(y, ds, sid, judged_rows, zeroed_at), zeroed)
        if len(extra):
            zeroed = np.union1d(zeroed, extra)
            zeroed_stores = sorted({*zeroed_stores, *(str(v) for v in store_of[extra])})
    held_newest[zeroed] = True
    slipped, slipped_by = series_slips(y, sid, store_of, judged_rows)
    held_newest[slipped[np.isin(slipped, newest_rows)]] = True  # the next cut reads the newest period again
    held_newest &= observed & ~absurd
    absurd |= held_newest
    absurd[slipped] = True  # an older slip stays out of the dataset as the cuts append to it
    series_slip_examples = [f"{named(i)} {pd.Timestamp(ds[i]).date()}: {y[i]:.6g}, {u:.3g}× its usual level"
                            for i, u in zip(slipped[:3], slipped_by[:3])]
    jumps = newest_jumps(y, starts, absurd)
    jump_examples = [f"{named(i)} {pd.Timestamp(ds[i]).date()}: {y[i]:.6g}" for i in jumps[:3]]
    runs = [r for r in lifted_runs(y, sid, judged_rows, newest_rows, to_usual, usual) if not absurd[r[0]]]
    run_examples = [f"{named(i)}: the newest {k} periods to {pd.Timestamp(ds[i]).date()} at {x:.3g}× its usual level"
                    for i, k, x in runs[:3]]
    kept = ~same_next & ~unsold[sid] & ~absurd
    asleep = taken(kept & dormant[sid]) if n else frame
    part = taken(kept & ~dormant[sid]) if n else frame
    filled = 0
    if zero_filled and n and (observed & ~absurd).any():
        # up to the newest period kept: a held newest period (a slip) filled with zeros read as a week without sales
        part, filled = fill_absent_periods(part, list(cols.ids), list(cols.regressors), settings.step,
                                           pd.Timestamp(int(ds[observed & ~absurd].max())))
        if absurd.any():  # nor is a value left out (a held slip, an absurd target) a period without sales
            keys = [*cols.ids, DS]
            held_keys = taken(absurd)[keys].drop_duplicates()
            at_held = part[keys].merge(held_keys, on=keys, how="left", indicator=True)["_merge"].eq("both")
            filled -= int(at_held.sum())
            part = part[~at_held.to_numpy()].reset_index(drop=True)
    quality = pd.DataFrame(
        {
            "series": [len(starts)],
            "rows": [int(rows.sum())],
            "gaps": [int(gaps.sum())],
            "series_with_gaps": [int((gaps > 0).sum())],
            # zero reads a run of absent periods as no sales, not as an outage
            "series_with_long_gaps": [0 if zero_filled else int((longest > settings.max_normal_gap).sum())],
            "series_with_recent_long_gaps": [0 if zero_filled else int(long_recent.sum())],
            "long_gap_examples": [gap_examples],
            "older_long_gap_examples": [older_gap_examples],
            "short_series": [int((history < settings.min_train_periods + settings.horizon).sum())],
            "first_ds": [pd.Timestamp(int(first.min())) if n else pd.NaT],
            "last_ds": [pd.Timestamp(int(last.max())) if n else pd.NaT],
            "duplicate_keys": [int((same_prev | same_next).sum())],
            "negative_target": [int((y < 0).sum())],
            "missing_target": [int(missing_past.sum())],
            "extreme_target": [len(extreme)],
            "extreme_target_examples": [examples],
            "newest_jumps": [len(jumps)],
            "newest_jump_examples": [jump_examples],
            "lifted_runs": [len(runs)],
            "lifted_run_examples": [run_examples],
            "store_newest_level": [store_level],
            "store_newest_level_series": [level_series],
            "series_slips_held": [len(slipped)],
            "series_slips_held_examples": [series_slip_examples],
            "store_newest_held_rows": [int(held_newest.sum())],
            "zeroed_newest_series": [len(zeroed)],
            "zeroed_newest_examples": [[f"{store} {pd.Timestamp(ds[zeroed[0]]).date()}" for store in zeroed_stores[:3]]],
            "store_held_periods": [len(held_dates)],
            "empty_regressors": [empty],
            "regressor_slips": [dict(Counter(c for c, _ in slips))],  # per column
            "regressor_slip_examples": [slip_examples],
            "newest_price_slips": [dict(Counter(c for c, *_ in price_slips))],  # per column
            "newest_price_slip_examples": [price_slip_examples],
            "planned_price_slips": [dict(Counter(c for c, *_ in planned_slips))],  # per column: series
            "planned_price_slip_examples": [slip_examples_of(planned_slips)],
            "regressors_empty_at_newest": [empty_at_newest],
            "regressors_empty_at_newest_series": [empty_at_newest_series],
            "shares_without_zero": [without_zero],
            "regressor_values": [regressor_values],
            "share_slips": [{c: counts[3] for c, counts in share_values.items() if counts[3]}],  # per column
            "share_slip_examples": [above_one_examples],
            "share_values": [share_values],
            "last_observed_ds": [pd.Timestamp(int(newest_obs)) if n and newest_obs != never else pd.NaT],
            "data_end": [pd.Timestamp(int(expected_end)) if expected_end != never else pd.NaT],
            "series_ending_early": [0 if zero_filled else len(early)],
            "series_ending_early_examples": [early_examples],
            "series_dormant": [int(dormant.sum())],
            "series_dormant_examples": [dormant_examples],
            "series_stopped_selling": [len(stopped)],
            "series_stopped_selling_examples": [stopped_examples],
            "series_without_sales": [int(unsold.sum())],
            "series_without_sales_examples": [[named(starts[k]) for k in np.flatnonzero(unsold)[:3]]],
            "zero_filled_periods": [filled],
        },
        index=pd.Index([key], name=PARTITION_COLUMN),
    )
    return part, asleep, quality


def dormant_series(last_obs: np.ndarray, store: np.ndarray, step: int, after: int) -> np.ndarray:
    """Which series (``last_obs``: each one's newest observed period, int64 ns, ``never`` for none; ``store``:
    each one's store) have had no row for ``after`` periods or more before their store's newest (none when
    ``after`` is 0). Judged against the store, not the partition: a hash bucket of stores holds many feeds, and
    a store whose feed stopped as a whole is a late store (``series_reach_data_end`` names it), not dormant."""
    never = np.iinfo(np.int64).min
    if after <= 0 or not len(last_obs):
        return np.zeros(len(last_obs), dtype=bool)
    newest = pd.Series(last_obs).groupby(store, dropna=False).transform("max").to_numpy()
    return (last_obs != never) & ((newest - last_obs) // step >= after)


def recent_gap_periods(settings: Settings) -> int:
    """A year of periods: a long gap that ended within the newest year of a store's data is an outage to warn of
    (the models' seasonal lag and yearly levels read it); an older one is history, counted in the metadata only,
    so that a store's outage of years ago does not keep its check red for good."""
    return 365 if settings.is_daily else 52


def _longest_gap_examples(series: np.ndarray, run: np.ndarray, d_ds: np.ndarray, d_starts: np.ndarray, step: int,
                          name: Callable[[int], str]) -> list[str]:
    """Where the longest run of missing periods of each of ``series`` is (``run``: the missing periods before each
    distinct row, ``d_starts``: each series' first one), as the check names them: an outage, or one row dated
    years away from its series' others (a mistyped year) that only its dates give away."""
    bounds = np.r_[d_starts, len(run)]
    out = []
    for k in series:
        j = int(bounds[k] + np.argmax(run[bounds[k]:bounds[k + 1]]))
        before, after = pd.Timestamp(int(d_ds[j - 1] + step)), pd.Timestamp(int(d_ds[j] - step))
        out.append(f"{name(int(k))}: {int(run[j]):,} periods missing, {before.date()} to {after.date()}")
    return out


# ---- the series_datasets step: raw period files → one sorted dataset per store partition ------------------
DATASET_FOLDER = "datasets"
PARTITIONS_IN_FLIGHT = 2  # partitions cut at once by ``write_datasets``


class DatasetsError(ValueError):
    """The raw files cannot be cut into datasets; nothing was written."""


def dataset_file(partition_key: str) -> str:
    return f"{DATASET_FOLDER}/{partition_key}.parquet"


DORMANT_FOLDER = f"{DATASET_FOLDER}/dormant"
DORMANT_ROWS_KEY = "mm_assets.dormant_rows"  # a dataset's footer: the rows of its dormant file, cut with it
# a dataset's footer: its rows within each series' newest periods that a global model's training reads
# (``training_window_rows``): what sizes the runs (``partition_rows``)
TRAINING_ROWS_KEY = "mm_assets.training_rows"


def dormant_file(partition_key: str) -> str:
    """Where the rows of a partition's dormant series (``cut_partition_apart``) are kept: beside its dataset,
    which trains, scores and serves from, so that nothing of them is read there; the next cut reads them again."""
    return f"{DORMANT_FOLDER}/{partition_key}.parquet"


def dormant_rows(footer: dict[str, str]) -> int:
    """The rows of the dormant file a dataset (its ``footer``) was cut with; 0 for none."""
    return int(footer.get(DORMANT_ROWS_KEY, "0") or 0)


def dormant_keys(lake, keys: list[str], ids: list[str]) -> list[str]:
    """The series keys of the dormant series of the partitions ``keys`` (those their current datasets were cut
    with), sorted: the cycle summary names them apart from the series gone from the source."""
    found: set[str] = set()
    for key in keys:
        if lake.exists(dormant_file(key)) and dormant_rows(lake.footer_metadata(dataset_file(key))):
            found.update(series_keys(lake.read_parquet(dormant_file(key), columns=ids).drop_duplicates(), ids))
    return sorted(found)


def dormant_intact(lake, key: str, footer: dict[str, str], state) -> bool:
    """Whether a partition's dormant file is the one its dataset (footer ``footer``, ``CutState`` ``state``) was
    cut with: same state, as many rows as the dataset's footer says. A cut interrupted between the two files
    leaves them apart, and an append would then lose the dormant series' rows: the partition is cut from every
    file instead."""
    from mm_assets.ingest.cut_state import CutState

    expected = dormant_rows(footer)
    if not expected:
        return True
    return (CutState.from_footer(lake.footer_metadata(dormant_file(key))) == state
            and lake.footer_rows(dormant_file(key)) == expected)


def _plan_by_partition(lake, keys: list[str]) -> dict[str, pd.DataFrame]:
    """The current plan's rows (``raw/plan/current.parquet``) of ``keys``, by partition."""
    from mm_assets.ingest.periods import PLAN_FILE

    if not lake.exists(*PLAN_FILE):
        return {}
    plan = lake.read_table(*PLAN_FILE, filters=[(PARTITION_COLUMN, "in", keys)]).to_pandas()
    return dict(tuple(plan.groupby(PARTITION_COLUMN, sort=False))) if len(plan) else {}


def _raw_columns(settings: Settings) -> list[str]:
    cols = settings.columns
    return [*cols.ids, cols.timestamp, cols.target, *cols.regressors]


def _previous_rows(lake, settings: Settings, path: str, newest: pd.Timestamp) -> pd.DataFrame:
    """The rows a partition's dataset (or its dormant file) at ``path`` was cut from (its planned rows after
    ``newest`` left out), back in the raw columns: with no duplicate keys in that cut, they are exactly the raw
    rows it read."""
    cols = settings.columns
    frame = lake.read_parquet(path)
    frame = frame[frame[DS] <= newest] if (frame[DS] > newest).any() else frame
    return frame.rename(columns={DS: cols.timestamp, Y: cols.target})[_raw_columns(settings)]


def _spill(lake, folder, names: list[str], keys: list[str], spill_dir: str) -> dict[str, str]:
    """Spill the rows of ``keys`` from the raw files ``names`` (exactly those: a file written meanwhile waits for
    the next cut, which will see it as new)."""
    try:
        return spill_by_partition(lake.files_dataset(folder, names), keys, spill_dir)
    except (pa.ArrowInvalid, OSError) as exc:  # a damaged period file: say which and how to heal it
        raise DatasetsError(
            f"raw_sales files in the lake cannot be read: {exc}. Re-ingest that period (materialize its raw_sales "
            "partition, or run `mm-assets cycle`, which re-ingests every period); nothing was written."
        ) from None


def newest_period(lake, names: list[str], timestamp: str, target: str) -> pd.Timestamp | None:
    """The source's newest observed period: the newest timestamp with a target in the raw period files ``names``
    (every store's), newest file first, read for those two columns alone. A period file after the newest sale
    can hold planned rows only (target empty: a source whose sales arrive later than its plan); they are not
    observations, and a store is not behind a source that has no sales there either."""
    from mm_assets.ingest.periods import RAW_FOLDER

    for name in sorted(names, reverse=True):
        try:
            table = lake.read_table(*RAW_FOLDER, name, columns=[timestamp, target])
        except (pa.ArrowInvalid, OSError, KeyError):  # damaged: the cut names it
            continue
        observed = table.filter(pc.is_valid(table[target]))
        if observed.num_rows:
            return pd.Timestamp(pc.max(observed[timestamp]).as_py())
    return None


ZEROED_SOURCE_SHARE = 0.9  # of the series selling before the newest period, the share at 0 that makes it a slip


def zeroed_source_period(lake, names: list[str], cfg: Settings) -> pd.Timestamp | None:
    """The source's newest period when the feed sent it as zeros (None otherwise): ``ZEROED_SOURCE_SHARE`` or more
    of the series that sold ``STOPPED_EXPECTED_SALES`` or more in the period before (``ZEROED_MIN_SERIES`` of them,
    in two stores or more) sold exactly 0 there. Judged over every store's raw period files (``names``), the two
    newest with sales, two columns and the ids read: a store partition's cut sees only its own series, and a
    source of one-series stores (retailer accounts) has no store that could show it alone (``zeroed_newest``).
    Why: one week of zeros from the feed took every cheese store's forecast from 132,824 to 4,298 a week."""
    from mm_assets.ingest.periods import RAW_FOLDER

    cols = cfg.columns
    wanted = [*cols.ids, cols.timestamp, cols.target]

    def sold(name: str) -> pd.DataFrame | None:  # a period file's rows with a target (None: damaged or absent)
        try:
            frame = lake.read_table(*RAW_FOLDER, name, columns=wanted).to_pandas()
        except (pa.ArrowInvalid, OSError, KeyError, FileNotFoundError):  # damaged: the cut names it
            return None
        return frame[frame[cols.target].notna()]

    # the period files with sales, newest first, each read once (a damaged one stops the search: None)
    with_sales = ((name, frame) for name in sorted(names, reverse=True)
                  if (frame := sold(name)) is None or len(frame))
    name, newest = next(with_sales, (None, None))
    if newest is None:
        return None
    if cfg.is_daily:  # the same weekday a week before: a source that writes 0 for closed Sundays is closed then too
        week_before = f"{(pd.Timestamp(name.removesuffix('.parquet')) - pd.Timedelta(days=7)).date()}.parquet"
        before = sold(week_before) if week_before in names else None
    else:
        before = next(with_sales, (None, None))[1]
    if before is None or not len(before):
        return None
    ids = list(cols.ids)
    pair = before.groupby(ids)[cols.target].sum().to_frame("before").join(
        newest.groupby(ids)[cols.target].sum().to_frame("newest"), how="inner")
    selling = pair[pair["before"] >= STOPPED_EXPECTED_SALES]
    stores = selling.index.get_level_values(cfg.partition.column) if cfg.partition.column in ids else None
    if len(selling) < ZEROED_MIN_SERIES or (stores is not None and stores.nunique() < 2):
        return None
    if (selling["newest"] == 0).mean() < ZEROED_SOURCE_SHARE:
        return None
    return pd.Timestamp(newest[cols.timestamp].max())


def training_window_of(cfg: Settings) -> tuple[int, int]:
    """(periods, a period in ns): each series' newest periods that a global model's training reads
    (``global_lgbm.history_periods``, with the settings' model options when the model is global, else its
    defaults): the window ``training_window_rows`` counts, whichever model the settings name."""
    from mm_assets.forecasting.global_lgbm import history_periods
    from mm_assets.forecasting.models import is_global
    from mm_assets.forecasting.series import SeriesConfig

    series = SeriesConfig.from_settings(cfg)
    params = cfg.model.params if is_global(cfg.model.type) else None
    return history_periods(series, params), int(series.step.value)


def training_window_rows(part: pd.DataFrame, cfg: Settings, window: tuple[int, int]) -> int:
    """The rows of a dataset (sorted by the ids) within each series' newest ``window`` (planned rows included).

    Why: a global model's run holds in memory the rows its training reads, not the dataset: at 4,000 days of
    daily history that is two years of each series, 18 % of the rows. Runs sized by every row
    (``schedule.rows_per_run``) cut the 10,000 series of the benchmark into two global models where one fits in
    the same memory, each costing a whole fit."""
    from mm_assets.forecasting.panel import recent_mask

    if not len(part):
        return 0
    return int(recent_mask(part, list(cfg.columns.ids), *window).sum())


def write_datasets(lake, cfg: Settings, keys: list[str], spill_dir: str) -> tuple[pd.DataFrame, list[str]]:
    """Cut every store partition of ``keys`` from the raw period files, with the plan's rows after its newest
    period, into ``dataset_file(key)`` → (quality per partition, with the ``cut`` done; partitions that had no
    rows: their dataset is empty).

    A partition whose dataset records a cut it can extend (``CutState.appendable``: the daily case, one new
    period file) gets only the new files' rows appended; the others are cut from every file, in one scan (rows
    spilled per partition under ``spill_dir``, then one partition in memory at a time)."""
    from mm_assets.ingest.cut_state import CutState, plan_digest
    from mm_assets.ingest.periods import RAW_FOLDER

    signatures = lake.signatures(*RAW_FOLDER, suffix=".parquet")
    window = training_window_of(cfg)
    if not signatures:
        raise DatasetsError("no raw_sales files in the lake yet: materialize raw_sales partitions first")
    appends: dict[str, tuple[CutState, list[str]]] = {}
    dormant_expected: dict[str, int] = {}  # the rows of each partition's dormant file, by its dataset's footer
    damaged: set[str] = set()  # datasets whose footer cannot be read: cut from every file, and said so
    for key in keys:
        footer = lake.footer_metadata(dataset_file(key))
        if lake.exists(dormant_file(key)):
            dormant_expected[key] = dormant_rows(footer)
        if not footer and lake.exists(dataset_file(key)) and not lake.readable(dataset_file(key)):
            damaged.add(key)
        state = CutState.from_footer(footer)
        new = state.appendable(cfg, signatures) if state is not None else None
        if new is not None and dormant_intact(lake, key, footer, state):
            appends[key] = (state, new)
    full = [k for k in keys if k not in appends]
    files = _spill(lake, RAW_FOLDER, list(signatures), full, os.path.join(spill_dir, "all")) if full else {}
    by_files: dict[tuple[str, ...], list[str]] = {}
    for key, (_, new) in appends.items():
        by_files.setdefault(tuple(new), []).append(key)
    for n, (names, group) in enumerate(by_files.items()):
        if names:
            files.update(_spill(lake, RAW_FOLDER, list(names), group, os.path.join(spill_dir, f"new{n}")))
    plan = _plan_by_partition(lake, keys)
    ts, columns = cfg.columns.timestamp, _raw_columns(cfg)
    data_end = newest_period(lake, list(signatures), ts, cfg.columns.target)
    zeroed_at = zeroed_source_period(lake, list(signatures), cfg) if data_end is not None else None

    def cut_one(key: str) -> tuple[pd.DataFrame, bool]:
        """Cut and write one partition's dataset → (its quality row, whether it had no rows)."""
        parts, empty = [], False
        unreadable = "its footer cannot be read (cut short, or not Parquet)" if key in damaged else None
        state, new = appends.get(key, (None, None))
        newest = state.kept_through(new) if state is not None else None
        spilled_folder = files.get(key)
        if state is not None:
            try:
                parts.append(_previous_rows(lake, cfg, dataset_file(key), newest))
                if dormant_expected.get(key):  # after the dataset's sorted rows: merged as new ones
                    parts.append(_previous_rows(lake, cfg, dormant_file(key), newest))
            except (pa.ArrowInvalid, OSError) as exc:  # a damaged dataset: this store is cut from every file
                parts = []
                unreadable, new, newest = f"{type(exc).__name__}: {exc}"[:200], None, None
                healed = _spill(lake, RAW_FOLDER, list(signatures), [key], os.path.join(spill_dir, f"heal-{key}"))
                spilled_folder = healed.get(key)
        presorted = len(parts[0]) if parts else 0
        if spilled_folder is not None:
            spilled = read_spilled(spilled_folder).to_pandas()
            lacking = [c for c in columns if c not in spilled.columns]
            if lacking:  # a column added to the settings after these period files were ingested
                raise DatasetsError(
                    f"raw_sales period files in the lake lack the column{'s' if len(lacking) > 1 else ''} "
                    f"{', '.join(lacking)} that the settings now read (columns): they were ingested before "
                    f"{'they were' if len(lacking) > 1 else 'it was'} added. Re-ingest every period so that they "
                    "have it: materialize every raw_sales partition (a backfill in the UI) or run `mm-assets "
                    "cycle`, which re-ingests every period; the datasets already in the lake are unchanged.")
            parts.append(spilled[columns])
            latest = spilled[ts].max()
            newest = latest if newest is None or latest > newest else newest
        raw = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0] if parts else None
        if raw is None or not len(raw):  # registered, but no rows (closed or renamed): an empty dataset
            empty = True
            text = set(cfg.columns.ids)
            raw = pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == ts else "str" if c in text else float)
                                for c in columns})
            newest = None
        planned = plan.get(key)
        if planned is not None and newest is not None:  # planned rows after the partition's newest period
            planned = planned.loc[planned[ts] > newest, columns]
            raw = pd.concat([raw, planned], ignore_index=True)
        else:
            planned = None
        part, asleep, quality = cut_partition_apart(raw, cfg, key, presorted, data_end, zeroed_at)
        del raw
        # a newest period left out (a store-wide slip) is read again by the next cut: no newest, nothing to append to
        held = int(quality["store_newest_held_rows"].iloc[0]) > 0
        sold = quality["last_observed_ds"].iloc[0]
        done = CutState.of_cut(cfg, signatures, None if held else newest, int(quality["duplicate_keys"].iloc[0]),
                               plan_digest(planned), None if pd.isna(sold) else sold)
        unchanged = new == [] and state == done  # nothing appended, the same plan: the file already holds this
        quality["cut"] = ("unchanged: no new period file and the same plan, the file is kept as it is" if unchanged
                          else f"appended {len(new)} new period file{'s' if len(new) != 1 else ''}"
                          + (" (with the periods of planned rows after its newest sale, read again)"
                             if new and min(new) <= state.last_source else "") if new is not None
                          else f"cut from all {len(signatures):,} period files"
                          + (f" (the previous dataset could not be read: {unreadable})" if unreadable else "")
                          + (" (ingest.absent_periods: zero cuts from every file: its filled periods are not raw "
                             "rows)" if cfg.ingest.absent_periods == "zero" else ""))
        if not unchanged:
            # the dormant rows first: a dataset names the dormant file it was cut with (``dormant_intact``)
            if len(asleep):
                lake.write_parquet(asleep, dormant_file(key), metadata=done.footer())
            lake.write_parquet(part, dataset_file(key),
                               metadata={**done.footer(), TRAINING_ROWS_KEY: str(training_window_rows(part, cfg, window)),
                                         **({DORMANT_ROWS_KEY: str(len(asleep))} if len(asleep) else {})})
            if not len(asleep) and dormant_expected.get(key) is not None:
                lake.delete(dormant_file(key))
        return quality, empty

    # Two partitions at a time: one's Parquet reading and writing (Arrow, outside the GIL) overlaps the other's
    # sorting, and memory holds two partitions, not all of them.
    with ThreadPoolExecutor(max_workers=min(PARTITIONS_IN_FLIGHT, len(keys) or 1)) as pool:
        results = list(pool.map(cut_one, keys))
    release_freed()  # the pools keep the freed buffers otherwise (~0.25 GB here)
    missing = [key for key, (_, empty) in zip(keys, results, strict=True) if empty]
    return pd.concat([quality for quality, _ in results]), missing
