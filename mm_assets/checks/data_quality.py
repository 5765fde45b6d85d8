"""The data-quality checks of ``series_datasets`` (duplicate keys, invalid targets, long gaps, implausible values,
series that stop, partitions without rows, series held back), judged per store partition on the quality table
``ingest.datasets.write_datasets`` returns."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mm_assets.checks.verdict import Verdict, some_partitions
from mm_assets.forecasting.series import positive_slips
from mm_assets.ingest.datasets import ZEROED_SOURCE_SHARE
from mm_assets.ingest.regressor_rules import PRICE_SLIP_MULTIPLE, PRICE_USUAL_PERIODS
from mm_assets.ingest.target_rules import (
    EXTREME_TARGET_MULTIPLE,
    LIFTED_RUN_LARGEST_MULTIPLE,
    NEWEST_JUMP_MULTIPLE,
    SERIES_SLIP_LARGEST_MULTIPLE,
    SERIES_SLIP_USUAL_MULTIPLE,
    STOPPED_EXPECTED_SALES,
    STORE_JUMP_MIN_SERIES,
    STORE_JUMP_MULTIPLE,
)
from mm_assets.reporting.words import counted

NO_ROWS = ("No rows in raw_sales for this store partition (closed, or renamed in the source): its dataset is "
           "empty, its champions and published forecasts stay as they were. If it is gone for good, retire it: "
           "`mm-assets retire-partition <key>`.")


# the checks of series_datasets, each with one status per store partition (``store_checks``): a run covers a batch
# of stores, and a check evaluated per run showed only the newest batch's, so a warning of an earlier batch
# turned green when the cycle's last batch was clean
QUALITY_CHECKS = {
    "no_duplicate_keys": "No two rows share (ids, timestamp).",
    "target_valid": "No negative target values and no missing target before a series' last observation (only "
                    "planned future rows may lack it).",
    "gaps_within_series": "No series misses more than ingest.max_normal_gap periods in a row within the newest "
                          "year of its store's data (warns: an outage in the source?). Shorter gaps (closed days, a "
                          "missing week) are normal, and longer ones that ended before that year are history: "
                          "counted in the metadata only.",
    "values_plausible": f"No target more than {EXTREME_TARGET_MULTIPLE:,.0f} times the mean of its series' other "
                        "values, several such values left out of that mean (a unit or decimal slip in the source?); "
                        "no price of 0 or below in a column otherwise above 0 (read as missing); no series' newest "
                        "target more than 20 times the largest of its earlier ones (a unit slip that the envelope "
                        "would follow); no store whose series are at a median of more than 6 times their usual "
                        "level in its newest period (a slip of the store's whole feed: that period is left out); in "
                        "a store of fewer series, none at more than 30 times its usual level and twice its largest "
                        "before (left out); no series' newest price (a positive regressor) more than 5 times its "
                        "usual value or under a fifth of it (cents read as dollars? used as it is), nor a planned one "
                        "(batch scoring forecasts with it); and every "
                        "regressor has values (one without any: a broken join or "
                        "query?). Warns; absurd targets and held newest values are left out of the datasets, the "
                        "rest is used as it is.",
    "series_reach_data_end": "Every series has a row within ingest.max_normal_gap periods of its store partition's "
                             "newest, and the partition within as many of the source's newest. One whose rows stop "
                             "earlier is forecast from its own last row, so its forecasts start before the others' "
                             "(warns). If an absent row means no sales, set ingest.absent_periods: zero. A series "
                             "without a row for ingest.dormant_after periods (a quarter) is dormant: not trained, "
                             "forecast or published until its next row; the check names how many, and passes.",
    "sales_continue": "No series has gone without a sale over its newest periods where its earlier mean rate expects "
                      "10 or more units (a store closed, a feed sending zeros?). Warns: the models' longest leads do "
                      "not see the newest periods yet, so they may forecast normal sales.",
    "no_series_held_back": "No series of the store is held back for a bad row (a missing, negative or "
                           "non-numeric target, a regressor that is not a number, a duplicate key). A held series "
                           "keeps its stored rows and is forecast from them (one never stored has none yet); "
                           "its new rows wait until the source is fixed and those periods are ingested again "
                           "(`mm-assets cycle` reads every period; the daily schedule only the newest) "
                           "(ingest.on_bad_rows).",
    "every_partition_has_rows": "The store partition has rows in raw_sales. One without (a store closed or renamed "
                                "in the source) gets an empty dataset and warns; the others go on. Retire it with "
                                "`mm-assets retire-partition <key>`; one whose every series is held back for bad "
                                "rows is told so instead (mend the source, do not retire it).",
}
# the checks whose failure warns; the others' fail as errors
WARNING_CHECKS = frozenset(QUALITY_CHECKS) - {"no_duplicate_keys", "target_valid", "no_series_held_back"}


def quality_verdicts(quality: pd.DataFrame, missing: list[str], max_normal_gap: int, step: pd.Timedelta,
                     zero_filled: bool = False) -> dict[str, dict[str, Verdict]]:
    """Each check's verdict per store partition of the run (``quality``: one row per partition), judged on the
    partition's own row; ``series_reach_data_end`` also reads the run's other partitions (the source's newest
    period, and whether that period is the odd one), ``values_plausible`` which regressor columns are positive
    over the run's stores pooled."""
    out: dict[str, dict[str, Verdict]] = {name: {} for name in QUALITY_CHECKS}
    ends = RunEnds.of(quality, max_normal_gap, step)  # once: every store's verdict reads the same run figures
    positive, shares = run_positive_columns(quality), run_share_columns(quality)
    for key in quality.index:
        results = quality_checks(quality.loc[[key]], [key] if key in missing else [], max_normal_gap, step,
                                 zero_filled, run=ends, positive=positive, shares=shares)
        for name, verdict in results.items():
            out[name][str(key)] = verdict
    return out


def held_back_verdicts(held: pd.DataFrame, keys: list[str]) -> dict[str, Verdict]:
    """``no_series_held_back`` per store partition of the run, from the series held back and not read again since
    (``ingest.held.held_series``)."""
    out = {}
    for key in keys:
        mine = held[held["store"] == key] if len(held) else held
        problems = "; ".join(f"{row.series} ({_held_periods(row)}): {row.problem.rstrip('.')}"
                             for row in mine.head(3).itertuples())
        more = f" ({len(mine) - 3} more in the raw_sales runs' held_back tables)" if len(mine) > 3 else ""
        out[key] = Verdict(
            passed=not len(mine), metadata={"series_held_back": len(mine),
                                            "series": list(mine["series"].head(100))},
            description=f"{len(mine)} series held back for bad rows, forecast from their stored rows if they have "
            f"any: {problems}{more}. "
            "Once the source is fixed, ingest those periods again (`mm-assets cycle` does; or materialize those "
            "raw_sales partitions)" if len(mine) else None)
    return out


def _held_periods(row) -> str:
    """What a held series lacks: the sales of its periods read, or, held for its plan only (its sales are in),
    the plan after the period read, which is read again with the newest period."""
    if str(row.kind).startswith("plan: "):
        return f"its plan after {row.held_to}; its sales are in"
    return f"periods {row.held_from} .. {row.held_to}"


def rows_held_back(no_rows: dict[str, Verdict], held: pd.DataFrame) -> dict[str, Verdict]:
    """``every_partition_has_rows`` (``no_rows``, per store) told apart for a store without rows whose series are
    held back for bad rows (``ingest.held.held_series``): it has not left the source, and retiring it would be the
    wrong fix."""
    out = dict(no_rows)
    for key, verdict in no_rows.items():
        mine = held[held["store"] == key] if len(held) else held
        if verdict.passed or not len(mine):
            continue
        out[key] = Verdict(
            passed=False, metadata={**verdict.metadata, "series_held_back": len(mine)},
            description=f"store partition {key} has no rows in raw_sales this run: its {len(mine):,} series "
            "in the source are held back for bad rows (the no_series_held_back check names them and the fix). "
            "Its dataset is empty and its champions and published forecasts stay as they were until the source is "
            "mended and those periods are ingested again; it has not left the source, so do not retire it.")
    return out


def quality_checks(quality: pd.DataFrame, missing: list[str], max_normal_gap: int, step: pd.Timedelta,
                   zero_filled: bool = False, run: RunEnds | pd.DataFrame | None = None,
                   positive: set[str] | None = None, shares: set[str] | None = None) -> dict[str, Verdict]:
    """The data-quality checks over the partitions of ``quality`` (``step``: the length of a period;
    ``zero_filled``: absent periods are read as no sales, ``ingest.absent_periods: zero``; ``run``: every
    partition of the run, when ``quality`` is one of them; ``positive``, ``shares``: the run's positive and share
    regressor columns)."""
    dups = int(quality["duplicate_keys"].sum())
    neg = int(quality["negative_target"].sum())
    missing_target = int(quality["missing_target"].sum())
    long_gaps = int(quality["series_with_long_gaps"].sum())
    # a quality row written before recent gaps were told apart counts every long gap as recent
    recent_gaps = int(quality["series_with_recent_long_gaps"].fillna(quality["series_with_long_gaps"]).sum()
                      if "series_with_recent_long_gaps" in quality else long_gaps)
    gap_examples = [e for row in quality.get("long_gap_examples", []) for e in row][:5]
    older_examples = [e for row in quality.get("older_long_gap_examples", []) if isinstance(row, list)
                      for e in row][:5]
    return {
        "no_duplicate_keys": Verdict(
            passed=dups == 0, metadata={"duplicate_rows": dups},
            description=f"{dups:,} rows share their ids and date with another row, in "
            f"{some_partitions(quality.index[quality['duplicate_keys'] > 0])}: the raw period files hold a key more than once "
            "(the ingest refuses duplicates within a read, so a period's rows were filed twice); the datasets keep "
            "one row per key. Re-ingest the periods (materialize every raw_sales partition, or `mm-assets cycle`)"
            if dups else None),
        "target_valid": Verdict(
            passed=neg == 0 and missing_target == 0,
            metadata={"negative_rows": neg, "missing_target_rows": missing_target},
            description=f"{neg:,} negative and {missing_target:,} missing past targets in the datasets of "
            f"{some_partitions(quality.index[(quality['negative_target'] > 0) | (quality['missing_target'] > 0)])}"
            if neg or missing_target else None),
        "values_plausible": values_plausible(quality, positive, shares),
        "series_reach_data_end": series_reach_data_end(quality, max_normal_gap, step, zero_filled, run),
        "sales_continue": sales_continue(quality),
        "every_partition_has_rows": Verdict(
            passed=not missing,
            description=f"{counted(len(missing), 'partition')} without rows: {', '.join(missing[:20])}. {NO_ROWS}"
            if missing else None,
            metadata={"partitions_without_rows": len(missing), "partitions": missing[:100]},
        ),
        "gaps_within_series": Verdict(
            passed=recent_gaps == 0,
            description=f"{recent_gaps} series miss more than {max_normal_gap} periods in a row within the newest "
            f"year of their store's data (an outage in the source, or a mistyped date?), e.g. "
            f"{'; '.join(gap_examples)}; short gaps (closed days) are normal and only counted in the metadata "
            "(ingest.max_normal_gap), and so are long ones before that year" if recent_gaps else None,
            note=(f"{long_gaps - recent_gaps} series missed more than {max_normal_gap} periods in a row before the "
                  f"newest year of their store's data, e.g. {'; '.join(older_examples)}: history, not warned of "
                  "again" if not recent_gaps and long_gaps > recent_gaps else None),
            metadata={
                "missing_periods": int(quality["gaps"].sum()),
                "series_with_gaps": int(quality["series_with_gaps"].sum()),
                "series_with_long_gaps": long_gaps,
                "series_with_recent_long_gaps": recent_gaps,
                "max_normal_gap": max_normal_gap,
                "long_gap_examples": gap_examples,
                "older_long_gap_examples": older_examples,
            },
        ),
    }


def run_positive_columns(quality: pd.DataFrame) -> set[str]:
    """The regressor columns positive (a price: a few values of 0 or below are slips) over the stores of
    ``quality`` pooled, as the global model judges a column on the run's rows: a display share that one store
    shows above 0 but for a single week is a share across the run, and its 0 is no slip."""
    totals: dict[str, list[int]] = {}
    for row in quality.get("regressor_values", []):
        for col, (observed, low) in row.items():
            total = totals.setdefault(col, [0, 0])
            total[0], total[1] = total[0] + observed, total[1] + low
    return {col for col, (observed, low) in totals.items() if low <= positive_slips(observed)}


def run_share_columns(quality: pd.DataFrame) -> set[str]:
    """The regressor columns that are shares or flags over the stores of ``quality`` pooled, but for a few values
    above 1: never below 0, 0 somewhere (a price is never 0), and above 1 in at most ``SHARE_SLIP_SHARE`` of their
    values (a percent entered as a number, 45 for 0.45, in a week or in
    a whole store of many; a count, 0 to 7 days on promotion, is above 1 far more often)."""
    totals: dict[str, list[int]] = {}
    for row in quality.get("share_values", []):
        if not isinstance(row, dict):  # a partition cut before the column was recorded
            continue
        for col, counts in row.items():
            total = totals.setdefault(col, [0, 0, 0])
            for i, n in enumerate(counts[:3]):  # observed, within 0..1, zeros
                total[i] += n
    return {col for col, (observed, within, zeros) in totals.items()
            if zeros and observed > within and observed - within <= SHARE_SLIP_SHARE * observed}


SHARE_SLIP_SHARE = 0.1


def _in_columns(quality: pd.DataFrame, column: str, examples: str, columns: set[str]) -> tuple[int, list[str]]:
    """A per-column count's total over the partitions for ``columns`` only, and the first five of their examples
    (``examples``: per partition, column -> examples)."""
    counts = quality[column] if column in quality else pd.Series(dtype=object)
    rows = [row for row in counts if isinstance(row, dict)]  # not a partition cut before the count was recorded
    total = sum(n for row in rows for col, n in row.items() if col in columns)
    return total, [e for row in quality.get(examples, []) if isinstance(row, dict) for col in sorted(columns)
                   for e in row.get(col, [])][:5]


def _counted(quality: pd.DataFrame, column: str, examples: str | None = None) -> tuple[int, list[str]]:
    """A count column's total over the partitions, and the first five of their examples (``column``_examples)."""
    examples = examples or f"{column}_examples"
    total = int(quality[column].sum()) if column in quality else 0
    return total, [e for row in quality.get(examples, []) for e in row][:5]


def _named(quality: pd.DataFrame, column: str) -> dict:
    """Partition key -> its non-empty entry of ``column`` (the columns a partition's quality names there)."""
    return {key: named for key, named in quality.get(column, pd.Series(dtype=object)).items() if named}


def values_plausible(quality: pd.DataFrame, positive: set[str] | None = None, shares: set[str] | None = None
                     ) -> Verdict:
    """Targets far above the rest of their series, and regressors without any value, over the run's partitions
    (``positive``, ``shares``: the columns positive, and shares, over the whole run, ``run_positive_columns``,
    ``run_share_columns``; default: over ``quality``)."""
    extreme, examples = _counted(quality, "extreme_target")
    empty = _named(quality, "empty_regressors")
    problems = []
    if extreme:
        problems.append(f"{extreme} target values are more than {EXTREME_TARGET_MULTIPLE:,.0f} times the mean of "
                        f"their series' other values, e.g. {'; '.join(examples)}: left out of the datasets (a period "
                        "without a row), so no model, baseline or envelope forecasts from it, and its period is not "
                        "judged; fix it in the source if it is a slip")
    jumps, jump_examples = _counted(quality, "newest_jumps", "newest_jump_examples")
    if jumps:
        problems.append(f"{jumps} series' newest target values are more than {NEWEST_JUMP_MULTIPLE:g} times the "
                        f"largest of their earlier ones, e.g. {'; '.join(jump_examples)}: a unit slip (×10, ×100)? "
                        "The models, the baseline and the envelope forecast from it; fix it in the source if it is a "
                        "slip")
    runs, run_examples = _counted(quality, "lifted_runs")
    if runs:
        problems.append(f"{runs} series' newest periods are a run at more than {SERIES_SLIP_USUAL_MULTIPLE:g} times "
                        f"their usual level and {LIFTED_RUN_LARGEST_MULTIPLE:g} times anything they sold before it, "
                        f"e.g. {'; '.join(run_examples)}: a unit slip of the series' feed (a promotion does not last "
                        "at that level)? The models, the baseline and the envelope forecast from it; fix it in the "
                        "source if it is a slip")
    level = quality["store_newest_level"] if "store_newest_level" in quality else pd.Series(dtype=float)
    lifted = level[level >= STORE_JUMP_MULTIPLE].sort_values(ascending=False)
    periods = quality["store_held_periods"] if "store_held_periods" in quality else pd.Series(1, index=quality.index)
    lifted_examples = [f"{key} {pd.Timestamp(quality.at[key, 'last_observed_ds']).date()}: "
                       f"{value:.3g}× over {int(quality.at[key, 'store_newest_level_series'])} series"
                       + (f", {int(periods[key])} lifted periods up to it held" if periods[key] > 1 else "")
                       for key, value in lifted.items()][:5]
    if len(lifted):
        problems.append(f"in {len(lifted)} store partitions the newest period's sales are a median of more than "
                        f"{STORE_JUMP_MULTIPLE:g} times their series' usual level (the median of their 26 periods "
                        f"before), e.g. {'; '.join(lifted_examples)}: promotions do not lift every product of a store "
                        "at once; a unit slip of the store's feed (×10: cases read as units)? That period, and the "
                        "lifted periods just before it (a feed that changed units), are left out of the store's "
                        "dataset, so the store is forecast from the period before them (the lake keeps the rows): "
                        "fix it in the source if it is a slip; if the sales are real, they are used once a later "
                        "period is not lifted, or once half the usual level's 26 periods are")
    zeroed, zeroed_examples = _counted(quality, "zeroed_newest_series", "zeroed_newest_examples")
    if zeroed:
        problems.append(f"{zeroed} series that sell at least {STOPPED_EXPECTED_SALES:g} a period sold 0 in their "
                        f"newest period together with every other such series of their store (or of their "
                        f"partition's small stores, or {ZEROED_SOURCE_SHARE:.0%} of the source's), after selling in "
                        f"the period before, e.g. {'; '.join(zeroed_examples)}: a feed that sent "
                        "zeros for sales not in yet? That period is left out of their datasets, so they are forecast "
                        "from the period before (the lake keeps the rows): fix it in the source if it is a slip; a "
                        "second period of zeros is taken as real (a store that closed)")
    held, held_examples = _counted(quality, "series_slips_held")
    if held:
        problems.append(f"{held} target value{'s' if held != 1 else ''} in stores of fewer than "
                        f"{STORE_JUMP_MIN_SERIES} series {'are' if held != 1 else 'is'} more than "
                        f"{SERIES_SLIP_USUAL_MULTIPLE:g} times their usual level (the median of the 26 periods "
                        f"before) and {SERIES_SLIP_LARGEST_MULTIPLE:g} times their largest before, e.g. "
                        f"{'; '.join(held_examples)}: a unit slip (×100)? Each is left out of the series' dataset, "
                        "as a period without a row, and stays out while it meets the rule (the lake keeps the row; a "
                        "newest one leaves the series forecast from the period before): fix it in the source; a "
                        "level that lasts half of those 26 periods is taken as real")
    positive = run_positive_columns(quality) if positive is None else positive
    slips, slip_examples = _in_columns(quality, "regressor_slips", "regressor_slip_examples", positive)
    if slips:
        problems.append(f"{slips} regressor values of 0 or below in columns otherwise above 0 (a price), e.g. "
                        f"{'; '.join(slip_examples)}: the models read them as missing (no price), and a period "
                        "without a plan takes its regular one (the highest above 0 of its last quarter); fix them "
                        "in the source, or store NULL there")
    shares = run_share_columns(quality) if shares is None else shares
    above_one, above_one_examples = _in_columns(quality, "share_slips", "share_slip_examples", shares)
    if above_one:
        problems.append(f"{above_one} regressor values above 1 in columns otherwise within 0 to 1 (a share or a "
                        f"flag), e.g. {'; '.join(above_one_examples)}: a percent entered as a number (45 for 0.45)? "
                        "The models decide a column's kind on all the run's rows, so one such value makes the whole "
                        "column a plain number for every store: fix them in the source (e.g. display / 100 in "
                        "source.query)")
    price_slips, price_examples = _in_columns(quality, "newest_price_slips", "newest_price_slip_examples", positive)
    if price_slips:
        problems.append(f"{price_slips} series have a value of a price-like regressor in their newest quarter more "
                        f"than {PRICE_SLIP_MULTIPLE:g} times its usual value or under a {PRICE_SLIP_MULTIPLE:g}th of "
                        f"it (the median of its {PRICE_USUAL_PERIODS} periods before its newest; real prices stay "
                        f"within 0.3 to 1.7 times), e.g. {'; '.join(price_examples)}: a unit slip (cents read as "
                        "dollars)? The models read it (a ×100 is the quarter's highest, which their discount takes "
                        "for the regular price), named while it is in that quarter; fix it in the source, or plan "
                        "the horizon's prices")
    planned_slips, planned_examples = _in_columns(quality, "planned_price_slips", "planned_price_slip_examples",
                                                  positive)
    if planned_slips:
        problems.append(f"{planned_slips} series plan a price-like regressor more than {PRICE_SLIP_MULTIPLE:g} times "
                        f"its usual value or under a {PRICE_SLIP_MULTIPLE:g}th of it (the median of its "
                        f"{PRICE_USUAL_PERIODS} periods before its newest sale), e.g. {'; '.join(planned_examples)}: a "
                        "slip in the plan (cents read as dollars)? Batch scoring forecasts with the plan as given; fix "
                        "it in the source's planned rows")
    newest_empty = _named(quality, "regressors_empty_at_newest")
    if newest_empty:
        named = "; ".join(f"{key} {pd.Timestamp(quality.at[key, 'last_observed_ds']).date()}: {', '.join(cols)} "
                          f"({int(quality.at[key, 'regressors_empty_at_newest_series'])} series)"
                          for key, cols in list(newest_empty.items())[:5])
        problems.append(f"regressors empty (NULL) in every row of their store's newest period, though filled before, "
                        f"in {counted(len(newest_empty), 'partition')} ({named}): each series' value there is carried forward "
                        "from the period before; an extract that missed them (a feed not in yet)? Ingest that period "
                        "again once the source has them (mm-assets cycle, or materialize its raw_sales partition)")
    without_zero = _named(quality, "shares_without_zero")
    if without_zero:
        named = "; ".join(f"{key}: " + ", ".join(f"{col} {share:.0%} empty" for col, share in shares.items())
                          for key, shares in list(without_zero.items())[:5])
        cols = sorted({col for shares in without_zero.values() for col in shares})
        problems.append(f"regressors within (0, 1] that reach 1 but are never 0, and empty (NULL) in a quarter of "
                        f"their rows or more, in {counted(len(without_zero), 'partition')} ({named}): a share whose 0 is stored "
                        "as NULL (a LEFT JOIN)? An empty value is carried forward from the period before, and without "
                        "its zeros the column is read as a price. If empty means 0, store 0 or write it in "
                        f"source.query (e.g. COALESCE({cols[0]}, 0) AS {cols[0]})")
    if empty:
        named = "; ".join(f"{key}: {', '.join(cols)}" for key, cols in list(empty.items())[:10])
        problems.append(f"regressors without any value in {len(empty)} partitions ({named}): the models learn "
                        "nothing from them; check the source's join or source.query")
    return Verdict(
        passed=not problems, description=". ".join(problems) or None,
        metadata={"extreme_target_rows": extreme, "extreme_target_examples": examples,
                  "newest_jumps": jumps, "newest_jump_examples": jump_examples,
                  "lifted_runs": runs, "lifted_run_examples": run_examples,
                  "stores_lifted_at_newest": len(lifted), "stores_lifted_examples": lifted_examples,
                  "series_slips_held": held, "series_slips_held_examples": held_examples,
                  "zeroed_newest_series": zeroed, "zeroed_newest_examples": zeroed_examples,
                  "regressor_slips": slips, "regressor_slip_examples": slip_examples,
                  "share_slips": above_one, "share_slip_examples": above_one_examples,
                  "newest_price_slips": price_slips, "newest_price_slip_examples": price_examples,
                  "planned_price_slips": planned_slips, "planned_price_slip_examples": planned_examples,
                  "partitions_with_empty_regressors": len(empty),
                  "partitions_with_regressors_empty_at_newest": len(newest_empty),
                  "partitions_with_shares_without_zero": len(without_zero)},
    )


def sales_continue(quality: pd.DataFrame) -> Verdict:
    """Series that stopped selling, over the run's partitions, with examples and the partitions they are in."""
    stopped = quality["series_stopped_selling"] if "series_stopped_selling" in quality else pd.Series(dtype=int)
    examples = [e for row in quality.get("series_stopped_selling_examples", []) for e in row][:5]
    stores = {key: int(n) for key, n in stopped.items() if n}
    count = int(stopped.sum()) if len(stopped) else 0
    return Verdict(
        passed=count == 0,
        description=f"{count} series stopped selling where their earlier rate expects sales, in "
        f"{', '.join(f'{k} ({n})' for k, n in list(stores.items())[:10])}: e.g. {'; '.join(examples)}. A store "
        "closed or a feed sending zeros? Their forecasts may still show normal sales; check the source."
        if count else None,
        metadata={"series_stopped_selling": count, "partitions": stores, "examples": examples},
    )


def _lone_newest(last: pd.Series, behind: dict, newest: pd.Timestamp, step: pd.Timedelta) -> str:
    """What to say when most partitions end before the source's newest period: that period may be a mistyped date
    (one row of 2026 in data that end in 2018 makes every store look years behind and cuts the history its own
    series read), so it is named with the partitions that reach it."""
    ahead = [str(key) for key, ds in last.items() if key not in behind]
    others = max((ds for key, ds in last.items() if key in behind), default=None)
    periods = f", {int((newest - others) / step):,} periods after the newest of the others ({others.date()})" if (
        others is not None) else ""
    verb = "reaches" if len(ahead) == 1 else "reach"
    named = ", ".join(ahead[:5]) + (f" and {len(ahead) - 5} more" if len(ahead) > 5 else "")
    reached = f"only {named} {verb} it" if ahead else "none of this run's partitions reaches it"
    return (f"the source's newest period {newest.date()} is the odd one: {reached}{periods}. A mistyped date? Rows "
            "dated in error make the others look behind, and their series' forecasts start from that date; correct "
            "them in the source")


# the newest period is "the odd one" when at most one partition in this many reaches it (at least one does)
ODD_ONE_SHARE = 10


@dataclass(frozen=True)
class RunEnds:
    """What ``series_reach_data_end`` reads of every partition of a run: the source's newest period, each
    partition's last observed period, those more than ``max_normal_gap`` periods behind it, and, when most are,
    what to say of the newest period (``_lone_newest``)."""

    newest: pd.Timestamp | None
    last_all: pd.Series
    behind_all: dict
    lone_newest: str | None

    @classmethod
    def of(cls, run: pd.DataFrame, max_normal_gap: int, step: pd.Timedelta) -> RunEnds:
        last_all = run["last_observed_ds"].dropna() if "last_observed_ds" in run else pd.Series(dtype=object)
        ends = run["data_end"].dropna() if "data_end" in run else pd.Series(dtype=object)
        newest = max([*last_all, *ends]) if len(last_all) or len(ends) else None
        behind_all = {key: str(ds.date()) for key, ds in last_all.items() if (newest - ds) > max_normal_gap * step}
        # nearly all behind: the newest period is the odd one. Stores of real data end at different times, and
        # a third of a run's stores reaching the newest week is no typo
        ahead = len(last_all) - len(behind_all)
        lone = (_lone_newest(last_all, behind_all, newest, step)
                if behind_all and ahead <= max(1, len(last_all) // ODD_ONE_SHARE) else None)
        return cls(newest, last_all, behind_all, lone)


def series_reach_data_end(quality: pd.DataFrame, max_normal_gap: int, step: pd.Timedelta,
                          zero_filled: bool = False, run: RunEnds | pd.DataFrame | None = None
                          ) -> Verdict:
    """Series whose rows stop more than ``max_normal_gap`` periods before their partition's newest period, and
    partitions whose rows stop that long before the source's newest (``data_end``, every store's): their
    forecasts start from an earlier period. ``zero_filled``: ``ingest.absent_periods`` is zero already; ``run``:
    every partition of the run (default ``quality``) or its ``RunEnds``, which tell whether the newest period is
    the odd one."""
    ends = run if isinstance(run, RunEnds) else RunEnds.of(quality if run is None else run, max_normal_gap, step)
    early = int(quality["series_ending_early"].sum()) if "series_ending_early" in quality else 0
    examples = [e for row in quality.get("series_ending_early_examples", []) for e in row][:5]
    behind = {key: ds for key, ds in ends.behind_all.items() if key in quality.index}
    problems = []
    if early:
        problems.append(f"{early} series have no row in the last {max_normal_gap} periods before their partition's "
                        f"newest, e.g. {'; '.join(examples)}")
    if ends.lone_newest:
        problems.append(ends.lone_newest)
    if behind:
        named = ", ".join(f"{key} (last {ds})" for key, ds in list(behind.items())[:10])
        problems.append(f"{counted(len(behind), 'partition')} {'ends' if len(behind) == 1 else 'end'} more than {max_normal_gap} periods before the source's newest "
                        f"period {ends.newest.date()}: {named}")
    fix = ("; each is forecast from its own last row, so its forecasts start before the others'. "
           + ("" if zero_filled else "If an absent row means no sales, set ingest.absent_periods: zero. ")
           + "A store whose data arrive late is forecast again when they are ingested; a store that has closed can "
           "be retired (`mm-assets retire-partition <key>`).")
    dormant = int(quality["series_dormant"].sum()) if "series_dormant" in quality else 0
    asleep = ([f"{counted(dormant, 'dormant series', 'dormant series')} (no row for ingest.dormant_after periods "
               "before their store's newest, e.g. "
               + "; ".join([e for row in quality["series_dormant_examples"] for e in row][:3])
               + ") left out of training, scoring and publishing until their next row; the lake keeps their rows"]
              if dormant else [])
    return Verdict(
        passed=not problems,
        # a partition that reaches the newest period is told only of that period (no late rows of its own)
        description=". ".join(problems) + (fix if early or behind else ".") + "".join(f" {a}." for a in asleep)
        if problems else (f"{asleep[0]}." if asleep else None),
        metadata={"series_ending_early": early, "series_ending_early_examples": examples,
                  "series_dormant": dormant,
                  "partitions_ending_early": len(behind), "max_normal_gap": max_normal_gap,
                  "zero_filled_periods": int(quality["zero_filled_periods"].sum())
                  if "zero_filled_periods" in quality else 0},
    )
