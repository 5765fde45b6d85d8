"""Failing runs whose process is gone, so that a killed run never blocks the run queue.

Why: a run executed in the ``mm-assets`` process (``cycle``, ``backtest``, ``bench``) or launched by the daemon's
default run launcher (a local subprocess) stays STARTED forever when its process is killed (kill -9, OOM, a
reboot). Dagster's run monitoring cannot see it (the default launcher has no worker health check), and the
queued run coordinator then counts it as in progress and launches nothing more. Every run records the process
that executes it (a tag for in-process runs, Dagster's own "Started process for run (pid: N)" event for
launched ones); a run on this host whose process no longer exists is marked failed with the reason.

Killing a run's process does not stop the processes working for it. The multiprocess executor runs each step in
a child process (``multiprocessing`` spawn: its command line is ``python -c "from multiprocessing.spawn import
spawn_main; ..." --multiprocessing-fork`` and names no run), and our runner inside a step starts a forkserver and
pool workers; after ``kill -9`` of the run's process they are reparented to init and keep going, writing
materializations into the run after it is marked failed. So before a dead run is marked failed, its leftover
processes are stopped with their descendants (SIGTERM, then SIGKILL): the step processes Dagster recorded in the
run's events (``STEP_WORKER_STARTED`` carries the step process's pid), and any Dagster worker command
(``dagster api execute_run|resume_run|execute_step``) whose arguments name the run. A recorded pid counts only if
that process is of our user, looks like Python and was started before the event recorded it (so a recycled pid is
never touched); this process and its ancestors never are. The same is done for a run that ended (failed, canceled)
in the last day with its process gone: the code server that launched a run marks it failed as soon as it sees its
worker killed, before the sensor sees it active, and its step processes outlive that too.

``fail_dead_runs`` is called at the start of every command-line cycle and by the ``dead_run_sensor`` while the
daemon runs; ``stop_parent_leftovers`` when a retry of a crashed run starts its fan-out.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg
import psutil

PID_TAG = "mm-assets/pid"
PARENT_RUN_TAG = "dagster/parent_run_id"  # Dagster's tag on a re-execution (a run retry too): the run it repeats
HOST_TAG = "mm-assets/host"
STARTED_PROCESS = "Started process for run (pid: "
ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
WORKER_COMMANDS = ("execute_run", "resume_run", "execute_step")  # ``dagster api <command>`` runs a run or its steps
ENDED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
ENDED_WINDOW = timedelta(days=1)  # ended runs looked at for processes left behind
COMPRESSED_ARGS_ENV = "DAGSTER_COMPRESSED_EXECUTE_STEP_ARGS"
STOP_GRACE_SECONDS = 3.0  # SIGTERM, then SIGKILL what is left after this long
CLOCK_SLACK_SECONDS = 2.0  # a process started this long after the event that recorded its pid is a recycled pid


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
    return not zombie and _looks_like_ours(command)


def _looks_like_ours(command: str) -> bool:
    return "python" in command or "dagster" in command or "mm-assets" in command


def _recorded_pids(instance: dg.DagsterInstance, run_id: str) -> dict[int, float]:
    """Pids of the processes the run's events say worked for it (step processes, executor), with when each was seen."""
    types = {dg.DagsterEventType.STEP_WORKER_STARTED, dg.DagsterEventType.ENGINE_EVENT}
    pids: dict[int, float] = {}
    for record in instance.get_records_for_run(run_id, of_type=types).records:
        event = record.event_log_entry.dagster_event
        metadata = getattr(event.event_specific_data, "metadata", None) if event else None
        value = getattr((metadata or {}).get("pid"), "value", None)
        if value is not None and str(value).isdigit():
            pid = int(value)
            pids[pid] = min(pids.get(pid, record.timestamp), record.timestamp)
    return pids


def _names_run(command: list[str], environ: Callable[[], dict[str, str]], run_id: str) -> bool:
    """Whether a ``dagster api execute_run|resume_run|execute_step`` command line (or its environment) names the run."""
    if "api" not in command or not any(word in command for word in WORKER_COMMANDS):
        return False
    arguments = list(command)
    if "execute_step" in command:  # its arguments are zlib-compressed, on the command line or in the environment
        with contextlib.suppress(psutil.Error, OSError):
            arguments.append(environ().get(COMPRESSED_ARGS_ENV, ""))
    for argument in arguments:
        if run_id in argument:
            return True
        try:
            if run_id in zlib.decompress(base64.b64decode(argument, validate=True)).decode(errors="replace"):
                return True
        except (ValueError, zlib.error):
            continue
    return False


def _snapshot() -> list[psutil.Process]:
    """This user's processes, except this one and its ancestors (never stopped); ``.info`` holds what we match on."""
    me = psutil.Process()
    spared = {me.pid, *(parent.pid for parent in me.parents())}
    uid = os.getuid()
    return [proc for proc in psutil.process_iter(["pid", "uids", "cmdline", "create_time"])
            if proc.info["pid"] not in spared and proc.info["uids"] and proc.info["uids"].real == uid]


def _leftover_processes(instance: dg.DagsterInstance, run_id: str,
                        processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes still working for a dead run, with all their descendants (see the module docstring)."""
    recorded = _recorded_pids(instance, run_id)
    roots = []
    for proc in processes:
        command = proc.info["cmdline"] or []
        seen = recorded.get(proc.info["pid"])
        recorded_by_run = (seen is not None and _looks_like_ours(" ".join(command))
                           and proc.info["create_time"] <= seen + CLOCK_SLACK_SECONDS)  # else a recycled pid
        if recorded_by_run or _names_run(command, proc.environ, run_id):
            roots.append(proc)
    ours = {proc.pid for proc in processes}
    found: dict[int, psutil.Process] = {}
    for root in roots:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue  # gone meanwhile
        found.update((proc.pid, proc) for proc in family if proc.pid in ours)
    return list(found.values())


def _stop(processes: list[psutil.Process]) -> list[int]:
    """SIGTERM, a short wait, then SIGKILL; returns the pids still alive after that."""
    for signal_name in ("terminate", "kill"):
        for proc in processes:
            with contextlib.suppress(psutil.Error):  # gone already, or not ours to signal: wait_procs tells
                getattr(proc, signal_name)()
        _, processes = psutil.wait_procs(processes, timeout=STOP_GRACE_SECONDS)
        if not processes:
            break
    return sorted(proc.pid for proc in processes)


def stop_run_processes(instance: dg.DagsterInstance, run_id: str,
                       processes: list[psutil.Process] | None = None) -> tuple[list[int], list[int]]:
    """Stop the processes still working for the dead run ``run_id``; returns (stopped pids, pids that survived).

    Call it only for a run whose own process is gone: a live run's step processes match too.
    """
    leftovers = _leftover_processes(instance, run_id, _snapshot() if processes is None else processes)
    left = _stop(leftovers)
    return sorted(proc.pid for proc in leftovers if proc.pid not in left), left


def _run_pid(instance: dg.DagsterInstance, run: dg.DagsterRun, host: str, local_launcher: bool) -> int | None:
    """The pid of the process executing a run of this host, or None when it is not ours to judge or not known."""
    if run.tags.get(HOST_TAG, host) != host:
        return None  # another machine's run: its own monitoring judges it
    tagged = run.tags.get(PID_TAG)
    if tagged and tagged.isdigit():
        return int(tagged)
    if local_launcher:  # the default launcher starts workers on the code server's machine: this one
        return _launched_pid(instance, run.run_id)
    return None  # a container or cloud launcher: Dagster's run monitoring checks its workers


ENDED_LEFTOVERS = "ended run "  # how a log line about an ended run's leftover processes begins


def _leftovers_text(stopped: list[int], left: list[int]) -> str:
    text = f" Stopped {len(stopped)} leftover process(es) still working for it: pids {stopped}." if stopped else ""
    return text + (f" Could not stop pids {left}." if left else "")


def fail_dead_runs(instance: dg.DagsterInstance, log: Callable[[str], None] = print) -> list[str]:
    """Mark failed every active run of this host whose process is gone; returns their run ids.

    The processes still working for such a run are stopped first; so are those of a run that ended (failed,
    canceled) in the last ``ENDED_WINDOW`` with its process gone: when the run worker is killed, the code server
    that launched it marks it failed at once, before this ever sees it active, and its step processes live on.
    """
    host = socket.gethostname()
    local_launcher = isinstance(instance.run_launcher, dg.DefaultRunLauncher)
    processes = _snapshot()
    failed, handled = [], set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)):
        pid = _run_pid(instance, run, host, local_launcher)
        if pid is None or process_alive(pid):
            continue
        # before failing it: nothing may write into the run after it is failed
        stopped, left = stop_run_processes(instance, run.run_id, processes)
        now = instance.get_run_by_id(run.run_id)
        if now is None or now.status not in ACTIVE:  # failed meanwhile (the code server saw its worker go): one
            # failure, one alert; what was stopped is said in the run, as for any ended run
            _report_leftovers(instance, run, pid, stopped, left, log)
            handled.add(run.run_id)  # its leftovers are dealt with: not again below
            continue
        leftovers = _leftovers_text(stopped, left)
        message = (f"The process executing this run (pid {pid} on {host}) is gone: killed or crashed. The run is "
                   f"marked failed so queued runs can start; re-run its partitions.{leftovers}")
        instance.report_run_failed(run, message)
        log(f"failed dead run {run.run_id[:8]} ({run.job_name}): its process {pid} is gone.{leftovers}")
        failed.append(run.run_id)

    since = datetime.now(UTC) - ENDED_WINDOW
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ENDED, updated_after=since)):
        if run.run_id not in failed and run.run_id not in handled:
            _stop_ended_run_leftovers(instance, run, processes, host, local_launcher, log)
    return failed


def _stop_ended_run_leftovers(instance: dg.DagsterInstance, run: dg.DagsterRun, processes: list[psutil.Process],
                              host: str, local_launcher: bool, log: Callable[[str], None]) -> None:
    """Stop what an ended run whose process is gone left running, and say so in the run and in ``log``."""
    pid = _run_pid(instance, run, host, local_launcher)
    if pid is None or process_alive(pid):
        return
    _report_leftovers(instance, run, pid, *stop_run_processes(instance, run.run_id, processes), log)


def _report_leftovers(instance: dg.DagsterInstance, run: dg.DagsterRun, pid: int, stopped: list[int],
                      left: list[int], log: Callable[[str], None]) -> None:
    """Say in an ended run, and in ``log`` (a line starting ``ENDED_LEFTOVERS``), what was stopped of what it left."""
    if stopped or left:
        leftovers = _leftovers_text(stopped, left)
        instance.report_engine_event(f"The process executing this run (pid {pid}) is gone.{leftovers}", run)
        log(f"{ENDED_LEFTOVERS}{run.run_id[:8]} ({run.job_name}) had processes left after its process {pid} was "
            f"gone.{leftovers}")


def stop_parent_leftovers(instance: dg.DagsterInstance, run: dg.DagsterRun, log: Callable[[str], None]) -> None:
    """Before a re-execution of a crashed run works (Dagster's run retries start one within seconds), stop what the
    crashed run left running: the dead-run sensor would stop it only at its next tick, and until then the two
    would fan out over the same stores side by side. A run without a parent, or whose parent did not end in
    failure or cancellation, costs a tag lookup."""
    parent_id = run.tags.get(PARENT_RUN_TAG)
    parent = instance.get_run_by_id(parent_id) if parent_id else None
    if parent is None or parent.status not in ENDED:
        return
    _stop_ended_run_leftovers(instance, parent, _snapshot(), socket.gethostname(),
                              isinstance(instance.run_launcher, dg.DefaultRunLauncher), log)
