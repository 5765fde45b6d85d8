"""Jobs, the ingest schedule and the sensors that chain the daily many-models cycle.

The cycle, with nobody pressing a button:
  ingest_schedule          ingests the last complete period (raw_sales), once per period
  train_after_ingest       raw_sales materialized → train_job (datasets, trained_models) for every store
  promote_after_training   trained_models partitions materialized → promote_job (production_models,
                           batch_predictions) for exactly those stores
  publish_after_scoring    batch_predictions partitions materialized → publish_job (warehouse tables)
                           for exactly those stores
Each request covers at most ``schedule.partitions_per_run`` stores and ``schedule.rows_per_run`` rows. The three
sensors keep a cursor (the last event they handled), so a materialization is never handled twice nor skipped, also
across restarts; a store already handled downstream after the upstream event (e.g. by `mm-assets cycle`) is not
requested again.

A store whose work another run has in hand is not requested twice: while a run of the downstream job covering it
(queued or going, from any origin: a sensor, the UI, `mm-assets cycle`) started after the upstream event, or the
command-line process (`mm-assets cycle`) that produced the event is still going (it trains, promotes and
publishes every store itself, batch after batch), the store waits in the cursor ("pending") instead of being
dropped. When that work ends without handling it, the store is requested unless that run failed in a step (its
data: it would fail again; the failure alert says so) or was canceled by an operator. A crashed or killed run
that Dagster can relaunch is left to Dagster's run retries (``run_retries`` in dagster.yaml): the store waits for
the retry instead of being requested a second time.
"""

import json
import math
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import psutil

from mm_assets.alerts import failure_payload, held_payload, post_alert, webhook_host
from mm_assets.assets.partitions import group_partitions, period_partitions
from mm_assets.dead_runs import (
    CLOCK_SLACK_SECONDS,
    ENDED_LEFTOVERS,
    HOST_TAG,
    PID_TAG,
    fail_dead_runs,
    process_alive,
)
from mm_assets.ingest.partition_rows import partition_rows, runs_by_rows
from mm_assets.lake import Lake
from mm_assets.reporting.words import counted
from mm_assets.run_retention import prune_runs
from mm_assets.settings import Settings

# The run tags by which one run covers a range of partitions (what Dagster's own multi-run backfills set; shown
# on every such run in the UI). Spelled out here rather than imported from dagster's private modules.
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
# Tags Dagster sets on a failed run: why it failed, and whether its run retries (dagster.yaml) will relaunch it.
FAILURE_REASON_TAG = "dagster/failure_reason"
WILL_RETRY_TAG = "dagster/will_retry"
RETRY_NUMBER_TAG = "dagster/retry_number"
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
STEP_FAILURE = "STEP_FAILURE"
SCHEDULED_PERIOD_TAG = "mm-assets/scheduled_period"  # the newest period a scheduled ingest was requested for
NOT_FINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
NOT_BEGUN = {dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING}
RETRY_WAIT_SECONDS = 600  # how long a failed run marked for retry is waited for (the daemon retries within seconds)

TRAIN_ASSETS = ["series_datasets", "trained_models"]
PROMOTE_ASSETS = ["production_models", "batch_predictions"]
PUBLISH_ASSETS = ["forecast_predictions", "model_metrics", "promotion_decisions", "forecast_accuracy"]


def held_in_run(instance, run_id: str) -> tuple[int, list[str], str] | None:
    """(series held back, the first of them, the first one's problem) by an ingest run, from its raw_sales
    observation of the run's figures (before, every period's materialization carried them), or None when it held
    none."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION, limit=10).records
    data = [r.event_log_entry.dagster_event.event_specific_data.asset_observation for r in records]
    metadata = next((o.metadata for o in data if o.asset_key == dg.AssetKey("raw_sales")), None)
    if metadata is None:
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
                                               limit=1).records
        if not records:
            return None
        metadata = records[0].event_log_entry.dagster_event.event_specific_data.materialization.metadata
    count = int(metadata["series_held_back"].value) if "series_held_back" in metadata else 0
    if not count:
        return None
    return count, list(metadata["held_back_series"].value), str(metadata["held_back_first_problem"].value)


def retry_note(run: dg.DagsterRun) -> str:
    """What becomes of a failed run's stores, for its alert: Dagster relaunches it, or its relaunches are used up
    and nothing will request its stores again by itself (the sensors leave a crashed run to the retries)."""
    if run.tags.get(WILL_RETRY_TAG) == "true" and run.remote_job_origin is not None:
        return " Dagster relaunches it (run_retries)."
    if run.tags.get(WILL_RETRY_TAG) == "false" and run.tags.get(RETRY_NUMBER_TAG):
        return (f" Its relaunches are used up ({run.tags[RETRY_NUMBER_TAG]} so far, run_retries.max_retries): "
                "nothing requests its stores again by itself; re-execute it from failure in the UI.")
    return ""


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Tags that make one run cover a contiguous range of partitions (how multi-run backfills do it)."""
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def batches(keys: Sequence[str], size: int) -> list[list[str]]:
    """``keys`` in order, in chunks of ``size``."""
    return [list(keys[i : i + size]) for i in range(0, len(keys), size)]


def runs_limits(settings: Settings) -> str:
    """What bounds a run's partitions, for the logs."""
    schedule = settings.schedule
    return (f"at most {schedule.partitions_per_run} partitions and {schedule.rows_per_run:,} rows a run: "
            "schedule.partitions_per_run, schedule.rows_per_run")


def partition_sizes(settings: Settings, keys: Sequence[str], warn: Callable[[str], None] = print) -> dict[str, int]:
    """Rows per partition (``ingest.partition_rows``); none when the lake cannot be read (then runs are cut by
    ``schedule.partitions_per_run`` alone, as the message says)."""
    try:
        return partition_rows(Lake(settings.storage.lake), keys)
    except Exception as exc:  # noqa: BLE001 - sizing runs only: the runs themselves then meet the lake's error
        warn(f"the store partitions' rows cannot be counted in the lake ({type(exc).__name__}: {exc}): runs hold "
             "schedule.partitions_per_run partitions whatever their rows")
        return {}


def run_batches(settings: Settings, keys: Sequence[str], warn: Callable[[str], None] = print) -> list[list[str]]:
    """``keys`` in order, cut into the runs of a cycle: at most ``schedule.partitions_per_run`` partitions and
    ``schedule.rows_per_run`` rows each."""
    return contiguous_batches(set(keys), keys, settings, partition_sizes(settings, keys, warn))


def contiguous_batches(selected: set[str], ordered: Sequence[str], settings: Settings,
                       rows: dict[str, int]) -> list[list[str]]:
    """Split ``selected`` partitions into runs that are contiguous in the partition order (a run is a key
    range), each of at most ``schedule.partitions_per_run`` partitions and ``schedule.rows_per_run`` rows
    (``rows``: per partition; one missing counts 0)."""
    schedule = settings.schedule
    out: list[list[str]] = []
    segment: list[str] = []
    for key in [*ordered, None]:
        if key is not None and key in selected:
            segment.append(key)
        elif segment:
            out += runs_by_rows(segment, rows, schedule.partitions_per_run, schedule.rows_per_run)
            segment = []
    return out


# Dagster's run retries relaunch a run that crashed or was killed, not one that failed in a step (bad data, a failed
# blocking check: it would fail again). Said on every job, so that an instance whose chart cannot set
# ``run_retries.retry_on_asset_or_op_failure`` (Azure's Helm values) behaves as the local one.
CRASHES_ONLY = {"dagster/retry_on_asset_or_op_failure": "false"}
DEAD_RUN_CHECK_SECONDS = 15
PRUNE_RUNS_SECONDS = 3600  # storage.run_retention_days is in days: an hourly look is soon enough


def build_jobs(settings: Settings) -> tuple:
    ingest_job = dg.define_asset_job(
        "ingest_job", tags=CRASHES_ONLY, selection=["raw_sales"],
        description="Copy source rows of the selected periods into the lake (raw_sales).",
    )
    train_job = dg.define_asset_job(
        "train_job", tags=CRASHES_ONLY, selection=TRAIN_ASSETS,
        description="For a batch of store partitions: cut the series datasets and train one model per series.",
    )
    promote_job = dg.define_asset_job(
        "promote_job", tags=CRASHES_ONLY, selection=PROMOTE_ASSETS,
        description="For a batch of store partitions: run the promotion gate, then forecast every series with "
        "its champion (or the baseline).",
    )
    publish_job = dg.define_asset_job(
        "publish_job", tags=CRASHES_ONLY, selection=PUBLISH_ASSETS,
        description="For a batch of store partitions: publish forecasts, metrics and decisions to the warehouse.",
    )
    return ingest_job, train_job, promote_job, publish_job


BACKTEST_ASSETS = ["series_datasets", "backtest", "backtest_metrics"]


def build_backtest_job(settings: Settings):
    """On demand only (no schedule or sensor starts it, and nothing reacts to it): cut the datasets, backtest
    every series, publish backtest_metrics. Config of the ``backtest`` op: origins, horizon, gap, models."""
    return dg.define_asset_job(
        "backtest_job", tags=CRASHES_ONLY, selection=BACKTEST_ASSETS,
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
        dg.AssetKey(downstream), dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=min(partitions.values()),
    )
    return {p for p, sid in done.items() if p in partitions and sid > partitions[p]}


def ingests_rewrote_nothing(instance, after: int) -> int:
    """How many raw_sales materializations there are after event ``after`` when none of them wrote anything anew:
    each period file, and the plan when it was read, came back ``unchanged`` (a backfill that read the same rows
    again), or a period file is new and empty (a day before the data starts, materialized from the UI's "missing"
    partitions); 0 when any wrote (or when there are none). Why: retraining every store on the same rows costs a
    full training and changes no forecast."""
    count, cursor = 0, None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_sales"), after_storage_id=after or None),
            limit=1000, cursor=cursor, ascending=True)
        for record in page.records:
            metadata = record.asset_materialization.metadata if record.asset_materialization else {}
            written = [getattr(metadata.get(k), "value", None) for k in ("file", "plan_file")]
            empty = written[0] == "new" and getattr(metadata.get("rows"), "value", None) == 0
            if (written[0] != "unchanged" and not empty) or written[1] not in (None, "unchanged"):
                return 0
            count += 1
        if not page.has_more:
            return count
        cursor = page.cursor


def load_cursor(raw: str | None) -> tuple[int, dict[str, int]]:
    """(last upstream event handled, pending store → the upstream event it waits with). A cursor without pending
    stores is the plain event id (as the sensors stored it before they kept any)."""
    if not raw:
        return 0, {}
    if raw.strip().isdigit():
        return int(raw), {}
    data = json.loads(raw)
    return int(data["after"]), {store: int(sid) for sid, stores in data.get("pending", {}).items() for store in stores}


def dump_cursor(after: int, pending: dict[str, int]) -> str:
    if not pending:
        return str(after)
    by_event: dict[str, list[str]] = {}
    for store, sid in sorted(pending.items()):
        by_event.setdefault(str(sid), []).append(store)
    return json.dumps({"after": after, "pending": by_event}, separators=(",", ":"))


@dataclass(frozen=True)
class _Event:
    storage_id: int
    timestamp: float
    run_id: str


def _events(instance, asset: str, storage_ids: Iterable[int]) -> dict[int, _Event]:
    ids = sorted(set(storage_ids))
    out: dict[int, _Event] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), storage_ids=chunk), limit=len(chunk)
        ).records
        out.update({r.storage_id: _Event(r.storage_id, r.timestamp, r.run_id) for r in records})
    return out


def _command_line_process(instance, run_id: str) -> str | None:
    """'pid N' when the run was executed in process by an ``mm-assets`` command (``cycle``) that is still going:
    such a command goes on to the next jobs itself, so the sensors leave its stores to it."""
    record = instance.get_run_record_by_id(run_id) if run_id else None
    tags = record.dagster_run.tags if record else {}
    pid = tags.get(PID_TAG, "")
    if not pid.isdigit():
        return None
    host = tags.get(HOST_TAG)
    if host in (None, socket.gethostname()):
        if not process_alive(int(pid)):
            return None
        try:
            created = psutil.Process(int(pid)).create_time()
        except psutil.Error:
            return None
        began = record.start_time or record.create_timestamp.timestamp()
        return f"pid {pid}" if created <= began + CLOCK_SLACK_SECONDS else None  # later: a recycled pid
    # another machine's process: taken as going while one of its runs is (the moments between its runs are not)
    going = instance.get_runs(dg.RunsFilter(statuses=NOT_FINISHED, tags={PID_TAG: pid, HOST_TAG: host}), limit=1)
    return f"pid {pid} on {host}" if going else None


def _began(record) -> float:
    """When a run read its inputs at the earliest: its start; a run not started yet reads them later."""
    if record.start_time:
        return record.start_time
    if record.dagster_run.status in NOT_BEGUN:
        return math.inf
    return record.create_timestamp.timestamp()


def _waits_for_retry(record) -> bool:
    """Failed, and Dagster's run retries will relaunch it (the daemon does within seconds; a run executed in
    process cannot be relaunched; a retry not made within RETRY_WAIT_SECONDS is not waited for any longer)."""
    run = record.dagster_run
    ended = record.end_time or record.update_timestamp.timestamp()
    return (run.status == dg.DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true"
            and AUTO_RETRY_RUN_ID_TAG not in run.tags and run.remote_job_origin is not None
            and time.time() - ended < RETRY_WAIT_SECONDS)


def _run_stores(run: dg.DagsterRun, position: dict[str, int], ordered: Sequence[str]) -> set[str]:
    tags = run.tags
    if tags.get(PARTITION_TAG) in position:
        return {tags[PARTITION_TAG]}
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start in position and end in position:
        return set(ordered[position[start] : position[end] + 1])
    return set()


def runs_naming(instance, ordered: Sequence[str], keys: Sequence[str]) -> list[tuple[dg.DagsterRun, list[str]]]:
    """(run, the ``keys`` it covers) of every run not finished (queued or in progress) whose store partitions
    (``ordered``: the instance's, in order) include any of ``keys``. Why: a run's range is checked by Dagster when it
    starts, and a queued run whose range names a store retired meanwhile failed in its first step with a traceback,
    leaving the range's other stores untrained or unscored."""
    position = {key: i for i, key in enumerate(ordered)}
    out = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=NOT_FINISHED)):
        covered = sorted(_run_stores(record.dagster_run, position, ordered) & set(keys))
        if covered:
            out.append((record.dagster_run, covered))
    return out


def _runs_on(instance, job_name: str, downstream: str, since: float, ordered: Sequence[str]) -> list[tuple]:
    """(run record, stores it covers) of every run of ``job_name`` (or materializing ``downstream``) that is not
    finished, or that finished after ``since``."""
    key = dg.AssetKey(downstream)
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(statuses=NOT_FINISHED))}
    finished = instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
        updated_after=datetime.fromtimestamp(since - 60, UTC),
    ))
    records.update({r.dagster_run.run_id: r for r in finished})
    position = {store: i for i, store in enumerate(ordered)}
    out = []
    for record in records.values():
        run = record.dagster_run
        if run.job_name != job_name and key not in (run.asset_selection or ()):
            continue
        stores = _run_stores(run, position, ordered)
        if stores:
            out.append((record, stores))
    return out


def triage(instance, upstream: str, downstream: str, job_name: str, candidates: dict[str, int],
           ordered: Sequence[str]) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Split stores (→ the upstream event to react to) into (to request, pending: to look at again next tick) and
    say why any was held back or dropped. Stores handled downstream after their event, or no longer registered,
    are dropped."""
    handled = _handled_after(instance, downstream, candidates)
    registered = set(ordered)
    open_ = {p: sid for p, sid in candidates.items() if p not in handled and p in registered}
    if not open_:
        return {}, {}, []
    events = _events(instance, upstream, open_.values())
    producers: dict[str, str | None] = {}
    for event in events.values():
        if event.run_id and event.run_id not in producers:
            producers[event.run_id] = _command_line_process(instance, event.run_id)
    since = min((e.timestamp for e in events.values()), default=0.0)
    runs = _runs_on(instance, job_name, downstream, since, ordered)
    todo: dict[str, int] = {}
    pending: dict[str, int] = {}
    notes: dict[str, list[str]] = {}
    for store, sid in open_.items():
        event = events.get(sid)
        if event is None:  # the event was wiped: nothing to wait for
            todo[store] = sid
            continue
        process = producers.get(event.run_id)
        if process:
            pending[store] = sid
            notes.setdefault(f"left to the mm-assets command that produced them ({process}, still going)",
                             []).append(store)
            continue
        # runs of the downstream job covering this store that read their inputs after the event, and the run that
        # made the event when it also materializes the downstream asset (an operator's chain from the UI: it does
        # so after the upstream, in the same run)
        covering = [record for record, stores in runs
                    if store in stores and (_began(record) >= math.floor(event.timestamp)
                                            or record.dagster_run.run_id == event.run_id)]
        busy = [r for r in covering if r.dagster_run.status in NOT_FINISHED or _waits_for_retry(r)]
        if busy:
            pending[store] = sid
            run = busy[0].dagster_run
            state = "to be retried" if run.status == dg.DagsterRunStatus.FAILURE else run.status.value.lower()
            notes.setdefault(f"covered by run {run.run_id[:8]} of {run.job_name} ({state})", []).append(store)
            continue
        last = max(covering, key=lambda r: r.storage_id, default=None)
        run = last.dagster_run if last else None
        if run is not None and run.status == dg.DagsterRunStatus.FAILURE and \
                run.tags.get(FAILURE_REASON_TAG) == STEP_FAILURE:
            # looked at again every tick, so that the skip reason names it until a run handles it
            pending[store] = sid
            notes.setdefault(f"not requested again: run {run.run_id[:8]} of {run.job_name} failed in a step (it "
                             "would fail again as it is); once its cause is fixed, re-execute it", []).append(store)
        elif run is not None and run.status == dg.DagsterRunStatus.CANCELED:
            notes.setdefault(f"not requested again: run {run.run_id[:8]} of {run.job_name} was canceled",
                             []).append(store)
        else:  # no run took it, or the one that did crashed and will not be relaunched
            todo[store] = sid
    return todo, pending, [f"{len(stores)} stores {_span(stores, ordered)} {why}" for why, stores in notes.items()]


def _span(stores: list[str], ordered: Sequence[str]) -> str:
    chosen = set(stores)
    keys = [k for k in ordered if k in chosen]
    return keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"


def _requests(prefix: str, todo: dict[str, int], ordered: Sequence[str], settings: Settings,
              context: dg.SensorEvaluationContext) -> list[dg.RunRequest]:
    """Runs of the partitions ``todo`` ({partition: the upstream event}), cut as a cycle cuts them."""
    if not todo:
        return []
    rows = partition_sizes(settings, list(todo), context.log.warning)
    return [dg.RunRequest(run_key=f"{prefix}-{max(todo[k] for k in batch)}-{batch[0]}", tags=range_tags(batch))
            for batch in contiguous_batches(set(todo), ordered, settings, rows)]


def partition_chain_sensor(name: str, upstream: str, downstream: str, job, groups, settings: Settings,
                           description: str):
    """A sensor: new ``upstream`` partition materializations → runs of ``job`` for exactly those partitions."""

    @dg.sensor(name=name, job=job, minimum_interval_seconds=30, description=description,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def _sensor(context: dg.SensorEvaluationContext):
        after, pending = load_cursor(context.cursor)
        events, newest = _new_partition_events(context.instance, upstream, after)
        if not events and not pending:
            return dg.SkipReason(f"no new {upstream} materializations after event {after}")
        ordered = context.instance.get_dynamic_partitions(groups.name)
        todo, waiting, notes = triage(context.instance, upstream, downstream, job.name, {**pending, **events},
                                      ordered)
        for note in notes:
            context.log.info(note)
        requests = _requests(name, todo, ordered, settings, context)
        return dg.SensorResult(run_requests=requests, cursor=dump_cursor(newest, waiting),
                               skip_reason=None if requests else "; ".join(notes) or f"{downstream} already up to date")

    return _sensor


def _waiting_from(keys: list[str], settings: Settings, context: dg.ScheduleEvaluationContext) -> int:
    """The first period the scheduled ingest of the newest (``keys[-1]``) reads: the earlier ones that hold the
    plan of a store that had not reported them yet (``waiting_from``). Why: the schedule reads one period a day,
    so a store's sales of a period it reported late waited for a full `mm-assets cycle`. Not the periods of a held
    series: after a full read those go back to the first period, every day until it is mended (the check
    no_series_held_back names them). A lake that cannot be read leaves the newest alone (said in the tick's log)."""
    import pandas as pd

    from mm_assets.ingest.periods import waiting_from

    try:
        return waiting_from(keys, len(keys) - 1, Lake(settings.storage.lake), target=settings.columns.target,
                            newest_sale=pd.Timestamp(keys[-1]), held=False)
    except Exception as exc:  # noqa: BLE001 - the newest period is ingested whatever the lake says
        context.log.warning(f"the periods waiting to be read again are not known ({type(exc).__name__}: {exc}); "
                            "the newest alone is requested")
        return len(keys) - 1


def scheduled_ingest_of(instance, period: str) -> dg.DagsterRun | None:
    """The schedule's run of ``period`` that succeeded or has not ended, if any. Why: Dagster skips a repeated
    run key only within one scheduled time, so a weekly source under the default daily cron was ingested again,
    with its alerts, at each of a week's seven ticks. A run that failed or was canceled does not count: the next
    tick requests the period again (a source that was down)."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={SCHEDULED_PERIOD_TAG: period}), limit=20)
    for record in records:  # newest first
        if record.dagster_run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            return record.dagster_run
    return None


def build_automation(settings: Settings, ingest_job, train_job, promote_job, publish_job) -> tuple[list, list]:
    periods = period_partitions(settings)
    groups = group_partitions(settings)

    @dg.schedule(
        name="ingest_schedule",
        cron_schedule=settings.schedule.cron,
        execution_timezone=settings.schedule.timezone,
        job=ingest_job,
        description=(
            f"Starts the cycle: at cron {settings.schedule.cron!r} ({settings.schedule.timezone}), ingests the "
            f"last complete {'day' if settings.is_daily else 'week (' + settings.pandas_freq + ')'} into raw_sales, once per period (a tick whose period "
            "was already requested is skipped), from the first earlier period that holds the plan of a store that "
            "had not reported it yet. The sensors then retrain, promote, score and publish every store."
        ),
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def ingest_schedule(context: dg.ScheduleEvaluationContext):
        keys = periods.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys:
            return dg.SkipReason("no complete period yet")
        done = scheduled_ingest_of(context.instance, keys[-1])
        if done is not None:
            return dg.SkipReason(
                f"period {keys[-1]} was requested by an earlier tick (run {done.run_id[:8]}, "
                f"{done.status.value.lower()}); the next period is read once it is complete")
        first = keys[_waiting_from(keys, settings, context)]
        tags = {SCHEDULED_PERIOD_TAG: keys[-1]}
        if first == keys[-1]:
            return dg.RunRequest(run_key=keys[-1], partition_key=keys[-1], tags=tags)
        return dg.RunRequest(run_key=keys[-1], tags=tags | range_tags([first, keys[-1]]))

    @dg.sensor(
        name="train_after_ingest",
        job=train_job,
        minimum_interval_seconds=60,
        description=(
            "When raw_sales materializes, requests train_job for every store partition not retrained since, in "
            f"runs of {runs_limits(settings)}; after ingests that rewrote no period file and no plan (the same rows "
            "read again), only for stores never trained."
        ),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def train_after_ingest(context: dg.SensorEvaluationContext):
        keys = context.instance.get_dynamic_partitions(groups.name)
        if not keys:
            return dg.SkipReason(f"no {groups.name} partitions registered yet")
        after, pending = load_cursor(context.cursor)
        latest = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_sales"), after_storage_id=after or None),
            limit=1, ascending=False,
        ).records
        if not latest and not pending:
            return dg.SkipReason(f"no new raw_sales materialization after event {after}")
        newest = latest[0].storage_id if latest else after
        # the same rows read again (a backfill of unchanged periods): only a store never trained is trained
        same = ingests_rewrote_nothing(context.instance, after) if latest else 0
        trained = _handled_after(context.instance, "trained_models", {k: 0 for k in keys}) if same else set()
        candidates = {**pending, **({k: newest for k in keys if k not in trained} if latest else {})}
        todo, waiting, notes = triage(context.instance, "raw_sales", "trained_models", train_job.name, candidates,
                                      keys)
        if same:
            notes.append(f"the {counted(same, 'raw_sales materialization')} after event {after} rewrote no period "
                         f"file and no plan (the same rows read again): {len(trained):,} stores trained before are "
                         "not retrained")
        for note in notes:
            context.log.info(note)
        requests = _requests("ingest", todo, keys, settings, context)
        done = f"every store was retrained after ingest event {newest}"
        return dg.SensorResult(run_requests=requests, cursor=dump_cursor(newest, waiting),
                               skip_reason=None if requests else "; ".join(notes) or done)

    promote_after_training = partition_chain_sensor(
        "promote_after_training", "trained_models", "production_models", promote_job, groups, settings,
        "When trained_models partitions materialize, runs the promotion gate and batch scoring (promote_job) "
        "for exactly those stores.",
    )
    publish_after_scoring = partition_chain_sensor(
        "publish_after_scoring", "batch_predictions", "forecast_predictions", publish_job, groups, settings,
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
        retry = retry_note(run)
        context.log.error(f"run {run.run_id} of {run.job_name} failed (steps {steps}): {message}{retry}")
        if webhook:
            status = post_alert(webhook, failure_payload(run.job_name, run.run_id, message + retry, steps))
            context.log.info(f"alert posted to {webhook_host(webhook)} (HTTP {status})")

    @dg.run_status_sensor(
        name="alert_on_held_series", run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job],
        description="When an ingest run succeeded but held series back for bad rows (ingest.on_bad_rows: hold), "
        "logs them and, when operations.alert_webhook is set, posts a JSON alert to it: the run is green, its data "
        "are not complete.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def alert_on_held_series(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        held = held_in_run(context.instance, run.run_id)
        if held is None:
            return
        count, series, problem = held
        context.log.warning(f"run {run.run_id} of {run.job_name} held back {count} series for bad rows: "
                            f"{', '.join(series[:10])}. {problem}")
        if webhook:
            status = post_alert(webhook, held_payload(run.job_name, run.run_id, count, series, problem))
            context.log.info(f"alert posted to {webhook_host(webhook)} (HTTP {status})")

    # every 15 s: a killed run's leftover step processes are stopped here, and Dagster relaunches the run within
    # seconds of its failure; the sooner they are gone, the shorter the time both could write
    @dg.sensor(
        name="fail_dead_runs",
        minimum_interval_seconds=DEAD_RUN_CHECK_SECONDS,
        description="Marks failed every run of this machine whose process is gone (killed, crashed), so that the "
        "run queue never waits on a dead run; the failure alert names the process.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def fail_dead_runs_sensor(context: dg.SensorEvaluationContext):
        said: list[str] = []

        def log(line: str) -> None:
            context.log.warning(line)
            said.append(line)

        failed = fail_dead_runs(context.instance, log=log)
        cleaned = [line for line in said if line.startswith(ENDED_LEFTOVERS)]  # leftovers of runs already failed
        return dg.SkipReason(
            (f"marked {len(failed)} dead runs failed: {', '.join(failed)}" if failed else "no dead runs")
            + (f"; stopped the leftover processes of {len(cleaned)} ended runs: " + " ".join(cleaned) if cleaned
               else ""))

    @dg.sensor(
        name="prune_runs",
        minimum_interval_seconds=PRUNE_RUNS_SECONDS,
        description="With storage.run_retention_days: deletes the runs that ended that long ago and hold no "
        "partition's newest materialization nor any check's newest result (the instance stops growing); "
        "without it, does nothing.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def prune_runs_sensor(context: dg.SensorEvaluationContext):
        days = settings.storage.run_retention_days
        if days is None:
            return dg.SkipReason("storage.run_retention_days is not set: every run is kept")
        result = prune_runs(context.instance, days)
        if result.deleted or result.unsupported:
            context.log.info(result.words(days))
        return dg.SkipReason(result.words(days))

    sensors = [train_after_ingest, promote_after_training, publish_after_scoring, alert_on_run_failure, alert_on_held_series,
               fail_dead_runs_sensor, prune_runs_sensor]
    return [ingest_schedule], sensors
