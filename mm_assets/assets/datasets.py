"""series_datasets: every series of a store partition, cut from raw_sales into one sorted Parquet file.

Data-quality checks run on the cut data (duplicate keys, negative target, gaps inside a series' span) and
are reported per batch as asset checks, with per-partition figures in the metadata.
"""


import tempfile

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mm_assets.assets.ingest import PLAN_FILE, RAW_FOLDER
from mm_assets.assets.partitions import group_backfill_policy, group_partitions
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.forecasting.series import DS, Y
from mm_assets.ingest.datasets import cut_partition, spill_by_partition
from mm_assets.ingest.validation import PARTITION_COLUMN
from mm_assets.resources import LakeResource, SettingsResource
from mm_assets.settings import Settings

DATASET_FOLDER = "datasets"
NO_ROWS = ("No rows in raw_sales for this store partition (closed, or renamed in the source): its dataset is "
           "empty, its champions and published forecasts stay as they were. If it is gone for good, retire it: "
           "`mm-assets retire-partition <key>`.")


def dataset_file(partition_key: str) -> str:
    return f"{DATASET_FOLDER}/{partition_key}.parquet"


def _plan_by_partition(the_lake, keys: list[str]) -> dict[str, pd.DataFrame]:
    """The current plan's rows (``raw_sales``' ``raw/plan/current.parquet``) of ``keys``, by partition."""
    if not the_lake.exists(*PLAN_FILE):
        return {}
    plan = the_lake.read_table(*PLAN_FILE, filters=[(PARTITION_COLUMN, "in", keys)]).to_pandas()
    return dict(tuple(plan.groupby(PARTITION_COLUMN, sort=False))) if len(plan) else {}


def build_dataset_assets(settings: Settings, raw_sales) -> list:
    cols = settings.columns

    @dg.asset(
        name="series_datasets",
        partitions_def=group_partitions(settings),
        backfill_policy=group_backfill_policy(settings),
        deps=[dg.AssetDep(raw_sales, partition_mapping=dg.AllPartitionMapping())],
        group_name="datasets",
        kinds={"parquet"},
        check_specs=[
            dg.AssetCheckSpec("no_duplicate_keys", asset="series_datasets",
                              description="No two rows share (ids, timestamp)."),
            dg.AssetCheckSpec("target_valid", asset="series_datasets",
                              description="No negative target values and no missing target before a series' "
                              "last observation (only planned future rows may lack it)."),
            dg.AssetCheckSpec("gaps_within_series", asset="series_datasets",
                              description="Missing periods inside a series' span (warns; models tolerate them)."),
            dg.AssetCheckSpec("every_partition_has_rows", asset="series_datasets",
                              description="Every store partition of the run has rows in raw_sales. One without (a "
                              "store closed or renamed in the source) gets an empty dataset and warns; the others "
                              "go on. Retire it with `mm-assets retire-partition <key>`."),
        ],
        description=(
            "All series of one store partition: canonical columns (ids, ds, y, regressors), sorted by ids and "
            "ds, one Parquet file per partition (datasets/<partition>.parquet). The input of training and scoring."
        ),
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    *[dg.TableColumn(c, "string", description="series id column") for c in cols.ids],
                    dg.TableColumn(DS, "datetime", description="period start"),
                    dg.TableColumn(Y, "float", description="target; NaN on planned future rows"),
                    *[dg.TableColumn(c, "float", description="regressor") for c in cols.regressors],
                ]
            )
        },
    )
    def series_datasets(
        context: dg.AssetExecutionContext, settings: SettingsResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        cfg = settings.get()
        the_lake = lake.get()
        keys = list(context.partition_keys)
        if not the_lake.list(*RAW_FOLDER, suffix=".parquet"):
            raise dg.Failure("no raw_sales files in the lake yet: materialize raw_sales partitions first")
        qualities = []
        missing = []
        with tempfile.TemporaryDirectory(prefix="mm-assets-datasets-") as spill:
            # one scan of the raw files, rows spilled per partition; then one partition in memory at a time
            try:
                raw_dataset = the_lake.dataset(*RAW_FOLDER)
                files = spill_by_partition(raw_dataset, keys, spill)
            except (pa.ArrowInvalid, OSError) as exc:  # a damaged period file: say which and how to heal it
                raise dg.Failure(description=(
                    f"raw_sales files in the lake cannot be read: {exc}. Re-ingest that period (materialize its "
                    "raw_sales partition, or run `mm-assets cycle`, which re-ingests every period); nothing was "
                    "written."
                )) from None
            plan = _plan_by_partition(the_lake, keys)
            for key in keys:
                if key in files:
                    raw = pq.read_table(files[key])
                else:  # registered, but no rows (closed or renamed): an empty dataset, so its batch goes on
                    missing.append(key)
                    raw = raw_dataset.schema.empty_table()
                planned = plan.get(key)
                if planned is not None and raw.num_rows:  # planned rows after the partition's newest period
                    ts = cfg.columns.timestamp
                    newest = pd.Timestamp(pc.max(raw.column(ts)).as_py())
                    later = pa.Table.from_pandas(planned[planned[ts] > newest], preserve_index=False)
                    raw = pa.concat_tables([raw, later.select(raw.column_names).cast(raw.schema)])
                part, quality = cut_partition(raw, cfg, key)
                del raw
                qualities.append(quality)
                the_lake.write_parquet(part, dataset_file(key))
                q = quality.loc[key]
                context.add_asset_metadata(
                    {
                        "series": int(q["series"]),
                        "rows": int(q["rows"]),
                        "first_ds": str(q["first_ds"].date()),
                        "last_ds": str(q["last_ds"].date()),
                        "gaps": int(q["gaps"]),
                        "series_with_gaps": int(q["series_with_gaps"]),
                        "short_series": int(q["short_series"]),
                        "path": dg.MetadataValue.path(the_lake.path(dataset_file(key))),
                        **({"warning": NO_ROWS} if key in missing else {}),
                    },
                    partition_key=key,
                )
        quality = pd.concat(qualities)
        dups = int(quality["duplicate_keys"].sum())
        neg = int(quality["negative_target"].sum())
        missing_target = int(quality["missing_target"].sum())
        gaps = int(quality["gaps"].sum())
        report_run_wide(context, {"batch_series": int(quality["series"].sum())})
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(check_name="no_duplicate_keys", passed=dups == 0,
                                    metadata={"duplicate_rows": dups}),
                dg.AssetCheckResult(check_name="target_valid", passed=neg == 0 and missing_target == 0,
                                    metadata={"negative_rows": neg, "missing_target_rows": missing_target}),
                dg.AssetCheckResult(
                    check_name="every_partition_has_rows", passed=not missing, severity=dg.AssetCheckSeverity.WARN,
                    description=f"{len(missing)} partitions without rows: {', '.join(missing[:20])}. {NO_ROWS}"
                    if missing else None,
                    metadata={"partitions_without_rows": len(missing),
                              "partitions": dg.MetadataValue.json(missing[:100])},
                ),
                dg.AssetCheckResult(
                    check_name="gaps_within_series",
                    passed=gaps == 0,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "missing_periods": gaps,
                        "series_with_gaps": int(quality["series_with_gaps"].sum()),
                    },
                ),
            ],
        )

    return [series_datasets]

