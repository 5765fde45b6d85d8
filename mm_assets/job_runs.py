"""Running one Dagster job in process and saying why it failed: the one loop behind ``mm-assets cycle``,
``mm-assets backtest`` and ``mm-assets bench``.

Why the causes are unwrapped: Dagster reports an exception raised in an op as ``Error occurred while executing
op "raw_sales":`` with the real error (a full disk, a file name too long) as its cause, and a ``dg.Failure``
with its class path in front. The operator needs the innermost message, which names the problem and the fix.
The console shows Dagster's own warnings and errors, but not a failed step's or run's stack trace (twice: the
step's, then the run's), which would bury that message; the UI's run page keeps the whole trace.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import dagster as dg

from mm_assets.assets.settings_hold import settings_tags
from mm_assets.assets.store_checks import FAILED_CHECK_LINE
from mm_assets.dead_runs import process_tags
from mm_assets.memory import release_freed
from mm_assets.settings import Settings

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
FAILURE_PREFIX = "dagster._core.definitions.events.Failure: "
MAX_CAUSE_CHARS = 1000
MAX_CHECK_LINES = 5  # failed checks printed per run, each once whatever the stores it failed for
MAX_NAMED = 10  # the other stores a failed check names
# events whose error the command line prints itself (``JobRun.causes``), without Dagster's stack trace
PRINTED_FAILURES = frozenset({dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE})


def _not_printed_by_us(record: logging.LogRecord) -> bool:
    event = getattr(record, "dagster_meta", {}).get("dagster_event")
    if FAILED_CHECK_LINE in record.getMessage():  # the run's failed checks: ``JobRun.log_lines`` says them once
        return False
    return getattr(event, "event_type", None) not in PRINTED_FAILURES


@dg.logger(dg.colored_console_logger.config_schema, description="Dagster's console logger without the failure "
           "events whose innermost error the command line prints")
def command_line_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = dg.colored_console_logger.logger_fn(init_context)
    log.addFilter(_not_printed_by_us)
    return log


_JOBS: dict[str, dg.JobDefinition] = {}  # the jobs of ``_JOBS_OF`` with the command line's console logger
_JOBS_OF: list[dg.Definitions] = []  # the definitions they were made of: one at a time, so nothing accumulates


def _command_line_job(defs: dg.Definitions, job: str) -> dg.JobDefinition:
    """``job`` with the command line's console logger, made once per job of the definitions in use (a copy of a
    job is not free, and a cycle runs each job once per batch of stores)."""
    if not _JOBS_OF or _JOBS_OF[0] is not defs:
        _JOBS.clear()
        _JOBS_OF[:] = [defs]
    if job not in _JOBS:
        _JOBS[job] = defs.resolve_job_def(job).with_logger_defs({"console": command_line_console})
    return _JOBS[job]


@dataclass
class JobRun:
    job: str
    label: str  # the partitions it covered, e.g. 'S01..S25'
    success: bool
    seconds: float
    run_id: str
    causes: list[str] = field(default_factory=list)  # 'step: innermost error' per failed step
    result: dg.ExecuteInProcessResult | None = None
    failed_checks: list[FailedCheck] = field(default_factory=list)  # asset checks that did not pass

    def log_lines(self) -> list[str]:
        """The run's line, its failures' causes, and its failed checks: each check once, in full for its first
        store, with the other stores it failed for named after it (a check's text is much the same for each store,
        and 25 copies of it buried the other checks), at most ``MAX_CHECK_LINES`` checks."""
        state = "ok" if self.success else "FAILED"
        lines = [f"  {self.job} [{self.label}] {state} in {self.seconds:.1f}s (run {self.run_id[:8]})",
                 *(f"    {cause}" for cause in self.causes)]
        kinds: dict[tuple[str, str], list[FailedCheck]] = {}
        for check in self.failed_checks:
            kinds.setdefault((check.name, check.severity), []).append(check)
        for (name, severity), checks in list(kinds.items())[:MAX_CHECK_LINES]:
            first = checks[0]
            lines.append(f"    check {name} {severity}{f' [{first.partition}]' if first.partition else ''}: "
                         f"{first.description}")
            if len(checks) > 1:
                others = [c.partition or "(run)" for c in checks[1:]]
                shown = ", ".join(others[:MAX_NAMED]) + (" ..." if len(others) > MAX_NAMED else "")
                # not "the same": each store's finding is its own (a 1e12 target among a store's unit slips)
                lines.append(f"      {'also warned' if severity == 'WARN' else 'also failed'} for {len(others)} more: "
                             f"{shown} (each with its own finding: the UI's asset checks)")
        rest = [c for checks in list(kinds.values())[MAX_CHECK_LINES:] for c in checks]
        if rest:
            lines.append(f"    ... and {len(rest)} more failed checks (the UI's asset checks list every one)")
        return lines


@dataclass(frozen=True)
class FailedCheck:
    """An asset check a run evaluated as not passed: a run can succeed and still warn (a series that stopped
    selling, a store without rows); the command line says so instead of leaving it to the UI."""

    name: str
    severity: str  # WARN or ERROR
    partition: str | None
    description: str


def failed_checks(result: dg.ExecuteInProcessResult) -> list[FailedCheck]:
    out = []
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.event_specific_data
        if evaluation.passed:
            continue
        description = " ".join((evaluation.description or "no description").split())
        out.append(FailedCheck(evaluation.check_name, evaluation.severity.value, evaluation.partition,
                               description[:MAX_CAUSE_CHARS]))
    return out


def innermost_message(error) -> str:
    """The message of the deepest cause of a ``SerializableErrorInfo``, without Dagster's wrapper text. An error
    raised in a process pool's worker has the worker's whole traceback as its cause (``_RemoteTraceback``): the
    error itself is the line to show."""
    while getattr(error, "cause", None) is not None and error.cause.cls_name != "_RemoteTraceback":
        error = error.cause
    message = (error.message or "").strip()
    if message.startswith(FAILURE_PREFIX):
        message = message[len(FAILURE_PREFIX):]
    elif message.startswith("dagster.") and ": " in message:  # another Dagster class path: keep the text
        message = message.split(": ", 1)[1]
    return message[:MAX_CAUSE_CHARS]


def step_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    return [f"{event.step_key}: {innermost_message(event.step_failure_data.error)}"
            for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE]


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by an interrupt (Ctrl-C, SIGTERM): whatever ran it stops too."""


INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a failed run failed because it was interrupted, not because a step raised."""
    for event in result.all_events:
        error = (event.step_failure_data.error if event.event_type == dg.DagsterEventType.STEP_FAILURE
                 else getattr(event.event_specific_data, "error", None)
                 if event.event_type == dg.DagsterEventType.RUN_FAILURE else None)
        while error is not None:
            if error.cls_name in INTERRUPTS:
                return True
            error = getattr(error, "cause", None)
    return False


def execute_job(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, tags: dict[str, str], label: str,
                run_config: dict | None = None, settings: Settings | None = None) -> JobRun:
    """Run ``job`` in process on ``instance`` (recorded there like a launched run) with quiet console logs.
    ``settings``: those ``defs`` were built from, tagged on the run at its launch (every step of a run in one
    process has them: ``assets.settings_hold`` then has nothing to record or read)."""
    started = time.perf_counter()
    held = settings_tags(settings) if settings is not None else {}
    result = _command_line_job(defs, job).execute_in_process(
        instance=instance, tags={**tags, **held, **process_tags()}, raise_on_error=False,
        run_config={**QUIET_LOGS, **(run_config or {})}
    )
    release_freed()  # the next run starts from what this process holds, not from this run's high-water mark
    if not result.success and interrupted(result):
        # Dagster turns Ctrl-C (and SIGTERM) during a run into that run's failure; the caller would go on to the
        # next run, so the operator's stop would stop nothing
        raise RunInterrupted(f"{job} [{label}] was interrupted (run {result.run_id[:8]}, recorded as failed)")
    return JobRun(job, label, result.success, time.perf_counter() - started, result.run_id,
                  [] if result.success else step_failures(result), result, failed_checks(result))
