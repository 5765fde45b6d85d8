"""Running one entry script over a batch of store partitions from inside an asset.

Shared by training and scoring: builds the job spec (the same arguments the Azure ML job gets), streams
progress into the Dagster run log, and turns the runner's outcome into rows, failures and a partition key
per row.
"""


import time
from collections.abc import Callable

import dagster as dg
import pandas as pd

from mm_assets.assets.partitions import group_partitions, step_partition_keys
from mm_assets.dead_runs import stop_parent_leftovers
from mm_assets.forecasting.model_types import AUTO, ModelType
from mm_assets.ids import partition_keys_for, series_keys
from mm_assets.ingest.datasets import dataset_file
from mm_assets.ingest.partition_rows import context_partitions, partition_rows, runs_by_rows
from mm_assets.parallel.contract import (
    CONTEXT_COLUMN,
    STATUS_FAILED,
    WHOLE_BATCH_KEY,
    JobResult,
    JobSpec,
    ParallelJobError,
    group_column,
    stage_whole_batch,
)
from mm_assets.resources import LakeResource, RunnerResource
from mm_assets.settings import Settings


def run_fanout(
    context: dg.AssetExecutionContext,
    runner: RunnerResource,
    lake: LakeResource,
    settings: Settings,
    entry_script: str,
    extra_arguments: list[str],
    multi_series: bool = False,
    whole_batch: bool = False,
    window: tuple[int, int] | None = None,
    context_rows: int = 0,
) -> tuple[JobResult, str | None]:
    """Run ``entry_script`` over the datasets of the run's partitions (``whole_batch``: as one mini-batch, for a
    global model that learns across every series of the run, or one per group of ``schedule.rows_per_run`` rows;
    ``window``: only each series' newest rows, see ``stage_whole_batch``; ``context_rows``: a whole batch smaller
    than this learns from other stores' series too, ``context_partitions``).

    Returns the result and, if the error threshold stopped the job, the error message (the partial result is
    still returned so that what was produced is kept and what failed is recorded).
    """
    keys = step_partition_keys(context)
    arguments = [
        "--settings-json", settings.model_dump_json(),
        "--lake-uri", lake.uri,
        "--run-id", context.run.run_id,
        *extra_arguments,
    ]
    files = [dataset_file(k) for k in keys]
    spec = JobSpec(
        entry_script=entry_script,
        arguments=arguments,
        lake_uri=lake.uri,
        input_files=files,
        partition_keys=list(settings.columns.ids),
        multi_series=multi_series,
        preload=slow_imports(settings),
        group_column=group_column(settings) if multi_series else None,
    )
    if whole_batch:
        return _run_whole_batches(context, runner, lake.get(), settings, spec, window, context_rows)
    progress = ProgressLog(context.log.info, entry_script.rsplit(".", 1)[-1])
    stop_parent_leftovers(context.instance, context.run, context.log.warning)  # a retry does not work beside them
    try:
        result, error = runner.run(spec, on_progress=progress, context=context), None
    except ParallelJobError as exc:
        result, error = exc.result, str(exc)
    _warn_of_crashes(context, result, entry_script)
    return result, error


def whole_batch_groups(the_lake, keys: list[str], max_rows: int) -> list[list[str]]:
    """The run's partitions in groups of at most ``max_rows`` dataset rows (``schedule.rows_per_run``), each the
    batch of one global model. The cycle and the sensors already cut their runs so: one group. A backfill launched
    from the Dagster UI is cut by its number of partitions only, and one model over all its rows could exceed the
    memory the setting stands for."""
    return runs_by_rows(keys, partition_rows(the_lake, keys), len(keys), max_rows)


def _run_whole_batches(context: dg.AssetExecutionContext, runner: RunnerResource, the_lake, settings: Settings,
                       spec: JobSpec, window: tuple[int, int] | None, context_rows: int = 0
                       ) -> tuple[JobResult, str | None]:
    """Each group of the run's partitions (``whole_batch_groups``) staged as one file and run as one mini-batch,
    one after another; the results joined. A group the error threshold stops ends the run's work there (the
    groups after it are not started: the run fails and its retry does them). A group of fewer than
    ``context_rows`` rows is staged with other stores' datasets to learn from (``context_partitions``)."""
    keys = step_partition_keys(context)
    groups = whole_batch_groups(the_lake, keys, settings.schedule.rows_per_run)
    label = spec.entry_script.rsplit(".", 1)[-1]
    if len(groups) > 1:
        context.log.info(f"{label}: the run's {len(keys)} store partitions hold more than schedule.rows_per_run "
                         f"({settings.schedule.rows_per_run:,}) rows: one global model for each of {len(groups)} "
                         "groups of them, one after another")
    ids = list(settings.columns.ids)
    stop_parent_leftovers(context.instance, context.run, context.log.warning)  # a retry does not work beside them
    results, error = [], None
    budget = min(context_rows, settings.schedule.rows_per_run)
    others = ([k for k in context.instance.get_dynamic_partitions(group_partitions(settings).name) if k not in keys]
              if budget else [])
    for i, group in enumerate(groups):
        staged = f"staging/{context.run.run_id}/{label}{f'-{i}' if len(groups) > 1 else ''}.parquet"
        learn_from = context_partitions(the_lake, group, others, budget) if others else []
        if learn_from:
            context.log.info(f"{label}: the global model of {len(group)} store partition(s) ({_some(group)}) learns "
                             f"from the series of {len(learn_from)} other(s) too ({_some(learn_from)}), within "
                             f"model.global_context_rows ({budget:,} rows); it makes models for its own stores' "
                             "series only")
        series = stage_whole_batch(the_lake, [dataset_file(k) for k in group], ids, staged, window,
                                   [dataset_file(k) for k in learn_from])
        one = JobSpec(entry_script=spec.entry_script, arguments=spec.arguments, lake_uri=spec.lake_uri,
                      input_files=[staged], partition_keys=[WHOLE_BATCH_KEY], series_per_key=max(1, series),
                      partitions=group)
        try:
            result = runner.run(one, on_progress=ProgressLog(context.log.info, label, whole_batch_series=series),
                                context=context)
        except ParallelJobError as exc:
            result, error = exc.result, str(exc)
        results.append(per_series_failures(result, the_lake, one.input_files, ids))
        error = error or _past_threshold(results, settings.runner.mini_batch_error_threshold, i + 1, len(groups))
        if error:
            break
    _drop_staged(the_lake, f"staging/{context.run.run_id}", context.log.warning)
    result = joined(results)
    _warn_of_crashes(context, result, spec.entry_script)
    return result, error


def _past_threshold(results: list[JobResult], threshold: int, done: int, groups: int) -> str | None:
    """The error that stops the run when more series than ``runner.mini_batch_error_threshold`` failed in the
    groups run so far, else None. A global model's batch is one mini-batch that does not fail as a whole when some
    of its series fail (they come back as failed rows), so its series are counted one by one, as the local and
    Azure ML runners count the mini-batches of one series each."""
    if threshold < 0:
        return None
    failed = sum(len(r.failures) + (int((r.rows["status"] == STATUS_FAILED).sum()) if "status" in r.rows else 0)
                 for r in results)
    if failed <= threshold:
        return None
    left = (f"; the run stopped after {done} of {groups} groups of stores (the others were not run: fix the cause "
            "and re-execute)") if done < groups else ""
    return f"{failed} failed series exceed runner.mini_batch_error_threshold={threshold}{left}"


def joined(results: list[JobResult]) -> JobResult:
    """The results of jobs run one after another, as one."""
    if len(results) == 1:
        return results[0]
    frames = [r.rows for r in results if len(r.rows)]
    failures = [r.failures for r in results if len(r.failures)]
    return JobResult(
        rows=pd.concat(frames, ignore_index=True) if frames else results[0].rows,
        failures=pd.concat(failures, ignore_index=True) if failures else results[0].failures,
        series_total=sum(r.series_total for r in results), series_done=sum(r.series_done for r in results),
        wall_seconds=sum(r.wall_seconds for r in results), tasks=sum(r.tasks for r in results),
        aborted=any(r.aborted for r in results), worker_crashes=sum(r.worker_crashes for r in results))


def _warn_of_crashes(context: dg.AssetExecutionContext, result: JobResult, entry_script: str) -> None:
    if result.worker_crashes:  # a rerun that succeeds must not hide that a worker died (memory? a native crash?)
        context.log.warning(f"{entry_script.rsplit('.', 1)[-1]}: a worker process died {result.worker_crashes} "
                            "time(s) under a task; the task was rerun (runner.max_retries), the rest alone if it "
                            "died again. A worker killed for memory: fewer series per task (runner.series_per_task)")


def _drop_staged(the_lake, folder: str, warn: Callable[[str], None]) -> None:
    """Delete the run's staged copy of its batch once the job and the failures' bookkeeping have read it: a copy
    of every dataset of the run, every day, which nothing reads again (a retry stages its own)."""
    try:
        the_lake.delete(folder, recursive=True)
    except Exception as exc:  # noqa: BLE001 - the run's work is done; a leftover copy is only space
        warn(f"the staged copy {folder} in the lake could not be deleted ({type(exc).__name__}: {exc}); it can be "
             "deleted by hand")


class ProgressLog:
    """A job's progress in the run log: a line after every ``every`` seconds of work, and one at the end. Each
    line is an event Dagster stores, so a job of a few seconds logs only its end."""

    def __init__(self, log: Callable[[str], None], label: str, every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, whole_batch_series: int | None = None):
        self.log, self.label, self.every, self.clock = log, label, every, clock
        self.whole_batch_series = whole_batch_series  # one mini-batch of this many series (a global model)
        self.last = clock()

    def __call__(self, done: int, total: int, failed: int) -> None:
        now = self.clock()
        if now - self.last > self.every or done == total:
            self.last = now
            if self.whole_batch_series is not None:  # the runner counts the one batch, not its series
                n = self.whole_batch_series
                state = "failed" if failed else "done" if done == total else "running"
                self.log(f"{self.label}: {n} series in one batch (a global model), {state}")
                return
            self.log(f"{self.label}: {done}/{total} series done, {failed} failed")


def slow_imports(settings: Settings) -> tuple[str, ...]:
    """Modules to import once before the workers fork, when the run's models may need them: Prophet (with its
    plotting, ~0.5 s per worker and job otherwise) and LightGBM (which imports scikit-learn: ~2.5 s per worker)."""
    types = {settings.model.type, *(settings.model.auto_candidates if settings.model.type == AUTO else ())}
    slow = {ModelType.PROPHET: "prophet", ModelType.LIGHTGBM: "lightgbm"}
    return tuple(module for model_type, module in slow.items() if model_type in types)


def per_series_failures(result: JobResult, the_lake, staged: list[str], id_columns: list[str]) -> JobResult:
    """A whole-batch mini-batch that failed as a whole (its one key) is every series of the batch failing with
    that error: recorded per series like any failure (not the other stores' it only learnt from)."""
    failures = result.failures
    if failures.empty or WHOLE_BATCH_KEY not in failures.columns:
        return result
    ids = pd.concat([_own_ids(the_lake, f, id_columns) for f in staged], ignore_index=True)
    first = failures.iloc[0]
    expanded = ids.assign(
        series_key=series_keys(ids, id_columns), error_type=first["error_type"],
        error_message=f"the whole batch failed: {first['error_message']}", traceback=first.get("traceback", ""),
        attempts=first.get("attempts", 1),
    )
    rest = failures[failures[WHOLE_BATCH_KEY].isna()] if len(failures) > 1 else failures.iloc[0:0]
    return JobResult(rows=result.rows, failures=pd.concat([rest.drop(columns=[WHOLE_BATCH_KEY]), expanded],
                                                          ignore_index=True),
                     series_total=len(ids), series_done=result.series_done, wall_seconds=result.wall_seconds,
                     tasks=result.tasks, aborted=result.aborted)


def _own_ids(the_lake, staged: str, id_columns: list[str]) -> pd.DataFrame:
    """The ids of the series a staged whole batch trains models for (without ``CONTEXT_COLUMN``'s)."""
    frame = the_lake.read_parquet(staged)
    if CONTEXT_COLUMN in frame:
        frame = frame[~frame[CONTEXT_COLUMN].astype(bool)]
    return frame[id_columns].drop_duplicates()


def with_partition_keys(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    if frame.empty:
        return frame.assign(partition_key=pd.Series(dtype=str))
    return frame.assign(
        partition_key=partition_keys_for(frame, settings.partition.column, settings.partition.buckets).to_numpy()
    )


def ids_json(frame: pd.DataFrame, settings: Settings) -> pd.Series:
    """The id columns of each row as a JSON object (the registry's ``ids`` tags), in one pass: the text pandas
    writes for the row (a row-wise ``apply`` took half a second at 10,000 series)."""
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=object)
    lines = frame[list(settings.columns.ids)].to_json(orient="records", lines=True).splitlines()
    return pd.Series(lines, index=frame.index, dtype=object)


def record_failures(
    context: dg.AssetExecutionContext, result: JobResult, settings: Settings, registry, task: str
) -> pd.DataFrame:
    """Record the job's failed series in the registry (``series_failures``) and log the first few."""
    failures = with_partition_keys(result.failures, settings)
    if len(failures):
        failures = failures.assign(ids=ids_json(failures, settings))
        registry.record_failures(failures, context.run.run_id, task=task)
        for f in failures.head(20).itertuples():
            context.log.warning(f"{task}: series {f.series_key} failed: {f.error_type}: {f.error_message}")
    return failures



def failed_rows_to_failures(result: JobResult) -> JobResult:
    """Rows an entry script returned as ``failed`` (series that failed inside a whole-batch mini-batch) become
    the job's failures, like a series the runner gave up on."""
    rows = result.rows
    if rows.empty or "status" not in rows.columns or not (rows["status"] == STATUS_FAILED).any():
        return result
    bad = rows["status"] == STATUS_FAILED
    failed = rows.loc[bad].rename(columns={"reason": "error_message"})
    error_type = failed["error_type"] if "error_type" in failed.columns else "SeriesFailed"
    failed = failed.assign(error_type=error_type, traceback="", attempts=1)
    keep = [c for c in failed.columns if c in set(result.failures.columns) | set(failed.columns)
            and c not in ("status",)]
    failures = pd.concat([result.failures, failed[keep].dropna(axis=1, how="all")], ignore_index=True)
    ok = rows.loc[~bad].drop(columns=["error_type"], errors="ignore").reset_index(drop=True)
    return JobResult(rows=ok, failures=failures,
                     series_total=result.series_total, series_done=result.series_done,
                     wall_seconds=result.wall_seconds, tasks=result.tasks, aborted=result.aborted)


def merge_results(results: list[JobResult]) -> JobResult:
    """The rows and failures of several jobs over the same batch as one result."""
    if len(results) == 1:
        return results[0]
    return JobResult(
        rows=pd.concat([r.rows for r in results], ignore_index=True),
        failures=pd.concat([r.failures for r in results], ignore_index=True),
        series_total=max(r.series_total for r in results), series_done=min(r.series_done for r in results),
        wall_seconds=sum(r.wall_seconds for r in results), tasks=sum(r.tasks for r in results),
        aborted=any(r.aborted for r in results),
    )


def _some(keys: list[str], shown: int = 5) -> str:
    """The first ``shown`` store partitions of ``keys``, and how many more."""
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown:,} more" if len(keys) > shown else "")
