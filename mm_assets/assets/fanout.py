"""Running one entry script over a batch of store partitions from inside an asset.

Shared by training and scoring: builds the job spec (the same arguments the Azure ML job gets), streams
progress into the Dagster run log, and turns the runner's outcome into rows, failures and a partition key
per row.
"""


import time

import dagster as dg
import pandas as pd

from mm_assets.assets.datasets import dataset_file
from mm_assets.ids import partition_keys_for
from mm_assets.parallel.local_runner import JobResult, JobSpec, ParallelJobError
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
) -> tuple[JobResult, str | None]:
    """Run ``entry_script`` over the datasets of the run's partitions.

    Returns the result and, if the error threshold stopped the job, the error message (the partial result is
    still returned so that what was produced is kept and what failed is recorded).
    """
    keys = list(context.partition_keys)
    arguments = [
        "--settings-json", settings.model_dump_json(),
        "--lake-uri", lake.uri,
        "--run-id", context.run.run_id,
        *extra_arguments,
    ]
    spec = JobSpec(
        entry_script=entry_script,
        arguments=arguments,
        lake_uri=lake.uri,
        input_files=[dataset_file(k) for k in keys],
        partition_keys=list(settings.columns.ids),
        multi_series=multi_series,
    )
    last_log = [0.0]

    def progress(done: int, total: int, failed: int) -> None:
        now = time.monotonic()
        if now - last_log[0] > 5 or done == total:
            last_log[0] = now
            context.log.info(f"{entry_script.rsplit('.', 1)[-1]}: {done}/{total} series done, {failed} failed")

    try:
        return runner.run(spec, on_progress=progress, context=context), None
    except ParallelJobError as exc:
        return exc.result, str(exc)


def with_partition_keys(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    if frame.empty:
        return frame.assign(partition_key=pd.Series(dtype=str))
    return frame.assign(
        partition_key=partition_keys_for(frame, settings.partition.column, settings.partition.buckets).to_numpy()
    )


def ids_json(frame: pd.DataFrame, settings: Settings) -> pd.Series:
    """The id columns of each row as a JSON object (the registry's ``ids`` tags)."""
    return frame[list(settings.columns.ids)].apply(lambda r: r.to_json(), axis=1)


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

