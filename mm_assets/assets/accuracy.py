"""forecast_accuracy: published forecasts against the actuals as they arrive, per store partition.

Reads the partition's forecasts whose periods may have received actuals since the last run (origins in the
last ``2 × horizon + accuracy_window`` periods) and its dataset, pairs them (``reporting.realized``) with the
baseline's forecast of the same days, and replaces those origins' rows in the warehouse table
``forecast_accuracy`` (history: one row per series, origin and period), then records the store in ``publish_log``:
the last write of a publish, which a dashboard outside Dagster waits for. The metadata shows, per store, the
realised WAPE, bias and MASE against the baseline over the newest ``operations.accuracy_window`` periods, split
by champion and baseline, and the series doing worst against their baseline.
"""

import dagster as dg
import pandas as pd

from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.assets.store_checks import (
    evaluations,
    require_asset_selected,
    store_asset,
    store_check,
)
from mm_assets.assets.table_schemas import table_metadata
from mm_assets.checks.accuracy import min_judged_periods, realized_beats_baseline
from mm_assets.forecasting.series import DS, SeriesConfig, Y
from mm_assets.ingest.datasets import dataset_file
from mm_assets.ingest.periods import corrections
from mm_assets.reporting.accuracy_summary import store_summary
from mm_assets.reporting.realized import corrected_since, judged_span, realized_points
from mm_assets.resources import LakeResource, WarehouseResource
from mm_assets.settings import Settings
from mm_assets.warehouse.warehouse import retention_cutoff


def forecast_accuracy_asset(settings: Settings) -> dg.AssetsDefinition:
    """forecast_accuracy for these settings (store partitions, id columns, accuracy window)."""
    @store_asset(
        settings,
        dg.AssetSpec(
            "forecast_accuracy",
            deps=["series_datasets", "forecast_predictions"],
            group_name="warehouse",
            kinds={"sql"},
            description=(
                "Warehouse table forecast_accuracy: every published forecast point whose actual has arrived, with "
                "the baseline's forecast of the same period from the same origin. Metadata per store: realised "
                "WAPE, bias and MASE vs the baseline over the newest operations.accuracy_window periods, and the "
                "series furthest behind their baseline. Each store done is then recorded in publish_log, the "
                "last write of a publish."
            ),
            metadata=table_metadata(settings.columns.ids, "forecast_accuracy"),
        ),
        [store_check(
            "realized_beats_baseline", "forecast_accuracy", settings,
            "The store's champions' realised forecasts beat the baseline's of the same days (MASE vs baseline < 1) "
            "over the newest operations.accuracy_window periods.")],
    )
    def forecast_accuracy(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        warehouse: WarehouseResource,
    ):
        hold_settings(context, settings)
        require_asset_selected(context)
        id_cols = list(settings.columns.ids)
        series_cfg = SeriesConfig.from_settings(settings)
        the_lake = lake.get()
        wh = warehouse.get(id_cols)
        window = settings.operations.accuracy_window
        corrected = corrections(the_lake)
        total = 0
        newest_ds = None
        for key in step_partition_keys(context):
            dataset = (the_lake.read_parquet(dataset_file(key), columns=[*id_cols, DS, Y])
                       if the_lake.exists(dataset_file(key)) else None)
            if dataset is None or dataset.empty:
                wh.record_published(key, context.run.run_id)
                context.add_asset_metadata({"points": 0}, partition_key=key)
                continue
            newest = pd.Timestamp(dataset.loc[dataset[Y].notna(), DS].max())
            newest_ds = newest if newest_ds is None else max(newest_ds, newest)
            through, judged_at = wh.accuracy_through(key)
            span = judged_span(newest, through, series_cfg, window, settings.operations.accuracy_rejudge_periods,
                               corrected_since(corrected, judged_at))
            predictions = wh.read_predictions([key], since=span.first_origin, ds_from=span.ds_from,
                                              ds_to=newest.to_pydatetime())
            points = realized_points(predictions, dataset, id_cols, series_cfg)
            days = settings.storage.forecast_retention_days
            keep_from = retention_cutoff(newest, days)
            written, pruned = wh.publish_accuracy(
                key, context.run.run_id, points, judged=(span.first_origin, span.ds_from) if span.ds_from else None,
                present=dataset[id_cols], keep_from=keep_from)
            wh.record_published(key, context.run.run_id, keep_from)  # the store's tables are whole
            total += written
            judged_to = pd.Timestamp(points["ds"].max()) if len(points) else newest
            sums = wh.accuracy_sums(key, *span.window(judged_to))
            context.add_asset_metadata({**dagster_metadata(store_summary(sums, id_cols)),
                                        **({"pruned_rows": pruned} if days is not None else {})}, partition_key=key)
        report_run_wide(context, {"batch_points": total})
        yield dg.MaterializeResult()
        if newest_ds is not None:
            stores = wh.champion_vs_baseline((newest_ds - window * series_cfg.step).to_pydatetime())
            yield from evaluations(context, {"realized_beats_baseline": realized_beats_baseline(
                [key for key in step_partition_keys(context) if key in stores.index], stores, window,
                min_judged_periods(series_cfg.is_daily))})

    return forecast_accuracy
