"""The one Definitions object (what workspace.yaml loads), built from the settings in force.

``build_definitions(settings)`` is what tests call with their own settings; ``defs`` uses the settings file
(``$MM_ASSETS_SETTINGS`` or ./mm_assets.yaml) and ``MM_ASSETS__*`` environment overrides.
"""

from __future__ import annotations

import dagster as dg

from mm_assets.assets.accuracy import build_accuracy_assets
from mm_assets.assets.datasets import build_dataset_assets
from mm_assets.assets.evaluation import build_evaluation_assets
from mm_assets.assets.ingest import build_ingest_assets
from mm_assets.assets.promotion import build_promotion_assets
from mm_assets.assets.publishing import build_publishing_assets
from mm_assets.assets.scoring import build_scoring_assets
from mm_assets.assets.training import build_training_assets
from mm_assets.automation import build_automation, build_backtest_job, build_jobs
from mm_assets.resources import build_resources
from mm_assets.settings import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    (raw_sales,) = build_ingest_assets(settings)
    (series_datasets,) = build_dataset_assets(settings, raw_sales)
    (trained_models,) = build_training_assets(settings, series_datasets)
    (production_models,) = build_promotion_assets(settings, series_datasets, trained_models)
    (batch_predictions,) = build_scoring_assets(settings, series_datasets, production_models)
    (warehouse_tables,) = build_publishing_assets(settings, batch_predictions, trained_models, production_models)
    (forecast_accuracy,) = build_accuracy_assets(settings, series_datasets)
    backtest, backtest_metrics = build_evaluation_assets(settings, series_datasets)  # on demand, not chained
    jobs = build_jobs(settings)
    schedules, sensors = build_automation(settings, *jobs)
    assets = [raw_sales, series_datasets, trained_models, production_models, batch_predictions, warehouse_tables,
              forecast_accuracy, backtest, backtest_metrics]
    owners = list(settings.operations.owners)
    return dg.Definitions(
        assets=dg.map_asset_specs(lambda spec: spec.replace_attributes(owners=owners), assets),
        jobs=[*jobs, build_backtest_job(settings)],
        schedules=schedules,
        sensors=sensors,
        resources=build_resources(settings),
    )


defs = build_definitions(load_settings())
