"""Do the source's dates fit the configured frequency?

Why at ingest: with ``frequency: W-SUN`` on daily rows every day lands in some week's file and the ingest looks
fine, then every series fails in training (its dates are not a week apart) while the lake and the datasets have
already been rewritten. With ``frequency: D`` on weekly rows each series misses six days of seven and the models
learn weekly totals as daily sales. So the rows are refused before anything is written, with the step the dates
really have and the setting that fits them.

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


def _days(dates: pd.Series) -> pd.DatetimeIndex:
    """The distinct calendar days of ``dates``, sorted."""
    return pd.DatetimeIndex(pd.to_datetime(dates).dropna().dt.normalize().unique()).sort_values()


def source_step(days: pd.DatetimeIndex) -> tuple[str, str | None]:
    """What the distinct ``days`` look like, and the frequency that fits them (None when none does)."""
    weekdays = np.unique(days.day_of_week)
    if len(weekdays) == 1:
        code = WEEKDAYS[(int(weekdays[0]) + 1) % 7]
        return f"weekly, every one a {DAY_NAMES[weekdays[0]]}", f"W-{code}"
    consecutive = np.flatnonzero((days[1:] - days[:-1]) == pd.Timedelta(days=1))
    if len(consecutive):
        a, b = days[consecutive[0]], days[consecutive[0] + 1]
        return f"daily (consecutive days such as {a.date()} and {b.date()})", "D"
    names = ", ".join(DAY_NAMES[d] for d in weekdays)
    return f"on several weekdays ({names}) and never on consecutive days", None


def grid_problem(dates: pd.Series, frequency: str, column: str) -> str | None:
    """Why ``dates`` (the source's values of ``column``) do not fit ``frequency`` (D, W or W-<day>), naming the
    step they have and the fix; None when they fit. A time of day is not judged here (a row belongs to its
    calendar day)."""
    days = _days(dates)
    if days.empty:
        return None
    where = f"columns.timestamp {column!r}"
    if frequency == "D":
        if len(days) < MIN_DATES_FOR_WEEKLY or len(np.unique(days.day_of_week)) > 1:
            return None
        what, fit = source_step(days)
        return (f"frequency D (daily), but the {len(days)} dates of {where} ({days[0].date()} .. "
                f"{days[-1].date()}) are {what}: the source's dates are weekly. Set frequency: {fit}; as daily "
                "series each would miss six days of seven")
    anchor = (frequency[2:] if frequency.startswith("W-") else "SUN").upper()
    off = days[days.day_of_week != ANCHOR_DAY[anchor]]
    if off.empty:
        return None
    what, fit = source_step(days)
    day = DAY_NAMES[ANCHOR_DAY[anchor]]
    if fit == "D":
        fix = f"set frequency: D, or sum the days into weeks dated by their {day} in source.query"
    elif fit:
        fix = f"set frequency: {fit} (weeks dated by {DAY_NAMES[ANCHOR_DAY[fit[2:]]]})"
    else:
        fix = f"date every row by the {day} of its week in source.query, or fix the dates in the source"
    return (f"frequency {frequency} dates every week by its {day}, but the dates of {where} fall on other "
            f"weekdays too (e.g. {off[0].date()}, a {DAY_NAMES[off[0].day_of_week]}; {len(off)} of the "
            f"{len(days)} dates looked at): the source's dates are {what}. {fix[0].upper()}{fix[1:]}")
