"""Tests of mm_assets.forecasting.metrics on hand-computed examples, and of its batch forms against them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mm_assets.forecasting.metrics import (
    FINGERPRINT,
    FINGERPRINT_STEP,
    METRIC_NAMES,
    forecast_metrics,
    forecast_metrics_rows,
    holdout_metrics_rows,
    metrics_json,
    seasonal_naive_scale,
    seasonal_naive_scales,
)

Y_TRUE = np.array([10.0, 0.0, 5.0, 5.0])
Y_PRED = np.array([8.0, 1.0, 5.0, 7.0])
# |err| = [2, 1, 0, 2]: sum 5, mean 1.25; sum|y| = 20
Y_TRAIN = np.array([1.0, 2.0, 3.0, 5.0])  # season 2: |3-1|, |5-2| = 2, 3 -> scale 2.5
Y_BASE = np.array([10.0, 2.0, 5.0, 5.0])  # |err| = [0, 2, 0, 0] -> MAE 0.5


def test_hand_computed_example():
    m = forecast_metrics(Y_TRUE, Y_PRED, Y_TRAIN, season=2, y_baseline=Y_BASE)
    assert set(m) == {*METRIC_NAMES, "holdout_points", "holdout_periods", FINGERPRINT}
    assert m["holdout_points"] == 4.0  # every actual observed: the gate's evidence
    assert m[FINGERPRINT] == pytest.approx(10 * 1 + 0 + 5 * (1 + 2 * FINGERPRINT_STEP) + 5 * (1 + 3 * FINGERPRINT_STEP))
    assert m["wape"] == pytest.approx(5 / 20)
    assert m["accuracy"] == pytest.approx(0.75)
    # MAPE over the three non-zero actuals only: 2/10, 0/5, 2/5
    assert m["mape"] == pytest.approx((0.2 + 0.0 + 0.4) / 3)
    # sMAPE: 2*2/18, 2*1/1, 0, 2*2/12
    assert m["smape"] == pytest.approx((4 / 18 + 2.0 + 0.0 + 4 / 12) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((4 + 1 + 0 + 4) / 4))
    assert m["mase"] == pytest.approx(1.25 / 2.5)
    assert m["rel_mae_baseline"] == pytest.approx(1.25 / 0.5)
    assert all(isinstance(v, float) for v in m.values())


def test_the_rmse_ratio_judges_the_mean_where_the_mae_ratio_prefers_a_low_forecast():
    """Sales mostly zero: a forecast of zero has the least absolute error, the mean rate the least squared."""
    y = np.array([0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 4.0])
    mean_rate, zero = np.full(8, 1.0), np.zeros(8)
    m = forecast_metrics(y, mean_rate, Y_TRAIN, season=1, y_baseline=zero)
    assert m["rel_mae_baseline"] == pytest.approx((6 * 1 + 2 * 3) / 8 / 1.0)  # 1.5: zero "wins" by MAE
    assert m["rel_rmse_baseline"] == pytest.approx(math.sqrt((6 + 2 * 9) / 8 / 4.0))  # 0.866: the mean wins


def test_perfect_forecast():
    y = np.array([3.0, 4.0, 5.0])
    m = forecast_metrics(y, y, np.array([1.0, 2.0, 4.0, 8.0]), season=1, y_baseline=y + 1)
    assert m["wape"] == 0.0
    assert m["accuracy"] == 1.0
    assert m["mape"] == 0.0
    assert m["smape"] == 0.0
    assert m["rmse"] == 0.0
    assert m["mase"] == 0.0
    assert m["rel_mae_baseline"] == 0.0


def test_mape_excludes_zero_actuals():
    m = forecast_metrics(np.array([0.0, 0.0, 4.0]), np.array([5.0, 3.0, 3.0]), Y_TRAIN, season=1)
    assert m["mape"] == pytest.approx(0.25)  # only the 4 -> 3 point
    assert math.isfinite(m["mape"])


def test_all_zero_actuals_make_wape_accuracy_and_mape_nan():
    m = forecast_metrics(np.zeros(3), np.array([1.0, 0.0, 2.0]), Y_TRAIN, season=1)
    assert math.isnan(m["wape"])
    assert math.isnan(m["accuracy"])
    assert math.isnan(m["mape"])
    # still defined: sMAPE over points with |y| + |ŷ| > 0 (2 and 2), RMSE
    assert m["smape"] == pytest.approx(2.0)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))


def test_all_zero_actuals_and_forecast():
    m = forecast_metrics(np.zeros(3), np.zeros(3), Y_TRAIN, season=1, y_baseline=np.zeros(3))
    assert math.isnan(m["wape"])
    assert math.isnan(m["smape"])  # no point with a non-zero denominator
    assert m["rmse"] == 0.0
    assert m["rel_mae_baseline"] == 1.0  # both perfect: a tie


def test_nan_points_are_ignored_pointwise():
    y_true = np.array([10.0, np.nan, 5.0, 5.0, 4.0])
    y_pred = np.array([8.0, 100.0, 5.0, 7.0, np.nan])
    m = forecast_metrics(y_true, y_pred, Y_TRAIN, season=2, y_baseline=np.array([10.0, 0.0, 7.0, 5.0, 0.0]))
    # remaining points: y = [10, 5, 5], ŷ = [8, 5, 7]: |err| = [2, 0, 2]
    assert m["wape"] == pytest.approx(4 / 20)
    assert m["rmse"] == pytest.approx(math.sqrt(8 / 3))
    assert m["mase"] == pytest.approx((4 / 3) / 2.5)
    # baseline on the same points: |err| = [0, 2, 0] -> MAE 2/3
    assert m["rel_mae_baseline"] == pytest.approx((4 / 3) / (2 / 3))


def test_no_comparable_points_gives_all_nan():
    m = forecast_metrics(np.array([np.nan, 1.0]), np.array([1.0, np.nan]), Y_TRAIN, season=1)
    assert set(m) == {*METRIC_NAMES, "holdout_points", "holdout_periods", FINGERPRINT}
    assert m.pop("holdout_points") == 0.0 and m.pop("holdout_periods") == 2.0  # its periods, observed or not
    assert all(math.isnan(v) for v in m.values())


def test_no_baseline_leaves_rel_mae_nan():
    m = forecast_metrics(Y_TRUE, Y_PRED, Y_TRAIN, season=2)
    assert math.isnan(m["rel_mae_baseline"])
    assert math.isfinite(m["wape"])


def test_perfect_baseline_with_imperfect_model_has_no_ratio():
    y = np.array([1.0, 2.0])
    m = forecast_metrics(y, y + 1, Y_TRAIN, season=1, y_baseline=y)
    assert math.isnan(m["rel_mae_baseline"])


def test_mase_uses_in_sample_seasonal_differences():
    # season 7 over two weeks: y[t] - y[t-7] = 7 for every t -> scale 7
    y_train = np.arange(14, dtype=float)
    m = forecast_metrics(np.array([20.0, 20.0]), np.array([13.0, 27.0]), y_train, season=7)
    assert m["mase"] == pytest.approx(7.0 / 7.0)
    # the same data at season 1: scale 1
    m1 = forecast_metrics(np.array([20.0, 20.0]), np.array([13.0, 27.0]), y_train, season=1)
    assert m1["mase"] == pytest.approx(7.0)


def test_seasonal_naive_scale():
    assert seasonal_naive_scale(np.array([1.0, 2.0, 3.0, 5.0]), 2) == pytest.approx(2.5)
    # NaNs in the training data are skipped: pairs (1, 3), (nan, 5), (3, 4), (5, 9) -> |3-1|, |4-3|, |9-5|
    assert seasonal_naive_scale(np.array([1.0, np.nan, 3.0, 5.0, 4.0, 9.0]), 2) == pytest.approx(7 / 3)
    # too short for the season: falls back to one-step differences
    assert seasonal_naive_scale(np.array([1.0, 4.0, 6.0]), 7) == pytest.approx(2.5)
    # undefined cases
    assert math.isnan(seasonal_naive_scale(np.array([5.0]), 7))
    assert math.isnan(seasonal_naive_scale(np.array([]), 1))
    assert math.isnan(seasonal_naive_scale(np.full(10, 3.0), 7))  # constant: scale 0
    assert math.isnan(seasonal_naive_scale(np.array([1.0, np.nan, np.nan, 2.0]), 2))


def test_seasonal_scale_needs_a_whole_season_of_pairs():
    """A weekly series a year and a week long has one seasonal pair: a scale from it would be one chance
    difference. Below a season of observed pairs the scale is the one-step one."""
    rng = np.random.default_rng(0)
    season = 52
    steady = 100.0 + rng.normal(0, 5, 200)
    one_step = lambda y: float(np.nanmean(np.abs(np.diff(y))))  # noqa: E731
    seasonal = lambda y: float(np.nanmean(np.abs(y[season:] - y[:-season])))  # noqa: E731
    for n in (53, 60, 103):  # 1, 8, 51 seasonal pairs
        assert seasonal_naive_scale(steady[:n], season) == pytest.approx(one_step(steady[:n]))
    assert seasonal_naive_scale(steady[:104], season) == pytest.approx(seasonal(steady[:104]))  # 52 pairs
    # the pairs counted are the observed ones: 120 weeks with a 20-week hole leave 48 seasonal pairs
    holed = steady[:120].copy()
    holed[60:80] = np.nan
    assert seasonal_naive_scale(holed, season) == pytest.approx(one_step(holed))
    # a history that repeats every season exactly has no seasonal error to scale by: one-step again
    periodic = np.tile(np.arange(7.0), 4)
    assert seasonal_naive_scale(periodic, 7) == pytest.approx(one_step(periodic))
    # the batch form decides row by row
    panel = np.full((3, 120), np.nan)
    panel[0, :53], panel[1, :104], panel[2] = steady[:53], steady[:104], holed
    scales = seasonal_naive_scales(panel, np.array([53, 104, 120]), season)
    assert scales == pytest.approx([one_step(steady[:53]), seasonal(steady[:104]), one_step(holed)])


def test_mase_of_a_good_forecast_of_a_year_long_series_is_small():
    """The hostile case: a steady series of 53 weeks forecast within a few percent. A single seasonal pair
    made its MASE 60-odd; with the one-step scale it is below 1."""
    rng = np.random.default_rng(1)
    y = 100.0 + rng.normal(0, 5, 55)
    y[52] = y[0] + 0.1  # the one seasonal pair is almost equal
    m = forecast_metrics(np.array([100.0, 100.0]), np.array([101.0, 99.0]), y[:53], season=52)
    assert m["mase"] < 1.0


def test_constant_training_data_leaves_mase_nan():
    m = forecast_metrics(np.array([1.0]), np.array([2.0]), np.full(20, 3.0), season=7)
    assert math.isnan(m["mase"])


def test_metrics_json_writes_nan_as_null():
    m = forecast_metrics(np.zeros(2), np.array([1.0, 1.0]), Y_TRAIN, season=1)
    data = json.loads(metrics_json(m))
    assert data["wape"] is None
    assert data["accuracy"] is None
    assert data["rmse"] == pytest.approx(1.0)
    assert set(data) == {*METRIC_NAMES, "holdout_points", "holdout_periods", FINGERPRINT}
    assert "NaN" not in metrics_json(m)


def _hostile_rows(rng, K=400, T=60, h=5):
    """Holdouts and histories with every case the per-series metrics branch on: NaN actuals and forecasts,
    zero actuals, all-zero rows, perfect and constant forecasts, short histories, no baseline points."""
    y = rng.gamma(1.0, 20.0, (K, T)).round()
    y[rng.random((K, T)) < 0.15] = np.nan
    y[rng.random((K, T)) < 0.15] = 0.0
    y[::17] = 0.0
    n = rng.integers(0, T - h + 1, K)
    test = rng.gamma(1.0, 20.0, (K, h)).round()
    test[rng.random((K, h)) < 0.2] = np.nan
    test[::13] = 0.0
    test[::29] = np.nan
    pred = test + rng.normal(0, 5, (K, h))
    pred[rng.random((K, h)) < 0.1] = np.nan
    pred[::11] = test[::11]
    base = test + rng.normal(0, 8, (K, h))
    base[rng.random((K, h)) < 0.2] = np.nan
    base[::7] = np.nan
    base[::19] = test[::19]
    return y, n, test, pred, base


@pytest.mark.parametrize("season", [1, 7, 52])
def test_batch_metrics_equal_the_per_series_ones(season):
    rng = np.random.default_rng(season)
    y, n, test, pred, base = _hostile_rows(rng)
    scale = seasonal_naive_scales(y, n, season)
    rows = forecast_metrics_rows(test, pred, scale, y_baseline=base)
    plain = forecast_metrics_rows(test, pred, scale)
    for k in range(len(y)):
        assert scale[k] == pytest.approx(seasonal_naive_scale(y[k, : n[k]], season), rel=1e-12, nan_ok=True)
        for batch, baseline in ((rows, base[k]), (plain, None)):
            alone = forecast_metrics(test[k], pred[k], y[k, : n[k]], season, y_baseline=baseline)
            for name, value in alone.items():
                assert batch[name][k] == pytest.approx(value, rel=1e-12, nan_ok=True), (k, name)


def test_holdout_metrics_rows_read_each_series_own_holdout_and_history():
    rng = np.random.default_rng(3)
    h, gap, season = 3, 2, 4
    length = np.array([30, 12, 7, 20])
    y = np.full((4, 30), np.nan)
    for k, L in enumerate(length):
        y[k, :L] = rng.gamma(2.0, 10.0, L).round()
    pred, base = rng.gamma(2.0, 10.0, (4, h)), rng.gamma(2.0, 10.0, (4, h))
    rows = holdout_metrics_rows(y, length, pred, base, np.array([False, True, False, False]), h, gap, season)
    for k, L in enumerate(length):
        y_k = y[k, :L]
        alone = forecast_metrics(y_k[L - h:], pred[k], y_k[: L - h - gap], season, y_baseline=base[k])
        base_alone = forecast_metrics(y_k[L - h:], base[k], y_k[: L - h - gap], season)
        assert rows[k]["envelope_replaced"] == float(k == 1)
        assert rows[k]["baseline_wape"] == pytest.approx(base_alone["wape"], rel=1e-12)
        for name, value in alone.items():
            assert rows[k][name] == pytest.approx(value, rel=1e-12, nan_ok=True), (k, name)


def test_a_holdout_fingerprint_tells_corrected_actuals_from_the_same_ones():
    """Two versions trained on data of the same end were judged on the same periods; a late correction of one of
    them (or a sale moved between two) changes the fingerprint, so the gate and "what got worse" do not take the
    older version's score as one on today's actuals."""
    from mm_assets.forecasting.metrics import fingerprints, same_actuals

    before = np.array([[20.0, 18.0, 25.0], [5.0, np.nan, 7.0]])
    corrected = before.copy()
    corrected[0, 2] = 75.0
    moved = before[:, [1, 0, 2]]  # the same total, other periods
    assert same_actuals(fingerprints(before), fingerprints(before.copy())).all()
    assert list(same_actuals(fingerprints(before), fingerprints(corrected))) == [False, True]
    assert not same_actuals(fingerprints(before), fingerprints(moved))[0]
    assert same_actuals(np.nan, fingerprints(before)[:1]).all()  # a version registered before: as it was then


def test_several_metrics_come_out_of_one_parse_of_each_row_as_one_by_one():
    from mm_assets.forecasting.metrics import metric_column, metric_columns

    rows = ['{"a": 1.5, "b": null}', "not json", None, '{"b": 2}', "[1, 2]"]
    both = metric_columns(rows, ["a", "b"])
    for name in ("a", "b"):
        assert np.array_equal(both[name], np.array(metric_column(rows[:4], name) + [np.nan]), equal_nan=True)
    assert both["a"][0] == 1.5 and both["b"][3] == 2.0
