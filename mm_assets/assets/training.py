"""trained_models: one model per series of each store partition, trained in parallel and registered.

The runner executes the training entry script (Azure ML parallel-job contract) over the batch; successful
and fallback models are bulk-registered with their holdout metrics; failed series are recorded with their
error, shown in the metadata and in the ``no_failed_series`` check, and retrained on the next run.
"""


import dagster as dg
import numpy as np
import pandas as pd

from mm_assets.assets.fanout import failed_rows_to_failures, record_failures, run_fanout, with_partition_keys
from mm_assets.assets.partitions import CYCLE_GROUP, step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.store_checks import evaluations, require_asset_selected, store_asset, store_check
from mm_assets.checks.training import no_failed_series
from mm_assets.forecasting.metrics import metric_column
from mm_assets.forecasting.models import is_global
from mm_assets.forecasting.training import STATUS_FALLBACK, STATUS_TRAINED
from mm_assets.parallel.contract import TRAIN_ENTRY, training_window
from mm_assets.registry.gate import judged_ratio
from mm_assets.registry.model_registry import retention_cutoff
from mm_assets.reporting.changes import previous_day_versions, worse_than_previous
from mm_assets.reporting.plots import accuracy_histogram_svg, as_markdown_image, forecast_vs_actual_svg
from mm_assets.resources import LakeResource, ProductionRegistryResource, RegistryResource, RunnerResource
from mm_assets.settings import Settings


def _quantile(values: pd.Series, q: float) -> float | None:
    values = values.dropna()
    return round(float(np.quantile(values, q)), 4) if len(values) else None


def prune_old_versions(reg, production, keys: list[str], days: int | None) -> dict:
    """``storage.model_retention_days``: the stores' versions older than that, but each series' latest and its
    current champion's, deleted with the bundle files no version needs any more, and the bundle files of older
    runs that no version ever pointed at (a run stopped before it registered them) → run metadata."""
    if not days or not keys:
        return {}
    champions = production.current(keys)
    keep = set(zip(champions["series_key"], champions["version"].astype(int))) if len(champions) else set()
    cutoff = retention_cutoff(days)
    versions, files = reg.prune(keys, cutoff, keep)
    return {"pruned_versions": versions, "pruned_bundle_files": files,
            "pruned_orphan_bundle_files": reg.prune_orphan_bundles(cutoff)}


def partition_summary(rows: pd.DataFrame, failures: pd.DataFrame, key: str) -> dict:
    part = rows[rows["partition_key"] == key] if len(rows) else rows
    failed = failures[failures["partition_key"] == key] if len(failures) else failures
    acc = part["accuracy"] if len(part) else pd.Series(dtype=float)
    return {
        "series": len(part) + len(failed),
        "trained": int((part["status"] == STATUS_TRAINED).sum()) if len(part) else 0,
        "fallback": int((part["status"] == STATUS_FALLBACK).sum()) if len(part) else 0,
        "failed": len(failed),
        "median_accuracy": _quantile(acc, 0.5),
        "p90_accuracy": _quantile(acc, 0.9),
        "p10_accuracy": _quantile(acc, 0.1),
        "fit_seconds": round(float(part["duration_s"].sum()), 2) if len(part) else 0.0,
        # holdout forecasts that left the sanity envelope (replaced by the baseline), and models that beat it
        "envelope_replaced": int(np.nansum(metric_column(part["metrics"], "envelope_replaced"))) if len(part) else 0,
        "beats_baseline": int((judged_ratio(part["metrics"])[0] < 1).sum())
        if len(part) else 0,
    }


# store partitions of a run whose plots are drawn (those of the lowest median accuracy): three plots cost about
# 0.13 s of the run's main process and 48 KB of its event log a partition, which one partition per store of
# thousands of stores turns into minutes and tens of MB a cycle
PLOTTED_PARTITIONS = 10


def partitions_to_plot(registered: pd.DataFrame, keys: list[str], most: int = PLOTTED_PARTITIONS) -> set[str]:
    """The run's partitions whose plots are drawn: all of them up to ``most``, else the ``most`` of the lowest
    median holdout accuracy (where an operator looks first)."""
    if len(keys) <= most:
        return set(keys)
    accuracy = (registered.groupby("partition_key")["accuracy"].median() if len(registered)
                else pd.Series(dtype=float)).reindex(keys)
    return set(accuracy.sort_values(na_position="last", kind="stable").index[:most])


def readable_metadata(part: pd.DataFrame, failed: pd.DataFrame, gate: float, plots: bool = True) -> dict:
    """Plots and tables an operator reads in the UI: forecast vs actual for a typical and the worst series,
    the accuracy distribution (``plots``: drawn, else a note saying where they are), and the failed or fallback
    series with their reasons."""
    out: dict = {}
    scored = part.dropna(subset=["accuracy"]) if len(part) else part
    scored = scored[scored["holdout"].notna() & (scored["holdout"] != "null")] if len(scored) else scored
    if len(scored) and not plots:
        out["plots"] = (f"drawn for the {PLOTTED_PARTITIONS} store partitions of this run with the lowest median "
                        "holdout accuracy; this one's holdouts are in the registry (model_metrics)")
    elif len(scored):
        median = scored["accuracy"].median()
        typical = scored.iloc[(scored["accuracy"] - median).abs().argsort().iloc[0]]
        worst = scored.loc[scored["accuracy"].idxmin()]
        images = [
            as_markdown_image(
                forecast_vs_actual_svg(f"{label}: {row['series_key']} ({row['model_type']}, accuracy "
                                       f"{row['accuracy']:.2f})", row["holdout"]),
                f"{label} series {row['series_key']}",
            )
            for label, row in (("typical", typical), ("worst", worst))
        ]
        out["forecast_vs_actual"] = dg.MetadataValue.md("\n\n".join(images))
        out["accuracy_distribution"] = dg.MetadataValue.md(
            as_markdown_image(accuracy_histogram_svg(scored["accuracy"].tolist(), gate), "accuracy distribution")
        )
    rows = []
    if len(failed):
        rows += [{"series": r.series_key, "status": "failed", "reason": f"{r.error_type}: {r.error_message}"[:300]}
                 for r in failed.itertuples()]
    if len(part):
        rows += [{"series": r.series_key, "status": "fallback", "reason": r.reason}
                 for r in part[part["status"] == STATUS_FALLBACK].itertuples()]
    if rows:
        table = pd.DataFrame(rows).head(100)
        out["failed_or_fallback"] = dg.MetadataValue.md(table.to_markdown(index=False))
    return out


def global_fit(registered: pd.DataFrame) -> dict:
    """How the run's global model was made (refitted after its holdout fit, or the holdout fit served), as its
    trained series record it; nothing when no series of the run is served by a global model."""
    if not len(registered):
        return {}
    served = registered[(registered["status"] == STATUS_TRAINED) & registered["model_type"].map(is_global)]
    notes = served["reason"].dropna().unique()
    return {"global_model_fit": str(notes[0])} if len(notes) else {}


def trained_models_asset(settings: Settings) -> dg.AssetsDefinition:
    """trained_models for these settings (its store partitions, model type)."""
    @store_asset(
        settings,
        dg.AssetSpec(
            "trained_models",
            deps=["series_datasets"],
            group_name=CYCLE_GROUP,
            tags={"stage": "models"},
            kinds={"scikitlearn", "python"},
            description=(
                "One model per series (store-item) of each store partition, trained in parallel by the runner "
                "with the training entry script; holdout metrics (accuracy = 1 - WAPE, sMAPE, MAPE, RMSE, MASE) "
                "and artifacts registered in the model registry. Short series are served by their baseline "
                "(recorded as fallbacks). A global model (lightgbm) is trained once over every series of the run."
            ),
            metadata={
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn("series_key", "string", description="ids joined by '/'"),
                        dg.TableColumn("model_type", "string"),
                        dg.TableColumn("version", "int", description="per-series model version"),
                        dg.TableColumn("status", "string", description="trained | fallback"),
                        dg.TableColumn("accuracy", "float", description="1 - WAPE on the holdout"),
                        dg.TableColumn("artifact_uri", "string", description="bundle file; with offset and size"),
                    ]
                )
            },
        ),
        [store_check("no_failed_series", "trained_models", settings,
                     "Every series of the store produced a model or a recorded fallback.")],
    )
    def trained_models(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: RegistryResource,
        production: ProductionRegistryResource,
        runner: RunnerResource,
    ):
        require_asset_selected(context)
        result, stop_error = run_fanout(
            context, runner, lake, settings, TRAIN_ENTRY, ["--model-dir", f"models/{context.run.run_id}"],
            multi_series=True, whole_batch=is_global(settings.model.type), window=training_window(settings),
        )
        result = failed_rows_to_failures(result)
        reg = registry.get()
        rows = with_partition_keys(result.rows, settings)
        registered = reg.register(rows, context.run.run_id) if len(rows) else rows
        failures = record_failures(context, result, settings, reg, task="train")
        previous = previous_day_versions(reg, registered) if len(registered) else registered
        plotted = partitions_to_plot(registered, step_partition_keys(context))
        for key in step_partition_keys(context):
            summary = partition_summary(registered, failures, key)
            part = registered[registered["partition_key"] == key] if len(registered) else registered
            part_fail = failures[failures["partition_key"] == key] if len(failures) else failures
            summary.update(readable_metadata(part, part_fail, settings.promotion.min_accuracy, key in plotted))
            worse, table = worse_than_previous(part, previous[previous["series_key"].isin(part["series_key"])]
                                               if len(previous) else previous)
            summary.update(worse_than_previous_version=worse, worse_than_previous=dg.MetadataValue.md(table))
            context.add_asset_metadata(summary, partition_key=key)
        if stop_error:
            raise dg.Failure(description=stop_error, metadata={"failed_series": len(failures)})
        total = len(registered) + len(failures)
        pruned = prune_old_versions(reg, production.reader(), step_partition_keys(context),
                                    settings.storage.model_retention_days)
        batch_worse, batch_table = worse_than_previous(registered, previous)
        report_run_wide(context, {
            **pruned,
            "worse_than_previous_version": batch_worse,  # across the run's stores: the worst first
            "worse_than_previous": dg.MetadataValue.md(batch_table),
            "batch_series": total,
            "batch_failed": len(failures),
            "batch_wall_s": round(result.wall_seconds, 2),
            "models_per_s": round(len(registered) / result.wall_seconds, 1) if result.wall_seconds else 0.0,
            **global_fit(registered),
        })
        yield dg.MaterializeResult()
        yield from evaluations(context, {"no_failed_series": no_failed_series(step_partition_keys(context), failures,
                                                                             registered)})

    return trained_models
