"""The two partitionings: periods for ingestion, series groups (stores) for everything model-related.

Why stores and not series: Dagster's per-partition bookkeeping grows faster than linearly with the number of
partitions in a run (measured with dagster 1.13 on SQLite), and a chain has 10k–1M series. A store partition holds all its series;
per-series truth lives in the registry and in metadata/checks.
"""


import math
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


# more runs than this per job and cycle: the partitions are too fine (each run has a fixed cost, and a global model
# learns from one run's stores only)
MANY_RUNS = 20


def too_many_partitions(settings: Settings, partitions: int) -> str | None:
    """Advice when ``partitions`` store partitions make a cycle of many small runs, else None.

    Measured on 2,500 stores of 2 items each (5,000 daily series, 2 cores): one partition per store took about 50
    minutes a cycle (100 runs of each job, each paying Dagster's per-run and per-partition bookkeeping and a
    global model fit of 50 series); 32 hash buckets took 4 minutes, with a slightly better holdout accuracy."""
    per_run = settings.schedule.partitions_per_run
    runs = -(-partitions // per_run)
    if runs <= MANY_RUNS:
        return None
    buckets = min(256, 2 ** math.ceil(math.log2(max(8, partitions / 50))))
    what = "hash buckets" if settings.partition.buckets else f"{settings.partition.column} partitions"
    return (f"{partitions:,} {what} make {runs:,} runs of each job a cycle (schedule.partitions_per_run {per_run}): "
            "each run pays Dagster's bookkeeping and, with a global model, a fit of its own (of its series, and "
            f"other stores' within model.global_context_rows). Set partition.buckets (e.g. {buckets}: about {partitions / buckets:,.0f} "
            f"{settings.partition.column}s a partition; new storage, as the partitions are published) or raise "
            "schedule.partitions_per_run")


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
