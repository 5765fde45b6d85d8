"""Per-series forecasting models behind one small interface.

Every model is fitted on one regular series (``series.regularize``) and keeps the short tail of history it
needs, so a stored model can forecast on its own (the online endpoint) or from fresher history (batch
scoring with a champion trained earlier).

- ``seasonal_naive``: ŷ(t) = y(t - m·k); the baseline every other model must beat, and the fallback.
- ``linear``: scikit-learn Ridge on calendar dummies, yearly Fourier terms, trend, seasonal lag and level
  lags that are known across the whole horizon (no recursion), log price, price relative to the series' own
  recent price, flag regressors. Direct multi-step: the fast default.
- ``ets``: Holt-Winters exponential smoothing (additive damped trend, additive season; statsmodels fits it).
  It keeps its smoothing parameters and final states, so forecasting needs only numpy (the serving image has
  no statsmodels). Regressors are ignored: it is the candidate for series where calendar and price carry little.
- ``prophet``: Prophet with the regressors; uncertainty sampling off unless ``uncertainty_samples`` is set.
- ``auto`` is not a class: ``forecasting.training`` picks one of the above per series (``forecasting.backtest``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting.series import DS, Y, SeriesConfig, binary_columns

MODEL_TYPES = ("seasonal_naive", "linear", "ets", "prophet")
# simplest first: ``auto`` prefers the earlier one of two candidates with the same score
SIMPLICITY_ORDER = ("seasonal_naive", "ets", "linear", "prophet")


class Forecaster:
    """Interface: ``fit(regular_frame)`` then ``predict(future, history=None)`` → array of len(future)."""

    name = "base"

    def __init__(self, cfg: SeriesConfig, **params: Any):
        self.cfg = cfg
        self.params = params
        self.tail_: pd.DataFrame | None = None
        self.binary_: tuple[str, ...] = ()

    @property
    def tail_length(self) -> int:
        return self.cfg.season

    def fit(self, frame: pd.DataFrame) -> "Forecaster":
        self.binary_ = binary_columns(frame, self.cfg.regressors)
        self._fit(frame)
        self.tail_ = frame.iloc[-self.tail_length :].copy()
        return self

    def _fit(self, frame: pd.DataFrame) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        history = self.tail_ if history is None else history
        if history is None:
            raise RuntimeError(f"{self.name} model is not fitted")
        return np.clip(self._predict(history, future), 0.0, None)

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @property
    def last_ds(self) -> pd.Timestamp:
        assert self.tail_ is not None
        return self.tail_.index[-1]

    def last_regressors(self) -> dict[str, float]:
        assert self.tail_ is not None
        return {c: float(self.tail_[c].iloc[-1]) for c in self.cfg.regressors}


def _filled(y: pd.Series) -> np.ndarray:
    return y.ffill().bfill().fillna(0.0).to_numpy(dtype=float)


class SeasonalNaive(Forecaster):
    """ŷ(origin + k) = y(origin - m + ((k - 1) mod m) + 1): last season repeated; naive if shorter."""

    name = "seasonal_naive"

    @property
    def tail_length(self) -> int:
        return self.cfg.season

    def _fit(self, frame: pd.DataFrame) -> None:
        pass

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        y = _filled(history[Y])
        steps = len(future)
        gap = self._gap_from(history, future)
        m = min(self.cfg.season, len(y))
        last = y[-m:]
        k = np.arange(gap, gap + steps)
        return last[k % m].astype(float)

    def _gap_from(self, history: pd.DataFrame, future: pd.DataFrame) -> int:
        if len(future) == 0:
            return 0
        delta = (future.index[0] - history.index[-1]) / self.cfg.step
        return max(int(round(delta)) - 1, 0)


class LinearForecaster(Forecaster):
    """Ridge regression, direct multi-step: every lag used is at least horizon + gap periods old."""

    name = "linear"

    def __init__(self, cfg: SeriesConfig, alpha: float = 1.0, fourier_order: int | None = None,
                 log_target: bool = True, **params: Any):
        super().__init__(cfg, alpha=alpha, fourier_order=fourier_order, log_target=log_target, **params)
        self.alpha = alpha
        self.fourier_order = fourier_order if fourier_order is not None else (4 if cfg.is_daily else 3)
        self.log_target = log_target
        self.reach = cfg.horizon + cfg.gap  # the farthest step a forecast must reach
        self.seasonal_lag = cfg.season * math.ceil(self.reach / cfg.season)
        self.price_window = 4 * cfg.season
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.columns_: list[str] = []

    @property
    def tail_length(self) -> int:
        return max(self.seasonal_lag, self.reach + 4 * self.cfg.season, self.price_window + 1) + 1

    def _transform_y(self, y: np.ndarray) -> np.ndarray:
        return np.log1p(np.clip(y, 0.0, None)) if self.log_target else y

    def _features(self, frame: pd.DataFrame, n_history: int) -> pd.DataFrame:
        """Features for every row of ``frame`` (history rows then future rows, contiguous grid)."""
        index = frame.index
        days = (index - pd.Timestamp("1970-01-01")).days.to_numpy(dtype=float)
        feats: dict[str, np.ndarray] = {"trend": days / 365.25}
        if self.cfg.is_daily:
            dow = index.day_of_week.to_numpy()
            for d in range(1, 7):
                feats[f"dow_{d}"] = (dow == d).astype(float)
        for k in range(1, self.fourier_order + 1):
            angle = 2 * np.pi * k * days / 365.25
            feats[f"sin_{k}"] = np.sin(angle)
            feats[f"cos_{k}"] = np.cos(angle)
        y = frame[Y].copy()
        y.iloc[n_history:] = np.nan  # never look at the future's target
        yt = pd.Series(self._transform_y(_filled(y.iloc[:n_history]))).reindex(range(len(frame)))
        feats["lag_season"] = yt.shift(self.seasonal_lag).to_numpy()
        level = yt.rolling(self.cfg.season, min_periods=1).mean()
        feats["level"] = level.shift(self.reach).to_numpy()
        feats["level_long"] = yt.rolling(4 * self.cfg.season, min_periods=1).mean().shift(self.reach).to_numpy()
        for col in self.cfg.regressors:
            values = frame[col].to_numpy(dtype=float)
            if col in self.binary_:
                feats[col] = values
            else:
                logv = np.log(np.clip(values, 1e-6, None))
                feats[f"log_{col}"] = logv
                ref = pd.Series(logv).rolling(self.price_window, min_periods=1).mean().shift(1)
                ref.iloc[n_history:] = ref.iloc[n_history - 1] if n_history > 0 else np.nan
                feats[f"rel_{col}"] = logv - ref.to_numpy()
        return pd.DataFrame(feats, index=index)

    def _fit(self, frame: pd.DataFrame) -> None:
        from sklearn.linear_model import Ridge

        feats = self._features(frame, len(frame))
        target = self._transform_y(frame[Y].to_numpy(dtype=float))
        usable = ~np.isnan(target) & ~feats.isna().any(axis=1).to_numpy()
        usable[: min(self.reach, len(usable))] = False  # first rows lack real lags
        if usable.sum() < 2:
            raise ValueError("too few usable rows for the linear model")
        X = feats.to_numpy()[usable]
        self.columns_ = list(feats.columns)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        model = Ridge(alpha=self.alpha, solver="cholesky")
        model.fit((X - self.mean_) / self.scale_, target[usable])
        self.coef_ = model.coef_
        self.intercept_ = float(model.intercept_)

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        assert self.coef_ is not None and self.mean_ is not None and self.scale_ is not None
        gap = SeasonalNaive._gap_from(self, history, future)  # type: ignore[arg-type]
        if gap + len(future) > self.reach:
            raise ValueError(
                f"forecast reaches {gap + len(future)} periods past the history; the model was trained for "
                f"horizon+gap={self.reach}"
            )
        hist = history[[Y, *self.cfg.regressors]]
        grid = pd.date_range(hist.index[-1] + self.cfg.step, periods=gap + len(future), freq=self.cfg.step)
        pad = pd.DataFrame(index=grid, columns=hist.columns, dtype=float)
        pad.loc[future.index, list(self.cfg.regressors)] = future[list(self.cfg.regressors)].to_numpy()
        if self.cfg.regressors:
            pad[list(self.cfg.regressors)] = pad[list(self.cfg.regressors)].ffill()
        frame = pd.concat([hist, pad])
        if self.cfg.regressors:
            frame[list(self.cfg.regressors)] = frame[list(self.cfg.regressors)].ffill()
        feats = self._features(frame, len(hist)).iloc[len(hist) + gap :]
        X = feats[self.columns_].to_numpy()
        X = np.where(np.isnan(X), self.mean_, X)
        pred = ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return np.expm1(pred) if self.log_target else pred


class ETSForecaster(Forecaster):
    """Holt-Winters (ExponentialSmoothing): additive, optionally damped trend and additive season.

    Fitted by statsmodels on the last ``max_fit_periods`` periods (default: the larger of two years and four
    seasons: older data barely moves the smoothed states and only costs fit time). Short series lose what they
    cannot estimate: no season below two full seasons, no trend below 10 periods. The state recursion is
    re-implemented here (checked against statsmodels' fitted values by the tests), so a stored model forecasts
    from its final states, or rolls them forward over fresher history, with numpy alone. Missing targets (closed
    days) are treated as missing observations: the states move on by their own forecast.
    """

    name = "ets"

    def __init__(self, cfg: SeriesConfig, trend: str | None = "add", damped: bool = True,
                 seasonal: str | None = "add", log_target: bool = False, max_fit_periods: int | None = None,
                 **params: Any):
        super().__init__(cfg, trend=trend, damped=damped, seasonal=seasonal, log_target=log_target,
                         max_fit_periods=max_fit_periods, **params)
        self.trend = trend
        self.damped = damped
        self.seasonal = seasonal
        self.log_target = log_target
        self.max_fit_periods = max_fit_periods or max(730 // cfg.step.days, 4 * cfg.season)
        self.smoothing_: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 1.0)  # alpha, beta, gamma, phi
        self.level_ = 0.0
        self.slope_ = 0.0
        self.season_: np.ndarray = np.zeros(1)  # the last m seasonal states, oldest first
        self.state_ds_: pd.Timestamp | None = None
        self.spec_: dict[str, Any] = {}

    def _transform(self, y: np.ndarray) -> np.ndarray:
        return np.log1p(np.clip(y, 0.0, None)) if self.log_target else y

    def _fit(self, frame: pd.DataFrame) -> None:
        import warnings

        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        frame = frame.iloc[-self.max_fit_periods :]
        y = self._transform(_filled(frame[Y]))  # statsmodels needs complete data: closed days carry forward
        n, m = len(y), self.cfg.season
        flat = n < 2 or np.ptp(y) == 0  # nothing to estimate: the last value carries on
        seasonal = self.seasonal if (self.seasonal and m > 1 and n >= 2 * m and not flat) else None
        trend = self.trend if (self.trend and n >= 10 and not flat) else None
        spec = {"trend": trend, "damped_trend": bool(self.damped and trend), "seasonal": seasonal,
                "seasonal_periods": m if seasonal else None}
        if flat:
            params = {"smoothing_level": 1.0, "initial_level": float(y[-1]) if n else 0.0}
        else:
            # a long season (52 weeks) has too many initial states to estimate quickly and reliably from two or
            # three years: they come from the classical decomposition instead (statsmodels' "heuristic")
            inits = ["heuristic", "estimated"] if seasonal and m > 12 else ["estimated"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter on flat or tiny series
                for init in inits:
                    try:
                        result = ExponentialSmoothing(y, initialization_method=init, **spec).fit(
                            optimized=True, use_brute=False, method="SLSQP"
                        )
                        break
                    except ValueError:
                        if init == inits[-1]:
                            raise
            params = result.params
        alpha = float(params.get("smoothing_level", 1.0))
        beta = float(params.get("smoothing_trend") or 0.0) if trend else 0.0
        gamma = float(params.get("smoothing_seasonal") or 0.0) if seasonal else 0.0
        phi = float(params.get("damping_trend") or 1.0) if spec["damped_trend"] else 1.0
        self.smoothing_ = (alpha, beta, gamma, phi)
        self.spec_ = {k: v for k, v in spec.items() if v}
        level = float(params.get("initial_level", y[0]))
        slope = float(params.get("initial_trend") or 0.0) if trend else 0.0
        season = np.asarray(params.get("initial_seasons"), dtype=float) if seasonal else np.zeros(1)
        self.level_, self.slope_, self.season_ = self._roll(y, level, slope, season)
        self.state_ds_ = frame.index[-1]

    def _roll(self, y: np.ndarray, level: float, slope: float, season: np.ndarray) -> tuple[float, float, np.ndarray]:
        """Run the smoothing recursion over ``y`` (NaN = missing observation) from the given states."""
        alpha, beta, gamma, phi = self.smoothing_
        ring = list(season)
        m = len(ring)
        for i, value in enumerate(y):
            s_old = ring[i % m] if m > 1 else 0.0
            expected = level + phi * slope
            if np.isnan(value):
                new_level, new_slope, new_season = expected, phi * slope, s_old
            else:
                new_level = alpha * (value - s_old) + (1 - alpha) * expected
                new_slope = beta * (new_level - level) + (1 - beta) * phi * slope
                new_season = gamma * (value - expected) + (1 - gamma) * s_old
            if m > 1:
                ring[i % m] = new_season
            level, slope = new_level, new_slope
        if m > 1:  # oldest first: position len(y) mod m is the oldest state after the loop
            start = len(y) % m
            ring = ring[start:] + ring[:start]
        return float(level), float(slope), np.asarray(ring, dtype=float)

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        assert self.state_ds_ is not None
        end = history.index[-1]
        if end < self.state_ds_:
            raise ValueError(
                f"history ends {end.date()}, before the model's fitted state ({self.state_ds_.date()}); refit the "
                "ets model on that history"
            )
        level, slope, season = self.level_, self.slope_, self.season_
        if end > self.state_ds_:  # roll the states over the fresher observations
            grid = pd.date_range(self.state_ds_ + self.cfg.step, end, freq=self.cfg.step)
            fresh = history[Y].reindex(grid).to_numpy(dtype=float)
            level, slope, season = self._roll(self._transform(fresh), level, slope, season)
        if len(future) == 0:
            return np.zeros(0)
        alpha, beta, gamma, phi = self.smoothing_
        k = np.rint(np.asarray((future.index - end) / self.cfg.step, dtype=float)).astype(int)
        damp = k.astype(float) if phi == 1.0 else phi * (1 - phi**k) / (1 - phi)
        m = len(season)
        pred = level + damp * slope + (season[(k - 1) % m] if m > 1 else 0.0)
        pred = np.asarray(pred, dtype=float)
        return np.expm1(pred) if self.log_target else pred


class ProphetForecaster(Forecaster):
    """Prophet per series; the fitted model is stored as Prophet's own JSON (portable across processes)."""

    name = "prophet"

    def __init__(self, cfg: SeriesConfig, uncertainty_samples: int = 0, **params: Any):
        super().__init__(cfg, uncertainty_samples=uncertainty_samples, **params)
        self.uncertainty_samples = uncertainty_samples
        self.prophet_params = params
        self.model_json_: str | None = None
        self._model = None

    @staticmethod
    def _quiet() -> None:
        for name in ("cmdstanpy", "prophet", "prophet.plot"):
            logging.getLogger(name).setLevel(logging.ERROR)

    def _fit(self, frame: pd.DataFrame) -> None:
        self._quiet()
        from prophet import Prophet
        from prophet.serialize import model_to_json

        params = {
            "uncertainty_samples": self.uncertainty_samples,
            "weekly_seasonality": self.cfg.is_daily,
            "daily_seasonality": False,
            **self.prophet_params,
        }
        model = Prophet(**params)
        for col in self.cfg.regressors:
            model.add_regressor(col, standardize=col not in self.binary_)
        df = frame.reset_index()[[DS, Y, *self.cfg.regressors]]
        model.fit(df)
        self._model = model
        self.model_json_ = model_to_json(model)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_model"] = None
        return state

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        if self._model is None:
            self._quiet()
            from prophet.serialize import model_from_json

            self._model = model_from_json(self.model_json_)
        df = future.reset_index()[[DS, *self.cfg.regressors]]
        return self._model.predict(df)["yhat"].to_numpy(dtype=float)


def make_model(model_type: str, cfg: SeriesConfig, params: dict[str, Any] | None = None) -> Forecaster:
    """A fresh, unfitted model of the named type."""
    params = params or {}
    if model_type == "seasonal_naive":
        return SeasonalNaive(cfg)
    if model_type == "linear":
        return LinearForecaster(cfg, **params)
    if model_type == "ets":
        return ETSForecaster(cfg, **params)
    if model_type == "prophet":
        return ProphetForecaster(cfg, **params)
    raise ValueError(f"model.type {model_type!r} is unknown; choose one of {', '.join(MODEL_TYPES)}")
