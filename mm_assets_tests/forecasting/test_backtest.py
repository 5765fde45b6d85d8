"""Tests of mm_assets.forecasting.backtest: origin placement, forecasts per origin, metrics, auto's choice."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.backtest import (
    backtest_series,
    format_pooled,
    origin_positions,
    pooled_metrics,
    select_model,
    series_metrics,
    spacing_hint,
)
from mm_assets.forecasting.series import DS, SeriesConfig, Y, regularize
from mm_assets_tests.forecasting.synthetic import daily_series, weekly_series

IDS = ["store", "item"]


# ---- origins -------------------------------------------------------------------------------------------------
def test_origins_step_by_the_horizon_and_the_newest_window_ends_at_the_last_observation():
    # 30 periods (rows 0..29), horizon 2, gap 2: newest origin row 25 scores rows 28, 29
    assert origin_positions(30, 3, horizon=2, gap=2) == [21, 23, 25]
    assert origin_positions(30, 3, horizon=5, gap=0) == [14, 19, 24]
    assert origin_positions(8, 10, horizon=2, gap=2) == [1, 3]  # too short for 10: what fits


def test_origins_every_period_overlap_their_windows_and_keep_the_newest():
    # horizon 13 on 40 periods: windows a horizon apart leave the third origin no training row; a period apart, 3 fit
    assert origin_positions(40, 3, horizon=13, gap=0) == [13, 26]
    assert origin_positions(40, 3, horizon=13, gap=0, every=1) == [24, 25, 26]
    assert origin_positions(40, 3, horizon=13, gap=1, every=2) == [21, 23, 25]
    assert origin_positions(40, 3, horizon=13, every=None) == origin_positions(40, 3, horizon=13, every=13)


def test_origins_far_back_that_went_to_the_baseline_suggest_origins_a_period_apart():
    origins = pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01"])
    rows = pd.DataFrame({"store": "S1", "item": ["A"] * 3 + ["B"] * 3, "origin": list(origins) * 2,
                         "model_type": "lightgbm", "used_model": ["baseline", "lightgbm", "lightgbm"] * 2})
    hint = spacing_hint(rows, ["store", "item"], every=13)
    assert hint is not None and "33% of the models' points" in hint and "--every 1" in hint
    assert spacing_hint(rows, ["store", "item"], every=1) is None  # already a period apart
    newest_only = rows.assign(used_model=["lightgbm", "lightgbm", "baseline"] * 2)  # e.g. the envelope, not history
    assert spacing_hint(newest_only, ["store", "item"], every=13) is None
    baselines = rows.assign(model_type="baseline")  # the baseline itself says nothing of the models
    assert spacing_hint(baselines, ["store", "item"], every=13) is None


def test_a_backtest_with_origins_every_period_scores_each_period_from_several_origins():
    rows = weekly_series(n=140, seed=1)
    cfg = SeriesConfig(frequency="W", horizon=4, season=52, gap=0, regressors=("price",), min_train_periods=60)
    frame = regularize(rows, cfg)
    out = backtest_series(frame, cfg, ["linear"], origins=6, every=1)
    origins = sorted(out["origin"].unique())
    assert len(origins) == 6 and all(b - a == cfg.step for a, b in zip(origins, origins[1:]))
    assert origins[-1] + cfg.horizon * cfg.step == frame.index[-1]
    # the newest period is scored by the newest origin only, the one before it by two: overlapping windows
    per_period = out.groupby("ds")["origin"].nunique()
    assert per_period.iloc[-1] == 1 and per_period.iloc[-2] == 2 and per_period.max() == cfg.horizon
    np.testing.assert_allclose(out["actual"].to_numpy(), frame[Y].reindex(out["ds"]).to_numpy())


@pytest.mark.parametrize("weekly", [False, True])
def test_every_origin_forecasts_gap_plus_one_to_gap_plus_horizon(weekly):
    if weekly:
        rows = weekly_series(n=140, seed=1)
        cfg = SeriesConfig(frequency="W", horizon=2, season=52, gap=2, regressors=("price",), min_train_periods=60)
    else:
        rows = daily_series(n=200, seed=1)
        cfg = SeriesConfig(frequency="D", horizon=7, season=7, gap=3, regressors=("price", "promo"),
                           min_train_periods=40)
    frame = regularize(rows, cfg)
    out = backtest_series(frame, cfg, ["linear", "seasonal_naive"], origins=4)
    assert len(out) == 2 * 4 * cfg.horizon
    assert set(out["step"]) == set(range(cfg.gap + 1, cfg.gap + cfg.horizon + 1))
    assert ((out["ds"] - out["origin"]) == out["step"] * cfg.step).all()
    origins = sorted(out["origin"].unique())
    assert all(b - a == cfg.horizon * cfg.step for a, b in zip(origins, origins[1:]))
    assert origins[-1] + (cfg.gap + cfg.horizon) * cfg.step == frame.index[-1]
    # the actuals are the data's, the forecasts never saw them
    truth = frame[Y].reindex(out["ds"]).to_numpy()
    np.testing.assert_allclose(out["actual"].to_numpy(), truth)
    assert (out["used_model"] == out["model_type"]).all()
    snaive = out[out["model_type"] == "seasonal_naive"]
    np.testing.assert_allclose(snaive["forecast"], snaive["snaive"])


def test_short_training_history_falls_back_to_the_baseline_at_that_origin():
    rows = daily_series(n=80, seed=2)
    cfg = SeriesConfig(frequency="D", horizon=7, season=7, regressors=("price", "promo"), min_train_periods=60)
    out = backtest_series(regularize(rows, cfg), cfg, ["linear"], origins=3)
    early = out[out["origin"] == out["origin"].min()]  # trained on 59 rows < 60
    late = out[out["origin"] == out["origin"].max()]
    assert (early["used_model"] == "baseline").all() and early["note"].str.contains("min_train").all()
    assert (late["used_model"] == "linear").all()


# ---- metrics ---------------------------------------------------------------------------------------------------
def _rows(actual, forecast, naive=None, snaive=None, scale=1.0, model="m", item="I1"):
    n = len(actual)
    return pd.DataFrame({
        "store": "S1", "item": item, "model_type": model, "used_model": model,
        "origin": pd.Timestamp("2024-01-01"), "ds": pd.date_range("2024-01-02", periods=n, freq="D"),
        "step": np.arange(1, n + 1), "actual": np.asarray(actual, float), "forecast": np.asarray(forecast, float),
        "naive": np.asarray(naive if naive is not None else actual, float),
        "snaive": np.asarray(snaive if snaive is not None else actual, float), "mase_scale": scale, "note": None,
    })


def test_metrics_by_hand():
    # errors (forecast - actual): -2, +2, +1, 0; the zero actual is left out of MAPE only
    rows = _rows([10, 20, 0, 10], [8, 22, 1, 10], naive=[12, 12, 12, 12], snaive=[10, 18, 0, 11], scale=2.0)
    m = series_metrics(rows, IDS).iloc[0]
    assert m["n_points"] == 4
    assert m["mape"] == pytest.approx((0.2 + 0.1 + 0.0) / 3)
    assert m["wape"] == pytest.approx(5 / 40)
    assert m["bias"] == pytest.approx(1 / 40)  # over-forecast: positive
    assert m["mase"] == pytest.approx((5 / 4) / 2.0)
    assert m["mae"] == pytest.approx(1.25) and m["naive_mae"] == pytest.approx(6.0)
    assert m["snaive_mae"] == pytest.approx(0.75)
    assert bool(m["beats_naive"]) and not bool(m["beats_snaive"])
    low = series_metrics(_rows([10, 10], [5, 5]), IDS).iloc[0]
    assert low["bias"] == pytest.approx(-0.5)  # under-forecast: negative


def test_mape_can_favour_a_low_forecast_that_wape_and_bias_catch():
    actual = [2, 100]
    honest = _rows(actual, [4, 100], model="honest")  # APE 100 %, 0 %
    low = _rows(actual, [1, 60], model="low")  # APE 50 %, 40 %
    pooled = pooled_metrics(pd.concat([honest, low]), IDS).set_index("model_type")
    assert pooled.loc["low", "mape"] == pytest.approx(0.45) and pooled.loc["honest", "mape"] == pytest.approx(0.5)
    assert pooled.loc["low", "mape"] < pooled.loc["honest", "mape"]  # MAPE prefers the low forecast ...
    assert pooled.loc["low", "wape"] == pytest.approx(41 / 102) and pooled.loc["honest", "wape"] == pytest.approx(2 / 102)
    assert pooled.loc["low", "wape"] > pooled.loc["honest", "wape"]  # ... WAPE does not, and bias says why
    assert pooled.loc["low", "bias"] == pytest.approx(-41 / 102)
    assert pooled.loc["honest", "bias"] == pytest.approx(2 / 102)


def test_pooled_metrics_pool_points_and_count_series_that_beat_the_baselines():
    a = _rows([10, 10], [11, 9], naive=[20, 20], snaive=[10, 10], item="I1")  # beats naive, not snaive
    b = _rows([100, 0], [90, 0], naive=[50, 50], snaive=[70, 0], item="I2")  # beats both
    c = _rows([0, 0], [1, 1], naive=[0, 0], snaive=[0, 0], item="I3")  # beats neither; all-zero actuals
    c["used_model"] = ["baseline", "m"]  # one point served by the baseline (too short, or outside the envelope)
    pooled = pooled_metrics(pd.concat([a, b, c]), IDS).set_index("model_type")
    assert pooled.loc["m", "by_model_share"] == pytest.approx(5 / 6)
    assert math.isnan(pooled.loc["naive", "by_model_share"])
    # auto's points name the candidate each series chose: all but the baseline's are a model's (it said 0 %)
    chosen = pd.concat([a, b, c]).assign(model_type="auto", used_model=["linear", "ets", "ets", "ets", "baseline",
                                                                        "baseline"])
    assert pooled_metrics(chosen, IDS).set_index("model_type").loc["auto", "by_model_share"] == pytest.approx(4 / 6)
    assert "by model" in format_pooled(pooled.reset_index()) and "83.3%" in format_pooled(pooled.reset_index())
    m = pooled.loc["m"]
    assert m["n_points"] == 6 and m["series"] == 3
    total = 10 + 10 + 100 + 0 + 0 + 0
    assert m["wape"] == pytest.approx((2 + 10 + 2) / total)
    assert m["bias"] == pytest.approx((0 - 10 + 2) / total)
    assert m["mape"] == pytest.approx((0.1 + 0.1 + 0.1) / 3)
    assert m["beat_naive_share"] == pytest.approx(2 / 3) and m["beat_snaive_share"] == pytest.approx(1 / 3)
    assert pooled.loc["naive", "wape"] == pytest.approx((10 + 10 + 50 + 50) / total)
    assert pooled.loc["seasonal_naive", "wape"] == pytest.approx(30 / total)
    # each baseline judged against the other (I1 and I2: seasonal naive is closer; I3: a tie), not against itself
    assert pooled.loc["naive", "beat_snaive_share"] == 0.0 and math.isnan(pooled.loc["naive", "beat_naive_share"])
    assert pooled.loc["seasonal_naive", "beat_naive_share"] == pytest.approx(2 / 3)
    assert math.isnan(pooled.loc["seasonal_naive", "beat_snaive_share"])
    # every pooled row carries its sums (the warehouse's backtest_metrics pools partitions with them), the two
    # baselines' too: their WAPE was not computable from the warehouse
    for model in ("m", "naive", "seasonal_naive"):
        row = pooled.loc[model]
        assert row["sum_actual"] == total and row["sum_abs_error"] / row["sum_actual"] == pytest.approx(row["wape"])
        assert row["sum_error"] / row["sum_actual"] == pytest.approx(row["bias"])
    per = series_metrics(pd.concat([a, b, c]), IDS).set_index("item")
    assert math.isnan(per.loc["I3", "wape"]) and math.isnan(per.loc["I3", "mape"])


# ---- auto ------------------------------------------------------------------------------------------------------
def test_select_model_picks_the_lowest_backtest_error_and_says_why():
    rows = daily_series(n=240, seed=4)  # price and promotions drive it: the regression model should win
    cfg = SeriesConfig(frequency="D", horizon=14, season=7, regressors=("price", "promo"), min_train_periods=60,
                       auto_candidates=("seasonal_naive", "linear", "ets"), auto_origins=3)
    choice = select_model(regularize(rows, cfg), cfg)
    assert choice.model_type == "linear"
    assert set(choice.scores) == {"seasonal_naive", "linear", "ets"}
    assert choice.scores["linear"] == min(choice.scores.values())
    assert choice.reason.startswith("auto: backtest WAPE linear ") and "(3 origins)" in choice.reason


def test_select_model_breaks_ties_towards_the_simpler_model():
    frame = pd.DataFrame({Y: np.full(60, 4.0)}, index=pd.date_range("2024-01-01", periods=60, freq="D", name=DS))
    cfg = SeriesConfig(frequency="D", horizon=7, season=7, min_train_periods=20)
    choice = select_model(frame, cfg, candidates=("ets", "seasonal_naive"), origins=2)
    assert choice.scores == pytest.approx({"seasonal_naive": 0.0, "ets": 0.0})  # the log fit: 1e-16 off
    assert choice.model_type == "seasonal_naive"


# ---- each model type judged with its own min_train_periods -------------------------------------------------------
def _short_weekly_settings(model_type: str):
    from mm_assets.settings import load_settings

    return load_settings(path=None, environ={"MM_ASSETS__FREQUENCY": "W", "MM_ASSETS__HORIZON": "3",
                                             "MM_ASSETS__GAP": "0", "MM_ASSETS__SEASON_LENGTH": "12",
                                             "MM_ASSETS__MODEL__TYPE": model_type,
                                             "MM_ASSETS__COLUMNS__REGRESSORS": "[price]"})


def test_a_backtest_of_another_model_type_uses_that_types_min_train_periods(tmp_path, monkeypatch):
    """27 periods (a short history, e.g. two years of months): lightgbm's default minimum is 4, linear's
    horizon + gap + 30 = 33. Configured lightgbm, `mm-assets backtest --model linear` must serve every origin by the
    baseline, as training with model.type linear would, and not fit linear on 4+ periods."""
    monkeypatch.chdir(tmp_path)  # no ./mm_assets.yaml may leak into the settings
    settings = _short_weekly_settings("lightgbm")
    assert settings.min_train_periods == 4 and settings.min_train_periods_for("linear") == 33
    cfg = SeriesConfig.from_settings(settings)
    assert cfg.min_train_periods == 4 and cfg.for_model("linear").min_train_periods == 33
    assert cfg.for_model("lightgbm") is cfg
    frame = regularize(weekly_series(n=27, seed=3), cfg)
    out = backtest_series(frame, cfg, ["linear"], origins=2, configured_type="lightgbm")
    assert len(out) == 2 * 3
    assert (out["used_model"] == "baseline").all()
    assert out["note"].str.contains("min_train_periods 33").all()
    # an explicit model.min_train_periods applies to every model type
    ten = settings.model_copy(update={"model": settings.model.model_copy(update={"min_train_periods": 10})})
    explicit = SeriesConfig.from_settings(ten)
    assert ten.min_train_periods_for("linear") == 10 == explicit.for_model("linear").min_train_periods
    out = backtest_series(frame, explicit, ["linear"], origins=2, configured_type="lightgbm")
    assert (out["used_model"] == "linear").all()


def test_a_global_backtest_on_a_per_series_configuration_uses_the_global_minimum(tmp_path, monkeypatch):
    """Configured linear (minimum 33), `--model lightgbm` on 27-period series is judged with lightgbm's own 4."""
    from mm_assets.forecasting.global_training import backtest_global

    from .synthetic import retail_panel

    monkeypatch.chdir(tmp_path)
    settings = _short_weekly_settings("linear")
    cfg = SeriesConfig.from_settings(settings)
    assert cfg.min_train_periods == 33 and cfg.for_model("lightgbm").min_train_periods == 4
    cfg = replace(cfg, frequency="W-MON", regressors=("price", "deal", "display"))
    panel = retail_panel(stores=2, items=3, weeks=27, seed=4, missing=0.0)
    rows = backtest_global(panel, ["store", "item"], cfg, 2, {"num_boost_round": 20})
    assert len(rows) == 6 * 2 * 3
    assert (rows["used_model"] == "lightgbm").all()


def test_the_reasons_points_went_to_the_baseline_are_counted_per_model_most_common_first():
    from mm_assets.forecasting.backtest import baseline_reasons

    rows = pd.DataFrame({
        "model_type": ["lightgbm"] * 6 + ["baseline"] * 2 + ["linear"],
        "used_model": ["baseline"] * 4 + ["lightgbm"] * 2 + ["baseline"] * 3,
        "note": ["fallback: 9 training periods < min_train_periods 30",
                 "fallback: 22 training periods < min_train_periods 30",
                 "fallback: 16 training periods < min_train_periods 30",
                 "the model failed: 2 rows (a long explanation)", None, None, None, None, None]})
    lines = baseline_reasons(rows)
    assert lines == [
        "  lightgbm: 4 of 6 points by its baseline: fallback: 9 training periods < min_train_periods 30, or alike "
        "(3); the model failed: 2 rows (1)",
        "  linear: 1 of 1 points by its baseline: no reason recorded (1)"]
    assert baseline_reasons(rows[rows["used_model"] != "baseline"]) == []
    # counted over the points with an actual, as the pooled "by model" share is: one fallback's actual is missing
    scored = rows.assign(actual=[1.0, None, 1.0, 1.0, None, 1.0, 1.0, 1.0, 1.0], forecast=1.0)
    assert baseline_reasons(scored)[0].startswith("  lightgbm: 3 of 4 points by its baseline")
    assert (pooled_metrics(scored.assign(origin="2025-01-01", ds="2025-01-08", naive=1.0, snaive=1.0,
                                         mase_scale=1.0, series="A"), ["series"])
            .set_index("model_type").loc["lightgbm", "by_model_share"]) == 0.25


def test_a_seasonal_naive_row_that_is_naive_is_said_to_be():
    from mm_assets.forecasting.backtest import seasonal_naive_note

    def pooled(snaive_wape):
        return pd.DataFrame({"model_type": ["linear", "naive", "seasonal_naive"], "mape": [0.3, 0.4, 0.4],
                             "wape": [0.3, 0.4, snaive_wape], "bias": [0.0, -0.1, -0.1], "n_points": [90, 90, 90]})

    assert seasonal_naive_note(pooled(0.4), 52) == (
        "note: seasonal_naive is naive here: no series has a season (52 periods) of history before its origins, so "
        "it repeated the last value")
    assert seasonal_naive_note(pooled(0.41), 52) is None  # one series with a season is enough to differ
    assert seasonal_naive_note(pooled(0.4).iloc[:2], 52) is None
    assert seasonal_naive_note(pd.DataFrame(), 52) is None
