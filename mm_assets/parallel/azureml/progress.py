"""Progress and failures from the job's workers back to the Dagster run, as dagster-pipes messages.

Job side (``ProgressReporter``, needs only the tiny ``dagster-pipes`` package): every worker process writes
Pipes protocol messages (``report_custom_message`` with our payloads, ``log`` for failed attempts) in chunks
through a dagster-pipes blob-store channel: ``PipesAzureBlobStorageMessageWriter``'s channel in Azure (the lake's
storage account, under ``<staging>/<batch>/pipes/<worker>/<n>.json``), or the filesystem channel when the lake
is a local folder (tests, local reproduction).

Orchestrator side (``BlobMessageSource`` / ``FolderMessageSource`` + ``ProgressTracker``): Dagster's own Pipes
session reads a single writer's chunk sequence (``<prefix>/<n>.json``) and ends at the first ``closed`` message,
but a parallel job has one writer per worker process on every node. So each worker writes its own chunk
sequence under the batch prefix, and the runner reads every worker's sequence with dagster-azure's
``PipesAzureBlobStorageMessageReader.download_messages_chunk`` (same wire format, same chunk naming), merging
them into one view: series done, attempts failed (with their error), log lines forwarded to the run log.

Payloads (``report_custom_message`` ``{"payload": {...}}``):
  ``{"mm_assets": "progress", "worker": w, "done": n, "failed_attempts": m, "keys": [series keys done since the
  previous progress message]}`` at most every ``interval`` seconds per worker, and at shutdown;
  ``{"mm_assets": "attempt_failed", "worker": w, "series_key": k, "ids": {...}, "error_type": t,
  "error_message": m, "traceback": tb}`` for every failed attempt (Azure ML retries it; the last one counts).

Bootstrap: ``DAGSTER_PIPES_MESSAGES`` (dagster-pipes' own encoding) holds the params of the channel.
This module does not import Dagster (the orchestrator side imports dagster-azure lazily).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any

PAYLOAD_TAG = "mm_assets"
MESSAGES_ENV = "DAGSTER_PIPES_MESSAGES"  # == dagster_pipes.DAGSTER_PIPES_MESSAGES_ENV_VAR
TRANSPORT_BLOB = "azure_blob"
TRANSPORT_FOLDER = "folder"
_VERSION_FIELD = "__dagster_pipes_version"


def encode_params(params: Mapping[str, Any]) -> str:
    from dagster_pipes import encode_param

    return encode_param(dict(params))


def decode_params(text: str) -> dict[str, Any]:
    from dagster_pipes import decode_param

    return dict(decode_param(text))


def _message(method: str, params: Mapping[str, Any]) -> dict:
    from dagster_pipes import PIPES_PROTOCOL_VERSION, PIPES_PROTOCOL_VERSION_FIELD

    return {PIPES_PROTOCOL_VERSION_FIELD: PIPES_PROTOCOL_VERSION, "method": method, "params": dict(params)}


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


# ---- job side --------------------------------------------------------------------------------------------
def _blob_client(account_url: str):
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(account_url, credential=DefaultAzureCredential())


# Tests replace this to hand the job side an in-memory Blob client.
blob_client_factory: Callable[[str], Any] = _blob_client


def open_channel(params: Mapping[str, Any], worker: str):
    """A dagster-pipes writer channel for this worker (its own chunk sequence under the batch prefix)."""
    interval = float(params.get("interval", 10))
    if params.get("transport") == TRANSPORT_FOLDER:
        from dagster_pipes import PipesBufferedFilesystemMessageWriterChannel

        path = os.path.join(params["path"], worker)
        os.makedirs(path, exist_ok=True)
        return PipesBufferedFilesystemMessageWriterChannel(path, interval=interval)
    from dagster_pipes import PipesAzureBlobStorageMessageWriter

    writer = PipesAzureBlobStorageMessageWriter(blob_client_factory(params["account_url"]), interval=interval)
    return writer.make_channel({**params, "key_prefix": f"{params['key_prefix']}/{worker}"})


class ProgressReporter:
    """One per worker process: counts series, reports failed attempts, uploads one chunk of Pipes messages at
    most every ``interval_s`` seconds (and at ``close``) through the channel's ``upload_messages_chunk``. The
    uploads are synchronous (no background thread in the worker) and numbered 1, 2, … like dagster-pipes'."""

    def __init__(self, channel, worker: str, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.channel = channel
        self.worker = worker
        self.interval_s = interval_s
        self.clock = clock
        self.done = 0
        self.failed_attempts = 0
        self._keys: list[str] = []
        self._buffer: list[dict] = []
        self._index = 1
        self._last = clock()
        self._closed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProgressReporter | None:
        environ = os.environ if environ is None else environ
        raw = environ.get(MESSAGES_ENV)
        if not raw:
            return None
        try:
            params = decode_params(raw)
            worker = worker_id()
            return cls(open_channel(params, worker), worker, float(params.get("interval", 10)))
        except Exception as exc:  # noqa: BLE001 - progress is best effort; the results never depend on it
            print(f"mm-assets: progress messages disabled ({type(exc).__name__}: {exc})")
            return None

    def _write(self, method: str, params: Mapping[str, Any]) -> None:
        self._buffer.append(_message(method, params))

    def flush(self) -> None:
        """Send the progress so far and every buffered message as the next chunk."""
        self._write(
            "report_custom_message",
            {"payload": {PAYLOAD_TAG: "progress", "worker": self.worker, "done": self.done,
                         "failed_attempts": self.failed_attempts, "keys": self._keys}},
        )
        payload = "\n".join(json.dumps(m) for m in self._buffer)
        self._keys, self._buffer, self._last = [], [], self.clock()
        try:
            self.channel.upload_messages_chunk(io.StringIO(payload), self._index)
            self._index += 1
        except Exception as exc:  # noqa: BLE001 - progress is best effort; the results never depend on it
            print(f"mm-assets: progress chunk {self._index} not sent ({type(exc).__name__}: {exc})")

    def _maybe_flush(self) -> None:
        if self.clock() - self._last >= self.interval_s:
            self.flush()

    def series_done(self, key: str) -> None:
        self.done += 1
        self._keys.append(key)
        self._maybe_flush()

    def attempt_failed(self, key: str, ids: Mapping[str, str], exc: BaseException) -> None:
        self.failed_attempts += 1
        error_type, message = type(exc).__name__, str(exc)[:2000]
        self._write(
            "report_custom_message",
            {"payload": {PAYLOAD_TAG: "attempt_failed", "worker": self.worker, "series_key": key, "ids": dict(ids),
                         "error_type": error_type, "error_message": message,
                         "traceback": "".join(traceback.format_exception(exc))[-4000:]}},
        )
        self._write("log", {"message": f"series {key}: attempt failed: {error_type}: {message}", "level": "WARNING"})
        self._maybe_flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.flush()


# ---- orchestrator side ------------------------------------------------------------------------------------
def _parse_chunk(text: str) -> list[dict] | None:
    """The Pipes messages of one chunk, or None if it is not complete yet (a partially written file)."""
    messages = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            return None
        if isinstance(message, dict) and _VERSION_FIELD in message:
            messages.append(message)
    return messages


class FolderMessageSource:
    """Reads every worker's chunk sequence under a local folder."""

    def __init__(self, path: str, interval: float = 2.0):
        self.path = path
        self.interval = interval
        self._next: dict[str, int] = {}

    def params(self) -> dict[str, Any]:
        os.makedirs(self.path, exist_ok=True)
        return {"transport": TRANSPORT_FOLDER, "path": self.path, "interval": self.interval}

    def read_new(self) -> list[dict]:
        out: list[dict] = []
        if not os.path.isdir(self.path):
            return out
        for worker in sorted(os.listdir(self.path)):
            index = self._next.get(worker, 1)
            while True:
                file = os.path.join(self.path, worker, f"{index}.json")
                if not os.path.isfile(file):
                    break
                with open(file, encoding="utf-8") as handle:
                    messages = _parse_chunk(handle.read())
                if messages is None:
                    break
                out.extend(messages)
                index += 1
            self._next[worker] = index
        return out

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)


class BlobMessageSource:
    """Reads every worker's chunk sequence under ``prefix`` in a Blob container (dagster-azure's reader)."""

    def __init__(self, client, account_url: str, container: str, prefix: str, interval: float = 10.0):
        from dagster_azure.pipes import PipesAzureBlobStorageMessageReader

        self.client = client
        self.account_url = account_url
        self.container = container
        self.prefix = prefix.strip("/")
        self.interval = interval
        self.reader = PipesAzureBlobStorageMessageReader(container=container, client=client, interval=interval)
        self._next: dict[str, int] = {}

    def params(self) -> dict[str, Any]:
        return {"transport": TRANSPORT_BLOB, "bucket": self.container, "key_prefix": self.prefix,
                "account_url": self.account_url, "interval": self.interval}

    def _workers(self) -> list[str]:
        container = self.client.get_container_client(self.container)
        names = [item.name for item in container.walk_blobs(name_starts_with=self.prefix + "/", delimiter="/")]
        return sorted(n.rstrip("/") for n in names if n.endswith("/"))

    def read_new(self) -> list[dict]:
        out: list[dict] = []
        for worker_prefix in self._workers():
            index = self._next.get(worker_prefix, 1)
            while True:
                chunk = self.reader.download_messages_chunk(index, {"key_prefix": worker_prefix})
                messages = None if chunk is None else _parse_chunk(chunk)
                if messages is None:
                    break
                out.extend(messages)
                index += 1
            self._next[worker_prefix] = index
        return out

    def cleanup(self) -> None:
        container = self.client.get_container_client(self.container)
        for blob in list(container.list_blobs(name_starts_with=self.prefix + "/")):
            with contextlib.suppress(Exception):  # leftover message chunks are harmless
                container.delete_blob(blob.name)


class ProgressTracker:
    """The merged view of all workers' messages."""

    def __init__(self, log=None, max_logs: int = 50):
        self.log = log
        self.max_logs = max_logs
        self.done_keys: set[str] = set()
        self.attempts_failed: dict[str, int] = {}
        self.last_error: dict[str, dict] = {}
        self.workers: set[str] = set()
        self._logs = 0

    def feed(self, messages: list[dict]) -> bool:
        changed = False
        for message in messages:
            method, params = message.get("method"), message.get("params") or {}
            if method == "report_custom_message":
                payload = params.get("payload") or {}
                kind = payload.get(PAYLOAD_TAG)
                if kind == "progress":
                    self.workers.add(payload.get("worker", ""))
                    self.done_keys.update(payload.get("keys") or [])
                    changed = True
                elif kind == "attempt_failed":
                    key = payload["series_key"]
                    self.attempts_failed[key] = self.attempts_failed.get(key, 0) + 1
                    self.last_error[key] = payload
                    changed = True
            elif method == "log" and self.log is not None:
                self._logs += 1
                if self._logs <= self.max_logs:
                    level = str(params.get("level", "INFO")).lower()
                    getattr(self.log, level if level in ("debug", "info", "warning", "error") else "info")(
                        f"[azureml job] {params.get('message', '')}"
                    )
                elif self._logs == self.max_logs + 1:
                    self.log.info("[azureml job] further job messages are not forwarded (see the run metadata)")
        return changed

    @property
    def failed_keys(self) -> set[str]:
        """Series with a failed attempt and no success reported (yet)."""
        return set(self.last_error) - self.done_keys
