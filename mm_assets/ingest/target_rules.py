"""The rules a partition's target values are judged by as its dataset is cut: values a feed got wrong (a unit or
decimal slip in one row, a store's whole newest period lifted or zeroed, a series at many times its level), and
series that stopped selling where their earlier rate expects sales.

Why a module of its own: each rule is a vectorised pass over the sorted rows of one partition (``y``, ``ds`` and
each row's series ``sid`` or store), which the cutter (``ingest.datasets``) calls and whose findings the data
quality checks name; the global model's training reuses ``extreme_targets`` to leave absurd targets out.

No Dagster, no Parquet: numpy (and pandas for a group-by), so that training and the entry scripts can import it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# a target this many times its series' other values: a unit or decimal slip? Real weeks reach 150 times
# (orangeJuice; tuna 40, cheese 16, the demo's days 17): a spike of 388 times in tuna passed at 1,000
EXTREME_TARGET_MULTIPLE = 300.0
SEVERAL_SLIPS_RATIO = 100.0  # a largest value this many times the mean of the others: look for more slips
SLIP_SHARE = 0.02  # the share of a series' largest values its level then leaves out (at least one)
STOPPED_EXPECTED_SALES = 10.0  # units a series' earlier mean rate expects over its trailing run without sales
STOPPED_MIN_PERIODS = 3


def stopped_selling(y: np.ndarray, ds: np.ndarray, starts: np.ndarray, sid: np.ndarray, last_obs: np.ndarray,
                    step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Series (sorted rows; ``last_obs``: each one's newest observed period) whose newest observed periods have
    been without a sale for ``STOPPED_MIN_PERIODS`` or more periods, where their earlier mean rate expects
    ``STOPPED_EXPECTED_SALES`` or more units over that run (the chance of no sale at all is below e^-10 for
    Poisson-like sales: not a slow mover's normal quiet spell). → (series indices, run lengths, earlier means).

    Why: a store whose sales stop (a closure, a feed that sends zeros) passed every other check, and its
    champions, whose longest leads cannot see the newest periods, forecast normal sales for weeks."""
    never = np.iinfo(np.int64).min
    sold = ~np.isnan(y) & (y > 0)
    last_sale = np.maximum.reduceat(np.where(sold, ds, never), starts) if len(y) else np.zeros(0, np.int64)
    has = (last_sale != never) & (last_obs != never)
    run = np.where(has, (last_obs - np.where(has, last_sale, 0)) // step, 0)
    before = ~np.isnan(y) & (ds <= last_sale[sid])
    total = np.add.reduceat(np.where(before, y, 0.0), starts) if len(y) else np.zeros(0)
    count = np.add.reduceat(before.astype(np.int64), starts) if len(y) else np.zeros(0, np.int64)
    mean = total / np.maximum(count, 1)
    stopped = np.flatnonzero(has & (run >= STOPPED_MIN_PERIODS) & (mean * run >= STOPPED_EXPECTED_SALES))
    return stopped, run[stopped], mean[stopped]


NEWEST_JUMP_MULTIPLE = 20.0  # a newest target this many times its series' largest before: a slip, or news?
NEWEST_JUMP_HISTORY = 26  # observations a series needs before its newest is judged against them


def newest_observed_rows(observed: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each series' newest ``observed`` row (rows sorted by series, then period; series starting at ``starts``),
    -1 for a series without one."""
    return np.maximum.reduceat(np.where(observed, np.arange(len(observed)), -1), starts)


def newest_jumps(y: np.ndarray, starts: np.ndarray, absurd: np.ndarray) -> np.ndarray:
    """Positions of the series' newest observations (rows sorted by series, series starting at ``starts``) that
    are more than ``NEWEST_JUMP_MULTIPLE`` times the largest of their ``NEWEST_JUMP_HISTORY`` or more earlier ones
    (at least 1); ``absurd`` rows (``extreme_targets``, left out) are not judged. Why: a unit slip of ×100 in the
    newest period stays far below ``EXTREME_TARGET_MULTIPLE`` of a series' mean, lifts the sanity envelope
    with it, and was forecast and promoted without a word. The largest earlier value makes real promotion weeks
    pass: on orangeJuice's 82,401 observations with half a year before them, none exceeds 16 times it. A warning
    only: the value stays (it may be real news)."""
    n = len(y)
    if not n:
        return np.zeros(0, dtype=np.int64)
    observed = ~np.isnan(y) & ~absurd
    last = newest_observed_rows(observed, starts)
    found = last >= 0
    before = np.where(observed, y, -np.inf)
    before[last[found]] = -np.inf
    largest = np.maximum.reduceat(before, starts)
    count = np.add.reduceat(observed.astype(np.int64), starts) - 1
    newest = y[np.where(found, last, 0)]
    jump = found & (count >= NEWEST_JUMP_HISTORY) & (newest > NEWEST_JUMP_MULTIPLE * np.maximum(largest, 1.0))
    return last[jump].astype(np.int64)


STORE_JUMP_MULTIPLE = 6.0  # a store's series at this many times their usual level in its newest period: a slip?
STORE_JUMP_MIN_SERIES = 4  # series a store needs at its newest period with history (3 of 4 lifted: a median above)
# a store with fewer series is judged series by series: a newest value this many times its usual level, and this
# many times the largest value before it (real promotion weeks reach 41 times the usual level on cheese)
SERIES_SLIP_USUAL_MULTIPLE = 30.0
SERIES_SLIP_LARGEST_MULTIPLE = 2.0


def newest_ratios(y: np.ndarray, ds: np.ndarray, sid: np.ndarray,
                  kept: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values of a partition's series in its newest period, against their own history: (their row positions,
    each divided by its series' usual level, the usual levels), the levels at least 1.
    Only series with ``NEWEST_JUMP_HISTORY`` earlier observations whose median (the usual level) is above 0 are
    judged: a series mostly at zero (a slow mover, a store reopening after weeks of zero rows) says nothing of a
    slip. ``kept``: the rows judged (observed, not absurd, one per period). Rows sorted by series (``sid``) then
    ``ds``."""
    rows = np.flatnonzero(kept)
    nothing = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    if not len(rows):
        return nothing
    owner = sid[rows]
    ends = np.flatnonzero(np.r_[owner[1:] != owner[:-1], True])
    counts = np.diff(np.r_[-1, ends])
    judged = np.flatnonzero((counts > NEWEST_JUMP_HISTORY) & (ds[rows[ends]] == ds[rows].max()))
    if not len(judged):
        return nothing
    usual = np.median(y[rows[ends[judged][:, None] - np.arange(NEWEST_JUMP_HISTORY, 0, -1)]], axis=1)
    judged, usual = judged[usual > 0], usual[usual > 0]
    newest, usual = y[rows[ends[judged]]], np.maximum(usual, 1.0)
    return rows[ends[judged]], newest / usual, usual


def lifted_run(y: np.ndarray, ds: np.ndarray, kept: np.ndarray, newest_rows: np.ndarray,
               usual: np.ndarray) -> np.ndarray:
    """The periods just before a store's lifted newest one (its level, ``store_slips``, at ``STORE_JUMP_MULTIPLE`` or
    more) that are lifted as well: each back from the newest while its series (``STORE_JUMP_MIN_SERIES`` or more)
    are at a median of ``STORE_JUMP_MULTIPLE`` times the usual level the newest was judged by. → their dates.

    Why: a feed that changed units for good (cases read as units from some week on) lifts every period since;
    holding the newest alone let each earlier slipped period into the dataset once a later one was newest, and the
    models followed the slip a period at a time. Once half the usual level's ``NEWEST_JUMP_HISTORY`` periods are
    lifted, the newest is the usual level and nothing is held: a change that lasts that long is taken as real.
    ``kept``, ``newest_rows``, ``usual``: as ``newest_ratios`` takes and gives them (rows sorted by series then ds).
    """
    rows = np.flatnonzero(kept)
    at = np.searchsorted(rows, newest_rows)
    back = rows[at[:, None] - np.arange(1, NEWEST_JUMP_HISTORY + 1)]  # the kept rows before, of the same series
    ratio = pd.DataFrame({"ds": ds[back].ravel(), "ratio": (y[back] / usual[:, None]).ravel()})
    per_period = ratio.groupby("ds")["ratio"].agg(["median", "size"]).sort_index(ascending=False)
    lifted = (per_period["median"] >= STORE_JUMP_MULTIPLE) & (per_period["size"] >= STORE_JUMP_MIN_SERIES)
    return per_period.index[: int(np.argmin(lifted.to_numpy())) if not lifted.all() else len(lifted)].to_numpy()


def store_slips(y: np.ndarray, ds: np.ndarray, store_of: np.ndarray, kept: np.ndarray, newest_rows: np.ndarray,
                to_usual: np.ndarray, usual: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """The slips of a partition's newest period, judged per store (``store_of``: each row's store; a partition is
    one store, or a hash bucket of many, each its own feed): (rows held, the dates held, the highest store level and
    its store's series). The other arguments as ``newest_ratios`` and ``lifted_run`` take and give them.

    A store's level is the median of its series' newest values over their usual levels (``to_usual``), from
    ``STORE_JUMP_MIN_SERIES`` series on. A unit slip of a whole store's feed (cases read as units, ×10) stays below
    ``newest_jumps`` in each series, since promotion weeks are many times an ordinary week; but promotions do not
    lift every product of a store at once. From ``STORE_JUMP_MULTIPLE`` on, the store's newest period and the lifted
    ones before it (``lifted_run``) are held (a published forecast ten times too high orders ten times too much),
    and read again by the next cut. On orangeJuice's 7,491 store-weeks with half a year before them the median
    ratio is at most 3.0 (tuna 1.9, the demo's days 2.5): ``STORE_JUMP_MULTIPLE`` is twice that. A smaller store's
    series are judged one by one (``series_slips``).

    Per store, not per partition: cheese's retailers hashed into 8 buckets of 8-14 one-series stores were judged
    as one store, so a ×100 slip of one retailer passed (the median of the others was their usual level) and its
    naive baseline was published at 100 times its sales."""
    held, dates = np.zeros(len(y), dtype=bool), np.zeros(0, dtype=np.int64)
    if not len(newest_rows):
        return held, dates, float("nan"), 0
    codes, stores = pd.factorize(store_of[newest_rows])
    counts = np.bincount(codes)
    levels = pd.Series(to_usual).groupby(codes).median().reindex(range(len(stores))).to_numpy(dtype=float, copy=True)
    levels[counts < STORE_JUMP_MIN_SERIES] = np.nan
    for g in np.flatnonzero(levels >= STORE_JUMP_MULTIPLE):  # rare: a slip of a store's whole feed
        mine = codes == g
        store_dates = np.r_[ds[newest_rows[mine][0]], lifted_run(y, ds, kept, newest_rows[mine], usual[mine])]
        held |= np.isin(ds, store_dates) & (store_of == stores[g])
        dates = np.union1d(dates, store_dates)
    if np.isnan(levels).all():
        return held, dates, float("nan"), len(newest_rows)
    top = int(np.nanargmax(levels))
    return held, dates, float(levels[top]), int(counts[top])


ZEROED_MIN_SERIES = 2  # series a zeroed newest period needs together (one series at 0 may have stopped for real)


def zeroed_newest(y: np.ndarray, ds: np.ndarray, store_of: np.ndarray, kept: np.ndarray, newest_rows: np.ndarray,
                  usual: np.ndarray, daily: bool) -> tuple[np.ndarray, list[str]]:
    """The rows of a partition's newest period that a feed sent as zeros: (those rows, their stores). Judged on the
    series whose usual level (``newest_ratios``) expects ``STOPPED_EXPECTED_SALES`` or more: a store's, when it has
    ``ZEROED_MIN_SERIES`` of them, else the partition's stores too small to judge alone, together. When every one
    of them is 0 in the newest period and they sold in the period before, the period is held as a store slip is
    (left out of the dataset, read again by the next cut). A second zero period in a row is taken as real (a store
    that closed).

    Why: one week of zeros from the feed (an extract that wrote 0 for "not in yet") took every store's newest
    forecast on cheese from 132,824 to 4,298 units a week, with no warning: the models follow the newest week,
    and the slip rules looked only for values too high. One series at 0 is left alone: a product can stop.
    ``daily``: "the period before" is the same weekday a week before (when it has a row): a store whose source
    writes 0 for its closed Sundays is closed the Sunday before too. ``ds``: each row's date (int64 ns)."""
    nothing = np.zeros(0, dtype=np.int64), []
    if not len(newest_rows):
        return nothing
    rows = np.flatnonzero(kept)
    at = np.searchsorted(rows, newest_rows)
    before = y[rows[at - 1]]  # each judged series has 26 rows before its newest
    if daily:  # the same weekday a week before, among the series' 26 rows before its newest
        back = rows[at[:, None] - np.arange(1, NEWEST_JUMP_HISTORY + 1)]
        week = ds[back] == (ds[newest_rows] - 7 * 86_400 * 10**9)[:, None]
        before = np.where(week.any(axis=1), y[back][np.arange(len(back)), week.argmax(axis=1)], before)
    big = usual >= STOPPED_EXPECTED_SALES
    codes, stores = pd.factorize(store_of[newest_rows])
    per_store = np.bincount(codes[big], minlength=len(stores))
    group = np.where(per_store[codes] >= ZEROED_MIN_SERIES, codes, -1)  # -1: the stores too small alone
    held = np.zeros(len(newest_rows), dtype=bool)
    for g in np.unique(group[big]):
        mine = big & (group == g)
        if mine.sum() >= ZEROED_MIN_SERIES and (y[newest_rows[mine]] == 0).all() and (before[mine] > 0).any():
            held |= mine
    return newest_rows[held], sorted(str(v) for v in stores[np.unique(codes[held])])


def zeroed_by_source(y: np.ndarray, ds: np.ndarray, sid: np.ndarray, kept: np.ndarray,
                     zeroed_at: pd.Timestamp) -> np.ndarray:
    """The rows of 0 at ``zeroed_at`` (the source's newest period, sent as zeros: ``zeroed_source_period``) of the
    series that sold in their row before: what a partition holds of a zero feed seen over the whole source.
    ``kept``: the rows judged (observed, one per period), sorted by series (``sid``) then ``ds``."""
    rows = np.flatnonzero(kept)
    at_zero = rows[(ds[rows] == pd.Timestamp(zeroed_at).value) & (y[rows] == 0)]
    prior = np.searchsorted(rows, at_zero) - 1
    ok = prior >= 0
    at_zero, prior = at_zero[ok], rows[prior[ok]]
    return at_zero[(sid[prior] == sid[at_zero]) & (y[prior] > 0)]


def series_slips(y: np.ndarray, sid: np.ndarray, store_of: np.ndarray, kept: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The slips of the series of stores with fewer than ``STORE_JUMP_MIN_SERIES`` series (a retailer's account as
    one series), judged at every period: (their rows, each value over its usual level). A slip is more than
    ``SERIES_SLIP_USUAL_MULTIPLE`` times its usual level (the median of the ``NEWEST_JUMP_HISTORY`` observations
    before it, judged once the series has that many and their median is above 0) and
    ``SERIES_SLIP_LARGEST_MULTIPLE`` times the largest value before it that is not itself a slip. ``kept``: the
    rows judged (observed, not absurd, one per period), sorted by series (``sid``) then period.

    Why: ×100 in the newest week of cheese's one-series stores passed every other rule (its naive baseline was
    published at 27 times the week before). No real week of cheese (3,267 with half a year before them) or tuna
    (2,184) meets both conditions; on cheese they catch all ×100 slips. A ×10 slip cannot be told from a promotion
    this way (real weeks reach 41 times the usual level): it passes, as a promotion would. In a larger store a
    single series at such a level is more likely a promotion (orangeJuice holds 179 of 82,401): ``store_slips``
    judges the store, and ``newest_jumps`` warns of the extreme ones.

    Every period, not only the newest: judged only while newest, a slip was left out for one cut and then trained
    on from the next week, with no warning, its envelope lifted with it (a trial on cheese: a ×100 week a week old
    took a retailer's forecasts from about 3,000 to 8,400). A unit change that lasts is no slip: once half of the
    usual level's periods are at the new level, the median is theirs and the later values pass."""
    nothing = np.zeros(0, dtype=np.int64), np.zeros(0)
    rows = np.flatnonzero(kept)
    if not len(rows):
        return nothing
    owner = sid[rows]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # each series' first row: the series' store
    codes, _ = pd.factorize(store_of[rows[starts]])
    small = np.bincount(codes)[codes] < STORE_JUMP_MIN_SERIES  # per series: a store of few series
    if not small.any():
        return nothing
    rows = rows[np.repeat(small, np.diff(np.r_[starts, len(rows)]))]
    v, owner = y[rows], sid[rows]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    position = np.arange(len(v)) - np.repeat(starts, np.diff(np.r_[starts, len(v)]))
    # the median of the observations before each row: one rolling pass over every series at once; a window that
    # crosses into the series before is one whose row has fewer than its length of its own before it
    median = pd.Series(v).rolling(NEWEST_JUMP_HISTORY).median().shift(1).to_numpy()
    usual = np.maximum(median, 1.0)
    judged = (position >= NEWEST_JUMP_HISTORY) & (median > 0)
    candidates = np.flatnonzero(judged & (v > SERIES_SLIP_USUAL_MULTIPLE * usual))
    if not len(candidates):
        return nothing
    # the largest value before each row that is no candidate: a running maximum within each series
    others = v.copy()
    others[candidates] = -np.inf
    running = pd.Series(others).groupby(owner, sort=False).cummax().to_numpy()
    before = np.r_[-np.inf, running[:-1]]
    before[starts] = -np.inf
    found, candidate_max = [], {}  # a candidate that is no slip counts among the largest before the later ones
    for c in candidates:  # few: values 30 times their usual level
        largest = max(before[c], candidate_max.get(owner[c], -np.inf))
        if v[c] > SERIES_SLIP_LARGEST_MULTIPLE * max(largest, 1.0):
            found.append(c)
        else:
            candidate_max[owner[c]] = max(candidate_max.get(owner[c], -np.inf), v[c])
    found = np.asarray(found, dtype=np.int64)
    return rows[found], v[found] / usual[found]


LIFTED_RUN_LARGEST_MULTIPLE = 5.0  # a lifted run's median over the largest value before it: a slip, not a promotion


def lifted_runs(y: np.ndarray, sid: np.ndarray, kept: np.ndarray, newest_rows: np.ndarray, to_usual: np.ndarray,
                usual: np.ndarray) -> list[tuple[int, int, float]]:
    """Series whose newest periods are a run of two or more at ``SERIES_SLIP_USUAL_MULTIPLE`` times their usual
    level or more, shorter than half the usual level's window, whose median is more than
    ``LIFTED_RUN_LARGEST_MULTIPLE`` times the largest value before the run: (the newest row, the run's periods,
    its median over the usual level), a warning. ``kept``, ``newest_rows``, ``to_usual``, ``usual``: as
    ``newest_ratios`` takes and gives them.

    Why: a week of days at ×50 (a unit slip of one product's feed, in a store of many) passed ``newest_jumps``,
    which compares the newest value with the largest before it: the slip's own earlier days. It was trained on,
    promoted and served at twice its level, and the summary called the accuracy it lost noise. Promotions lift a
    few periods to a few times the usual level, to the level of earlier promotions: never 30 times for days on
    end (the demo's daily promotions, orangeJuice's, cheese's and tuna's weeks: none)."""
    found = []
    candidates = np.flatnonzero(to_usual > SERIES_SLIP_USUAL_MULTIPLE)
    if not len(candidates):
        return found
    rows = np.flatnonzero(kept)
    owner = sid[rows]
    for c in candidates:  # few: a newest value 30 times its usual level
        last = int(np.searchsorted(rows, newest_rows[c]))
        first = int(np.searchsorted(owner, sid[newest_rows[c]]))  # the series' first kept row
        values = y[rows[first : last + 1]]
        lifted = values > SERIES_SLIP_USUAL_MULTIPLE * usual[c]
        run = len(values) - (int(np.flatnonzero(~lifted)[-1]) + 1 if (~lifted).any() else 0)
        before = values[: len(values) - run]
        if run < 2 or run > NEWEST_JUMP_HISTORY // 2 or len(before) < NEWEST_JUMP_HISTORY:
            continue
        median = float(np.median(values[-run:]))
        if median > LIFTED_RUN_LARGEST_MULTIPLE * max(float(before.max()), 1.0):
            found.append((int(newest_rows[c]), run, median / usual[c]))
    return found


def is_extreme(value: np.ndarray, mean_others: np.ndarray) -> np.ndarray:
    """The rule of an absurd target: more than ``EXTREME_TARGET_MULTIPLE`` times the mean of its series' other
    values, that mean taken as at least 1 (a slow mover's first sales are not absurd)."""
    return value > EXTREME_TARGET_MULTIPLE * np.maximum(mean_others, 1.0)


def extreme_targets(y: np.ndarray, starts: np.ndarray, sid: np.ndarray) -> np.ndarray:
    """Positions of the rows (sorted by series; series ``sid`` starting at ``starts``) whose target is more than
    ``EXTREME_TARGET_MULTIPLE`` times its series' level (at least 1, so a slow mover's first sales are not flagged).
    One such value dominates its series' scale and metrics.

    The level is the mean of the series' other values; with a slip or two among them it is theirs. So a series
    whose largest value is more than ``SEVERAL_SLIPS_RATIO`` times the mean of the others is looked at again, its
    level then the mean without its largest ``SLIP_SHARE`` of values (at least one): two values of 5e11 in 150
    weeks of about 30 lift the mean of the others to 3e9, and neither was flagged. Only those few series are sorted;
    a partition holds millions of rows, and this runs on every cut."""
    total = np.add.reduceat(np.nan_to_num(y, nan=0.0), starts)
    count = np.add.reduceat(~np.isnan(y), starts, dtype=np.int64)
    largest = np.fmax.reduceat(y, starts)
    mean_others = (total - largest) / np.maximum(count - 1, 1)
    suspect = np.flatnonzero((count > 1) & (largest > SEVERAL_SLIPS_RATIO * np.maximum(mean_others, 1.0)))
    if not len(suspect):
        return np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(y)]
    found = []
    for k in suspect:
        values = y[starts[k] : ends[k]]
        observed = np.sort(values[~np.isnan(values)])
        top = min(len(observed) - 1, max(1, int(np.ceil(SLIP_SHARE * len(observed)))))
        found.append(starts[k] + np.flatnonzero(is_extreme(values, observed[:-top].mean())))  # NaN compares False
    return np.concatenate(found).astype(np.int64)
