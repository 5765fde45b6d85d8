"""forecast_accuracy: published forecasts against the actuals as they arrive, per store partition.

Reads the partition's forecasts whose periods may have received actuals since the last run (origins in the
last ``2 × horizon + accuracy_window`` periods) and its dataset, pairs them (``reporting.realized``) with the
baseline's forecast of the same days, and replaces those origins' rows in the warehouse table
``forecast_accuracy`` (history: one row per series, origin and period). The metadata shows, per store, the
realised WAPE, bias and MASE against the baseline over the newest ``operations.accuracy_window`` periods, split
by champion and baseline, and the series doing worst against their baseline.
"""

import dagster as dg
import pandas as pd

from mm_assets.assets.partitions import step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.store_checks import evaluations, require_asset_selected, store_asset, store_check
from mm_assets.assets.table_schemas import table_metadata
from mm_assets.checks.accuracy import realized_beats_baseline, rounded_ratio
from mm_assets.forecasting.series import DS, SeriesConfig, Y
from mm_assets.ingest.datasets import dataset_file
from mm_assets.ingest.periods import corrections
from mm_assets.reporting.realized import corrected_since, judged_span, ratios, realized_points
from mm_assets.resources import LakeResource, WarehouseResource
from mm_assets.settings import Settings

WORST_SHOWN = 10


def _worst_table(by_series: pd.DataFrame, id_columns: list[str]) -> str:
    """Markdown: the series furthest behind their baseline (MASE vs baseline, highest first)."""
    worst = by_series[by_series["mase_vs_baseline"] >= 1].nlargest(WORST_SHOWN, "mase_vs_baseline")
    if worst.empty:
        return "Every series' forecasts beat or match its baseline over the window."
    lines = [f"| {' | '.join(id_columns)} | model v | points | WAPE | bias | MASE vs baseline |",
             "|" + "---|" * (len(id_columns) + 5)]
    for _, r in worst.iterrows():
        lines.append(f"| {' | '.join(str(r[c]) for c in id_columns)} | {int(r['model_version'])} | "
                     f"{int(r['points'])} | {_pct(r['wape'])} | {_pct(r['bias'], '+')} | {r['mase_vs_baseline']:.2f} |")
    return "\n".join(lines)


def _pct(value, sign: str = "") -> str:
    """A fraction as a percentage; n/a where it is undefined (no sales in the window: WAPE has no denominator)."""
    return "n/a" if pd.isna(value) else f"{value:{sign}.1%}"


def _store_summary(sums: pd.DataFrame, id_columns: list[str]) -> dict:
    """Per-store metadata from the judged points of the window, summed per series, version and source
    (``Warehouse.accuracy_sums``)."""
    out: dict = {"points": int(sums["points"].sum()), "first_ds": str(sums["first_ds"].min().date()),
                 "last_ds": str(sums["last_ds"].max().date())}
    total = ratios(sums.assign(all="all"), ["all"]).iloc[0]
    out.update(realized_wape=rounded_ratio(total["wape"]), realized_bias=rounded_ratio(total["bias"]),
               realized_mase_vs_baseline=rounded_ratio(total["mase_vs_baseline"]))
    served = sums[sums["model_source"] == "champion"]
    if len(served):
        champ = ratios(served.assign(all="all"), ["all"]).iloc[0]
        out.update(champion_wape=rounded_ratio(champ["wape"]), champion_mase_vs_baseline=rounded_ratio(champ["mase_vs_baseline"]))
    judged = served if len(served) else sums
    # one row per series (its versions' points together), named by its newest version
    by_series = ratios(judged, id_columns).merge(
        judged.groupby(id_columns, as_index=False)["model_version"].max(), on=id_columns)
    out["worst_vs_baseline"] = dg.MetadataValue.md(_worst_table(by_series, id_columns))
    return out


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
                "series furthest behind their baseline."
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
            total += wh.publish_accuracy(key, context.run.run_id, points,
                                         judged=(span.first_origin, span.ds_from) if span.ds_from else None)
            judged_to = pd.Timestamp(points["ds"].max()) if len(points) else newest
            sums = wh.accuracy_sums(key, *span.window(judged_to))
            context.add_asset_metadata(_store_summary(sums, id_cols) if len(sums) else {"points": 0},
                                       partition_key=key)
        report_run_wide(context, {"batch_points": total})
        yield dg.MaterializeResult()
        if newest_ds is not None:
            stores = wh.champion_vs_baseline((newest_ds - window * series_cfg.step).to_pydatetime())
            yield from evaluations(context, {"realized_beats_baseline": realized_beats_baseline(
                [key for key in step_partition_keys(context) if key in stores.index], stores, window)})

    return forecast_accuracy
