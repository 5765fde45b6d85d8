"""Rolling-origin backtests: how well a model would have forecast a series, origin after origin.

Why rolling origins: one holdout per series tells little (one draw of noise, one season). A backtest re-trains
the series at N origins and scores every forecast against what then happened. Placement, for a series whose
regular grid has n periods (row n - 1 is the last observation):

- the newest origin is the row ``n - 1 - gap - horizon``: its scored window (``origin + gap + 1`` ..
  ``origin + gap + horizon``) ends at the last observation; each earlier origin is ``horizon`` periods before
  the next, so the scored windows tile the end of the history without overlap;
- at every origin the model is fitted on the rows up to and including the origin and forecasts the periods
  ``gap + 1 .. gap + horizon`` after it (``step`` = periods after the origin); regressors of those periods are
  taken from the data, as if they had been planned (prices and promotions are);
- origins whose training history is shorter than ``min_train_periods`` use the series' baseline
  (``used_model``), the same fallback as training; a model that raises at one origin is replaced by the
  baseline there too, with the error in ``note``, and so is a forecast that leaves the sanity envelope, so a
  backtest row exists for every series, origin and target period and no forecast is outside the envelope.

Origins are anchored at each series' own last observation (like the training holdout), so a discontinued
item is judged on its own last periods.

Metrics (``summarize``), pooled over all scored points of a group (zeros and missing actuals handled as said):

- MAPE = mean(|y - ŷ| / y) over points with y > 0 (zero actuals are excluded: a ratio to zero is undefined);
- WAPE = Σ|y - ŷ| / Σy;
- bias = Σ(ŷ - y) / Σy (as a fraction; > 0 over-forecasts, < 0 under-forecasts);
- MASE = mean(|y - ŷ| / scale), scale = in-sample mean |y_t - y_{t-m}| of the training data at that origin;
- beats naive / seasonal naive: per series, the model's MAE is strictly below that of the naive (last value)
  / seasonal-naive forecast of the same points (equivalently its WAPE: same actuals); the share over series.

Read MAPE, WAPE and bias together: MAPE rewards forecasting low (an under-forecast costs at most 100 %, an
over-forecast without bound), WAPE weighs errors by volume and bias shows the direction.

This module does not import Dagster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting.base import filled
from mm_assets.forecasting.baseline import Baseline, SeasonalNaive
from mm_assets.forecasting.metrics import seasonal_naive_scale
from mm_assets.forecasting.model_types import AUTO, ModelType
from mm_assets.forecasting.models import BASELINE, BASELINE_TYPES, SIMPLICITY_ORDER, make_model
from mm_assets.forecasting.series import SeriesConfig, Y

NAIVE = "naive"
SNAIVE = ModelType.SEASONAL_NAIVE.value
FORECAST_COLUMNS = ["model_type", "used_model", "origin", "ds", "step", "actual", "forecast", "naive",
                    "snaive", "mase_scale", "note"]
METRIC_COLUMNS = ["n_points", "mape", "wape", "bias", "mase", "mae", "naive_mae", "snaive_mae"]
# what pooled WAPE and bias are made of: any grouping can be pooled again with SUM (the warehouse table has them)
SUM_COLUMNS = ["sum_abs_error", "sum_error", "sum_actual"]


def origin_positions(n_periods: int, origins: int, horizon: int, gap: int = 0, every: int | None = None
                     ) -> list[int]:
    """Row positions of the rolling origins (the last training row), oldest first, ``every`` periods apart
    (default: the horizon, windows that do not overlap; 1 scores every period from several origins, which a
    long horizon on a short history needs); origins that would leave fewer than 2 training rows are dropped."""
    newest = n_periods - 1 - gap - horizon
    return sorted(p for p in (newest - k * (every or horizon) for k in range(origins)) if p >= 1)


def model_params(model_type: str, params: dict[str, Any] | None, configured_type: str) -> dict[str, Any]:
    """The options of ``model_type``: ``params`` as given for a single model type; for ``auto``, the entry of
    that candidate (``{linear: {alpha: 2}}``)."""
    params = params or {}
    if configured_type == AUTO:
        sub = params.get(model_type)
        return dict(sub) if isinstance(sub, dict) else {}
    return dict(params) if model_type == configured_type else {}


@dataclass
class Choice:
    """What ``auto`` picked for one series and why."""

    model_type: str
    reason: str
    scores: dict[str, float]  # candidate -> WAPE of its backtest (NaN if undefined)


def select_model(
    frame: pd.DataFrame, cfg: SeriesConfig, candidates: tuple[str, ...] | None = None,
    origins: int | None = None, params: dict[str, Any] | None = None,
) -> Choice:
    """Pick the candidate with the lowest backtest error on ``frame`` (the series' own history).

    Ranked by the summed absolute error of the same points (the order WAPE gives, also defined when every
    actual is 0); ties go to the simpler model (``SIMPLICITY_ORDER``). Too short for any origin: seasonal naive.
    """
    candidates = tuple(dict.fromkeys(candidates or cfg.auto_candidates))
    origins = origins or cfg.auto_origins
    rows = backtest_series(frame, cfg, candidates, origins, params, configured_type=AUTO)
    scored = rows[rows["actual"].notna()] if len(rows) else rows
    if scored.empty:
        return Choice(BASELINE, "auto: history too short for a backtest; baseline", {})
    abs_err = (scored["actual"] - scored["forecast"]).abs()
    total = float(scored.groupby("model_type")["actual"].sum().iloc[0])
    sums = abs_err.groupby(scored["model_type"]).sum()
    rank = sorted(sums.index, key=lambda m: (round(float(sums[m]), 9), SIMPLICITY_ORDER.index(m)))
    scores = {m: (float(sums[m]) / total if total > 0 else math.nan) for m in rank}
    fmt = " < ".join(f"{m} {'n/a' if math.isnan(scores[m]) else f'{scores[m]:.3f}'}" for m in rank)
    n = scored["origin"].nunique()
    return Choice(rank[0], f"auto: backtest WAPE {fmt} ({n} origin{'s' if n != 1 else ''})", scores)


def fit_predict(
    model_type: str, train: pd.DataFrame, target: pd.DataFrame, cfg: SeriesConfig,
    params: dict[str, Any] | None = None, configured_type: str | None = None,
) -> tuple[np.ndarray, str, str | None]:
    """Fit ``model_type`` on ``train`` and forecast the rows of ``target``: (forecast, model used, note).

    ``auto`` selects on ``train`` alone (its own inner backtest), so nothing after the origin is seen.
    """
    configured_type = configured_type or model_type
    note = None
    used = model_type
    if model_type == AUTO:
        choice = select_model(train, cfg, params=params)
        used, note = choice.model_type, choice.reason
    if used not in BASELINE_TYPES and len(train) < cfg.min_train_periods:
        reason = f"fallback: {len(train)} training periods < min_train_periods {cfg.min_train_periods}"
        return Baseline(cfg).fit(train).predict(target), BASELINE, reason
    try:
        model = make_model(used, cfg, model_params(used, params, configured_type)).fit(train)
        pred = np.asarray(model.predict(target, history=train), dtype=float)
    except Exception as exc:  # noqa: BLE001 - one origin's failure must not hide the series: the baseline stands in, noted
        reason = f"fallback: {used} failed: {type(exc).__name__}: {str(exc)[:200]}"
        return Baseline(cfg).fit(train).predict(target), BASELINE, reason
    if model.last_envelope_:
        return pred, BASELINE, "; ".join(filter(None, [note, model.last_envelope_]))
    return pred, used, note


def backtest_series(
    frame: pd.DataFrame, cfg: SeriesConfig, model_types: tuple[str, ...] | list[str], origins: int,
    params: dict[str, Any] | None = None, configured_type: str | None = None, every: int | None = None,
) -> pd.DataFrame:
    """Every forecast of a rolling-origin backtest of one regular series (``series.regularize``), its origins
    ``every`` periods apart (``origin_positions``).

    One row per model type, origin and target period: ``FORECAST_COLUMNS`` (ids are the caller's).
    """
    h, gap = cfg.horizon, cfg.gap
    y_all = frame[Y].to_numpy(dtype=float)
    parts = []
    for pos in origin_positions(len(frame), origins, h, gap, every):
        train = frame.iloc[: pos + 1]
        target = frame.iloc[pos + 1 + gap : pos + 1 + gap + h]
        y_train = train[Y].to_numpy(dtype=float)
        naive = np.full(len(target), filled(train[Y])[-1])
        snaive = SeasonalNaive(cfg).fit(train).predict(target)
        scale = seasonal_naive_scale(y_train, cfg.season)
        common = {
            "origin": train.index[-1], "ds": target.index, "step": np.arange(gap + 1, gap + 1 + len(target)),
            "actual": y_all[pos + 1 + gap : pos + 1 + gap + h], "naive": naive, "snaive": snaive,
            "mase_scale": scale,
        }
        for model_type in model_types:
            pred, used, note = fit_predict(model_type, train, target, cfg.for_model(model_type), params,
                                           configured_type)
            parts.append(pd.DataFrame({"model_type": model_type, "used_model": used, **common,
                                       "forecast": np.asarray(pred, dtype=float), "note": note}))
    if not parts:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    return pd.concat(parts, ignore_index=True)[FORECAST_COLUMNS]


# ---- metrics --------------------------------------------------------------------------------------------------
def _point_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Per scored point: the sums and means the metrics are made of (missing actuals dropped)."""
    r = rows[rows["actual"].notna() & rows["forecast"].notna()]
    actual, forecast = r["actual"].to_numpy(dtype=float), r["forecast"].to_numpy(dtype=float)
    abs_err = np.abs(actual - forecast)
    positive = actual > 0
    scale = r["mase_scale"].to_numpy(dtype=float)
    good_scale = np.isfinite(scale) & (scale > 0)
    return r.assign(
        _abs=abs_err,
        _err=forecast - actual,
        _ape=np.where(positive, abs_err / np.where(positive, actual, 1.0), np.nan),
        _scaled=np.where(good_scale, abs_err / np.where(good_scale, scale, 1.0), np.nan),
        _naive_abs=np.abs(actual - r["naive"].to_numpy(dtype=float)),
        _snaive_abs=np.abs(actual - r["snaive"].to_numpy(dtype=float)),
    )


def _aggregate(points: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    g = points.groupby(keys, sort=True)
    out = pd.DataFrame({
        "n_points": g["_abs"].size(),
        "_sum_abs": g["_abs"].sum(),
        "_sum_err": g["_err"].sum(),
        "_sum_y": g["actual"].sum(),
        "mape": g["_ape"].mean(),
        "mase": g["_scaled"].mean(),
        "mae": g["_abs"].mean(),
        "naive_mae": g["_naive_abs"].mean(),
        "snaive_mae": g["_snaive_abs"].mean(),
    })
    positive = out["_sum_y"] > 0
    out["wape"] = (out["_sum_abs"] / out["_sum_y"]).where(positive)
    out["bias"] = (out["_sum_err"] / out["_sum_y"]).where(positive)
    out = out.rename(columns={"_sum_abs": "sum_abs_error", "_sum_err": "sum_error", "_sum_y": "sum_actual"})
    return out[[*METRIC_COLUMNS, *SUM_COLUMNS]].reset_index()


def series_metrics(rows: pd.DataFrame, id_columns: list[str]) -> pd.DataFrame:
    """Per series and model type: ``METRIC_COLUMNS`` plus ``origins`` and whether it beats naive and seasonal
    naive (MAE strictly lower on the same points)."""
    points = _point_columns(rows)
    keys = [*id_columns, "model_type"]
    if points.empty:
        return pd.DataFrame(columns=[*keys, *METRIC_COLUMNS, *SUM_COLUMNS, "origins", "beats_naive",
                                     "beats_snaive"])
    out = _aggregate(points, keys)
    out["origins"] = points.groupby(keys, sort=True)["origin"].nunique().to_numpy()
    out["beats_naive"] = out["mae"] < out["naive_mae"]
    out["beats_snaive"] = out["mae"] < out["snaive_mae"]
    return out


def pooled_metrics(rows: pd.DataFrame, id_columns: list[str]) -> pd.DataFrame:
    """Per model type, pooled over every series, origin and target period: ``METRIC_COLUMNS``, ``series``, the
    shares of series that beat naive / seasonal naive, and ``by_model_share``: the share of its points the model
    itself forecast (the others: its baseline, for a series too short at that origin or a forecast outside the
    envelope). The two baselines get rows of their own (``naive``, ``seasonal_naive`` when not already a model of
    the run)."""
    points = _point_columns(rows)
    # the sums let the warehouse pool any grouping again (``backtest_metrics``), naive and seasonal naive too
    columns = ["model_type", *METRIC_COLUMNS, "series", "beat_naive_share", "beat_snaive_share", "by_model_share",
               *SUM_COLUMNS]
    if points.empty:
        return pd.DataFrame(columns=columns)
    per_series = series_metrics(rows, id_columns)
    out = _aggregate(points, ["model_type"])
    shares = per_series.groupby("model_type").agg(
        series=("n_points", "size"), beat_naive_share=("beats_naive", "mean"),
        beat_snaive_share=("beats_snaive", "mean"),
    ).reset_index()
    out = out.merge(shares, on="model_type", how="left")
    # auto's points carry the candidate it chose per series: any but the baseline is a model
    by_model = (points["used_model"] == points["model_type"]) | (
        (points["model_type"] == AUTO) & (points["used_model"] != BASELINE))
    own = by_model.groupby(points["model_type"]).mean()
    out["by_model_share"] = out["model_type"].map(own)
    baseline_points = points.drop_duplicates([*id_columns, "origin", "ds"])
    # each baseline against the other, per series (MAE strictly lower on the same points), as a model is judged;
    # against itself a baseline's share is left out (n/a): "beats itself on 0 %" says nothing
    pair = baseline_points.groupby(id_columns, sort=False)[["_naive_abs", "_snaive_abs"]].mean()
    against = {NAIVE: ("beat_snaive_share", float((pair["_naive_abs"] < pair["_snaive_abs"]).mean())),
               SNAIVE: ("beat_naive_share", float((pair["_snaive_abs"] < pair["_naive_abs"]).mean()))}
    extra = []
    for name, column in ((NAIVE, "naive"), (SNAIVE, "snaive")):
        if name in set(out["model_type"]):
            continue
        base = baseline_points.assign(model_type=name, forecast=baseline_points[column])
        agg = _aggregate(_point_columns(base), ["model_type"])
        agg["series"] = base[id_columns].drop_duplicates().shape[0]
        agg["beat_naive_share"] = agg["beat_snaive_share"] = np.nan
        agg[against[name][0]] = against[name][1]
        extra.append(agg)
    return pd.concat([out, *extra], ignore_index=True)[columns]


def format_pooled(pooled: pd.DataFrame) -> str:
    """The pooled metrics as a fixed-width table (what ``mm-assets backtest`` prints)."""
    def pct(v):
        return "    n/a" if pd.isna(v) else f"{100 * v:6.1f}%"

    def num(v):
        return "   n/a" if pd.isna(v) else f"{v:6.3f}"

    lines = [f"{'model':<16}{'MAPE':>8}{'WAPE':>8}{'bias':>8}{'MASE':>8}{'>naive':>8}{'>snaive':>8}{'series':>8}"
             f"{'points':>9}{'by model':>9}"]
    for r in pooled.itertuples():
        lines.append(f"{r.model_type:<16}{pct(r.mape):>8}{pct(r.wape):>8}{pct(r.bias):>8}{num(r.mase):>8}"
                     f"{pct(r.beat_naive_share):>8}{pct(r.beat_snaive_share):>8}{int(r.series):>8}"
                     f"{int(r.n_points):>9}{pct(getattr(r, 'by_model_share', np.nan)):>9}")
    return "\n".join(lines)


def seasonal_naive_note(pooled: pd.DataFrame, season: int) -> str | None:
    """What to say when the seasonal-naive row scored exactly as naive: no series had a season of history before
    its origins, so seasonal naive repeated the last value (a second row of the same forecasts, not a finding)."""
    if not len(pooled) or "model_type" not in pooled:
        return None
    rows = pooled.set_index("model_type")
    if not {"naive", "seasonal_naive"} <= set(rows.index):
        return None
    columns = ["mape", "wape", "bias", "n_points"]
    a, b = rows.loc["naive", columns].to_numpy(dtype=float), rows.loc["seasonal_naive", columns].to_numpy(dtype=float)
    if not np.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True):
        return None
    return (f"note: seasonal_naive is naive here: no series has a season ({season} periods) of history before its "
            "origins, so it repeated the last value")


def baseline_reasons(forecasts: pd.DataFrame, most: int = 3) -> list[str]:
    """Why the points a model did not forecast itself went to its baseline (``note``), the most common reasons
    first, one line per model: a "by model" share of 50 % says nothing of whether the earliest origins were too
    short for the model or the model failed. A reason is a note whatever its figures, said by its most common note.
    Counted over
    the points scored (with an actual), as the pooled table's "by model" share is."""
    if forecasts.empty or "note" not in forecasts:
        return []
    if "actual" in forecasts:  # the points the metrics and the "by model" share are of: those with an actual
        forecasts = forecasts[forecasts["actual"].notna() & forecasts["forecast"].notna()]
    by_baseline = forecasts[(forecasts["used_model"] == BASELINE) & (forecasts["model_type"] != BASELINE)
                            & ~forecasts["model_type"].isin(list(BASELINE_TYPES))]
    lines = []
    for model_type, rows in by_baseline.groupby("model_type", sort=True):
        notes = (rows["note"].fillna("no reason recorded").astype(str).str.split(" (", n=1, regex=False).str[0]
                 .map(_shortened))
        kinds = notes.str.replace(r"\d[\d,.]*", "N", regex=True)  # one reason whatever its figures
        reasons = kinds.value_counts()
        # each reason said by its most common note, figures and all ("0 .. 3 x", not "N .. N x")
        said = notes.groupby(kinds).agg(lambda n: n.value_counts().index[0])
        varied = notes.groupby(kinds).nunique() > 1
        shown = "; ".join(f"{said[kind]}{', or alike' if varied[kind] else ''} ({count:,})"
                          for kind, count in reasons.head(most).items())
        more = f"; {len(reasons) - most} other reasons" if len(reasons) > most else ""
        total = int((forecasts["model_type"] == model_type).sum())
        lines.append(f"  {model_type}: {len(rows):,} of {total:,} points by its baseline: {shown}{more}")
    return lines


def spacing_hint(forecasts: pd.DataFrame, ids: list[str], every: int, least: float = 0.01) -> str | None:
    """A line for the terminal when origins ``every`` periods apart (more than one) sent at least ``least`` of the
    models' points to their baseline at origins before each series' newest: the further back an origin, the less
    history it has, and origins a period apart (``--every 1``) keep every one near the end. None otherwise."""
    if every <= 1 or forecasts.empty:
        return None
    models = forecasts[~forecasts["model_type"].isin(list(BASELINE_TYPES))]
    if models.empty:
        return None
    newest = models.groupby(ids, sort=False)["origin"].transform("max")
    early = int(((models["used_model"] == BASELINE) & (models["origin"] < newest)).sum())
    if early < least * len(models):
        return None
    return (f"  {early / len(models):.0%} of the models' points went to their baseline at origins before the newest, "
            f"{every} periods apart: --every 1 places the origins a period apart (overlapping windows), each with "
            "more history")


def _shortened(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[:width].rsplit(" ", 1)[0] + " ..."
