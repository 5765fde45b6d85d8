"""``azmlinfsrv``, listening on 127.0.0.1 only: ``python -m mm_assets.serving.loopback --entry_script ... --port N``.

The ``azmlinfsrv`` command (azureml-inference-server-http) always binds 0.0.0.0 (the host is a constant in
``amlserver``, there is no option), which on a laptop exposes the endpoint to the whole network. So
``make serve``, the tests and the benchmark run the same server entry point, ``amlserver.run()``, with the same
arguments and environment, and only that host constant set to the loopback address. Everything else (gunicorn,
the Flask app and routes, entry-script loading, ``WORKER_COUNT``, ``GUNICORN_CMD_ARGS``) is the server's own
code. ``.venv-serve/bin/azmlinfsrv --entry_script mm_assets/serving/score.py --port 5001`` is equivalent, on
every interface.

``start_server`` / ``stop_server`` run it as a child process (tests, benchmark).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

HOST_ENV = "MM_ASSETS_SERVING_HOST"
HOST = "127.0.0.1"
ENTRY_SCRIPT = Path(__file__).with_name("score.py")


DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4


def serving_defaults(environ: dict[str, str]) -> None:
    """Worker processes and threads unless set: the server's own default, one synchronous worker, is held by
    a single slow client (a body announced but not sent) until its 300 s timeout, and every other request waits.
    With threads, a slow client holds one thread of one worker. And no control socket: gunicorn's is one file per
    user (``~/.gunicorn/gunicorn.ctl``), so two servers shared it and stopping one deleted the other's."""
    environ.setdefault("WORKER_COUNT", str(DEFAULT_WORKERS))
    args = environ.get("GUNICORN_CMD_ARGS", "")
    if "--threads" not in args:
        args = f"{args} --threads {DEFAULT_THREADS}".strip()
    if "control-socket" not in args:
        args = f"{args} --no-control-socket"
    environ["GUNICORN_CMD_ARGS"] = args


def main() -> None:
    from azureml_inference_server_http import amlserver
    from gunicorn.errors import HaltServer

    amlserver.DEFAULT_HOST = os.environ.get(HOST_ENV, HOST)
    serving_defaults(os.environ)
    try:
        amlserver.run()
    except HaltServer as exc:  # gunicorn's own traceback of it would bury the workers' "cannot start" line
        sys.exit(f"the inference server stopped: {exc.reason} (the worker's log above says why)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(
    port: int,
    env: Mapping[str, str] | None = None,
    log_path: str | Path | None = None,
    cwd: str | Path | None = None,
    timeout_s: float = 60.0,
) -> subprocess.Popen:
    """Start the inference server on 127.0.0.1:``port`` with the scoring script; return once it is healthy."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("GUNICORN_CMD_ARGS", "--no-control-socket")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the server writes to it
    proc = subprocess.Popen(
        [sys.executable, "-m", "mm_assets.serving.loopback", "--entry_script", str(ENTRY_SCRIPT), "--port", str(port)],
        env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the inference server exited with code {proc.returncode}; see {log_path or 'its log'}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"the inference server did not answer on port {port} within {timeout_s:.0f}s")


def stop_server(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """Stop the server and its gunicorn workers (its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout_s)


if __name__ == "__main__":
    main()
