"""Ctrl-C (or SIGTERM) stops `mm-assets cycle`, not only the run in progress: Dagster turns an interrupt during a
run into that run's failure, and a cycle of many runs would otherwise go on to the next batch of stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from mm_assets_tests.conftest import tiny_settings

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_stops_the_whole_cycle(tiny_project, tmp_path, signo):
    settings, _ = tiny_project
    settings = tiny_settings(tmp_path, schedule={"partitions_per_run": 1})  # 3 stores: 3 batches of runs
    settings_file = tmp_path / "mm_assets.yaml"
    settings_file.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_defaults=True)))
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "MM_ASSETS_SETTINGS": str(settings_file), "DAGSTER_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "mm_assets.cli", "cycle"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:  # the first store's training is done: the cycle is inside its next run
            lines.append(line)
            if line.startswith("  train_job"):
                break
        assert lines and lines[-1].startswith("  train_job ["), "".join(lines)
        time.sleep(0.5)
        proc.send_signal(signo)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += out.splitlines(keepends=True)
    assert proc.returncode in (130, -signo), (proc.returncode, err[-2000:])
    assert sum(line.startswith("  train_job") for line in lines) == 1, "".join(lines)  # no other store's training
    assert "cycle summary" not in "".join(lines)
    if proc.returncode == 130:
        assert "interrupted" in err and "the next cycle runs them again" in err
