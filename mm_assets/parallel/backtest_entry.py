"""Backtest entry script (Azure ML parallel-job contract): one mini-batch = one series, or the whole batch when
a global model (``lightgbm``) is backtested.

``init()`` parses the job arguments: the models to compare (``--models``, comma-separated: any model type or
``auto``), the number of rolling origins (``--origins``) and the periods between them (``--every``, default the
horizon); horizon and lead time (gap) come with the settings
of the run. ``run()`` re-trains the series at every origin (``forecasting.backtest``) and returns one row per
model, origin and target period: the forecast, the actual, the naive and seasonal-naive forecasts of the same
period and the MASE scale of the origin's training data. The caller writes the rows to the lake and pools the
metrics (``backtest.series_metrics`` / ``pooled_metrics``), so every series' rows travel once and the metrics
are computed in one vectorised pass. Exceptions propagate (retried, then recorded as failed), as in training.
"""

from __future__ import annotations

import argparse

import pandas as pd

from mm_assets.forecasting.backtest import FORECAST_COLUMNS, backtest_series, model_params
from mm_assets.forecasting.global_training import backtest_global
from mm_assets.forecasting.models import is_global
from mm_assets.forecasting.series import SeriesConfig, regularize
from mm_assets.ids import series_keys
from mm_assets.parallel.contract import (
    CONTEXT_COLUMN,
    MiniBatchContext,
    common_arguments,
    series_in,
    settings_from_json,
)

_state: dict = {}


def init() -> None:
    parser = common_arguments(argparse.ArgumentParser(description="mm-assets backtest entry script"))
    parser.add_argument("--models", required=True, help="comma-separated model types (or auto) to backtest")
    parser.add_argument("--origins", type=int, required=True, help="rolling origins per series")
    parser.add_argument("--every", type=int, default=None, help="periods between origins (default: the horizon)")
    args, _ = parser.parse_known_args()
    settings = settings_from_json(args.settings_json)
    _state.update(
        settings=settings,
        cfg=SeriesConfig.from_settings(settings),
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        origins=args.origins,
        every=args.every,
        run_id=args.run_id,
    )


def run(mini_batch: pd.DataFrame, mini_batch_context: MiniBatchContext) -> pd.DataFrame:
    """One series (per-series models), or a whole batch when a global model is among the models: that one is
    backtested across every series of the mini-batch at once, the others series by series. Series whose rows
    ``CONTEXT_COLUMN`` marks (other stores', as training stages a small run) are learnt from only: no rows."""
    settings, cfg = _state["settings"], _state["cfg"]
    id_cols = list(settings.columns.ids)
    learnt_only = mini_batch.pop(CONTEXT_COLUMN).to_numpy(dtype=bool) if CONTEXT_COLUMN in mini_batch else None
    per_series = [m for m in _state["models"] if not is_global(m)]
    parts = []
    if per_series:
        for lo, hi, ids in series_in(mini_batch, mini_batch_context, id_cols):
            if learnt_only is not None and learnt_only[lo]:
                continue
            frame = regularize(mini_batch.iloc[lo:hi], cfg)
            rows = backtest_series(frame, cfg, per_series, _state["origins"], settings.model.params,
                                   configured_type=settings.model.type, every=_state["every"])
            parts.append(rows.assign(**dict(zip(id_cols, ids))))
    for model_type in (m for m in _state["models"] if is_global(m)):
        params = model_params(model_type, settings.model.params, settings.model.type)
        parts.append(backtest_global(mini_batch, id_cols, cfg, _state["origins"], params, model_type,
                                     _state["every"]))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=[*id_cols, "series_key", *FORECAST_COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    out["series_key"] = series_keys(out, id_cols)
    if learnt_only is not None and learnt_only.any():
        others = mini_batch.loc[learnt_only, id_cols].drop_duplicates()
        out = out[~out["series_key"].isin(set(series_keys(others, id_cols)))]
    return out[[*id_cols, "series_key", *FORECAST_COLUMNS]]
