"""The benchmark's measuring instruments see work done in child processes, and count storage calls."""

from __future__ import annotations

import multiprocessing as mp
import time

from mm_assets.benchmark.measure import BookkeepingTimer, measure


def _busy(seconds: float) -> None:
    """Burn ``seconds`` of CPU (not wall: the machine may be busy)."""
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1


def _allocate(mb: int, hold_s: float) -> None:
    block = bytearray(mb * 2**20)
    for i in range(0, len(block), 4096):  # touch every page so it is resident
        block[i] = 1
    time.sleep(hold_s)


def test_cpu_of_a_busy_child_is_counted():
    with measure("busy") as m:
        child = mp.get_context("spawn").Process(target=_busy, args=(1.0,))
        child.start()
        child.join()
    assert m.cpu_s >= 0.95, m
    assert m.cpu_s < 2.5, m  # counted once, not twice (the child's start-up is a few tenths)
    assert m.wall_s >= 0.95


def test_cpu_of_a_grandchild_reaped_by_a_forkserver_is_counted():
    ctx = mp.get_context("forkserver")
    with measure("forkserver") as m:
        child = ctx.Process(target=_busy, args=(1.0,))
        child.start()
        child.join()
    assert m.cpu_s >= 0.95, m


PEAK_RSS_SCRIPT = """
import multiprocessing as mp, time
from mm_assets.benchmark.measure import measure
from mm_assets_tests.benchmark.test_measure import _allocate
if __name__ == "__main__":
    with measure("idle") as idle:
        time.sleep(0.3)
    with measure("alloc") as m:
        child = mp.get_context("spawn").Process(target=_allocate, args=(200, 0.5))
        child.start()
        child.join()
    print(idle.peak_rss_mb, m.peak_rss_mb)
"""


def test_peak_rss_sees_a_child_allocating_200_mb(tmp_path):
    """Measured from a process of its own: the test run's process tree holds servers (PostgreSQL backends, Azurite)
    and forkservers of other tests, whose memory comes and goes while the child allocates."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "peak_rss.py"
    script.write_text(PEAK_RSS_SCRIPT)
    root = str(Path(__file__).resolve().parents[2])  # where mm_assets_tests imports from, here and in the child
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root,
                                                                                         os.environ.get("PYTHONPATH")]))})
    idle, peak = map(float, done.stdout.split())
    assert peak - idle >= 180, (idle, peak)


class _Storage:
    def __init__(self):
        self.stored = []

    def store_event(self, event):
        time.sleep(0.01)
        self.stored.append(event)
        self.handle(event)  # nested storage call: counted once, by the outer call

    def handle(self, event):
        time.sleep(0.01)


class _Instance:
    def __init__(self):
        self.run_storage = _Storage()
        self.event_log_storage = _Storage()
        self.schedule_storage = None


def test_bookkeeping_timer_counts_calls_and_restores():
    instance = _Instance()
    with BookkeepingTimer(instance) as timer:
        for i in range(3):
            instance.event_log_storage.store_event(i)
        instance.run_storage.handle("x")
    assert timer.calls == 4
    assert timer.seconds >= 0.07
    assert timer.by_method["event_log_storage.store_event"][0] == 3
    assert "store_event" not in vars(instance.event_log_storage)  # unpatched
    assert instance.event_log_storage.stored == [0, 1, 2]


def test_peak_memory_counts_a_worker_started_after_the_sampler():
    import subprocess
    import sys

    from mm_assets.benchmark.measure import PeakRssSampler

    touch = "b = bytearray(300_000_000); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1.0)"
    with PeakRssSampler(interval=0.02, relist=0.2) as sampler:
        before = sampler.peak
        subprocess.run([sys.executable, "-c", touch], check=True)
    assert sampler.peak - before > 250_000_000  # the child's 300 MB, seen although it started after the listing


class _Event:
    """What the clock reads of a stored event: its Dagster event's type and step."""

    def __init__(self, kind: str, step: str | None = None):
        self.dagster_event = type("E", (), {"event_type_value": kind, "step_key": step})()


def test_stage_clock_splits_runs_at_the_step_where_the_next_stage_begins():
    from mm_assets.benchmark.measure import StageClock

    instance = _Instance()
    steps = {"series_datasets": "datasets", "trained_models": "train", "production_models": "promote"}
    with StageClock(instance, steps) as clock:
        store = instance.event_log_storage.store_event  # timed; 20 ms a call (it nests a second storage call)
        with clock.run("datasets"):  # a run of two stages: the run's start is its first stage's
            store(_Event("PIPELINE_START"))
            store(_Event("STEP_START", "series_datasets"))
            time.sleep(0.05)
            store(_Event("STEP_START", "trained_models"))
            store(_Event("STEP_START", "unknown_step"))  # stays in the stage before it
            time.sleep(0.05)
            store(_Event("PIPELINE_SUCCESS"))  # the run's end is its last stage's
        time.sleep(0.1)  # between runs: no stage's
        with clock.run("promote"):
            store(_Event("STEP_START", "production_models"))
    datasets, train, promote = clock.stages["datasets"], clock.stages["train"], clock.stages["promote"]
    assert list(clock.stages) == ["datasets", "train", "promote"]
    assert (datasets.runs, train.runs, promote.runs) == (1, 1, 1)
    assert (datasets.bookkeeping_calls, train.bookkeeping_calls, promote.bookkeeping_calls) == (2, 3, 1)
    assert datasets.bookkeeping_s >= 0.04 and train.bookkeeping_s >= 0.06 and promote.bookkeeping_s >= 0.02
    assert 0.09 <= datasets.wall_s < 0.25 and 0.11 <= train.wall_s < 0.3 and promote.wall_s < 0.1
    assert datasets.detail["bookkeeping_top"][0][:2] == ("event_log_storage.store_event", 2)
    assert "store_event" not in vars(instance.event_log_storage)  # unpatched
