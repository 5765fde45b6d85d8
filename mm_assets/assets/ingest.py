"""raw_sales: the source's rows of each period, copied into the lake as one Parquet file per period.

A backfill of any number of periods is one run (BackfillPolicy.single_run); the reading, validation, staging
and plan refresh are ``ingest.periods.ingest_periods``. A series with a bad row is held back, not the run: the run
succeeds, warns, and names it in ``series_held_back`` / ``held_back``. New stores seen in the data are registered as store
partitions here, so the model assets pick them up automatically.
"""


import dagster as dg

from mm_assets.assets.leftovers import remove_ended_runs_files
from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import CYCLE_GROUP, group_partitions, period_partitions, too_many_partitions
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.ingest.held import held_back_line
from mm_assets.ingest.periods import (
    RAW_FOLDER,
    STAGING_FOLDER,
    IngestError,
    IngestResult,
    ingest_periods,
    sale_lag,
)
from mm_assets.ingest.validation import PARTITION_COLUMN
from mm_assets.reporting.ingest_summary import WARNING, ingest_log, ingest_metadata, spellings_line
from mm_assets.reporting.words import counted
from mm_assets.resources import LakeResource, SourceResource
from mm_assets.settings import Settings

SOURCE_IS_CURRENT = "source_is_current"
NO_ROWS_HELD_BACK = "no_rows_held_back"
IDS_WRITTEN_ONE_WAY = "ids_written_one_way"


def raw_sales_asset(settings: Settings) -> dg.AssetsDefinition:
    """raw_sales for these settings (its periods, columns)."""
    periods = period_partitions(settings)
    groups = group_partitions(settings)
    cols = settings.columns

    @dg.asset(
        name="raw_sales",
        partitions_def=periods,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=CYCLE_GROUP,
        tags={"stage": "ingest"},
        kinds={"sql", "parquet"},
        description=(
            "Source rows of one period (day or week), validated and copied into the lake as "
            "`raw/sales/<period>.parquet`. Registers new store partitions found in the data."
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
        check_specs=[dg.AssetCheckSpec(
            SOURCE_IS_CURRENT, asset="raw_sales",
            description="The source's newest sale is at most ingest.max_normal_gap periods before today. A feed "
            "that stopped ingests empty periods, all green, and the models retrain on the same data: this check "
            "is where the schedule's runs say so (a warning)."),
            dg.AssetCheckSpec(
                NO_ROWS_HELD_BACK, asset="raw_sales",
                description="The run held back no series for bad rows. Each held series' store check "
                "no_series_held_back on series_datasets is red too; this one also sees a series whose store id is "
                "unusable (it names no store partition)."),
            dg.AssetCheckSpec(
                IDS_WRITTEN_ONE_WAY, asset="raw_sales",
                description="No id value is written two ways in the rows read ('1' and '1.0', 'I05' and 'i05', "
                "'Store A' and 'STORE A'): each spelling is a series of its own with part of the sales. Warns, with "
                "the values and the fix in source.query; two products that truly differ only in case stay apart."),
        ],
    )
    def raw_sales(
        context: dg.AssetExecutionContext,
        source: SourceResource,
        lake: LakeResource,
    ) -> dg.MaterializeResult:
        hold_settings(context, settings)
        window = context.partition_time_window
        start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
        keys = list(context.partition_keys)
        remove_ended_runs_files(context, lake.get(), STAGING_FOLDER)
        try:
            result = ingest_periods(source.get(), lake.get(), settings, keys, end,
                                    refresh_plan=keys[-1] == periods.get_last_partition_key(),
                                    run_id=context.run.run_id)
        except IngestError as exc:
            raise dg.Failure(description=str(exc), metadata=exc.metadata) from None
        for key, metadata in result.periods:
            context.add_asset_metadata(metadata, partition_key=key)
        existing = set(context.instance.get_dynamic_partitions(groups.name))
        new = [k for k in result.stores if k not in existing]
        advice = too_many_partitions(settings, len(existing) + len(new))
        if new:
            context.instance.add_dynamic_partitions(groups.name, new)
            shown = ", ".join(new[:20]) + (f" and {len(new) - 20:,} more" if len(new) > 20 else "")
            context.log.info(f"registered {counted(len(new), 'new partition')} of {groups.name}: {shown}")
            if advice:
                context.log.warning(advice)
        context.log.info(f"ingested {result.rows} rows into {len(keys)} period files")
        behind = sale_lag(settings, result.newest_sale)
        for level, line in [*ingest_log(result), *([(WARNING, behind)] if behind else [])]:
            getattr(context.log, level)(line)
        checks = [c for c in ingest_checks(result, behind)
                  if dg.AssetCheckKey(context.asset_key, c.check_name) in context.selected_asset_check_keys]
        # the run's figures once, in an observation: as the materialization's metadata they were copied onto every
        # period of the run, a full re-ingest's hundreds of periods a day (the instance grew by megabytes a day)
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata=dagster_metadata(ingest_metadata(
            result, len(keys), len(new), len(existing) + len(new), advice, start, end,
            lake.get().path(*RAW_FOLDER)))))
        return dg.MaterializeResult(check_results=checks)

    return raw_sales


def ingest_checks(result: IngestResult, behind: str | None) -> list[dg.AssetCheckResult]:
    """The run's three warnings: the source's newest sale is too old (``behind``), series held back for bad rows,
    id values written two ways."""
    return [dg.AssetCheckResult(
        check_name=SOURCE_IS_CURRENT, passed=behind is None, severity=dg.AssetCheckSeverity.WARN,
        description=behind or "the source's newest sale is within ingest.max_normal_gap periods of today",
        metadata=dagster_metadata({"newest_sale": str(result.newest_sale.date()) if result.newest_sale is not None
                                   else "none"}),
    ), dg.AssetCheckResult(
        check_name=NO_ROWS_HELD_BACK, passed=not result.held, severity=dg.AssetCheckSeverity.WARN,
        description=held_back_line(result.held) if result.held else "no series held back for bad rows",
        metadata={"series_held_back": len(result.held)},
    ), dg.AssetCheckResult(
        check_name=IDS_WRITTEN_ONE_WAY, passed=not result.spellings, severity=dg.AssetCheckSeverity.WARN,
        description=spellings_line(result.spellings) if result.spellings else "every id value is written one way",
        metadata={"id_columns_written_two_ways": len(result.spellings)},
    )]

