"""backtest and backtest_metrics: rolling-origin accuracy of the models, on demand (group ``evaluation``).

``backtest`` runs the backtest entry script (the same parallel contract and runner as training, so it scales
out on Azure ML the same way) over the series of each store partition: every series is re-trained at
``origins`` rolling origins (``every`` periods apart, the horizon by default) and every forecast is kept with its
origin (``backtest/forecasts/<partition>``), with per-series metrics (``backtest/series_metrics/<partition>``)
and the pooled figures per model in the partition metadata. ``backtest_metrics`` publishes them to the warehouse
table of that name.

Not in the daily chain: no sensor reacts to these assets and they react to nothing; run ``backtest_job`` from
the UI (its config: origins, every, horizon, gap, models) or ``mm-assets backtest``.
"""

import dagster as dg
import pandas as pd

from mm_assets.assets.fanout import merge_results, run_fanout, with_partition_keys
from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import group_backfill_policy, group_partitions
from mm_assets.assets.settings_hold import hold_settings
from mm_assets.assets.table_schemas import table_metadata
from mm_assets.checks.verdict import some_partitions
from mm_assets.forecasting.backtest import pooled_metrics, series_metrics
from mm_assets.forecasting.model_types import AUTO, MODEL_TYPES
from mm_assets.forecasting.models import is_global
from mm_assets.parallel.contract import BACKTEST_ENTRY
from mm_assets.reporting.markdown import LakePath
from mm_assets.reporting.partition_figures import backtest_figures
from mm_assets.resources import LakeResource, RunnerResource, WarehouseResource
from mm_assets.settings import Settings

BACKTEST_FOLDER = "backtest"


def backtest_file(kind: str, partition_key: str) -> str:
    """``kind``: ``forecasts`` (every forecast row) or ``series_metrics`` (per series and model)."""
    return f"{BACKTEST_FOLDER}/{kind}/{partition_key}.parquet"


class BacktestConfig(dg.Config):
    """What to backtest; horizon and gap default to the settings' and override them for this run only."""

    origins: int = 5
    every: int | None = None  # periods between origins; None: the horizon (windows that do not overlap)
    horizon: int | None = None
    gap: int | None = None
    models: list[str] = []  # model types and/or "auto"; [] = the configured model.type


def backtest_window(settings: Settings, config: BacktestConfig) -> tuple[Settings, int]:
    """(the settings with this run's horizon and gap, the periods between its origins): what the backtest ran with
    and what its metrics and messages name."""
    run_settings = backtest_settings(settings, config.horizon, config.gap)
    return run_settings, config.every or run_settings.horizon


def backtest_settings(settings: Settings, horizon: int | None = None, gap: int | None = None) -> Settings:
    """The settings with this run's horizon and gap (validated again, so a bad override names the field)."""
    data = settings.model_dump()
    if horizon is not None:
        data["horizon"] = horizon
    if gap is not None:
        data["gap"] = gap
    return Settings.model_validate(data)


def models_of(config_models: list[str], settings: Settings) -> list[str]:

    models = [m.strip() for m in config_models if m.strip()] or [settings.model.type]
    problem = unknown_models(models)
    if problem:
        raise dg.Failure(problem)
    return list(dict.fromkeys(models))


def unknown_models(models: list[str]) -> str | None:
    """What is wrong with a backtest's model list (None: every name is a model type or ``auto``)."""
    unknown = [m for m in models if m not in (*MODEL_TYPES, AUTO)]
    return f"backtest models {unknown} are unknown; use {', '.join((*MODEL_TYPES, AUTO))}" if unknown else None


def write_store_backtest(the_lake, key: str, part: pd.DataFrame, ids: list[str], stamp: dict) -> dict:
    """One store's backtest forecasts and per-series metrics to the lake (stamped with the run, horizon and gap)
    → its figures. A store with nothing backtested (every series failed) keeps no stale files of an older run."""
    meta: dict = {"series": int(part["series_key"].nunique()) if len(part) else 0, "rows": len(part),
                  "horizon": stamp["horizon"], "gap": stamp["gap"]}
    if not len(part):
        for kind in ("forecasts", "series_metrics"):
            if the_lake.exists(backtest_file(kind, key)):
                the_lake.delete(backtest_file(kind, key))
        return meta
    the_lake.write_parquet(part.assign(**stamp), backtest_file("forecasts", key))
    the_lake.write_parquet(series_metrics(part, ids).assign(**stamp), backtest_file("series_metrics", key))
    meta.update(backtest_figures(pooled_metrics(part, ids)))
    meta["path"] = LakePath(the_lake.path(backtest_file("forecasts", key)))
    return meta


def backtest_asset(settings: Settings) -> dg.AssetsDefinition:
    """backtest (on demand) for these settings (store partitions, id columns)."""
    cols = settings.columns

    @dg.asset(
        name="backtest",
        partitions_def=group_partitions(settings),
        backfill_policy=group_backfill_policy(settings),
        deps=["series_datasets"],
        group_name="evaluation",
        kinds={"parquet", "python"},
        description=(
            "Rolling-origin backtest of every series of each store partition (on demand): re-trained at N origins "
            "`every` periods apart (default: the horizon), forecasting gap+1..gap+horizon periods after each; every "
            "forecast with its "
            "origin in `backtest/forecasts/<partition>.parquet`, per-series metrics (MAPE, WAPE, bias, MASE, beats "
            "naive / seasonal naive) in `backtest/series_metrics/<partition>.parquet`, pooled figures per model in "
            "the metadata."
        ),
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    *[dg.TableColumn(c, "string") for c in cols.ids],
                    dg.TableColumn("model_type", "string", description="model backtested (or auto)"),
                    dg.TableColumn("used_model", "string", description="model that made the forecast"),
                    dg.TableColumn("origin", "datetime", description="last training period"),
                    dg.TableColumn("ds", "datetime", description="target period"),
                    dg.TableColumn("step", "int", description="periods after the origin (gap+1..gap+horizon)"),
                    dg.TableColumn("actual", "float"),
                    dg.TableColumn("forecast", "float"),
                    dg.TableColumn("naive", "float", description="last value at the origin"),
                    dg.TableColumn("snaive", "float", description="seasonal-naive forecast"),
                ]
            )
        },
    )
    def backtest(
        context: dg.AssetExecutionContext,
        config: BacktestConfig,
        lake: LakeResource,
        runner: RunnerResource,
    ) -> dg.MaterializeResult:
        hold_settings(context, settings)
        run_settings, every = backtest_window(settings, config)
        models = models_of(config.models, run_settings)
        if config.origins < 1:
            raise dg.Failure(f"backtest origins must be >= 1, got {config.origins}")
        if config.every is not None and config.every < 1:
            raise dg.Failure(f"backtest every must be >= 1 period between origins (or unset: the horizon), got "
                             f"{config.every}")
        spacing = ["--every", str(config.every)] if config.every else []
        the_lake = lake.get()
        run_id = context.run.run_id
        # per-series models fan out series by series; a global model runs as one whole-batch job of its own
        jobs = [([m for m in models if not is_global(m)], False), ([m for m in models if is_global(m)], True)]
        results = [
            run_fanout(context, runner, lake, run_settings, BACKTEST_ENTRY,
                       ["--models", ",".join(group), "--origins", str(config.origins), *spacing], whole_batch=whole,
                       context_rows=run_settings.model.global_context_rows)  # as training: see run_fanout
            for group, whole in jobs if group
        ]
        result = merge_results([r for r, _ in results])
        stop_error = "; ".join(e for _, e in results if e) or None
        rows = with_partition_keys(result.rows, run_settings)
        failures = with_partition_keys(result.failures, run_settings)
        for f in failures.head(20).itertuples():
            context.log.warning(f"backtest: series {f.series_key} failed: {f.error_type}: {f.error_message}")
        ids = list(run_settings.columns.ids)
        stamp = {"backtest_run_id": run_id, "horizon": run_settings.horizon, "gap": run_settings.gap,
                 "every": every}
        for key in context.partition_keys:
            part = rows[rows["partition_key"] == key].drop(columns="partition_key") if len(rows) else rows
            failed = int((failures["partition_key"] == key).sum()) if len(failures) else 0
            meta = write_store_backtest(the_lake, key, part, ids, stamp)
            meta.update(failed=failed, origins=config.origins, every=stamp["every"], models=", ".join(models))
            context.add_asset_metadata(dagster_metadata(meta), partition_key=key)
        if stop_error:
            raise dg.Failure(description=stop_error, metadata={"failed_series": len(failures)})
        series_total = int(rows["series_key"].nunique()) + len(failures) if len(rows) else len(failures)
        metadata = {"batch_series": series_total, "batch_failed": len(failures), "batch_rows": len(rows),
                    "batch_wall_s": round(result.wall_seconds, 2)}
        if len(rows):
            metadata.update(backtest_figures(pooled_metrics(rows, ids)))
        return dg.MaterializeResult(metadata=dagster_metadata(metadata))

    return backtest


def backtest_metrics_asset(settings: Settings) -> dg.AssetsDefinition:
    """backtest_metrics (the warehouse table of the newest backtest) for these settings."""

    @dg.asset(
        name="backtest_metrics",
        partitions_def=group_partitions(settings),
        backfill_policy=group_backfill_policy(settings),
        deps=["backtest"],
        group_name="evaluation",
        kinds={"sql"},
        description=(
            "Warehouse table backtest_metrics: per series and model (scope 'series') and pooled per store "
            "partition (scope 'partition'): MAPE, WAPE, bias, MASE, beats naive / seasonal naive, with horizon, gap, "
            "origins and the sums that pool again. Kept per backtest run; re-publishing a run replaces it."
        ),
        metadata=table_metadata(settings.columns.ids, "backtest_metrics"),
    )
    def backtest_metrics(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        hold_settings(context, settings)
        ids = list(settings.columns.ids)
        the_lake = lake.get()
        wh = warehouse.get(ids)
        total = 0
        # the backtest of this run (backtest_job) was configured with its own horizon, gap and spacing
        ran = (context.run.run_config or {}).get("ops", {}).get("backtest")
        run_settings, every = backtest_window(settings, BacktestConfig(**((ran or {}).get("config") or {})))
        horizon, gap = run_settings.horizon, run_settings.gap
        why = ("none of its series could be backtested: each failed (see the backtest's metadata and run log) or is "
               f"shorter than one origin needs (gap + horizon + 2 = {gap + horizon + 2} periods, and {every} more for "
               "each further origin)")
        without = [key for key in context.partition_keys
                   if not the_lake.exists(backtest_file("series_metrics", key))]
        if len(without) == len(context.partition_keys):
            first = "" if ran is not None else "materialize backtest first. If it ran, "
            raise dg.Failure(f"no backtest results for partition(s) {some_partitions(without)}: {first}{why}")
        if without:  # a new store too short for one origin does not take the others' results with it
            context.log.warning(f"no backtest results for {some_partitions(without)}, left out: {why}")
        for key in context.partition_keys:
            path = backtest_file("series_metrics", key)
            if key in without:
                context.add_asset_metadata({"rows": 0, "warning": f"no backtest results: {why}"}, partition_key=key)
                continue
            per_series = the_lake.read_parquet(path)
            forecasts = the_lake.read_parquet(backtest_file("forecasts", key))
            pooled = pooled_metrics(forecasts, ids)  # with the naive and seasonal-naive baselines' rows
            first = per_series.iloc[0]
            pooled = pooled.assign(scope="partition", horizon=int(first["horizon"]), gap=int(first["gap"]),
                                   backtest_run_id=first["backtest_run_id"],
                                   origins=int(per_series["origins"].max()),
                                   every=int(first["every"]) if "every" in per_series else None,  # files of before
                                   **dict.fromkeys(ids, ""))
            frame = pd.concat([per_series.assign(scope="series"), pooled], ignore_index=True)
            count = wh.publish_backtest(key, context.run.run_id, frame)
            total += count
            context.add_asset_metadata({"rows": count, "backtest_run_id": str(first["backtest_run_id"])},
                                       partition_key=key)
        return dg.MaterializeResult(metadata={"batch_rows": total, "partitions_without_results": len(without)})

    return backtest_metrics
