"""The warehouse tables BI reads, published per store partition in one transaction:

- forecast_predictions: the batch forecasts (replaced for the same partition and origin),
- model_metrics: holdout metrics of every series' latest model (replaced per partition),
- promotion_decisions: every gate decision with its reason (replaced per partition and gate run).

On Synapse (an ``mssql`` warehouse URL with an ``abfs://`` lake) forecasts are bulk-loaded with COPY INTO from
a Parquet file staged in the lake.
"""

import dagster as dg

from mm_assets.assets.partitions import group_backfill_policy, group_partitions, step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.assets.store_checks import evaluations, store_check
from mm_assets.assets.table_schemas import table_metadata
from mm_assets.checks.publishing import COMPLETE_HORIZON, complete_horizon
from mm_assets.ingest.datasets import dataset_file
from mm_assets.ingest.held import held_series
from mm_assets.parallel.contract import predictions_file
from mm_assets.preflight import StorageError, check_partitioning
from mm_assets.resources import (
    LakeResource,
    ProductionRegistryResource,
    RegistryResource,
    WarehouseResource,
)
from mm_assets.settings import Settings
from mm_assets.sql import redact
from mm_assets.warehouse.publish import decisions_to_publish, metrics_frame, publish_store
from mm_assets.warehouse.warehouse import forecast_origins

WAREHOUSE_TABLES = ("forecast_predictions", "model_metrics", "promotion_decisions")


def warehouse_tables_asset(settings: Settings) -> dg.AssetsDefinition:
    """The three warehouse tables of the daily cycle for these settings (store partitions, id columns)."""
    groups = group_partitions(settings)
    specs = [
        dg.AssetSpec(
            "forecast_predictions",
            deps=["batch_predictions"],
            group_name="warehouse",
            kinds={"sql"},
            description="Warehouse table: one row per series, origin and forecast period (ds), with the model "
            "that made it (model_source champion | baseline). Re-publishing replaces the same origin and removes later ones.",
            metadata=table_metadata(settings.columns.ids, "forecast_predictions"),
        ),
        dg.AssetSpec(
            "model_metrics",
            deps=["trained_models"],
            group_name="warehouse",
            kinds={"sql"},
            description="Warehouse tables: holdout metrics of every series' latest trained model (model_metrics) "
            "and of every version ever published (model_metrics_history, one row per series and version).",
            metadata=table_metadata(settings.columns.ids, "model_metrics"),
        ),
        dg.AssetSpec(
            "promotion_decisions",
            deps=["production_models"],
            group_name="warehouse",
            kinds={"sql"},
            description="Warehouse table: every promotion decision (promoted | kept_champion | rejected) with its "
            "reason, per series and gate run.",
            metadata=table_metadata(settings.columns.ids, "promotion_decisions"),
        ),
    ]

    @dg.multi_asset(
        name="warehouse_tables",
        specs=specs,
        partitions_def=groups,
        backfill_policy=group_backfill_policy(settings),
        can_subset=True,  # only so that the per-store check is an optional output: the tables go together
        check_specs=[store_check(COMPLETE_HORIZON, "forecast_predictions", settings,
                                 "Every series of the store has its newest forecast in the warehouse for the whole "
                                 "horizon (rows read back from forecast_predictions).")],
    )
    def warehouse_tables(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: RegistryResource,
        production: ProductionRegistryResource,
        warehouse: WarehouseResource,
    ):
        hold_settings(context, settings)
        if {key.to_user_string() for key in context.selected_asset_keys} != set(WAREHOUSE_TABLES):
            raise dg.Failure(description="the warehouse tables are published together, in one transaction per "
                             f"store: select all three ({', '.join(WAREHOUSE_TABLES)})")
        try:  # settings changed under a running warehouse: say which, not a duplicate-key error mid-publish
            check_partitioning(settings)
        except StorageError as exc:
            raise dg.Failure(description=str(exc)) from None
        id_cols = list(settings.columns.ids)
        the_lake = lake.get()
        wh = warehouse.get(id_cols)
        keys = step_partition_keys(context)
        run_id = context.run.run_id
        reg = registry.get()
        latest = metrics_frame(reg.latest(keys), id_cols, reg.newest_failures(keys, task="train"),
                               held_series(the_lake))
        decisions = decisions_to_publish(production.reader(), wh, keys, id_cols)
        # versions trained since the history's newest whose publish never came (a run stopped at its publish)
        missed = metrics_frame(reg.trained_after(wh.newest_in_history(keys)), id_cols)
        totals = dict.fromkeys(WAREHOUSE_TABLES, 0)
        verdicts = {}
        for key in keys:
            if not the_lake.exists(predictions_file(key)):
                raise dg.Failure(f"no batch predictions for partition {key!r}: materialize batch_predictions first")
            preds = the_lake.read_parquet(predictions_file(key))
            part_metrics = latest[latest["partition_key"] == key] if len(latest) else latest
            part_decisions = decisions[decisions["partition_key"] == key] if len(decisions) else None
            in_data = (the_lake.read_parquet(dataset_file(key), columns=id_cols).drop_duplicates()
                       if the_lake.exists(dataset_file(key)) else None)  # a series gone from it: not current
            counts = publish_store(wh, the_lake, key, run_id, preds, part_metrics, part_decisions,
                                   missed[missed["partition_key"] == key] if len(missed) else None,
                                   settings.storage.forecast_retention_days, in_data)
            verdicts[key] = complete_horizon(key, preds, wh.horizon_rows(key, forecast_origins(preds)), id_cols,
                                             settings.horizon)
            for table in WAREHOUSE_TABLES:
                totals[table] += counts.get(table, 0)
                pruned = {"pruned_rows": counts[f"pruned_{table}"]} if f"pruned_{table}" in counts else {}  # retention
                if table == "forecast_predictions":
                    pruned["series_left_the_data"] = counts.get("left_the_data", 0)
                context.add_asset_metadata({"rows": counts.get(table, 0), **pruned}, asset_key=table,
                                           partition_key=key)
        for table in WAREHOUSE_TABLES:
            report_run_wide(context, {"batch_rows": totals[table], "warehouse": redact(warehouse.url)}, table)
            yield dg.MaterializeResult(asset_key=table)
        yield from evaluations(context, {COMPLETE_HORIZON: verdicts}, asset_key=dg.AssetKey("forecast_predictions"))

    return warehouse_tables
