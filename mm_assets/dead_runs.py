"""Failing runs whose process is gone, so that a killed run never blocks the run queue.

Why: a run executed in the ``mm-assets`` process (``cycle``, ``backtest``, ``bench``) or launched by the daemon's
default run launcher (a local subprocess) stays STARTED forever when its process is killed (kill -9, OOM, a
reboot). Dagster's run monitoring cannot see it (the default launcher has no worker health check), and the
queued run coordinator then counts it as in progress and launches nothing more. Every run records the process
that executes it (a tag for in-process runs, Dagster's own "Started process for run (pid: N)" event for
launched ones); a run on this host whose process no longer exists is marked failed with the reason.

``fail_dead_runs`` is called at the start of every command-line cycle and by the ``dead_run_sensor`` every
minute while the daemon runs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import dagster as dg

PID_TAG = "mm-assets/pid"
HOST_TAG = "mm-assets/host"
STARTED_PROCESS = "Started process for run (pid: "
ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]


def process_tags() -> dict[str, str]:
    """Tags that name the process executing a run in process (``execute_in_process``)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _launched_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of a launched run's worker, from the engine event Dagster writes when the worker starts."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=50).records
    for record in records:
        entry = record.event_log_entry
        message = (entry.dagster_event.message if entry.dagster_event else None) or entry.user_message or ""
        if message.startswith(STARTED_PROCESS):
            try:
                return int(message[len(STARTED_PROCESS):].split(")")[0])
            except ValueError:
                return None
    return None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process of ours (a recycled pid of some other program counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to another user: leave it alone
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().decode(errors="replace")
        with open(f"/proc/{pid}/stat") as handle:
            zombie = handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    return not zombie and ("python" in command or "dagster" in command or "mm-assets" in command)


def fail_dead_runs(instance: dg.DagsterInstance, log: Callable[[str], None] = print) -> list[str]:
    """Mark failed every active run of this host whose process is gone; returns their run ids."""
    host = socket.gethostname()
    local_launcher = isinstance(instance.run_launcher, dg.DefaultRunLauncher)
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)):
        if run.tags.get(HOST_TAG, host) != host:
            continue  # another machine's run: its own monitoring judges it
        tagged = run.tags.get(PID_TAG)
        if tagged and tagged.isdigit():
            pid = int(tagged)
        elif local_launcher:  # the default launcher starts workers on the code server's machine: this one
            pid = _launched_pid(instance, run.run_id)
        else:
            continue  # a container or cloud launcher: Dagster's run monitoring checks its workers

        if pid is None or process_alive(pid):
            continue
        message = (f"The process executing this run (pid {pid} on {host}) is gone: killed or crashed. The run is "
                   "marked failed so queued runs can start; re-run its partitions.")
        instance.report_run_failed(run, message)
        log(f"failed dead run {run.run_id[:8]} ({run.job_name}): its process {pid} is gone")
        failed.append(run.run_id)
    return failed
