"""Fixtures of the Azure tests: a real Azurite blob service on loopback, a fresh container per test, the lake URI.

Azurite is Microsoft's storage emulator (npm `azurite`). `make test` installs it into the project-local `.tools/`
(`npm install --prefix .tools azurite@3.35.0`); nothing is downloaded at test time. Without it the `azurite`
tests fail with that instruction: they are never skipped. The emulator keeps everything in memory and listens on a
free 127.0.0.1 port for this session only.

Credentials: the lake sees Azurite exactly as it would see a storage account, through
``AZURE_STORAGE_CONNECTION_STRING`` (adlfs's own variable), with a lake URI of the production form
``abfs://<container>@devstoreaccount1.dfs.core.windows.net/mm``: the URI is the only setting that differs from a
local run. The account key below is Azurite's well-known development key, published in Microsoft's documentation;
it opens nothing but a local emulator.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_INSTALL = "npm install --prefix .tools azurite@3.35.0"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Azurite:
    blob_endpoint: str
    log: Path

    @property
    def account(self) -> str:
        return ACCOUNT

    @property
    def key(self) -> str:
        return ACCOUNT_KEY

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.blob_endpoint};")

    def service(self, **client_options):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, **client_options)

    def lake_uri(self, container: str, path: str = "mm") -> str:
        """The production form of a lake URI, for this emulator's account."""
        return f"abfs://{container}@{ACCOUNT}.dfs.core.windows.net/{path}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def azurite():
    """Start Azurite's blob service on a free 127.0.0.1 port (in-memory) for this session."""
    if not AZURITE_BIN.exists():
        pytest.fail(f"Azurite is not installed at {AZURITE_BIN.relative_to(ROOT)}: run `{AZURITE_INSTALL}` in the "
                    "repository root (make test does); the `azurite` tests are never skipped")
    if shutil.which("node") is None:
        pytest.fail("Node.js is not installed: `apt-get install nodejs npm`, then "
                    f"`{AZURITE_INSTALL}`; the `azurite` tests are never skipped")
    workdir = Path(tempfile.mkdtemp(prefix="mm-assets-azurite-"))
    log = workdir / "azurite.log"
    process = None
    for _ in range(3):  # a port picked free can be taken before Azurite binds it: try another
        port = _free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                 "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
            )
        server = Azurite(blob_endpoint=f"http://127.0.0.1:{port}/{ACCOUNT}", log=log)
        if _wait_ready(server, process, timeout=30):
            break
        _stop(process)
        process = None
    if process is None:
        pytest.fail(f"Azurite did not start; its log: {log.read_text(errors='replace')[-2000:]}")
    try:
        yield server
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(server: Azurite, process: subprocess.Popen, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            return False
        try:
            list(server.service(retry_total=0, connection_timeout=2).list_containers(results_per_page=1))
            return True
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def restart_worker_forkserver() -> None:
    """The local runner's worker processes fork from multiprocessing's forkserver, which keeps the environment it
    was started with. In production the storage variables are set before the process starts; a test sets them
    later, so it stops a forkserver an earlier test may have started (the next pool starts a fresh one)."""
    multiprocessing.forkserver._forkserver._stop()


@pytest.fixture
def azure_env(azurite, monkeypatch):
    """This process (and the runner's workers) sign in to Azurite the way they would to a storage account."""
    for name in [n for n in os.environ if n.startswith("AZURE_STORAGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    restart_worker_forkserver()
    yield azurite
    restart_worker_forkserver()


@pytest.fixture
def azure_container(azure_env):
    """A fresh, empty blob container; deleted afterwards."""
    name = f"mm-{uuid.uuid4().hex[:12]}"
    assert _CONTAINER.match(name)
    service = azure_env.service()
    service.create_container(name)
    yield name
    service.delete_container(name)


@pytest.fixture
def azure_lake_uri(azure_env, azure_container) -> str:
    return azure_env.lake_uri(azure_container)
