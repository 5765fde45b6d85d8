"""A run whose process was killed (kill -9, for real) is marked failed, so the run queue moves on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg

from mm_assets.dead_runs import STARTED_PROCESS, fail_dead_runs, process_tags

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
