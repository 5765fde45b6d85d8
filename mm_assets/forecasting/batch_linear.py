"""The ``linear`` model for many series at once: one design tensor, one batched least-squares solve.

Why: fitting Ridge per series spends almost all its time in pandas feature building and scikit-learn call
overhead, not in arithmetic (a series is a 4,000 × 20 least-squares problem: microseconds of flops). Here the
features of a whole batch are built with numpy on a ``Panel`` and every series' ridge normal equations are
solved in one ``np.linalg.solve`` over a stack of small matrices. Each series still gets its own
``LinearForecaster`` (same coefficients, standardisation and stored tail as fitting it alone: the tests compare
them), its own holdout metrics and its own result row.

Series too short for the model get the per-series fallback rules (``training.train_regular``) on the panel's
regular frame. Series the panel rejects (off-grid or duplicate timestamps) or with too few usable rows are
returned as ``pending`` for the per-series path, which raises the precise error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mm_assets.forecasting.metrics import forecast_metrics
from mm_assets.forecasting.models import LinearForecaster, SeasonalNaive
from mm_assets.forecasting.panel import Panel, build_panel, filled, is_binary, rolling_mean, shift
from mm_assets.forecasting.series import DS, Y, SeriesConfig
from mm_assets.forecasting.training import STATUS_TRAINED, TrainOutcome, train_regular

MAX_CELLS = 1_500_000  # series × periods per design tensor (× ~21 features × 8 bytes ≈ 250 MB at most)


def design(
    proto: LinearForecaster,
    start_days: np.ndarray,
    step_days: int,
    yt: np.ndarray,
    regs: dict[str, np.ndarray],
    binary: tuple[bool, ...],
    n_hist: np.ndarray,
) -> tuple[list[str], np.ndarray]:
    """``LinearForecaster._features`` for a batch sharing one binary signature → (columns, X of K × p × T).

    Features are the middle axis so that each one is written contiguously.

    ``yt``: the transformed, filled target, NaN from each series' ``n_hist`` on (never look at the future).
    """
    K, T = yt.shape
    cfg = proto.cfg
    p = 1 + (6 if cfg.is_daily else 0) + 2 * proto.fourier_order + 3 + sum(1 if f else 2 for f in binary)
    X = np.empty((K, p, T))
    names: list[str] = []

    def put(name: str, values: np.ndarray) -> None:
        X[:, len(names), :] = values
        names.append(name)

    days = start_days[:, None] + np.arange(T)[None, :] * float(step_days)
    put("trend", days / 365.25)
    if cfg.is_daily:
        dow = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        for d in range(1, 7):
            put(f"dow_{d}", dow == d)
    for k in range(1, proto.fourier_order + 1):
        angle = 2 * np.pi * k * days / 365.25
        put(f"sin_{k}", np.sin(angle))
        put(f"cos_{k}", np.cos(angle))
    put("lag_season", shift(yt, proto.seasonal_lag))
    put("level", shift(rolling_mean(yt, cfg.season), proto.reach))
    put("level_long", shift(rolling_mean(yt, 4 * cfg.season), proto.reach))
    rows = np.arange(K)
    for col, flag in zip(cfg.regressors, binary):
        values = regs[col]
        if flag:
            put(col, values)
            continue
        logv = np.log(np.clip(values, 1e-6, None))
        ref = shift(rolling_mean(logv, proto.price_window), 1)
        last = np.where(n_hist > 0, ref[rows, np.clip(n_hist - 1, 0, T - 1)], np.nan)
        after = np.arange(T)[None, :] >= n_hist[:, None]
        ref = np.where(after, last[:, None], ref)
        put(f"log_{col}", logv)
        put(f"rel_{col}", logv - ref)
    return names, X


@dataclass
class RidgeFit:
    mean: np.ndarray  # (K, p)
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray  # (K,)
    ok: np.ndarray  # (K,) bool: at least two usable rows


def _statistics(X: np.ndarray, target: np.ndarray, usable: np.ndarray):
    """Sufficient statistics of each series' usable rows: count, column sums, Gram matrix, the zero-filled
    target and X·t. Zeroes ``X``'s unusable rows in place (one design tensor in memory); the products are
    batched BLAS calls (``matmul``)."""
    X = np.nan_to_num(X, copy=False)
    X *= usable[:, None, :]
    t = np.where(usable, target, 0.0)
    gram = np.matmul(X, X.transpose(0, 2, 1))
    xt = np.matmul(X, t[:, :, None])[:, :, 0]
    return usable.sum(axis=1).astype(float), X.sum(axis=2), gram, t, xt


def fit_ridge(X: np.ndarray, target: np.ndarray, usable: np.ndarray, alpha: float) -> RidgeFit:
    """Per series: standardise on its usable rows, then scikit-learn's Ridge(cholesky) with an intercept."""
    n, sums, gram, t, xt = _statistics(X, target, usable)
    return _solve(n, sums, gram, t.sum(axis=1), xt, alpha)


def _solve(n, sums, gram, t_sum, xt, alpha: float) -> RidgeFit:
    """Ridge from sufficient statistics of the usable rows: count, column sums, Gram matrix, target sum and
    X·t. Centring and standardising happen on the p × p statistics, not on the T × p data."""
    safe_n = np.where(n > 0, n, 1.0)
    mean = sums / safe_n[:, None]
    centred = gram - safe_n[:, None, None] * mean[:, :, None] * mean[:, None, :]
    var = np.diagonal(centred, axis1=1, axis2=2) / safe_n[:, None]
    std = np.sqrt(np.clip(var, 0.0, None))
    scale = np.where(std > 1e-12 * (np.abs(mean) + 1.0), std, 1.0)  # a constant column: scale 1 (scikit-learn)
    p = gram.shape[1]
    A = centred / (scale[:, :, None] * scale[:, None, :]) + alpha * np.eye(p)[None, :, :]
    t_mean = t_sum / safe_n
    b = (xt - t_mean[:, None] * sums) / scale
    coef = np.linalg.solve(A, b[:, :, None])[:, :, 0]
    return RidgeFit(mean=mean, scale=scale, coef=coef, intercept=t_mean, ok=n >= 2)


def fit_holdout_and_full(X, target, usable, n_fit, tail: int, alpha: float) -> tuple[RidgeFit, RidgeFit]:
    """Both fits of a series from one pass over the design: all usable rows (the served model) and those
    before ``n_fit`` (the holdout model). The holdout's statistics are the full ones minus the last ``tail``
    periods'. Zeroes ``X``'s unusable rows in place."""
    n_full, sums, gram, t, xt = _statistics(X, target, usable)
    rows = np.arange(X.shape[0])[:, None]
    idx = n_fit[:, None] + np.arange(tail)[None, :]
    Xtail = X[rows, :, idx]  # K × tail × p (zero where unusable)
    ttail = t[rows, idx]
    n_hold = n_full - usable[rows, idx].sum(axis=1)
    full = _solve(n_full, sums, gram, t.sum(axis=1), xt, alpha)
    hold = _solve(
        n_hold, sums - Xtail.sum(axis=1), gram - np.matmul(Xtail.transpose(0, 2, 1), Xtail),
        t.sum(axis=1) - ttail.sum(axis=1), xt - np.einsum("ksp,ks->kp", Xtail, ttail), alpha,
    )
    return hold, full


def predict_rows(X: np.ndarray, fit: RidgeFit, first: np.ndarray, steps: int, log_target: bool) -> np.ndarray:
    """Forecasts at rows ``first[k] .. first[k] + steps - 1`` of each series (K × steps), clipped at 0."""
    idx = first[:, None] + np.arange(steps)[None, :]
    rows = X[np.arange(X.shape[0])[:, None], :, idx]  # K × steps × p
    rows = np.where(np.isnan(rows), fit.mean[:, None, :], rows)
    pred = np.einsum("ksp,kp->ks", (rows - fit.mean[:, None, :]) / fit.scale[:, None, :], fit.coef)
    pred += fit.intercept[:, None]
    return np.clip(np.expm1(pred) if log_target else pred, 0.0, None)


def _transform(proto: LinearForecaster, y: np.ndarray) -> np.ndarray:
    return proto._transform_y(y)


def _fit_at(proto, panel: Panel, sel: np.ndarray, n_fit: np.ndarray, binary: tuple[bool, ...]):
    """Design on the first ``n_fit`` periods of the selected series, and the fit on their usable rows."""
    y = panel.y[sel]
    T = int(n_fit.max())
    y = y[:, :T]
    inside = np.arange(T)[None, :] < n_fit[:, None]
    yt = _transform(proto, filled(np.where(inside, y, np.nan), n_fit))
    regs = {c: panel.regs[c][sel][:, :T] for c in proto.cfg.regressors}
    names, X = design(proto, panel.start_days()[sel], panel.step_days, yt, regs, binary, n_fit)
    target = _transform(proto, np.where(inside, y, np.nan))
    usable = inside & ~np.isnan(target) & ~np.isnan(X).any(axis=1)
    usable[:, : proto.reach] = False
    return names, X, fit_ridge(X, target, usable, proto.alpha)


def _holdout_forecast(proto, panel: Panel, sel: np.ndarray, binary: tuple[bool, ...], fit: RidgeFit) -> np.ndarray:
    """The holdout model's forecast of the last ``horizon`` periods from the history ``gap`` periods before them
    (``training._holdout_metrics``: the forecast's lead time is the one it will be used with)."""
    h, gap = proto.cfg.horizon, proto.cfg.gap
    length = panel.length[sel]
    n_hist = length - h - gap
    T = int(length.max())
    inside = np.arange(T)[None, :] < n_hist[:, None]
    y = panel.y[sel][:, :T]
    yt = _transform(proto, filled(np.where(inside, y, np.nan), n_hist))
    regs = {c: panel.regs[c][sel][:, :T] for c in proto.cfg.regressors}
    _, X = design(proto, panel.start_days()[sel], panel.step_days, yt, regs, binary, n_hist)
    return predict_rows(X, fit, n_hist + gap, h, proto.log_target)


def _snaive(y_train_filled: np.ndarray, steps: int, season: int, gap: int) -> np.ndarray:
    m = min(season, len(y_train_filled))
    return y_train_filled[-m:][np.arange(gap, gap + steps) % m].astype(float)


def _dates(panel: Panel, k: int, lo: int, hi: int) -> np.ndarray:
    """datetime64[ns] of periods lo..hi-1 of series k."""
    step = panel.step_days * 86_400 * 10**9
    return (panel.start_ns[k] + np.arange(lo, hi, dtype=np.int64) * step).astype("datetime64[ns]")


def _tail_frame(panel: Panel, k: int, rows: int, cfg: SeriesConfig) -> pd.DataFrame:
    length = int(panel.length[k])
    lo = max(0, length - rows)
    index = pd.DatetimeIndex(_dates(panel, k, lo, length), name=DS)
    values = np.column_stack([panel.y[k, lo:length], *(panel.regs[c][k, lo:length] for c in cfg.regressors)])
    return pd.DataFrame(values, index=index, columns=[Y, *cfg.regressors])


def train_linear_batch(
    frame: pd.DataFrame, id_columns: list[str], cfg: SeriesConfig, params: dict | None = None
) -> tuple[dict[int, TrainOutcome], list[int]]:
    """Rows of many series → ({series index: outcome}, [series indices for the per-series path]).

    Series indices count the series of ``frame`` in order (as ``slice_boundaries`` finds them).
    """
    params = params or {}
    started = time.perf_counter()
    panel = build_panel(frame, id_columns, cfg)
    proto = LinearForecaster(cfg, **params)
    held_out = cfg.horizon + cfg.gap  # the holdout and the lead time before it
    pending = set(int(i) for i in panel.rejected)
    enough = panel.length >= cfg.min_train_periods + held_out
    T = panel.y.shape[1]
    before = np.arange(T)[None, :] < (panel.length - held_out)[:, None]
    observed_before = (before & ~np.isnan(panel.y)).any(axis=1)
    eligible = enough & (panel.length > held_out + 1) & observed_before
    outcomes: dict[int, TrainOutcome] = {}
    for k in np.flatnonzero(~eligible):
        # too short for the model (seasonal-naive fallback) or no holdout: the per-series rules, on the panel's
        # regular frame (no second pass through pandas' regularize)
        outcomes[int(panel.keep[k])] = train_regular(
            _tail_frame(panel, int(k), int(panel.length[k]), cfg), cfg, "linear", params
        )
    cand = np.flatnonzero(eligible)
    if len(cand):
        bin_full = np.stack([is_binary(panel.regs[c][cand], panel.length[cand]) for c in cfg.regressors], axis=1) \
            if cfg.regressors else np.zeros((len(cand), 0), dtype=bool)
        bin_train = np.stack(
            [is_binary(panel.regs[c][cand], panel.length[cand] - held_out) for c in cfg.regressors], axis=1
        ) if cfg.regressors else np.zeros((len(cand), 0), dtype=bool)
        signatures = {}
        for j, k in enumerate(cand):
            signatures.setdefault((tuple(bin_train[j]), tuple(bin_full[j])), []).append(int(k))
        for (sig_train, sig_full), members in signatures.items():
            members_arr = np.asarray(members)
            per_chunk = max(1, MAX_CELLS // max(1, int(panel.length[members_arr].max())))
            for lo in range(0, len(members_arr), per_chunk):
                sel = members_arr[lo : lo + per_chunk]
                outcomes.update(_train_group(proto, panel, sel, sig_train, sig_full, params, pending))
    elapsed = time.perf_counter() - started
    per_series = elapsed / max(1, len(outcomes))
    for outcome in outcomes.values():
        outcome.fit_seconds = per_series  # the batch's time shared out: series of a batch are fitted together
    return outcomes, sorted(pending)


def _one_design(proto, panel: Panel, sel, binary: tuple[bool, ...]):
    """Holdout fit, holdout forecast and full fit from one design of the whole history.

    The holdout design equals the full one on every row before the holdout's origin (lags and levels only
    reach back; the target is filled the same way), and on the holdout rows too, except the relative-price
    features, whose reference price is frozen at the origin: they are recomputed for those rows here.
    """
    cfg = proto.cfg
    h, gap = cfg.horizon, cfg.gap
    length = panel.length[sel]
    n_fit = length - h - gap
    T = int(length.max())
    inside = np.arange(T)[None, :] < length[:, None]
    y = panel.y[sel][:, :T]
    yt = _transform(proto, filled(y, length))
    regs = {c: panel.regs[c][sel][:, :T] for c in cfg.regressors}
    names, X = design(proto, panel.start_days()[sel], panel.step_days, yt, regs, binary, length)
    target = _transform(proto, np.where(inside, y, np.nan))
    usable = inside & ~np.isnan(target) & ~np.isnan(X).any(axis=1)
    usable[:, : proto.reach] = False
    rows = np.arange(len(sel))[:, None]
    test_idx = (length - h)[:, None] + np.arange(h)[None, :]
    test = X[rows, :, test_idx]  # K × h × p, copied before the fit zeroes rows
    origin = (n_fit - 1)[:, None]
    for col, flag in zip(cfg.regressors, binary):
        if not flag:
            j_log, j_rel = names.index(f"log_{col}"), names.index(f"rel_{col}")
            ref = (X[rows, j_log, origin] - X[rows, j_rel, origin])  # reference price at the origin
            test[:, :, j_rel] = test[:, :, j_log] - ref
    usable_hold = usable & (np.arange(T)[None, :] < n_fit[:, None])
    hold, full = fit_holdout_and_full(X, target, usable, n_fit, h + gap, proto.alpha)
    hold.ok &= usable_hold.sum(axis=1) >= 2
    test = np.where(np.isnan(test), hold.mean[:, None, :], test)
    pred = np.einsum("ksp,kp->ks", (test - hold.mean[:, None, :]) / hold.scale[:, None, :], hold.coef)
    pred += hold.intercept[:, None]
    pred = np.clip(np.expm1(pred) if proto.log_target else pred, 0.0, None)
    return names, hold, pred, full


def _train_group(proto, panel: Panel, sel, sig_train, sig_full, params, pending: set) -> dict[int, TrainOutcome]:
    cfg = proto.cfg
    h, gap = cfg.horizon, cfg.gap
    length = panel.length[sel]
    if sig_train == sig_full:
        names, hold_fit, hold_pred, full_fit = _one_design(proto, panel, sel, sig_full)
    else:  # a regressor is 0/1 before the holdout only: the two fits have different columns
        _, _, hold_fit = _fit_at(proto, panel, sel, length - h - gap, sig_train)
        hold_pred = _holdout_forecast(proto, panel, sel, sig_train, hold_fit)
        names, _, full_fit = _fit_at(proto, panel, sel, length, sig_full)
    binary_full = tuple(c for c, f in zip(cfg.regressors, sig_full) if f)
    out: dict[int, TrainOutcome] = {}
    for j, k in enumerate(sel):
        index = int(panel.keep[k])
        if not (hold_fit.ok[j] and full_fit.ok[j]):
            pending.add(index)  # the per-series path raises "too few usable rows" for it
            continue
        L = int(length[j])
        y = panel.y[k, :L]
        y_train, y_test = y[: L - h - gap], y[L - h :]
        base_pred = _snaive(filled(y_train[None, :], np.array([L - h - gap]))[0], h, cfg.season, gap)
        metrics = forecast_metrics(y_test, hold_pred[j], y_train, cfg.season, y_baseline=base_pred)
        base = forecast_metrics(y_test, base_pred, y_train, cfg.season)
        metrics["baseline_accuracy"] = base["accuracy"]
        metrics["baseline_wape"] = base["wape"]
        model = LinearForecaster(cfg, **params)
        model.binary_ = binary_full
        model.columns_ = list(names)
        model.mean_ = full_fit.mean[j].copy()
        model.scale_ = full_fit.scale[j].copy()
        model.coef_ = full_fit.coef[j].copy()
        model.intercept_ = float(full_fit.intercept[j])
        model.tail_ = _tail_frame(panel, k, model.tail_length, cfg)
        start = pd.Timestamp(panel.start_ns[k])
        tail_lo = max(0, L - 3 * h)
        holdout = {
            "ds": list(np.datetime_as_string(_dates(panel, k, tail_lo, L), unit="D")),
            "actual": [None if math.isnan(v) else round(float(v), 4) for v in y[tail_lo:L]],
            "forecast": [round(float(v), 4) for v in hold_pred[j]],
        }
        out[index] = TrainOutcome(
            model=model, model_type="linear", status=STATUS_TRAINED, reason=None,
            metrics={key: float(v) for key, v in metrics.items()},
            n_obs=int((~np.isnan(y)).sum()), data_start=start,
            data_end=start + pd.Timedelta(days=(L - 1) * panel.step_days), extra={"holdout": holdout},
        )
    return out


# ---- forecasting many series ------------------------------------------------------------------------------
@dataclass
class BatchForecast:
    ds: np.ndarray  # datetime64[ns], the horizon's periods
    yhat: np.ndarray
    origin: pd.Timestamp
    planned_periods: int


def _future_regressors(panel: Panel, sel: np.ndarray, binary: tuple[str, ...] | list[tuple[str, ...]],
                       gap: int, horizon: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Regressors over history + gap + horizon (``series.future_frame`` semantics) and planned periods per series.

    Gap periods keep the last known value; horizon periods take the plan where one exists, else 0 for a flag
    regressor (no promotion) and the last known value for any other (price).
    """
    cfg_regs = list(panel.regs)
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
        last = hist[rows, length - 1]
        flags = np.array([col in (binary[j] if isinstance(binary, list) else binary) for j in range(len(sel))])
        default = np.where(flags, 0.0, last)
        plan = np.full((len(sel), horizon), np.nan)
        take = max(0, min(horizon, P - gap))
        if take:
            plan[:, :take] = panel.planned[col][sel][:, gap : gap + take]
        used |= ~np.isnan(plan)
        future = np.where(np.isnan(plan), default[:, None], plan)
        values = np.where(pos < length[:, None], hist, last[:, None])  # history, then gap: last known value
        idx = length[:, None] + gap + np.arange(horizon)[None, :]
        values[rows[:, None], idx] = future
        out[col] = values
    return out, used.sum(axis=1)


def forecast_batch(
    frame: pd.DataFrame, id_columns: list[str], cfg: SeriesConfig, models: dict[int, object | None]
) -> tuple[dict[int, BatchForecast], list[int]]:
    """Forecast many series from their current rows: ``models[i]`` is series i's ``LinearForecaster``,
    ``SeasonalNaive`` or ``None`` (the seasonal-naive baseline). Returns forecasts and the series left to the per-series path
    (other model types, data the panel rejects, a model whose reach is too short for horizon + gap)."""
    panel = build_panel(frame, id_columns, cfg)
    h, gap = cfg.horizon, cfg.gap
    pending = set(int(i) for i in panel.rejected)
    slot = {int(i): k for k, i in enumerate(panel.keep)}
    groups: dict[tuple, list[int]] = {}
    naive: list[int] = []
    for index, k in slot.items():
        model = models.get(index)
        if model is None or type(model) is SeasonalNaive:  # it forecasts from the current rows alone
            naive.append(k)
        elif isinstance(model, LinearForecaster) and model.coef_ is not None and gap + h <= model.reach:
            signature = (tuple(model.columns_), model.binary_, model.reach, model.seasonal_lag, model.fourier_order,
                         model.price_window, model.log_target, model.cfg.season, model.cfg.regressors)
            groups.setdefault(signature, []).append(k)
        else:
            pending.add(index)
    out: dict[int, BatchForecast] = {}
    step_ns = panel.step_days * 86_400 * 10**9

    def dates(k: int) -> tuple[np.ndarray, pd.Timestamp]:
        L = int(panel.length[k])
        first = panel.start_ns[k] + (L + gap) * step_ns
        ds = (first + np.arange(h, dtype=np.int64) * step_ns).astype("datetime64[ns]")
        return ds, pd.Timestamp(panel.start_ns[k] + (L - 1) * step_ns)

    if naive:
        sel = np.asarray(naive)
        length = panel.length[sel]
        y = filled(panel.y[sel], length)
        _, planned = _future_regressors(panel, sel, [()] * len(sel), gap, h) if cfg.regressors else (
            None, np.zeros(len(sel), dtype=int))
        m = np.minimum(cfg.season, length)
        steps = np.arange(gap, gap + h)[None, :]
        idx = length[:, None] - m[:, None] + steps % m[:, None]
        yhat = np.clip(y[np.arange(len(sel))[:, None], idx], 0.0, None)
        for j, k in enumerate(sel):
            ds, origin = dates(int(k))
            out[int(panel.keep[k])] = BatchForecast(ds, yhat[j], origin, int(planned[j]))
    for signature, members in groups.items():
        sel = np.asarray(members)
        proto = models[int(panel.keep[sel[0]])]
        length = panel.length[sel]
        regs, planned = _future_regressors(panel, sel, proto.binary_, gap, h)
        T = int(length.max()) + gap + h
        y = np.full((len(sel), T), np.nan)
        width = min(T, panel.y.shape[1])
        y[:, :width] = panel.y[sel][:, :width]
        yt = proto._transform_y(filled(y, length))
        flags = tuple(c in proto.binary_ for c in proto.cfg.regressors)
        names, X = design(proto, panel.start_days()[sel], panel.step_days, yt, regs, flags, length)
        if names != list(proto.columns_):
            pending.update(int(panel.keep[k]) for k in sel)
            continue
        chosen = [models[int(panel.keep[k])] for k in sel]
        fit = RidgeFit(
            mean=np.stack([m.mean_ for m in chosen]), scale=np.stack([m.scale_ for m in chosen]),
            coef=np.stack([m.coef_ for m in chosen]), intercept=np.array([m.intercept_ for m in chosen]),
            ok=np.ones(len(sel), dtype=bool),
        )
        yhat = predict_rows(X, fit, length + gap, h, proto.log_target)
        for j, k in enumerate(sel):
            ds, origin = dates(int(k))
            out[int(panel.keep[k])] = BatchForecast(ds, yhat[j], origin, int(planned[j]))
    return out, sorted(pending)
