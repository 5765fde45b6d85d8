"""Per-series forecasting models behind one small interface.

Every model is fitted on one regular series (``series.regularize``) and keeps the short tail of history it
needs, so a stored model can forecast on its own (the online endpoint) or from fresher history (batch
scoring with a champion trained earlier).

- ``baseline``: the best of naive, seasonal naive and recent moving averages by the series' own backtest
  (``forecasting.baseline``); the fallback and the yardstick every other model must beat.
- ``seasonal_naive``: ŷ(t) = y(t - m·k), the baseline's method fixed.
- ``linear``: ridge regression on calendar, recent levels and regressors in the form their kind needs, its
  strength chosen per series (``forecasting.linear``). Direct multi-step: the fast default.
- ``ets``: Holt-Winters exponential smoothing (a level, and a damped trend and a season where the series' AICc
  earns them; statsmodels fits it).
  It keeps its smoothing parameters and final states, so forecasting needs only numpy (the serving image has
  no statsmodels). Regressors are ignored: it is the candidate for series where calendar and price carry little.
- ``prophet``: Prophet with the regressors; uncertainty sampling off unless ``uncertainty_samples`` is set.
- ``auto`` is not a class: ``forecasting.training`` picks one of the above per series (``forecasting.backtest``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting.base import Forecaster, filled
from mm_assets.forecasting.baseline import Baseline, SeasonalNaive
from mm_assets.forecasting.linear import LinearForecaster
from mm_assets.forecasting.model_types import (
    AUTO,
    BASELINE_TYPES,
    GLOBAL_TYPES,
    MODEL_TYPES,
    SIMPLICITY_ORDER,
    ModelType,
)
from mm_assets.forecasting.prophet_fit import new_prophet, warm_start
from mm_assets.forecasting.series import DS, SeriesConfig, Y

BASELINE = ModelType.BASELINE.value
LIGHTGBM = ModelType.LIGHTGBM.value
__all__ = ["Forecaster", "Baseline", "SeasonalNaive", "LinearForecaster", "ETSForecaster", "ProphetForecaster",
           "make_model", "is_global", "MODEL_TYPES", "BASELINE_TYPES", "GLOBAL_TYPES", "SIMPLICITY_ORDER"]


def is_global(model_type: str) -> bool:
    """Whether the model type learns across the series of a batch (one model, every series' row points at it)."""
    return model_type in GLOBAL_TYPES


def as_series_model(obj, ids: list[str]) -> Forecaster:
    """A loaded artifact as the ``Forecaster`` of one series: a global model's view of that series, or the
    per-series model itself."""
    for_series = getattr(obj, "for_series", None)
    return for_series(ids) if for_series is not None else obj


def cannot_serve(model: Forecaster, horizon: int, gap: int, regressors: Sequence[str] | None = None,
                 target: str | None = None) -> str | None:
    """Why a stored model cannot forecast ``gap + horizon`` periods past its series' history of ``target`` with
    the settings' ``regressors`` (None: not judged), or None. Direct multi-step models (``linear``, ``lightgbm``)
    forecast as far as they were trained for: a champion trained before ``horizon`` or ``gap`` grew would fail at
    every scoring and leave its series to the baseline. A model reads every regressor it was trained with: one the
    settings dropped is no longer in the data, and re-scoring such a champion failed the gate for its series every
    day (``settings_mismatch``)."""
    mismatch = settings_mismatch(model, regressors, target)
    if mismatch:
        return mismatch
    reach = getattr(getattr(model, "global_", model), "reach", None)
    if reach is None or gap + horizon <= reach:
        return None
    return (f"it was trained for horizon + gap = {reach} periods and the settings ask for {horizon} + {gap} = "
            f"{horizon + gap}")


def settings_mismatch(model: Forecaster, regressors: Sequence[str] | None, target: str | None) -> str | None:
    """Why a stored model does not fit the settings' data, or None: it was trained to forecast another column than
    ``target`` (its numbers are another quantity: kept as a champion, it was published in the old unit), or with a
    regressor the settings dropped (it reads every regressor it was trained with, and that one is no longer there).
    A model stored before its target was kept is not judged on it."""
    cfg = getattr(model, "cfg", None)
    trained_on = getattr(cfg, "target", "")
    if target and trained_on and trained_on != target:
        return (f"it was trained to forecast {trained_on}, and the settings now forecast {target} (columns.target)")
    present = set(regressors) if regressors is not None else None
    gone = [c for c in getattr(cfg, "regressors", ()) if present is not None and c not in present]
    if not gone:
        return None
    return (f"it was trained with the regressor{'s' if len(gone) > 1 else ''} {', '.join(gone)}, which the settings "
            "(columns.regressors) no longer have")


class ETSForecaster(Forecaster):
    """Holt-Winters (ExponentialSmoothing): level, optionally a (damped) trend and a season.

    Fitted by statsmodels on the last ``max_fit_periods`` periods (default: the larger of two years and four
    seasons: older data barely moves the smoothed states and only costs fit time). Short series lose what they
    cannot estimate: no season below two full seasons, no trend below 10 periods. ``trend`` and ``seasonal``
    ``auto`` (the defaults) keep a component only where the series' own fit earns it: each form (level alone,
    with a damped trend, with a season, with both) is fitted and the one of least AICc kept, counting its initial
    states as parameters, as automatic ETS does. Why: a trend fitted to promotion spikes runs off and a
    52-week season read from two years is mostly noise; on real weekly retail data (orangeJuice) the full form
    scored WAPE 105 % against 70.5 % chosen by AICc and 84 % for naive. The state recursion is
    re-implemented here (checked against statsmodels' fitted values by the tests), so a stored model forecasts
    from its final states, or rolls them forward over fresher history, with numpy alone. Missing targets (closed
    days) are treated as missing observations: the states move on by their own forecast. ``log_target`` (the
    default) fits log1p of the target: fitted on sales themselves, the squared error of promotion spikes drives
    the level's weight to zero, and the forecast is the long-run mean of spikes and ordinary weeks alike
    (orangeJuice WAPE 77.5 % and bias +17.4 % against 61.3 % and −22.5 % on the log; lower WAPE and MASE on
    cheese, tuna and the demo too: docs/models.md).
    """

    name = "ets"

    def __init__(self, cfg: SeriesConfig, trend: str | None = AUTO, damped: bool = True,
                 seasonal: str | None = AUTO, log_target: bool = True, max_fit_periods: int | None = None,
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
        self.reason_ = ""  # the form fitted and how it was chosen, recorded with the model

    def _transform(self, y: np.ndarray) -> np.ndarray:
        return np.log1p(np.clip(y, 0.0, None)) if self.log_target else y

    def _fit(self, frame: pd.DataFrame) -> None:
        frame = frame.iloc[-self.max_fit_periods :]
        y = self._transform(filled(frame[Y]))  # statsmodels needs complete data: closed days carry forward
        n, m = len(y), self.cfg.season
        flat = n < 2 or np.ptp(y) == 0  # nothing to estimate: the last value carries on
        seasons = self._choices(self.seasonal) if m > 1 and n >= 2 * m and not flat else [None]
        trends = self._choices(self.trend) if n >= 10 and not flat else [None]
        if flat:
            spec = {"trend": None, "damped_trend": False, "seasonal": None, "seasonal_periods": None}
            params = {"smoothing_level": 1.0, "initial_level": float(y[-1]) if n else 0.0}
            self.reason_ = "ets: a flat history, its last value carries on"
        else:  # the simplest form first: it wins a tie
            fits = self._fit_forms(y, [(trend, seasonal) for seasonal in seasons for trend in trends])
            spec, params, _ = min(fits, key=lambda fit: fit[2])
            how = f"the least AICc of {len(fits)} forms" if len(fits) > 1 else "the only form the settings and history allow"
            self.reason_ = f"ets: {self._form_words(spec)} ({how})"
        trend, seasonal = spec["trend"], spec["seasonal"]
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

    @staticmethod
    def _form_words(spec: dict) -> str:
        words = ["level"]
        if spec["trend"]:
            words.append(f"{'damped ' if spec['damped_trend'] else ''}{spec['trend']} trend")
        if spec["seasonal"]:
            words.append(f"{spec['seasonal']} season of {spec['seasonal_periods']}")
        return ", ".join(words)

    @staticmethod
    def _choices(setting: str | None) -> list[str | None]:
        """The forms of one component to try: ``auto`` without and additive, else the one set."""
        return [None, "add"] if setting == AUTO else [setting or None]

    def _fit_forms(self, y: np.ndarray, forms: list[tuple[str | None, str | None]]) -> list[tuple[dict, Any, float]]:
        """Each of ``forms`` (trend, seasonal) fitted; one statsmodels cannot fit is left out while another can
        be (the error of the last is raised when none can: the series' failure is recorded)."""
        fits, error = [], None
        for trend, seasonal in forms:
            try:
                fits.append(self._fit_form(y, trend, seasonal))
            except (ValueError, np.linalg.LinAlgError) as exc:
                error = exc
        if not fits:
            raise error
        return fits

    def _fit_form(self, y: np.ndarray, trend: str | None, seasonal: str | None) -> tuple[dict, dict, float]:
        """One form fitted by statsmodels → (its spec, its parameters, its AICc). The fit is of ``y`` divided by its
        mean magnitude, its states scaled back after: on sales in the thousands the squared error's gradient is
        ~1e6, and SLSQP then stopped at its starting point on some CPUs (one iteration, "terminated
        successfully": alpha 0.5 kept, a third more squared error than the optimum), so the form chosen depended
        on the machine. Scaled, it reaches L-BFGS-B's optimum in half the time. The smoothing weights do not
        depend on the scale; additive states scale with it, multiplicative ones (ratios) do not."""
        import warnings

        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        m = self.cfg.season
        spec = {"trend": trend, "damped_trend": bool(self.damped and trend), "seasonal": seasonal,
                "seasonal_periods": m if seasonal else None}
        # a long season (52 weeks) has too many initial states to estimate quickly and reliably from two or
        # three years: they come from the classical decomposition instead (statsmodels' "heuristic")
        inits = ["heuristic", "estimated"] if seasonal and m > 12 else ["estimated"]
        scale = float(np.mean(np.abs(y))) or 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on flat or tiny series
            for init in inits:
                try:
                    result = ExponentialSmoothing(y / scale, initialization_method=init, **spec).fit(
                        optimized=True, use_brute=False, method="SLSQP")
                    break
                except ValueError:
                    if init == inits[-1]:
                        raise
        params = dict(result.params)
        params["initial_level"] = float(params["initial_level"]) * scale
        if trend == "add" and params.get("initial_trend") is not None:
            params["initial_trend"] = float(params["initial_trend"]) * scale
        if seasonal == "add" and params.get("initial_seasons") is not None:
            params["initial_seasons"] = np.asarray(params["initial_seasons"], dtype=float) * scale
        # parameters: smoothing weights, initial states (a decomposition's seasonal ones too: they are read off
        # the data) and the error's variance
        k = (2 + (2 if trend else 0) + (1 if spec["damped_trend"] else 0) + (m if seasonal else 0) + 1)
        n = len(y)
        sse = max(float(result.sse) * scale * scale, 1e-12 * max(1.0, float(np.sum(y * y))))
        aicc = n * np.log(sse / n) + 2 * k + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else np.inf)
        return spec, params, aicc

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
        self._start: dict[str, Any] | None = None  # the optimiser's start (``start_from``), used by the next fit

    @staticmethod
    def _quiet() -> None:
        for name in ("cmdstanpy", "prophet", "prophet.plot"):
            logging.getLogger(name).setLevel(logging.ERROR)

    def _fit(self, frame: pd.DataFrame) -> None:
        self._quiet()
        params = {
            "uncertainty_samples": self.uncertainty_samples,
            "weekly_seasonality": self.cfg.is_daily,
            "daily_seasonality": False,
            **self.prophet_params,
        }
        model = new_prophet(**params)
        for col in self.cfg.regressors:
            model.add_regressor(col, standardize=col not in self.binary_)
        df = frame.reset_index()[[DS, Y, *self.cfg.regressors]]
        model.fit(df, **({"init": self._start} if self._start is not None else {}))
        self._model = model
        self._start = None
        self.model_json_ = None  # written when the model is pickled: a holdout's model never is

    def start_from(self, fitted: Forecaster) -> None:
        """Start the optimiser from the parameters of a Prophet fitted on a shorter history (``warm_start``)."""
        model = getattr(fitted, "_model", None)
        if isinstance(fitted, ProphetForecaster) and model is not None and not self.prophet_params.get("mcmc_samples"):
            self._start = warm_start(model.params)

    def __getstate__(self) -> dict:
        if self.model_json_ is None and self._model is not None:
            from prophet.serialize import model_to_json

            self.model_json_ = model_to_json(self._model)  # Prophet's own portable format
        state = super().__getstate__()
        state["_model"] = None
        state["_start"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__({"_start": None, **state})  # models pickled before warm starts existed

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
    if model_type == BASELINE:
        return Baseline(cfg)
    if model_type == ModelType.SEASONAL_NAIVE:
        return SeasonalNaive(cfg)
    if model_type == ModelType.LINEAR:
        return LinearForecaster(cfg, **params)
    if model_type == ModelType.ETS:
        return ETSForecaster(cfg, **params)
    if model_type == ModelType.PROPHET:
        return ProphetForecaster(cfg, **params)
    if model_type == LIGHTGBM:
        raise ValueError("lightgbm is a global model: it is trained over every series of a batch at once "
                         "(forecasting.global_training), not per series")
    raise ValueError(f"model.type {model_type!r} is unknown; choose one of {', '.join(MODEL_TYPES)}")
