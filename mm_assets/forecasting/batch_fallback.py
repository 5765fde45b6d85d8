"""The baseline fallback of many series at once: the series of a batch too short for their model.

Why: a series too short for its model is served by its baseline (``training.train_regular``: the holdout's
baseline judged as the model and as its own yardstick, then the baseline refitted on the whole history). One
series at a time that is a regular frame, two ``Baseline`` fits and the metrics, ~2.4 ms; late launches are a
twentieth of the series of a daily run and took an eighth of the training workers' time. Here the choices,
forecasts and metrics of all of them come from the baseline's own vectorised functions on the panel at once; each
series still gets its own ``Baseline`` model, metrics, holdout record and reason, equal to the per-series path's
(the tests compare them).

A series whose holdout baseline leaves the sanity envelope is left to the per-series path, which refits the
baseline on the stored tail for it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from mm_assets.forecasting import baseline, envelope
from mm_assets.forecasting.backtest import model_params
from mm_assets.forecasting.base import packed_tail
from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.metrics import holdout_metrics_rows
from mm_assets.forecasting.models import BASELINE
from mm_assets.forecasting.panel import Panel, kinds_of, window_starts
from mm_assets.forecasting.series import SeriesConfig
from mm_assets.forecasting.training import (
    STATUS_FALLBACK,
    TrainOutcome,
    short_history_reason,
    train_regular,
    unmeasured_metrics,
)


def outside_the_batch_model(panel: Panel, ks: np.ndarray, cfg: SeriesConfig, model_type: str,
                            params: dict | None = None, why: str | None = None) -> dict[int, TrainOutcome]:
    """Series ``ks`` of ``panel`` that a batch model does not take, by the per-series rules: those too short for
    the model served by their baselines, made at once (``train_fallbacks``); the others (no holdout to judge it
    on, or a holdout baseline outside the envelope) one by one on their regular frames. Keys: the series' indices
    in the batch (``panel.keep``). ``why``: the batch model could not be made at all (``TooLittleHistory``), so
    every series of ``ks`` is served by its baseline, with that reason."""
    ks = np.asarray(ks, dtype=np.int64)
    short = ks if why else ks[panel.length[ks] < cfg.min_train_periods + cfg.horizon + cfg.gap]
    made, left = train_fallbacks(panel, short, cfg, model_type, params, why)
    out = {int(panel.keep[k]): outcome for k, outcome in made.items()}
    for k in [*left, *np.setdiff1d(ks, short).tolist()]:
        frame = packed_tail(panel, int(k), 0, cfg.regressors).frame()
        outcome = train_regular(frame, cfg, BASELINE if why else model_type, params)
        if why:
            outcome.status, outcome.reason = STATUS_FALLBACK, f"{why}; {outcome.reason}"
        out[int(panel.keep[k])] = outcome
    return out


def train_fallbacks(panel: Panel, ks: np.ndarray, cfg: SeriesConfig, model_type: str, params: dict | None = None,
                    why: str | None = None) -> tuple[dict[int, TrainOutcome], list[int]]:
    """Series ``ks`` of ``panel``, each too short for ``model_type`` (``why``: the reason when it is not their own
    history's length) → ({panel series k: outcome}, [k left to the per-series path])."""
    started = time.perf_counter()
    ks = np.asarray(ks, dtype=np.int64)
    h, gap = cfg.horizon, cfg.gap
    y, length = panel.y[ks], panel.length[ks]
    n_train = length - h - gap
    before = np.arange(y.shape[1])[None, :] < n_train[:, None]
    # ``train_regular`` judges a holdout when there is one: more than a holdout and its lead time, and an
    # observed value before it
    measured = (length > h + gap + 1) & (before & ~np.isnan(y)).any(axis=1)
    m = np.flatnonzero(measured)
    held_intermittent = baseline.intermittent_rows(y[m], n_train[m], cfg)
    method, _ = baseline.choose_rows(y[m], n_train[m], cfg, intermittent=held_intermittent)
    pred = baseline.forecast_rows(y[m], n_train[m], method, h, gap, cfg)
    outside = envelope.check(pred, envelope.recent_max_rows(y[m], n_train[m], cfg), cfg.envelope_multiple)
    metrics = dict(zip(m.tolist(), holdout_metrics_rows(y[m], length[m], pred, pred, outside, h, gap, cfg.season,
                                                        held_intermittent, envelope_window=envelope.window(cfg))))
    holdouts = dict(zip(m.tolist(), panel.holdout_records(ks[m], pred, h)))
    left = set(m[outside].tolist())  # rows of ``ks`` whose holdout baseline left the envelope

    names = baseline.method_names(cfg)
    intermittent = baseline.intermittent_rows(y, length, cfg)
    chosen, errors = baseline.choose_rows(y, length, cfg, intermittent=intermittent)
    tail_length = Baseline(cfg).tail_length
    tail_from = window_starts(y, length, tail_length)
    recent = envelope.recent_max_rows(y, length, cfg)
    kinds = kinds_of(panel, ks, length)
    observed = (~np.isnan(y)).sum(axis=1)
    fit_params = model_params(BASELINE, params, model_type)
    out: dict[int, TrainOutcome] = {}
    for j, k in enumerate(ks.tolist()):
        if j in left:
            continue
        model = Baseline(cfg, **fit_params)
        model.kinds_ = dict(zip(cfg.regressors, kinds[j]))
        model.method_ = names[int(chosen[j])]
        model.reason_ = baseline.choice_reason(names, int(chosen[j]), errors[j], bool(intermittent[j]))
        model.tail_ = packed_tail(panel, k, int(tail_from[j]), cfg.regressors)
        model.recent_max_ = float(recent[j])
        L = int(length[j])
        model.recent_periods_ = min(L, envelope.window(cfg))
        start = pd.Timestamp(panel.start_ns[k])
        out[k] = TrainOutcome(
            model=model, model_type=BASELINE, status=STATUS_FALLBACK,
            reason=f"{why or short_history_reason(L, cfg)}; {model.reason_}",
            metrics=metrics.get(j) or unmeasured_metrics(), n_obs=int(observed[j]), data_start=start,
            data_end=start + pd.Timedelta(days=(L - 1) * panel.step_days), extra={"holdout": holdouts.get(j)},
        )
    per_series = (time.perf_counter() - started) / max(1, len(out))
    for outcome in out.values():
        outcome.fit_seconds = per_series
    return out, [int(ks[j]) for j in sorted(left)]
