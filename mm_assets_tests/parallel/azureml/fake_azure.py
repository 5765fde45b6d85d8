"""Offline stand-ins for Azure: an MLClient whose jobs run on this machine, and an in-memory Blob service.

``FakeMLClient.jobs.create_or_update(job)`` records the pipeline job and, when ``execute`` is on, runs its
parallel node the way Azure ML would, from what the job itself says: the MLTable input (read with the same
transformations, mapped from its https URL back into the test lake), ``partition_keys``, the retry settings, the
error threshold, the environment variables and ``program_arguments`` of the task, with the job's entry script
(the shim) under the local runner. ``jobs.download`` then writes the append-row output as Azure ML does: one
line per returned row, columns joined by spaces, no header, in ``named-outputs/<output>/parallel_run_step.txt``.
Statuses come from a script (``statuses``), the last one repeating; ``begin_cancel`` switches to Canceled.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

from mm_assets.lake import Lake
from mm_assets.parallel.azureml.job import INPUT_NAME, parallel_node
from mm_assets.parallel.azureml.mltable import mltable_as_local_input
from mm_assets.parallel.azureml.shim import SHIM_MODULE
from mm_assets.parallel.azureml.storage import AzureLake
from mm_assets.parallel.contract import JobSpec, ParallelJobError
from mm_assets.parallel.local_runner import run_job

LOCATION = AzureLake(account="mmacct", container="lake", root="mm")


def _get(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name)


class FakeJobs:
    def __init__(self, lake: Lake, location: AzureLake = LOCATION, statuses=None, execute: bool = True,
                 write_output: bool = True, failing_gets=(), lines=()):
        self.lake = lake
        self.location = location
        self.statuses = statuses
        self.execute = execute
        self.failing_gets = set(failing_gets)  # 1-based numbers of get() calls that raise a network error
        self.write_output = write_output
        self.submitted = []
        self.canceled = []
        self.gets = 0
        self.downloads = []
        self.local_result = None
        self.local_status = None
        self._status_iter = None
        self._lines: list[str] = list(lines)  # the append-row output when the node is not executed

    def create_or_update(self, job, experiment_name=None):
        self.submitted.append((job, experiment_name))
        node = parallel_node(job)
        if self.execute:
            self._run(job, node)
        statuses = self.statuses or ["Queued", "Running", self.local_status or "Completed"]
        self._status_iter = itertools.chain(statuses, itertools.repeat(statuses[-1]))
        return SimpleNamespace(name=job.name, studio_url=f"https://ml.azure.com/runs/{job.name}", status="NotStarted")

    def _run(self, job, node) -> None:
        url = job.inputs[INPUT_NAME].path
        prefix = self.location.https_url("").rstrip("/") + "/"
        assert url.startswith(prefix), url
        folder = url[len(prefix):]
        keys = list(node.partition_keys)
        local = mltable_as_local_input(self.lake, folder, keys, f"{folder}-as-local/input.parquet")
        task = node.task
        retry = node.retry_settings
        spec = JobSpec(
            entry_script=SHIM_MODULE,
            arguments=_get(task, "program_arguments").split(),
            lake_uri=self.lake.uri,
            input_files=[local],
            partition_keys=keys,
            max_concurrency=2,
            mini_batch_timeout_s=float(_get(retry, "timeout")),
            max_retries=int(_get(retry, "max_retries")),
            mini_batch_error_threshold=int(node.mini_batch_error_threshold),
            series_per_task=2,
            environment=dict(node.environment_variables or {}),
        )
        try:
            self.local_result, self.local_status = run_job(spec), "Completed"
        except ParallelJobError as exc:
            self.local_result, self.local_status = exc.result, "Failed"
        rows = self.local_result.rows
        self._lines = [" ".join(str(v) for v in row) for row in rows.itertuples(index=False)]

    def get(self, name):
        self.gets += 1
        if self.gets in self.failing_gets:
            raise ConnectionError("connection reset by peer")
        status = "Canceled" if name in self.canceled else next(self._status_iter)
        return SimpleNamespace(name=name, status=status)

    def begin_cancel(self, name):
        self.canceled.append(name)
        return SimpleNamespace(result=lambda timeout=None: None)

    def download(self, name, download_path=".", output_name=None, all=False):
        self.downloads.append((name, output_name))
        if not self.write_output:
            return
        folder = Path(download_path) / "named-outputs" / output_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "parallel_run_step.txt").write_text("".join(line + "\n" for line in self._lines))


class FakeModels:
    def __init__(self, fail: bool = False):
        self.registered = []
        self.fail = fail

    def create_or_update(self, model):
        if self.fail:
            raise RuntimeError("model registry unavailable")
        self.registered.append(model)
        return SimpleNamespace(name=model.name, version=str(len(self.registered)))


class FakeMLClient:
    def __init__(self, lake: Lake, **kwargs):
        fail_models = kwargs.pop("fail_models", False)
        self.jobs = FakeJobs(lake, **kwargs)
        self.models = FakeModels(fail=fail_models)


# ---- Blob storage, in memory ---------------------------------------------------------------------------
class _Downloader:
    def __init__(self, data: bytes):
        self.data = data

    def readall(self) -> bytes:
        return self.data


class FakeBlobClient:
    def __init__(self, store: dict, container: str, name: str):
        self.store, self.key = store, (container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def upload_blob(self, data, overwrite=False):
        if isinstance(data, str):
            data = data.encode()
        elif hasattr(data, "read"):
            data = data.read()
            data = data.encode() if isinstance(data, str) else data
        if self.key in self.store and not overwrite:
            raise RuntimeError(f"blob exists: {self.key}")
        self.store[self.key] = bytes(data)

    def download_blob(self):
        if self.key not in self.store:
            raise KeyError(self.key)
        return _Downloader(self.store[self.key])

    def exists(self) -> bool:
        return self.key in self.store


class FakeContainerClient:
    def __init__(self, store: dict, container: str):
        self.store, self.container = store, container

    def walk_blobs(self, name_starts_with: str = "", delimiter: str = "/"):
        seen = []
        for container, name in sorted(self.store):
            if container != self.container or not name.startswith(name_starts_with):
                continue
            rest = name[len(name_starts_with):]
            head = name_starts_with + rest.split(delimiter)[0] + (delimiter if delimiter in rest else "")
            if head not in seen:
                seen.append(head)
        return [SimpleNamespace(name=n) for n in seen]

    def list_blobs(self, name_starts_with: str = ""):
        return [SimpleNamespace(name=n) for c, n in sorted(self.store) if c == self.container
                and n.startswith(name_starts_with)]

    def delete_blob(self, name: str) -> None:
        del self.store[(self.container, name)]


class FakeBlobServiceClient:
    def __init__(self, url: str = "https://mmacct.blob.core.windows.net"):
        self.url = url
        self.store: dict = {}

    def get_blob_client(self, container: str, blob: str) -> FakeBlobClient:
        return FakeBlobClient(self.store, container, blob)

    def get_container_client(self, container: str) -> FakeContainerClient:
        return FakeContainerClient(self.store, container)
