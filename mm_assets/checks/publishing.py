"""The check of ``warehouse_tables``: every series' newest forecast is in the warehouse for the whole horizon."""

from __future__ import annotations

import pandas as pd

from mm_assets.checks.verdict import Verdict

COMPLETE_HORIZON = "complete_horizon"


def complete_horizon(key: str, predictions: pd.DataFrame, published: pd.DataFrame, id_columns: list[str],
                     horizon: int) -> Verdict:
    """One store: each series of ``predictions`` has ``horizon`` rows of its newest origin in ``published``
    (rows per series and origin, read back from the warehouse). Only those series are judged: a series gone from
    the source keeps its last forecasts in the warehouse, which may share this run's origin."""
    forecast = predictions[id_columns].drop_duplicates() if len(predictions) else pd.DataFrame(columns=id_columns)
    series = len(forecast)
    if len(published):
        published = published.merge(forecast.astype(published[id_columns].dtypes.to_dict()), on=id_columns)
    newest = published.sort_values("origin").groupby(id_columns, sort=False).tail(1) if len(published) else published
    complete = int((newest["rows"] == horizon).sum()) if len(newest) else 0
    return Verdict(
        passed=complete == series,
        metadata={"complete_series": complete, "series": series, "horizon": horizon},
        description=f"{series - complete} of {series} series of store {key} lack forecasts for part of the "
        f"{horizon}-period horizon in the warehouse (forecast_predictions): re-publish the store (materialize "
        "warehouse_tables for it).",
    )
