"""production_models: the promotion gate, per store partition.

Challengers (latest trained model of each series) are judged by the promotion entry script through the
runner; promoted models' bytes are copied into the production area of the lake and registered as champions in
the production registry, together with every decision and its reason, in one transaction. This asset is the
only code that opens the production registry for writing.
"""

from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from mm_assets.assets.fanout import ids_json, record_failures, run_fanout, with_partition_keys
from mm_assets.assets.partitions import group_backfill_policy, group_partitions
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.forecasting.metrics import metric_column
from mm_assets.parallel.contract import PROMOTE_ENTRY
from mm_assets.registry.promotion import KEPT_CHAMPION, PROMOTED, REJECTED
from mm_assets.registry.report import baseline_share_by_store
from mm_assets.resources import (
    LakeResource,
    ProductionRegistryResource,
    RegistryResource,
    RunnerResource,
    SettingsResource,
)
from mm_assets.settings import Settings

CHALLENGER_COLUMNS = ["series_key", "partition_key", "ids", "model_type", "version", "status", "accuracy", "wape",
                      "mase", "metrics", "data_end", "artifact_uri", "artifact_offset", "artifact_size"]
CHAMPION_MANIFEST = ["series_key", "version", "artifact_uri", "artifact_offset", "artifact_size"]


def promotion_manifest(challengers: pd.DataFrame, champions: pd.DataFrame) -> pd.DataFrame:
    """Per series: the challenger's row and the champion's version and artifact (``champion_*``)."""
    chal = challengers[CHALLENGER_COLUMNS] if len(challengers) else pd.DataFrame(columns=CHALLENGER_COLUMNS)
    champ = champions[CHAMPION_MANIFEST] if len(champions) else pd.DataFrame(columns=CHAMPION_MANIFEST)
    champ = champ.rename(columns={c: f"champion_{c}" for c in CHAMPION_MANIFEST if c != "series_key"})
    manifest = chal.merge(champ, on="series_key", how="outer")
    for col in ("version", "champion_version", "artifact_offset", "artifact_size", "champion_artifact_offset",
                "champion_artifact_size"):
        manifest[col] = pd.to_numeric(manifest[col], errors="coerce").astype("Float64")
    manifest["data_end"] = pd.to_datetime(manifest["data_end"])
    for col in ("accuracy", "wape", "mase"):
        manifest[col] = pd.to_numeric(manifest[col], errors="coerce").astype(float)
    manifest["rel_mae_baseline"] = metric_column(manifest["metrics"], "rel_mae_baseline")
    return manifest


@dataclass
class Healing:
    """Champions found unloadable by the gate and what became of them."""

    replaced: list[str] = field(default_factory=list)  # a passing challenger took over
    restored: list[str] = field(default_factory=list)  # copied again from the training registry
    unhealed: dict[str, str] = field(default_factory=dict)  # series_key -> why (served by the baseline)

    def check_result(self) -> dg.AssetCheckResult:
        broken = len(self.replaced) + len(self.restored) + len(self.unhealed)
        severity = dg.AssetCheckSeverity.ERROR if self.unhealed else dg.AssetCheckSeverity.WARN
        examples = [f"{key}: {why}" for key, why in list(self.unhealed.items())[:10]]
        return dg.AssetCheckResult(
            check_name="champions_loadable", passed=broken == 0, severity=severity,
            description=None if broken == 0 else (
                f"{broken} champions could not be loaded: {len(self.replaced)} replaced by a passing challenger, "
                f"{len(self.restored)} restored from the training registry, {len(self.unhealed)} not healed "
                "(served by the baseline until a challenger passes; retrain the series)"),
            metadata={"unloadable": broken, "replaced": len(self.replaced), "restored": len(self.restored),
                      "not_healed": len(self.unhealed), "not_healed_examples": dg.MetadataValue.json(examples)},
        )


def heal_champions(decided: pd.DataFrame, prod, registry, folder: str, run_id: str) -> Healing:
    """Champions the gate could not load: a promoted challenger already replaced them; the others are copied
    again from the training registry's bundle of their version."""
    healing = Healing()
    if decided.empty or "champion_unloadable" not in decided:
        return healing
    broken = decided[decided["champion_unloadable"].notna()]
    healing.replaced = broken.loc[broken["decision"] == PROMOTED, "series_key"].tolist()
    rest = broken[broken["decision"] != PROMOTED]
    if len(rest):
        sources = registry.rows_of(rest["series_key"], rest["champion_version"].astype(int))
        restored, healing.unhealed = prod.restore(sources, folder, run_id)
        healing.restored = restored["series_key"].tolist() if len(restored) else []
        missing = set(rest["series_key"]) - set(healing.restored) - set(healing.unhealed)
        healing.unhealed.update({key: "its version is not in the training registry" for key in missing})
    return healing


def build_promotion_assets(settings: Settings, series_datasets, trained_models) -> list:
    @dg.asset(
        name="production_models",
        partitions_def=group_partitions(settings),
        backfill_policy=group_backfill_policy(settings),
        deps=[series_datasets, trained_models],
        group_name="models",
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
        promoted_keys = set(decided.loc[decided["decision"] == PROMOTED, "series_key"]) if len(decided) else set()
        challengers = manifest[manifest["series_key"].isin(promoted_keys)].copy()
        challengers["version"] = challengers["version"].astype("int64")
        challengers["artifact_offset"] = challengers["artifact_offset"].astype("int64")
        challengers["artifact_size"] = challengers["artifact_size"].astype("int64")
        challengers = challengers.set_index(pd.RangeIndex(len(challengers)))
        copied = prod.copy_artifacts(challengers, f"production/models/{run_id}")
        prod.apply(copied, decided, run_id)
        healing = heal_champions(decided, prod, registry.get(), f"production/models/{run_id}-restored", run_id)
        failures = record_failures(context, result, cfg, registry.get(), task="promote")
        current = prod.current(keys)
        for key in keys:
            part = decided[decided["partition_key"] == key] if len(decided) else decided
            counts = part["decision"].value_counts() if len(part) else pd.Series(dtype=int)
            series = len(part) + (int((failures["partition_key"] == key).sum()) if len(failures) else 0)
            champions = int((current["partition_key"] == key).sum()) if len(current) else 0
            share = (series - champions) / series if series else 0.0
            context.add_asset_metadata(
                {
                    "series": series,
                    "promoted": int(counts.get(PROMOTED, 0)),
                    "kept_champion": int(counts.get(KEPT_CHAMPION, 0)),
                    "rejected": int(counts.get(REJECTED, 0)),
                    "champions": champions,
                    "served_by_baseline": series - champions,
                    "served_by_baseline_share": round(share, 3),
                },
                partition_key=key,
            )
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
                healing.check_result(),
            ],
        )

    return [production_models]
