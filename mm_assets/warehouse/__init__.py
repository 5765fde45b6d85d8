"""The SQL warehouse BI tools read (forecast_predictions; later model_metrics, promotion_decisions)."""

from mm_assets.warehouse.warehouse import Warehouse

__all__ = ["Warehouse"]
