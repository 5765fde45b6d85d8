"""The ``linear`` model for many series at once: one design tensor, one batched solve (``forecasting.linear``).

Why: per-series pandas work and call overhead, not arithmetic, is what fitting one series at a time costs (a
series is a 4,000 × 25 least-squares problem: microseconds of flops). Here the features of a whole batch are
built with numpy on a ``Panel`` and every series' ridge is solved from its own p × p statistics in one batched
call. Each series still gets its own ``LinearForecaster`` (the same design and solver as fitting it alone: the
tests compare them), its own holdout metrics against its own baseline, its own envelope check and result row.

Series too short for the model get the per-series fallback rules, their baselines made at once from the panel
(``batch_fallback``). Series the panel rejects (off-grid or duplicate timestamps) or with too few usable rows are
returned as ``pending`` for the per-series path, which raises the precise error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mm_assets.forecasting import baseline, envelope, holdout
from mm_assets.forecasting.base import packed_tail
from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.batch_fallback import outside_the_batch_model
from mm_assets.forecasting.global_batch import Batch
from mm_assets.forecasting.global_lgbm import GlobalSeriesModel, panel_ids
from mm_assets.forecasting.linear import (
    LinearForecaster,
    RidgeFit,
    calendar_flags,
    design,
    fit_holdout_and_full,
    fit_ridge,
    predict_design,
    predict_rows,
    usable_rows,
)
from mm_assets.forecasting.metrics import holdout_metrics_rows
from mm_assets.forecasting.model_types import ModelType
from mm_assets.forecasting.panel import (
    Bounds,
    Panel,
    build_panel,
    filled,
    kept_bounds,
    kinds_of,
    last_periods,
    newest_rows,
    row_layout,
    window_starts,
)
from mm_assets.forecasting.series import (
    FLAG,
    POSITIVE,
    SHARE,
    SeriesConfig,
    nanmedian_rows,
    quarter_periods,
    regular_prices,
)
from mm_assets.forecasting.training import STATUS_TRAINED, TrainOutcome

MAX_CELLS = 1_500_000  # series × periods per design tensor (× ~21 features × 8 bytes ≈ 250 MB at most)


def _transform(proto: LinearForecaster, y: np.ndarray) -> np.ndarray:
    return proto.transform_y(y)


def _fit_at(proto, panel: Panel, sel: np.ndarray, n_fit: np.ndarray, sig: tuple):
    """Design on the first ``n_fit`` periods of the selected series, and the fit on their usable rows."""
    y = panel.y[sel]
    T = int(n_fit.max())
    y = y[:, :T]
    inside = np.arange(T)[None, :] < n_fit[:, None]
    yt = _transform(proto, filled(np.where(inside, y, np.nan), n_fit))
    regs = {c: panel.regs[c][sel][:, :T] for c in proto.cfg.regressors}
    kinds, calendar = sig
    names, X = design(proto, panel.start_days()[sel], panel.step_days, yt, regs, kinds, n_fit,
                      np.tile(calendar, (len(sel), 1)))
    target = _transform(proto, np.where(inside, y, np.nan))
    fit = fit_ridge(X, target, usable_rows(proto, X, target, n_fit), proto.alpha)
    fit.log_bias *= proto.bias_correction
    return names, X, fit


def _holdout_forecast(proto, panel: Panel, sel: np.ndarray, sig: tuple, fit: RidgeFit, n_hist: np.ndarray
                      ) -> np.ndarray:
    """The holdout model's forecast of the ``horizon`` periods ``gap`` after each series' first ``n_hist``
    periods (``training._holdout_metrics``: the forecast's lead time is the one it will be used with)."""
    h, gap = proto.cfg.horizon, proto.cfg.gap
    length = panel.length[sel]
    T = int(length.max())
    inside = np.arange(T)[None, :] < n_hist[:, None]
    y = panel.y[sel][:, :T]
    yt = _transform(proto, filled(np.where(inside, y, np.nan), n_hist))
    regs = {c: panel.regs[c][sel][:, :T] for c in proto.cfg.regressors}
    kinds, calendar = sig
    _, X = design(proto, panel.start_days()[sel], panel.step_days, yt, regs, kinds, n_hist,
                  np.tile(calendar, (len(sel), 1)))
    return predict_rows(X, fit, n_hist + gap, h, proto.log_target)


def train_linear_batch(
    frame: pd.DataFrame, id_columns: list[str], cfg: SeriesConfig, params: dict | None = None,
    bounds: Bounds | None = None,
) -> tuple[dict[int, TrainOutcome], list[int]]:
    """Rows of many series → ({series index: outcome}, [series indices for the per-series path]).

    Series indices count the series of ``frame`` in order (as ``key_boundaries`` finds them; ``bounds``: those
    rows, when the caller has found them).
    """
    params = params or {}
    started = time.perf_counter()
    proto = LinearForecaster(cfg, **params)
    held_out = cfg.horizon + cfg.gap  # the holdout and the lead time before it
    panel = build_panel(frame, id_columns, cfg, bounds)  # the whole history: the metrics' scale and baselines read it
    pending = set(int(i) for i in panel.rejected)
    enough = panel.length >= cfg.min_train_periods + held_out
    # the holdout model's data: before the holdout's windows (``forecasting.holdout``) and their lead time
    before_holdout = holdout.fit_lengths(panel.length, holdout.windows(panel.length, cfg), cfg)
    T = panel.y.shape[1]
    before = np.arange(T)[None, :] < (panel.length - held_out)[:, None]
    observed_before = (before & ~np.isnan(panel.y)).any(axis=1)
    eligible = enough & (panel.length > held_out + 1) & observed_before
    # too short for the model (baseline fallback) or no holdout: the per-series rules, from the panel
    outcomes = outside_the_batch_model(panel, np.flatnonzero(~eligible), cfg, ModelType.LINEAR.value, params)
    cand = np.flatnonzero(eligible)
    if len(cand):
        # the fits read the rows ``LinearForecaster.fit_rows`` cuts (the holdout's start older or the same) and
        # decide their regressors' kinds on them: at 4,000 days of history the design is built on a fraction
        first_train = np.zeros(panel.size, dtype=np.int64)
        first_train[cand] = window_starts(panel.y[cand], before_holdout[cand], proto.read_periods)
        fit_panel = panel.from_period(first_train)
        length = fit_panel.length[cand]
        n_train = before_holdout[cand] - first_train[cand]
        first_full = window_starts(fit_panel.y[cand], length, proto.read_periods)
        kinds_full = kinds_of(fit_panel, cand, length, first_full)
        kinds_train = kinds_of(fit_panel, cand, n_train)
        cal_full = calendar_flags(proto, length - first_full, panel.step_days)
        cal_train = calendar_flags(proto, n_train, panel.step_days)
        signatures: dict[tuple, list[int]] = {}
        for j, k in enumerate(cand):
            key = ((kinds_train[j], tuple(cal_train[j])), (kinds_full[j], tuple(cal_full[j])))
            signatures.setdefault(key, []).append(int(k))
        for (sig_train, sig_full), members in signatures.items():
            members_arr = np.asarray(members)
            per_chunk = max(1, MAX_CELLS // max(1, int(fit_panel.length[members_arr].max())))
            for lo in range(0, len(members_arr), per_chunk):
                sel = members_arr[lo : lo + per_chunk]
                outcomes.update(_train_group(proto, panel, fit_panel, sel, sig_train, sig_full, params, pending))
    elapsed = time.perf_counter() - started
    per_series = elapsed / max(1, len(outcomes))
    for outcome in outcomes.values():
        outcome.fit_seconds = per_series  # the batch's time shared out: series of a batch are fitted together
    return outcomes, sorted(pending)


def _one_design(proto, panel: Panel, sel, sig: tuple, w: np.ndarray):
    """Holdout fit, holdout forecast (of each series' ``w`` windows: ``forecasting.holdout``) and full fit from
    one design of the whole history.

    The holdout design equals the full one on every row before the holdout's origin (lags and levels only
    reach back; the target is filled the same way), and on each window's rows too, except the relative-price
    features, whose reference price is frozen at the window's origin: they are recomputed for those rows here.
    """
    cfg = proto.cfg
    h, gap = cfg.horizon, cfg.gap
    length = panel.length[sel]
    n_fit = holdout.fit_lengths(length, w, cfg)
    span = h * int(w.max())
    T = int(length.max())
    inside = np.arange(T)[None, :] < length[:, None]
    y = panel.y[sel][:, :T]
    yt = _transform(proto, filled(y, length))
    regs = {c: panel.regs[c][sel][:, :T] for c in cfg.regressors}
    kinds, calendar = sig
    names, X = design(proto, panel.start_days()[sel], panel.step_days, yt, regs, kinds, length,
                      np.tile(calendar, (len(sel), 1)))
    target = _transform(proto, np.where(inside, y, np.nan))
    usable = usable_rows(proto, X, target, length, proto.train_periods + length - n_fit)  # both fits' windows
    rows = np.arange(len(sel))[:, None]
    test_idx = np.clip((length - span)[:, None] + np.arange(span)[None, :], 0, None)
    test = X[rows, :, test_idx]  # K × span × p, copied before the fit zeroes rows
    newest_first = (span - 1 - np.arange(span)) // h  # each column's window, 0 the newest
    origin = np.clip(length[:, None] - gap - (newest_first[None, :] + 1) * h - 1, 0, None)
    for col, kind in zip(cfg.regressors, kinds):
        if kind == POSITIVE:
            j_log, j_rel = names.index(f"log_{col}"), names.index(f"rel_{col}")
            ref = (X[rows, j_log, origin] - X[rows, j_rel, origin])  # reference price at the origin
            test[:, :, j_rel] = test[:, :, j_log] - ref
    usable_hold = usable & (np.arange(T)[None, :] < n_fit[:, None])
    hold, full = fit_holdout_and_full(X, target, usable, n_fit, length - n_fit, proto.alpha, proto.train_periods)
    hold.ok &= usable_hold.sum(axis=1) >= 2
    hold.log_bias *= proto.bias_correction
    full.log_bias *= proto.bias_correction
    pred = predict_design(test, hold, proto.log_target)
    pred[np.arange(span)[None, :] < (span - h * w)[:, None]] = np.nan  # the windows a series has not
    return names, hold, pred, full


def _train_group(proto, panel: Panel, fit_panel: Panel, sel, sig_train, sig_full, params, pending: set
                 ) -> dict[int, TrainOutcome]:
    """The models of a group of series: fitted on ``fit_panel`` (their newest periods), judged on ``panel``."""
    cfg = proto.cfg
    h, gap = cfg.horizon, cfg.gap
    length = panel.length[sel]
    w = holdout.windows(length, cfg)  # of the whole history: ``fit_panel`` may start later
    if sig_train == sig_full:
        names, hold_fit, hold_pred, full_fit = _one_design(proto, fit_panel, sel, sig_full, w)
    else:  # a regressor changes kind in the holdout (a share's first 1.0, a price's first 0): two designs
        fit_length = fit_panel.length[sel]
        _, _, hold_fit = _fit_at(proto, fit_panel, sel, holdout.fit_lengths(fit_length, w, cfg), sig_train)
        hold_pred = holdout.forecast_windows(
            lambda n: _holdout_forecast(proto, fit_panel, sel, sig_train, hold_fit, n), fit_length, w, cfg)
        names, _, full_fit = _fit_at(proto, fit_panel, sel, fit_length, sig_full)
    kinds_full = dict(zip(cfg.regressors, sig_full[0]))
    # the holdout's baseline and envelope, from the data before each window's origin
    n_train = holdout.fit_lengths(length, w, cfg)
    y_sel = panel.y[sel]
    intermittent = baseline.intermittent_rows(y_sel, n_train, cfg)
    base_method, _ = baseline.choose_rows(y_sel, n_train, cfg, intermittent=intermittent)
    base_pred = holdout.baseline_windows(y_sel, length, w, base_method, cfg)
    hold_pred, outside = holdout.replace_outside_windows(hold_pred, base_pred, y_sel, length, w, cfg)
    full_recent = envelope.recent_max_rows(y_sel, length, cfg)
    tail_from = window_starts(y_sel, length, proto.tail_length)  # as ``Forecaster.fit`` stores its tail
    metrics_of = holdout_metrics_rows(y_sel, length, hold_pred, base_pred, outside, h, gap, cfg.season,
                                      intermittent, w, envelope_window=envelope.window(cfg))
    holdouts = panel.holdout_records(sel, hold_pred, h, w)
    observed = (~np.isnan(y_sel)).sum(axis=1)
    out: dict[int, TrainOutcome] = {}
    for j, k in enumerate(sel):
        index = int(panel.keep[k])
        if not (hold_fit.ok[j] and full_fit.ok[j]):
            pending.add(index)  # the per-series path raises "too few usable rows" for it
            continue
        L = int(length[j])
        model = LinearForecaster(cfg, **params)
        model.kinds_ = dict(kinds_full)
        model.calendar_ = tuple(bool(v) for v in sig_full[1])
        model.columns_ = list(names)
        model.fit_ = RidgeFit(
            mean=full_fit.mean[j : j + 1].copy(), scale=full_fit.scale[j : j + 1].copy(),
            coef=full_fit.coef[j : j + 1].copy(), intercept=full_fit.intercept[j : j + 1].copy(),
            log_bias=full_fit.log_bias[j : j + 1].copy(), alpha=full_fit.alpha[j : j + 1].copy(),
            ok=full_fit.ok[j : j + 1].copy(),
        )
        model.tail_ = packed_tail(panel, k, int(tail_from[j]), cfg.regressors)
        model.recent_max_ = float(full_recent[j])
        model.recent_periods_ = min(L, envelope.window(cfg))
        start = pd.Timestamp(panel.start_ns[k])
        record = holdouts[j]
        if outside[j]:
            record["envelope"] = "holdout forecast left the envelope; replaced by the baseline"
        out[index] = TrainOutcome(
            model=model, model_type=ModelType.LINEAR.value, status=STATUS_TRAINED, reason=None,
            metrics=metrics_of[j], n_obs=int(observed[j]), data_start=start,
            data_end=start + pd.Timedelta(days=(L - 1) * panel.step_days), extra={"holdout": record},
        )
    return out


# ---- forecasting many series ------------------------------------------------------------------------------
@dataclass
class BatchForecast:
    ds: np.ndarray  # datetime64[ns], the horizon's periods
    yhat: np.ndarray
    origin: pd.Timestamp
    planned_periods: int
    envelope: str | None = None  # why the model's forecast was replaced by the baseline (None: it was not)
    baseline: np.ndarray | None = None  # the baseline's forecast of the same periods, chosen at this origin


def _future_regressors(panel: Panel, sel: np.ndarray, kinds: list[dict[str, str]], gap: int, horizon: int,
                       season: int = 1) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Regressors over history + gap + horizon (``series.future_frame`` semantics) and planned periods per series.

    Gap periods keep the last known value; horizon periods take the plan where one exists, else
    ``series.unplanned_values``: 0 for a flag (``kinds[j]``: no promotion), a share's median over the last
    ``season`` periods, a positive one's regular value (a price: the highest above 0 of its last quarter without
    slips, ``series.regular_prices``, else its last value above 0), the last known value for any other.
    """
    cfg_regs = list(panel.regs)
    quarter = quarter_periods(panel.step_days)
    length = panel.length[sel]
    T = int(length.max()) + gap + horizon
    pos = np.arange(T)[None, :]
    rows = np.arange(len(sel))
    used = np.zeros((len(sel), horizon), dtype=bool)
    out: dict[str, np.ndarray] = {}
    P = panel.planned_pos.shape[1]
    for col in cfg_regs:
        hist = np.full((len(sel), T), np.nan)
        width = min(T, panel.regs[col].shape[1])
        hist[:, :width] = panel.regs[col][sel][:, :width]
        kind = [k.get(col) for k in kinds]
        last = hist[rows, length - 1]
        positive = np.array([c == POSITIVE for c in kind], dtype=bool)
        regular = last
        if positive.any():  # the last price above 0: a slip of 0 is read as missing (``series.kind_of``)
            priced = np.where((pos < length[:, None]) & (hist > 0), pos, -1).max(axis=1)
            last = np.where(positive & (priced >= 0), hist[rows, np.maximum(priced, 0)], last)
            highest = regular_prices(last_periods(hist, length, quarter))
            regular = np.where(positive & np.isfinite(highest), highest, last)
        default = np.where(np.array([c == FLAG for c in kind], dtype=bool), 0.0, regular)
        share = np.array([c == SHARE for c in kind], dtype=bool)
        if share.any():
            default[share] = _recent_medians(hist[share], length[share], season)
        plan = np.full((len(sel), horizon), np.nan)
        take = max(0, min(horizon, P - gap))
        if take:
            plan[:, :take] = panel.planned[col][sel][:, gap : gap + take]
        if positive.any():  # a planned price of 0 or below: no plan there (``series.without_slips``)
            plan[positive[:, None] & (plan <= 0.0)] = np.nan
        used |= ~np.isnan(plan)
        future = np.where(np.isnan(plan), default[:, None], plan)
        values = np.where(pos < length[:, None], hist, last[:, None])  # history, then gap: last known value
        idx = length[:, None] + gap + np.arange(horizon)[None, :]
        values[rows[:, None], idx] = future
        out[col] = values
    return out, used.sum(axis=1)


def _recent_medians(values: np.ndarray, length: np.ndarray, window: int) -> np.ndarray:
    """Per row of ``values``, the median of its last ``window`` values before ``length`` (NaN ignored; 0 when none
    is known): ``series.unplanned_values`` of a share, for many series at once."""
    picked = last_periods(values, length, max(1, window))
    known = np.isfinite(picked).any(axis=1)
    out = np.zeros(len(values))
    out[known] = nanmedian_rows(picked[known])
    return out


def _periods_read(n_series: int, cfg: SeriesConfig, models: dict) -> np.ndarray:
    """Per series (``models`` by series index): the periods of its newest history that ``forecast_batch`` reads for it, 0 for
    every row. Its baseline (chosen now, and the yardstick of every forecast) and the envelope's recent maximum
    need ``baseline.history_periods`` and a year; a linear model its stored tail's length, back from the last
    forecast period. A global model's group features read the other series' values on the same dates, and a
    per-series model of another type forecasts from every row: those keep every row."""
    common = max(baseline.history_periods(cfg), envelope.window(cfg))
    out = np.zeros(n_series, dtype=np.int64)
    for i in range(len(out)):
        model = models.get(i)
        if model is None or isinstance(model, Baseline):
            out[i] = common
        elif isinstance(model, LinearForecaster):
            out[i] = max(common, model.tail_length + cfg.gap + cfg.horizon)
    return out


def forecast_batch(
    frame: pd.DataFrame, id_columns: list[str], cfg: SeriesConfig, models: dict[int, object | None],
    bounds: Bounds | None = None,
) -> tuple[dict[int, BatchForecast], list[int]]:
    """Forecast many series from their current rows: ``models[i]`` is series i's ``LinearForecaster``, a
    ``Baseline`` or ``None`` (the series' baseline, chosen now). Every forecast passes the envelope; one that
    leaves it is replaced by the series' baseline (``BatchForecast.envelope`` says why). Returns forecasts and
    the series left to the per-series path (other model types, data the panel rejects, a model whose reach is
    too short for horizon + gap). ``bounds``: each series' rows, when the caller has found them (``row_layout``)."""
    # the newest history each series' forecast reads: at 4,000 days of history most rows would only be copied
    layout = row_layout(frame, id_columns, int(cfg.step.value), bounds)
    keep = newest_rows(frame, cfg, layout, _periods_read(len(layout.starts), cfg, models))
    frame = frame[keep]
    panel = build_panel(frame, id_columns, cfg, kept_bounds(layout, keep))
    h, gap = cfg.horizon, cfg.gap
    pending = set(int(i) for i in panel.rejected)
    slot = {int(i): k for k, i in enumerate(panel.keep)}
    groups: dict[tuple, list[int]] = {}
    globals_: dict[int, list[int]] = {}  # series of one global model, forecast together
    simple: list[int] = []
    for index, k in slot.items():
        model = models.get(index)
        if model is None or isinstance(model, Baseline):  # it forecasts from the current rows alone
            simple.append(k)
        elif isinstance(model, GlobalSeriesModel) and gap + h <= model.global_.reach:
            globals_.setdefault(id(model.global_), []).append(k)
        elif isinstance(model, LinearForecaster) and model.fit_ is not None and gap + h <= model.reach:
            signature = (tuple(model.columns_), model.kind_signature(), model.calendar_, model.reach, model.seasonal_lag,
                         model.fourier_order, model.price_window, model.log_target, model.cfg.season,
                         model.cfg.regressors)
            groups.setdefault(signature, []).append(k)
        else:
            pending.add(index)
    out: dict[int, BatchForecast] = {}
    step_ns = panel.step_days * 86_400 * 10**9
    names = baseline.method_names(cfg)
    replaced = envelope.REPLACED.format(multiple=cfg.envelope_multiple)

    def dates(k: int) -> tuple[np.ndarray, pd.Timestamp]:
        L = int(panel.length[k])
        first = panel.start_ns[k] + (L + gap) * step_ns
        ds = (first + np.arange(h, dtype=np.int64) * step_ns).astype("datetime64[ns]")
        return ds, pd.Timestamp(panel.start_ns[k] + (L - 1) * step_ns)

    # every series' baseline of the same periods, chosen now: what serves a series without a model or replaces a
    # forecast that leaves the envelope, and what realised accuracy judges each forecast by
    chosen_now, _ = baseline.choose_rows(panel.y, panel.length, cfg)
    baselines = baseline.forecast_rows(panel.y, panel.length, chosen_now, h, gap, cfg)
    if simple:
        sel = np.asarray(simple)
        length = panel.length[sel]
        y = panel.y[sel]
        stored = [models.get(int(panel.keep[k])) for k in sel]
        method = np.array([names.index(m.method_) if m is not None else c for m, c in zip(stored, chosen_now[sel])])
        yhat = baseline.forecast_rows(y, length, method, h, gap, cfg)
        _, planned = _future_regressors(panel, sel, [{}] * len(sel), gap, h) if cfg.regressors else (
            None, np.zeros(len(sel), dtype=int))
        for j, k in enumerate(sel):
            ds, origin = dates(int(k))
            out[int(panel.keep[k])] = BatchForecast(ds, yhat[j], origin, int(planned[j]), baseline=baselines[k])
    for members in groups.values():
        sel = np.asarray(members)
        proto = models[int(panel.keep[sel[0]])]
        length = panel.length[sel]
        chosen = [models[int(panel.keep[k])] for k in sel]
        regs, planned = _future_regressors(panel, sel, [m.kinds_ for m in chosen], gap, h, cfg.season)
        T = int(length.max()) + gap + h
        y = np.full((len(sel), T), np.nan)
        width = min(T, panel.y.shape[1])
        y[:, :width] = panel.y[sel][:, :width]
        yt = proto.transform_y(filled(y, length))
        names_x, X = design(proto, panel.start_days()[sel], panel.step_days, yt, regs, proto.kind_signature(),
                            length, np.tile(proto.calendar_, (len(sel), 1)))
        if names_x != list(proto.columns_):
            pending.update(int(panel.keep[k]) for k in sel)
            continue
        fit = RidgeFit(*(np.concatenate([getattr(m.fit_, f) for m in chosen]) for f in
                         ("mean", "scale", "coef", "intercept", "log_bias", "alpha", "ok")))
        yhat = predict_rows(X, fit, length + gap, h, proto.log_target)
        reference = envelope.with_fit_reference(envelope.recent_max_rows(y, length, cfg), length,
                                                [m.recent_max_ for m in chosen], [m.recent_periods for m in chosen])
        yhat, outside = baseline.replace_outside(yhat, y, length, cfg, reference=reference, fallback=baselines[sel])
        for j, k in enumerate(sel):
            ds, origin = dates(int(k))
            out[int(panel.keep[k])] = BatchForecast(ds, yhat[j], origin, int(planned[j]),
                                                    replaced if outside[j] else None, baselines[k])
    every_id = None
    for members in globals_.values():
        sel = np.asarray(members)
        chosen = [models[int(panel.keep[k])] for k in sel]
        model = chosen[0].global_
        # the other series of the batch come along (after ``sel``) when the model serves only some: its group
        # features are means over a store's other products, as in training. A store whose champions belong to two
        # global models (some promoted today, some kept) gave each only its own, and a kept champion's forecast
        # moved (by up to 13 % on the demo) with which of its neighbours were promoted.
        whole = np.r_[sel, np.setdiff1d(np.arange(len(panel.keep)), sel)]
        if len(whole) > len(sel) and every_id is None:
            every_id = panel_ids(frame, panel, id_columns)
        ids = [m.ids for m in chosen] if len(whole) == len(sel) else [every_id[k] for k in whole]
        length = panel.length[whole]
        regs, planned = _future_regressors(panel, whole, [chosen[0].kinds_] * len(whole), gap, h, cfg.season)
        T = int(length.max()) + gap + h
        y = np.full((len(whole), T), np.nan)
        width = min(T, panel.y.shape[1])
        y[:, :width] = panel.y[whole][:, :width]
        batch = Batch(y, regs, length.copy(), panel.start_days()[whole], model.codes_for(ids))
        n = len(sel)
        yhat, outside = baseline.replace_outside(model.predict(batch, length + gap, h, targets=n), y[:n], length[:n],
                                                 cfg, fallback=baselines[sel])
        for j, k in enumerate(sel):
            ds, origin = dates(int(k))
            out[int(panel.keep[k])] = BatchForecast(ds, yhat[j], origin, int(planned[j]),
                                                    replaced if outside[j] else None, baselines[k])
    return out, sorted(pending)
