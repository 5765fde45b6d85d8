"""The ``lightgbm`` model: one gradient-boosted model (LightGBM) learns across many series at once.

Why a global model: a store's handful of products, each with two years of weeks, is too little to learn how
demand answers a price cut or a display from one series alone; thousands of series together are not. The model
sees every series of the batch (all store partitions of a run), with each id column (store, item) as a
categorical feature and the series' own recent levels, so that it still learns each series' level and response.

Features of period t (direct multi-step, like ``linear``: every lag is at least ``reach = horizon + gap``
periods old, so one model forecasts every step of the horizon):

- lags of log1p(y) at reach .. reach + n_lags - 1, the seasonal lag (``season_length``; a year back for daily
  data with a weekly season), trailing means over a week/month/year (daily) or month/quarter/year (weekly) and a
  trailing standard deviation, all ending at t - reach;
- calendar: month, week of year (weekly) or day of week and day of year (daily);
- regressors by kind (``series.kind_of``, decided on the whole training panel): positive (price-like) columns as
  log; log relative to their own quarter's mean, below their regular price (the quarter's highest) and change,
  each measured against the quarter up to the period the lags are read from (the origin: a planned price is
  never measured against another planned price, so a plan's price in one period does not move the others'
  forecasts); and log relative to the store's other products that period; flags and shares as they are, with
  their previous period's value (the dip after a promotion) and the store's other products' mean;
- each id column (store, item) as a categorical feature; the series itself too with ``series_category`` (off by
  default: no better on real data, and at 10,000 series its splits cost more than the rest of a round).

Training at scale: a fit reads each series' newest ``history_periods`` only (``max_train_periods`` and what their
features look back on), the arrays features are read from are built once per chunk of series for every lead time,
and a booster learns from at most ``max_train_rows`` rows drawn from them (seeded).

Objective (``params.objective``): ``auto`` (the default) is ``l2`` unless half or more of the fit's series are
intermittent (``baseline.intermittent_rows``: a quarter or more of their periods without sales), then ``tweedie``:
on log1p(y) the model learns a slow mover's typical period, which is below its mean rate (a quarter to a third below
on generated slow movers and on the demo's), and a planner stocks by the mean; ``tweedie`` forecasts the mean. With
``l2``, the intermittent series among them are forecast at their mean by a level factor each (``level_factors``).
The choice is made at every fit from its training periods and said in the model's reason. ``l2`` on log1p(y),
``l1`` on log1p(y) (the median),
``tweedie`` on y (a log link for counts with zeros), or ``mape``: ``l1`` on log1p(y) with weights 1/y, whose
optimum is the forecast of least mean absolute percentage error (a weighted median of y; the same optimum as
LightGBM's own ``mape`` objective, found on the log scale where trees fit many series' levels well). It wins
on MAPE and loses on bias and WAPE: it under-forecasts on purpose (``docs/models.md`` has the figures).

The trained model is one artifact (``GlobalModel``, pickled once per training run); every series' registry row
points at it, and ``GlobalModel.for_series`` gives the per-series ``Forecaster`` that scoring, the gate and the
online endpoint use. Like every forecast, the global model's pass the sanity envelope (``envelope``). The arrays
features are read from are ``global_batch``'s; a planner's what-if runs through ``global_what_if``.

No Dagster here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting import envelope
from mm_assets.forecasting.base import Forecaster, PackedTail
from mm_assets.forecasting.baseline import intermittent_rows
from mm_assets.forecasting.global_batch import Batch, calendar_terms, others_mean, reader
from mm_assets.forecasting.global_what_if import GlobalPlannedRows
from mm_assets.forecasting.lightgbm_options import AUTO_TWEEDIE_SHARE, model_options
from mm_assets.forecasting.linear import level_windows
from mm_assets.forecasting.panel import (
    NS_PER_DAY,
    Panel,
    build_panel,
    rolling_mean,
    rolling_means,
    shift,
    trailing_max,
    without_price_slips,
)
from mm_assets.forecasting.panel import filled as filled_rows
from mm_assets.forecasting.series import FLAG, POSITIVE, SHARE, SIGNED, SeriesConfig, Y, kind_of, quarter_periods
from mm_assets.forecasting.threads import worker_threads
from mm_assets.ids import series_key

LIGHTGBM = "lightgbm"
MIN_TRAINING_ROWS = 10  # rows a booster of one lead time learns from, at least
# an intermittent series' level factor is shrunk towards 1 as if this many more rows had shown none
LEVEL_FACTOR_PRIOR_ROWS = 30
MAX_ROWS_PER_CHUNK = 1_000_000  # series × periods whose features are built at once (bounds memory)
# a flag or share moves the forecast one way only when the training rows show which (``learn_promotion_directions``)
DIRECTION_T = 3.0
ORIGIN = "origin"  # a price's reference: its quarter up to the origin, the newest period a row's lags may read


class TooLittleHistory(ValueError):
    """The series of a batch are together too short for the global model: they are served by their baselines."""


class GlobalModel:
    """One LightGBM booster for many series, with what it needs to build their features again."""

    def __init__(self, cfg: SeriesConfig, id_columns: list[str], params: dict[str, Any] | None = None):
        self.cfg = cfg
        self.id_columns = list(id_columns)
        self.params = dict(params or {})
        self.options = model_options(params)
        self.objective_ = self.options["objective"]  # ``auto`` is resolved by ``fit``
        self.intermittent_share_: float | None = None  # the share ``auto`` decided on
        self.reach = cfg.horizon + cfg.gap
        # one booster per lead time when the horizon is short (each step reads the newest lags it may), else one
        # per bucket of lead times (``lead_buckets``): a step uses the booster of the first lead at or after it
        per_step = cfg.horizon <= int(self.options["per_step_max_horizon"])
        buckets = max(1, int(self.options["lead_buckets"]))
        self.leads = (list(range(cfg.gap + 1, self.reach + 1)) if per_step else
                      sorted({cfg.gap + -(-cfg.horizon * (b + 1) // buckets) for b in range(buckets)}))
        self.n_lags = int(self.options["n_lags"] or (7 if cfg.is_daily else 4))
        self.season_lag = cfg.seasonal_lag  # season_length, as the linear model reads it
        self.price_window = quarter_periods(cfg.step.days)
        # a price's mean, highest and change are measured against the quarter up to the origin (``ORIGIN``); a
        # model pickled before measured them against the quarter up to the period before its own
        self.price_reference_ = ORIGIN
        self.max_train_periods = int(self.options["max_train_periods"] or (2 * 365) // cfg.step.days)
        self.kinds_: dict[str, str] = {}
        self.categories_: list[dict[str, int]] = []  # series key, then each id column: value -> code
        self.boosters_: list[str] = []  # one per lead, LightGBM's own text format (portable, no C objects)
        # ``auto`` resolved to l2: the series intermittent at fit (their codes, sorted) and their level factors
        # (one column per lead), ``level_factors``
        self.level_codes_ = np.empty(0, dtype=np.int64)
        self.level_factors_ = np.empty((0, len(self.leads)))
        self.sampled_ = False  # every booster learnt from a sample of max_train_rows out of more rows
        self.tails_: dict[str, tuple[float, np.ndarray]] = {}  # series key -> (first day, tail rows: y, regressors)
        self._boosters: list = []

    def _monotone(self, lead: int) -> dict[str, Any]:
        """LightGBM's monotone constraints of the booster of ``lead``, under ``l2`` and ``tweedie`` (LightGBM has
        none under ``l1`` and ``mape``):

        - ``monotone_price``: decreasing in each positive regressor's own price features (none for a model whose
          prices are measured before the origin). The price relative to the store's other products (``grp_rel_``)
          stays free: it also tells a brand's tier (a premium brand sells more at its higher price), and
          constrained it cost orangeJuice 1.4 points of WAPE.
        - ``monotone_promotions``: each flag or share regressor's own value, in the direction its training rows
          show (``promotion_directions_``). Its previous period's value (a dip after a promotion) and the store's
          other products' (switching) stay free.
        """
        if self.objective not in ("l2", "tweedie"):
            return {}
        signs: dict[str, int] = {}
        if self.options["monotone_price"] and self.from_origin:
            for col in self.cfg.regressors:
                if self.kinds_.get(col) == POSITIVE:
                    signs.update({f"{part}_{col}": -1 for part in ("log", "rel", "depth", "chg")})
        signs.update({col: sign for col, sign in self.promotion_directions.items() if sign})
        if not signs:
            return {}
        return {"monotone_constraints": [signs.get(name, 0) for name in self.feature_names(lead)],
                "monotone_constraints_method": "advanced"}

    def learn_promotion_directions(self, batch: Batch, n_train: np.ndarray) -> None:
        """Which way each flag or share regressor moves its series' sales in the training rows: +1 (a promotion,
        a display), -1 (a closure, a stock-out) or 0 when the rows do not say (a t-statistic of the within-series
        correlation of the value with log sales under ``DIRECTION_T``). Recorded with the model; ``_monotone``
        holds the booster to it.

        Why: a share near 0 or 1 in nearly every training week leaves the trees free to answer a planner's
        share in between anyhow. Unconstrained, on orangeJuice a feature share of 0.75 forecast lower than 0.5
        in 209 of 300 series-weeks, and a deal week lower than the same week without it in 70 of 300."""
        self.promotion_directions_ = {}
        if not self.options.get("monotone_promotions", False):
            return
        T = batch.y.shape[1]
        inside = (np.arange(T)[None, :] < n_train[:, None]) & ~np.isnan(batch.y)
        z = np.log1p(np.clip(np.nan_to_num(batch.y), 0.0, None))
        for col in self._promo_columns():
            x = batch.regs[col]
            ok = inside & ~np.isnan(x)
            n = ok.sum(axis=1)
            xc, zc = (np.where(ok, v - (np.where(ok, v, 0.0).sum(axis=1) / np.maximum(n, 1))[:, None], 0.0)
                      for v in (np.nan_to_num(x), z))
            sxx, szz, sxz = (xc * xc).sum(), (zc * zc).sum(), (xc * zc).sum()
            cells = int(ok.sum()) - int((n > 0).sum())  # degrees of freedom left after each series' mean
            if sxx <= 0 or szz <= 0 or cells < 3:
                self.promotion_directions_[col] = 0
                continue
            r = float(np.clip(sxz / np.sqrt(sxx * szz), -0.999999, 0.999999))
            t = r * np.sqrt((cells - 1) / (1 - r * r))
            self.promotion_directions_[col] = int(np.sign(r)) if abs(t) >= DIRECTION_T else 0

    @property
    def promotion_directions(self) -> dict[str, int]:
        """``promotion_directions_``; a model pickled before it learnt none."""
        return getattr(self, "promotion_directions_", {})

    @property
    def from_origin(self) -> bool:
        """Whether a price is measured against its quarter up to the origin (every model since the price's
        reference moved there; one pickled before reads the quarter up to the period before its own)."""
        return getattr(self, "price_reference_", None) == ORIGIN

    @property
    def regressor_reach(self) -> int:
        """Periods before a row that its regressor features read: the price's quarter up to the origin (``reach``
        back at most), or before the origin's reference, up to the period before; the price ``reach`` back."""
        return self.reach + self.price_window - 1 if self.from_origin else max(self.price_window, self.reach)

    @property
    def plan_reach(self) -> int:
        """Periods after a forecast period whose regressor features read its planned values: its own only (0) for
        a price measured against its quarter up to the origin, the next one for a flag or share (``prev_``, its
        previous period), and the quarter after it for a price of a model pickled before (its own quarter's mean
        and highest). A what-if builds the rows of those periods only (``GlobalPlannedRows``); a test holds it
        to what ``_regressor_sources`` and ``_regressor_layout`` read."""
        reach = 0
        for col in self.cfg.regressors:
            kind = self.kinds_.get(col, SIGNED)
            if kind in (FLAG, SHARE):
                reach = max(reach, 1)
            elif kind == POSITIVE and not self.from_origin:
                reach = max(reach, self.price_window + 1)
        return reach

    @property
    def lookback(self) -> int:
        """Periods before a row that its features read (lags, the year-ago value, yearly means, the price's
        quarter), plus the row itself."""
        return max(self.reach + self.n_lags, self.season_lag, max(level_windows(self.cfg)) + self.reach,
                   self.regressor_reach + self.reach) + 1

    # ---- features ---------------------------------------------------------------------------------------
    def codes_for(self, ids: list[list[str]]) -> np.ndarray:
        keys = [series_key(row) for row in ids]
        columns = [keys, *([row[j] for row in ids] for j in range(len(self.id_columns)))]
        out = np.full((len(ids), len(columns)), np.nan)
        for j, values in enumerate(columns):
            mapping = self.categories_[j]
            out[:, j] = [mapping.get(v, np.nan) for v in values]
        return out

    def _target_sources(self, batch: Batch) -> dict[str, np.ndarray]:
        """The sources made of the target: a forecast row reads them ``lead`` or more periods back, in the history
        only, so a plan of the forecast periods does not change what is read of them (``GlobalPlannedRows``)."""
        windows = level_windows(self.cfg)
        z = np.log1p(np.clip(filled_rows(batch.y, batch.n_hist), 0.0, None))
        out: dict[str, np.ndarray] = {"z": z}
        out.update({f"mean_{w}": mean for w, mean in rolling_means(z, windows).items()})
        promo_cols = self._promo_columns()
        if promo_cols:  # the level of ordinary periods: promotions lift the plain means
            quiet = np.all([np.nan_to_num(batch.regs[c]) == 0 for c in promo_cols], axis=0)
            zq = np.where(quiet, z, np.nan)
            out.update({f"quiet_mean_{w}": mean for w, mean in rolling_means(zq, windows[1:]).items()})
            # how much this series has sold in its own promotion periods above its quiet level (its uplift)
            year = windows[-1]
            out["promo_uplift"] = rolling_mean(np.where(quiet, np.nan, z), year) - out[f"quiet_mean_{year}"]
        w_mid = windows[1]
        out["std"] = np.sqrt(np.clip(rolling_mean(z * z, w_mid) - out[f"mean_{w_mid}"] ** 2, 0.0, None))
        return out

    def _regressor_sources(self, batch: Batch, columns: list[str] | None = None) -> dict[str, np.ndarray]:
        """The sources made of the regressors (the forecast periods' planned values among them); ``columns``:
        of these regressors only (each source is made of one regressor: a what-if builds those its plan changes)."""
        out: dict[str, np.ndarray] = {}
        K = batch.y.shape[0]
        group = batch.codes[:, 1] if batch.codes.shape[1] > 2 else np.zeros(K)  # the first id column (store)
        step_days = self.cfg.step.days
        for col in self.cfg.regressors if columns is None else columns:
            values, kind = batch.regs[col], self.kinds_.get(col, SIGNED)
            if kind == POSITIVE:  # its history's slips (a price typed x1000) are no price
                logv = without_price_slips(np.log(np.where(values > 0, values, np.nan)), self.price_window,
                                           batch.n_hist)
                out[f"log_{col}"] = logv
                if self.from_origin:  # the quarter's mean and highest (the regular shelf price), read at the origin
                    out[f"qmean_{col}"] = rolling_mean(logv, self.price_window)
                    out[f"qmax_{col}"] = trailing_max(logv, self.price_window)
                else:
                    # differences of a price with its own means are exactly 0 for a steady price, not ±1e-14 of
                    # rounding whose sign depends on how much history the means summed: trees split at 0 (rounded)
                    out[f"rel_{col}"] = np.round(logv - shift(rolling_mean(logv, self.price_window), 1), 9)
                    out[f"depth_{col}"] = logv - shift(trailing_max(logv, self.price_window), 1)
                # the price against the other products of the same store that week: switching, not demand
                out[f"grp_rel_{col}"] = np.round(logv - others_mean(logv, group, batch.start_days, step_days), 9)
            else:
                out[col] = values
                if kind in (FLAG, SHARE):
                    out[f"grp_{col}"] = others_mean(values, group, batch.start_days, step_days)
        return out

    def _promo_columns(self) -> list[str]:
        """The flag and share regressors: the periods where all are 0 are the series' quiet ones."""
        return [c for c in self.cfg.regressors if self.kinds_.get(c) in (FLAG, SHARE)]

    def _layout(self, lead: int) -> list[tuple[str, str, int, int | None]]:
        """The features of the booster of ``lead``: (name, source, periods back, periods back of the same source
        subtracted or None). Calendar terms and categorical codes come after them (``_rows``)."""
        out = [(f"lag_{lag}", "z", lag, None) for lag in range(lead, lead + self.n_lags)]
        if self.season_lag >= lead:
            out.append(("lag_season", "z", self.season_lag, None))
        windows = level_windows(self.cfg)
        out += [(f"mean_{w}", f"mean_{w}", lead, None) for w in windows]
        if self._promo_columns():
            out += [(f"quiet_mean_{w}", f"quiet_mean_{w}", lead, None) for w in windows[1:]]
            out.append(("promo_uplift", "promo_uplift", lead, None))
        out.append((f"std_{windows[1]}", "std", lead, None))
        return out

    def _regressor_layout(self, lead: int) -> list[tuple[str, str, int, int | tuple[str, int] | None]]:
        """As ``_layout``; what is subtracted may also be another source, (source, periods back)."""
        out = []
        for col in self.cfg.regressors:
            kind = self.kinds_.get(col, SIGNED)
            if kind == POSITIVE:
                if self.from_origin:  # the price against its quarter's mean and highest up to the origin
                    rel = (f"log_{col}", 0, (f"qmean_{col}", lead))
                    depth = (f"log_{col}", 0, (f"qmax_{col}", lead))
                else:  # a model pickled before: both built whole by ``_regressor_sources``
                    rel, depth = (f"rel_{col}", 0, None), (f"depth_{col}", 0, None)
                out += [(f"log_{col}", f"log_{col}", 0, None), (f"rel_{col}", *rel), (f"depth_{col}", *depth),
                        (f"chg_{col}", f"log_{col}", 0, lead), (f"grp_rel_{col}", f"grp_rel_{col}", 0, None)]
            else:
                out.append((col, col, 0, None))
                if kind in (FLAG, SHARE):
                    out += [(f"prev_{col}", col, 1, None), (f"grp_{col}", f"grp_{col}", 0, None)]
        return out

    def feature_names(self, lead: int) -> list[str]:
        return ([name for name, *_ in self._layout(lead)] + self._calendar_names
                + [name for name, *_ in self._regressor_layout(lead)] + self.categorical_features)

    @property
    def _calendar_names(self) -> list[str]:
        """The calendar features (``calendar_terms``), after the target's in every row."""
        return ["month", "dow", "day_of_year"] if self.cfg.is_daily else ["month", "week_of_year"]

    @property
    def categorical_features(self) -> list[str]:
        return ["series", *(f"id_{name}" for name in self.id_columns)]

    def _series_codes(self, codes: np.ndarray) -> np.ndarray:
        return codes if self.options["series_category"] else np.where(np.arange(codes.shape[1]) == 0, np.nan, codes)

    def _gather(self, sources: dict[str, np.ndarray], batch: Batch, k: np.ndarray, t: np.ndarray,
                lead: int, regressors: bool = True) -> np.ndarray:
        """The feature rows of series ``k`` at positions ``t`` for the booster of ``lead`` → (rows, F)
        (``regressors`` False: their features NaN)."""
        layout = self._layout(lead)
        calendar = calendar_terms(batch.start_days[k] + t * float(self.cfg.step.days), self.cfg.is_daily)
        n_regs = len(self._regressor_layout(lead))
        X = np.empty((len(k), len(layout) + len(calendar) + n_regs + len(self.categorical_features)), dtype=np.float32)
        back = reader(sources, k, t, batch.y.shape[1])
        j = 0
        for _, source, n, _ in layout:
            X[:, j] = back(source, n)
            j += 1
        for values in calendar:
            X[:, j] = values
            j += 1
        if regressors:
            j = self._fill_regressors(X, j, back, lead)
        else:
            X[:, j:j + n_regs] = np.nan
            j += n_regs
        X[:, j:] = self._series_codes(batch.codes)[k]
        return X

    def _fill_regressors(self, X: np.ndarray, j: int, back: Callable[[str, int], np.ndarray], lead: int) -> int:
        """Writes the regressor features of the booster of ``lead`` into ``X`` from column ``j`` on; returns the
        column after them (a what-if writes only these: ``GlobalPlannedRows``)."""
        for _, source, n, minus in self._regressor_layout(lead):
            if minus is None:
                X[:, j] = back(source, n)
            elif isinstance(minus, tuple):  # against another source: exactly 0 for a steady price, not ±1e-14 of
                X[:, j] = np.round(back(source, n) - back(*minus), 9)  # rounding that trees would split on
            else:
                X[:, j] = back(source, n) - back(source, minus)
            j += 1
        return j

    def _regressors_at(self, lead: int) -> int:
        """The first column of the regressor features in the rows of the booster of ``lead``."""
        return len(self._layout(lead)) + len(self._calendar_names)

    def _rows(self, batch: Batch, positions: np.ndarray, valid: dict[int, np.ndarray],
              targets: dict[str, np.ndarray] | None = None, regressors: bool = True) -> dict[int, np.ndarray]:
        """Feature rows at ``positions`` (K × S) where ``valid[lead]``, for each lead → {lead: (rows, F)}; the
        sources are built once per chunk of series for every lead (memory bounded by the chunk). ``targets``:
        the batch's ``_target_sources``, built before (one chunk only). ``regressors`` False: their features are
        left NaN (a what-if writes its own)."""
        out: dict[int, list[np.ndarray]] = {lead: [] for lead in valid}
        chunks = self._chunks(batch)
        assert targets is None or len(chunks) == 1
        for sl in chunks:
            sub = batch.subset(sl)
            sources = (self._target_sources(sub) if targets is None else targets) | (
                self._regressor_sources(sub) if regressors else {})
            pos = positions[sl]
            rows = np.broadcast_to(np.arange(pos.shape[0])[:, None], pos.shape)
            for lead, ok in valid.items():
                out[lead].append(self._gather(sources, sub, rows[ok[sl]], pos[ok[sl]], lead, regressors))
            del sources
        return {lead: np.concatenate(parts) if parts else np.empty((0, len(self.feature_names(lead))), dtype=np.float32)
                for lead, parts in out.items()}

    def _chunks(self, batch: Batch) -> list[slice]:
        """Slices of series whose features are built together: bounded memory, and whole groups (series sorted
        by ids keep a store's series next to each other; their cross-series features need each other)."""
        K, T = batch.y.shape
        per = max(1, MAX_ROWS_PER_CHUNK // max(1, T))
        group = batch.codes[:, 1] if batch.codes.shape[1] > 2 else np.zeros(K)
        change = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if K else np.array([], dtype=int)
        bounds = [*change.tolist(), K]
        out, lo = [], 0
        for hi in bounds[1:]:
            if hi - lo >= per or hi == K:
                out.append(slice(lo, hi))
                lo = hi
        return out

    # ---- fit and predict --------------------------------------------------------------------------------
    def learn_categories(self, ids: list[list[str]]) -> None:
        keys = sorted({series_key(row) for row in ids})
        self.categories_ = [{k: i for i, k in enumerate(keys)}]
        for j in range(len(self.id_columns)):
            values = sorted({row[j] for row in ids})
            self.categories_.append({v: i for i, v in enumerate(values)})

    def learn_kinds(self, regs: dict[str, np.ndarray], n_train: np.ndarray) -> None:
        inside = np.arange(next(iter(regs.values())).shape[1])[None, :] < n_train[:, None] if regs else None
        self.kinds_ = {col: kind_of(values[inside]) for col, values in regs.items()}

    def fit(self, batch: Batch, n_train: np.ndarray) -> GlobalModel:
        """Learn from every series' periods before its ``n_train`` (its newest ``max_train_periods``)."""
        import lightgbm as lgb

        intermittent = intermittent_rows(batch.y, n_train, self.cfg) if self.options["objective"] == "auto" else None
        objective = self._resolve_objective(intermittent, n_train)
        params = {
            "objective": {"l2": "regression", "l1": "regression_l1", "mape": "regression_l1",
                          "tweedie": "tweedie"}[objective],
            "learning_rate": self.options["learning_rate"], "num_leaves": self.options["num_leaves"],
            "min_data_in_leaf": self.options["min_data_in_leaf"],
            "feature_fraction": self.options["feature_fraction"],
            "bagging_fraction": self.options["bagging_fraction"], "bagging_freq": self.options["bagging_freq"],
            "lambda_l2": self.options["lambda_l2"], "num_threads": worker_threads(), "verbose": -1, "seed": 0,
            "deterministic": True, "force_row_wise": True, "max_cat_to_onehot": 8,
        }
        # the series whose level l2 on log1p(y) misses: intermittent ones, when ``auto`` chose l2 for the batch
        leveled = (intermittent & ~np.isnan(batch.codes[:, 0]) if intermittent is not None and objective == "l2"
                   else np.zeros(len(n_train), bool))
        self.learn_promotion_directions(batch, n_train)
        self.linear_ = self.linear_leaves(objective, bool(leveled.any()))
        if self.linear_:
            params.update(linear_tree=True, linear_lambda=self.options["linear_lambda"])
        pos = np.broadcast_to(np.arange(batch.y.shape[1])[None, :], batch.y.shape)
        valid = self.training_rows(batch.y, n_train)
        fewest, lead = min((int(ok.sum()), lead) for lead, ok in valid.items())
        if fewest < MIN_TRAINING_ROWS:
            raise TooLittleHistory(
                f"the lightgbm model has too little history in this batch to learn from: {fewest} training rows "
                f"for a lead time of {lead} periods, at least {MIN_TRAINING_ROWS} needed (a row needs {lead} earlier "
                f"periods of its series, and training holds each series' last horizon + gap = {self.reach} periods "
                "out to judge the model)")
        self.sampled_ = self.samples(valid)
        valid = {lead: self._sampled(ok, seed=lead) for lead, ok in valid.items()}
        rows = self._rows(batch, pos, valid)
        self._boosters, self.boosters_ = [], []
        factors = []
        for lead in self.leads:
            y = batch.y[valid[lead]]
            X = rows.pop(lead)
            target = y if objective == "tweedie" else np.log1p(np.clip(y, 0.0, None))
            weight = 1.0 / np.clip(y, 1.0, None) if objective == "mape" else None
            data = lgb.Dataset(X, label=target, weight=weight, feature_name=self.feature_names(lead),
                               categorical_feature=self.categorical_features, free_raw_data=True)
            booster = lgb.train({**params, **self._monotone(lead)}, data,
                                num_boost_round=int(self.options["num_boost_round"]))
            del data
            if leveled.any():
                k = np.nonzero(valid[lead])[0]
                mine = leveled[k]
                factors.append(level_factors(booster.predict(X[mine]), y[mine], k[mine], len(n_train))[leveled])
            del X
            self._boosters.append(booster)
            self.boosters_.append(booster.model_to_string())
        codes = batch.codes[leveled, 0].astype(np.int64)
        order = np.argsort(codes)
        self.level_codes_ = codes[order]
        self.level_factors_ = np.column_stack(factors)[order] if factors else np.empty((0, len(self.leads)))
        return self

    @property
    def objective(self) -> str:
        """The objective the boosters learnt (``auto`` resolved); a model pickled before ``auto``: its option."""
        return getattr(self, "objective_", self.options["objective"])

    def _resolve_objective(self, intermittent: np.ndarray | None, n_train: np.ndarray) -> str:
        """``objective_`` for a fit on each series' first ``n_train`` periods: ``auto`` (``intermittent``: each
        series' ``intermittent_rows`` flag) becomes ``tweedie`` when ``AUTO_TWEEDIE_SHARE`` or more of the series
        with history are intermittent, else ``l2``."""
        if intermittent is None:
            self.objective_ = self.options["objective"]
            return self.objective_
        has = n_train > 0
        share = float(intermittent[has].mean()) if has.any() else 0.0
        self.intermittent_share_ = share
        self.objective_ = "tweedie" if share >= AUTO_TWEEDIE_SHARE else "l2"
        return self.objective_

    def training_rows(self, y: np.ndarray, n_train: np.ndarray) -> dict[int, np.ndarray]:
        """Per lead, the rows (K × T mask) a fit on each series' first ``n_train`` periods may learn from: its
        newest ``max_train_periods`` observed ones that have ``lead`` periods before them."""
        pos = np.broadcast_to(np.arange(y.shape[1])[None, :], y.shape)
        recent = (pos < n_train[:, None]) & (pos >= (n_train - self.max_train_periods)[:, None])
        return {lead: recent & (pos >= lead) & ~np.isnan(y) for lead in self.leads}

    def samples(self, rows: dict[int, np.ndarray]) -> bool:
        """Whether every booster would learn from a sample of ``max_train_rows`` out of more ``rows``."""
        cap = int(self.options["max_train_rows"] or 0)
        return bool(cap) and min(int(ok.sum()) for ok in rows.values()) > cap

    def linear_leaves(self, objective: str, leveled: bool) -> bool:
        """Whether the boosters' leaves are linear fits (option ``linear_tree``). ``auto``: under ``l2`` when no
        series of the fit is lifted by a level factor (``leveled``: intermittent series under ``auto``'s ``l2``),
        whose factor is learnt in sample, where linear leaves fit closer, and comes out too low. LightGBM fits none
        under the absolute-error objectives (``l1``, and ``mape``, which is a weighted ``l1``)."""
        option = self.options["linear_tree"]
        if option == "auto":
            return objective == "l2" and not leveled
        return bool(option) and objective in ("l2", "tweedie")

    def refits(self, sampled: bool) -> bool:
        """Whether the holdout fit is followed by a refit on every period (option ``refit``; ``auto``: only when
        the holdout fit was not ``sampled``, so that the newest periods add rows it did not have)."""
        refit = self.options["refit"]
        return refit if isinstance(refit, bool) else not sampled

    @property
    def needs_refit(self) -> bool:
        return self.refits(self.sampled_)

    def refits_after(self, windows: int) -> bool:
        """Whether training refits this holdout fit, fitted before ``windows`` holdout windows: as ``needs_refit``
        says, and always after several windows unless refit is false (the fit is then periods older than the
        data), for it has not seen the newest of them."""
        return self.needs_refit or (windows > 1 and self.options["refit"] is not False)

    def fit_note(self, windows: int = 1) -> str:
        """How the served model was made, in words an operator reads next to the run (the ``refit`` rule)."""
        option = self.options["refit"]
        option = "auto" if not isinstance(option, bool) else str(option).lower()
        share = getattr(self, "intermittent_share_", None)
        leveled = len(getattr(self, "level_codes_", ()))
        objective = f"objective {self.objective}" + (
            f" (auto: {share:.0%} of the series intermittent" + (
                f"; {leveled} of them forecast at their mean level" if leveled else "") + ")"
            if self.options["objective"] == "auto" and share is not None else "") + (
            ", linear leaves" if getattr(self, "linear_", False) else "") + self._directions_note()
        if self.refits_after(windows):
            return (f"global lightgbm refitted on every period after its holdout fit (refit: {option}"
                    + (f"; {windows} holdout windows" if windows > 1 else "") + f"; {objective})")
        cap = int(self.options["max_train_rows"] or 0)
        sample = f"each booster learnt from {cap:,} sampled rows of more" if self.sampled_ else "not refitted"
        return f"global lightgbm: the holdout fit is served ({sample}; refit: {option}; {objective})"

    def _directions_note(self) -> str:
        """The promotion directions the model is held to (``promotion_directions``), in the fit note: the
        operator sees which way a planner's promotion can move a forecast, and which it leaves free."""
        directions = self.promotion_directions
        if not directions or self.objective not in ("l2", "tweedie"):
            return ""
        words = {1: "raises", -1: "lowers", 0: "free: no clear direction in its training rows"}
        return "; promotions held to their training rows' direction (" + ", ".join(
            f"{col} {words[sign]}" for col, sign in directions.items()) + ")"

    def _level_factors_of(self, codes: np.ndarray, slot: int) -> np.ndarray:
        """Each series' (by its code, NaN unknown) level factor for the booster at ``slot``: 1 unless it was
        intermittent when the model was fitted."""
        known = getattr(self, "level_codes_", None)  # a model pickled before level factors has none
        out = np.ones(len(codes))
        if known is None or not len(known):
            return out
        c = np.nan_to_num(codes, nan=-1).astype(np.int64)
        at = np.clip(np.searchsorted(known, c), 0, len(known) - 1)
        hit = known[at] == c
        out[hit] = self.level_factors_[at[hit], slot]
        return out

    def _sampled(self, valid: np.ndarray, seed: int) -> np.ndarray:
        """``valid`` with at most ``max_train_rows`` rows kept, drawn uniformly (seeded: the same rows every run):
        a booster's time and memory follow its rows, and beyond a few million rows of many series more rows of
        the same series add little."""
        cap = int(self.options["max_train_rows"] or 0)
        count = int(valid.sum())
        if not cap or count <= cap:
            return valid
        keep = np.random.default_rng(seed).choice(np.flatnonzero(valid), size=cap, replace=False)
        out = np.zeros(valid.shape, dtype=bool)
        out.flat[np.sort(keep)] = True
        return out

    def read_window(self, batch: Batch, first: np.ndarray, steps: int) -> tuple[Batch, np.ndarray]:
        """The batch cut to what forecasts of ``steps`` periods from positions ``first`` read, and those positions
        in it. The features read at most ``lookback`` periods back, and the group features read the other series
        of the same dates: every series keeps the dates from lookback before the earliest forecast on."""
        step = self.cfg.step.days
        earliest = float((batch.start_days + (first - self.lookback - 1) * float(step)).min()) if len(first) else 0.0
        lo = np.clip(np.floor((earliest - batch.start_days) / step + 1e-9).astype(np.int64), 0, None)
        if not lo.any():
            return batch, first
        return batch.from_positions(lo, int((first - lo).max()) + steps, step), first - lo

    def predict(self, batch: Batch, first: np.ndarray, steps: int, gap: int | None = None,
                targets: int | None = None) -> np.ndarray:
        """Forecasts at positions ``first[k] .. first[k] + steps - 1`` of each series (K × steps), before the
        envelope; ``first`` is ``gap`` periods after each series' history (default: the configured gap).
        ``targets``: forecast only the first ``targets`` series (rows of ``targets`` × steps); the others are their
        store's other series, read only by the group features (a mean over the store's other products)."""
        gap = self.cfg.gap if gap is None else gap
        batch, first = self.read_window(batch, first, steps)
        n = len(first) if targets is None else targets
        out = np.empty((n, steps))
        slots, pos, valid = self._steps_by_booster(first, steps, gap)
        for ok in valid.values():
            ok[n:] = False  # no feature rows, no booster work, for the companions
        rows = self._rows(batch, pos, valid)  # per booster, rows of (series, step)
        for slot, js in slots.items():
            X = rows.pop(self.leads[slot])
            pred = self.booster(slot).predict(X, num_threads=1 if len(X) < 10_000 else worker_threads())
            out[:, js] = self.level(pred.reshape(n, len(js)), batch.codes[:n, 0], slot)
        return out

    def _steps_by_booster(self, first: np.ndarray, steps: int, gap: int
                          ) -> tuple[dict[int, list[int]], np.ndarray, dict[int, np.ndarray]]:
        """The steps each booster forecasts (their features are built once), the positions of every series' steps
        (K × steps, from ``first``) and, by each booster's lead, which of those positions are its own."""
        slots: dict[int, list[int]] = {}
        for j in range(steps):
            slots.setdefault(self.slot_of(gap + 1 + j), []).append(j)
        pos = first[:, None] + np.arange(steps)[None, :]
        valid = {}
        for slot, js in slots.items():
            valid[self.leads[slot]] = np.zeros(pos.shape, dtype=bool)
            valid[self.leads[slot]][:, js] = True
        return slots, pos, valid

    def slot_of(self, lead: int) -> int:
        """The booster that forecasts ``lead`` periods after the history: the first whose lead is at or after it."""
        return next((i for i, L in enumerate(self.leads) if lead <= L), len(self.leads) - 1)

    def booster(self, slot: int):
        """The LightGBM booster at ``slot``, parsed from its text at first use."""
        return self.parse_boosters()[slot]

    def parse_boosters(self) -> list:
        """Every booster, parsed from its text unless it already was (3 ms each for 200 trees): a worker of the
        online endpoint does it for the models it preloads, so that no planner's first what-if waits for it."""
        if not self._boosters:
            import lightgbm as lgb

            self._boosters = [lgb.Booster(model_str=text) for text in self.boosters_]
        return self._boosters

    def level(self, pred: np.ndarray, codes: np.ndarray, slot: int) -> np.ndarray:
        """The forecasts (K × steps) from booster ``slot``'s raw predictions of series with these codes: expm1 of
        the log fit, lifted by an intermittent series' level factor (tweedie forecasts the level itself)."""
        if self.objective == "tweedie":
            return pred
        return self.lift(pred, self._level_factors_of(codes, slot))

    def lift(self, pred: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """``level`` with each series' level factor known (``factor``, K)."""
        if self.objective == "tweedie":
            return pred
        lifted = factor != 1.0  # expm1 exactly where the factor is 1; exp(pred) only for the series it lifts
        if not lifted.any() and np.all(pred < 700.0):  # nothing lifted, nothing overflows: a what-if's usual case
            return np.expm1(pred)
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.expm1(pred)
            out[lifted] += np.exp(pred[lifted]) * (factor[lifted, None] - 1.0)
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_boosters"] = []
        return state

    def for_series(self, ids: list[str]) -> GlobalSeriesModel:
        """The per-series ``Forecaster`` of one series (its stored tail lets it forecast without fresh rows)."""
        view = GlobalSeriesModel(self, [str(v) for v in ids])
        stored = self.tails_.get(series_key(view.ids))
        if stored is not None:  # packed: the frame is built only if something reads it (a gate asks its last date)
            first_day, values = stored
            start = np.int64(round(first_day * NS_PER_DAY))
            index = (start + np.arange(len(values), dtype=np.int64) * self.cfg.step.value).astype("datetime64[ns]")
            view.__dict__["_tail"] = PackedTail(index, "ds", [Y, *self.cfg.regressors], values)
            view.recent_max_ = envelope.recent_max(values[:, 0], self.cfg)
            view.recent_periods_ = min(len(values), envelope.window(self.cfg))
        return view

    def keep_tails(self, panel: Panel, ids: list[list[str]], length: int) -> None:
        """Store each series' last ``length`` periods (what ``for_series`` needs to forecast on its own)."""
        start_days = panel.start_days()  # once: built per series, it made this loop quadratic in the series
        for k, row in enumerate(ids):
            n = int(panel.length[k])
            lo = max(0, n - length)
            values = np.column_stack([panel.y[k, lo:n], *(panel.regs[c][k, lo:n] for c in self.cfg.regressors)])
            first_day = float(start_days[k] + lo * self.cfg.step.days)
            self.tails_[series_key(row)] = (first_day, values.astype(np.float64))


def level_factors(pred: np.ndarray, y: np.ndarray, k: np.ndarray, K: int) -> np.ndarray:
    """Per series (K,): the factor that takes an l2 fit on log1p(y) from its level to the series' mean, from its
    training rows (series ``k``, actuals ``y``, the booster's predictions ``pred`` on the log scale): the mean of
    exp(log1p(y) - pred), Duan's smearing estimate of E[1 + y] / exp(pred), shrunk towards 1 with
    ``LEVEL_FACTOR_PRIOR_ROWS``.

    Why: on log1p(y) the model learns a slow mover's typical period, a third below its mean rate (a Poisson rate
    λ ≪ 1 gives E[log1p y] ≈ 0.69 λ), and a planner stocks by the mean. Only for intermittent series: on smooth
    series the same correction raised every forecast toward the mean and cost WAPE (orangeJuice 43.2 → 45.5 %)."""
    ratio = np.exp(np.log1p(np.clip(y, 0.0, None)) - pred)
    n = np.bincount(k, minlength=K).astype(float)
    mean = np.bincount(k, weights=ratio, minlength=K) / np.maximum(n, 1.0)
    return 1.0 + (mean - 1.0) * n / (n + LEVEL_FACTOR_PRIOR_ROWS)


def history_periods(cfg: SeriesConfig, params: dict[str, Any] | None) -> int:
    """Periods of each series, back from its newest observation, that training reads: the newest
    ``max_train_periods`` before the holdout, the holdout, and what their features look back on. Older rows
    change nothing in the model; at 4,000 days of history they are two thirds of the rows."""
    model = GlobalModel(cfg, [], params)
    return model.max_train_periods + model.reach + model.lookback


def batch_from_panel(model: GlobalModel, panel: Panel, ids: list[list[str]], extra: int = 0,
                     regs: dict[str, np.ndarray] | None = None) -> Batch:
    """The panel's series as a ``Batch``, ``extra`` periods wider for the forecast (regressors from ``regs``)."""
    K, T = panel.y.shape
    y = np.full((K, T + extra), np.nan)
    y[:, :T] = panel.y
    if regs is None:
        regs = {}
        for col, values in panel.regs.items():
            wide = np.full((K, T + extra), np.nan)
            wide[:, :T] = values
            regs[col] = wide
    return Batch(y, regs, panel.length.copy(), panel.start_days(), model.codes_for(ids))


class GlobalSeriesModel(Forecaster):
    """One series' view of a ``GlobalModel``: the ``Forecaster`` that per-series scoring and serving use.

    It cannot be refitted alone (its recipe is the whole batch): ``fit`` only records the series' tail."""

    name = LIGHTGBM

    def __init__(self, model: GlobalModel, ids: list[str]):
        super().__init__(model.cfg, **model.params)
        self.global_ = model
        self.ids = ids
        self.kinds_ = dict(model.kinds_)

    @property
    def tail_length(self) -> int:
        return self.global_.lookback

    def _fit(self, frame: pd.DataFrame) -> None:
        pass

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        if len(future) == 0:
            return np.zeros(0)
        future_regs = {c: future[c].to_numpy(dtype=float) for c in self.cfg.regressors}
        rows = self.planned_rows(history[Y].to_numpy(dtype=float),
                                 {c: history[c].to_numpy(dtype=float) for c in self.cfg.regressors},
                                 float((history.index[0] - pd.Timestamp("1970-01-01")).days), future_regs,
                                 self.gap_from(history, future), len(future))
        return rows.predict(future_regs, len(future))

    def planned_rows(self, y_hist: np.ndarray, regs_hist: dict[str, np.ndarray], start_day: float,
                     default_regs: dict[str, np.ndarray], gap: int, n_future: int) -> GlobalPlannedRows:
        """``GlobalPlannedRows`` of ``n_future`` periods after this history (``default_regs``: the regressors
        without a plan), for forecasting the same history under many plans (the online endpoint's what-ifs)."""
        g = self.global_
        if gap + n_future > g.reach:
            raise ValueError(f"forecast reaches {gap + n_future} periods past the history; the model was trained "
                             f"for horizon+gap={g.reach}")
        n = len(y_hist)
        width = n + gap + n_future
        regs = {}
        for col in self.cfg.regressors:
            values = np.full(width, np.nan)
            values[:n] = regs_hist[col]
            values[n : n + gap] = values[n - 1]
            values[n + gap :] = default_regs[col][:n_future]
            regs[col] = values[None, :]
        y = np.full((1, width), np.nan)
        y[0, :n] = y_hist
        batch = Batch(y, regs, np.array([n]), np.array([start_day]), g.codes_for([self.ids]))
        batch, first = g.read_window(batch, np.array([n + gap]), n_future)
        return GlobalPlannedRows(functools.partial(_itself, g), batch, int(first[0]), gap, g._target_sources(batch))


def _itself(model: GlobalModel) -> GlobalModel:
    return model


# ---- training and backtesting many series ---------------------------------------------------------------
def panel_ids(frame: pd.DataFrame, panel: Panel, id_columns: list[str]) -> list[list[str]]:
    """The id values of each series of the panel, in panel order."""
    starts = panel.starts[panel.keep]
    columns = [frame[c].iloc[starts].to_numpy() for c in id_columns]
    return [[str(v) for v in row] for row in zip(*columns)]


def fit_global(frame: pd.DataFrame, id_columns: list[str], cfg: SeriesConfig, params: dict | None,
               n_train_of: callable, panel: Panel | None = None
               ) -> tuple[GlobalModel, Panel, list[list[str]], Batch, np.ndarray]:
    """Fit one model on each series' first ``n_train_of(panel)`` periods (``panel``: the panel of ``frame``,
    built here unless the caller, fitting several times, already has it)."""
    panel = build_panel(frame, id_columns, cfg) if panel is None else panel
    ids = panel_ids(frame, panel, id_columns)
    model = GlobalModel(cfg, id_columns, params)
    n_train = n_train_of(panel)
    model.learn_categories(ids)
    model.learn_kinds(panel.regs, n_train)
    extra = cfg.gap + cfg.horizon
    batch = batch_from_panel(model, panel, ids, extra=extra)
    train_batch = Batch(batch.y, batch.regs, n_train, batch.start_days, batch.codes)
    model.fit(train_batch, n_train)
    return model, panel, ids, batch, n_train


def forecast_origin(model: GlobalModel, batch: Batch, n_origin: np.ndarray) -> np.ndarray:
    """Each series' forecast of periods gap + 1 .. gap + horizon after its own origin row ``n_origin - 1``, the
    target after the origin hidden, regressors as they were (as if planned)."""
    cfg = model.cfg
    y = np.where(np.arange(batch.y.shape[1])[None, :] < n_origin[:, None], batch.y, np.nan)
    view = Batch(y, batch.regs, n_origin, batch.start_days, batch.codes)
    return model.predict(view, n_origin + cfg.gap, cfg.horizon)
