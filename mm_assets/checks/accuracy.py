"""The check of ``forecast_accuracy``: per store, the champions' realised error below the baseline's on the same
days."""

from __future__ import annotations

import pandas as pd

from mm_assets.checks.verdict import Verdict


def rounded_ratio(value) -> float:
    """A ratio as the UI shows it: four decimals (0.3547, not 0.3547398304915337)."""
    return round(float(value), 4)


MIN_JUDGED_POINTS = 30  # realised points a store needs before its champions are judged against the baseline
MIN_JUDGED_PERIODS_DAILY, MIN_JUDGED_PERIODS_WEEKLY = 7, 4  # and the periods they must span: a week, a month


def min_judged_periods(is_daily: bool) -> int:
    """The realised periods a store's points must span before it is judged: a week of days (every weekday once),
    a month of weeks."""
    return MIN_JUDGED_PERIODS_DAILY if is_daily else MIN_JUDGED_PERIODS_WEEKLY


def realized_beats_baseline(keys: list[str], stores: pd.DataFrame, window: int,
                            min_periods: int = MIN_JUDGED_PERIODS_DAILY) -> dict[str, Verdict]:
    """Per store with at least ``MIN_JUDGED_POINTS`` realised champion points over ``min_periods`` periods or
    more: MASE vs the baseline below 1. A store with fewer gets no verdict, so the UI shows the check skipped
    there, as for a store without any: the first day of a small store is a handful of points, and a ratio of 1.9
    on four of them says nothing, but a green check would say it was judged. Nor does one day of a large store:
    its 40 products' points all share that day's luck (a trial on 16,000 series had 247 of 400 stores red, at
    1.17-2.18, the day after the first cycle, pooled 1.04)."""
    out = {}
    for key in keys:
        row = stores.loc[key]
        periods = int(row["periods"])
        if int(row["points"]) < MIN_JUDGED_POINTS or periods < min_periods or pd.isna(row["mase_vs_baseline"]):
            continue
        ratio = rounded_ratio(row["mase_vs_baseline"])
        out[key] = Verdict(
            passed=ratio < 1.0,
            metadata={"mase_vs_baseline": ratio, "points": int(row["points"]), "periods": periods,
                      "window_periods": window, "min_points": MIN_JUDGED_POINTS, "min_periods": min_periods},
            description=f"store {key}: the champions' realised absolute error is {ratio:.2f} × the baseline's on "
            f"the same days over the newest {window} periods; see worst_vs_baseline in this store's metadata.",
        )
    return out
