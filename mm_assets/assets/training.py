"""trained_models: one model per series of each store partition, trained in parallel and registered.

The runner executes the training entry script (Azure ML parallel-job contract) over the batch; successful
and fallback models are bulk-registered with their holdout metrics; failed series are recorded with their
error, shown in the metadata and in the ``no_failed_series`` check, and retrained on the next run.
"""


import dagster as dg

from mm_assets.assets.fanout import failed_rows_to_failures, record_failures, run_fanout, with_partition_keys
from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import CYCLE_GROUP, step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.assets.store_checks import (
    evaluations,
    require_asset_selected,
    store_asset,
    store_check,
)
from mm_assets.checks.training import no_failed_series
from mm_assets.forecasting.models import is_global
from mm_assets.parallel.contract import TRAIN_ENTRY, training_window
from mm_assets.registry.model_registry import prune_old_versions
from mm_assets.reporting.changes import previous_day_versions, worse_than_previous
from mm_assets.reporting.training_summary import global_fit, partition_summary, partitions_to_plot, readable_metadata
from mm_assets.resources import LakeResource, ProductionRegistryResource, RegistryResource, RunnerResource
from mm_assets.settings import Settings

# the library under each model type, shown as the asset's kind in the UI (the default is LightGBM, not scikit-learn)
MODEL_KINDS = {"lightgbm": "lightgbm", "linear": "numpy", "ets": "statsmodels", "prophet": "prophet",
               "baseline": "numpy", "seasonal_naive": "numpy"}


def trained_models_asset(settings: Settings) -> dg.AssetsDefinition:
    """trained_models for these settings (its store partitions, model type)."""
    @store_asset(
        settings,
        dg.AssetSpec(
            "trained_models",
            deps=["series_datasets"],
            group_name=CYCLE_GROUP,
            tags={"stage": "models"},
            kinds={MODEL_KINDS.get(str(settings.model.type), "python"), "python"},
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
        hold_settings(context, settings)
        require_asset_selected(context)
        result, stop_error = run_fanout(
            context, runner, lake, settings, TRAIN_ENTRY, ["--model-dir", f"models/{context.run.run_id}"],
            multi_series=True, whole_batch=is_global(settings.model.type), window=training_window(settings),
            context_rows=settings.model.global_context_rows,
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
                                               if len(previous) else previous, horizon=settings.horizon)
            summary.update(worse_than_previous_version=worse, worse_than_previous=table)
            context.add_asset_metadata(dagster_metadata(summary), partition_key=key)
        if stop_error:
            raise dg.Failure(description=stop_error, metadata={"failed_series": len(failures)})
        total = len(registered) + len(failures)
        pruned = prune_old_versions(reg, production.reader(), step_partition_keys(context),
                                    settings.storage.model_retention_days)
        batch_worse, batch_table = worse_than_previous(registered, previous, horizon=settings.horizon)
        report_run_wide(context, {
            **pruned,
            "worse_than_previous_version": batch_worse,  # across the run's stores: the worst first
            "worse_than_previous": batch_table,
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
