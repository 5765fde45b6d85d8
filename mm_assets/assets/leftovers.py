"""Files a failed run left in the lake. A run deletes its ingest staging folder (``staging/raw_sales/<run>``)
and its model manifests (``manifests/<run>.parquet``, the gate's ``manifests/promote-<run>.parquet``) when it
ends, in a ``finally``; one that failed because the storage went away could not, and nothing removed them later
(58 staged files of one ingest stayed for good). The next ingest and the next scoring remove those of runs that
have ended, never of a run still in progress.
"""

from __future__ import annotations

import re

import dagster as dg

from mm_assets.lake import Lake

ENDED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")  # a Dagster run id ends the name


def remove_ended_runs_files(context: dg.AssetExecutionContext, lake: Lake, folder: str, suffix: str = "") -> int:
    """Delete the entries of ``folder`` named ``[prefix]<run id><suffix>`` (the gate's manifests are
    ``promote-<run id>.parquet``) whose run has ended or is no longer in the instance (deleted by run retention),
    but this run's own; an entry named otherwise is left alone. Returns how many were deleted."""
    removed = 0
    for name in lake.list(folder, suffix=suffix):
        found = RUN_ID.search(name[: len(name) - len(suffix)])
        if found is None or found.group() == context.run.run_id:
            continue
        run_id = found.group()
        run = context.instance.get_run_by_id(run_id)
        if run is not None and run.status not in ENDED:  # queued, starting or in progress: its own to delete
            continue
        lake.delete(folder, name, recursive=True)
        removed += 1
    if removed:
        context.log.info(f"removed {removed} leftover {'file' if removed == 1 else 'files'} of ended runs "
                         f"under {folder}/ (runs that failed before they could delete their own)")
    return removed
