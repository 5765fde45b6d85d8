"""The ``local`` runner: Azure ML parallel-job semantics in a process pool on this machine.

What it reproduces (see README › Runner fidelity):
- mini-batches formed by ``partition_keys`` (one series each), key values handed over as strings; entry
  scripts that take many series at once (``JobSpec.multi_series``: training, scoring) get up to
  ``series_per_minibatch`` series per mini-batch, and a mini-batch that raises is rerun one series per
  mini-batch (with retries), so a failure is still recorded for exactly the series that fails;
- ``init()`` once per worker process, ``run(mini_batch, context)`` per mini-batch, ``shutdown()`` at the end;
- ``max_concurrency`` worker processes;
- a per-mini-batch timeout (``mini_batch_timeout_s``) and ``max_retries`` retries of a failed or timed-out
  mini-batch;
- ``mini_batch_error_threshold``: the job fails once more mini-batches than that have failed (-1: never);
- append-row output: the rows every ``run`` returned, concatenated.

What it adds: a failed mini-batch is not only counted, it comes back as a failure row (ids, error type and
message, attempts) so the caller can record and surface it. Dispatch is paid per *task* (a slice of one
input file holding ``series_per_task`` series), not per series: a worker reads its file once.

This module does not import Dagster.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib
import multiprocessing as mp
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mm_assets.forecasting.threads import WORKER_THREADS_ENV, share_of_cores
from mm_assets.ids import series_key
from mm_assets.lake import Lake
from mm_assets.memory import release_freed
from mm_assets.parallel.contract import (
    JobResult,
    JobSpec,
    MiniBatchContext,
    ParallelJobError,
    exceeds_error_threshold,
    read_input,
)
from mm_assets.parallel.orphans import OWNER_ENV, exit_with_parent
from mm_assets.runs import group_slices, key_boundaries, runs_are_distinct


class MiniBatchTimeout(TimeoutError):
    pass


class WorkerError(RuntimeError):
    """An error a worker raised that cannot be sent back to the job as it is (an Azure SDK error keeps its
    traceback object, which does not pickle): its type and message, and the worker's traceback as text. Sent as
    it was, the run would fail with "TypeError: cannot pickle 'traceback' object" instead of the lake's error."""

    def __init__(self, message: str, worker_traceback: str = ""):
        super().__init__(message, worker_traceback)
        self.message, self.worker_traceback = message, worker_traceback

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class _Task:
    """Rows ``start:stop`` of one input file: whole series. ``series_starts``: where each of its series starts
    (file rows), as the plan found them, so a worker need not compare the ids of every row again; a task is
    the same task without them (a crashed one is named by its file and rows alone)."""

    file: str
    start: int
    stop: int
    series_starts: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def series_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Start and stop of each series within the task's rows, or None when the plan did not give them."""
        if not self.series_starts:
            return None
        starts = np.asarray(self.series_starts, dtype=np.int64) - self.start
        return starts, np.r_[starts[1:], self.stop - self.start]


# ---- worker side ----------------------------------------------------------------------------------------
_worker: dict[str, Any] = {}
INIT_ERROR_PREFIX = "init-error-"


def _on_alarm(signum, frame):
    raise MiniBatchTimeout("mini-batch exceeded mini_batch_timeout_s")


def _worker_init(spec: JobSpec, started_dir: str, threads: int = 1) -> None:
    exit_with_parent()  # the forkserver: it ends with the runner's process, and so does this worker
    # The job's environment is authoritative for MM_ASSETS_* variables: the forkserver that forks workers
    # outlives a job and may carry variables of an earlier one.
    for key in [k for k in os.environ if k.startswith("MM_ASSETS_") and k not in spec.environment]:
        del os.environ[key]
    os.environ.update(spec.environment)
    os.environ[WORKER_THREADS_ENV] = str(threads)  # this worker's share of the cores, for LightGBM's threads
    sys.argv = [spec.entry_script, *spec.arguments]
    signal.signal(signal.SIGALRM, _on_alarm)
    # The pool's processes are the parallelism: a BLAS thread pool in every worker would oversubscribe the cores
    # (threadpoolctl comes with scikit-learn)
    from threadpoolctl import threadpool_limits

    _worker["blas_limit"] = threadpool_limits(limits=1)
    try:
        module = importlib.import_module(spec.entry_script)
        module.init()
    except BaseException:
        # a worker that cannot start breaks the pool without running any task: leave the reason for the parent
        # written whole, then renamed: the parent never reads a half-written file (it lists them as workers die)
        final = os.path.join(started_dir, f"{INIT_ERROR_PREFIX}{os.getpid()}")
        tmp = os.path.join(started_dir, f".{INIT_ERROR_PREFIX}{os.getpid()}.tmp")
        with open(tmp, "w") as handle:
            handle.write(traceback.format_exc())
        os.replace(tmp, final)
        raise
    _worker.update(module=module, spec=spec, lake=Lake(spec.lake_uri), file=None, table=None,
                   started=os.path.join(started_dir, str(os.getpid())))
    shutdown = getattr(module, "shutdown", None)
    if shutdown is not None:  # pool workers skip atexit; multiprocessing finalizers do run at worker exit
        from multiprocessing.util import Finalize

        Finalize(None, shutdown, exitpriority=10)


def _read_slice(task: _Task) -> tuple[pa.Table, bool]:
    """The task's rows, and whether the worker keeps their file for its next task. A task that is its whole file
    (a global model's batch: gigabytes) is the only one of that file, so the file is not kept: the rows' Arrow
    memory is freed as soon as the task has them as a frame, not held beside it for the rest of the task."""
    if _worker["file"] == task.file:
        return _worker["table"].slice(task.start, task.stop - task.start), True
    lake: Lake = _worker["lake"]
    _worker["file"] = _worker["table"] = None  # the previous file is not needed any more
    table = read_input(lake, task.file)
    if task.start == 0 and task.stop == table.num_rows:
        return table, False
    _worker["table"], _worker["file"] = table, task.file
    return table.slice(task.start, task.stop - task.start), True


def _call(module, spec: JobSpec, batch: pd.DataFrame, context: MiniBatchContext, series: int) -> pd.DataFrame | None:
    """One ``run()`` under the mini-batch timeout (scaled by the series it holds)."""
    signal.setitimer(signal.ITIMER_REAL, spec.mini_batch_timeout_s * series)
    try:
        out = module.run(batch, context)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if out is not None and len(out):
        return out if isinstance(out, pd.DataFrame) else pd.DataFrame(out)
    return None


def _run_task_sent_back(task: _Task) -> tuple[list[pd.DataFrame], list[dict[str, Any]], int]:
    """``_run_task`` in a worker, whose error reaches the job whatever it is: one that does not pickle becomes a
    ``WorkerError`` with its type, message and traceback."""
    try:
        return _run_task(task)
    except Exception as exc:
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - whatever makes it unpicklable, the job gets its words
            raise WorkerError(f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))[-8000:]) \
                from None
        raise


def _run_task(task: _Task) -> tuple[list[pd.DataFrame], list[dict[str, Any]], int]:
    _mark_started(_worker["started"], task)
    spec: JobSpec = _worker["spec"]
    module = _worker["module"]
    keys = list(spec.partition_keys)
    table, kept = _read_slice(task)
    starts, stops = task.series_bounds() or key_boundaries(table, keys)
    frame = table.to_pandas()
    del table
    if not kept:  # the pools would keep the freed buffers for later reads: give them back
        release_freed()
    outputs: list[pd.DataFrame] = []
    failures: list[dict[str, Any]] = []
    per_batch = max(1, spec.series_per_minibatch) if spec.multi_series else 1
    groups = (frame[spec.group_column].to_numpy()[np.asarray(starts, dtype=np.int64)].astype(str)
              if spec.group_column and per_batch > 1 and len(starts) else None)
    single: list[int] = []  # series to run one per mini-batch
    for first, stop in group_slices(groups, len(starts), per_batch):
        last = stop - 1
        if per_batch == 1 or last == first:
            single.append(first)
            continue
        lo, hi = int(starts[first]), int(stops[last])
        context = MiniBatchContext(partition_key_value={}, minibatch_index=first,
                                   global_row_index_lower_bound=task.start + lo,
                                   series_rows=(starts[first:last + 1] - lo, stops[first:last + 1] - lo))
        try:
            out = _call(module, spec, frame.iloc[lo:hi].reset_index(drop=True), context, last - first + 1)
            if out is not None:
                outputs.append(out)
        except Exception:  # noqa: BLE001 - rerun its series one by one: each failure is then recorded per series
            single.extend(range(first, last + 1))
    for index in single:
        lo, hi = int(starts[index]), int(stops[index])
        batch = frame.iloc[lo:hi].reset_index(drop=True)
        values = {k: str(batch[k].iloc[0]) for k in keys}
        context = MiniBatchContext(partition_key_value=values, minibatch_index=index,
                                   global_row_index_lower_bound=task.start + lo)
        error: BaseException | None = None
        for _attempt in range(1, spec.max_retries + 2):
            try:
                out = _call(module, spec, batch, context, max(1, spec.series_per_key))
                if out is not None:
                    outputs.append(out)
                error = None
                break
            except Exception as exc:  # noqa: BLE001 - every error is recorded, none is lost
                error = exc
        if error is not None:
            failures.append(
                {
                    **values,
                    "series_key": series_key([values[k] for k in keys]),
                    "error_type": type(error).__name__,
                    "error_message": str(error)[:2000],
                    "traceback": "".join(traceback.format_exception(error))[-4000:],
                    "attempts": spec.max_retries + 1,
                }
            )
    return outputs, failures, len(starts)


# ---- parent side ----------------------------------------------------------------------------------------
def plan_tasks(
    lake: Lake, files: Sequence[str], keys: Sequence[str], series_per_task: int, min_tasks: int = 1,
    group_column: str | None = None,
) -> tuple[list[_Task], int]:
    """Slice every input file into tasks of whole series (files are sorted by the keys): at most
    ``series_per_task`` series each, and small enough that there are at least ``min_tasks`` tasks when there are
    that many series (a small job of slow models must still keep every worker busy); with ``group_column``, cut
    only between groups (``runs.group_slices``). A group is cut only past ``2 * series_per_task`` series, the
    memory bound, never to make tasks for idle workers: a store of 7 products scored as 4 tasks of 1-2 gave each
    product's global-model forecast the mean of one other product where training had read six (tuna: 1.7 x the
    same model's forecast of the whole store)."""
    bounds_of: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    total = 0
    for file in files:
        # ids as dictionaries: a file's few thousand distinct ids, not millions of strings, compared as codes
        ids = read_input(lake, file, columns=list(keys), read_dictionary=list(keys))
        if ids.num_rows == 0:
            continue
        starts, _ = key_boundaries(ids, list(keys))
        if not runs_are_distinct(ids, list(keys), starts):
            raise ValueError(f"{file}: rows are not grouped by {list(keys)}; sort the input by the keys")
        total += len(starts)
        groups = (ids.column(group_column).take(pa.array(starts)).cast(pa.string()).to_numpy(zero_copy_only=False)
                  if group_column else None)
        bounds_of.append((file, np.r_[starts, ids.num_rows], groups))
    size = max(1, min(series_per_task, -(-total // max(1, min_tasks))))
    tasks: list[_Task] = []
    for file, bounds, groups in bounds_of:
        for i, stop in group_slices(groups, len(bounds) - 1, size, largest=2 * max(1, series_per_task)):
            tasks.append(_Task(file, int(bounds[i]), int(bounds[stop]), tuple(bounds[i:stop].tolist())))
    return tasks, total


def _context(preload: Sequence[str] = ()):
    """Workers fork from one server process per Python process, started by its first job with these modules
    imported (a later job's ``preload`` only counts if it starts the server)."""
    ctx = mp.get_context("forkserver")
    os.environ[OWNER_ENV] = str(os.getpid())  # the server, started with this environment, ends with this process
    ctx.set_forkserver_preload(["mm_assets.parallel.forkserver_watch", "pandas", "numpy",
                                "mm_assets.forecasting.training", "mm_assets.lake", *preload])
    return ctx


def _pool(spec: JobSpec, workers: int, started_dir: str) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(spec.preload), initializer=_worker_init,
        initargs=(spec, started_dir, share_of_cores(workers))
    )


@contextlib.contextmanager
def _killed_on_interrupt(pool: cf.ProcessPoolExecutor):
    """Kill the pool's workers when the job is interrupted (a terminated Dagster run raises in the job's thread)
    or fails: the pool's own exit waits for the tasks running, and a global model's fit of minutes kept a
    terminated run CANCELING, and its worker busy, until it ended. Python 3.11's pool has no public way to stop a
    running task (``terminate_workers`` comes in 3.14), so its worker processes are killed."""
    try:
        yield
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        raise


def _mark_started(path: str, task: _Task) -> None:
    """Each worker keeps one small file naming the task it runs now, so that after a crash the parent can
    blame the tasks that were running (no shared lock: a killed worker cannot leave one held)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        handle.write(f"{task.file}\n{task.start}\n{task.stop}")
    os.replace(tmp, path)


def _started_tasks(started_dir: str) -> set[_Task]:
    tasks = set()
    for name in os.listdir(started_dir):
        if name.endswith(".tmp") or name.startswith(INIT_ERROR_PREFIX):
            continue
        try:
            file, start, stop = Path(started_dir, name).read_text().split("\n")
            tasks.add(_Task(file, int(start), int(stop)))
        except (OSError, ValueError):
            continue
    return tasks


def run_job(spec: JobSpec, on_progress: Callable[[int, int, int], None] | None = None) -> JobResult:
    """Run the whole job; raises ParallelJobError past the error threshold (with the partial result)."""
    started = time.perf_counter()
    lake = Lake(spec.lake_uri)
    cores = spec.max_concurrency or os.cpu_count() or 1
    tasks, total = plan_tasks(lake, spec.input_files, spec.partition_keys, spec.series_per_task, min_tasks=2 * cores,
                              group_column=spec.group_column)
    outputs: list[pd.DataFrame] = []
    failures: list[dict[str, Any]] = []
    done = 0
    aborted = False
    workers = max(1, min(spec.max_concurrency or os.cpu_count() or 1, len(tasks) or 1))
    pending = list(tasks)
    crashes: dict[_Task, int] = {}
    pool_breaks = 0
    # the directory goes whatever ends the job: an interrupt, a terminated run, an error
    with tempfile.TemporaryDirectory(prefix="mm-assets-runner-", ignore_cleanup_errors=True) as started_dir:
        stalled_rounds = 0  # rounds in which the pool broke before any task ran (a worker cannot even start)
        while pending and not aborted:
            retry: list[_Task] = []
            for name in os.listdir(started_dir):  # forget the previous round's starts
                os.remove(os.path.join(started_dir, name))
            # After a crash, tasks that may have caused it run one at a time, so the next crash names its task.
            round_workers = 1 if any(t in crashes for t in pending) else workers
            with _pool(spec, round_workers, started_dir) as pool, _killed_on_interrupt(pool):
                futures = {pool.submit(_run_task_sent_back, t): t for t in pending}
                finished: set[_Task] = set()
                suspects: set[_Task] | None = None
                for future in cf.as_completed(futures):
                    task = futures[future]
                    try:
                        out, fails, n = future.result()
                    except cf.process.BrokenProcessPool as exc:
                        # The pool fails every unfinished task; only those a worker had started can have crashed it.
                        if suspects is None:  # once per broken pool: a worker process died
                            suspects = _started_tasks(started_dir) - finished
                            pool_breaks += 1
                        if task in suspects:
                            crashes[task] = crashes.get(task, 0) + 1
                        if crashes.get(task, 0) <= spec.max_retries:
                            retry.append(task)
                            continue
                        fails = _crashed_task_failures(lake, task, spec, exc)
                        out, n = [], len(fails)
                    finished.add(task)
                    outputs.extend(out)
                    failures.extend(fails)
                    done += n
                    if on_progress is not None:
                        on_progress(done, total, len(failures))
                    if exceeds_error_threshold(len(failures), spec.mini_batch_error_threshold):
                        aborted = True
                        for f in futures:
                            f.cancel()
                        pool.shutdown(wait=True, cancel_futures=True)
                        break
            stalled_rounds = stalled_rounds + 1 if retry and not finished and not suspects else 0
            if stalled_rounds > spec.max_retries:
                reason = _init_error(started_dir)
                for task in retry:
                    lost = _crashed_task_failures(lake, task, spec, reason, error_type="WorkerInitFailed")
                    failures.extend(lost)
                    done += len(lost)
                retry = []
            pending = retry
    result = JobResult(
        rows=pd.concat(outputs, ignore_index=True) if outputs else pd.DataFrame(),
        failures=pd.DataFrame(failures),
        series_total=total,
        series_done=done,
        wall_seconds=time.perf_counter() - started,
        tasks=len(tasks),
        aborted=aborted,
        worker_crashes=pool_breaks,
    )
    if aborted:
        raise ParallelJobError(
            f"{len(failures)} failed mini-batches exceed mini_batch_error_threshold="
            f"{spec.mini_batch_error_threshold}; job stopped after {done} of {total} series",
            result,
        )
    return result


def _init_error(started_dir: str) -> str:
    """The last lines of the traceback a worker left when its init() failed."""
    for name in sorted(os.listdir(started_dir)):
        if name.startswith(INIT_ERROR_PREFIX):
            text = Path(started_dir, name).read_text().strip().splitlines()
            return " | ".join(text[-3:])[-1500:]
    return "worker processes could not start"


def _crashed_task_failures(
    lake: Lake, task: _Task, spec: JobSpec, exc: BaseException | str, error_type: str = "WorkerCrashed"
) -> list[dict[str, Any]]:
    """A task whose worker process died every time (or could not start): each of its series is failed."""
    ids = pq.read_table(lake.path(task.file), columns=list(spec.partition_keys), filesystem=lake.fs)
    frame = ids.slice(task.start, task.stop - task.start).to_pandas().drop_duplicates()
    keys = list(spec.partition_keys)
    return [
        {
            **{k: str(row[k]) for k in keys},
            "series_key": series_key([str(row[k]) for k in keys]),
            "error_type": error_type,
            "error_message": (
                f"worker process died while running this task ({exc})" if error_type == "WorkerCrashed"
                else f"the entry script's init() failed in every worker: {exc}"
            ),
            "traceback": "",
            "attempts": spec.max_retries + 1,
        }
        for _, row in frame.iterrows()
    ]
