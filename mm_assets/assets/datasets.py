"""series_datasets: every series of a store partition, cut from raw_sales into one sorted Parquet file.

Data-quality checks run on the cut data (duplicate keys, negative target, gaps inside a series' span) and
are reported per batch as asset checks, with per-partition figures in the metadata.
"""


import tempfile

import dagster as dg

from mm_assets.assets.partitions import CYCLE_GROUP, group_backfill_policy, group_partitions
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.forecasting.series import DS, Y
from mm_assets.ingest.datasets import DatasetsError, dataset_file, write_datasets
from mm_assets.resources import LakeResource, SettingsResource
from mm_assets.settings import Settings

NO_ROWS = ("No rows in raw_sales for this store partition (closed, or renamed in the source): its dataset is "
           "empty, its champions and published forecasts stay as they were. If it is gone for good, retire it: "
           "`mm-assets retire-partition <key>`.")


def build_dataset_assets(settings: Settings, raw_sales) -> list:
    cols = settings.columns

    @dg.asset(
        name="series_datasets",
        partitions_def=group_partitions(settings),
        backfill_policy=group_backfill_policy(settings),
        deps=[dg.AssetDep(raw_sales, partition_mapping=dg.AllPartitionMapping())],
        group_name=CYCLE_GROUP,
        tags={"stage": "datasets"},
        kinds={"parquet"},
        check_specs=[
            dg.AssetCheckSpec("no_duplicate_keys", asset="series_datasets",
                              description="No two rows share (ids, timestamp)."),
            dg.AssetCheckSpec("target_valid", asset="series_datasets",
                              description="No negative target values and no missing target before a series' "
                              "last observation (only planned future rows may lack it)."),
            dg.AssetCheckSpec("gaps_within_series", asset="series_datasets",
                              description="No series misses more than ingest.max_normal_gap periods in a row (warns: an "
                              "outage in the source?). Shorter gaps (closed days, a missing week) are normal: "
                              "counted in the metadata only."),
            dg.AssetCheckSpec("every_partition_has_rows", asset="series_datasets",
                              description="Every store partition of the run has rows in raw_sales. One without (a "
                              "store closed or renamed in the source) gets an empty dataset and warns; the others "
                              "go on. Retire it with `mm-assets retire-partition <key>`."),
        ],
        description=(
            "All series of one store partition: canonical columns (ids, ds, y, regressors), sorted by ids and "
            "ds, one Parquet file per partition (`datasets/<partition>.parquet`). The input of training and scoring."
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
        cfg, the_lake, keys = settings.get(), lake.get(), list(context.partition_keys)
        with tempfile.TemporaryDirectory(prefix="mm-assets-datasets-") as spill:
            try:
                quality, missing = write_datasets(the_lake, cfg, keys, spill)
            except DatasetsError as exc:
                raise dg.Failure(description=str(exc)) from None
        for key, q in quality.iterrows():
            context.add_asset_metadata(
                {
                    "series": int(q["series"]),
                    "rows": int(q["rows"]),
                    "first_ds": str(q["first_ds"].date()),
                    "last_ds": str(q["last_ds"].date()),
                    "gaps": int(q["gaps"]),
                    "series_with_gaps": int(q["series_with_gaps"]),
                    "series_with_long_gaps": int(q["series_with_long_gaps"]),
                    "short_series": int(q["short_series"]),
                    "path": dg.MetadataValue.path(the_lake.path(dataset_file(key))),
                    **({"warning": NO_ROWS} if key in missing else {}),
                },
                partition_key=key,
            )
        dups = int(quality["duplicate_keys"].sum())
        neg = int(quality["negative_target"].sum())
        missing_target = int(quality["missing_target"].sum())
        gaps = int(quality["gaps"].sum())
        long_gaps = int(quality["series_with_long_gaps"].sum())
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
                    passed=long_gaps == 0,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=f"{long_gaps} series miss more than {cfg.max_normal_gap} periods in a row (an "
                    "outage in the source?); short gaps (closed days) are normal and only counted in the metadata "
                    "(ingest.max_normal_gap)" if long_gaps else None,
                    metadata={
                        "missing_periods": gaps,
                        "series_with_gaps": int(quality["series_with_gaps"].sum()),
                        "series_with_long_gaps": long_gaps,
                        "max_normal_gap": cfg.max_normal_gap,
                    },
                ),
            ],
        )

    return [series_datasets]

