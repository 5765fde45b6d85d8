"""The sanity envelope holds for every model and every path, whatever the regressors and histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting import envelope
from mm_assets.forecasting.backtest import backtest_series
from mm_assets.forecasting.batch_linear import forecast_batch, train_linear_batch
from mm_assets.forecasting.global_training import backtest_global, train_global
from mm_assets.forecasting.models import make_model
from mm_assets.forecasting.series import SeriesConfig, regularize

CFG = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52, regressors=("price", "deal", "display"),
                   min_train_periods=12)


def adversarial_series(kind: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One weekly series built to break a model: zeros, a share that is zero until the last weeks, a price that
    jumps ×100 in the future, a target spike, missing weeks."""
    ds = pd.date_range("2020-01-06", periods=n, freq="W-MON")
    y = rng.gamma(2.0, 50.0, n)
    price = np.full(n, 0.05)
    deal = np.zeros(n)
    display = np.zeros(n)
    if kind == "zeros":
        y[: n // 2] = 0.0
    elif kind == "share_jump":
        display[-3:] = 1.0  # the first non-zero display share is in the holdout
    elif kind == "price_jump":
        price[-3:] = 5.0  # ×100
    elif kind == "price_crash":
        price[-3:] = 0.0005
    elif kind == "spike":
        y[-10] = 1e6
    elif kind == "all_zero":
        y[:] = 0.0
    elif kind == "deal_only_in_future":
        deal[-3:] = 1.0
    frame = pd.DataFrame({"ds": ds, "y": y, "price": price, "deal": deal, "display": display})
    drop = rng.random(n) < 0.1
    drop[-4:] = False
    drop[0] = False
    return frame[~drop].reset_index(drop=True)


KINDS = ["zeros", "share_jump", "price_jump", "price_crash", "spike", "all_zero", "deal_only_in_future", "plain"]


def _upper(history: pd.DataFrame) -> float:
    return float(envelope.upper_bound(envelope.recent_max(history["y"].to_numpy(float), CFG), CFG.envelope_multiple))


@pytest.mark.parametrize("model_type", ["baseline", "seasonal_naive", "linear", "ets"])
@pytest.mark.parametrize("n", [16, 60, 400])
def test_no_per_series_forecast_leaves_the_envelope(model_type, n):
    rng = np.random.default_rng(n)
    for kind in KINDS:
        frame = regularize(adversarial_series(kind, n, rng), CFG)
        train, test = frame.iloc[:-3], frame.iloc[-2:]
        model = make_model(model_type, CFG).fit(train)
        pred = model.predict(test[list(CFG.regressors)], history=train)
        assert np.isfinite(pred).all() and (pred >= 0).all(), (kind, pred)
        assert (pred <= _upper(train) + 1e-9).all(), (kind, pred, model.last_envelope_)


def test_a_forecast_outside_is_replaced_and_the_reason_recorded():
    rng = np.random.default_rng(3)
    frame = regularize(adversarial_series("price_crash", 120, rng), CFG)
    train, test = frame.iloc[:-3], frame.iloc[-2:]
    model = make_model("linear", CFG).fit(train)
    raw = model._predict(train, test[list(CFG.regressors)])
    pred = model.predict(test[list(CFG.regressors)], history=train)
    if envelope.violation(np.clip(raw, 0, None), envelope.recent_max(train["y"].to_numpy(float), CFG),
                          CFG.envelope_multiple):
        assert model.last_envelope_.startswith("envelope:")
        baseline = make_model("baseline", CFG).fit(train).predict(test[list(CFG.regressors)], history=train)
        np.testing.assert_allclose(pred, baseline)
    assert envelope.violation(np.array([np.inf]), 10.0, 3.0).startswith("envelope: forecast is not finite")
    assert envelope.violation(np.array([31.0]), 10.0, 3.0).startswith("envelope: forecast 31 > 3 x")
    assert envelope.violation(np.array([29.0]), 10.0, 3.0) is None
    assert envelope.violation(np.array([0.4]), 0.0, 3.0).startswith(  # a series without a sale in its last year
        "envelope: no sale in the series' last year of periods, or four seasons when longer (recent maximum 0), and a forecast of 0.4")
    assert envelope.violation(np.array([0.0]), 0.0, 3.0) is None


def _panel(rng, n=80):
    parts = []
    for j, kind in enumerate(KINDS):
        f = adversarial_series(kind, n + 7 * j, rng)
        parts.append(f.assign(store="S1" if j % 2 else "S2", item=f"I{j}"))
    return pd.concat(parts, ignore_index=True).sort_values(["store", "item", "ds"], ignore_index=True)


def test_vectorised_and_global_paths_stay_inside_too():
    rng = np.random.default_rng(7)
    panel = _panel(rng)
    ids = ["store", "item"]
    outcomes, _ = train_linear_batch(panel, ids, CFG)
    models = {i: o.model for i, o in outcomes.items()}
    forecasts, _ = forecast_batch(panel, ids, CFG, models)
    groups = list(panel.groupby(ids, sort=True))
    for i, fc in forecasts.items():
        history = regularize(groups[i][1], CFG)
        assert np.isfinite(fc.yhat).all() and (fc.yhat >= 0).all()
        assert (fc.yhat <= _upper(history) + 1e-9).all()
    model, g_outcomes, _ = train_global(panel, ids, CFG, {"num_boost_round": 30})
    assert model is not None and any(o.model_type == "lightgbm" for o in g_outcomes.values())
    rows = backtest_global(panel, ids, CFG, 3, {"num_boost_round": 30})
    assert len(rows) and np.isfinite(rows["forecast"]).all() and (rows["forecast"] >= 0).all()
    per_series = backtest_series(regularize(groups[0][1], CFG), CFG, ["linear", "baseline"], 3)
    assert np.isfinite(per_series["forecast"]).all()
    for (store, item), g in rows.groupby(ids):
        history = panel[(panel["store"] == store) & (panel["item"] == item)]
        assert (g["forecast"] <= CFG.envelope_multiple * history["y"].max() + 1e-6).all()


def test_recent_maximum_of_a_panel_is_each_row_s_own():
    rng = np.random.default_rng(5)
    for cfg in (SeriesConfig(frequency="D", horizon=7, season=7), SeriesConfig(frequency="W-MON", horizon=2, season=52)):
        w = envelope.window(cfg)
        y = rng.gamma(2.0, 10.0, size=(8, 3 * w))
        y[rng.random(y.shape) < 0.3] = np.nan
        length = np.array([0, 1, w - 1, w, w + 1, 2 * w, 3 * w, 3 * w])
        y[7, 2 * w :] = np.nan  # nothing observed in its window
        got = envelope.recent_max_rows(y, length, cfg)
        want = [envelope.recent_max(y[k, : length[k]], cfg) for k in range(len(length))]
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got[0]) and np.isnan(got[7])


def _corrected_to_zero(rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A weekly series shorter than the envelope's window (61 weeks, as a bayesm cheese account), and the same
    series after its source was corrected to 0 everywhere."""
    frame = adversarial_series("plain", 61, rng).assign(store="S1", item="I1")
    return frame, frame.assign(y=0.0)


def test_a_champion_fitted_before_a_correction_to_zero_is_held_to_the_corrected_history():
    rng = np.random.default_rng(11)
    before, after = _corrected_to_zero(rng)
    history = regularize(after, CFG)
    future = pd.DataFrame({c: [0.05 if c == "price" else 0.0] * 2 for c in CFG.regressors},
                          index=pd.date_range(history.index[-1] + 2 * CFG.step, periods=2, freq=CFG.step))
    for model_type in ("linear", "baseline", "ets"):
        model = make_model(model_type, CFG).fit(regularize(before, CFG))
        assert model.recent_max_ > 0 and model.recent_periods == len(regularize(before, CFG))
        # forecast from the corrected rows (as long as its fit's): they alone are the reference
        pred = model.predict(future, history=history)
        np.testing.assert_array_equal(pred, 0.0)
        if model_type == "linear":
            assert model.last_envelope_.startswith("envelope: no sale"), model.last_envelope_
        # forecast from its stored tail, shorter than its fit: the fit's year still counts
        assert model.envelope_reference(model.tail_["y"].to_numpy(float)) == model.recent_max_
    # the vectorised path: the corrected rows, the champion trained on the old ones
    outcomes, _ = train_linear_batch(before, ["store", "item"], CFG)
    forecasts, _ = forecast_batch(after, ["store", "item"], CFG, {0: outcomes[0].model})
    np.testing.assert_array_equal(forecasts[0].yhat, 0.0)
    assert forecasts[0].envelope is not None


def test_a_model_stored_before_its_fit_periods_were_recorded_reads_the_whole_window():
    model = make_model("linear", CFG).fit(regularize(adversarial_series("plain", 61, np.random.default_rng(2)), CFG))
    del model.__dict__["recent_periods_"]
    assert model.recent_periods == envelope.window(CFG)
    assert model.envelope_reference(np.zeros(61)) == model.recent_max_
