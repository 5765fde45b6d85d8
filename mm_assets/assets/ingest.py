"""raw_sales: the source's rows of each period, copied into the lake as one Parquet file per period.

A backfill of any number of periods is one run (BackfillPolicy.single_run); the reading, validation, staging
and plan refresh are ``ingest.periods.ingest_periods``. A series with a bad row is held back, not the run: the run
succeeds, warns, and names it in ``series_held_back`` / ``held_back``. New stores seen in the data are registered as store
partitions here, so the model assets pick them up automatically.
"""


import dagster as dg

from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import CYCLE_GROUP, group_partitions, period_partitions, too_many_partitions
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.ingest.held import held_back_line, held_back_table, held_kinds, kinds_line
from mm_assets.ingest.periods import RAW_FOLDER, IngestError, ingest_periods, sale_lag
from mm_assets.ingest.validation import PARTITION_COLUMN
from mm_assets.resources import LakeResource, SourceResource
from mm_assets.settings import Settings

SOURCE_IS_CURRENT = "source_is_current"
NO_ROWS_HELD_BACK = "no_rows_held_back"


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
        registered = len(existing) + len(new)
        advice = too_many_partitions(settings, registered)
        if new:
            context.instance.add_dynamic_partitions(groups.name, new)
            context.log.info(f"registered {len(new)} new {groups.name} partitions: {new[:20]}")
            if advice:
                context.log.warning(advice)
        context.log.info(f"ingested {result.rows} rows into {len(keys)} period files")
        if result.rewritten:
            context.log.warning(
                f"{len(result.rewritten)} periods already ingested were rewritten, their rows changed in the source "
                f"(e.g. {', '.join(result.rewritten[:5])})"
                + (f", {len(result.resized)} of them with rows removed, or added beside changed values (a store or "
                   "series gone from the source, or a reload?)" if result.resized else "")
                + ": the models retrain on the new rows, and forecast_accuracy judges the forecasts of those periods "
                "again (within its window)")
        if result.late_sales:
            context.log.info(
                f"{len(result.late_sales)} periods already ingested got sales they lacked, no stored one changed "
                f"(e.g. {', '.join(result.late_sales[:5])}: a store that reported late, or one new to the source with "
                "its history; no corrections): forecast_accuracy judges their forecasts with them")
        if result.rebuilt:
            context.log.warning(
                f"{len(result.rebuilt)} period files in the lake could not be read (damaged: cut short, or not "
                f"Parquet) and were written again from the source (e.g. {', '.join(result.rebuilt[:5])})")
        if result.reshaped:
            context.log.info(
                f"{len(result.reshaped)} periods already ingested were written again with the columns now configured "
                f"(e.g. {', '.join(result.reshaped[:5])}; their actuals did not change, so they are no corrections): "
                "the models retrain with the new columns")
        if result.held:
            context.log.warning(held_back_line(result.held))
        behind = sale_lag(settings, result.newest_sale)
        if behind:
            context.log.warning(behind)
        checks = [dg.AssetCheckResult(
            check_name=SOURCE_IS_CURRENT, passed=behind is None, severity=dg.AssetCheckSeverity.WARN,
            description=behind or "the source's newest sale is within ingest.max_normal_gap periods of today",
            metadata=dagster_metadata({"newest_sale": str(result.newest_sale.date()) if result.newest_sale is not None
                                       else "none"}),
        ), dg.AssetCheckResult(
            check_name=NO_ROWS_HELD_BACK, passed=not result.held, severity=dg.AssetCheckSeverity.WARN,
            description=held_back_line(result.held) if result.held else "no series held back for bad rows",
            metadata={"series_held_back": len(result.held)},
        )]
        return dg.MaterializeResult(
            check_results=[c for c in checks
                           if dg.AssetCheckKey(context.asset_key, c.check_name) in context.selected_asset_check_keys],
            metadata={
                "series_held_back": len(result.held),
                **({"held_back": dg.MetadataValue.md(held_back_table(result.held)),
                    "held_back_series": dg.MetadataValue.json([h["series"] for h in result.held[:20]]),
                    "held_back_first_problem": result.held[0]["problem"],
                    "held_back_by_problem": kinds_line(held_kinds(result.held))} if result.held else {}),
                "batch_rows": result.rows,
                "batch_periods": len(keys),
                "periods_rewritten": len(result.rewritten),
                "periods_resized": len(result.resized),  # of the rewritten: rows added or removed
                "periods_late_sales": len(result.late_sales),  # sales added beside unchanged ones: no corrections
                "periods_rebuilt": len(result.rebuilt),
                "periods_reshaped": len(result.reshaped),
                "rewritten_periods": dg.MetadataValue.json(result.rewritten[:100]),
                "plan_rows": result.plan_rows,
                "new_partitions": len(new),
                "store_partitions": registered,
                **({"partitions_note": advice} if advice else {}),
                "read_window": f"{start:%Y-%m-%d} .. {end:%Y-%m-%d} (exclusive)",
                "lake_folder": dg.MetadataValue.path(lake.get().path(*RAW_FOLDER)),
            }
        )

    return raw_sales

