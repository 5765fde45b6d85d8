"""Tests of the local runner: Azure ML parallel-job semantics reproduced in a forkserver process pool.

The entry scripts the workers import live in ``fake_entries`` (a module: the workers import it by name); each
behaviour (fail, flaky, hang, crash) is switched on per series through ``JobSpec.environment``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_assets.lake import Lake
from mm_assets.parallel import local_runner
from mm_assets.parallel.contract import JobSpec, ParallelJobError
from mm_assets.parallel.local_runner import plan_tasks, run_job
from mm_assets_tests.parallel.fake_entries import events

FAKE = "mm_assets_tests.parallel.fake_entries"
KEYS = ["store", "item"]


def write_series(lake: Lake, name: str, series: list[tuple[int, int, int]], int_ids: bool = True) -> str:
    """One Parquet file of series (store, item, n_rows), sorted by the keys; returns its lake path."""
    parts = []
    for store, item, n in series:
        parts.append(
            pd.DataFrame(
                {
                    "store": store if int_ids else f"S{store}",
                    "item": item if int_ids else f"I{item}",
                    "ds": pd.date_range("2024-01-01", periods=n, freq="D"),
                    "y": np.arange(n, dtype=float),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    if int_ids:
        frame = frame.astype({"store": "int64", "item": "int64"})
    lake.write_parquet(frame, "datasets", f"{name}.parquet")
    return f"datasets/{name}.parquet"


def spec(lake: Lake, files: list[str], state_dir, env: dict[str, str] | None = None, **kw) -> JobSpec:
    environment = {"FAKE_STATE_DIR": str(state_dir), **(env or {})}
    defaults = dict(max_concurrency=2, mini_batch_timeout_s=30.0, max_retries=0, series_per_task=2)
    defaults.update(kw)
    return JobSpec(
        entry_script=FAKE,
        arguments=["--tag", "t1"],
        lake_uri=lake.uri,
        input_files=files,
        partition_keys=KEYS,
        environment=environment,
        **defaults,
    )


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def state(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    return folder


def series_names(n_stores: int, n_items: int, first_rows: int = 3) -> list[tuple[int, int, int]]:
    out = []
    for s in range(1, n_stores + 1):
        for i in range(1, n_items + 1):
            out.append((s, i * 10, first_rows + len(out)))
    return out


# ---- planning (no pool) ---------------------------------------------------------------------------------
def test_plan_tasks_slices_whole_series(lake):
    f1 = write_series(lake, "a", [(1, 10, 3), (1, 20, 4), (1, 30, 5)])
    f2 = write_series(lake, "b", [(2, 10, 6), (2, 20, 7)])
    tasks, total = plan_tasks(lake, [f1, f2], KEYS, series_per_task=2)
    assert total == 5
    assert [(t.file, t.start, t.stop) for t in tasks] == [(f1, 0, 7), (f1, 7, 12), (f2, 0, 13)]


def test_a_task_carries_where_its_series_start_and_is_the_same_task_without_them(lake):
    """The plan's series bounds go with each task (a worker does not compare every row's ids again); they equal
    the bounds found in the task's own rows, and a task named by its file and rows alone (after a crash) is the
    same task."""
    from mm_assets.parallel.local_runner import _Task
    from mm_assets.runs import key_boundaries

    f1 = write_series(lake, "a", [(1, 10, 3), (1, 20, 4), (1, 30, 5), (2, 10, 2)])
    tasks, _ = plan_tasks(lake, [f1], KEYS, series_per_task=3)
    rows = lake.read_table(f1)
    for task in tasks:
        starts, stops = task.series_bounds()
        expected = key_boundaries(rows.slice(task.start, task.stop - task.start), KEYS)
        assert starts.tolist() == expected[0].tolist() and stops.tolist() == expected[1].tolist()
        bare = _Task(task.file, task.start, task.stop)
        assert bare == task and hash(bare) == hash(task) and bare.series_bounds() is None
    assert [len(t.series_starts) for t in tasks] == [3, 1]


def test_a_worker_keeps_a_file_for_its_next_task_but_not_one_its_task_took_whole(lake, monkeypatch):
    """Tasks of one file share its table (read once); a task that is its whole file (a global model's batch)
    is that file's only task, so its table is not kept beside the frame the task makes of it."""
    from mm_assets.parallel.local_runner import _read_slice, _Task

    f1 = write_series(lake, "a", [(1, 10, 3), (1, 20, 4), (1, 30, 5)])
    f2 = write_series(lake, "b", [(2, 10, 6), (2, 20, 7)])
    monkeypatch.setattr(local_runner, "_worker", {"lake": lake, "file": None, "table": None})
    worker = local_runner._worker
    rows, kept = _read_slice(_Task(f1, 0, 7))
    assert kept and worker["file"] == f1 and worker["table"].num_rows == 12 and rows.num_rows == 7
    cached = worker["table"]
    rows, kept = _read_slice(_Task(f1, 7, 12))
    assert kept and worker["table"] is cached and rows.column("y").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    rows, kept = _read_slice(_Task(f2, 0, 13))
    assert not kept and worker["table"] is None and worker["file"] is None and rows.num_rows == 13
    rows, kept = _read_slice(_Task(f1, 0, 12))  # read again, whole: not kept either
    assert not kept and worker["table"] is None and rows.num_rows == 12


def test_plan_tasks_makes_enough_tasks_to_keep_every_worker_busy(lake):
    files = [write_series(lake, "a", series_names(1, 5)), write_series(lake, "b", series_names(1, 3))]
    tasks, total = plan_tasks(lake, files, KEYS, series_per_task=250, min_tasks=4)
    assert total == 8 and len(tasks) >= 4
    assert sum(t.stop - t.start for t in tasks) == sum(len(lake.read_parquet(f)) for f in files)
    big, _ = plan_tasks(lake, files, KEYS, series_per_task=250)
    assert len(big) == 2  # one task per file when one task may hold every series


def test_plan_tasks_rejects_file_not_grouped_by_keys(lake):
    frame = pd.DataFrame({"store": ["1", "1", "1"], "item": ["10", "20", "10"], "y": [1.0, 2.0, 3.0]})
    lake.write_parquet(frame, "datasets", "bad.parquet")
    with pytest.raises(ValueError, match=r"not grouped by \['store', 'item'\]"):
        plan_tasks(lake, ["datasets/bad.parquet"], KEYS, series_per_task=10)


def test_run_job_rejects_unsorted_input_before_starting_workers(lake, state):
    frame = pd.DataFrame({"store": [1, 2, 1], "item": [10, 10, 10], "y": [1.0, 2.0, 3.0]})
    lake.write_parquet(frame, "datasets", "bad.parquet")
    with pytest.raises(ValueError, match="sort the input by the keys"):
        run_job(spec(lake, ["datasets/bad.parquet"], state))
    assert events(state, "init") == []  # no worker was started


# ---- the happy path ---------------------------------------------------------------------------------------
def test_every_series_runs_once_as_its_own_mini_batch_with_string_keys(lake, state):
    s1 = series_names(2, 3)  # stores 1, 2; 6 series
    s2 = [(3, 10, 4), (3, 20, 5), (4, 10, 6)]
    files = [write_series(lake, "p1", s1), write_series(lake, "p2", s2)]
    assert pq.read_schema(lake.path(files[0])).field("store").type == pa.int64()
    progress: list[tuple[int, int, int]] = []

    result = run_job(spec(lake, files, state, series_per_task=4), on_progress=lambda *a: progress.append(a))

    rows = result.rows.sort_values("series_key", ignore_index=True)
    expected = {f"{s}/{i}": n for s, i, n in [*s1, *s2]}
    assert sorted(rows["series_key"]) == sorted(expected)  # every series once, none twice
    assert result.series_total == result.series_done == len(expected) == 9
    assert result.tasks == 2 + 1  # p1: 6 series / 4 per task, p2: 3 series
    assert result.failures.empty
    assert (rows["distinct_series"] == 1).all()  # a mini-batch is one series
    assert dict(zip(rows["series_key"], rows["rows"])) == expected  # ... and all of its rows
    assert set(rows["key_types"]) == {"str,str"}  # int ids arrive as strings
    assert set(rows["key_store"]) == {"1", "2", "3", "4"}
    assert set(rows["tag"]) == {"t1"}  # job arguments reached init() through sys.argv
    assert progress and progress[-1] == (9, 9, 0)
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)  # monotone
    # init() once per worker process, in workers only
    inits = events(state, "init")
    assert len(inits) == len(set(inits))
    assert set(rows["pid"]) <= {int(p) for p in inits}
    assert os.getpid() not in set(rows["pid"])


def test_max_concurrency_bounds_the_worker_processes(lake, state, monkeypatch):
    # pretend the machine is large, so ignoring max_concurrency would start many workers
    monkeypatch.setattr(local_runner.os, "cpu_count", lambda: 8)
    files = [write_series(lake, "p", series_names(2, 4))]
    result = run_job(spec(lake, files, state, {"FAKE_SLEEP_S": "0.15"}, max_concurrency=2, series_per_task=1))
    assert len(result.rows) == 8
    pids = set(result.rows["pid"])
    print("worker pids:", pids)
    assert 1 <= len(pids) <= 2
    assert len(events(state, "init")) <= 2


def test_each_worker_gets_its_share_of_the_cores_for_model_threads(lake, state, monkeypatch):
    """LightGBM's threads in every worker at the machine's core count would oversubscribe the cores."""
    from mm_assets.forecasting.threads import WORKER_THREADS_ENV, share_of_cores, worker_threads

    monkeypatch.setenv(WORKER_THREADS_ENV, "99")  # a stale value in the parent is not what workers get
    files = [write_series(lake, "p", series_names(2, 2))]
    result = run_job(spec(lake, files, state, max_concurrency=2, series_per_task=1))
    assert set(result.rows["threads"]) == {str(share_of_cores(2))}
    assert worker_threads() == 99  # the parent's own setting is its own
    monkeypatch.setenv(WORKER_THREADS_ENV, "zero")
    assert worker_threads() >= 1  # unreadable: every core this process may use


def test_shutdown_runs_once_in_every_worker_that_ran_init(lake, state):
    files = [write_series(lake, "p", series_names(1, 4))]
    result = run_job(spec(lake, files, state, series_per_task=1))
    assert len(result.rows) == 4
    inits = events(state, "init")
    assert inits  # workers started
    assert events(state, "shutdown") == inits  # contract: shutdown() when the worker stops


# ---- failures -----------------------------------------------------------------------------------------
def test_timeout_fails_the_series_after_all_retries_and_others_complete(lake, state):
    files = [write_series(lake, "p", [(1, 10, 3), (1, 20, 4), (1, 30, 5)])]
    job = spec(lake, files, state, {"FAKE_HANG": "1/20"}, mini_batch_timeout_s=0.3, max_retries=1,
               series_per_task=3)
    result = run_job(job)
    assert sorted(result.rows["series_key"]) == ["1/10", "1/30"]
    assert len(result.failures) == 1
    fail = result.failures.iloc[0]
    assert fail["series_key"] == "1/20"
    assert (fail["store"], fail["item"]) == ("1", "20")
    assert fail["error_type"] == "MiniBatchTimeout"
    assert fail["attempts"] == 2
    assert events(state, "attempt").count("1/20") == 2  # really tried max_retries + 1 times
    assert result.wall_seconds < 20  # the hang (30 s) was cut by the timeout


def test_retry_makes_a_flaky_series_succeed(lake, state):
    files = [write_series(lake, "p", [(1, 10, 3), (1, 20, 4)])]
    result = run_job(spec(lake, files, state, {"FAKE_FLAKY": "1/20"}, max_retries=1))
    assert result.failures.empty
    assert sorted(result.rows["series_key"]) == ["1/10", "1/20"]
    attempts = events(state, "attempt")
    assert attempts.count("1/20") == 2 and attempts.count("1/10") == 1


def test_failing_series_is_recorded_and_does_not_stop_the_others(lake, state):
    files = [write_series(lake, "p", series_names(2, 3))]  # 6 series
    progress: list[tuple[int, int, int]] = []
    job = spec(lake, files, state, {"FAKE_FAIL": "1/20,2/30"}, max_retries=2, mini_batch_error_threshold=-1)
    result = run_job(job, on_progress=lambda *a: progress.append(a))  # -1: never raises
    assert not result.aborted
    assert sorted(result.rows["series_key"]) == ["1/10", "1/30", "2/10", "2/20"]
    failures = result.failures.sort_values("series_key", ignore_index=True)
    assert list(failures["series_key"]) == ["1/20", "2/30"]
    assert set(failures["error_type"]) == {"ValueError"}
    assert list(failures["error_message"]) == ["boom in 1/20", "boom in 2/30"]
    assert (failures["attempts"] == 3).all()
    assert failures["traceback"].str.contains("boom in").all()
    assert events(state, "attempt").count("1/20") == 3
    assert result.series_done == result.series_total == 6
    assert progress[-1] == (6, 6, 2)


def test_multi_series_minibatches_rerun_a_failing_one_series_by_series(lake, state):
    files = [write_series(lake, "p", series_names(2, 3))]  # 6 series, one task
    job = spec(lake, files, state, {"FAKE_FAIL": "1/20"}, max_retries=1, series_per_task=6,
               multi_series=True, series_per_minibatch=3, max_concurrency=1)  # two tasks of 3 series
    result = run_job(job)
    rows = result.rows.set_index("series_key").sort_index()
    assert list(rows.index) == ["1/10", "1/30", "2/10", "2/20", "2/30"]
    # store 2's three series ran as one mini-batch; store 1's batch failed and its series ran one by one
    assert list(rows.loc[["2/10", "2/20", "2/30"], "distinct_series"]) == [3, 3, 3]
    assert rows.loc[["2/10", "2/20", "2/30"], "series_rows_told"].all()  # the entry need not compare ids again
    assert list(rows.loc[["1/10", "1/30"], "distinct_series"]) == [1, 1]
    assert events(state, "batch") == ["1/10,1/20,1/30", "2/10,2/20,2/30"]
    assert list(result.failures["series_key"]) == ["1/20"]
    assert result.failures.iloc[0]["attempts"] == 2
    assert events(state, "attempt").count("1/20") == 2
    assert result.series_done == result.series_total == 6


def test_multi_series_is_ignored_unless_the_spec_asks_for_it(lake, state):
    files = [write_series(lake, "p", series_names(1, 4))]
    result = run_job(spec(lake, files, state, series_per_task=4, series_per_minibatch=4))
    assert (result.rows["distinct_series"] == 1).all() and len(result.rows) == 4
    assert events(state, "batch") == []


def test_error_threshold_zero_stops_the_job_with_the_partial_result(lake, state):
    files = [write_series(lake, "p", series_names(2, 4))]  # 8 series, first one fails
    job = spec(lake, files, state, {"FAKE_FAIL": "1/10", "FAKE_SLEEP_S": "0.3"}, series_per_task=1,
               mini_batch_error_threshold=0)
    with pytest.raises(ParallelJobError, match="mini_batch_error_threshold=0") as info:
        run_job(job)
    partial = info.value.result
    assert partial.aborted
    assert list(partial.failures["series_key"]) == ["1/10"]
    assert partial.series_total == 8
    assert partial.series_done < partial.series_total  # it stopped early
    assert len(partial.rows) == partial.series_done - 1  # rows of every series counted as done


def test_error_threshold_tolerates_up_to_its_value(lake, state):
    files = [write_series(lake, "p", series_names(1, 4))]
    job = spec(lake, files, state, {"FAKE_FAIL": "1/10,1/30"}, mini_batch_error_threshold=2)
    result = run_job(job)  # 2 failures, threshold 2: no exception
    assert not result.aborted
    assert len(result.failures) == 2 and len(result.rows) == 2


def test_crashing_worker_fails_only_its_task_and_other_tasks_complete(lake, state):
    # tasks of 2 series: [1/10 crashes, 1/20], [2/10, 2/20], [3/10, 3/20]
    files = [write_series(lake, "p", series_names(3, 2))]
    job = spec(lake, files, state, {"FAKE_CRASH": "1/10", "FAKE_SLEEP_S": "0.2"}, max_retries=1,
               series_per_task=2, max_concurrency=2)
    result = run_job(job)
    failures = result.failures.sort_values("series_key", ignore_index=True)
    print(failures[["series_key", "error_type"]] if not failures.empty else "no failures")
    assert list(failures["series_key"]) == ["1/10", "1/20"]
    assert set(failures["error_type"]) == {"WorkerCrashed"}
    assert (failures["attempts"] == 2).all()
    assert list(failures["store"]) == ["1", "1"]
    assert sorted(result.rows["series_key"]) == ["2/10", "2/20", "3/10", "3/20"]
    assert result.series_done == result.series_total == 6
    assert events(state, "attempt").count("1/10") == 2  # the crashing task was retried once
    assert result.worker_crashes == 2  # counted, so that the run can say a worker died


def test_init_failing_in_every_worker_fails_the_series_instead_of_looping(lake, state):
    files = [write_series(lake, "p", series_names(2, 2))]
    job = spec(lake, files, state, {"FAKE_INIT_FAIL": "1"}, max_retries=1)
    started = time.perf_counter()
    result = run_job(job)
    assert time.perf_counter() - started < 60
    assert len(result.failures) == 4 and result.rows.empty
    assert set(result.failures["error_type"]) == {"WorkerInitFailed"}
    assert result.failures["error_message"].str.contains("cannot reach the model store").all()
    assert result.series_done == result.series_total == 4


def test_an_interrupted_job_leaves_no_working_directory_behind(lake, state, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(local_runner.tempfile, "tempdir", str(scratch))  # where mkdtemp puts the job's directory
    files = [write_series(lake, "p", series_names(2, 2))]

    def interrupt(*_):
        raise KeyboardInterrupt  # what a terminated Dagster run raises in the job's thread

    def left() -> list:  # multiprocessing's own pymp-* directory goes when the process ends
        return list(scratch.glob("mm-assets-runner-*"))

    with pytest.raises(KeyboardInterrupt):
        run_job(spec(lake, files, state, series_per_task=1), on_progress=interrupt)
    assert left() == []
    run_job(spec(lake, files, state, series_per_task=1))  # and a job that ends as usual
    assert left() == []


def test_an_interrupted_job_kills_its_running_tasks_rather_than_waiting_for_them(lake, state):
    """A terminated run stops its job at once: the task still running (a global model's fit of minutes, here a
    mini-batch that sleeps 30 s) is killed with its worker, not waited for, which kept the run CANCELING."""
    files = [write_series(lake, "p", [(1, 1, 5), (1, 2, 5)])]

    def interrupt(*_):
        # once the hung task runs (the other one is done: a worker may have started it after its own, or a second
        # worker may not be up yet, which made the count of workers a race), as a terminated Dagster run raises
        # in the job's thread
        deadline = time.time() + 10
        while "1/2" not in events(state, "attempt") and time.time() < deadline:
            time.sleep(0.05)
        raise KeyboardInterrupt

    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_job(spec(lake, files, state, {"FAKE_HANG": "1/2"}, series_per_task=1, mini_batch_timeout_s=120.0),
                on_progress=interrupt)
    assert time.perf_counter() - started < 20  # the hung task alone would take 30 s
    assert "1/2" in events(state, "attempt")  # it was running when the job was interrupted
    workers = [int(pid) for pid in events(state, "init")]
    assert 1 <= len(workers) <= 2
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in workers):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)


def test_a_group_column_keeps_each_store_in_one_task_and_one_mini_batch(lake, state):
    sizes = {1: 3, 2: 2, 3: 4}
    series = [(s, i * 10, 3 + i) for s, n in sizes.items() for i in range(1, n + 1)]
    files = [write_series(lake, "p", series)]

    def stores_per_task(group_column):
        tasks, _ = plan_tasks(lake, files, KEYS, 2, group_column=group_column)
        frame = pq.read_table(lake.path(files[0])).to_pandas()
        return [set(frame["store"].iloc[t.start:t.stop]) for t in tasks]

    plain = stores_per_task(None)
    assert any(sum(s in task for task in plain) > 1 for s in sizes)  # without: a store over two tasks
    grouped = stores_per_task("store")
    assert [len(task) for task in grouped] == [1, 1, 1] and sorted(min(t) for t in grouped) == [1, 2, 3]
    result = run_job(spec(lake, files, state, series_per_task=2, multi_series=True, series_per_minibatch=2,
                          max_concurrency=1, group_column="store"))
    assert sorted(events(state, "batch")) == ["1/10,1/20,1/30", "2/10,2/20", "3/10,3/20,3/30,3/40"]
    assert result.series_done == result.series_total == 9


def test_a_store_is_not_cut_to_keep_workers_busy(lake, state):
    """Workers are kept busy by smaller tasks, but not by cutting a store: its global-model forecasts read the
    store's other products (one store of 7 was scored as 4 tasks of 1-2 series). A store is cut only past the
    memory bound, twice ``series_per_task``."""
    files = [write_series(lake, "one", [(1, i, 3) for i in range(1, 8)])]
    tasks, total = plan_tasks(lake, files, KEYS, 250, min_tasks=4, group_column="store")
    assert total == 7 and [(t.start, t.stop) for t in tasks] == [(0, 21)]
    assert len(plan_tasks(lake, files, KEYS, 250, min_tasks=4)[0]) == 4  # without a group: still 4 tasks
    assert len(plan_tasks(lake, files, KEYS, 4, min_tasks=4, group_column="store")[0]) == 1  # 7 <= 2 x 4
    assert len(plan_tasks(lake, files, KEYS, 3, min_tasks=4, group_column="store")[0]) == 4  # 7 > 2 x 3: cut
    result = run_job(spec(lake, files, state, series_per_task=250, multi_series=True, series_per_minibatch=250,
                          group_column="store"))
    assert events(state, "batch") == [",".join(f"1/{i}" for i in range(1, 8))]
    assert result.series_done == result.series_total == 7


def test_group_slices_cut_only_between_groups():
    from mm_assets.runs import group_slices

    groups = np.array(["a", "a", "a", "b", "c", "c", "d"])
    assert group_slices(groups, 7, 2) == [(0, 3), (3, 4), (4, 6), (6, 7)]
    assert group_slices(groups, 7, 1) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (6, 7)]  # "a" > 2 x 1: cut
    assert group_slices(np.array(["a"] * 7), 7, 2, largest=7) == [(0, 7)]
    assert group_slices(groups, 7, 4) == [(0, 4), (4, 7)]
    assert group_slices(None, 5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert group_slices(groups[:0], 0, 3) == []


def test_jobs_that_forecast_with_a_global_model_keep_stores_whole():
    from mm_assets.parallel.contract import group_column
    from mm_assets.settings import Settings

    assert group_column(Settings(model={"type": "lightgbm"})) == "store"
    assert group_column(Settings(model={"type": "linear"})) is None  # per-series models: any split
    assert group_column(Settings(model={"type": "lightgbm"}, columns={"ids": ["sku"], "timestamp": "date",
                                                                        "target": "sales", "regressors": []},
                                 partition={"column": "sku"})) is None


def test_a_killed_runner_leaves_no_forkserver_or_worker_behind(lake, state, tmp_path):
    """``kill -9`` of the process running a job (``mm-assets cycle``): its forkserver and its workers, busy in a
    mini-batch, end within seconds instead of running on under init (unregistered bundles, hundreds of MB each)."""
    import contextlib
    import pickle
    import signal
    import subprocess
    import sys
    import textwrap

    import psutil

    job = spec(lake, [write_series(lake, "a", [(1, 1, 5), (1, 2, 5)])], state, env={"FAKE_HANG": "1/1,1/2"},
               mini_batch_timeout_s=120.0, series_per_task=1)
    (tmp_path / "job.pkl").write_bytes(pickle.dumps(job))
    script = textwrap.dedent(f"""
        import pickle
        from mm_assets.parallel.local_runner import run_job
        run_job(pickle.loads(open({str(tmp_path / 'job.pkl')!r}, 'rb').read()))
    """)
    runner = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while len(list(state.glob("attempt.*"))) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers = [psutil.Process(int(p.name.split(".")[1])) for p in state.glob("attempt.*")]
        assert len(workers) == 2, "the workers never started their mini-batches"
        server = psutil.Process(workers[0].ppid())
        assert server.ppid() == runner.pid  # the forkserver, started by the runner's process
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        _, alive = psutil.wait_procs([server, *workers], timeout=10)
        assert not alive, f"still running after the runner was killed: {[p.pid for p in alive]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            runner.kill()


class _HoldsItsTraceback(Exception):
    """Like the Azure SDK's ServiceRequestError: keeps the traceback object of the error it wraps (no pickling)."""

    def __init__(self, message: str):
        super().__init__(message)
        try:
            raise OSError("Cannot connect to host 127.0.0.1:10100")
        except OSError as inner:
            self.exc_traceback = inner.__traceback__


def test_a_worker_error_that_does_not_pickle_reaches_the_job_with_its_words(monkeypatch):
    """A lake that went away mid-run failed the run with "TypeError: cannot pickle 'traceback' object" (the
    worker's Azure error could not be sent back): the job now gets its type, message and traceback."""
    import pickle

    from mm_assets.parallel import local_runner

    def lake_gone(task):
        raise _HoldsItsTraceback("Cannot connect to host 127.0.0.1:10100 ssl:default [Connect call failed]")

    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(_HoldsItsTraceback("x"))
    monkeypatch.setattr(local_runner, "_run_task", lake_gone)
    with pytest.raises(local_runner.WorkerError) as err:
        local_runner._run_task_sent_back(None)
    sent = pickle.loads(pickle.dumps(err.value))  # what the pool sends back
    assert str(sent) == "_HoldsItsTraceback: Cannot connect to host 127.0.0.1:10100 ssl:default [Connect call failed]"
    assert "lake_gone" in sent.worker_traceback

    def plain(task):
        raise ValueError("a plain error")

    monkeypatch.setattr(local_runner, "_run_task", plain)
    with pytest.raises(ValueError, match="a plain error"):  # one that pickles goes as it is
        local_runner._run_task_sent_back(None)
