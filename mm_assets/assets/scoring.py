"""batch_predictions: every series of each store partition forecast over the horizon, by its champion.

The model manifest (which champion serves which series; one production-registry query per batch) is written
to the lake and handed to the scoring entry script; models are loaded per worker from their bundles, never
all at once. A series without a usable model is served by its baseline and flagged ``baseline``.
"""


import dagster as dg
import pandas as pd

from mm_assets.assets.fanout import record_failures, run_fanout, with_partition_keys
from mm_assets.assets.partitions import CYCLE_GROUP, step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.store_checks import Verdict, evaluations, require_asset_selected, store_asset, store_check
from mm_assets.ingest.datasets import DATASET_FOLDER
from mm_assets.parallel.contract import DATASET_SIGNATURE_KEY, MANIFEST_COLUMNS, SCORE_ENTRY, predictions_file
from mm_assets.parallel.score_entry import COLUMNS as SCORE_COLUMNS
from mm_assets.parallel.score_entry import SOURCE_BASELINE, champion_failed
from mm_assets.resources import (
    LakeResource,
    ProductionRegistryResource,
    RegistryResource,
    RunnerResource,
)
from mm_assets.settings import Settings


def _plan_periods(part: pd.DataFrame) -> int:
    """Forecast periods that used planned regressors (``planned_periods`` is per series, on each of its rows)."""
    if not len(part) or "planned_periods" not in part.columns:
        return 0
    return int(part.groupby("series_key")["planned_periods"].first().sum())


CHECKS = {
    "every_series_forecast": "Every series of the store has a forecast for every step of the horizon.",
    "envelope_within": "No champion forecast of the store left the sanity envelope (warning: the baseline's "
    "forecast was published in its place; the champion needs attention).",
    "champions_forecast": "Every champion of the store could load and forecast its series (one that cannot, e.g. "
    "trained for a shorter horizon than the settings' now, leaves its series to the baseline).",
}


def every_series_forecast(keys: list[str], rows: pd.DataFrame, failures: pd.DataFrame, horizon: int) -> dict:
    """Per store: every series has ``horizon`` forecast rows; failed series count as missing."""
    out = {}
    for key in keys:
        part = rows[rows["partition_key"] == key] if len(rows) else rows
        per_series = part.groupby("series_key").size() if len(part) else pd.Series(dtype=int)
        failed = int((failures["partition_key"] == key).sum()) if len(failures) else 0
        complete, series = int((per_series == horizon).sum()), len(per_series) + failed
        out[key] = Verdict(
            passed=complete == series,
            metadata={"complete_series": complete, "series": series, "failed": failed},
            description=f"{series - complete} of {series} series of store {key} have no forecast for the whole "
            f"horizon of {horizon} periods ({failed} failed: mm-assets failures).",
        )
    return out


def envelope_within(keys: list[str], rows: pd.DataFrame) -> dict:
    """Per store: no champion forecast replaced by the baseline's for leaving the sanity envelope."""
    out = {}
    for key in keys:
        part = rows[rows["partition_key"] == key] if len(rows) else rows
        replaced = (part.loc[part["envelope_replaced"] == 1, "series_key"].unique()
                    if len(part) and "envelope_replaced" in part.columns else [])
        out[key] = Verdict(
            passed=len(replaced) == 0,
            metadata={"envelope_replaced": len(replaced), "series": int(part["series_key"].nunique()) if len(part)
                      else 0, "replaced_keys": ", ".join(list(replaced)[:20])},
            description=f"{len(replaced)} champion forecasts of store {key} left the sanity envelope and were "
            "replaced by the baseline's (see envelope_replaced in forecast_predictions).",
        )
    return out


def champions_forecast(keys: list[str], rows: pd.DataFrame) -> dict:
    """Per store: no series whose champion failed to load or to forecast (the baseline's forecast published in
    its place), with the first reasons."""
    first = rows.drop_duplicates("series_key") if len(rows) and "note" in rows.columns else rows.iloc[0:0]
    failed = first[champion_failed(first["note"])] if len(first) else first  # a series' rows share its note
    out = {}
    for key in keys:
        part = failed[failed["partition_key"] == key] if len(failed) else failed
        examples = "; ".join(f"{k}: {n}" for k, n in zip(part["series_key"][:3], part["note"][:3]))
        out[key] = Verdict(
            passed=len(part) == 0,
            metadata={"champion_failed": len(part), "failed_keys": ", ".join(list(part["series_key"])[:20])},
            description=f"{len(part)} champions of store {key} could not forecast and their series were served by "
            f"the baseline, e.g. {examples}. Retrain the store (materialize trained_models and production_models) "
            "so that a champion fit for the settings replaces them.",
        )
    return out


def write_manifest(reader, the_lake, keys: list[str], run_id: str) -> str:
    """Which champion serves which series of these stores (one production-registry query), written to the lake
    for the scoring entry script → its lake path."""
    manifest = reader.current(keys)
    manifest = manifest[MANIFEST_COLUMNS] if len(manifest) else pd.DataFrame(columns=MANIFEST_COLUMNS)
    path = f"manifests/{run_id}.parquet"
    the_lake.write_parquet(manifest.astype({"version": "int64"}), path)
    return path


def store_metadata(part: pd.DataFrame, envelope: Verdict, path: str) -> dict:
    """One store's forecast figures: series, rows, how many series' forecasts are their baseline's (no champion,
    or the envelope replaced the champion's: ``forecast_by_baseline``, not the gate's ``served_by_baseline``,
    which counts series without a champion) and how many the envelope replaced, and how many periods used planned
    regressors (price/promo plan rows) rather than the defaults (last price, no promotion)."""
    planned = _plan_periods(part)
    return {
        "series": int(part["series_key"].nunique()) if len(part) else 0,
        "rows": len(part),
        "forecast_by_baseline": int(part.loc[part["model_source"] == SOURCE_BASELINE, "series_key"].nunique())
        if len(part) else 0,
        "envelope_replaced": envelope.metadata["envelope_replaced"],
        "periods_with_plan": planned,
        "periods_without_plan": len(part) - planned,
        "origin_max": str(part["origin"].max().date()) if len(part) else "",
        "path": dg.MetadataValue.path(path),
    }


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
        [store_check(name, "batch_predictions", settings, text) for name, text in CHECKS.items()],
    )
    def batch_predictions(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: RegistryResource,
        production: ProductionRegistryResource,
        runner: RunnerResource,
    ):
        require_asset_selected(context)
        the_lake, keys = lake.get(), step_partition_keys(context)
        scored_from = the_lake.signatures(DATASET_FOLDER, suffix=".parquet")  # the datasets the tasks will read
        manifest_path = write_manifest(production.reader(), the_lake, keys, context.run.run_id)
        result, stop_error = run_fanout(
            context, runner, lake, settings, SCORE_ENTRY, ["--manifest", manifest_path], multi_series=True
        )
        rows = with_partition_keys(result.rows, settings)
        failures = record_failures(context, result, settings, registry.get(), task="score")
        envelope = envelope_within(keys, rows)  # per store: the partition metadata and the check
        for key in keys:
            part = rows[rows["partition_key"] == key].drop(columns="partition_key") if len(rows) else rows
            if not len(part):  # every series failed, or none left: yesterday's forecasts are not today's
                part = pd.DataFrame(columns=[*cols.ids, *SCORE_COLUMNS])
            the_lake.write_parquet(part, predictions_file(key),
                                   metadata={DATASET_SIGNATURE_KEY: scored_from.get(f"{key}.parquet", "")})
            context.add_asset_metadata(
                store_metadata(part, envelope[key], the_lake.path(predictions_file(key))), partition_key=key
            )
        if stop_error:
            raise dg.Failure(description=stop_error)
        report_run_wide(context, {"batch_series": result.series_total, "batch_rows": len(rows),
                                  "batch_failed": len(failures)})
        yield dg.MaterializeResult()
        yield from evaluations(
            context,
            {"every_series_forecast": every_series_forecast(keys, rows, failures, settings.horizon),
             "envelope_within": envelope,
             "champions_forecast": champions_forecast(keys, rows)},
            severity={"envelope_within": dg.AssetCheckSeverity.WARN},
        )

    return batch_predictions
