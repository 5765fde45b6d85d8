"""Tests of mm_assets.forecasting.training: train_series (holdout, fallback, refit) and forecast_from_model."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.metrics import METRIC_NAMES
from mm_assets.forecasting.models import LinearForecaster, make_model
from mm_assets.forecasting.series import SeriesConfig, regularize
from mm_assets.forecasting.training import (
    STATUS_FALLBACK,
    STATUS_TRAINED,
    forecast_from_model,
    train_series,
)
from mm_assets_tests.forecasting.synthetic import daily_series, wape

CFG = SeriesConfig(frequency="D", horizon=14, season=7, regressors=("price", "promo"), min_train_periods=28)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    data = daily_series(n=200, seed=21)
    return data.drop(index=[50, 51, 120]).reset_index(drop=True)  # three closed days


@pytest.fixture(scope="module")
def outcome(rows):
    return train_series(rows, CFG, "linear")


# ---- train_series --------------------------------------------------------------------------------------


def test_train_series_trains_and_reports_holdout_metrics(outcome, rows):
    assert outcome.status == STATUS_TRAINED
    assert outcome.reason is None
    assert outcome.model_type == "linear"
    assert isinstance(outcome.model, LinearForecaster)
    assert set(outcome.metrics) == set(METRIC_NAMES) | {"baseline_accuracy", "baseline_wape", "envelope_replaced",
                                                        "holdout_points", "holdout_periods", "holdout_fingerprint",
                                                        "intermittent", "fit_recent_max"}
    assert outcome.metrics["fit_recent_max"] == rows["y"].iloc[:-CFG.horizon - CFG.gap].max()  # under a year of days
    assert outcome.metrics["holdout_points"] == outcome.metrics["holdout_periods"] == CFG.horizon  # no day missing
    assert outcome.metrics["intermittent"] == 0.0
    for name in ("wape", "accuracy", "mape", "smape", "rmse", "mase", "rel_mae_baseline", "rel_rmse_baseline",
                 "baseline_wape"):
        assert math.isfinite(outcome.metrics[name]), name
    assert outcome.metrics["accuracy"] == pytest.approx(1 - outcome.metrics["wape"])
    assert outcome.metrics["baseline_accuracy"] == pytest.approx(1 - outcome.metrics["baseline_wape"])
    assert outcome.metrics["wape"] < 0.1
    assert outcome.metrics["rel_mae_baseline"] < 1.0  # beats the baseline on this structured series
    assert all(isinstance(v, float) for v in outcome.metrics.values())
    assert outcome.n_obs == len(rows) == 197
    assert outcome.data_start == pd.Timestamp(rows["ds"].min())
    assert outcome.data_end == pd.Timestamp(rows["ds"].max())
    assert outcome.fit_seconds > 0


def test_holdout_metrics_are_those_of_the_last_horizon(outcome, rows):
    frame = regularize(rows, CFG)
    train, test = frame.iloc[:-14], frame.iloc[-14:]
    # seasonal-naive baseline by hand: the last week of the training data, repeated
    baseline = np.tile(train["y"].to_numpy()[-7:], 2)
    assert outcome.metrics["baseline_wape"] == pytest.approx(wape(test["y"], baseline))
    held_out = make_model("linear", CFG).fit(train).predict(test[["price", "promo"]])
    assert outcome.metrics["wape"] == pytest.approx(wape(test["y"], held_out))


def test_served_model_is_refit_on_all_data(outcome, rows):
    assert outcome.model.last_ds == pd.Timestamp(rows["ds"].max())


def test_trained_model_pickles(outcome):
    clone = pickle.loads(pickle.dumps(outcome.model))
    a, info_a = forecast_from_model(outcome.model, CFG)
    b, info_b = forecast_from_model(clone, CFG)
    pd.testing.assert_frame_equal(a, b)
    assert info_a == info_b


def test_short_series_falls_back_to_the_baseline():
    rows = daily_series(n=30, seed=2)  # 30 < min_train_periods + horizon = 42
    out = train_series(rows, CFG, "linear", params={"alpha": 3.0})
    assert out.status == STATUS_FALLBACK
    assert out.model_type == "baseline"
    assert isinstance(out.model, Baseline) and out.reason.startswith("history of 30 periods")
    assert "baseline:" in out.reason  # which simple method serves it, and why
    assert "30 periods" in out.reason
    assert "min_train_periods + horizon = 42" in out.reason
    # the holdout metrics are the baseline's own
    assert math.isfinite(out.metrics["wape"])
    assert out.metrics["wape"] == pytest.approx(out.metrics["baseline_wape"])
    assert out.metrics["rel_mae_baseline"] == pytest.approx(1.0)


def test_fallback_boundary_is_min_train_periods_plus_horizon():
    just_enough = train_series(daily_series(n=42, seed=4), CFG, "linear")
    assert just_enough.status == STATUS_TRAINED
    assert just_enough.model_type == "linear"
    one_short = train_series(daily_series(n=41, seed=4), CFG, "linear")
    assert one_short.status == STATUS_FALLBACK


def test_requested_seasonal_naive_is_not_a_fallback():
    out = train_series(daily_series(n=30, seed=2), CFG, "seasonal_naive")
    assert out.status == STATUS_TRAINED
    assert out.model_type == "seasonal_naive"


def test_too_short_for_a_holdout_gives_nan_metrics_but_a_model():
    out = train_series(daily_series(n=10, seed=2), CFG, "linear")
    assert out.status == STATUS_FALLBACK
    assert set(out.metrics) == set(METRIC_NAMES) | {"baseline_accuracy", "baseline_wape", "envelope_replaced"}
    assert all(math.isnan(v) for k, v in out.metrics.items() if k != "envelope_replaced")
    fc, _ = forecast_from_model(out.model, CFG)
    assert len(fc) == 14


def test_series_without_observed_target_raises():
    rows = daily_series(n=60, seed=2).assign(y=np.nan)
    with pytest.raises(ValueError, match="no observed target"):
        train_series(rows, CFG, "linear")


# ---- forecast_from_model -------------------------------------------------------------------------------


def test_forecast_from_stored_tail(outcome, rows):
    fc, info = forecast_from_model(outcome.model, CFG)
    last = pd.Timestamp(rows["ds"].max())
    assert info["origin"] == last
    assert info["planned_periods"] == 0
    assert list(fc.columns) == ["ds", "yhat"]
    assert list(fc["ds"]) == list(pd.date_range(last + pd.Timedelta(days=1), periods=14, freq="D"))
    assert (fc["yhat"] >= 0).all() and np.isfinite(fc["yhat"]).all()
    short, _ = forecast_from_model(outcome.model, CFG, horizon=5)
    assert len(short) == 5
    np.testing.assert_allclose(short["yhat"], fc["yhat"].iloc[:5])


def test_fresher_rows_move_the_origin():
    data = daily_series(n=180, seed=8)
    old = train_series(data.iloc[:150], CFG, "seasonal_naive")
    assert old.model.last_ds == data["ds"].iloc[149]
    fresher = data.iloc[:170]
    fc, info = forecast_from_model(old.model, CFG, rows=fresher)
    assert info["origin"] == data["ds"].iloc[169]
    assert fc["ds"].iloc[0] == data["ds"].iloc[170]
    # the forecast comes from the fresher history: its last week, repeated
    np.testing.assert_allclose(fc["yhat"], np.tile(fresher["y"].to_numpy()[-7:], 2))


def test_fresher_rows_feed_the_linear_model():
    data = daily_series(n=200, seed=9)
    model = train_series(data.iloc[:170], CFG, "linear").model
    fc, info = forecast_from_model(model, CFG, rows=data.iloc[:186])
    assert info["origin"] == data["ds"].iloc[185]
    assert len(fc) == 14
    assert wape(data["y"].iloc[186:200], fc["yhat"]) < 0.15


def test_planned_rows_are_used_and_counted(outcome, rows):
    last = pd.Timestamp(rows["ds"].max())
    last_price = float(rows["price"].iloc[-1])
    plan_dates = pd.date_range(last + pd.Timedelta(days=1), periods=5, freq="D")
    plan = pd.DataFrame({"ds": plan_dates, "y": np.nan, "price": last_price * 0.7, "promo": 0})
    with_plan = pd.concat([rows, plan], ignore_index=True)

    base, base_info = forecast_from_model(outcome.model, CFG, rows=rows)
    cut, info = forecast_from_model(outcome.model, CFG, rows=with_plan)
    assert base_info["planned_periods"] == 0
    assert info["planned_periods"] == 5
    assert info["origin"] == last  # planned rows do not move the origin
    # a 30% price cut raises the planned periods' forecast and leaves the others unchanged
    assert (cut["yhat"].iloc[:5].to_numpy() > base["yhat"].iloc[:5].to_numpy()).all()
    np.testing.assert_allclose(cut["yhat"].iloc[5:], base["yhat"].iloc[5:])


def test_explicit_planned_frame_is_counted(outcome, rows):
    last = pd.Timestamp(rows["ds"].max())
    planned = pd.DataFrame(
        {"promo": [1.0, 1.0, 1.0]},
        index=pd.DatetimeIndex(pd.date_range(last + pd.Timedelta(days=2), periods=3, freq="D"), name="ds"),
    )
    base, _ = forecast_from_model(outcome.model, CFG)
    promo, info = forecast_from_model(outcome.model, CFG, planned=planned)
    assert info["planned_periods"] == 3
    assert (promo["yhat"].iloc[1:4].to_numpy() > base["yhat"].iloc[1:4].to_numpy()).all()
    np.testing.assert_allclose(promo["yhat"].iloc[[0, 4, 5]], base["yhat"].iloc[[0, 4, 5]])


# ---- lead time (gap) and auto ------------------------------------------------------------------------------
def test_gap_holds_out_the_last_horizon_and_trains_up_to_gap_before_it(rows):
    cfg = SeriesConfig(frequency="D", horizon=14, season=7, regressors=("price", "promo"), min_train_periods=28,
                       gap=5)
    out = train_series(rows, cfg, "linear")
    frame = regularize(rows, cfg)
    expected = make_model("linear", cfg).fit(frame.iloc[: -(14 + 5)]).predict(frame.iloc[-14:],
                                                                               history=frame.iloc[: -(14 + 5)])
    np.testing.assert_allclose(out.extra["holdout"]["forecast"], np.round(expected, 4), atol=1e-4)
    fc, info = forecast_from_model(out.model, cfg, rows=rows)
    assert fc["ds"].iloc[0] == info["origin"] + pd.Timedelta(days=6) and len(fc) == 14


def test_gap_places_weekly_forecasts_after_the_lead_time():
    from mm_assets_tests.forecasting.synthetic import weekly_series

    cfg = SeriesConfig(frequency="W", horizon=4, season=52, regressors=("price",), min_train_periods=60, gap=2)
    weekly = weekly_series(n=140, seed=3)
    out = train_series(weekly, cfg, "ets")
    assert out.status == STATUS_TRAINED and out.model_type == "ets"
    fc, info = forecast_from_model(out.model, cfg, rows=weekly)
    assert list(fc["ds"]) == list(pd.date_range(info["origin"] + pd.Timedelta(weeks=3), periods=4, freq="7D"))


def test_auto_records_its_choice_made_before_the_holdout(rows, monkeypatch):
    from mm_assets.forecasting import training as training_module

    cfg = SeriesConfig(frequency="D", horizon=14, season=7, regressors=("price", "promo"), min_train_periods=28,
                       gap=2, auto_candidates=("seasonal_naive", "linear", "ets"), auto_origins=2)
    seen = []
    real = training_module.select_model

    def spy(frame, cfg, **kwargs):
        seen.append(frame.index[-1])
        return real(frame, cfg, **kwargs)

    monkeypatch.setattr(training_module, "select_model", spy)
    out = train_series(rows, cfg, "auto", {"linear": {"alpha": 0.5}})
    frame = regularize(rows, cfg)
    assert seen == [frame.index[-(14 + 2) - 1]]  # the choice never saw the holdout (nor the gap before it)
    assert out.model_type == "linear" and out.model.name == "linear" and out.model.alpha == 0.5
    assert out.status == STATUS_TRAINED
    assert out.reason.startswith("auto: backtest WAPE linear ")
    assert {"auto_wape_linear", "auto_wape_ets", "auto_wape_seasonal_naive"} <= set(out.metrics)
    assert out.metrics["auto_wape_linear"] <= out.metrics["auto_wape_ets"]
    assert not math.isnan(out.metrics["accuracy"])  # the gate judges the chosen model on the holdout
