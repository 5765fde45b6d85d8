"""Training and backtesting the global ``lightgbm`` model over every series of a batch at once.

Training mirrors the per-series rules (``forecasting.training``): the model is fitted on every series' data up
to its own holdout (``forecasting.holdout``: its windows of the horizon and the lead time before them), each
series' windows are forecast from their own origins and scored against its own baseline (and the envelope),
then the model is refitted on everything, unless the holdout fit already learnt from a full sample of
``max_train_rows`` and the holdout is one window (option ``refit``, ``GlobalModel.refits_after``): then the model
the holdout judged is the one served, and a day's training costs one fit instead of two. The served model is
what every series' registry row points at. Series too short for the model are served by their baseline and
recorded as fallbacks, as always. Training reads only each series' newest ``history_periods`` (what the fits and
their features use): older rows would only fill memory.

The backtest makes the model at every rolling origin (each series' origins anchored at its own end, as in
``forecasting.backtest``) as training would on all series' data up to their origin, and returns the same rows
as the per-series backtest, so pooled metrics compare models like for like.

No Dagster here.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting import baseline, envelope, holdout
from mm_assets.forecasting.backtest import FORECAST_COLUMNS, origin_positions
from mm_assets.forecasting.batch_fallback import outside_the_batch_model
from mm_assets.forecasting.global_lgbm import (
    LIGHTGBM,
    GlobalModel,
    TooLittleHistory,
    fit_global,
    forecast_origin,
    history_periods,
    panel_ids,
)
from mm_assets.forecasting.metrics import holdout_metrics_rows, seasonal_naive_scale
from mm_assets.forecasting.model_types import ModelType
from mm_assets.forecasting.panel import Panel, build_panel, recent_mask
from mm_assets.forecasting.panel import filled as filled_rows
from mm_assets.forecasting.series import SeriesConfig
from mm_assets.forecasting.training import STATUS_TRAINED, TrainOutcome
from mm_assets.ids import series_key
from mm_assets.ingest.target_rules import EXTREME_TARGET_MULTIPLE, SEVERAL_SLIPS_RATIO, extreme_targets

BASELINE = ModelType.BASELINE.value
BATCH_SERIES, BATCH_ID = "batch_series", "batch_id"  # what a global model learnt from (``batch_metrics``)


def _eligible(panel, cfg: SeriesConfig) -> np.ndarray:
    held_out = cfg.horizon + cfg.gap
    T = panel.y.shape[1]
    before = np.arange(T)[None, :] < (panel.length - held_out)[:, None]
    observed_before = (before & ~np.isnan(panel.y)).any(axis=1)
    return (panel.length >= cfg.min_train_periods + held_out) & (panel.length > held_out + 1) & observed_before


def recent_rows(frame: pd.DataFrame, id_columns: list[str], cfg: SeriesConfig, periods: int) -> pd.DataFrame:
    """The rows of ``frame`` (sorted by ids, then ds) within ``periods`` of each series' newest observation, and
    its planned rows (``panel.recent_mask``); every series keeps at least its newest row, so series indices hold."""
    keep = recent_mask(frame, id_columns, periods, int(cfg.step.value))
    return frame if keep.all() else frame[keep].reset_index(drop=True)


def leave_out_extreme_targets(panel: Panel) -> int:
    """Set to missing, for the global model only, every target the datasets' check ``values_plausible`` calls
    absurd (``extreme_targets``: more than ``EXTREME_TARGET_MULTIPLE`` times its series' level). → how many were
    left out.

    Why: one global model learns from every series of the run, and its item and store categories are shared: a
    1e12 slip in one store raised the same item's forecasts in the other stores 3 to 5 times. The datasets already
    leave such rows out (``cut_partition``); this keeps a fit on rows given otherwise (in process, a test) the same."""
    y = panel.y
    if not y.size:
        return 0
    observed = ~np.isnan(y)
    count = observed.sum(axis=1)
    largest = np.nanmax(np.where(observed, y, -np.inf), axis=1)
    others = (np.nansum(y, axis=1) - largest) / np.maximum(count - 1, 1)
    # only the series the rule could flag are laid out for it: a panel holds millions of cells
    series = np.flatnonzero((count > 1) & (largest > SEVERAL_SLIPS_RATIO * np.maximum(others, 1.0)))
    if not len(series):
        return 0
    rows, cols = np.nonzero(observed[series])  # row-major: each series' values together, in time order
    starts = np.r_[0, np.cumsum(count[series])[:-1]]
    bad = extreme_targets(y[series[rows], cols], starts, rows)
    y[series[rows[bad]], cols[bad]] = np.nan
    return len(bad)


def batch_metrics(ids: list[list[str]]) -> dict[str, float]:
    """What a global model learnt from, recorded with each of its series' metrics: how many series
    (``batch_series``) and which (``batch_id``: 48 bits of a hash of their sorted keys, a number as every metric
    is). The gate tells by it a model of the same options fitted on other series (a store re-run alone, or batches
    cut otherwise), whose score on a holdout is not the challenger's."""
    digest = hashlib.sha256("\n".join(sorted(series_key(i) for i in ids)).encode()).hexdigest()
    return {BATCH_SERIES: float(len(ids)), BATCH_ID: float(int(digest[:12], 16))}


def train_global(frame: pd.DataFrame, id_columns: list[str], cfg: SeriesConfig, params: dict[str, Any] | None
                 ) -> tuple[GlobalModel | None, dict[int, TrainOutcome], list[int]]:
    """Rows of many series (sorted by ids, then ds) → (the served model, {series index: outcome}, [series
    indices the panel rejects, for the per-series path that names the error]).

    Outcomes of series the global model serves carry ``model = None``: the caller stores the one model once and
    points every such series at it (``GlobalModel.for_series`` rebuilds the per-series view)."""
    started = time.perf_counter()
    h, gap = cfg.horizon, cfg.gap
    frame = recent_rows(frame, id_columns, cfg, history_periods(cfg, params))
    panel = build_panel(frame, id_columns, cfg)
    left_out = leave_out_extreme_targets(panel)
    eligible = _eligible(panel, cfg)
    if not eligible.any():  # every series too short (a new store): all served by their baselines, no fit
        outcomes = outside_the_batch_model(panel, np.arange(panel.size), cfg, LIGHTGBM, params)
        return None, outcomes, sorted(int(i) for i in panel.rejected)
    w = holdout.windows(panel.length, cfg)
    try:
        hold_model, panel, ids, batch, n_train = fit_global(
            frame, id_columns, cfg, params, lambda p: np.clip(holdout.fit_lengths(p.length, w, cfg), 0, None), panel)
    except TooLittleHistory as exc:  # every series of the batch short for the model: their baselines serve
        outcomes = outside_the_batch_model(panel, np.arange(panel.size), cfg, LIGHTGBM, params, why=str(exc))
        return None, outcomes, sorted(int(i) for i in panel.rejected)
    outcomes = outside_the_batch_model(panel, np.flatnonzero(~eligible), cfg, LIGHTGBM, params)
    cand = np.flatnonzero(eligible)
    full_model = None
    if len(cand):
        w = w[cand]

        def at(n_origin: np.ndarray) -> np.ndarray:  # the batch's forecast from these origins of the candidates
            every = n_train.copy()
            every[cand] = n_origin
            return forecast_origin(hold_model, batch, every)[cand]

        length = panel.length[cand]
        pred = holdout.forecast_windows(at, length, w, cfg)
        note = hold_model.fit_note(int(w.max())) + (
            f"; {left_out} absurd targets left out of its training (over {EXTREME_TARGET_MULTIPLE:,.0f} x their "
            "series' other values: check values_plausible)" if left_out else "")
        if hold_model.refits_after(int(w.max())):
            del batch  # the refit builds its own: one fit's arrays in memory at a time
            full_model, _, _, _, _ = fit_global(frame, id_columns, cfg, params, lambda p: p.length.copy(), panel)
        else:  # the model the holdout judged is the one served: its features read the newest periods
            full_model = hold_model
        del hold_model
        y = panel.y[cand]
        intermittent = baseline.intermittent_rows(y, n_train[cand], cfg)
        method, _ = baseline.choose_rows(y, n_train[cand], cfg, intermittent=intermittent)
        base_pred = holdout.baseline_windows(y, length, w, method, cfg)
        pred, outside = holdout.replace_outside_windows(pred, base_pred, y, length, w, cfg)
        full_model.keep_tails(panel, ids, full_model.for_series(ids[0]).tail_length)
        metrics_of = holdout_metrics_rows(y, length, pred, base_pred, outside, h, gap, cfg.season, intermittent, w,
                                          envelope_window=envelope.window(cfg))
        holdouts = panel.holdout_records(cand, pred, h, w)
        observed = (~np.isnan(y)).sum(axis=1)
        learnt_from = batch_metrics(ids)
        for j, k in enumerate(cand):
            start = pd.Timestamp(panel.start_ns[k])
            outcomes[int(panel.keep[k])] = TrainOutcome(
                model=None, model_type=LIGHTGBM, status=STATUS_TRAINED, reason=note,
                metrics={**metrics_of[j], **learnt_from}, n_obs=int(observed[j]),
                data_start=start, data_end=start + (int(length[j]) - 1) * cfg.step, extra={"holdout": holdouts[j]},
            )
    per_series = (time.perf_counter() - started) / max(1, len(outcomes))
    for outcome in outcomes.values():
        outcome.fit_seconds = per_series
    return full_model, outcomes, sorted(int(i) for i in panel.rejected)


def backtest_global(frame: pd.DataFrame, id_columns: list[str], cfg: SeriesConfig, origins: int,
                    params: dict[str, Any] | None = None, model_type: str = LIGHTGBM, every: int | None = None
                    ) -> pd.DataFrame:
    """Every forecast of a rolling-origin backtest of the global model: ``FORECAST_COLUMNS`` plus the ids.

    Origin ``i`` of series k is the row ``length - 1 - gap - horizon - i * every`` (``origin_positions``; ``every``
    defaults to the horizon);
    at each ``i`` one model is made as training makes it on the rows up to each series' own origin: fitted
    ``gap + horizon`` periods before the origin, and refitted up to it unless training would not refit
    (``GlobalModel.refits``)."""
    cfg = cfg.for_model(model_type)  # the history training would ask of this model type
    h, gap = cfg.horizon, cfg.gap
    spacing = every or h
    parts = []
    whole = build_panel(frame, id_columns, cfg)
    leave_out_extreme_targets(whole)  # as training does
    probe = GlobalModel(cfg, id_columns, params)
    several = cfg.holdout_windows > 1 and probe.options["refit"] is not False  # training refits after them
    for i in range(origins):
        def at_origin(panel, i=i):
            return np.clip(panel.length - gap - h - i * spacing, 0, None)

        def before_origin(panel, i=i):
            return np.clip(panel.length - 2 * (gap + h) - i * spacing, 0, None)

        at = at_origin if several or probe.refits(
            probe.samples(probe.training_rows(whole.y, before_origin(whole)))) else before_origin
        why = None
        try:
            model, panel, ids, batch, _ = fit_global(frame, id_columns, cfg, params, at, whole)
        except TooLittleHistory as exc:  # as in training: every series served by its baseline at this origin
            model, panel, ids, why = None, whole, panel_ids(frame, whole, id_columns), str(exc)
        except ValueError:
            break  # too little data left this far back
        n_origin = at_origin(panel)
        ok = (n_origin >= max(2, cfg.min_train_periods)) & (why is None)
        short = (n_origin >= 2) & ~ok
        if not (ok | short).any():
            if why:
                break  # nothing left to forecast this far back
            continue
        pred = np.full((len(n_origin), h), np.nan)
        if ok.any():
            pred[ok] = forecast_origin(model, batch, n_origin)[ok]
        y = panel.y
        method, _ = baseline.choose_rows(y, np.maximum(n_origin, 1), cfg)
        base_pred = baseline.forecast_rows(y, np.maximum(n_origin, 1), method, h, gap, cfg)
        pred_ok, outside = baseline.replace_outside(np.nan_to_num(pred, nan=0.0), y, np.maximum(n_origin, 1), cfg,
                                                    fallback=base_pred)
        yf = filled_rows(y, np.maximum(n_origin, 1))
        naive = yf[np.arange(len(n_origin)), np.maximum(n_origin, 1) - 1]
        snaive = baseline.seasonal_naive_rows(yf, np.maximum(n_origin, 1), h, gap, cfg.season)
        for k in np.flatnonzero(ok | short):
            n = int(n_origin[k])
            positions = origin_positions(int(panel.length[k]), origins, h, gap, spacing)
            if n - 1 not in positions:
                continue
            idx = np.arange(n + gap, n + gap + h)
            used, note, forecast = model_type, None, pred_ok[k]
            if short[k]:
                used, forecast = BASELINE, base_pred[k]
                note = why or f"fallback: {n} training periods < min_train_periods {cfg.min_train_periods}"
            elif outside[k]:
                used, note = BASELINE, envelope.REPLACED.format(multiple=cfg.envelope_multiple)
            start = pd.Timestamp(panel.start_ns[k])
            parts.append(pd.DataFrame({
                **{c: ids[k][j] for j, c in enumerate(id_columns)},
                "model_type": model_type, "used_model": used, "origin": start + (n - 1) * cfg.step,
                "ds": pd.date_range(start + (n + gap) * cfg.step, periods=h, freq=cfg.step),
                "step": np.arange(gap + 1, gap + 1 + h), "actual": y[k, idx], "forecast": forecast,
                "naive": naive[k], "snaive": snaive[k],
                "mase_scale": seasonal_naive_scale(y[k, :n], cfg.season), "note": note,
            }))
    if not parts:
        return pd.DataFrame(columns=[*id_columns, *FORECAST_COLUMNS])
    return pd.concat(parts, ignore_index=True)[[*id_columns, *FORECAST_COLUMNS]]
