"""Jobs, the daily schedule and the sensor that chains the daily many-models cycle.

The cycle: ``daily_ingest_schedule`` ingests the last complete period (raw_sales); when raw_sales
materializes, ``forecast_after_ingest`` requests ``forecast_job`` (datasets → training → scoring →
warehouse) for every store partition, in batches of ``schedule.partitions_per_run`` stores per run.
"""


from collections.abc import Sequence

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from mm_assets.assets.partitions import group_partitions, period_partitions
from mm_assets.settings import Settings

FORECAST_ASSETS = ["series_datasets", "trained_models", "batch_predictions", "forecast_predictions"]


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Tags that make one run cover a contiguous range of partitions (how multi-run backfills do it)."""
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def batches(keys: Sequence[str], size: int) -> list[list[str]]:
    return [list(keys[i : i + size]) for i in range(0, len(keys), size)]


def build_jobs(settings: Settings) -> tuple:
    ingest_job = dg.define_asset_job(
        "ingest_job",
        selection=["raw_sales"],
        description="Copy source rows of the selected periods into the lake (raw_sales).",
    )
    forecast_job = dg.define_asset_job(
        "forecast_job",
        selection=FORECAST_ASSETS,
        description="For a batch of store partitions: cut datasets, train one model per series, score, publish.",
    )
    return ingest_job, forecast_job


def build_automation(settings: Settings, ingest_job, forecast_job) -> tuple[list, list]:
    periods = period_partitions(settings)
    groups = group_partitions(settings)
    per_run = settings.schedule.partitions_per_run

    @dg.schedule(
        name="daily_ingest_schedule",
        cron_schedule=settings.schedule.cron,
        execution_timezone=settings.schedule.timezone,
        job=ingest_job,
        description=(
            "Starts the daily cycle: ingests the last complete period into raw_sales. The forecast_after_ingest "
            "sensor then retrains and scores every store."
        ),
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def daily_ingest_schedule(context: dg.ScheduleEvaluationContext):
        keys = periods.get_partition_keys(current_time=context.scheduled_execution_time)
        key = keys[-1] if keys else None
        if key is None:
            return dg.SkipReason("no complete period yet")
        return dg.RunRequest(run_key=key, partition_key=key)

    @dg.asset_sensor(
        name="forecast_after_ingest",
        asset_key=dg.AssetKey("raw_sales"),
        job=forecast_job,
        minimum_interval_seconds=60,
        description=(
            "When raw_sales materializes, requests forecast_job for every store partition, "
            f"{per_run} stores per run, once per ingest."
        ),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def forecast_after_ingest(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        keys = context.instance.get_dynamic_partitions(groups.name)
        if not keys:
            yield dg.SkipReason(f"no {groups.name} partitions registered yet")
            return
        latest = context.instance.fetch_materializations(dg.AssetKey("raw_sales"), limit=1).records
        storage_id = latest[0].storage_id if latest else 0
        # stores already retrained after this ingest (e.g. by `mm-assets cycle` or a manual backfill) are skipped
        trained = context.instance.event_log_storage.get_latest_storage_id_by_partition(
            dg.AssetKey("trained_models"), dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=storage_id
        )
        stale = [k for k in keys if k not in trained]
        if not stale:
            yield dg.SkipReason(f"every store was retrained after ingest event {storage_id}")
            return
        for batch in batches(stale, per_run):
            yield dg.RunRequest(run_key=f"ingest-{storage_id}-{batch[0]}", tags=range_tags(batch))

    return [daily_ingest_schedule], [forecast_after_ingest]
