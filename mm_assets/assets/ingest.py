"""raw_sales: the source's rows of each period, copied into the lake as one Parquet file per period.

A backfill of any number of periods is one run (BackfillPolicy.single_run) and one source query. New stores
seen in the data are registered as store partitions, so the model assets pick them up automatically.
"""


import dagster as dg
import pandas as pd

from mm_assets.assets.partitions import group_partitions, period_partitions
from mm_assets.ids import InvalidIdError
from mm_assets.ingest.validation import PARTITION_COLUMN, DataValidationError, validate_raw
from mm_assets.resources import LakeResource, SettingsResource, SourceResource
from mm_assets.settings import Settings

RAW_FOLDER = ("raw", "sales")


def _period_of(ts: pd.Series, keys: list[str], settings: Settings) -> pd.Series:
    """The period partition key of each timestamp (keys are period start dates, sorted)."""
    starts = pd.to_datetime(pd.Series(keys))
    idx = starts.searchsorted(ts, side="right") - 1
    return pd.Series(pd.Series(keys).to_numpy()[idx.clip(0)], index=ts.index)


def build_ingest_assets(settings: Settings) -> list:
    periods = period_partitions(settings)
    groups = group_partitions(settings)
    cols = settings.columns

    @dg.asset(
        name="raw_sales",
        partitions_def=periods,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="ingest",
        kinds={"sql", "parquet"},
        description=(
            "Source rows of one period (day or week), validated and copied into the lake as "
            "raw/sales/<period>.parquet. Registers new store partitions found in the data."
        ),
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(cols.timestamp, "datetime", description="observation timestamp"),
                    *[dg.TableColumn(c, "string", description="series id column") for c in cols.ids],
                    dg.TableColumn(cols.target, "float", description="target (sales), >= 0"),
                    *[dg.TableColumn(c, "float", description="regressor") for c in cols.regressors],
                    dg.TableColumn(PARTITION_COLUMN, "string", description="Dagster store partition of the row"),
                ]
            )
        },
    )
    def raw_sales(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        source: SourceResource,
        lake: LakeResource,
    ) -> dg.MaterializeResult:
        cfg = settings.get()
        window = context.partition_time_window
        start = window.start.replace(tzinfo=None)
        end = window.end.replace(tzinfo=None)
        rows = source.get().read(start, end)
        try:
            frame = validate_raw(rows, cfg)
        except (DataValidationError, InvalidIdError) as exc:
            raise dg.Failure(
                description=f"raw_sales {context.partition_key_range}: {exc}",
                metadata={"rows_read": len(rows)},
            ) from None
        keys = list(context.partition_keys)
        frame["_period"] = _period_of(frame[cols.timestamp], keys, cfg) if len(frame) else pd.Series(dtype=str)
        the_lake = lake.get()
        grouped = dict(tuple(frame.groupby("_period", sort=False))) if len(frame) else {}
        empty = frame.drop(columns="_period").iloc[0:0]
        for key in keys:
            part = grouped.get(key)
            part = empty if part is None else part.drop(columns="_period")
            the_lake.write_parquet(part, *RAW_FOLDER, f"{key}.parquet")
            context.add_asset_metadata(
                {
                    "rows": len(part),
                    "series": int(part[cols.ids].drop_duplicates().shape[0]) if len(part) else 0,
                    "stores": int(part[PARTITION_COLUMN].nunique()) if len(part) else 0,
                },
                partition_key=key,
            )
        seen = sorted(frame[PARTITION_COLUMN].unique()) if len(frame) else []
        existing = set(context.instance.get_dynamic_partitions(groups.name))
        new = [k for k in seen if k not in existing]
        if new:
            context.instance.add_dynamic_partitions(groups.name, new)
            context.log.info(f"registered {len(new)} new {groups.name} partitions: {new[:20]}")
        context.log.info(f"ingested {len(frame)} rows into {len(keys)} period files")
        return dg.MaterializeResult(
            metadata={
                "batch_rows": len(frame),
                "batch_periods": len(keys),
                "new_partitions": len(new),
                "read_window": f"{start:%Y-%m-%d} .. {end:%Y-%m-%d} (exclusive)",
                "lake_folder": dg.MetadataValue.path(the_lake.path(*RAW_FOLDER)),
            }
        )

    return [raw_sales]

