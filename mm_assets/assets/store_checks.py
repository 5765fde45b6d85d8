"""Asset checks evaluated per store partition: a store whose series all fall back turns its own check red.

Why not ``AssetCheckResult``: it is evaluated for the step's partition, and a run covers a *range* of stores (a
batch handed whole to the runner), so its result would belong to no store (the UI's Partition "—") and one red
store would hide behind the run. Each store gets its own ``AssetCheckEvaluation`` instead, emitted after the
materialization and pointing at that store's newest materialization, so Dagster keeps a status per store (the
check's Partitions tab, red where a store fails) and the check as a whole is red while any store is.

The asset must declare its checks as optional outputs (a ``multi_asset`` with ``can_subset=True``): the
evaluations are events, not outputs. Only the checks the run selected are evaluated.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping

import dagster as dg

# The evaluation's pointer at the materialization it judges; without it Dagster treats the evaluation as stale
# (not about the newest materialization) and shows the store as unchecked. Not exported by dagster's top level.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import group_backfill_policy, group_partitions
from mm_assets.checks.verdict import Verdict
from mm_assets.settings import Settings


def store_check(name: str, asset: str, settings: Settings, description: str) -> dg.AssetCheckSpec:
    """A check with one status per store partition of ``asset``.

    A partitioned check spec is a preview feature of Dagster 1.13; we rely on it deliberately (one status per
    store), so its notice is silenced here, where the spec is made, and nowhere else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Specifying a partitions_def on an AssetCheckSpec",
                                category=dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, partitions_def=group_partitions(settings),
                                 description=description)


def newest_materializations(context: dg.AssetExecutionContext, asset_key: dg.AssetKey, keys: list[str]) -> dict:
    """Per store partition of the asset: what its newest materialization is (one query for all of them)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(keys)), limit=4 * len(keys) + 10
    ).records
    out: dict = {}
    for record in records:  # newest first
        if record.partition_key not in out:
            out[record.partition_key] = AssetCheckEvaluationTargetMaterializationData(
                run_id=record.event_log_entry.run_id, storage_id=record.storage_id, timestamp=record.timestamp)
    return out


class _ChecksYieldedAsEvaluations(logging.Filter):
    """Drops Dagster's notice that the step "did not yield or return expected outputs" naming its checks: the
    checks are evaluated, as events (above), which that count of outputs does not see. Without it every run's log
    says the checks that passed or failed a line above were never produced."""

    NOTICE = "did not yield or return expected outputs"

    def filter(self, record: logging.LogRecord) -> bool:
        return self.NOTICE not in record.getMessage()


def evaluations(context: dg.AssetExecutionContext, checks: Mapping[str, Mapping[str, Verdict]],
                severity: Mapping[str, dg.AssetCheckSeverity] | None = None,
                asset_key: dg.AssetKey | None = None) -> Iterator[dg.AssetCheckEvaluation]:
    """One evaluation per check and store of ``checks`` ({check name: {store: verdict}}; severity ERROR unless
    ``severity`` says otherwise) of the step's asset (or ``asset_key`` of a multi-asset). Call after the asset's
    materialization has been yielded."""
    asset_key = asset_key or context.asset_key
    if not any(isinstance(f, _ChecksYieldedAsEvaluations) for f in context.log.filters):
        context.log.addFilter(_ChecksYieldedAsEvaluations())
    selected = {name: verdicts for name, verdicts in checks.items()
                if dg.AssetCheckKey(asset_key, name) in context.selected_asset_check_keys}
    stores = sorted({key for verdicts in selected.values() for key in verdicts})
    targets = newest_materializations(context, asset_key, stores) if stores else {}
    for name, verdicts in selected.items():
        failed = 0
        for key, verdict in verdicts.items():
            level = (dg.AssetCheckSeverity.WARN if verdict.warn_only
                     else (severity or {}).get(name, dg.AssetCheckSeverity.ERROR))
            if not verdict.passed:
                failed += 1
                if failed <= LOGGED_FAILURES:
                    _log_failed(context, name, key, level, verdict.description)
            yield dg.AssetCheckEvaluation(
                asset_key=asset_key, check_name=name, passed=bool(verdict.passed), partition=key,
                metadata={"store": key, **dagster_metadata(verdict.metadata)}, severity=level,
                description=verdict.note if verdict.passed else verdict.description,
                target_materialization_data=targets.get(key),
            )
        if failed > LOGGED_FAILURES:
            context.log.warning(f"check {name} [{failed - LOGGED_FAILURES:,} more store partitions{FAILED_CHECK_LINE}"
                                "the asset's checks list them")


LOGGED_FAILURES = 20  # the failed checks of a run said in its log (a warning or an error each), per check
FAILED_CHECK_LINE = "] did not pass: "  # in every such line (the command line prints them its own way)


def _log_failed(context: dg.AssetExecutionContext, name: str, key: str, level: dg.AssetCheckSeverity,
                description: str | None) -> None:
    """A failed check as a line of the run's log, at its severity: its evaluation event is logged at DEBUG, so a
    log filtered to warnings and errors showed a green run whose ERROR check had not passed."""
    text = (description or "").splitlines()[0] if description else ""
    line = f"check {name} [{key}{FAILED_CHECK_LINE}{text[:600]}{' ...' if len(text) > 600 else ''}"
    (context.log.error if level == dg.AssetCheckSeverity.ERROR else context.log.warning)(line)


def check_result(name: str, verdict: Verdict) -> dg.AssetCheckResult:
    """A verdict over a whole run (not per store) as the asset's check result; severity ERROR unless the verdict
    is ``warn_only``."""
    return dg.AssetCheckResult(
        check_name=name, passed=bool(verdict.passed), metadata=dagster_metadata(verdict.metadata),
        severity=dg.AssetCheckSeverity.WARN if verdict.warn_only else dg.AssetCheckSeverity.ERROR,
        description=verdict.note if verdict.passed else verdict.description)


def require_asset_selected(context: dg.AssetExecutionContext) -> None:
    """The checks are judged on what the asset's own run computes: a run of the checks alone has nothing to judge."""
    if not context.selected_asset_keys:
        raise dg.Failure(description=f"the checks of {context.op_def.name} are evaluated when it is materialized; "
                         "materialize the asset (its checks run with it)")


def store_asset(settings: Settings, spec: dg.AssetSpec, check_specs: list[dg.AssetCheckSpec]):
    """The decorator of an asset partitioned by store whose checks are judged per store: its runs cover a batch
    of stores (backfills in batches), and its checks are optional outputs (evaluations, see ``evaluations``)."""
    return dg.multi_asset(specs=[spec], partitions_def=group_partitions(settings),
                          backfill_policy=group_backfill_policy(settings), can_subset=True, check_specs=check_specs)
