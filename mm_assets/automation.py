"""Jobs, the daily schedule and the sensors that chain the daily many-models cycle.

The cycle, with nobody pressing a button:
  daily_ingest_schedule    ingests the last complete period (raw_sales)
  train_after_ingest       raw_sales materialized → train_job (datasets, trained_models) for every store
  promote_after_training   trained_models partitions materialized → promote_job (production_models,
                           batch_predictions) for exactly those stores
  publish_after_scoring    batch_predictions partitions materialized → publish_job (warehouse tables)
                           for exactly those stores
Each request covers at most ``schedule.partitions_per_run`` stores. The partition sensors keep a cursor (the
last event they handled), so a materialization is never handled twice nor skipped, also across restarts; a
store already handled downstream after the upstream event (e.g. by `mm-assets cycle`) is not requested again.
"""

from collections.abc import Sequence

import dagster as dg

from mm_assets.alerts import failure_payload, post_alert, webhook_host
from mm_assets.assets.partitions import group_partitions, period_partitions
from mm_assets.dead_runs import fail_dead_runs
from mm_assets.settings import Settings

# The run tags by which one run covers a range of partitions (what Dagster's own multi-run backfills set; shown
# on every such run in the UI). Spelled out here rather than imported from dagster's private modules.
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

TRAIN_ASSETS = ["series_datasets", "trained_models"]
PROMOTE_ASSETS = ["production_models", "batch_predictions"]
PUBLISH_ASSETS = ["forecast_predictions", "model_metrics", "promotion_decisions", "forecast_accuracy"]


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Tags that make one run cover a contiguous range of partitions (how multi-run backfills do it)."""
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def batches(keys: Sequence[str], size: int) -> list[list[str]]:
    return [list(keys[i : i + size]) for i in range(0, len(keys), size)]


def contiguous_batches(selected: set[str], ordered: Sequence[str], size: int) -> list[list[str]]:
    """Split ``selected`` partitions into runs that are contiguous in the partition order (a run is a key
    range) and at most ``size`` long."""
    out: list[list[str]] = []
    segment: list[str] = []
    for key in ordered:
        if key in selected:
            segment.append(key)
            if len(segment) == size:
                out.append(segment)
                segment = []
        elif segment:
            out.append(segment)
            segment = []
    if segment:
        out.append(segment)
    return out


def build_jobs(settings: Settings) -> tuple:
    ingest_job = dg.define_asset_job(
        "ingest_job", selection=["raw_sales"],
        description="Copy source rows of the selected periods into the lake (raw_sales).",
    )
    train_job = dg.define_asset_job(
        "train_job", selection=TRAIN_ASSETS,
        description="For a batch of store partitions: cut the series datasets and train one model per series.",
    )
    promote_job = dg.define_asset_job(
        "promote_job", selection=PROMOTE_ASSETS,
        description="For a batch of store partitions: run the promotion gate, then forecast every series with "
        "its champion (or the baseline).",
    )
    publish_job = dg.define_asset_job(
        "publish_job", selection=PUBLISH_ASSETS,
        description="For a batch of store partitions: publish forecasts, metrics and decisions to the warehouse.",
    )
    return ingest_job, train_job, promote_job, publish_job


BACKTEST_ASSETS = ["series_datasets", "backtest", "backtest_metrics"]


def build_backtest_job(settings: Settings):
    """On demand only (no schedule or sensor starts it, and nothing reacts to it): cut the datasets, backtest
    every series, publish backtest_metrics. Config of the ``backtest`` op: origins, horizon, gap, models."""
    return dg.define_asset_job(
        "backtest_job", selection=BACKTEST_ASSETS,
        description="For a batch of store partitions: rolling-origin backtest of every series (forecasts with "
        "their origins in the lake, metrics in the warehouse table backtest_metrics).",
    )


def _new_partition_events(instance, asset: str, after: int) -> tuple[dict[str, int], int]:
    """Partition → newest storage id of ``asset`` materializations after ``after``; and the max id seen."""
    latest = instance.event_log_storage.get_latest_storage_id_by_partition(
        dg.AssetKey(asset), dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=after
    )
    return dict(latest), max(latest.values(), default=after)


def _handled_after(instance, downstream: str, partitions: dict[str, int]) -> set[str]:
    """Partitions whose ``downstream`` materialized after the upstream event we would react to."""
    if not partitions:
        return set()
    done = instance.event_log_storage.get_latest_storage_id_by_partition(
        dg.AssetKey(downstream), dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(partitions),
        after_cursor=min(partitions.values()),
    )
    return {p for p, sid in done.items() if sid > partitions[p]}


def partition_chain_sensor(name: str, upstream: str, downstream: str, job, groups, per_run: int, description: str):
    """A sensor: new ``upstream`` partition materializations → runs of ``job`` for exactly those partitions."""

    @dg.sensor(name=name, job=job, minimum_interval_seconds=30, description=description,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def _sensor(context: dg.SensorEvaluationContext):
        after = int(context.cursor) if context.cursor else 0
        events, newest = _new_partition_events(context.instance, upstream, after)
        if not events:
            return dg.SkipReason(f"no new {upstream} materializations after event {after}")
        todo = {p: sid for p, sid in events.items() if p not in _handled_after(context.instance, downstream, events)}
        ordered = context.instance.get_dynamic_partitions(groups.name)
        requests = [
            dg.RunRequest(run_key=f"{name}-{max(todo[k] for k in batch)}-{batch[0]}", tags=range_tags(batch))
            for batch in contiguous_batches(set(todo), ordered, per_run)
        ]
        return dg.SensorResult(run_requests=requests, cursor=str(newest),
                               skip_reason=None if requests else f"{downstream} already up to date")

    return _sensor


def build_automation(settings: Settings, ingest_job, train_job, promote_job, publish_job) -> tuple[list, list]:
    periods = period_partitions(settings)
    groups = group_partitions(settings)
    per_run = settings.schedule.partitions_per_run

    @dg.schedule(
        name="daily_ingest_schedule",
        cron_schedule=settings.schedule.cron,
        execution_timezone=settings.schedule.timezone,
        job=ingest_job,
        description=(
            "Starts the daily cycle: ingests the last complete period into raw_sales. The sensors then retrain, "
            "promote, score and publish every store."
        ),
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def daily_ingest_schedule(context: dg.ScheduleEvaluationContext):
        keys = periods.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys:
            return dg.SkipReason("no complete period yet")
        return dg.RunRequest(run_key=keys[-1], partition_key=keys[-1])

    @dg.asset_sensor(
        name="train_after_ingest",
        asset_key=dg.AssetKey("raw_sales"),
        job=train_job,
        minimum_interval_seconds=60,
        description=(
            "When raw_sales materializes, requests train_job for every store partition not retrained since, "
            f"{per_run} stores per run."
        ),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def train_after_ingest(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        keys = context.instance.get_dynamic_partitions(groups.name)
        if not keys:
            yield dg.SkipReason(f"no {groups.name} partitions registered yet")
            return
        latest = context.instance.fetch_materializations(dg.AssetKey("raw_sales"), limit=1).records
        storage_id = latest[0].storage_id if latest else 0
        trained = context.instance.event_log_storage.get_latest_storage_id_by_partition(
            dg.AssetKey("trained_models"), dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=storage_id
        )
        stale = [k for k in keys if k not in trained]
        if not stale:
            yield dg.SkipReason(f"every store was retrained after ingest event {storage_id}")
            return
        for batch in contiguous_batches(set(stale), keys, per_run):
            yield dg.RunRequest(run_key=f"ingest-{storage_id}-{batch[0]}", tags=range_tags(batch))

    promote_after_training = partition_chain_sensor(
        "promote_after_training", "trained_models", "production_models", promote_job, groups, per_run,
        "When trained_models partitions materialize, runs the promotion gate and batch scoring (promote_job) "
        "for exactly those stores.",
    )
    publish_after_scoring = partition_chain_sensor(
        "publish_after_scoring", "batch_predictions", "forecast_predictions", publish_job, groups, per_run,
        "When batch_predictions partitions materialize, publishes forecasts, metrics and decisions to the "
        "warehouse (publish_job) for exactly those stores.",
    )
    webhook = settings.operations.alert_webhook

    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        description="Logs every failed run with its failed steps and, when operations.alert_webhook is set, "
        "posts a JSON alert to it.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
        message = context.failure_event.message or "run failed"
        context.log.error(f"run {run.run_id} of {run.job_name} failed (steps {steps}): {message}")
        if webhook:
            status = post_alert(webhook, failure_payload(run.job_name, run.run_id, message, steps))
            context.log.info(f"alert posted to {webhook_host(webhook)} (HTTP {status})")

    @dg.sensor(
        name="fail_dead_runs",
        minimum_interval_seconds=60,
        description="Marks failed every run of this machine whose process is gone (killed, crashed), so that the "
        "run queue never waits on a dead run; the failure alert names the process.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def fail_dead_runs_sensor(context: dg.SensorEvaluationContext):
        failed = fail_dead_runs(context.instance, log=context.log.warning)
        return dg.SkipReason(f"marked {len(failed)} dead runs failed: {', '.join(failed)}" if failed else
                             "no dead runs")

    sensors = [train_after_ingest, promote_after_training, publish_after_scoring, alert_on_run_failure,
               fail_dead_runs_sensor]
    return [daily_ingest_schedule], sensors
