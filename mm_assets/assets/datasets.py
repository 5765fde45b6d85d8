"""series_datasets: every series of a store partition, cut from raw_sales into one sorted Parquet file.

Data-quality checks run on the cut data (duplicate keys, negative target, gaps inside a series' span) and are
reported per store partition as asset checks, with per-partition figures in the metadata.
"""


import tempfile

import dagster as dg

from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import CYCLE_GROUP, step_partition_keys
from mm_assets.assets.run_metadata import report_run_wide
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.assets.store_checks import evaluations, require_asset_selected, store_asset, store_check
from mm_assets.checks.data_quality import (
    QUALITY_CHECKS,
    WARNING_CHECKS,
    held_back_verdicts,
    quality_verdicts,
    rows_held_back,
)
from mm_assets.forecasting.series import DS, Y
from mm_assets.ingest.datasets import DatasetsError, dataset_file, write_datasets
from mm_assets.ingest.held import held_series
from mm_assets.lake import LakePathError
from mm_assets.reporting.partition_figures import dataset_figures
from mm_assets.resources import LakeResource
from mm_assets.settings import Settings


def series_datasets_asset(settings: Settings) -> dg.AssetsDefinition:
    """series_datasets for these settings (its store partitions, columns)."""
    cols = settings.columns

    @store_asset(
        settings,
        dg.AssetSpec(
            "series_datasets",
            deps=[dg.AssetDep("raw_sales", partition_mapping=dg.AllPartitionMapping())],
            group_name=CYCLE_GROUP,
            tags={"stage": "datasets"},
            kinds={"parquet"},
            description=(
                "All series of one store partition: canonical columns (ids, ds, y, regressors), sorted by ids and "
                "ds, one Parquet file per partition (`datasets/<partition>.parquet`). The input of training and "
                "scoring."
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
        ),
        [store_check(name, "series_datasets", settings, text) for name, text in QUALITY_CHECKS.items()],
    )
    def series_datasets(context: dg.AssetExecutionContext, lake: LakeResource):
        hold_settings(context, settings)
        require_asset_selected(context)
        the_lake, keys = lake.get(), step_partition_keys(context)
        with tempfile.TemporaryDirectory(prefix="mm-assets-datasets-") as spill:
            try:
                quality, missing = write_datasets(the_lake, settings, keys, spill)
            except DatasetsError as exc:
                raise dg.Failure(description=str(exc)) from None
            except LakePathError as exc:  # a store registered before the ingest refused such names
                bad = [k for k in keys if not _file_name_ok(the_lake, k)]
                raise dg.Failure(description=(
                    f"{exc}: store partition(s) {', '.join(map(repr, bad or keys))} cannot name a file. Rename the "
                    "store in the source (the ingest now refuses such names), then retire the old partition: "
                    f"`mm-assets retire-partition {bad[0] if bad else '<key>'}`")) from None
        for key, q in quality.iterrows():
            figures = dataset_figures(q, the_lake.path(dataset_file(key)), key in missing)
            context.add_asset_metadata(dagster_metadata(figures), partition_key=key)
        report_run_wide(context, {"batch_series": int(quality["series"].sum())})
        yield dg.MaterializeResult()
        verdicts = quality_verdicts(quality, missing, settings.max_normal_gap, settings.step,
                                    settings.ingest.absent_periods == "zero")
        held = held_series(the_lake)
        verdicts["no_series_held_back"] = held_back_verdicts(held, keys)
        verdicts["every_partition_has_rows"] = rows_held_back(verdicts["every_partition_has_rows"], held)
        yield from evaluations(context, verdicts, {name: dg.AssetCheckSeverity.WARN for name in WARNING_CHECKS})

    return series_datasets


def _file_name_ok(lake, key: str) -> bool:
    """Whether store partition ``key`` names a dataset file the lake accepts."""
    try:
        lake.path(dataset_file(key))
    except LakePathError:
        return False
    return True

