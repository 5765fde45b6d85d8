"""The ridge model: one solver for one series and many, its strength chosen per series, regressors by kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from mm_assets.forecasting.linear import LinearForecaster, fit_ridge
from mm_assets.forecasting.series import SeriesConfig, regularize

from .synthetic import retail_panel

WEEKLY = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52, regressors=("price", "deal", "display"),
                      min_train_periods=20)


def test_fixed_strength_equals_scikit_learn_ridge_on_standardised_columns():
    rng = np.random.default_rng(0)
    K, p, T = 3, 5, 60
    X = rng.normal(size=(K, p, T))
    target = rng.normal(size=(K, T))
    usable = rng.random((K, T)) > 0.2
    fit = fit_ridge(X.copy(), target, usable, alpha=2.5)
    for k in range(K):
        rows = X[k][:, usable[k]].T
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        ref = Ridge(alpha=2.5, solver="cholesky").fit((rows - mean) / std, target[k, usable[k]])
        np.testing.assert_allclose(fit.coef[k], ref.coef_, rtol=1e-8, atol=1e-10)
        assert fit.intercept[k] == pytest.approx(ref.intercept_)


def test_generalised_cross_validation_shrinks_noise_more_than_signal():
    rng = np.random.default_rng(1)
    K, p, T = 2, 8, 80
    X = rng.normal(size=(K, p, T))
    usable = np.ones((K, T), dtype=bool)
    signal = X[0, 0] * 3.0 + rng.normal(0, 0.1, T)  # series 0: one strong feature
    noise = rng.normal(0, 1.0, T)  # series 1: nothing to learn
    fit = fit_ridge(X.copy(), np.stack([signal, noise]), usable, alpha=None)
    assert fit.alpha[1] > fit.alpha[0]  # per series: the noise series is shrunk harder
    assert abs(fit.coef[0, 0]) > 2.5


def _series(kinds_case: str) -> pd.DataFrame:
    frame = retail_panel(stores=1, items=1, weeks=120, seed=3)
    frame = frame.drop(columns=["store", "item"])
    if kinds_case == "share_first_seen_late":
        frame["display"] = 0.0
        frame.loc[frame.index[-2:], "display"] = 0.9
    return frame


def test_each_regressor_kind_enters_in_its_own_form():
    frame = regularize(_series("plain"), WEEKLY)
    model = LinearForecaster(WEEKLY).fit(frame)
    assert model.kinds_ == {"price": "positive", "deal": "flag", "display": "share"}
    assert {"log_price", "rel_price", "deal", "display"} <= set(model.columns_)
    assert "log_display" not in model.columns_  # a share with zeros is never logged
    assert model.binary_ == ("deal", "display")  # no plan: no deal, no display
    # a price per ounce (below 1) is price-like: its elasticity is learnt (the data's is -2.5)
    assert model.coefficients()["log_price"] < 0


def test_a_share_first_seen_in_the_forecast_does_not_explode():
    frame = regularize(_series("share_first_seen_late"), WEEKLY)
    train, test = frame.iloc[:-3], frame.iloc[-2:]
    model = LinearForecaster(WEEKLY).fit(train)
    assert model.kinds_["display"] == "flag"  # only zeros in training
    pred = model.predict(test[list(WEEKLY.regressors)], history=train)
    assert np.isfinite(pred).all() and pred.max() < 3 * train["y"].max()


def test_recent_level_lags_reach_the_newest_period_the_lead_time_allows():
    model = LinearForecaster(WEEKLY).fit(regularize(_series("plain"), WEEKLY))
    assert model.reach == 3
    assert {"lag_recent", "level_4", "level_13", "level_52", "lag_season"} <= set(model.columns_)
    daily = LinearForecaster(SeriesConfig(frequency="D", horizon=7, season=7))
    assert daily.seasonal_lag == 364  # a year back for daily data (weekdays line up), not a week


@pytest.mark.parametrize("seed", range(6))
def test_planned_rows_forecast_what_the_full_design_forecasts(seed):
    """The online what-if path writes only the regressor columns of rows built once; under any plan (price cuts,
    deals, shares, NaN carried forward, holes in the history) it forecasts exactly what ``predict_arrays`` does."""
    rng = np.random.default_rng(seed)
    frame = regularize(_series("plain"), WEEKLY)
    if seed % 2:  # holes in the history's target and price
        frame.loc[frame.sample(frac=0.1, random_state=seed).index, ["y", "price"]] = np.nan
    model = LinearForecaster(WEEKLY).fit(frame.iloc[:-10])
    tail = frame.iloc[-40:]
    y_hist = tail["y"].to_numpy(dtype=float)
    regs_hist = {c: tail[c].to_numpy(dtype=float) for c in WEEKLY.regressors}
    start = float((tail.index[0] - pd.Timestamp("1970-01-01")).days)
    steps = WEEKLY.horizon
    default = {"price": np.full(steps, 1.0), "deal": np.zeros(steps), "display": np.zeros(steps)}
    rows = model.planned_rows(y_hist, regs_hist, start, default, WEEKLY.gap, steps)
    for _ in range(20):
        plan = {"price": rng.uniform(0.2, 3.0, steps), "deal": rng.integers(0, 2, steps).astype(float),
                "display": rng.uniform(0, 1, steps)}
        plan["price"][rng.random(steps) < 0.3] = np.nan  # carried forward from the last known price
        for h in range(1, steps + 1):
            expected = model.predict_arrays(y_hist, regs_hist, start, {c: v[:h] for c, v in plan.items()},
                                            WEEKLY.gap, h)
            np.testing.assert_allclose(rows.predict(plan, h), expected, rtol=1e-12)


def test_a_regressor_without_any_value_does_not_fail_the_fit():
    """A regressor NULL in every row (a join that found nothing): the fit learns from the other columns, one
    series or many, where before no row was usable and every series failed ("too few usable rows")."""
    from mm_assets.forecasting.batch_linear import train_linear_batch

    cfg = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52,
                       regressors=("price", "deal", "display", "weather"), min_train_periods=20)
    frame = regularize(_series("plain"), WEEKLY).assign(weather=np.nan)
    train, test = frame.iloc[:-3], frame.iloc[-2:]
    model = LinearForecaster(cfg).fit(train)
    pred = model.predict(test[list(cfg.regressors)], history=train)
    assert np.isfinite(pred).all() and model.coefficients()["log_price"] < 0
    panel = retail_panel(stores=1, items=3, weeks=110, seed=5).assign(weather=np.nan)
    outcomes, _ = train_linear_batch(panel, ["store", "item"], cfg)[:2]
    assert {o.status for o in outcomes.values()} == {"trained"}


def test_a_price_slip_in_the_newest_week_is_no_price_to_the_forecast():
    """A price typed x1000 in the newest week of the history (a row of the fit, and a thirteenth of the reference
    price the forecast periods' relative price is measured against): the forecast stays within 5 % of the one
    without it (the global model's monotone price response did not: its own test)."""
    frame = regularize(_series("plain"), WEEKLY)
    train, test = frame.iloc[:-3], frame.iloc[-2:]
    slipped = train.copy()
    slipped.loc[slipped.index[-1], "price"] *= 1000
    future = test[list(WEEKLY.regressors)]
    clean = LinearForecaster(WEEKLY).fit(train).predict(future, history=train)
    moved = LinearForecaster(WEEKLY).fit(slipped).predict(future, history=slipped)
    np.testing.assert_allclose(moved, clean, rtol=0.05)
