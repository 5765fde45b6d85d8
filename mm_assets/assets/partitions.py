"""The two partitionings: periods for ingestion, series groups (stores) for everything model-related.

Why stores and not series: Dagster's per-partition bookkeeping grows faster than linearly with the number of
partitions in a run (measured with dagster 1.13 on SQLite), and a chain has 10k–1M series. A store partition holds all its series;
per-series truth lives in the registry and in metadata/checks.
"""


import warnings
import weakref

import dagster as dg

from mm_assets.settings import WEEKDAYS, Settings

# The asset group of the daily cycle (raw_sales → batch_predictions): one group, so the default lineage view
# shows the assets themselves; each carries a `stage` tag (ingest, datasets, models, scoring) to filter by.
CYCLE_GROUP = "daily_cycle"

# A backfill policy on an asset is beta in Dagster 1.13; we rely on it deliberately (a backfill of stores runs in
# batches of whole runs), so its notice is silenced here, where it is used, not everywhere.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function", category=dg.BetaWarning)


def period_partitions(settings: Settings) -> dg.PartitionsDefinition:
    """raw_sales partitions: one per day (daily data) or per week (weekly data), up to the last complete one."""
    start = settings.ingest.start_date
    if settings.is_daily:
        return dg.DailyPartitionsDefinition(start_date=start, timezone=settings.schedule.timezone)
    return dg.WeeklyPartitionsDefinition(
        start_date=start, day_offset=WEEKDAYS.index(settings.week_anchor), timezone=settings.schedule.timezone
    )


def group_partitions_name(settings: Settings) -> str:
    column = settings.partition.column
    return f"{column}_buckets" if settings.partition.buckets else f"{column}s"


def group_partitions(settings: Settings) -> dg.DynamicPartitionsDefinition:
    """Store (or region, or hash bucket) partitions, registered from the data as it is ingested."""
    return dg.DynamicPartitionsDefinition(name=group_partitions_name(settings))


def group_backfill_policy(settings: Settings) -> dg.BackfillPolicy:
    """A backfill of many stores runs in batches, each batch one run handed whole to the runner."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.schedule.partitions_per_run)


_STEP_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def step_partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    """The partition keys of the step, read once per step (one context).

    Why: every read of ``context.partition_keys`` asks the instance twice whether the range's first and last keys
    are still partitions (store partitions are dynamic), and a step needs its keys in several places: its own
    work, its fan-out, its per-store checks, its run-wide figures. The range is the run's, fixed when it starts.
    """
    keys = _STEP_KEYS.get(context)
    if keys is None:
        keys = _STEP_KEYS[context] = list(context.partition_keys)
    return list(keys)


def some_partitions(keys) -> str:
    """A few partition keys, and how many more: what a message names of a long list."""
    keys = [str(k) for k in keys]
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more partitions" if len(keys) > 5 else "")

