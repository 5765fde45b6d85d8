"""production_models: the promotion gate, per store partition.

Challengers (latest trained model of each series) are judged by the promotion entry script through the
runner; promoted models' bytes are copied into the production area of the lake and registered as champions in
the production registry, together with every decision and its reason, in one transaction. This asset is the
only code that opens the production registry for writing.
"""

import dagster as dg
import pandas as pd

from mm_assets.assets.fanout import ids_json, record_failures, run_fanout, with_partition_keys
from mm_assets.assets.partitions import CYCLE_GROUP, step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.store_checks import Verdict, evaluations, require_asset_selected, store_asset, store_check
from mm_assets.parallel.contract import PROMOTE_ENTRY
from mm_assets.registry.gate import Healing, apply_decisions, gate_counts, not_retrained, promotion_manifest
from mm_assets.registry.model_registry import retention_cutoff
from mm_assets.resources import (
    LakeResource,
    ProductionRegistryResource,
    RegistryResource,
    RunnerResource,
)
from mm_assets.settings import Settings


def healing_check(healing: Healing) -> dg.AssetCheckResult:
    """The champions_loadable check of one gate run."""
    broken = len(healing.replaced) + len(healing.restored) + len(healing.unhealed)
    severity = dg.AssetCheckSeverity.ERROR if healing.unhealed else dg.AssetCheckSeverity.WARN
    examples = [f"{key}: {why}" for key, why in list(healing.unhealed.items())[:10]]
    return dg.AssetCheckResult(
        check_name="champions_loadable", passed=broken == 0, severity=severity,
        description=None if broken == 0 else (
            f"{broken} champions could not be loaded: {len(healing.replaced)} replaced by a passing challenger, "
            f"{len(healing.restored)} restored from the training registry, {len(healing.unhealed)} not healed "
            "(served by the baseline until a challenger passes; retrain the series)"),
        metadata={"unloadable": broken, "replaced": len(healing.replaced), "restored": len(healing.restored),
                  "not_healed": len(healing.unhealed), "not_healed_examples": dg.MetadataValue.json(examples)},
    )


ON_BASELINE_ROWS = 20


def on_baseline_table(decided: pd.DataFrame, current: pd.DataFrame, key: str) -> dg.MetadataValue:
    """The store's series served by their baseline after the gate (no champion), each with the gate's reason: the
    counts say how many, this says which and why (the first ``ON_BASELINE_ROWS``)."""
    champions = set(current.loc[current["partition_key"] == key, "series_key"]) if len(current) else set()
    part = decided[(decided["partition_key"] == key) & ~decided["series_key"].isin(champions)] if len(decided) \
        else decided
    if not len(part):
        return dg.MetadataValue.md("every series of the store is served by a champion")
    lines = ["| series | why the baseline serves it |", "|---|---|"]
    lines += [f"| {k} | {str(r).replace('|', '/')} |" for k, r in
              zip(part["series_key"][:ON_BASELINE_ROWS], part["reason"][:ON_BASELINE_ROWS])]
    more = len(part) - ON_BASELINE_ROWS
    return dg.MetadataValue.md("\n".join(lines) + (f"\n\n… and {more} more (promotion_decisions)" if more > 0 else ""))


def _why_baseline(c: dict) -> str:
    """Why a store's series are on their baseline: too short for a model (or fell back), or beaten by it."""
    short = min(c.get("fallback", 0), c["served_by_baseline"])
    beaten = c["served_by_baseline"] - short
    parts = ([f"{short} too short for the model or fell back (status fallback in model_metrics, with the reason)"]
             if short else []) + ([f"{beaten} whose challengers do not beat the baseline"] if beaten else [])
    return ", ".join(parts) or "no challenger passed the gate"


# fewer series than this: a store's share on the baseline is a warning, not an error (one series of one is 100 %)
FEW_SERIES = 3


def served_by_model(counts: dict, max_share: float) -> dict[str, Verdict]:
    """Per store: at most ``max_share`` of its series served by their baseline (no champion); a store of fewer
    than ``FEW_SERIES`` series fails it as a warning (its share says little of the models: found on 88 accounts of
    one series each, where three stores turned red for one series whose challenger did not beat its baseline)."""
    out = {}
    for key, c in counts.items():
        share = c["served_by_baseline_share"]
        few = c["series"] < FEW_SERIES
        out[key] = Verdict(
            passed=share <= max_share, warn_only=few,
            metadata={"served_by_baseline": c["served_by_baseline"], "series": c["series"],
                      "served_by_baseline_share": share, "max_baseline_share": max_share},
            description=f"{c['served_by_baseline']} of {c['series']} series of store {key} are served by their "
            f"baseline ({share:.0%} > operations.max_baseline_share {max_share:.0%}): {_why_baseline(c)}; see the "
            "reasons in promotion_decisions (mm-assets promotion-report)."
            + (f" A store of fewer than {FEW_SERIES} series: a warning." if few else ""),
        )
    return out


def decision_for_every_series(manifest, counts: dict) -> dict[str, Verdict]:
    """Per store: a decision (or a recorded failure) for every series the gate was given: the series of the
    store's data, not those that have left the source since they were trained (``left_the_data``; counted
    apart)."""
    gone = not_retrained(manifest) if len(manifest) else pd.Series(dtype=bool)
    given = manifest.loc[~gone, "partition_key"].value_counts() if len(manifest) else {}
    left = manifest.loc[gone, "partition_key"].value_counts() if len(manifest) else {}
    out = {}
    for key, c in counts.items():
        expected = int(given.get(key, 0))
        out[key] = Verdict(
            passed=c["series"] >= expected,
            metadata={"decided_or_failed": c["series"], "series": expected,
                      "series_not_in_newest_training": int(left.get(key, 0))},
            description=(
                f"none of the {expected} series of store {key} got a decision: a store gone from the source has no "
                f"rows to judge (the every_partition_has_rows check names it; retire it: mm-assets retire-partition "
                f"{key}); otherwise see the run's failures (mm-assets failures --store {key})." if not c["series"] else
                f"{expected - c['series']} of {expected} series of store {key} got no decision: see the run's failures "
                f"(mm-assets failures --store {key})."),
        )
    return out


CHECKS = {
    "decision_for_every_series": "The gate recorded a decision with a reason (or a failure) for every series of the "
    "store.",
    "served_by_model": "At most operations.max_baseline_share of the store's series are served by their baseline "
    "(no champion).",
}


def production_models_asset(settings: Settings) -> dg.AssetsDefinition:
    """production_models for these settings (its store partitions, gate)."""
    @store_asset(
        settings,
        dg.AssetSpec(
            "production_models",
            deps=["series_datasets", "trained_models"],
            group_name=CYCLE_GROUP,
            tags={"stage": "models"},
            kinds={"python"},
            description=(
                "Champions in the production registry (a separate database only this asset writes). A challenger "
                "is promoted if it beats the series' baseline on the holdout (a short holdout weighed with the "
                "run's series: promotion.prior_points), passes the optional floors "
                "(promotion.min_accuracy, promotion.max_mase) and its WAPE is not worse than the champion's "
                "re-scored on the same holdout (+ promotion.champion_tolerance). Every decision is stored with its "
                "reason in promotion_decisions."
            ),
            metadata={
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn("series_key", "string"),
                        dg.TableColumn("decision", "string", description="promoted | kept_champion | rejected"),
                        dg.TableColumn("reason", "string"),
                        dg.TableColumn("challenger_version", "int"),
                        dg.TableColumn("champion_version", "int"),
                    ]
                )
            },
        ),
        [
            *(store_check(name, "production_models", settings, text) for name, text in CHECKS.items()),
            dg.AssetCheckSpec("champions_loadable", asset="production_models", blocking=True,
                              description="Every champion's stored model loads. A broken one is replaced by a "
                              "passing challenger or copied again from the training registry (warning); one "
                              "that cannot be healed fails the run (its series is served by the baseline)."),
        ],
    )
    def production_models(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: RegistryResource,
        production: ProductionRegistryResource,
        runner: RunnerResource,
    ):
        require_asset_selected(context)
        keys = step_partition_keys(context)
        run_id = context.run.run_id
        prod = production.writer()
        manifest = promotion_manifest(registry.get().latest(keys), prod.current(keys),
                                      settings.promotion.prior_points, settings.horizon)
        manifest_path = f"manifests/promote-{run_id}.parquet"
        lake.get().write_parquet(manifest, manifest_path)
        result, stop_error = run_fanout(
            context, runner, lake, settings, PROMOTE_ENTRY, ["--manifest", manifest_path], multi_series=True
        )
        decided = with_partition_keys(result.rows, settings)
        if len(decided):
            decided["ids"] = ids_json(decided, settings)
        promoted_keys, healing = apply_decisions(manifest, decided, prod, registry.get(), run_id)
        failures = record_failures(context, result, settings, registry.get(), task="promote")
        current = prod.current(keys)
        counts = gate_counts(decided, failures, current, keys, manifest)
        for key, figures in counts.items():
            context.add_asset_metadata({**figures, "on_baseline": on_baseline_table(decided, current, key)},
                                       partition_key=key)
        if stop_error:
            raise dg.Failure(description=stop_error)
        days = settings.storage.model_retention_days  # replaced champions' production copies, as training's
        pruned = {"pruned_production_files": prod.prune_copies(retention_cutoff(days))} if days else {}
        report_run_wide(context, {"batch_promoted": len(promoted_keys), "batch_decisions": len(decided), **pruned})
        yield dg.MaterializeResult(check_results=[healing_check(healing)])
        yield from evaluations(context, {
            "decision_for_every_series": decision_for_every_series(manifest, counts),
            "served_by_model": served_by_model(counts, settings.operations.max_baseline_share),
        })

    return production_models
