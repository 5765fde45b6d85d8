"""forecast_predictions: the batch forecasts of each store partition published to the SQL warehouse.

Idempotent: re-publishing a partition replaces its rows for the same forecast origin, in one transaction.
"""


import dagster as dg

from mm_assets.assets.partitions import group_backfill_policy, group_partitions
from mm_assets.assets.scoring import predictions_file
from mm_assets.resources import LakeResource, SettingsResource, WarehouseResource
from mm_assets.settings import Settings
from mm_assets.sql import redact


def build_publishing_assets(settings: Settings, batch_predictions) -> list:
    cols = settings.columns

    @dg.asset(
        name="forecast_predictions",
        partitions_def=group_partitions(settings),
        backfill_policy=group_backfill_policy(settings),
        deps=[batch_predictions],
        group_name="warehouse",
        kinds={"sql"},
        description=(
            "Warehouse table forecast_predictions (one row per series, origin and ds) that BI reads; "
            "re-publishing a partition replaces its rows for the same origin in one transaction."
        ),
        metadata={
            "dagster/table_name": "forecast_predictions",
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    *[dg.TableColumn(c, "string") for c in cols.ids],
                    dg.TableColumn("origin", "datetime"),
                    dg.TableColumn("ds", "datetime"),
                    dg.TableColumn("yhat", "float"),
                    dg.TableColumn("model_type", "string"),
                    dg.TableColumn("model_version", "int"),
                    dg.TableColumn("model_source", "string"),
                    dg.TableColumn("partition_key", "string"),
                    dg.TableColumn("run_id", "string"),
                    dg.TableColumn("published_at", "datetime"),
                ]
            ),
        },
    )
    def forecast_predictions(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        lake: LakeResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        cfg = settings.get()
        the_lake = lake.get()
        wh = warehouse.get(cfg.columns.ids)
        total = 0
        for key in context.partition_keys:
            if not the_lake.exists(predictions_file(key)):
                raise dg.Failure(f"no batch predictions for partition {key!r}: materialize batch_predictions first")
            frame = the_lake.read_parquet(predictions_file(key))
            n = wh.publish_predictions(frame, key, context.run.run_id)
            total += n
            context.add_asset_metadata({"rows": n, "series": int(frame["series_key"].nunique())}, partition_key=key)
        return dg.MaterializeResult(
            metadata={"batch_rows": total, "warehouse": redact(warehouse.url)}
        )

    return [forecast_predictions]
