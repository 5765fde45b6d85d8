"""What got worse: each series' new model against its previous version, on their holdouts.

Why: a retrain can quietly make a series worse (a promotion, a price change, a bug in the data); the gate keeps
the champion then, but the operator wants to see which series and by how much, per store, in the UI.

No Dagster here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mm_assets.forecasting.metrics import (
    FINGERPRINT,
    HOLDOUT_PERIODS,
    holdout_periods_or_one_window,
    metric_columns,
    same_actuals,
)
from mm_assets.reporting.markdown import Markdown

BASELINE_WAPE = "baseline_wape"  # the baseline's WAPE on the same holdout, in every version's metrics
# rises on other holdouts beyond this many times the falls, plus a few, are more than a week's luck each way
LOPSIDED, LOPSIDED_SLACK = 1.5, 5

WORSE_BY = 0.05  # holdout WAPE up by more than 5 points counts as worse
SHOWN = 10
RERUNS_LOOKED_BACK = 3  # versions looked back at first; further back, twice as many each time, while needed


def previous_day_versions(reg, registered: pd.DataFrame) -> pd.DataFrame:
    """Per newly registered series: the newest earlier version trained on older data (an earlier ``data_end``, or
    the same one with other holdout actuals: a corrected source), else the version before. "What got worse"
    compares with the model of the previous data, so a same-day rerun (a backfill, a retry) does not make the day's
    changes vanish by comparing the rerun with itself, however many reruns came in between: the versions are read
    ``RERUNS_LOOKED_BACK`` at a time, then twice as many further back for the series still without one, until
    their first version (a day's reruns cost one read more each time they double)."""
    version = dict(zip(registered["series_key"], registered["version"].astype(int)))
    # every series still looked for has been looked back as far as the others: ``looked`` versions
    found, looked, span = [], 0, RERUNS_LOOKED_BACK
    todo = [k for k, v in version.items() if v > 1]
    while todo:
        keys = np.repeat(todo, span)
        versions = (np.repeat([version[k] - looked for k in todo], span)
                    - np.tile(np.arange(1, span + 1), len(todo)))
        keep = versions >= 1
        earlier = reg.rows_of(keys[keep], versions[keep])
        looked += span
        if len(earlier):
            earlier = earlier.assign(_older=_older_data(earlier, registered))
            found.append(earlier)
            resolved = set(earlier.loc[earlier["_older"], "series_key"])
        else:
            resolved = set()
        todo = [k for k in todo if k not in resolved and version[k] - looked > 1]
        span *= 2
    if not found:
        return pd.DataFrame(columns=["series_key", "version"])
    earlier = pd.concat(found, ignore_index=True)
    # older data first, then the newest version: one row per series
    earlier = earlier.sort_values(["series_key", "_older", "version"], ascending=[True, False, False])
    return earlier.drop_duplicates("series_key").drop(columns="_older").reset_index(drop=True)


def _older_data(earlier: pd.DataFrame, registered: pd.DataFrame) -> np.ndarray:
    """Whether each ``earlier`` version was trained on older data than its series' newly registered one: an
    earlier data end, or the same one with other holdout actuals."""
    end = dict(zip(registered["series_key"], pd.to_datetime(registered["data_end"])))
    its_end, new_end = pd.to_datetime(earlier["data_end"]), earlier["series_key"].map(end)
    older = its_end < new_end
    if "metrics" in registered and "metrics" in earlier:
        # the same data end with other holdout actuals is not a rerun: the source was corrected in between, and the
        # version before the correction is the one that served until now
        new_fp = dict(zip(registered["series_key"], metric_columns(registered["metrics"], [FINGERPRINT])[FINGERPRINT]))
        corrected = ~same_actuals(metric_columns(earlier["metrics"], [FINGERPRINT])[FINGERPRINT],
                                  earlier["series_key"].map(new_fp).to_numpy(dtype=float))
        older = older | (its_end == new_end) & corrected
    return older.to_numpy(bool)


def worse_than_previous(current: pd.DataFrame, previous: pd.DataFrame, shown: int = SHOWN,
                        horizon: int | None = None) -> tuple[int, Markdown]:
    """``current``/``previous``: registry rows (series_key, version, model_type, wape) of the new models and of
    the versions before them → (series whose holdout WAPE rose by more than ``WORSE_BY``, a markdown table of
    the ``shown`` largest rises); ``horizon`` as in ``_changes``."""
    if current.empty or previous.empty:
        return 0, Markdown("No previous version to compare with.")
    both = _changes(current, previous, horizon)
    rises = _rises_of(both)
    worse, count, falls = rises.head(shown), len(rises), int((both["change"] < -WORSE_BY).sum())
    if worse.empty:
        return 0, Markdown(f"No series' holdout WAPE rose by more than {WORSE_BY * 100:.0f} points against its previous version "
                           f"({falls:,} fell by as much).")
    lines = [_both_ways(count, falls, int(rises["same_holdout"].sum()), _harder(rises)), "",
             "| series | previous (v, type) | previous WAPE | new (v, type) | new WAPE | change |",
             "|---|---|---|---|---|---|"]
    for _, r in worse.iterrows():
        lines.append(f"| {r['series_key']} | v{int(r['previous_version'])} {r['previous_type']} | "
                     f"{_pct(r['previous_wape'])} | v{int(r['version'])} {r['model_type']} | {_pct(r['wape'])} | "
                     f"+{r['change'] * 100:.1f} pts |")
    return count, Markdown("\n".join(lines))


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1%}"


def _both_ways(worse: int, better: int, same: int = 0, harder: int = 0) -> str:
    """The rises beside the falls, and whether they may be a week's luck (``holdouts_clause``)."""
    head = (f"{worse:,} series rose and {better:,} fell by more than {WORSE_BY * 100:.0f} points of holdout WAPE "
            "against their previous version")
    clause = holdouts_clause(worse, same, harder, better)
    return f"{head}, {clause}." if same and same == worse else f"{head} ({clause})."


def _harder(rises: pd.DataFrame) -> int:
    """Of ``rises`` judged on other holdouts, those whose baseline's holdout WAPE rose by ``WORSE_BY`` too."""
    return int(((rises["baseline_change"] > WORSE_BY) & ~rises["same_holdout"]).sum())


def holdouts_clause(worse: int, same: int, harder: int = 0, better: int | None = None) -> str:
    """Whether ``worse`` rises may be a week's luck: two versions trained on data of different ends were judged on
    holdouts of different periods (the newer one a period later), so luck moves some series up and as many down,
    and only rises far above the falls say a model or data got worse. ``same`` of the rises were judged on the
    same holdout as before (its periods and actuals unchanged: a rerun, a changed setting, training rows corrected
    before the holdout, a global model that learnt from other series' new rows): no luck there, the model is
    worse. A late correction of a holdout period moves the actuals,
    not the periods: not the same holdout.

    ``harder``: rises on other holdouts whose baseline's WAPE rose as much, periods harder for any forecast (a
    chain-wide promotion week); ``better``: the falls, against which rises far beyond a like number are named as
    more than luck (an orangeJuice cycle: 436 rose and 239 fell, called "a like number" before)."""
    if same and same == worse:
        return ("each on the same holdout as before (its periods and actuals unchanged): the models are worse, not the "
                "week (a changed setting, training rows corrected before the holdout, or a global model that learnt from "
                "other series' new rows?)")
    other = worse - same
    lopsided = better is not None and other > LOPSIDED * better + LOPSIDED_SLACK
    if lopsided:
        luck = f"{other:,} rises against {better:,} falls are more than a week's luck"
    elif better is not None and other > LOPSIDED * better:  # 5 of 7 brands up, none down: not "a like number"
        luck = f"{other:,} up and {better:,} down are too few to tell from a week's luck"
    else:
        luck = "a like number each way is noise, not a regression"
    if harder:
        luck += (f"; on {harder:,} of them the baseline's holdout WAPE rose by as much: periods harder for any "
                 "forecast (a promotion week, a feed's gap), not a worse model")
    elif lopsided:
        luck += ", and the baseline's did not rise with them: the models or their training rows got worse"
    if same:
        return (f"{other:,} on holdouts of different periods or corrected actuals, where {luck}; {same:,} on the same "
                "holdout as before, where a rise is the model's (a changed setting, training rows corrected before "
                "the holdout, or a global model that learnt from other series' new rows?)")
    return f"holdouts of different periods or corrected actuals: {luck}"


def _changes(current: pd.DataFrame, previous: pd.DataFrame, horizon: int | None = None) -> pd.DataFrame:
    """Each series of ``current`` with a WAPE in both versions, judged over as many holdout periods: the columns of
    both, ``change`` (new - old) and ``same_holdout`` (both trained on data of the same end, so judged on the same periods, and their holdouts held
    the same actuals: a late correction of a holdout period makes another holdout of the same periods).

    ``horizon``: the periods of one holdout window, what a version registered before versions recorded their
    ``holdout_periods`` was judged over (the gate reads them so too); without it such a version is compared only
    with another that lacks the count."""
    columns = ["series_key", "version", "model_type", "wape",
               *[c for c in ("data_end", "metrics") if c in current]]
    prev = previous[[c for c in columns if c in previous]].rename(
        columns={"version": "previous_version", "model_type": "previous_type", "wape": "previous_wape",
                 "data_end": "previous_data_end", "metrics": "previous_metrics"})
    both = current[columns].merge(prev, on="series_key")
    for col in ("wape", "previous_wape"):  # fallbacks have no WAPE: a column of them only is of dtype object
        both[col] = pd.to_numeric(both[col], errors="coerce")
    both = both[both["wape"].notna() & both["previous_wape"].notna()]
    same = (pd.to_datetime(both["data_end"]) == pd.to_datetime(both["previous_data_end"])
            if "previous_data_end" in both else pd.Series(False, index=both.index)).to_numpy(bool)
    other_length = np.zeros(len(both), dtype=bool)
    base_change = np.full(len(both), np.nan)
    if "previous_metrics" in both:
        now = metric_columns(both["metrics"], [FINGERPRINT, HOLDOUT_PERIODS, BASELINE_WAPE])
        then = metric_columns(both["previous_metrics"], [FINGERPRINT, HOLDOUT_PERIODS, BASELINE_WAPE])
        base_change = now[BASELINE_WAPE] - then[BASELINE_WAPE]
        same = same & same_actuals(now[FINGERPRINT], then[FINGERPRINT])
        # judged over another number of periods (a changed horizon, or an upgrade from one window to several): a
        # WAPE over 8 weeks is no yardstick for one over 2, and every series would rise or fall with the change
        periods = holdout_periods_or_one_window(now[HOLDOUT_PERIODS], horizon)
        before = holdout_periods_or_one_window(then[HOLDOUT_PERIODS], horizon)
        other_length = ~((periods == before) | np.isnan(periods) & np.isnan(before))
    both = both.drop(columns=[c for c in ("metrics", "previous_metrics") if c in both])
    return both.assign(change=both["wape"] - both["previous_wape"], same_holdout=same,
                       baseline_change=base_change)[~other_length]


def _rises_of(both: pd.DataFrame) -> pd.DataFrame:
    """The series whose holdout WAPE rose by more than ``WORSE_BY``, the largest rise first."""
    return both[both["change"] > WORSE_BY].sort_values("change", ascending=False, kind="stable")


def worst_rises(reg, current: pd.DataFrame, shown: int = 5, horizon: int | None = None) -> tuple[int, list[str]]:
    """(series of ``current``, registry rows, whose holdout WAPE rose by more than ``WORSE_BY`` against their
    previous day's version, the ``shown`` largest as "series previous% → new%"): the cycle summary's line."""
    worse, lines, *_ = rises_and_falls(reg, current, shown, horizon)
    return worse, lines


def rises_and_falls(reg, current: pd.DataFrame, shown: int = 5, horizon: int | None = None
                    ) -> tuple[int, list[str], int, int, int]:
    """``worst_rises``, the series whose holdout WAPE fell by as much, the rises on the same holdout as before and
    those on harder holdouts (``_both_ways``)."""
    previous = previous_day_versions(reg, current) if len(current) else current
    if current.empty or previous.empty:  # a first cycle: nothing to compare with
        return 0, [], 0, 0, 0
    both = _changes(current, previous, horizon)
    rises = _rises_of(both)
    return (len(rises), [f"{r.series_key} {_pct(r.previous_wape)} → {_pct(r.wape)}" for r in rises.head(shown).itertuples()],
            int((both["change"] < -WORSE_BY).sum()), int(rises["same_holdout"].sum()), _harder(rises))
