"""Tests of mm_assets.forecasting.models: seasonal naive, the linear model and Prophet."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.models import (
    LinearForecaster,
    ProphetForecaster,
    SeasonalNaive,
    make_model,
)
from mm_assets.forecasting.series import SeriesConfig, regularize
from mm_assets_tests.forecasting.synthetic import WEEKDAY_PROFILE, daily_series, wape, weekly_series

DAILY = SeriesConfig(frequency="D", horizon=28, season=7, regressors=("price", "promo"), min_train_periods=42)


def _grid(values, start="2024-01-01", freq="D", **regressors) -> pd.DataFrame:
    index = pd.date_range(start, periods=len(values), freq=freq, name="ds")
    return pd.DataFrame({"y": np.asarray(values, dtype=float), **regressors}, index=index)


def _future(after: pd.Timestamp, periods: int, step_days: int = 1, skip: int = 0, **regressors) -> pd.DataFrame:
    start = after + pd.Timedelta(days=step_days * (1 + skip))
    index = pd.date_range(start, periods=periods, freq=pd.Timedelta(days=step_days), name="ds")
    return pd.DataFrame({k: np.broadcast_to(v, periods).astype(float) for k, v in regressors.items()}, index=index)


# ---- seasonal naive ------------------------------------------------------------------------------------


def test_seasonal_naive_repeats_the_last_season():
    cfg = SeriesConfig(horizon=10, season=7)
    hist = _grid(np.arange(1, 15))  # 1..14; last season = 8..14
    model = SeasonalNaive(cfg).fit(hist)
    pred = model.predict(_future(hist.index[-1], 10))
    np.testing.assert_array_equal(pred, [8, 9, 10, 11, 12, 13, 14, 8, 9, 10])
    assert model.last_ds == hist.index[-1]
    assert len(model.tail_) == min(model.tail_length, len(hist))


def test_seasonal_naive_with_a_gap_keeps_the_seasonal_position():
    cfg = SeriesConfig(horizon=10, season=7)
    hist = _grid(np.arange(1, 15))
    pred = SeasonalNaive(cfg).fit(hist).predict(_future(hist.index[-1], 5, skip=2))
    # first forecast is 3 periods after the origin: y(origin - 7 + 3) = 10
    np.testing.assert_array_equal(pred, [10, 11, 12, 13, 14])


def test_seasonal_naive_uses_given_history_and_fills_holes():
    cfg = SeriesConfig(horizon=7, season=7)
    model = SeasonalNaive(cfg).fit(_grid(np.arange(1, 15)))
    fresher = _grid([0, 0, 0, 5, np.nan, 7, 8, 9, 10], start="2024-02-01")
    pred = model.predict(_future(fresher.index[-1], 7), history=fresher)
    # last 7 of the fresher history: 0, 5, nan->5, 7, 8, 9, 10
    np.testing.assert_array_equal(pred, [0, 5, 5, 7, 8, 9, 10])


def test_seasonal_naive_shorter_history_than_a_season_is_naive():
    """No last season to repeat: the last value (the history cycled would repeat its first periods)."""
    cfg = SeriesConfig(horizon=5, season=7)
    hist = _grid([4.0, 6.0])
    pred = SeasonalNaive(cfg).fit(hist).predict(_future(hist.index[-1], 5))
    np.testing.assert_array_equal(pred, [6.0, 6.0, 6.0, 6.0, 6.0])


def test_predictions_are_clipped_at_zero():
    cfg = SeriesConfig(horizon=3, season=3)
    hist = _grid([-5.0, 2.0, -1.0])
    pred = SeasonalNaive(cfg).fit(hist).predict(_future(hist.index[-1], 3))
    np.testing.assert_array_equal(pred, [0.0, 2.0, 0.0])


def test_unfitted_model_cannot_predict():
    with pytest.raises(RuntimeError, match="not fitted"):
        SeasonalNaive(SeriesConfig()).predict(_future(pd.Timestamp("2024-01-01"), 3))


# ---- linear --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daily_fit():
    frame = regularize(daily_series(n=400, seed=11), DAILY)
    train, test = frame.iloc[:-28], frame.iloc[-28:]
    model = LinearForecaster(DAILY).fit(train)
    return model, train, test


def test_linear_recovers_a_clean_weekly_pattern(daily_fit):
    model, train, test = daily_fit
    pred = model.predict(test[["price", "promo"]])
    assert pred.shape == (28,)
    assert wape(test["y"], pred) < 0.08
    # the weekday profile is recovered: forecast / price-and-promo effect has the known shape
    adjusted = pred / ((test["price"] / 2.0) ** -1.5 * np.where(test["promo"] == 1, 1.3, 1.0))
    by_dow = pd.Series(adjusted.to_numpy(), index=test.index.day_of_week).groupby(level=0).mean()
    assert np.corrcoef(by_dow.sort_index().to_numpy(), WEEKDAY_PROFILE)[0, 1] > 0.97
    assert by_dow.idxmax() == int(np.argmax(WEEKDAY_PROFILE))


def test_linear_beats_seasonal_naive_on_the_synthetic_series(daily_fit):
    model, train, test = daily_fit
    naive = SeasonalNaive(DAILY).fit(train).predict(test[["price", "promo"]])
    assert wape(test["y"], model.predict(test[["price", "promo"]])) < wape(test["y"], naive)


def test_linear_higher_price_lowers_the_forecast(daily_fit):
    model, train, test = daily_fit
    future = test[["price", "promo"]].copy()
    base = model.predict(future)
    dearer = future.assign(price=future["price"] * 1.3)
    high = model.predict(dearer)
    assert (high < base).all()
    # the true elasticity is -1.5: a 30% increase should cut demand by roughly 1.3**-1.5 ≈ 0.67
    ratio = high.sum() / base.sum()
    assert 0.5 < ratio < 0.85


def test_linear_promo_raises_the_forecast(daily_fit):
    model, _, test = daily_fit
    future = test[["price", "promo"]].assign(promo=0.0)
    assert (model.predict(future.assign(promo=1.0)) > model.predict(future)).all()
    assert "promo" in model.binary_


def test_linear_refuses_a_forecast_beyond_horizon_plus_gap(daily_fit):
    model, train, _ = daily_fit
    last = train.index[-1]
    model.predict(_future(last, 28, price=2.0, promo=0))  # exactly the horizon: fine
    model.predict(_future(last, 27, skip=1, price=2.0, promo=0))  # 1 + 27 = 28: fine
    with pytest.raises(ValueError, match="horizon\\+gap=28"):
        model.predict(_future(last, 29, price=2.0, promo=0))
    with pytest.raises(ValueError, match="reaches 30"):
        model.predict(_future(last, 28, skip=2, price=2.0, promo=0))


def test_linear_stored_tail_is_enough_to_forecast(daily_fit):
    model, train, test = daily_fit
    assert model.last_ds == train.index[-1]
    assert len(model.tail_) == min(model.tail_length, len(train))
    future = test[["price", "promo"]]
    np.testing.assert_allclose(model.predict(future), model.predict(future, history=train))


def test_linear_handles_weekly_frequency():
    cfg = SeriesConfig(frequency="W", horizon=8, season=52, regressors=("price",), min_train_periods=112)
    frame = regularize(weekly_series(n=156, seed=5), cfg)
    train, test = frame.iloc[:-8], frame.iloc[-8:]
    model = LinearForecaster(cfg).fit(train)
    assert not any(c.startswith("dow_") for c in model.columns_)
    pred = model.predict(test[["price"]])
    assert pred.shape == (8,)
    assert np.isfinite(pred).all()
    assert wape(test["y"], pred) < 0.15
    with pytest.raises(ValueError, match="horizon\\+gap"):
        model.predict(_future(train.index[-1], 9, step_days=7, price=2.0))


def test_linear_too_little_data_raises():
    cfg = SeriesConfig(horizon=28, season=7)
    with pytest.raises(ValueError, match="too few usable rows"):
        LinearForecaster(cfg).fit(_grid(np.arange(1, 30)))


def test_linear_pickle_round_trip(daily_fit):
    model, _, test = daily_fit
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict(test[["price", "promo"]]), model.predict(test[["price", "promo"]]))


# ---- make_model ----------------------------------------------------------------------------------------


def test_make_model():
    assert isinstance(make_model("seasonal_naive", DAILY), SeasonalNaive)
    linear = make_model("linear", DAILY, {"alpha": 5.0, "fourier_order": 2})
    assert isinstance(linear, LinearForecaster)
    assert linear.alpha == 5.0
    assert linear.fourier_order == 2
    assert isinstance(make_model("prophet", DAILY), ProphetForecaster)
    with pytest.raises(ValueError, match="model.type 'arima'"):
        make_model("arima", DAILY)


# ---- prophet (one fit for the whole module: each costs ~0.5 s) ------------------------------------------


@pytest.fixture(scope="module")
def prophet_fit():
    frame = regularize(daily_series(n=210, seed=3), DAILY)
    train, test = frame.iloc[:-28], frame.iloc[-28:]
    model = ProphetForecaster(DAILY).fit(train)
    return model, train, test


def test_prophet_fits_a_small_series(prophet_fit):
    model, train, test = prophet_fit
    pred = model.predict(test[["price", "promo"]])
    assert pred.shape == (28,)
    assert np.isfinite(pred).all()
    assert wape(test["y"], pred) < 0.25
    assert model.last_ds == train.index[-1]


def test_prophet_pickle_round_trip_gives_identical_predictions(prophet_fit):
    model, _, test = prophet_fit
    future = test[["price", "promo"]]
    before = model.predict(future)
    blob = pickle.dumps(model)
    clone = pickle.loads(blob)
    assert clone._model is None and clone.model_json_ is not None  # Prophet's JSON, written when pickled
    after = clone.predict(future)
    np.testing.assert_allclose(after, before, rtol=1e-9, atol=1e-9)


def test_prophet_data_reaches_cmdstan_as_arrays_with_the_same_content():
    """The array backend hands CmdStan the same data and start as Prophet's own (list) conversion."""
    import json

    from prophet.models import CmdStanPyBackend
    from stanio import dump_stan_json

    from mm_assets.forecasting.prophet_fit import new_prophet

    rng = np.random.default_rng(0)
    data = {"T": 5, "S": 2, "K": 3, "tau": 0.05, "trend_indicator": 0, "sigmas": [10.0, 10.0, 10.0],
            "y": rng.random(5), "t": np.linspace(0, 1, 5), "cap": np.zeros(5), "t_change": np.array([0.2, 0.6]),
            "s_a": np.array([1.0, 1.0, 0.0]), "s_m": np.array([0.0, 0.0, 1.0]),
            "X": pd.DataFrame(rng.random((5, 3)))}
    init = {"k": 0.1, "m": 0.2, "delta": np.zeros(2), "beta": np.zeros(3), "sigma_obs": 1.0}
    theirs = CmdStanPyBackend.prepare_data(init, data)
    ours = type(new_prophet().stan_backend).prepare_data(init, data)
    assert isinstance(ours[1]["X"], np.ndarray) and isinstance(ours[1]["y"], np.ndarray)
    for a, b in zip(theirs, ours):
        assert json.loads(dump_stan_json(a)) == json.loads(dump_stan_json(b))


def test_a_prophet_refit_starts_from_the_holdout_fit_and_lands_where_a_cold_start_does(prophet_fit):
    model, train, test = prophet_fit
    full = pd.concat([train, test])
    cold = ProphetForecaster(DAILY).fit(full)
    warm = ProphetForecaster(DAILY)
    warm.start_from(model)
    assert warm._start is not None and warm._start["delta"].shape == model._model.params["delta"][0].shape
    warm.fit(full)
    assert warm._start is None  # used once
    future = test[["price", "promo"]].copy()
    future.index = future.index + pd.Timedelta(days=28)
    np.testing.assert_allclose(warm.predict(future, history=full), cold.predict(future, history=full), rtol=0.02)


@pytest.mark.parametrize("config", ["additive", "multiplicative_with_holidays"])
def test_the_fast_prophet_fits_and_forecasts_what_prophet_does(config):
    """Arrays for CmdStan and one component matrix per configuration change the speed, not the model: the
    same data give the same parameters and forecasts as Prophet's own, also for a second series whose fit and
    forecast reuse the first one's matrix."""
    from prophet import Prophet

    from mm_assets.forecasting.prophet_fit import new_prophet

    params: dict = {"uncertainty_samples": 0, "daily_seasonality": False}
    if config != "additive":
        holidays = pd.DataFrame({"holiday": "sale", "ds": pd.to_datetime(["2023-03-01", "2023-05-10"]),
                                 "lower_window": 0, "upper_window": 1})
        params.update(seasonality_mode="multiplicative", holidays=holidays)
    for seed in (3, 4):
        frame = regularize(daily_series(n=210, seed=seed), DAILY).reset_index()
        history, future = frame.iloc[:-14], frame.iloc[-14:].drop(columns="y")
        fitted = []
        for make in (Prophet, new_prophet):
            model = make(**params)
            model.add_regressor("price")
            model.add_regressor("promo", standardize=False, mode="additive")
            model.fit(history[["ds", "y", "price", "promo"]])
            fitted.append(model)
        ours, theirs = fitted[1], fitted[0]
        assert type(ours) is not Prophet and ours.train_component_cols.equals(theirs.train_component_cols)
        for name in ("k", "m", "delta", "beta"):
            np.testing.assert_allclose(ours.params[name], theirs.params[name], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(ours.predict(future)["yhat"], theirs.predict(future)["yhat"], rtol=1e-6)
