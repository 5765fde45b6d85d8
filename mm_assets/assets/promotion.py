"""production_models: the promotion gate, per store partition.

Challengers (latest trained model of each series) are judged by the promotion entry script through the
runner; promoted models' bytes are copied into the production area of the lake and registered as champions in
the production registry, together with every decision and its reason, in one transaction. This asset is the
only code that opens the production registry for writing.
"""

import dagster as dg

from mm_assets.assets.fanout import ids_json, record_failures, run_fanout, with_partition_keys
from mm_assets.assets.partitions import CYCLE_GROUP, group_backfill_policy, group_partitions
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.parallel.contract import PROMOTE_ENTRY
from mm_assets.registry.gate import Healing, apply_decisions, gate_counts, promotion_manifest
from mm_assets.registry.report import baseline_share_by_store
from mm_assets.resources import (
    LakeResource,
    ProductionRegistryResource,
    RegistryResource,
    RunnerResource,
    SettingsResource,
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


def build_promotion_assets(settings: Settings, series_datasets, trained_models) -> list:
    @dg.asset(
        name="production_models",
        partitions_def=group_partitions(settings),
        backfill_policy=group_backfill_policy(settings),
        deps=[series_datasets, trained_models],
        group_name=CYCLE_GROUP,
        tags={"stage": "models"},
        kinds={"python"},
        check_specs=[
            dg.AssetCheckSpec("decision_for_every_series", asset="production_models",
                              description="The gate recorded a decision with a reason for every series."),
            dg.AssetCheckSpec("served_by_model", asset="production_models",
                              description="In every store (all registered stores, whichever batch ran last), at "
                              "most operations.max_baseline_share of the series are served by their baseline (no "
                              "champion); the stores above it are listed."),
            dg.AssetCheckSpec("champions_loadable", asset="production_models", blocking=True,
                              description="Every champion's stored model loads. A broken one is replaced by a "
                              "passing challenger or copied again from the training registry (warning); one "
                              "that cannot be healed fails the run (its series is served by the baseline)."),
        ],
        description=(
            "Champions in the production registry (a separate database only this asset writes). A challenger "
            "is promoted if it beats the series' baseline on the holdout, passes the optional floors "
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
    )
    def production_models(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        lake: LakeResource,
        registry: RegistryResource,
        production: ProductionRegistryResource,
        runner: RunnerResource,
    ) -> dg.MaterializeResult:
        cfg = settings.get()
        keys = list(context.partition_keys)
        run_id = context.run.run_id
        prod = production.writer()
        manifest = promotion_manifest(registry.get().latest(keys), prod.current(keys))
        manifest_path = f"manifests/promote-{run_id}.parquet"
        lake.get().write_parquet(manifest, manifest_path)
        result, stop_error = run_fanout(
            context, runner, lake, cfg, PROMOTE_ENTRY, ["--manifest", manifest_path], multi_series=True
        )
        decided = with_partition_keys(result.rows, cfg)
        if len(decided):
            decided["ids"] = ids_json(decided, cfg)
        promoted_keys, healing = apply_decisions(manifest, decided, prod, registry.get(), run_id)
        failures = record_failures(context, result, cfg, registry.get(), task="promote")
        for key, counts in gate_counts(decided, failures, prod.current(keys), keys).items():
            context.add_asset_metadata(counts, partition_key=key)
        if stop_error:
            raise dg.Failure(description=stop_error)
        shares = baseline_share_by_store(registry.get().series_per_partition(), prod.champions_per_partition(),
                                         context.instance.get_dynamic_partitions(group_partitions(cfg).name))
        over = [f"{key} ({int(row.baseline)} of {int(row.series)})"
                for key, row in shares[shares["share"] > cfg.operations.max_baseline_share].iterrows()]
        report_run_wide(context, {"batch_promoted": len(promoted_keys), "batch_decisions": len(decided)})
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="decision_for_every_series",
                    passed=len(decided) == result.series_total,
                    metadata={"decisions": len(decided), "series": result.series_total, "failed": len(failures)},
                ),
                dg.AssetCheckResult(
                    check_name="served_by_model", passed=not over, severity=dg.AssetCheckSeverity.ERROR,
                    description=f"{len(over)} stores have more than {cfg.operations.max_baseline_share:.0%} of their "
                    f"series served by the baseline: {', '.join(over[:20])}. Their challengers do not beat the "
                    "baseline: see the reasons in promotion_decisions (mm-assets promotion-report)." if over else None,
                    metadata={"stores_over": len(over), "stores": len(shares),
                              "max_baseline_share": cfg.operations.max_baseline_share},
                ),
                healing_check(healing),
            ],
        )

    return [production_models]
