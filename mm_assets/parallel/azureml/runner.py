"""The ``azureml`` runner: one batch of store partitions → one Azure ML parallel job → the same ``JobResult``.

``AzureMLRunner.run(spec)`` (the ``JobSpec`` the local runner takes):

1. stages the batch in the lake as an MLTable folder (``mltable``): chunks of series for the entry scripts that
   take many (``JobSpec.multi_series``: at least ``series_per_minibatch`` series each, at most about
   ``azureml.max_mini_batches`` chunks), else one folder per series; and the code folder (``job.stage_code``);
2. builds the pipeline job (``job.build_pipeline_job``) and submits it with ``MLClient`` (credentials:
   ``DefaultAzureCredential``);
3. polls the job until it ends, waiting ``azureml.poll_interval_s`` and growing ×1.5 up to
   ``azureml.max_poll_interval_s`` (back to the start on every status change); logs each status change and the
   workers' progress (dagster-pipes messages, ``progress``) into the run log, calls ``on_progress``;
4. cancels the Azure ML job when the orchestrator asks (``RunHooks.should_cancel``: the Dagster run is being
   terminated) or when anything interrupts the wait (``KeyboardInterrupt``, Dagster's interrupt error), then
   re-raises;
5. downloads the append-row output and decodes it (``codec``); a series that failed inside a chunk is a failure
   row with its own error; every other staged series with no result is a failure row (the error of its last
   failed attempt when the job reported one, else ``MissingFromOutput``);
6. mirrors the model bundles of a training batch (``--model-dir``) into the Azure ML model registry: one model
   version per batch, pointing at the bundles in the lake (the per-series index stays the mm-assets registry);
7. returns ``JobResult``; raises ``ParallelJobError`` (with the partial result) when the job failed with rows or
   more series failed than ``mini_batch_error_threshold``, ``AzureMLJobError`` when it ended without output.

This module does not import Dagster; the Dagster resource (``mm_assets.resources.RunnerResource``) wraps it.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from mm_assets.lake import Lake
from mm_assets.parallel.azureml import codec
from mm_assets.parallel.azureml.job import OUTPUT_NAME, build_pipeline_job, stage_code, task_name
from mm_assets.parallel.azureml.mltable import StagedInput, stage_mltable
from mm_assets.parallel.azureml.progress import (
    MESSAGES_ENV,
    BlobMessageSource,
    FolderMessageSource,
    ProgressTracker,
    encode_params,
)
from mm_assets.parallel.azureml.storage import AzureLake, AzureMLConfigError, azure_lake
from mm_assets.parallel.contract import JobResult, JobSpec, ParallelJobError
from mm_assets.settings import AzureMLSettings

logger = logging.getLogger("mm_assets.azureml")

COMPLETED = "Completed"
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}
FAILURE_COLUMNS = ["series_key", "error_type", "error_message", "traceback", "attempts"]
MAX_POLL_ERRORS = 5  # consecutive failed status polls before the runner gives up (and cancels)


class AzureMLJobError(RuntimeError):
    """The Azure ML job ended without a usable result (not a per-series failure)."""

    def __init__(self, message: str, job_name: str | None = None, studio_url: str | None = None):
        super().__init__(message)
        self.job_name = job_name
        self.studio_url = studio_url


class AzureMLJobCanceled(AzureMLJobError):
    """The orchestrator asked to stop: the Azure ML job was canceled."""


@dataclass
class RunHooks:
    """What the orchestrator lends the runner: a logger and a question "should this run stop?"."""

    log: Any = field(default_factory=lambda: logger)
    should_cancel: Callable[[], bool] = lambda: False


def argument(arguments: Sequence[str], flag: str) -> str | None:
    args = list(arguments)
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def default_ml_client(settings: AzureMLSettings):
    problem = settings.workspace_problem()
    if problem:
        raise AzureMLConfigError(problem)
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(DefaultAzureCredential(), settings.subscription_id, settings.resource_group, settings.workspace)


def default_blob_client(account_url: str):
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(account_url, credential=DefaultAzureCredential())


class AzureMLRunner:
    def __init__(
        self,
        settings: AzureMLSettings,
        *,
        ml_client: Any = None,
        blob_client_factory: Callable[[str], Any] = default_blob_client,
        location: AzureLake | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self._ml_client = ml_client
        self.blob_client_factory = blob_client_factory
        self.location = location
        self.sleep = sleep

    @property
    def ml_client(self):
        if self._ml_client is None:
            self._ml_client = default_ml_client(self.settings)
        return self._ml_client

    # ---- the whole run ---------------------------------------------------------------------------------
    def run(
        self,
        spec: JobSpec,
        on_progress: Callable[[int, int, int], None] | None = None,
        hooks: RunHooks | None = None,
    ) -> JobResult:
        hooks = hooks or RunHooks()
        started = time.perf_counter()
        location = self.location or azure_lake(spec.lake_uri)  # a local lake stops here, naming storage.lake
        client = self.ml_client  # missing workspace settings stop here, before anything is staged
        lake = Lake(spec.lake_uri)
        run_id = argument(spec.arguments, "--run-id") or "adhoc"
        task = task_name(spec.entry_script)
        batch = f"{run_id}-{task}-{uuid.uuid4().hex[:6]}"
        folder = f"{self.settings.staging_folder}/{batch}"
        chunked = spec.multi_series
        staged = stage_mltable(lake, spec.input_files, spec.partition_keys, f"{folder}/input",
                               series_per_chunk=max(1, spec.series_per_minibatch) if chunked else 1,
                               max_mini_batches=self.settings.max_mini_batches if chunked else 0,
                               group_column=spec.group_column if chunked else None)
        hooks.log.info(f"azureml: staged {staged.total} series ({staged.rows} rows) as an MLTable of "
                       f"{staged.mini_batches} mini-batches at {location.https_url(staged.folder)}")
        messages = self._message_source(lake, location, folder) if self.settings.progress_messages else None
        env = {**self.settings.environment_variables, **spec.environment}
        parsed = urlparse(spec.lake_uri)
        if parsed.scheme in ("abfs", "abfss", "az") and "@" not in parsed.netloc:  # short form: adlfs needs the
            env.setdefault("AZURE_STORAGE_ACCOUNT_NAME", location.account)   # account name (not a secret)
        if messages is not None:
            env[MESSAGES_ENV] = encode_params(messages.params())
        partitions = sorted(spec.partitions or {Path(f).stem for f in spec.input_files})
        with tempfile.TemporaryDirectory(prefix="mm-assets-code-") as code_dir:
            stage_code(code_dir)
            job = build_pipeline_job(
                entry_script=spec.entry_script,
                arguments=spec.arguments,
                partition_keys=list(staged.partition_keys),
                id_columns=list(spec.partition_keys) if chunked else (),
                input_path=location.https_url(staged.folder),
                code_dir=code_dir,
                azureml=self.settings,
                max_concurrency=spec.max_concurrency,
                mini_batch_timeout_s=spec.mini_batch_timeout_s * max(1, spec.series_per_key, staged.largest_mini_batch),
                max_retries=spec.max_retries,
                mini_batch_error_threshold=spec.mini_batch_error_threshold,
                environment_variables=env,
                job_name=f"mm_assets_{batch.replace('-', '_')}",
                display_name=f"mm-assets {task}: {len(partitions)} partitions, {staged.total} series",
                tags={"mm_assets.run_id": run_id, "mm_assets.task": task, "mm_assets.series": str(staged.total),
                      "mm_assets.partitions": ",".join(partitions)[:250]},
            )
            submitted = client.jobs.create_or_update(job, experiment_name=self.settings.experiment_name)
        name = submitted.name
        url = getattr(submitted, "studio_url", None)
        hooks.log.info(f"azureml: submitted job {name} ({task}, {staged.total} series) {url or ''}".rstrip())
        tracker = ProgressTracker(log=hooks.log)
        status = self._wait(name, staged, messages, tracker, on_progress, hooks, url)
        result = self._collect(name, status, staged, spec, messages, tracker, started, url, hooks)
        if on_progress is not None:
            on_progress(result.series_done, result.series_total, len(result.failures))
        if messages is not None:
            messages.cleanup()
        if status == COMPLETED:
            if self.settings.register_models and argument(spec.arguments, "--model-dir") and len(result.rows):
                self._register_models(spec, location, name, run_id, partitions, result, hooks)
            if self.settings.cleanup_staging:
                lake.delete(folder, recursive=True)
        threshold = spec.mini_batch_error_threshold
        failed = len(result.failures)
        if status != COMPLETED:
            raise ParallelJobError(
                f"Azure ML job {name} ended {status}: {result.series_total - failed} of {result.series_total} "
                f"series have a result, {failed} failed (mini_batch_error_threshold={threshold}); {url or ''}",
                result,
            )
        if threshold >= 0 and failed > threshold:
            result.aborted = True
            raise ParallelJobError(
                f"{failed} failed mini-batches exceed mini_batch_error_threshold={threshold} (Azure ML job {name})",
                result,
            )
        return result

    # ---- pieces --------------------------------------------------------------------------------------
    def _message_source(self, lake: Lake, location: AzureLake, folder: str):
        if lake.is_local:  # a local lake (tests, local reproduction): the filesystem channel
            return FolderMessageSource(lake.path(folder, "pipes"), interval=min(2.0, self.settings.poll_interval_s))
        client = self.blob_client_factory(location.blob_account_url)
        return BlobMessageSource(client, location.blob_account_url, location.container,
                                 location.blob_name(f"{folder}/pipes"), interval=10.0)

    def _drain(self, messages, tracker: ProgressTracker) -> bool:
        if messages is None:
            return False
        try:
            return tracker.feed(messages.read_new())
        except Exception as exc:  # noqa: BLE001 - progress is best effort; the result never depends on it
            logger.debug("reading progress messages failed: %s", exc)
            return False

    def _wait(self, name, staged: StagedInput, messages, tracker, on_progress, hooks: RunHooks, url) -> str:
        interval = self.settings.poll_interval_s
        last = None
        errors = 0
        try:
            while True:
                try:
                    status = self.ml_client.jobs.get(name).status
                    errors = 0
                except Exception as exc:  # a network blip must not cancel a long job: retry, then give up
                    errors += 1
                    if errors > MAX_POLL_ERRORS:
                        raise
                    hooks.log.warning(f"azureml: polling job {name} failed ({type(exc).__name__}: {exc}); "
                                      f"retrying ({errors}/{MAX_POLL_ERRORS})")
                    self.sleep(interval)
                    interval = min(interval * 1.5, self.settings.max_poll_interval_s)
                    continue
                if status != last:
                    hooks.log.info(f"azureml: job {name} is {status}")
                    last = status
                    interval = self.settings.poll_interval_s
                if self._drain(messages, tracker) and on_progress is not None:
                    on_progress(len(tracker.done_keys), staged.total, len(tracker.failed_keys))
                if status in TERMINAL:
                    return status
                if hooks.should_cancel():
                    raise AzureMLJobCanceled(f"the run was terminated: Azure ML job {name} canceled", name, url)
                self.sleep(interval)
                interval = min(interval * 1.5, self.settings.max_poll_interval_s)
        except BaseException:
            self._cancel(name, hooks)
            raise

    def _cancel(self, name: str, hooks: RunHooks) -> None:
        hooks.log.warning(f"azureml: canceling job {name}")
        try:
            self.ml_client.jobs.begin_cancel(name)
            for _ in range(30):
                if self.ml_client.jobs.get(name).status in TERMINAL:
                    break
                self.sleep(self.settings.poll_interval_s)
        except BaseException as exc:  # noqa: BLE001 - the original interruption is what the caller must see
            hooks.log.error(f"azureml: could not cancel job {name}: {type(exc).__name__}: {exc}")

    def _collect(self, name, status, staged: StagedInput, spec: JobSpec, messages, tracker, started, url,
                 hooks) -> JobResult:
        self._drain(messages, tracker)  # the workers' last messages (written at shutdown)
        keys = list(spec.partition_keys)
        with tempfile.TemporaryDirectory(prefix="mm-assets-output-") as tmp:
            try:
                self.ml_client.jobs.download(name, download_path=tmp, output_name=OUTPUT_NAME)
            except Exception as exc:  # noqa: BLE001 - a failed job may have no output at all
                hooks.log.warning(f"azureml: no append-row output for job {name}: {type(exc).__name__}: {exc}")
            output, files = codec.read_append_row_output(Path(tmp) / "named-outputs" / OUTPUT_NAME)
        rows, reported = output.rows, output.reported
        if output.foreign:
            hooks.log.warning(f"azureml: {output.foreign} lines of the append-row output were not mm-assets rows")
        if not files and status != COMPLETED:
            raise AzureMLJobError(f"Azure ML job {name} ended {status} without an append-row output; see its "
                                  f"logs (user/error, sys/) in Azure ML studio {url or ''}", name, url)
        expected = staged.series
        missing = expected[~expected["series_key"].isin(reported)]
        failures = []
        for _, row in missing.iterrows():
            key = row["series_key"]
            error = output.failed.get(key) or tracker.last_error.get(key)
            if error is not None:
                kind, message, trace = error["error_type"], error["error_message"], error.get("traceback", "")
            else:
                kind = "MissingFromOutput"
                message = (f"no result row in the append-row output of Azure ML job {name} ({status}): the "
                           "mini-batch failed after its retries or never ran; see logs/user/error in Azure ML studio")
                trace = ""
            failures.append({**{k: row[k] for k in keys}, "series_key": key, "error_type": kind,
                             "error_message": message, "traceback": trace,
                             "attempts": output.failed.get(key, {}).get("attempts")
                             or tracker.attempts_failed.get(key, spec.max_retries + 1)})
        failures_frame = pd.DataFrame(failures, columns=[*keys, *FAILURE_COLUMNS]) if failures else pd.DataFrame()
        done = len(expected) if status == COMPLETED else len(reported) + int(
            missing["series_key"].isin([*tracker.last_error, *output.failed]).sum())
        return JobResult(
            rows=rows,
            failures=failures_frame,
            series_total=staged.total,
            series_done=done,
            wall_seconds=time.perf_counter() - started,
            tasks=staged.mini_batches,
            aborted=status != COMPLETED,
        )

    def _register_models(self, spec, location: AzureLake, name, run_id, partitions, result, hooks) -> None:
        model_dir = argument(spec.arguments, "--model-dir")
        if not model_dir:
            return
        try:
            from azure.ai.ml.entities import Model

            model = Model(
                name=self.settings.model_name,
                path=location.https_url(model_dir),
                type="custom_model",
                description=f"mm-assets model bundles of run {run_id} (Azure ML job {name}); the per-series index "
                "is the mm-assets model registry",
                tags={"mm_assets.run_id": run_id, "mm_assets.job": name, "mm_assets.series": str(len(result.rows)),
                      "mm_assets.partitions": ",".join(partitions)[:250]},
            )
            registered = self.ml_client.models.create_or_update(model)
            hooks.log.info(f"azureml: registered model {registered.name}:{registered.version} "
                           f"({location.https_url(model_dir)})")
        except Exception as exc:  # noqa: BLE001 - the mm-assets registry is the source of truth; this mirrors it
            hooks.log.warning(f"azureml: model bundles not mirrored to the Azure ML model registry: "
                              f"{type(exc).__name__}: {exc}")
