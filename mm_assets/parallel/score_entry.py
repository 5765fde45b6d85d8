"""Batch-scoring entry script (Azure ML parallel-job contract): one mini-batch = one series, or many (local
runner: linear champions and baselines of a mini-batch are forecast in one vectorised pass, from only the newest
history they read: the envelope's year and the model's own reach, not 4,000 days).

``init()`` loads the model manifest (which model version serves which series: a small Parquet file written by
the caller) but no model. ``run()`` loads the series' model from its bundle byte range (bundles are cached per
worker, bounded), forecasts ``horizon`` periods after the series' last observation using planned regressors
where the data carries them, and returns one row per forecast period.

Every series gets a forecast: without a model (never trained, or failed) or when its model cannot forecast,
the series' baseline serves it, flagged ``model_source = baseline`` with the reason in ``note``. A champion's
forecast that leaves the sanity envelope is replaced by the baseline too: ``envelope_replaced = 1``, the reason
in ``note``, ``model_source = baseline`` (the champion's version stays in ``model_version``). Every row also
carries ``baseline_yhat``, the baseline's forecast of the same period chosen at this origin: realised accuracy
judges the forecast against it once the actual arrives, without recomputing history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.batch_linear import forecast_batch
from mm_assets.forecasting.closed_days import closed_weekdays, zero_closed_days
from mm_assets.forecasting.models import BASELINE, as_series_model, cannot_serve
from mm_assets.forecasting.series import SeriesConfig, regularize
from mm_assets.forecasting.training import forecast_from_model
from mm_assets.ids import series_key
from mm_assets.parallel.contract import MiniBatchContext, SeriesRows, manifest_init, series_in

SOURCE_MODEL = "champion"
SOURCE_BASELINE = "baseline"

_state: dict = {}


def init() -> None:
    _state.update(manifest_init("mm-assets batch scoring entry script"))


def _baseline(mini_batch: pd.DataFrame, cfg: SeriesConfig) -> tuple[pd.DataFrame, dict]:
    model = Baseline(cfg).fit(regularize(mini_batch, cfg))
    return forecast_from_model(model, cfg, rows=mini_batch)


COLUMNS = ["series_key", "origin", "ds", "yhat", "baseline_yhat", "model_type", "model_version", "model_source",
           "planned_periods", "envelope_replaced", "note"]


# the manifest holds the production champions: a series without one was rejected by the gate, too short for the
# model, or never trained
NO_CHAMPION_NOTE = "no production champion: the series' baseline serves it"


def champion_failed(notes: pd.Series) -> pd.Series:
    """Which forecast rows' ``note`` says the series' champion could not load or forecast (its baseline's
    forecast was published instead): the notes ``_entry_model`` and ``_score_one`` write."""
    return notes.astype("string").str.match(
        r"model v\d+ (?:failed to (?:load|forecast)|cannot forecast with these settings)").fillna(False).astype(bool)


def _entry_model(entry: dict | None, ids: list[str]):
    """(model or None, note): the series' model from its bundle (a global model's view of the series), or why
    there is none."""
    if entry is None:
        return None, NO_CHAMPION_NOTE
    try:
        model = _state["cache"].model(entry["artifact_uri"], int(entry["artifact_offset"]), int(entry["artifact_size"]))
        model = as_series_model(model, ids)
    except Exception as exc:  # noqa: BLE001 - the model cannot be read: the baseline serves, and says why
        return None, f"model v{entry.get('version')} failed to load: {type(exc).__name__}: {exc}"
    cfg = _state["cfg"]
    mismatch = cannot_serve(model, cfg.horizon, cfg.gap, cfg.regressors, cfg.target)
    if mismatch:  # a champion the gate could not replace yet: not today's quantity, inputs or reach
        return None, f"model v{entry.get('version')} cannot forecast with these settings: {mismatch}"
    return model, None


def _score_one(mini_batch: pd.DataFrame, ids: list[str], key: str, id_cols: list[str]) -> pd.DataFrame:
    cfg = _state["cfg"]
    entry = _state["manifest"].get(key)
    model, note = _entry_model(entry, ids)
    forecast = None
    replaced = 0
    if model is not None:
        try:
            forecast, info = forecast_from_model(model, cfg, rows=mini_batch)
            model_type, version, source = entry["model_type"], int(entry["version"]), SOURCE_MODEL
            if info.get("envelope"):
                replaced, note, model_type, source = 1, info["envelope"], BASELINE, SOURCE_BASELINE
        except Exception as exc:  # noqa: BLE001 - the model cannot serve: the baseline does, and says why
            note = f"model v{entry.get('version')} failed to forecast: {type(exc).__name__}: {exc}"
    if forecast is None:
        forecast, info = _baseline(mini_batch, cfg)
        model_type, version, source = BASELINE, 0, SOURCE_BASELINE
        base = forecast["yhat"].to_numpy()
    else:
        base = _baseline(mini_batch, cfg)[0]["yhat"].to_numpy()
    out = forecast.assign(
        baseline_yhat=base,
        **dict(zip(id_cols, ids)),
        series_key=key,
        origin=info["origin"],
        model_type=model_type,
        model_version=version,
        model_source=source,
        planned_periods=info["planned_periods"],
        envelope_replaced=replaced,
        note=note,
    )
    return out[[*id_cols, *COLUMNS]]


def _score_many(mini_batch: pd.DataFrame, id_cols: list[str], series: SeriesRows) -> pd.DataFrame:
    """Linear champions and baselines of the whole mini-batch in one vectorised pass (``forecast_batch``);
    other model types and what that pass leaves go through ``_score_one``."""
    all_ids = series.ids
    keys = [series_key(ids) for ids in all_ids]
    entries = [_state["manifest"].get(key) for key in keys]
    loaded = [_entry_model(entry, ids) for entry, ids in zip(entries, all_ids)]
    models = {i: model for i, (model, _) in enumerate(loaded)}
    forecasts, pending = forecast_batch(mini_batch, id_cols, _state["cfg"], models, series.bounds)
    h = _state["cfg"].horizon
    pieces: list[pd.DataFrame] = []
    done = []
    for i, fc in forecasts.items():
        model, note = loaded[i]
        if model is None:
            model_type, version, source = BASELINE, 0, SOURCE_BASELINE
        elif fc.envelope:
            model_type, version, source, note = BASELINE, int(entries[i]["version"]), SOURCE_BASELINE, fc.envelope
        else:
            model_type, version, source = entries[i]["model_type"], int(entries[i]["version"]), SOURCE_MODEL
        done.append((i, fc, model_type, version, source, note, int(fc.envelope is not None)))
    if done:
        columns = {c: np.repeat([all_ids[d[0]][j] for d in done], h) for j, c in enumerate(id_cols)}
        pieces.append(pd.DataFrame({
            **columns,
            "series_key": np.repeat([keys[d[0]] for d in done], h),
            "origin": np.repeat(np.array([d[1].origin.to_datetime64() for d in done]), h),
            "ds": np.concatenate([d[1].ds for d in done]),
            "yhat": np.concatenate([d[1].yhat for d in done]),
            "baseline_yhat": np.concatenate([d[1].baseline for d in done]),
            "model_type": np.repeat([d[2] for d in done], h),
            "model_version": np.repeat(np.array([d[3] for d in done], dtype=np.int64), h),
            "model_source": np.repeat([d[4] for d in done], h),
            "planned_periods": np.repeat(np.array([d[1].planned_periods for d in done], dtype=np.int64), h),
            "envelope_replaced": np.repeat(np.array([d[6] for d in done], dtype=np.int64), h),
            "note": np.repeat(np.array([d[5] for d in done], dtype=object), h),
        }))
    for i in pending:
        lo, hi, _ = series[i]
        rows = mini_batch.iloc[lo:hi].reset_index(drop=True)
        pieces.append(_score_one(rows, all_ids[i], keys[i], id_cols))
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=[*id_cols, *COLUMNS])


def run(mini_batch: pd.DataFrame, mini_batch_context: MiniBatchContext) -> pd.DataFrame:
    """One series (Azure ML ``partition_keys``) or many (local runner, ``series_per_minibatch``)."""
    settings = _state["settings"]
    id_cols = list(settings.columns.ids)
    series = series_in(mini_batch, mini_batch_context, id_cols)
    if len(series) > 1:
        out = _score_many(mini_batch, id_cols, series)
    else:
        (_, _, ids), = series
        out = _score_one(mini_batch, ids, series_key(ids), id_cols)
    if not _state["cfg"].is_daily:
        return out
    # a store closed on Sundays sells nothing, nor does its new product
    return zero_closed_days(out, closed_weekdays(mini_batch, id_cols, settings.partition.column))
