"""`make ui` stops on SIGTERM within seconds, even when started in the background (SIGINT inherited ignored), and
starts without notices a newcomer would take for something to fix."""

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
    (home / "dagster.yaml").write_text((ROOT / "mm_assets" / "local_instance.yaml").read_text())  # as make ui does
    log = tmp_path / "ui.log"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    out = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mm_assets.dev_ui", "-w", "workspace.yaml", "-h", "127.0.0.1",
                             "-p", str(port)], cwd=ROOT, env=env, preexec_fn=_ignore_sigint, start_new_session=True,
                            stdout=out, stderr=subprocess.STDOUT)
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
        out.close()
    text = log.read_text()
    assert "Serving dagster-webserver on http://127.0.0.1:" in text  # the log was captured
    # Dagster's notices of a dagster.yaml outside $DAGSTER_HOME and of `dagster dev` superseded by `dg dev`
    assert "will not be used to configure Dagster" not in text and "superseded" not in text, text
