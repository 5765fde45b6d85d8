"""Batch-scoring entry script (Azure ML parallel-job contract): one mini-batch = one series.

``init()`` loads the model manifest (which model version serves which series: a small Parquet file written by
the caller) but no model. ``run()`` loads the series' model from its bundle byte range (bundles are cached per
worker, bounded), forecasts ``horizon`` periods after the series' last observation using planned regressors
where the data carries them, and returns one row per forecast period.

Every series gets a forecast: without a model (never trained, or failed) or when its model cannot forecast,
the seasonal-naive baseline serves it, flagged ``model_source = baseline`` with the reason in ``note``.
"""

from __future__ import annotations

import pandas as pd

from mm_assets.forecasting.models import SeasonalNaive
from mm_assets.forecasting.series import SeriesConfig, regularize
from mm_assets.forecasting.training import forecast_from_model
from mm_assets.ids import series_key
from mm_assets.parallel.contract import MiniBatchContext, ids_of, manifest_init

SOURCE_MODEL = "champion"
SOURCE_BASELINE = "baseline"

_state: dict = {}


def init() -> None:
    _state.update(manifest_init("mm-assets batch scoring entry script"))


def _baseline(mini_batch: pd.DataFrame, cfg: SeriesConfig) -> tuple[pd.DataFrame, dict]:
    model = SeasonalNaive(cfg).fit(regularize(mini_batch, cfg))
    return forecast_from_model(model, cfg, rows=mini_batch)


def run(mini_batch: pd.DataFrame, mini_batch_context: MiniBatchContext) -> pd.DataFrame:
    settings, cfg = _state["settings"], _state["cfg"]
    id_cols = list(settings.columns.ids)
    ids = ids_of(mini_batch_context, mini_batch, id_cols)
    key = series_key(ids)
    entry = _state["manifest"].get(key)
    note = None
    forecast = None
    if entry is not None:
        try:
            model = _state["cache"].model(entry["artifact_uri"], int(entry["artifact_offset"]),
                                          int(entry["artifact_size"]))
            forecast, info = forecast_from_model(model, cfg, rows=mini_batch)
            model_type, version, source = entry["model_type"], int(entry["version"]), SOURCE_MODEL
        except Exception as exc:  # the model cannot serve: the baseline does, and says why
            note = f"model v{entry.get('version')} failed to forecast: {type(exc).__name__}: {exc}"
    else:
        note = "no trained model for this series"
    if forecast is None:
        forecast, info = _baseline(mini_batch, cfg)
        model_type, version, source = "seasonal_naive", 0, SOURCE_BASELINE
    out = forecast.assign(
        **dict(zip(id_cols, ids)),
        series_key=key,
        origin=info["origin"],
        model_type=model_type,
        model_version=version,
        model_source=source,
        planned_periods=info["planned_periods"],
        note=note,
    )
    return out[[*id_cols, "series_key", "origin", "ds", "yhat", "model_type", "model_version", "model_source",
                "planned_periods", "note"]]
