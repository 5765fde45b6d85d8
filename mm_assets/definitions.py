"""The one Definitions object (what workspace.yaml loads), built from the settings in force.

The partitions, column schemas, checks and schedules are derived from the settings when the code location loads;
each step of a run loads this module again when it starts, and so reads the settings file as it is then: a run is
held to the settings its first step read (``assets.settings_hold``). Edit the file between runs, and reload the code
location right after, so that the UI shows what the runs use.
Every asset is importable by name from here, built from the settings file (``$MM_ASSETS_SETTINGS`` or
./mm_assets.yaml) and ``MM_ASSETS__*`` environment overrides::

    from mm_assets.definitions import defs, trained_models

``build_definitions(settings)`` builds the same from other settings (the tests, the CLI's cycle runner).
"""

from __future__ import annotations

from typing import NamedTuple

import dagster as dg

from mm_assets.assets.accuracy import forecast_accuracy_asset
from mm_assets.assets.datasets import series_datasets_asset
from mm_assets.assets.evaluation import backtest_asset, backtest_metrics_asset
from mm_assets.assets.ingest import raw_sales_asset
from mm_assets.assets.promotion import production_models_asset
from mm_assets.assets.publishing import warehouse_tables_asset
from mm_assets.assets.scoring import batch_predictions_asset
from mm_assets.assets.training import trained_models_asset
from mm_assets.automation import build_automation, build_backtest_job, build_jobs
from mm_assets.resources import build_resources
from mm_assets.settings import Settings, load_settings


class ProjectAssets(NamedTuple):
    """Every asset definition of the project, in lineage order (the daily cycle, then the on-demand backtest)."""

    raw_sales: dg.AssetsDefinition
    series_datasets: dg.AssetsDefinition
    trained_models: dg.AssetsDefinition
    production_models: dg.AssetsDefinition
    batch_predictions: dg.AssetsDefinition
    warehouse_tables: dg.AssetsDefinition
    forecast_accuracy: dg.AssetsDefinition
    backtest: dg.AssetsDefinition
    backtest_metrics: dg.AssetsDefinition


def build_assets(settings: Settings) -> ProjectAssets:
    """The assets for these settings, each owned by ``operations.owners``."""
    factories = (raw_sales_asset, series_datasets_asset, trained_models_asset, production_models_asset,
                 batch_predictions_asset, warehouse_tables_asset, forecast_accuracy_asset, backtest_asset,
                 backtest_metrics_asset)
    owners = list(settings.operations.owners)
    built = [factory(settings) for factory in factories]
    return ProjectAssets(*dg.map_asset_specs(lambda spec: spec.replace_attributes(owners=owners), built))


def build_definitions(settings: Settings, assets: ProjectAssets | None = None) -> dg.Definitions:
    jobs = build_jobs(settings)
    schedules, sensors = build_automation(settings, *jobs)
    return dg.Definitions(
        assets=list(assets or build_assets(settings)),
        jobs=[*jobs, build_backtest_job(settings)],
        schedules=schedules,
        sensors=sensors,
        resources=build_resources(settings),
    )


settings = load_settings()
assets = build_assets(settings)
(raw_sales, series_datasets, trained_models, production_models, batch_predictions, warehouse_tables,
 forecast_accuracy, backtest, backtest_metrics) = assets
defs = build_definitions(settings, assets)
