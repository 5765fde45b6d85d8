"""How many threads a model's OpenMP pool may use, and how its threads wait."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mm_assets.forecasting import threads


@pytest.mark.parametrize("text, cores", [("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1),
                                         ("max 100000", None), ("garbage", None)])
def test_a_containers_cpu_quota_is_read_as_whole_cores(tmp_path, text, cores):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(text + "\n")
    assert threads.quota_cores(str(cpu_max)) == cores


def test_a_missing_quota_file_is_no_quota(tmp_path):
    assert threads.quota_cores(str(tmp_path / "absent")) is None


def test_the_cores_available_are_the_affinity_within_the_quota(monkeypatch):
    """A pod limited to 2 CPUs on a node whose affinity shows 64 gets 2 threads, not 64."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(threads, "quota_cores", lambda: 2)
    assert threads.available_cores() == 2
    monkeypatch.setattr(threads, "quota_cores", lambda: None)
    assert threads.available_cores() == 64
    monkeypatch.setattr(threads, "quota_cores", lambda: 128)
    assert threads.available_cores() == 64


def test_importing_the_package_sets_a_brief_openmp_spin_unless_the_environment_has_one():
    """Set before LightGBM loads its OpenMP runtime, which reads it once; an operator's own value is kept."""
    code = ("import os, mm_assets, lightgbm; print(os.environ['GOMP_SPINCOUNT'])")
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == threads.SPIN_DEFAULT
    out = subprocess.run([sys.executable, "-c", code], env={**env, "GOMP_SPINCOUNT": "50000"}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "50000"
