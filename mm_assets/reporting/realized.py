"""Realised accuracy: every published forecast against the actual once it has arrived.

Why: holdout metrics say how a model did before it was promoted; planners live with what it does after. Each
published forecast point (series, origin, period) whose actual is now in the data becomes one row with the
actual, the forecast, and the forecast the series' baseline made from the same origin for the same period
(scoring stores it beside every forecast; for forecasts scored before it did, it is recomputed from the history
up to that origin: the baseline is deterministic), so every aggregate can be judged against the baseline of the
same days:

    WAPE = Σ|yhat − actual| / Σ actual,  bias = Σ(yhat − actual) / Σ actual,
    MASE vs baseline = Σ|yhat − actual| / Σ|baseline − actual|  (< 1: the model beat the baseline).

No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mm_assets.forecasting import baseline
from mm_assets.forecasting.panel import build_panel
from mm_assets.forecasting.series import DS, SeriesConfig, Y

POINT_COLUMNS = ["origin", "ds", "lead", "model_type", "model_version", "model_source", "actual", "yhat",
                 "baseline_yhat"]


def realized_points(predictions: pd.DataFrame, dataset: pd.DataFrame, id_columns: list[str],
                    cfg: SeriesConfig) -> pd.DataFrame:
    """Published forecasts (``forecast_predictions`` rows) whose periods have an actual in ``dataset`` (the
    partition's series rows: ids, ds, y, regressors) → one row per point with ``POINT_COLUMNS``."""
    ids = list(id_columns)
    empty = pd.DataFrame(columns=[*ids, *POINT_COLUMNS])
    if predictions.empty or dataset.empty:
        return empty
    columns = [*ids, "origin", "ds", "yhat", "model_type", "model_version", "model_source"]
    stored = "baseline_yhat" in predictions.columns
    preds = predictions[[*columns, "baseline_yhat"] if stored else columns].copy()
    preds["origin"] = pd.to_datetime(preds["origin"])
    preds["ds"] = pd.to_datetime(preds["ds"])
    for c in ids:
        preds[c] = preds[c].astype(str)
    # only the periods forecast: a merge with the whole history would hash every row of the partition
    ds = pd.to_datetime(dataset[DS])
    known = dataset[Y].notna() & (ds >= preds["ds"].min()) & (ds <= preds["ds"].max())
    actual = dataset.loc[known, [*ids, DS, Y]].rename(columns={DS: "ds", Y: "actual"})
    actual["ds"] = pd.to_datetime(actual["ds"])
    points = preds.merge(actual, on=[*ids, "ds"], how="inner")
    if points.empty:
        return empty
    step_ns = int(cfg.step.value)
    points["lead"] = ((points["ds"] - points["origin"]).to_numpy(dtype="timedelta64[ns]").astype(np.int64)
                      // step_ns).astype(int)
    base = (pd.to_numeric(points["baseline_yhat"], errors="coerce").to_numpy(dtype=float) if stored
            else np.full(len(points), np.nan))
    missing = np.isnan(base)  # forecasts scored before scoring stored the baseline: recomputed from history
    if missing.any():
        base[missing] = _baseline_forecasts(points[missing].reset_index(drop=True), dataset, ids, cfg)
    points["baseline_yhat"] = base
    return points[[*ids, *POINT_COLUMNS]].sort_values([*ids, "origin", "ds"], ignore_index=True)


def _baseline_forecasts(points: pd.DataFrame, dataset: pd.DataFrame, ids: list[str], cfg: SeriesConfig) -> np.ndarray:
    """The baseline's forecast of each point's period from the point's origin (NaN where the series' history
    does not reach the origin)."""
    frame = dataset[[*ids, DS, Y]].sort_values([*ids, DS], ignore_index=True)
    cfg = replace(cfg, regressors=())  # the baseline reads the target only
    panel = build_panel(frame, ids, cfg)
    kept = frame.iloc[panel.starts[panel.keep]][ids].astype(str)
    index = pd.Series(np.arange(len(kept)), index=pd.MultiIndex.from_frame(kept) if len(ids) > 1 else kept[ids[0]])
    key = pd.MultiIndex.from_frame(points[ids]) if len(ids) > 1 else points[ids[0]]
    k_of_point = index.reindex(key).to_numpy()
    out = np.full(len(points), np.nan)
    step_ns = int(cfg.step.value)
    max_lead = int(points["lead"].max())
    if max_lead < 1:
        return out
    origin_ns = points["origin"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    for origin in np.unique(origin_ns):
        at = np.flatnonzero((origin_ns == origin) & ~np.isnan(k_of_point) & (points["lead"].to_numpy() >= 1))
        if not len(at):
            continue
        ks = k_of_point[at].astype(int)
        series, where = np.unique(ks, return_inverse=True)
        n = (origin - panel.start_ns[series]) // step_ns + 1  # periods up to and including the origin
        ok = (n >= 1) & (n <= panel.length[series])
        n = np.clip(n, 1, panel.length[series])
        method, _ = baseline.choose_rows(panel.y[series], n, cfg)
        forecast = baseline.forecast_rows(panel.y[series], n, method, max_lead, 0, cfg)
        leads = points["lead"].to_numpy()[at]
        values = forecast[where, leads - 1]
        out[at] = np.where(ok[where], values, np.nan)
    return out


@dataclass(frozen=True)
class JudgedSpan:
    """What one run of realised accuracy judges for a store: the points of origins from ``origin_from`` and, when
    the store has judged points already, only of periods from ``ds_from`` on (None: every period)."""

    origin_from: dt.datetime
    ds_from: dt.datetime | None
    step: pd.Timedelta
    reach: int  # gap + horizon: the furthest period after its origin a forecast reaches
    window_periods: int

    def _first_origin_of(self, ds: pd.Timestamp) -> dt.datetime:
        """The oldest origin of the span whose forecasts reach ``ds`` (a forecast reaches ``reach`` periods)."""
        return max(pd.Timestamp(self.origin_from), pd.Timestamp(ds) - self.reach * self.step).to_pydatetime()

    @property
    def first_origin(self) -> dt.datetime:
        """The oldest origin with a point in the span."""
        return self.origin_from if self.ds_from is None else self._first_origin_of(self.ds_from)

    def window(self, newest: pd.Timestamp) -> tuple[dt.datetime, dt.datetime]:
        """(origin_from, ds_after) of the judged window: the periods after ``ds_after``, the newest
        ``window_periods`` up to ``newest``, and the oldest origin that reaches them."""
        ds_after = newest - self.window_periods * self.step
        return self._first_origin_of(ds_after), ds_after.to_pydatetime()


def judged_span(newest: pd.Timestamp, through: dt.datetime | None, cfg: SeriesConfig, window: int,
                rejudge: int, corrected_from: pd.Timestamp | None = None) -> JudgedSpan:
    """The span one run judges: forecasts of origins in the newest ``2 × horizon + window`` periods, and of those
    only the periods after ``through`` (the newest already judged) plus the newest ``rejudge`` judged ones, and
    every period from ``corrected_from`` on (the oldest period whose actuals the source corrected since they were
    judged).

    Why not every point of the window each time: a daily store forecast 28 periods ahead has 28 forecasts of every
    period, so the window holds ~2,000 points per series; judging only what arrived keeps a day's work to the
    day's points (the window's figures are summed by the warehouse)."""
    step = cfg.step
    origin_from = newest - (2 * cfg.horizon + window) * step
    ds_from = None
    if through is not None:
        ds_from = pd.Timestamp(through) - (rejudge - 1) * step
        if corrected_from is not None:
            ds_from = min(ds_from, pd.Timestamp(corrected_from))
        ds_from = max(ds_from, origin_from + step)
    return JudgedSpan(origin_from.to_pydatetime(), None if ds_from is None else ds_from.to_pydatetime(), step,
                      cfg.gap + cfg.horizon, window)


def corrected_since(corrections: pd.DataFrame, judged_at: dt.datetime | None) -> pd.Timestamp | None:
    """The oldest period the source corrected after ``judged_at`` (``corrections``: ``period``, ``rewritten_at``,
    as the ingest records them), or None: its forecasts were judged against the actuals before the correction."""
    if judged_at is None or not len(corrections):
        return None
    later = corrections.loc[pd.to_datetime(corrections["rewritten_at"]) > pd.Timestamp(judged_at), "period"]
    return pd.Timestamp(min(later)) if len(later) else None


def ratios(sums: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """WAPE, bias and MASE vs the baseline per group of ``keys`` from summed points (``points``, ``sum_actual``,
    ``sum_abs_error``, ``sum_error``, ``sum_baseline_abs_error``: per point or already per finer group)."""
    g = sums.groupby(keys, sort=True)[["points", "sum_actual", "sum_abs_error", "sum_error",
                                       "sum_baseline_abs_error"]].sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        g["wape"] = np.where(g["sum_actual"] > 0, g["sum_abs_error"] / g["sum_actual"], np.nan)
        g["bias"] = np.where(g["sum_actual"] > 0, g["sum_error"] / g["sum_actual"], np.nan)
        g["mase_vs_baseline"] = np.where(g["sum_baseline_abs_error"] > 0,
                                         g["sum_abs_error"] / g["sum_baseline_abs_error"], np.nan)
    return g.reset_index()
