"""`make ui` stops on SIGTERM within seconds, even when started in the background (SIGINT inherited ignored)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ignore_sigint() -> None:  # what a non-interactive shell does to a background job
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_the_ui_stops_on_sigterm_with_its_webserver_and_daemon(tmp_path):
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "mm_assets.dev_ui", "-w", "workspace.yaml", "-h", "127.0.0.1",
                             "-p", str(port)], cwd=ROOT, env=env, preexec_fn=_ignore_sigint, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the Dagster UI did not answer within 120 s")
        started = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert time.time() - started < 30
        # every process of the UI's session exits soon after (the code server may take a few seconds more);
        # zombies waiting for init to reap them have exited
        running: list[str] = []
        while time.time() - started < 45:
            listing = subprocess.run(["ps", "-s", str(proc.pid), "-o", "stat=,args="], capture_output=True, text=True)
            running = [line for line in listing.stdout.splitlines() if line.strip() and not line.strip().startswith("Z")]
            if not running:
                break
            time.sleep(0.5)
        assert running == [], f"processes of the UI session still running 45 s after SIGTERM: {running}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
