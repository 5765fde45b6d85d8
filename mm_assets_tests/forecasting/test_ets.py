"""Tests of the ets model (Holt-Winters): same forecasts as statsmodels, portable states, gap, short series."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from mm_assets.forecasting.models import ETSForecaster, make_model
from mm_assets.forecasting.series import DS, SeriesConfig, Y
from mm_assets_tests.forecasting.synthetic import weekly_series

DAILY = SeriesConfig(frequency="D", horizon=7, season=7)


def _frame(n: int, season: int, freq: str = "D", seed: int = 0, start: str = "2023-01-02") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 50 + 0.05 * t + 10 * np.sin(2 * np.pi * t / season) + rng.normal(0, 2, n)
    index = pd.date_range(start, periods=n, freq="D" if freq == "D" else "7D", name=DS)
    return pd.DataFrame({Y: y}, index=index)


def _future(last: pd.Timestamp, cfg: SeriesConfig, periods: int, gap: int = 0) -> pd.DataFrame:
    return pd.DataFrame(index=pd.date_range(last + cfg.step * (1 + gap), periods=periods, freq=cfg.step, name=DS))


@pytest.mark.parametrize("log_target", [False, True])
def test_forecast_equals_statsmodels_holt_winters(log_target):
    """statsmodels' fit of the series (log1p of it by default) in units of its mean magnitude (as ours: well
    scaled for the optimizer), forecast in the series' units."""
    frame = _frame(300, 7)
    model = ETSForecaster(DAILY, trend="add", seasonal="add", log_target=log_target).fit(frame)
    y = np.log1p(frame[Y].to_numpy()) if log_target else frame[Y].to_numpy()
    scale = np.mean(np.abs(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = ExponentialSmoothing(y / scale, trend="add", damped_trend=True, seasonal="add",
                                         seasonal_periods=7, initialization_method="estimated").fit(
            use_brute=False, method="SLSQP")
    ours = model.predict(_future(frame.index[-1], DAILY, 10))
    # the forecast from statsmodels' final states: level + damped trend + the season k steps on (its own forecast()
    # takes the season of the cycle before at k = 7, which differs once the season has moved)
    k = np.arange(1, 11)
    phi = reference.params["damping_trend"]
    expected = scale * (reference.level[-1] + phi * (1 - phi**k) / (1 - phi) * reference.trend[-1]
                        + reference.season[-7:][(k - 1) % 7])
    np.testing.assert_allclose(ours, np.expm1(expected) if log_target else expected, rtol=1e-8, atol=1e-8)
    assert model.spec_ == {"trend": "add", "damped_trend": True, "seasonal": "add", "seasonal_periods": 7}


def test_a_fit_of_sales_in_the_thousands_reaches_the_least_squared_error():
    """Unscaled, SLSQP stopped at its starting point on some CPUs (alpha 0.5, a third more squared error); the
    fit reaches L-BFGS-B's optimum, whatever the machine."""
    rng = np.random.default_rng(4)
    y = 3000 * np.exp(rng.normal(0, 0.2, 156)) * np.where(rng.random(156) < 0.15, 3.0, 1.0)
    weekly = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52)
    _, params, _ = ETSForecaster(weekly)._fit_form(y, None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = ExponentialSmoothing(y, initialization_method="estimated").fit(use_brute=False, method="L-BFGS-B")
        ours = ExponentialSmoothing(y, initialization_method="known", initial_level=params["initial_level"]).fit(
            smoothing_level=params["smoothing_level"], optimized=False)
    assert ours.sse <= best.sse * 1.001


def test_rolling_over_fresher_history_equals_statsmodels_with_the_same_parameters():
    frame = _frame(300, 7, seed=3)
    model = ETSForecaster(DAILY, trend="add", seasonal="add", log_target=False).fit(frame.iloc[:-6])  # 6 days ago
    alpha, beta, gamma, phi = model.smoothing_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = frame[Y].to_numpy()[:-6]
        scale = np.mean(np.abs(trained))
        first = ExponentialSmoothing(trained / scale, trend="add", damped_trend=True, seasonal="add",
                                     seasonal_periods=7, initialization_method="estimated").fit(
            use_brute=False, method="SLSQP")
        p = first.params
        known = ExponentialSmoothing(frame[Y].to_numpy(), trend="add", damped_trend=True, seasonal="add",
                                     seasonal_periods=7, initialization_method="known",
                                     initial_level=p["initial_level"] * scale,
                                     initial_trend=p["initial_trend"] * scale,
                                     initial_seasonal=p["initial_seasons"] * scale).fit(
            smoothing_level=alpha, smoothing_trend=beta, smoothing_seasonal=gamma, damping_trend=phi,
            optimized=False)
    fresh = model.predict(_future(frame.index[-1], DAILY, 7), history=frame)
    np.testing.assert_allclose(fresh, known.forecast(7), rtol=1e-8, atol=1e-8)
    stale = model.predict(_future(frame.index[-7], DAILY, 7))
    assert not np.allclose(fresh, stale)


def test_pickles_and_forecasts_from_its_stored_state_with_the_gap():
    cfg = SeriesConfig(frequency="D", horizon=4, season=7, gap=3)
    frame = _frame(200, 7, seed=5)
    model = make_model("ets", cfg).fit(frame)
    restored = pickle.loads(pickle.dumps(model))
    assert restored.last_ds == frame.index[-1]
    long = restored.predict(_future(frame.index[-1], cfg, 7))
    gapped = restored.predict(_future(frame.index[-1], cfg, 4, gap=3))
    np.testing.assert_allclose(gapped, long[3:])
    np.testing.assert_allclose(restored.predict(_future(frame.index[-1], cfg, 4, gap=3), history=frame), gapped)
    with pytest.raises(ValueError, match="before the model's fitted state"):
        restored.predict(_future(frame.index[-10], cfg, 4), history=frame.iloc[:-10])


def test_weekly_season_52_only_with_two_seasons_of_history():
    cfg = SeriesConfig(frequency="W", horizon=8, season=52)
    long = weekly_series(n=156, seed=2).set_index(DS)[[Y]]
    short = long.iloc[-80:]
    m_long = ETSForecaster(cfg, seasonal="add").fit(long)
    m_short = ETSForecaster(cfg, seasonal="add").fit(short)
    assert m_long.spec_.get("seasonal_periods") == 52 and len(m_long.season_) == 52
    assert "seasonal" not in m_short.spec_ and len(m_short.season_) == 1
    fut = _future(long.index[-1], cfg, 8)
    pred = m_long.predict(fut)
    assert np.isfinite(pred).all() and (pred >= 0).all()
    # the yearly wave is forecast: the next 8 weeks follow last year's same weeks more than a flat line would
    last_year = long[Y].to_numpy()[-52:-44]
    assert np.corrcoef(pred, last_year)[0, 1] > 0.5


def test_auto_keeps_a_season_and_a_trend_only_where_the_fit_earns_them():
    # a strong weekly pattern on a rising line: both kept
    both = _frame(300, 7, seed=1)
    both[Y] = 50 + 0.3 * np.arange(300) + 20 * np.sin(2 * np.pi * np.arange(300) / 7)
    both[Y] += np.random.default_rng(1).normal(0, 1, 300)
    model = ETSForecaster(DAILY).fit(both)
    assert model.spec_ == {"trend": "add", "damped_trend": True, "seasonal": "add", "seasonal_periods": 7}
    assert model.reason_ == "ets: level, damped add trend, add season of 7 (the least AICc of 4 forms)"
    # noise around a level, with promotion-like spikes (real weekly retail): the level alone, a smoothed recent
    # level
    rng = np.random.default_rng(4)
    y = 100 * np.exp(rng.normal(0, 0.2, 156)) * np.where(rng.random(156) < 0.15, 3.0, 1.0)
    noisy = pd.DataFrame({Y: y}, index=pd.date_range("2021-01-04", periods=156, freq="7D", name=DS))
    weekly = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52)
    auto = ETSForecaster(weekly).fit(noisy)
    assert auto.spec_ == {}
    assert auto.reason_ == "ets: level (the least AICc of 4 forms)"
    assert len(auto.season_) == 1 and auto.slope_ == 0.0
    future = _future(noisy.index[-1], weekly, 2, gap=1)
    pred = auto.predict(future)
    assert pred[0] == pred[1] and y[-13:].min() < pred[0] < y[-13:].max()
    full = ETSForecaster(weekly, trend="add", seasonal="add").fit(noisy)
    assert full.spec_["seasonal_periods"] == 52  # what the settings ask is fitted as asked
    assert full.reason_.endswith("(the only form the settings and history allow)")
    # the form is the trained series' reason in the registry
    from mm_assets.forecasting.training import train_regular

    outcome = train_regular(noisy, weekly, "ets")
    assert outcome.status == "trained" and outcome.reason == "ets: level (the least AICc of 4 forms)"


def test_auto_is_a_choice_of_the_options_and_other_words_are_refused():
    from mm_assets.forecasting.model_types import option_problems

    assert option_problems("ets", {"trend": "auto", "seasonal": "auto"}) == []
    assert option_problems("ets", {"trend": None, "seasonal": "add"}) == []
    (problem,) = option_problems("ets", {"seasonal": "sometimes"})
    assert problem.startswith("model.params.seasonal 'sometimes'") and "one of auto, null" in problem


@pytest.mark.parametrize("values", [[5.0] * 30, [3.0, 4.0, 5.0], [7.0]])
def test_flat_and_tiny_series_forecast_sanely(values):
    frame = pd.DataFrame({Y: values}, index=pd.date_range("2024-01-01", periods=len(values), freq="D", name=DS))
    model = ETSForecaster(DAILY).fit(frame)
    pred = model.predict(_future(frame.index[-1], DAILY, 7))
    assert np.isfinite(pred).all()
    assert pred == pytest.approx(np.full(7, values[-1]), rel=0.5)


def test_missing_days_in_fresher_history_are_skipped():
    frame = _frame(120, 7, seed=9)
    model = ETSForecaster(DAILY).fit(frame.iloc[:-5])
    fresh = frame.copy()
    fresh.iloc[-3:, 0] = np.nan  # closed days
    pred = model.predict(_future(frame.index[-1], DAILY, 7), history=fresh)
    assert np.isfinite(pred).all()


def test_a_form_statsmodels_cannot_fit_is_left_out_while_another_can_be(monkeypatch):
    frame = _frame(120, 7, seed=2)
    original = ETSForecaster._fit_form

    def no_season(self, y, trend, seasonal):
        if seasonal:
            raise np.linalg.LinAlgError("singular matrix")
        return original(self, y, trend, seasonal)

    monkeypatch.setattr(ETSForecaster, "_fit_form", no_season)
    model = ETSForecaster(DAILY).fit(frame)
    assert "seasonal" not in model.spec_ and model.reason_.endswith("(the least AICc of 2 forms)")
    with pytest.raises(np.linalg.LinAlgError, match="singular"):  # none could be fitted: the series fails, named
        ETSForecaster(DAILY, trend=None, seasonal="add").fit(frame)
