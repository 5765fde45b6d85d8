"""A run whose process was killed (kill -9, for real) is marked failed, so the run queue moves on."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import psutil
from dagster._core.events import EngineEventData

from mm_assets.dead_runs import (
    PARENT_RUN_TAG,
    STARTED_PROCESS,
    fail_dead_runs,
    process_tags,
    stop_parent_leftovers,
)

SLEEPER = textwrap.dedent("""
    import time
    import dagster as dg
    from mm_assets.dead_runs import process_tags

    @dg.op
    def sleep_long():
        time.sleep(120)

    @dg.job
    def sleeper():
        sleep_long()

    sleeper.execute_in_process(instance=dg.DagsterInstance.get(), tags=process_tags())
""")


def _instance_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def test_a_killed_in_process_run_is_failed_with_its_pid(tmp_path, monkeypatch):
    home = _instance_home(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    dg.DagsterInstance.get().dispose()  # its storage exists before the run's process opens it (no schema race)
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], env={**os.environ, "DAGSTER_HOME": str(home)})
    try:
        with dg.DagsterInstance.get() as instance:
            deadline = time.time() + 60
            runs = []
            while time.time() < deadline and not runs:
                runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                time.sleep(0.2)
            assert runs, "the sleeper run never started"
            assert fail_dead_runs(instance, log=lambda m: None) == []  # alive: left alone
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            lines: list[str] = []
            assert fail_dead_runs(instance, log=lines.append) == [runs[0].run_id]
            run = instance.get_run_by_id(runs[0].run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
            assert f"process {proc.pid} is gone" in lines[0]
            failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
            assert f"pid {proc.pid}" in failure[0].event_log_entry.dagster_event.message
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_launched_run_is_judged_by_the_pid_dagster_recorded_for_its_worker():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with dg.instance_for_test() as instance:
        @dg.job
        def nothing():
            pass

        run = instance.create_run_for_job(nothing, status=dg.DagsterRunStatus.STARTED)
        instance.report_engine_event(f"{STARTED_PROCESS}{dead.pid}).", run)
        mine = instance.create_run_for_job(nothing, status=dg.DagsterRunStatus.STARTED,
                                           tags=process_tags())
        assert fail_dead_runs(instance, log=lambda m: None) == [run.run_id]
        assert instance.get_run_by_id(mine.run_id).status == dg.DagsterRunStatus.STARTED


def test_the_dead_run_sensor_is_on_by_default(tmp_path):
    from mm_assets.definitions import build_definitions
    from mm_assets_tests.conftest import tiny_settings

    defs = build_definitions(tiny_settings(tmp_path))
    sensor = defs.resolve_sensor_def("fail_dead_runs")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert result.skip_message == "no dead runs"


# -- processes left working for a dead run ---------------------------------------------------------------------------

ORPHANING = textwrap.dedent("""
    import multiprocessing
    import time
    import dagster as dg
    from mm_assets.dead_runs import process_tags

    @dg.op
    def train():  # like our runner: a forkserver and a pool worker, in the step's own process
        with multiprocessing.get_context("forkserver").Pool(1) as pool:
            pool.map(time.sleep, [300])

    @dg.job(executor_def=dg.multiprocess_executor)
    def orphaning():
        train()

    if __name__ == "__main__":
        dg.execute_job(dg.reconstructable(orphaning), instance=dg.DagsterInstance.get(), tags=process_tags())
""")

# a process with a child of its own; prints its child's pid; its argv is whatever follows the code
WITH_CHILD = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print(child.pid, flush=True)
    time.sleep(300)
""")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _with_child(*argv: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", WITH_CHILD, *argv], stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def _record_pid(instance: dg.DagsterInstance, run: dg.DagsterRun, pid: int, timestamp: float) -> None:
    """An engine event naming ``pid``, as Dagster writes for the processes of a run, recorded at ``timestamp``."""
    event = dg.DagsterEvent(event_type_value=dg.DagsterEventType.ENGINE_EVENT.value, job_name=run.job_name,
                            message=f"process (pid: {pid})",
                            event_specific_data=EngineEventData(metadata={"pid": dg.MetadataValue.text(str(pid))}))
    instance.store_event(dg.EventLogEntry(error_info=None, level=logging.DEBUG, user_message="", run_id=run.run_id,
                                          timestamp=timestamp, dagster_event=event))


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def test_the_step_processes_of_a_killed_multiprocess_run_are_stopped_before_it_is_failed(tmp_path, monkeypatch):
    home = _instance_home(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (tmp_path / "orphaning.py").write_text(ORPHANING)
    dg.DagsterInstance.get().dispose()  # its storage exists before the run's process opens it (no schema race)
    proc = subprocess.Popen([sys.executable, "orphaning.py"], cwd=tmp_path, env={**os.environ, "DAGSTER_HOME": str(home)})
    step = None
    family: list[int] = []
    try:
        with dg.DagsterInstance.get() as instance:
            deadline = time.time() + 90
            while time.time() < deadline and len(family) < 3:  # the step process, its forkserver, the pool worker
                time.sleep(0.3)
                runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                started = runs and instance.get_records_for_run(
                    runs[0].run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED).records
                if started:
                    step = int(started[0].event_log_entry.dagster_event.event_specific_data.metadata["pid"].value)
                    with contextlib.suppress(psutil.NoSuchProcess):
                        family = [step, *(p.pid for p in psutil.Process(step).children(recursive=True)
                                          if "forkserver" in " ".join(p.cmdline()))]
            assert len(family) >= 3, f"the step never started its pool: {family}"
            assert fail_dead_runs(instance, log=lambda m: None) == []  # alive: left alone
            assert not any(_gone(pid) for pid in family)

            os.kill(proc.pid, signal.SIGKILL)  # the step process and its pool are orphaned, and keep working
            proc.wait(10)
            time.sleep(0.5)
            assert not any(_gone(pid) for pid in family)
            lines: list[str] = []
            assert fail_dead_runs(instance, log=lines.append) == [runs[0].run_id]
            assert all(_gone(pid) for pid in family), [pid for pid in family if not _gone(pid)]
            run = instance.get_run_by_id(runs[0].run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
            failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
            message = failure[0].event_log_entry.dagster_event.message
            assert f"pid {proc.pid}" in message and "leftover process(es)" in message and str(step) in message
            assert str(step) in lines[0]
    finally:
        for pid in [proc.pid, *family]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def _spawned():
    """(processes started, their children's pids): every one of them killed when the test ends, however."""
    started: list[subprocess.Popen] = []
    children: list[int] = []
    try:
        yield started, children
    finally:
        for pid in [*(p.pid for p in started), *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in started:
            proc.wait(10)


def _dead_started_run(instance: dg.DagsterInstance, **tags: str) -> tuple[dg.DagsterRun, dg.JobDefinition]:
    """A STARTED run whose worker (as the engine event records it) is gone; and its job, for more runs."""
    @dg.job
    def nothing():
        pass

    run = instance.create_run_for_job(nothing, status=dg.DagsterRunStatus.STARTED, tags=tags or None)
    instance.report_engine_event(f"{STARTED_PROCESS}{_dead_pid()}).", run)
    return run, nothing


def test_only_the_dead_runs_own_processes_and_their_children_are_stopped():
    with _spawned() as (started, children), dg.instance_for_test() as instance:
        run, nothing = _dead_started_run(instance)
        other = instance.create_run_for_job(nothing, status=dg.DagsterRunStatus.STARTED, tags=process_tags())

        # a Dagster worker command naming the dead run (as ``dagster api execute_run <args>``), with a child
        named, named_child = _with_child("api", "execute_run", f'{{"run_id": "{run.run_id}"}}')
        # a process the run's events recorded (as the multiprocess executor's step processes), with a child
        recorded, recorded_child = _with_child()
        _record_pid(instance, run, recorded.pid, time.time())
        # a recycled pid: the event recorded it a minute before this process started
        recycled, recycled_child = _with_child()
        _record_pid(instance, run, recycled.pid, time.time() - 60)
        # the same kinds of process for the other run, which is alive
        others, others_child = _with_child("api", "execute_run", f'{{"run_id": "{other.run_id}"}}')
        _record_pid(instance, other, others.pid, time.time())
        started += [named, recorded, recycled, others]
        children += [named_child, recorded_child, recycled_child, others_child]

        lines: list[str] = []
        assert fail_dead_runs(instance, log=lines.append) == [run.run_id]
        stopped = [named.pid, named_child, recorded.pid, recorded_child]
        assert all(_gone(pid) for pid in stopped)
        assert not any(_gone(pid) for pid in [recycled.pid, recycled_child, others.pid, others_child])
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(other.run_id).status == dg.DagsterRunStatus.STARTED
        failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert f"Stopped 4 leftover process(es) still working for it: pids {sorted(stopped)}." in (
            failure[0].event_log_entry.dagster_event.message)
        assert f"pids {sorted(stopped)}" in lines[0]


def _failed_with_a_leftover(instance: dg.DagsterInstance, started: list, children: list):
    """(run, its job, step process, its child): a run marked failed, as the code server marks a run whose worker
    was killed, whose events recorded a step process that lives on."""
    run, job = _dead_started_run(instance)
    step, step_child = _with_child()
    started.append(step)
    children.append(step_child)
    _record_pid(instance, run, step.pid, time.time())
    instance.report_run_failed(run, "This run has been marked as failed from outside the execution context.")
    return run, job, step, step_child


def test_processes_left_by_a_run_already_failed_by_the_code_server_are_stopped():
    """The code server marks a run failed as soon as it sees its worker killed; the step processes live on."""
    with _spawned() as (started, children), dg.instance_for_test() as instance:
        run, _, step, step_child = _failed_with_a_leftover(instance, started, children)

        lines: list[str] = []
        assert fail_dead_runs(instance, log=lines.append) == []
        assert _gone(step.pid) and _gone(step_child)
        assert f"pids {sorted([step.pid, step_child])}" in lines[0]
        engine = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
        assert "Stopped 2 leftover process(es)" in engine[-1].event_log_entry.dagster_event.message
        lines.clear()
        assert fail_dead_runs(instance, log=lines.append) == [] and lines == []  # nothing left: nothing said


def test_a_retry_stops_what_its_crashed_parent_left_before_it_fans_out():
    """Dagster retries a crashed run within seconds: the retry must not work beside its parent's leftovers until
    the dead-run sensor's next tick. A re-execution of a run that succeeded touches nothing."""
    with _spawned() as (started, children), dg.instance_for_test() as instance:
        parent, nothing, step, step_child = _failed_with_a_leftover(instance, started, children)
        plain = instance.create_run_for_job(nothing, status=dg.DagsterRunStatus.STARTED)
        lines: list[str] = []
        stop_parent_leftovers(instance, plain, lines.append)  # not a retry: nothing to do
        assert not _gone(step.pid) and lines == []

        retry = instance.create_run_for_job(nothing, status=dg.DagsterRunStatus.STARTED,
                                            tags={PARENT_RUN_TAG: parent.run_id})
        stop_parent_leftovers(instance, retry, lines.append)
        assert _gone(step.pid) and _gone(step_child)
        assert f"pids {sorted([step.pid, step_child])}" in lines[0]

        done = instance.create_run_for_job(nothing, status=dg.DagsterRunStatus.SUCCESS)  # a run that succeeded
        instance.report_engine_event(f"{STARTED_PROCESS}{_dead_pid()}).", done)
        survivor, survivor_child = _with_child()  # ... and a process its events recorded
        started.append(survivor)
        children.append(survivor_child)
        _record_pid(instance, done, survivor.pid, time.time())
        again = instance.create_run_for_job(nothing, status=dg.DagsterRunStatus.STARTED,
                                            tags={PARENT_RUN_TAG: done.run_id})
        stop_parent_leftovers(instance, again, lines.append)
        assert not _gone(survivor.pid) and not _gone(survivor_child) and len(lines) == 1


def test_a_run_the_code_server_fails_while_its_leftovers_are_stopped_is_failed_once(monkeypatch):
    """The code server sees a killed worker and fails its run while this stops the run's leftovers (seconds, with
    the grace of each signal): the run gets one failure and one alert, not a second saying something else."""
    import socket

    import mm_assets.dead_runs as dead_runs

    with dg.instance_for_test() as instance:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait(10)
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), tags={
            dead_runs.PID_TAG: str(gone.pid), dead_runs.HOST_TAG: socket.gethostname()})
        instance.handle_run_event(run.run_id, dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name))

        def code_server_fails_it(inst, run_id, processes=None):
            inst.report_run_failed(inst.get_run_by_id(run_id), "marked as failed from outside the execution context")
            return [4242], []

        monkeypatch.setattr(dead_runs, "stop_run_processes", code_server_fails_it)
        lines: list[str] = []
        assert fail_dead_runs(instance, log=lines.append) == []  # not failed by us: already failed
        failures = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert len(failures) == 1 and "outside the execution context" in failures[0].event_log_entry.message
        assert lines == [f"ended run {run.run_id[:8]} (g) had processes left after its process {gone.pid} was gone. "
                         "Stopped 1 leftover process(es) still working for it: pids [4242]."]
