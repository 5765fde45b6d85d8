"""Do the source's dates fit the configured frequency?

Why at ingest: with ``frequency: W-SUN`` on daily rows every day lands in some week's file and the ingest looks
fine, then every series fails in training (its dates are not a week apart) while the lake and the datasets have
already been rewritten. With ``frequency: D`` on weekly rows each series misses six days of seven and the models
learn weekly totals as daily sales. So the rows are refused before anything is written, with the step the dates
really have and the setting that fits them.

Monthly data (dates on the 1st), a 4-4-5 calendar or a date every ten days are neither: under ``frequency: D`` each
would be a daily series missing most of its days (824 daily periods, 796 of them empty, and three days forecast at
monthly sizes). The step is judged on the distinct dates of the whole batch of rows, not per series: a source of
many series is dense on every day it is open even when each slow series sells on few of them, so a daily source
with closed Sundays, holidays or a few missing days has mostly one-day gaps and passes. Two things are judged per
series: weeks dated by a few different weekdays (one store by its Sunday, the rest by their Monday) are weekly data
whose distinct dates together hold consecutive days, so "daily" needs dates on more than ``MAX_WEEKLY_ANCHORS``
weekdays, and daily settings refuse rows whose series are each on one weekday (``weekly_series``).

No Dagster here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_assets.settings import WEEKDAYS

# pandas' dayofweek order (Monday = 0) and the anchor of each weekly frequency in it
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ANCHOR_DAY = {code: (index + 6) % 7 for index, code in enumerate(WEEKDAYS)}  # WEEKDAYS starts on Sunday
# distinct dates, all on one weekday, before daily settings call the data weekly: fewer prove nothing
MIN_DATES_FOR_WEEKLY = 4
# the step of the dates is judged only with at least this many distinct dates (3 dates: when they span
# LONG_STEP_SPAN days or more, e.g. the three monthly dates of a slice of 92 days read by the ingest)
MIN_DATES_FOR_STEP = 4
LONG_STEP_SPAN = 45
# dates are clearly not daily when the median gap between consecutive distinct dates is at least this many days
# and at most SHORT_GAP_SHARE of the gaps are one day (a shop open on alternate days is still daily data)
NOT_DAILY_GAP = 4
# ... and clearly not weekly when the median gap is at least two weeks and at most that share are a week or less:
# two-weekly rows (or a weekly source that lost every second week) read as weekly would be half empty weeks, each
# row's two weeks of sales forecast as one week's
NOT_WEEKLY_GAP = 14
TWO_WEEKS = 14
SHORT_GAP_SHARE = 0.1
# weekly data whose weeks are dated by a few different weekdays (daily data covers most of the week)
MAX_WEEKLY_ANCHORS = 3
# rows on their series' own weekday from which daily settings call the series weekly (daily: about 1/7)
WEEKLY_SERIES_SHARE = 0.9


def _days(dates: pd.Series) -> pd.DatetimeIndex:
    """The distinct calendar days of ``dates``, sorted."""
    return pd.DatetimeIndex(pd.to_datetime(dates).dropna().dt.normalize().unique()).sort_values()


def _gaps(days: pd.DatetimeIndex) -> np.ndarray:
    """Days between consecutive distinct ``days`` (sorted)."""
    return np.diff(days.to_numpy().astype("datetime64[D]").astype(np.int64))


def long_step(days: pd.DatetimeIndex, shortest: int, short: int) -> int | None:
    """The median gap in days between consecutive distinct ``days`` when it is at least ``shortest`` and at most
    ``SHORT_GAP_SHARE`` of the gaps are ``short`` days or less (the dates are clearly further apart than the period);
    None otherwise, or when there are too few dates to tell."""
    if len(days) < 3 or (len(days) < MIN_DATES_FOR_STEP and (days[-1] - days[0]).days < LONG_STEP_SPAN):
        return None
    gaps = _gaps(days)
    median = float(np.median(gaps))
    if median < shortest or np.mean(gaps <= short) > SHORT_GAP_SHARE:
        return None
    return int(round(median))


def step_words(median: int) -> str:
    """How far apart dates with a median gap of ``median`` days are, in words."""
    for low, high, words in ((6, 8, "a week"), (13, 16, "two weeks"), (26, 35, "a month"), (84, 98, "a quarter"),
                             (350, 380, "a year")):
        if low <= median <= high:
            return f"about {words} apart (median gap {median} days)"
    return f"about {median} days apart (median gap {median} days)"


ONLY_D_AND_W = "daily (D) and weekly (W-<day>) series are supported"


def source_step(days: pd.DatetimeIndex) -> tuple[str, str | None]:
    """What the distinct ``days`` look like, and the frequency that fits them (None when none does)."""
    weekdays = np.unique(days.day_of_week)
    apart = long_step(days, 2 * NOT_DAILY_GAP, 7)  # further apart than weeks: monthly, 4-4-5, every 10 days
    if apart is not None:
        return step_words(apart), None
    if len(weekdays) == 1:
        code = WEEKDAYS[(int(weekdays[0]) + 1) % 7]
        return f"weekly, every one a {DAY_NAMES[weekdays[0]]}", f"W-{code}"
    if len(weekdays) <= MAX_WEEKLY_ANCHORS and len(days) >= 2 * MIN_DATES_FOR_WEEKLY:
        # weeks dated by a few weekdays (one store by its Sunday, the rest by their Monday; a mistyped date): a
        # Sunday next to a Monday is not daily data, and "set frequency: D" would publish weekly totals as days
        counts = pd.Series(days.day_of_week).value_counts()
        dated = ", ".join(f"{DAY_NAMES[d]} {n}" for d, n in counts.items())
        return f"weekly, dated by {len(weekdays)} different weekdays (dates per weekday: {dated})", None
    consecutive = np.flatnonzero((days[1:] - days[:-1]) == pd.Timedelta(days=1))
    if len(consecutive):
        a, b = days[consecutive[0]], days[consecutive[0] + 1]
        return f"daily (consecutive days such as {a.date()} and {b.date()})", "D"
    names = ", ".join(DAY_NAMES[d] for d in weekdays)
    return f"on several weekdays ({names}) and never on consecutive days", None


def weekly_series(dates: pd.Series, series: np.ndarray) -> tuple[float, dict[int, int]]:
    """How weekly the series are, whatever the frequency says: (the share of rows on their own series' most
    frequent weekday, the number of series by that weekday), over the series (``series``: each row's series
    number) with ``MIN_DATES_FOR_WEEKLY`` rows or more; (0.0, {}) when none has. Daily series spread over the week
    (about 1/7 on any one weekday, a little more with closed days); weekly series are all on one, whichever
    weekday each store dates its weeks by."""
    if not len(series):
        return 0.0, {}
    weekday = pd.DatetimeIndex(dates).day_of_week.to_numpy()
    counts = np.bincount(series * 7 + weekday, minlength=7 * (int(series.max()) + 1)).reshape(-1, 7)
    counts = counts[counts.sum(axis=1) >= MIN_DATES_FOR_WEEKLY]
    if not len(counts):
        return 0.0, {}
    modal = counts.argmax(axis=1)
    share = float(counts.max(axis=1).sum() / counts.sum())
    return share, {int(d): int(n) for d, n in zip(*np.unique(modal, return_counts=True))}


def _weekly_series_problem(dates: pd.Series, series: np.ndarray, where: str) -> str | None:
    """Daily settings on series that are each weekly (``weekly_series``), or None."""
    share, by_day = weekly_series(dates, series)
    if share < WEEKLY_SERIES_SHARE:
        return None
    most = max(by_day, key=by_day.get)
    dated = ", ".join(f"{n} by {DAY_NAMES[d]}" for d, n in sorted(by_day.items(), key=lambda kv: -kv[1]))
    return (f"frequency D (daily), but each series' dates in {where} are a week apart on one weekday ({share:.0%} "
            f"of the rows; series dated {dated}): the source's series are weekly. Set frequency: "
            f"W-{WEEKDAYS[(most + 1) % 7]} and date every row by the {DAY_NAMES[most]} of its week in source.query; "
            "as daily series each would miss six days of seven and its weekly totals would be forecast as days")


def grid_problem(dates: pd.Series, frequency: str, column: str, sold: pd.Series | None = None,
                 series: np.ndarray | None = None) -> str | None:
    """Why ``dates`` (the source's values of ``column``) do not fit ``frequency`` (D, W or W-<day>), naming the
    step they have and the fix; None when they fit. A time of day is not judged here (a row belongs to its
    calendar day). ``sold``: which rows have a sale; the step of the dates is judged on those only (a plan may
    hold a few promotion days), while under a weekly frequency every row must be on its weekday. ``series``: each
    row's series number, when known: daily settings then also refuse series that are each weekly, on weekdays
    that differ between them (their distinct dates together look daily)."""
    days = _days(dates)
    if days.empty:
        return None
    stepped = days if sold is None else _days(dates[sold.to_numpy(dtype=bool)])
    where = f"columns.timestamp {column!r}"
    if frequency == "D":
        days = stepped
        if days.empty:
            return None
        if len(days) >= MIN_DATES_FOR_WEEKLY and len(np.unique(days.day_of_week)) == 1:
            what, fit = source_step(days)
            if fit:
                return (f"frequency D (daily), but the {len(days)} dates of {where} ({days[0].date()} .. "
                        f"{days[-1].date()}) are {what}: the source's dates are weekly. Set frequency: {fit}; as "
                        "daily series each would miss six days of seven")
        apart = long_step(days, NOT_DAILY_GAP, 1)
        if apart is None:
            if series is None:
                return None
            on = np.ones(len(dates), dtype=bool) if sold is None else sold.to_numpy(dtype=bool)
            return _weekly_series_problem(pd.to_datetime(dates[on]), np.asarray(series)[on], where)
        empty = 1 - len(days) / ((days[-1] - days[0]).days + 1)
        weekly = ("; the data look weekly: set frequency: W-<day> (the weekday the weeks are dated by) and date "
                  "every row by that day of its week") if apart <= 8 else ""
        return (f"frequency D (daily), but the {len(days)} distinct dates of {where} ({days[0].date()} .. "
                f"{days[-1].date()}) are not daily: they are {step_words(apart)}, so as daily series {empty:.0%} "
                f"of the days would be empty and every row would be read as one day's sales. Only {ONLY_D_AND_W}: "
                "aggregate the source to days or weeks in source.query (one row per series and day, or per series "
                f"and week dated by one weekday){weekly}")
    anchor = (frequency[2:] if frequency.startswith("W-") else "SUN").upper()
    day = DAY_NAMES[ANCHOR_DAY[anchor]]
    off = days[days.day_of_week != ANCHOR_DAY[anchor]]
    if off.empty:
        apart = long_step(stepped, NOT_WEEKLY_GAP, 7)
        if apart is None:
            return None
        if apart == TWO_WEEKS:
            return (f"frequency {frequency} (weekly), but the {len(stepped)} distinct dates of {where} "
                    f"({stepped[0].date()} .. {stepped[-1].date()}) are {step_words(apart)}: two-weekly periods, or "
                    "a weekly source missing every second week. As weekly series every second week would be empty "
                    "and each row's two weeks of sales forecast as one week's. Only "
                    f"{ONLY_D_AND_W}: give the source one row per series and week dated by its {day} (a two-week "
                    "total split over its two weeks in source.query), or ingest the missing weeks")
        return (f"frequency {frequency} (weekly), but the {len(stepped)} distinct dates of {where} "
                f"({stepped[0].date()} .. {stepped[-1].date()}) are not weekly: they are {step_words(apart)}, so as "
                f"weekly series most weeks would be empty. Only {ONLY_D_AND_W}: aggregate the source to weeks dated "
                f"by their {day} (or to days) in source.query")
    what, fit = source_step(days)
    if fit == "D":
        fix = f"set frequency: D, or sum the days into weeks dated by their {day} in source.query"
    elif fit:
        fix = f"set frequency: {fit} (weeks dated by {DAY_NAMES[ANCHOR_DAY[fit[2:]]]})"
    elif what.startswith("about"):  # further apart than weeks: dating rows by a weekday would not make them weekly
        fix = f"only {ONLY_D_AND_W}: aggregate the source to weeks dated by their {day} (or to days) in source.query"
    else:
        fix = f"date every row by the {day} of its week in source.query, or fix the dates in the source"
    too = " too" if len(off) < len(days) else f", none on a {day}"
    return (f"frequency {frequency} dates every week by its {day}, but the dates of {where} fall on other "
            f"weekdays{too} (e.g. {off[0].date()}, a {DAY_NAMES[off[0].day_of_week]}; {len(off)} of the "
            f"{len(days)} dates looked at): the source's dates are {what}. {fix[0].upper()}{fix[1:]}")
