"""Files of runs that failed before they could delete their own are removed by the next run, never a live run's."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import dagster as dg

from mm_assets.assets.leftovers import remove_ended_runs_files
from mm_assets.lake import Lake


def test_the_files_of_ended_or_deleted_runs_go_and_those_of_runs_in_progress_stay(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    with dg.instance_for_test() as instance:
        ended = instance.add_run(dg.DagsterRun(job_name="promote_job", status=dg.DagsterRunStatus.FAILURE)).run_id
        live = instance.add_run(dg.DagsterRun(job_name="promote_job", status=dg.DagsterRunStatus.STARTED)).run_id
        own = instance.add_run(dg.DagsterRun(job_name="promote_job", status=dg.DagsterRunStatus.STARTED)).run_id
        gone = str(uuid.uuid4())  # deleted from the instance by run retention
        for name in (f"{ended}.parquet", f"promote-{ended}.parquet", f"{gone}.parquet", f"{live}.parquet",
                     f"promote-{live}.parquet", f"{own}.parquet", "by-hand.parquet"):
            lake.write_bytes(b"x", "manifests", name)
        lake.write_bytes(b"x", "staging", "raw_sales", ended, "2025-01-06.parquet")
        lake.write_bytes(b"x", "staging", "raw_sales", live, "2025-01-06.parquet")
        said: list[str] = []
        context = SimpleNamespace(run=SimpleNamespace(run_id=own), instance=instance,
                                  log=SimpleNamespace(info=said.append))
        assert remove_ended_runs_files(context, lake, "manifests", ".parquet") == 3
        assert lake.list("manifests") == sorted([f"{live}.parquet", f"promote-{live}.parquet", f"{own}.parquet",
                                                 "by-hand.parquet"])
        assert remove_ended_runs_files(context, lake, "staging/raw_sales") == 1
        assert lake.list("staging", "raw_sales") == [live]
        assert said and "removed 3 leftover files of ended runs under manifests/" in said[0]
        assert remove_ended_runs_files(context, lake, "manifests", ".parquet") == 0  # nothing more to remove
