"""Running the whole daily many-models cycle against a Dagster instance, from the command line.

``make demo`` uses it: the runs are recorded in the instance (``$DAGSTER_HOME``), so ``make ui`` shows their
lineage, partitions and metadata exactly as if the schedule and sensor had launched them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from mm_assets.assets.partitions import group_partitions, period_partitions, too_many_partitions
from mm_assets.automation import range_tags, run_batches, runs_limits
from mm_assets.dead_runs import fail_dead_runs
from mm_assets.ids import series_keys
from mm_assets.ingest.datasets import dormant_keys
from mm_assets.ingest.periods import newest_sales, periods_to_read, sale_lag
from mm_assets.ingest.source import SourceError, SourceReader
from mm_assets.ingest.source_end import source_end
from mm_assets.ingest.taken_back import remove_empty_after, with_rows_after
from mm_assets.job_runs import FailedCheck, execute_job
from mm_assets.lake import Lake
from mm_assets.preflight import StorageError, check_stores
from mm_assets.registry import ModelRegistry
from mm_assets.registry.gate import left_the_data
from mm_assets.registry.production import ProductionRegistry
from mm_assets.registry.promotion import RETIRED, SAME_FIT, rule_of
from mm_assets.registry.report import baseline_share_by_store
from mm_assets.reporting.changes import rises_and_falls
from mm_assets.reporting.words import counted
from mm_assets.run_retention import history_bytes, prune_runs
from mm_assets.settings import Settings
from mm_assets.sql import redact, redact_secrets
from mm_assets.warehouse import Warehouse

SCORED = dg.AssetKey("batch_predictions")
RAW = dg.AssetKey("raw_sales")


@dataclass(frozen=True)
class HeldBack:
    """Series the ingest held back for bad rows: how many, the first of them, and the first one's problem."""

    count: int = 0
    series: list[str] = field(default_factory=list)
    problem: str = ""
    by_problem: str = ""  # 'By problem: 'price' not a number: 230 series; ...'


@dataclass
class CycleReport:
    periods: int = 0
    partitions: int = 0
    runs: list[tuple[str, str, bool, float]] = field(default_factory=list)  # job, partitions, success, seconds
    summary: dict = field(default_factory=dict)
    failed_checks: list[FailedCheck] = field(default_factory=list)
    stopped: str | None = None  # the job whose failure stopped the cycle before anything after it ran
    # a store (lake, database) found unreachable after a run failed: the cycle stopped there, the message names it
    store_down: str | None = None
    # forecast periods scored in this cycle whose regressors came from plan rows, and all of them
    periods_with_plan: int = 0
    periods_forecast: int = 0
    rewritten: list[str] = field(default_factory=list)  # periods already ingested whose rows changed in the source
    resized: list[str] = field(default_factory=list)  # of those, the ones with rows added or removed
    rebuilt: list[str] = field(default_factory=list)  # periods whose file in the lake could not be read
    reshaped: list[str] = field(default_factory=list)  # periods written again with other columns, same actuals
    late_sales: list[str] = field(default_factory=list)  # periods already ingested that got sales they lacked
    first_sales: list[str] = field(default_factory=list)  # periods the lake held as plan only that got their sales
    held: HeldBack = field(default_factory=HeldBack)  # series the ingest held back for bad rows
    spellings: str | None = None  # id values written two ways in the rows read (``ingest_summary.spellings_line``)
    merged: str | None = None  # rows ``ingest.on_duplicates`` merged into others (``validation.MergedRows.line``)
    behind_today: str | None = None  # what to say of a source whose newest sale is periods before today
    in_progress: str | None = None  # what to say of sales of the period in progress (ingested once it is complete)
    undated_rows: int = 0  # source rows without a date (NULL): never read
    pruned: str | None = None  # what storage.run_retention_days deleted of the instance's runs (None: not set)
    history_bytes: int | None = None  # the local instance's run history on disk after the cycle (None: a server's)

    def failed_check_counts(self) -> dict[tuple[str, str], int]:
        """(check, severity) -> evaluations that did not pass, in this cycle's runs."""
        return dict(Counter((check.name, check.severity) for check in self.failed_checks))

    @property
    def ok(self) -> bool:
        return all(success for _, _, success, _ in self.runs)


def _materializations(result: dg.ExecuteInProcessResult | None, key: dg.AssetKey):
    """A run's materializations of asset ``key`` (none without a result)."""
    for event in result.all_events if result is not None else []:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION and event.asset_key == key:
            yield event.event_specific_data.materialization


def _run_wide(result: dg.ExecuteInProcessResult | None, key: dg.AssetKey):
    """The metadata of a run's observations of asset ``key`` (its run-wide figures), then of its materializations
    (older runs carried them on every partition)."""
    for event in result.all_events if result is not None else []:
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION and event.asset_key == key:
            yield event.event_specific_data.asset_observation.metadata
    yield from (materialization.metadata for materialization in _materializations(result, key))


def rewritten_periods(result: dg.ExecuteInProcessResult | None, how: str = "rewritten") -> list[str]:
    """The periods an ingest run found already in the lake with other rows (``raw_sales``' ``file`` metadata), or
    with ``how="rebuilt"`` whose file there could not be read, ``how="reshaped"`` written again with other
    columns but the same actuals, ``how="late_sales"`` that got sales they lacked beside the same actuals."""
    return sorted(m.partition for m in _materializations(result, RAW)
                  if "file" in m.metadata and m.metadata["file"].value == how)


def resized_periods(result: dg.ExecuteInProcessResult | None) -> list[str]:
    """Of the rewritten periods of an ingest run, those with rows added or removed (``rows_before`` metadata)."""
    return sorted(m.partition for m in _materializations(result, RAW)
                  if "file" in m.metadata and m.metadata["file"].value == "rewritten" and "rows_before" in m.metadata)


def held_back(result: dg.ExecuteInProcessResult | None) -> HeldBack:
    """The series an ingest run held back for bad rows (its ``raw_sales`` metadata)."""
    for metadata in _run_wide(result, RAW):
        if int(metadata["series_held_back"].value if "series_held_back" in metadata else 0):
            return HeldBack(int(metadata["series_held_back"].value), list(metadata["held_back_series"].value),
                            str(metadata["held_back_first_problem"].value),
                            str(metadata["held_back_by_problem"].value))
    return HeldBack()


def plan_periods(result: dg.ExecuteInProcessResult | None) -> tuple[int, int]:
    """(forecast periods with a plan of the regressors, all forecast periods) scored by a run, from its
    ``batch_predictions`` materializations: the summary says how much of the forecast assumed no plan."""
    planned = total = 0
    for materialization in _materializations(result, SCORED):
        metadata = materialization.metadata
        if "periods_with_plan" in metadata:
            with_plan = int(metadata["periods_with_plan"].value)
            planned += with_plan
            total += with_plan + int(metadata["periods_without_plan"].value)
    return planned, total


def period_keys_for(settings: Settings, first: pd.Timestamp, last: pd.Timestamp) -> list[str]:
    """Period partition keys covering [first, last] (clipped to ingest.start_date)."""
    periods = period_partitions(settings)
    keys = periods.get_partition_keys()
    starts = pd.to_datetime(pd.Series(keys))
    step = settings.step
    mask = (starts + step > first) & (starts <= last)
    return [k for k, m in zip(keys, mask) if m]


def periods_taken_back(settings: Settings, keys: list[str], lake: Lake,
                       log: Callable[[str], None] = print) -> list[str]:
    """The periods after ``keys[-1]`` (the source's newest) up to the newest the lake holds a file with rows of,
    said in ``log``: the source has taken their rows back (a load rolled back, a week restated as not yet
    complete). Read only up to the source's newest date, the lake would keep them, and the datasets, models and
    forecasts would go on from rows that are gone. Files after it that hold no row are not read: the cycle removes
    them after its ingest (``removed_after``)."""
    if not keys:
        return []
    held = with_rows_after(lake, keys[-1])
    if not held:
        return []
    back = [k for k in period_partitions(settings).get_partition_keys() if keys[-1] < k <= held[-1]]
    if back:
        log(f"note: the lake holds {len(back)} period{'s' if len(back) > 1 else ''} after the source's newest date "
            f"({back[0]} .. {back[-1]}) whose rows the source no longer has: read again, so that what it took back "
            "leaves the lake, the datasets and the forecasts")
    return back


def removed_after(lake: Lake, key: str, log: Callable[[str], None] = print) -> list[str]:
    """Remove the lake's period files after ``key`` (the source's newest period) that hold no row
    (``taken_back.remove_empty_after``), said in ``log``: left, every cycle read them again."""
    removed = remove_empty_after(lake, key)
    if removed:
        log(f"note: removed {counted(len(removed), 'empty period file')} after the source's newest period {key} "
            f"({removed[0]} .. {removed[-1]}): no row of the source is dated there (any more: a mistyped date "
            "since fixed, or a load rolled back), and every cycle read them again. Their raw_sales partitions stay "
            "materialized in Dagster; a period the source fills later is ingested anew")
    return removed


def period_in_progress(settings: Settings, keys: list[str], newest_sale: pd.Timestamp | None) -> str | None:
    """What to say when the source has sales after the last complete period ``keys[-1]`` (the week or day in
    progress), or None. Those rows are ingested with their period once it is complete; until then the forecasts
    start after ``keys[-1]``, and a user who sees the source's newest date and not its period is told why."""
    if not keys or newest_sale is None:
        return None
    start = pd.Timestamp(keys[-1]) + settings.step
    if newest_sale < start:
        return None
    end = start + settings.step
    unit = "day" if settings.is_daily else "week"
    span = f"{start.date()}" if settings.is_daily else f"{start.date()} .. {(end - pd.Timedelta(days=1)).date()}"
    dated = "" if settings.is_daily else (" (a week's date is its first day: a source that dates its weeks by their "
                                          "last day has each date's week read as the one that starts there; shift "
                                          "its dates 6 days back in source.query)")
    return (f"the sales of {span} (the {unit} in progress, up to {newest_sale.date()}) are ingested once that {unit} "
            f"is complete, by the first cycle from {end.date()}; the forecasts start after {keys[-1]}{dated}")


def history_too_short(settings: Settings, periods: int) -> str | None:
    """Why no series can get a model when the source spans only ``periods`` periods (a horizon longer than the
    history, say), or None: said before the runs, not found out from every series falling back."""
    needed = settings.min_train_periods + settings.horizon + settings.gap
    if periods >= needed:
        return None
    default = settings.default_min_train_periods(settings.model.type)
    lower = (f"lower model.min_train_periods (set to {settings.min_train_periods}; the default of "
             f"{settings.model.type} is {default}), " if default < settings.min_train_periods else "")
    return (f"the source spans {counted(periods, 'period')}, fewer than a model needs (model.min_train_periods "
            f"{settings.min_train_periods} + horizon {settings.horizon} + gap {settings.gap} = {needed}): every series "
            f"will be served by its baseline; {lower}shorten the horizon or wait for more history")


def run_cycle(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
    log: Callable[[str], None] = print,
    recent: int | None = None,
    stores_checked: bool = False,
) -> CycleReport:
    """The whole daily cycle: ingest (every period of the source, or with ``recent`` the newest ``recent`` and
    what the lake lacks: ``periods_to_read``), then train, promote and score, publish, in runs cut by
    ``run_batches``. ``stores_checked``: the caller ran ``check_stores`` just before."""
    report = CycleReport()
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # the gate's decisions of this cycle are from here on
    fail_dead_runs(instance, log)  # a killed earlier cycle must not leave its runs STARTED
    if not stores_checked:
        check_stores(settings)  # every store the cycle writes, before the first write
    reader = SourceReader.from_settings(settings)
    first, last, rows = reader.date_range()
    log(f"source {redact(settings.source.url)}: {counted(rows, 'row')} from {first.date()} to {last.date()}")
    report.undated_rows = reader.undated_rows()
    if report.undated_rows:
        log(f"warning: {undated_words(settings, report.undated_rows)}")
    # how far behind the source is, and the period in progress; sales far after the rest are not its newest
    newest_sale, leap = newest_sales(reader, settings)
    if leap is not None:
        log(f"warning: sales {leap.words(settings)}: their series are held back, and the periods after "
            f"{leap.before.date()} are not read")
    last = source_end(reader, settings, last, leap)  # a held sale's periods are not read, nor those up to it
    report.behind_today = sale_lag(settings, newest_sale)
    if report.behind_today:
        log(f"note: {report.behind_today}")
    start = pd.Timestamp(settings.ingest.start_date) if settings.ingest.start_date else first
    if first < start:
        log(f"warning: source starts {first.date()}, before ingest.start_date {start.date()}; older rows are not ingested")
    keys = period_keys_for(settings, max(first, start), last)
    if not keys:
        raise SourceError(
            f"no raw_sales partition covers the source's dates {first.date()}..{last.date()}: "
            f"check ingest.start_date ({settings.ingest.start_date}) and frequency ({settings.frequency})"
        )
    newest_key = keys[-1]
    keys = keys + periods_taken_back(settings, keys, Lake(settings.storage.lake), log)
    report.in_progress = period_in_progress(settings, keys, newest_sale)
    if report.in_progress:
        log(f"note: {report.in_progress}")
    short = history_too_short(settings, len(keys))
    if short:
        log(f"warning: {short}")
    if recent and not instance.get_dynamic_partitions(group_partitions(settings).name):
        # a new instance (or one moved to another database) registers stores from the periods it reads: the stores
        # without rows in the newest periods would be left out, silently
        log(f"note: --recent {recent} not applied: this Dagster instance has no store partitions yet, and a store is "
            "registered by the periods that hold its rows, so every period is read once")
        recent = None
    if recent:
        every = len(keys)
        keys = periods_to_read(keys, Lake(settings.storage.lake), recent, settings.columns.target, newest_sale)
        log(f"ingest: the newest {recent} of {every} periods, and before them what the lake lacks, a series held "
            "back waits for, or rows without sales up to the source's newest sale (a store's late week, plan) "
            f"(--recent): {len(keys)} to read; corrections of older periods wait for a cycle without --recent")

    def execute(job_name: str, tags: dict[str, str], label: str) -> bool:
        run = execute_job(defs, instance, job_name, tags, label, settings=settings)
        report.runs.append((job_name, label, run.success, run.seconds))
        report.failed_checks.extend(run.failed_checks)
        planned, total = plan_periods(run.result)
        report.periods_with_plan += planned
        report.periods_forecast += total
        if job_name == "ingest_job":
            report.rewritten += rewritten_periods(run.result)
            report.resized += resized_periods(run.result)
            report.rebuilt += rewritten_periods(run.result, "rebuilt")
            report.reshaped += rewritten_periods(run.result, "reshaped")
            report.late_sales += rewritten_periods(run.result, "late_sales")
            report.first_sales += rewritten_periods(run.result, "first_sales")
            report.held = held_back(run.result)
            report.spellings = next((str(m["id_spellings"].value) for m in _run_wide(run.result, RAW)
                                     if "id_spellings" in m), None)
            report.merged = next((str(m["duplicate_rows_merged"].value) for m in _run_wide(run.result, RAW)
                                  if "duplicate_rows_merged" in m), None)
        for line in run.log_lines():
            log(line)
        return run.success

    log(f"ingest: {counted(len(keys), 'period')} {keys[0]} .. {keys[-1]} in one run")
    known = set(instance.get_dynamic_partitions(group_partitions(settings).name)) if recent else set()
    ingested = execute("ingest_job", range_tags(keys), f"{keys[0]}..{keys[-1]}")
    report.periods = len(keys) if ingested else 0
    if ingested:
        removed_after(Lake(settings.storage.lake), newest_key, log)
    groups = instance.get_dynamic_partitions(group_partitions(settings).name)
    if recent and ingested:
        note = new_stores_note(sorted(set(groups) - known), keys[0])
        if note:
            log(f"note: {note}")
    report.partitions = len(groups)
    if not ingested:  # nothing ran after it: the summary shows what was stored before, unchanged
        report.stopped = "ingest_job"
        report.store_down = _recheck_stores(settings, log)
        if report.store_down:
            log(f"stopping the cycle: {report.store_down}")
            log("summary skipped: the store named above cannot be reached")
        elif groups:
            _summarize_into(report, settings, groups, log)
        return report
    what = (f"{counted(len(groups), 'partition')} (hash buckets of {settings.partition.column})"
            if settings.partition.buckets else f"{counted(len(groups), settings.partition.column + ' partition')}")
    runs = run_batches(settings, groups, log)
    log(f"train, promote + score, publish: {what} in {counted(len(runs), 'run')} of each job "
        f"({runs_limits(settings)})")
    advice = too_many_partitions(settings, len(groups))
    if advice:
        log(f"  note: {advice}")
    for batch in runs:
        label = f"{batch[0]}..{batch[-1]}" if len(batch) > 1 else batch[0]
        for job in ("train_job", "promote_job", "publish_job"):
            if not execute(job, range_tags(batch), label):
                report.store_down = _recheck_stores(settings, log)
                break
        if report.store_down:  # every later run would fail the same way, each after its own timeouts
            report.stopped = f"{job} [{label}]"
            log(f"stopping the cycle: {report.store_down}; the stores after {label} were not run")
            break
    if report.store_down:  # its reads would wait out the same timeouts (80 s and more) to say nothing new
        log("summary skipped: the store named above cannot be reached")
    else:
        _summarize_into(report, settings, groups, log, since=started)
    keep_runs(report, instance, settings, log)
    return report


def new_stores_note(new: list[str], first_read: str) -> str | None:
    """What ``--recent`` did not read of the store partitions it registered (``new``): their rows before
    ``first_read``, the oldest period it read. A store new to the source may have sent its history with its first
    rows; it is then forecast from a few periods until a cycle without ``--recent`` reads the rest."""
    if not new:
        return None
    shown = ", ".join(new[:5]) + (f" and {len(new) - 5:,} more" if len(new) > 5 else "")
    return (f"{counted(len(new), 'new store partition')} ({shown}) registered by --recent, which read from "
            f"{first_read} on: any rows of theirs before it are not read, and they are forecast from what was; "
            "run a cycle without --recent to read their whole history")


def keep_runs(report: CycleReport, instance: dg.DagsterInstance, settings: Settings,
              log: Callable[[str], None]) -> None:
    """``storage.run_retention_days``: delete the instance's runs no partition or check needs any more, and say
    how large the local instance's history is (it grows with every full cycle while every run is kept)."""
    days = settings.storage.run_retention_days
    if days is not None:
        result = prune_runs(instance, days)
        report.pruned = result.short(days)
        if result.deleted or result.unsupported:
            log(result.words(days))
    report.history_bytes = history_bytes(instance)


def undated_words(settings: Settings, rows: int) -> str:
    """What the summary and the log say of source rows without a date, with the fix."""
    ts = settings.columns.timestamp
    one = rows == 1
    return (f"{rows:,} row{'' if one else 's'} of {settings.source.table!r} without a {ts} (NULL) belong"
            f"{'s' if one else ''} to no period and {'is' if one else 'are'} never read: give "
            f"{'it its' if one else 'them their'} date, or leave {'it' if one else 'them'} out in source.query "
            f"(WHERE {ts} IS NOT NULL)")


def _recheck_stores(settings: Settings, log: Callable[[str], None]) -> str | None:
    """After a failed run: ``store_down``, said first (the run itself may have spent minutes on its client's retries
    before it failed; the check answers within seconds)."""
    log("checking that the lake and the databases can still be written ...")
    return store_down(settings)


def store_down(settings: Settings) -> str | None:
    """After a failed run: the store the cycle writes (lake, registries, warehouse) that cannot be reached or
    written, named with its setting and the fix, or None (the run failed for its own reasons: the next batch goes
    on)."""
    try:
        check_stores(settings)
    except StorageError as exc:
        return str(exc)
    return None


def _summarize_into(report: CycleReport, settings: Settings, groups: list[str], log: Callable[[str], None],
                    since: dt.datetime | None = None) -> None:
    # a store gone from the source keeps its published forecasts: the summary counts them apart
    without_rows = sorted({c.partition for c in report.failed_checks
                           if c.name == "every_partition_has_rows" and c.partition})
    try:
        report.summary = summarize(settings, groups, since, without_rows=without_rows)
    except Exception as exc:  # noqa: BLE001 - a store went away after the runs: the runs' results above still stand
        log(f"summary unavailable: {type(exc).__name__}: {redact_secrets(str(exc)).splitlines()[0]}")


def summarize(settings: Settings, partitions: list[str], since: dt.datetime | None = None,
              without_rows: Sequence[str] = ()) -> dict:
    """The cycle's summary figures over ``partitions``; the gate's decisions counted are those made from ``since``
    on (this cycle's: a store the cycle could not judge, one gone from the source, keeps older decisions that are
    not this cycle's), or each store's newest gate run's without it. ``without_rows``: the partitions whose
    dataset is empty this cycle (gone from the source): their forecasts still in the warehouse are counted apart,
    with the newest origin they are from."""
    registry = ModelRegistry(settings.storage.registry)
    latest = registry.latest(partitions)
    failures = registry.failures(partitions)
    if len(failures) and len(latest):
        # a failure is current only if no model was registered for that series after it
        last_model = pd.to_datetime(latest.set_index("series_key")["trained_at"])
        trained_after = pd.to_datetime(failures["series_key"].map(last_model))
        failures = failures[trained_after.isna() | (pd.to_datetime(failures["failed_at"]) > trained_after)]
    production = ProductionRegistry(settings.storage.production_registry)
    champions = production.current(partitions)
    decisions = production.newest_decisions(partitions)  # the newest gate run of each partition
    if since is not None and len(decisions):
        decisions = decisions[pd.to_datetime(decisions["decided_at"]) >= pd.Timestamp(since)]
    decided = decisions["decision"].value_counts().to_dict() if len(decisions) else {}
    warehouse = Warehouse(settings.storage.warehouse, settings.columns.ids)
    # each series' newest forecast (a discontinued item's is old)
    preds = warehouse.newest_predictions(partitions, ("origin", "model_source", "envelope_replaced"))
    ids = list(settings.columns.ids)
    # champions whose series' newest forecast is wholly their baseline's: one that cannot forecast under the
    # current settings (a horizon grown past its reach, a regressor gone), or whose every period left the envelope
    by_model = (preds["model_source"] != "baseline").groupby(series_keys(preds, ids)).any() if len(preds) else None
    idle = set(by_model.index[~by_model.to_numpy()]) & set(champions["series_key"]) if by_model is not None and len(
        champions) else set()
    left_envelope = idle & set(series_keys(preds, ids)[preds["envelope_replaced"].fillna(0).astype(int).eq(1).to_numpy()]
                               ) if idle else set()
    # a rejected challenger leaves its series' champion in place: those are kept too, not served by the baseline
    # (unless that champion serves nothing now)
    rejected_kept = int(((decisions["decision"] == "rejected") & decisions["series_key"].isin(
        set(champions["series_key"]) - idle)).sum()) if len(decisions) and len(champions) else 0
    newest = newest_origins(preds, ids)
    empty = warehouse.newest_predictions(list(without_rows), columns=("partition_key", "origin")) if without_rows else None
    # a store gone from the source is counted apart ("stores without rows"), not as a recent origin, and its old
    # forecasts are not the newest that the others are behind: after a source rolled back to an earlier end, a
    # store gone from it called every other store behind
    gone = set(series_keys(empty, ids)) if empty is not None and len(empty) else set()
    current = newest[~series_keys(newest.index.to_frame(index=False), ids).isin(gone).to_numpy()] if gone else newest
    stale, stores_behind = stale_series(newest, settings.partition.column, settings.max_normal_gap * settings.step,
                                        current.max() if len(current) else None)
    behind, newest_origin = recent_origins(current, settings.max_normal_gap * settings.step)
    behind_examples = recent_origin_examples(current, settings.max_normal_gap * settings.step)
    shares = baseline_share_by_store(
        latest.groupby("partition_key")["series_key"].nunique() if len(latest) else pd.Series(dtype=int),
        champions.groupby("partition_key")["series_key"].nunique() if len(champions) else pd.Series(dtype=int))
    over = shares[shares["share"] > settings.operations.max_baseline_share]
    # over the window the check realized_beats_baseline judges, not every point since the first cycle
    window = settings.operations.accuracy_window
    judged_to = warehouse.newest_judged()
    realized = (warehouse.champion_vs_baseline((pd.Timestamp(judged_to) - window * settings.step).to_pydatetime())
                if judged_to is not None else pd.DataFrame(columns=["points", "abs_error", "baseline_abs_error"]))
    trained_now = latest if since is None or not len(latest) else latest[
        pd.to_datetime(latest["trained_at"]) >= pd.Timestamp(since)]
    # the cycle's own figures: a store whose run failed, or that no run took, keeps older models that are not its
    counts = trained_now["status"].value_counts().to_dict() if len(trained_now) else {}
    worse, worst, better, same_holdout, harder = rises_and_falls(registry, trained_now, horizon=settings.horizon)
    # a series whose newest training failed keeps an older version in ``latest``: it was not trained this time
    failed_with_older = (int(failures.loc[failures["series_key"].isin(latest["series_key"]), "series_key"].nunique())
                         if len(failures) and len(latest) else 0)
    judged = (trained_now.loc[trained_now["status"] == "trained", "accuracy"].dropna() if len(trained_now)
              else pd.Series(dtype=float))
    # a delisted item keeps its model (and champion) but its store's newest training did not train it; one whose
    # training failed there has a current failure, the others left the source
    left = latest.loc[left_the_data(latest), "series_key"] if len(latest) else pd.Series(dtype=str)
    # no row for ingest.dormant_after periods: kept apart from the datasets, not gone from the source
    dormant = dormant_keys(Lake(settings.storage.lake), partitions, ids)
    gone = sorted(set(left) - (set(failures["series_key"]) if len(failures) else set()) - set(dormant))
    return {
        "series_with_model": len(latest),
        "series_not_retrained": len(left),
        "series_gone": gone,  # not trained by their store's newest run, without a failure: left the source
        "series_dormant": dormant,
        "dormant_with_model": len(set(left) & set(dormant)),
        "stale_gone": len(stale & set(gone)),  # of the stale series, those gone from the source (no check sees them)
        "stale_dormant": len(stale & set(dormant)),
        "trained_this_cycle": len(trained_now),
        "failed_keeping_older": failed_with_older,
        "trained": int(counts.get("trained", 0)),
        "fallback": int(counts.get("fallback", 0)),
        "failed_series": int(failures["series_key"].nunique()) if len(failures) else 0,
        # the models' own holdouts: a fallback's accuracy is its baseline's, and a series too short has none
        "median_accuracy": float(judged.median()) if len(judged) else float("nan"),
        "accuracy_series": len(judged),
        "promoted": int(decided.get("promoted", 0)),
        "kept_champion": int(decided.get("kept_champion", 0)),
        "kept_same_fit": int(decisions["reason"].astype(str).str.contains(SAME_FIT, regex=False).sum())
        if len(decisions) else 0,
        "rejected": int(decided.get("rejected", 0)),
        "rejected_keeping_champion": rejected_kept,
        # their recipe, fitted as today's challenger was, does not beat the baseline: the baseline serves them
        "champions_retired": int(decisions["reason"].astype(str).str.contains(RETIRED, regex=False).sum())
        if len(decisions) else 0,
        "champions": len(champions),
        "champions_serving_nothing": len(idle),
        "champions_left_envelope": len(left_envelope),  # of those: their forecast left the envelope, not unable
        "prediction_rows": len(preds),
        "series_with_forecast": preds[ids].drop_duplicates().shape[0] if len(preds) else 0,
        "served_by_baseline": int(preds.loc[preds["model_source"] == "baseline", ids].drop_duplicates().shape[0])
        if len(preds) else 0,
        "worse_than_previous": worse,
        "better_than_previous": better,
        "worst_rises": worst,
        "worse_on_the_same_holdout": same_holdout,
        "worse_on_harder_holdouts": harder,
        "stale_series": len(stale),
        "recent_origin_series": behind,  # forecast from a period before the newest, within max_normal_gap
        "recent_origin_examples": behind_examples,
        "newest_origin": newest_origin,
        # partition -> (series still forecast in the warehouse, their newest origin) of the stores without rows
        "stores_without_rows": {} if empty is None or not len(empty) else {
            str(k): (int(g[ids].drop_duplicates().shape[0]), str(pd.Timestamp(g["origin"].max()).date()))
            for k, g in empty.groupby("partition_key")},
        "stores_behind": stores_behind,
        "model_versions_total": registry.count(),
        "rejected_by_reason": rejection_reasons(decisions),
        "rejected_examples": rejection_examples(decisions),
        "stores_mostly_on_baseline": sorted(over.index),
        "realized_points": int(realized["points"].sum()) if len(realized) else 0,
        "realized_window_periods": window,
        "realized_mase_vs_baseline": float(realized["abs_error"].sum() / realized["baseline_abs_error"].sum())
        if len(realized) and realized["baseline_abs_error"].sum() > 0 else float("nan"),
    }


def newest_origins(preds: pd.DataFrame, ids: list[str]) -> pd.Series:
    """Each series' newest forecast origin (index: its ids), from its published forecasts."""
    if not len(preds):
        return pd.Series(dtype="datetime64[ns]")
    return preds.groupby(ids)["origin"].max().map(pd.Timestamp)


def stale_series(newest: pd.Series, store: str, allowed: pd.Timedelta,
                 top: pd.Timestamp | None = None) -> tuple[set[str], dict[str, str]]:
    """(the keys of the series whose newest published forecast starts from an origin more than ``allowed`` before
    ``top``, the newest of the stores with rows this cycle (default: of every series summarised), the stores none
    of whose series is newer, with their newest origin): a
    product that stopped selling, still forecast from its last sale, or a store whose data stopped as a whole (its
    own series agree with each other, so only the other stores show it behind). Counted apart so that a summary
    of "forecasts for N series" does not pass them off as current (the check ``series_reach_data_end`` names
    them). ``newest``: ``newest_origins``."""
    if not len(newest):
        return set(), {}
    cutoff = (newest.max() if top is None else top) - allowed
    store_newest = newest.groupby(level=store).max()
    behind = store_newest[store_newest < cutoff].sort_values()
    stale = newest[newest < cutoff].index.to_frame(index=False)
    return set(series_keys(stale, list(newest.index.names))), {str(k): str(v.date()) for k, v in behind.items()}


def recent_origins(newest: pd.Series, allowed: pd.Timedelta) -> tuple[int, str | None]:
    """(how many series are forecast from a period before the newest origin, but within ``allowed`` of it: a
    period without a row, a series held back; the newest origin). No check warns of them (``allowed`` is normal),
    yet their forecasts are not this period's, so the summary counts them. ``newest``: ``newest_origins``."""
    if not len(newest):
        return 0, None
    return len(_recent(newest, allowed)), str(newest.max().date())


def _recent(newest: pd.Series, allowed: pd.Timedelta) -> pd.Series:
    """The origins of ``newest`` before the newest one but within ``allowed`` of it (non-empty ``newest``)."""
    top = newest.max()
    return newest[(newest < top) & (newest >= top - allowed)]


def recent_origin_examples(newest: pd.Series, allowed: pd.Timedelta, shown: int = 3) -> list[str]:
    """The first ``shown`` series ``recent_origins`` counts, oldest origin first, with their origin (``S1/B from
    2026-11-10``): a count alone after a late feed left the operator to search each store's metadata."""
    if not len(newest):
        return []
    within = _recent(newest, allowed).sort_values(kind="stable").iloc[:shown]
    keys = series_keys(within.index.to_frame(index=False), list(within.index.names))
    return [f"{key} from {pd.Timestamp(origin).date()}" for key, origin in zip(keys, within.to_numpy())]


def rejection_reasons(decisions: pd.DataFrame) -> dict[str, int]:
    """Rejected challengers counted by the rule that stopped them (the reason without its figures)."""
    if not len(decisions):
        return {}
    rejected = decisions.loc[decisions["decision"] == "rejected", "reason"]
    return {k: int(v) for k, v in rejected.map(rule_of).value_counts().items()}


def rejection_examples(decisions: pd.DataFrame, shown: int = 3) -> dict[str, list[str]]:
    """Per rule of ``rejection_reasons``, the first ``shown`` series it stopped (by series key): a count alone
    leaves the operator to search the decisions for which series they are."""
    if not len(decisions):
        return {}
    rejected = decisions[decisions["decision"] == "rejected"]
    rules = rejected["reason"].map(rule_of)
    return {rule: sorted(keys)[:shown] for rule, keys in rejected["series_key"].astype(str).groupby(rules)}


@dataclass
class BacktestReport:
    runs: list[tuple[str, str, bool, float]] = field(default_factory=list)
    failed_checks: list[FailedCheck] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    forecasts: pd.DataFrame = field(default_factory=pd.DataFrame)
    pooled: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed: int = 0
    without_results: list[str] = field(default_factory=list)  # stores of a run that succeeded with none of theirs
    batched_ok: set[str] = field(default_factory=set)  # stores whose backtest run succeeded

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(success for _, _, success, _ in self.runs)


def run_backtest(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
    origins: int,
    horizon: int | None = None,
    gap: int | None = None,
    models: list[str] | None = None,
    ingest: bool = True,
    log: Callable[[str], None] = print,
    every: int | None = None,
) -> BacktestReport:
    """``mm-assets backtest``: ingest the source (unless told not to), then ``backtest_job`` for every store
    partition in batches, recorded in the instance like any run; returns every forecast and the pooled metrics."""
    from mm_assets.assets.evaluation import backtest_file
    from mm_assets.forecasting.backtest import pooled_metrics

    report = BacktestReport()
    check_stores(settings)

    def execute(job_name: str, tags: dict[str, str], label: str, run_config: dict) -> bool:
        run = execute_job(defs, instance, job_name, tags, label, run_config, settings)
        report.runs.append((job_name, label, run.success, run.seconds))
        report.failed_checks.extend(run.failed_checks)
        for line in run.log_lines():
            log(line)
        if run.success and job_name == "backtest_job":
            report.run_ids.append(run.run_id)
            for event in run.result.asset_materializations_for_node("backtest"):
                failed = event.metadata.get("failed")
                report.failed += int(failed.value) if failed is not None else 0
        return run.success

    groups = instance.get_dynamic_partitions(group_partitions(settings).name)
    if ingest or not groups:
        reader = SourceReader.from_settings(settings)
        first, last, rows = reader.date_range()
        last = source_end(reader, settings, last, newest_sales(reader, settings)[1])
        start = pd.Timestamp(settings.ingest.start_date) if settings.ingest.start_date else first
        keys = period_keys_for(settings, max(first, start), last)
        if not keys:
            raise SourceError(f"no raw_sales partition covers the source's dates {first.date()}..{last.date()}: "
                             f"check ingest.start_date ({settings.ingest.start_date}) and frequency")
        newest_key = keys[-1]
        keys = keys + periods_taken_back(settings, keys, Lake(settings.storage.lake), log)
        log(f"ingest: {counted(len(keys), 'period')} {keys[0]} .. {keys[-1]} ({counted(rows, 'source row')}) in one run")
        if not execute("ingest_job", range_tags(keys), f"{keys[0]}..{keys[-1]}", {}):
            return report
        removed_after(Lake(settings.storage.lake), newest_key, log)
        groups = instance.get_dynamic_partitions(group_partitions(settings).name)
    config = {"origins": origins, "models": list(models or [])}
    if every is not None:
        config["every"] = every
    if horizon is not None:
        config["horizon"] = horizon
    if gap is not None:
        config["gap"] = gap
    run_config = {"ops": {"backtest": {"config": config}}}
    runs = run_batches(settings, groups, log)
    log(f"backtest: {counted(len(groups), 'store partition')} in {counted(len(runs), 'run')} ({runs_limits(settings)})")
    for batch in runs:
        label = f"{batch[0]}..{batch[-1]}" if len(batch) > 1 else batch[0]
        if execute("backtest_job", range_tags(batch), label, run_config):
            report.batched_ok.update(batch)
    lake = Lake(settings.storage.lake)
    parts = []
    for key in groups:
        path = backtest_file("forecasts", key)
        frame = lake.read_parquet(path) if lake.exists(path) else None
        mine = frame[frame["backtest_run_id"].isin(report.run_ids)] if frame is not None else None
        if mine is not None and len(mine):
            parts.append(mine)
        elif key in report.batched_ok:
            report.without_results.append(key)
    report.forecasts = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(report.forecasts):
        report.pooled = pooled_metrics(report.forecasts, list(settings.columns.ids))
    return report
