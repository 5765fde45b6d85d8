"""batch_predictions: every series of each store partition forecast over the horizon, by its champion.

The model manifest (which champion serves which series; one production-registry query per batch) is written
to the lake and handed to the scoring entry script; models are loaded per worker from their bundles, never
all at once. A series without a usable model is served by its baseline and flagged ``baseline``.
"""


import dagster as dg
import pandas as pd

from mm_assets.assets.fanout import record_failures, run_fanout, with_partition_keys
from mm_assets.assets.leftovers import remove_ended_runs_files
from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import CYCLE_GROUP, step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.assets.store_checks import evaluations, require_asset_selected, store_asset, store_check
from mm_assets.checks import scoring as scoring_checks
from mm_assets.ingest.datasets import DATASET_FOLDER
from mm_assets.ingest.periods import newest_sale_of
from mm_assets.parallel.contract import DATASET_SIGNATURE_KEY, MANIFEST_COLUMNS, SCORE_ENTRY, predictions_file
from mm_assets.parallel.score_entry import COLUMNS as SCORE_COLUMNS
from mm_assets.reporting.partition_figures import forecast_figures, store_behind
from mm_assets.resources import (
    LakeResource,
    ProductionRegistryResource,
    RegistryResource,
    RunnerResource,
)
from mm_assets.settings import Settings

MANIFEST_FOLDER = "manifests"  # a scoring run's model manifest, read by its tasks, deleted when it ends


def write_manifest(reader, the_lake, keys: list[str], run_id: str) -> str:
    """Which champion serves which series of these stores (one production-registry query), written to the lake
    for the scoring entry script → its lake path."""
    manifest = reader.current(keys)
    manifest = manifest[MANIFEST_COLUMNS] if len(manifest) else pd.DataFrame(columns=MANIFEST_COLUMNS)
    path = f"{MANIFEST_FOLDER}/{run_id}.parquet"
    the_lake.write_parquet(manifest.astype({"version": "int64"}), path)
    return path


def batch_predictions_asset(settings: Settings) -> dg.AssetsDefinition:
    """batch_predictions for these settings (its store partitions, columns)."""
    cols = settings.columns

    @store_asset(
        settings,
        dg.AssetSpec(
            "batch_predictions",
            deps=["series_datasets", "production_models"],
            group_name=CYCLE_GROUP,
            tags={"stage": "scoring"},
            kinds={"parquet"},
            description=(
                "Forecasts of every series of each store partition for the next `horizon` periods after its last "
                "observation (`predictions/<partition>.parquet`), made by the scoring entry script with the series' "
                "champion from the production registry; the series' baseline serves series without one, and "
                "replaces a champion's forecast that leaves the sanity envelope (model_source = baseline, "
                "envelope_replaced = 1)."
            ),
            metadata={
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        *[dg.TableColumn(c, "string", description="series id") for c in cols.ids],
                        dg.TableColumn("origin", "datetime", description="last observed period"),
                        dg.TableColumn("ds", "datetime", description="forecast period"),
                        dg.TableColumn("yhat", "float", description="point forecast, in units of the target"),
                        dg.TableColumn("baseline_yhat", "float",
                                       description="the baseline's forecast of the same period, chosen at the origin"),
                        dg.TableColumn("model_type", "string"),
                        dg.TableColumn("model_version", "int", description="0 for the baseline"),
                        dg.TableColumn("model_source", "string", description="champion | baseline"),
                        dg.TableColumn("envelope_replaced", "int",
                                       description="1: the champion's forecast left the sanity envelope; the "
                                       "baseline's is published"),
                    ]
                )
            },
        ),
        [store_check(name, "batch_predictions", settings, text) for name, text in scoring_checks.CHECKS.items()],
    )
    def batch_predictions(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: RegistryResource,
        production: ProductionRegistryResource,
        runner: RunnerResource,
    ):
        hold_settings(context, settings)
        require_asset_selected(context)
        the_lake, keys = lake.get(), step_partition_keys(context)
        scored_from = the_lake.signatures(DATASET_FOLDER, suffix=".parquet")  # the datasets the tasks will read
        remove_ended_runs_files(context, the_lake, MANIFEST_FOLDER, ".parquet")
        manifest_path = write_manifest(production.reader(), the_lake, keys, context.run.run_id)
        try:
            result, stop_error = run_fanout(
                context, runner, lake, settings, SCORE_ENTRY, ["--manifest", manifest_path], multi_series=True
            )
        finally:  # read by the entry script's tasks only: two files a cycle were kept for ever
            the_lake.delete(manifest_path)
        rows = with_partition_keys(result.rows, settings)
        failures = record_failures(context, result, settings, registry.get(), task="score")
        envelope = scoring_checks.envelope_within(keys, rows)  # per store: the partition metadata and the check
        newest_sale = newest_sale_of(the_lake, settings.columns.target, context.log.warning)
        for key in keys:
            part = rows[rows["partition_key"] == key].drop(columns="partition_key") if len(rows) else rows
            if not len(part):  # every series failed, or none left: yesterday's forecasts are not today's
                part = pd.DataFrame(columns=[*cols.ids, *SCORE_COLUMNS])
            the_lake.write_parquet(part, predictions_file(key),
                                   metadata={DATASET_SIGNATURE_KEY: scored_from.get(f"{key}.parquet", "")})
            context.add_asset_metadata(
                dagster_metadata(forecast_figures(
                    part, envelope[key].metadata["envelope_replaced"], the_lake.path(predictions_file(key)),
                    store_behind(part["origin"].max() if len(part) else None, newest_sale, settings.step,
                                 settings.max_normal_gap))), partition_key=key
            )
        if stop_error:
            raise dg.Failure(description=stop_error)
        report_run_wide(context, {"batch_series": result.series_total, "batch_rows": len(rows),
                                  "batch_failed": len(failures)})
        yield dg.MaterializeResult()
        yield from evaluations(
            context,
            {"every_series_forecast": scoring_checks.every_series_forecast(keys, rows, failures, settings.horizon),
             "envelope_within": envelope,
             "champions_forecast": scoring_checks.champions_forecast(keys, rows)},
            severity={"envelope_within": dg.AssetCheckSeverity.WARN},
        )

    return batch_predictions
