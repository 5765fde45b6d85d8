"""production_models: the promotion gate, per store partition.

Challengers (latest trained model of each series) are judged by the promotion entry script through the
runner; promoted models' bytes are copied into the production area of the lake and registered as champions in
the production registry, together with every decision and its reason, in one transaction. This asset is the
only code that opens the production registry for writing.
"""

import dagster as dg

from mm_assets.assets.fanout import ids_json, record_failures, run_fanout, with_partition_keys
from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import CYCLE_GROUP, group_partitions, step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.assets.store_checks import (
    check_result,
    evaluations,
    require_asset_selected,
    store_asset,
    store_check,
)
from mm_assets.checks import gate as gate_checks
from mm_assets.parallel.contract import PROMOTE_ENTRY
from mm_assets.registry.gate import (
    EVIDENCE_COLUMNS,
    apply_decisions,
    gate_counts,
    pooled_evidence,
    promotion_manifest,
)
from mm_assets.registry.model_registry import retention_cutoff
from mm_assets.reporting.on_baseline import on_baseline, on_baseline_table
from mm_assets.resources import (
    LakeResource,
    ProductionRegistryResource,
    RegistryResource,
    RunnerResource,
)
from mm_assets.settings import Settings


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
                "latest models of its type in every store: promotion.prior_points), passes the optional floors "
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
            *(store_check(name, "production_models", settings, text) for name, text in gate_checks.CHECKS.items()),
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
        hold_settings(context, settings)
        require_asset_selected(context)
        keys = step_partition_keys(context)
        run_id = context.run.run_id
        prod = production.writer()
        # the other stores' latest models: a short holdout is weighed with every store's series of its model type
        others = set(context.instance.get_dynamic_partitions(group_partitions(settings).name)) - set(keys)
        manifest = promotion_manifest(registry.get().latest(keys), prod.current(keys),
                                      settings.promotion.prior_points, settings.horizon,
                                      registry.get().latest(sorted(others), columns=EVIDENCE_COLUMNS),
                                      registry.get().newest_failures(keys, task="train"))
        manifest_path = f"manifests/promote-{run_id}.parquet"
        lake.get().write_parquet(manifest, manifest_path)
        try:
            result, stop_error = run_fanout(
                context, runner, lake, settings, PROMOTE_ENTRY, ["--manifest", manifest_path], multi_series=True
            )
        finally:  # read by the entry script's tasks only (the decisions are in the production registry)
            lake.get().delete(manifest_path)
        decided = with_partition_keys(result.rows, settings)
        if len(decided):
            decided["ids"] = ids_json(decided, settings)
        promoted_keys, healing = apply_decisions(manifest, decided, prod, registry.get(), run_id)
        failures = record_failures(context, result, settings, registry.get(), task="promote")
        current = prod.current(keys)
        counts = gate_counts(decided, failures, current, keys, manifest)
        for key, figures in counts.items():
            context.add_asset_metadata(
                dagster_metadata({**figures, "on_baseline": on_baseline_table(decided, current, key)}), partition_key=key)
        if stop_error:
            raise dg.Failure(description=stop_error)
        days = settings.storage.model_retention_days  # replaced champions' production copies, as training's
        pruned = {"pruned_production_files": prod.prune_copies(retention_cutoff(days))} if days else {}
        report_run_wide(context, {"batch_promoted": len(promoted_keys), "batch_decisions": len(decided),
                                  "pooled_evidence": pooled_evidence(manifest), **pruned})
        yield dg.MaterializeResult(
            check_results=[check_result("champions_loadable", gate_checks.champions_loadable(healing))])
        yield from evaluations(context, {
            "decision_for_every_series": gate_checks.decision_for_every_series(manifest, counts),
            "served_by_model": gate_checks.served_by_model(
                counts, settings.operations.max_baseline_share,
                {key: list(on_baseline(decided, current, key)["series_key"]) for key in counts}),
        })

    return production_models
