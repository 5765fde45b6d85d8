"""The baseline: the best simple forecast per series, chosen by its own backtest and recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_assets.forecasting.baseline import (
    MA_LONG,
    MA_SHORT,
    Baseline,
    SeasonalNaive,
    candidate_forecasts,
    choose_rows,
    forecast_rows,
    ma_windows,
    method_names,
)
from mm_assets.forecasting.series import SeriesConfig

DAILY = SeriesConfig(frequency="D", horizon=7, season=7)
WEEKLY = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52)


def _frame(y, cfg, start="2023-01-02"):
    return pd.DataFrame({"y": np.asarray(y, dtype=float)},
                        index=pd.date_range(start, periods=len(y), freq=cfg.step, name="ds"))


def test_moving_averages_are_the_mean_of_the_last_periods_before_each_end():
    rng = np.random.default_rng(4)
    for cfg in (DAILY, WEEKLY):
        y = rng.gamma(2.0, 10.0, size=(6, 60))
        n = np.array([1, 3, 13, 27, 28, 60])  # shorter than a window: the mean of what there is
        fc = candidate_forecasts(y, n, 3, cfg.gap, cfg)
        for slot, w in zip((MA_SHORT, MA_LONG), ma_windows(cfg)):
            expected = [y[k, max(0, n[k] - w):n[k]].mean() for k in range(len(n))]
            np.testing.assert_allclose(fc[:, slot, 0], expected, rtol=1e-12)
            assert (fc[:, slot, :] == fc[:, slot, :1]).all()  # flat over the horizon


def test_seasonal_naive_needs_a_full_season_else_it_is_naive():
    """A series shorter than its season has no last season: seasonal naive is its last value, not its first
    periods repeated (a weekly series of 45 weeks was forecast with its 2nd and 3rd weeks), and the choice of a
    series whose first weeks are unlike the rest is never those weeks."""
    y = np.r_[[900.0, 1224.0, 988.0], np.full(42, 100.0)] + np.arange(45) % 3  # 45 weeks: less than a season
    fc = candidate_forecasts(y[None, :], np.array([45]), 2, WEEKLY.gap, WEEKLY)
    np.testing.assert_array_equal(fc[0, 1], [y[-1], y[-1]])
    model = Baseline(WEEKLY).fit(_frame(y, WEEKLY))
    assert model.method_ != "seasonal_naive"
    future = pd.DataFrame(index=pd.date_range("2023-11-20", periods=2, freq=WEEKLY.step, name="ds"))
    assert (model.predict(future) < 200).all()
    full = np.r_[np.arange(52.0), np.arange(52.0)]  # a full season and more: the same weeks a year before
    fc = candidate_forecasts(full[None, :], np.array([104]), 2, WEEKLY.gap, WEEKLY)
    np.testing.assert_array_equal(fc[0, 1], [full[104 - 52 + 1], full[104 - 52 + 2]])


def test_each_method_wins_where_it_should():
    rng = np.random.default_rng(0)
    t = np.arange(200)
    seasonal = 50 + 30 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1, 200)
    walk = 100 + np.cumsum(rng.normal(0, 5, 200))
    noisy = 80 + rng.normal(0, 20, 200)
    chosen = [Baseline(DAILY).fit(_frame(y, DAILY)).method_ for y in (seasonal, walk, noisy)]
    assert chosen[0] == "seasonal_naive"
    assert chosen[1] == "naive"
    # white noise: an average beats the median of the last three values (naive) in most series (3 origins decide)
    noise = [Baseline(DAILY).fit(_frame(80 + np.random.default_rng(100 + s).normal(0, 20, 200), DAILY)).method_
             for s in range(40)]
    assert sum(m.startswith("moving_average_") for m in noise) >= 30


def test_the_choice_and_its_scores_are_recorded():
    model = Baseline(WEEKLY).fit(_frame(np.r_[np.ones(60) * 10, [40, 10, 10, 10]], WEEKLY))
    assert model.method_ in method_names(WEEKLY)
    assert model.reason_.startswith(f"baseline: {model.method_} by backtest absolute error (")
    short = Baseline(WEEKLY).fit(_frame([3.0, 4.0], WEEKLY))
    assert short.method_ == "naive" and "too short" in short.reason_


def test_panel_functions_equal_the_per_series_model_and_respect_the_gap():
    rng = np.random.default_rng(1)
    y = rng.gamma(2.0, 10.0, size=(5, 90))
    y[1, 40:45] = np.nan  # missing weeks
    n = np.array([90, 80, 70, 60, 30])
    y[np.arange(90)[None, :] >= n[:, None]] = np.nan
    method, _ = choose_rows(y, n, WEEKLY)
    fc = forecast_rows(y, n, method, WEEKLY.horizon, WEEKLY.gap, WEEKLY)
    for k in range(5):
        frame = _frame(y[k, : n[k]], WEEKLY)
        model = Baseline(WEEKLY).fit(frame)
        assert model.method_ == method_names(WEEKLY)[method[k]]
        future = pd.DataFrame(index=pd.date_range(frame.index[-1] + 2 * WEEKLY.step, periods=2, freq="7D"))
        np.testing.assert_allclose(model.predict(future), fc[k])


def test_the_choice_reads_only_the_newest_periods_and_equals_the_whole_history(monkeypatch):
    """Choosing and forecasting from the newest ``history_periods`` (from an observed target) gives what the
    whole history gives: holes, a hole across the window's start, series shorter than the window, one with no
    target in its window's reach."""
    from mm_assets.forecasting import baseline as module

    rng = np.random.default_rng(7)
    for cfg in (DAILY, WEEKLY):
        K, T = 40, 3 * module.history_periods(cfg) + 50
        y = rng.gamma(2.0, 10.0, size=(K, T))
        y[rng.random((K, T)) < 0.15] = np.nan
        n = rng.integers(T // 2, T + 1, size=K)
        n[:5] = rng.integers(3, module.history_periods(cfg), size=5)  # shorter than the window
        start = n[5] - module.history_periods(cfg)
        y[5, start - 30 : start + cfg.horizon + 10] = np.nan  # a hole across where the window starts
        y[6, : n[6] - 5] = np.nan  # nothing observed that far back: the whole history is read
        y[7, 0] = 1.0
        got_method, got_errors = choose_rows(y, n, cfg)
        got = forecast_rows(y, n, got_method, 5, cfg.gap, cfg)
        cut, kept = module.newest_periods(y, n, cfg)
        assert cut.shape[1] < T and (kept < n).sum() >= K // 2  # most series were cut
        with monkeypatch.context() as m:
            m.setattr(module, "newest_periods", lambda y, n, cfg: (y, n))
            want_method, want_errors = choose_rows(y, n, cfg)
            want = forecast_rows(y, n, want_method, 5, cfg.gap, cfg)
        np.testing.assert_array_equal(got_method, want_method)
        np.testing.assert_allclose(got_errors, want_errors, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_an_intermittent_series_is_judged_by_squared_error_and_gets_its_mean_rate(monkeypatch):
    from mm_assets.forecasting import baseline as baseline_module
    from mm_assets.forecasting.baseline import INTERMITTENT_ZERO_SHARE, intermittent_rows

    rng = np.random.default_rng(8)
    slow = rng.poisson(0.2, 400).astype(float)  # ~82 % of days without a sale: zero wins absolute error
    smooth = rng.poisson(30.0, 400).astype(float)
    y, n = np.vstack([slow, smooth]), np.array([400, 400])
    assert list(intermittent_rows(y, n, DAILY)) == [True, False]
    for zeros, expected in ((10, True), (9, False)):  # the line: 24.2 % of the periods (40, all read)
        edge = np.where(np.arange(40) % 4 == 0, 0.0, 5.0)
        edge[np.flatnonzero(edge == 0)[zeros:]] = 5.0
        assert intermittent_rows(edge[None, :], np.array([40]), DAILY)[0] == expected
        assert (zeros / 40 >= INTERMITTENT_ZERO_SHARE) == expected

    future = _frame(np.zeros(7), DAILY, start="2024-02-05")
    model = Baseline(DAILY).fit(_frame(slow, DAILY))
    assert model.method_.startswith("moving_average") and "squared error (intermittent" in model.reason_
    forecast = model.predict(future, history=_frame(slow, DAILY))
    assert 0.05 < forecast.mean() < 0.6  # the mean rate, not zero and not the last sale repeated
    smooth_model = Baseline(DAILY).fit(_frame(smooth, DAILY))
    assert "by backtest absolute error" in smooth_model.reason_

    monkeypatch.setattr(baseline_module, "intermittent_rows", lambda y, n, cfg: np.zeros(len(n), dtype=bool))
    by_absolute = Baseline(DAILY).fit(_frame(slow, DAILY))  # what absolute error chooses: no sales at all
    assert by_absolute.predict(future, history=_frame(slow, DAILY)).max() == 0.0


def test_a_year_old_promotion_week_is_not_repeated_but_a_seasonal_peak_is():
    """With a season of a year of weeks the baseline's seasonal naive repeats the median of the week a season back
    and its two neighbours: one promotion week (an orangeJuice series' 280,960 among weeks of 7,000-30,000) is
    not the forecast, a peak of several weeks is. The ``seasonal_naive`` model type repeats the week as it is, and
    a daily series' weekly season is repeated as it is."""
    y = np.full(110, 10_000.0)
    y[110 - 52 + 1] = 280_960.0  # the week a year before the first forecast period (gap 1)
    y[110 - 52 + 2: 110 - 52 + 5] = [40_000.0, 42_000.0, 41_000.0]  # a peak of three weeks a year before
    fc = candidate_forecasts(y[None, :], np.array([110]), 4, WEEKLY.gap, WEEKLY)[0, 1]
    np.testing.assert_array_equal(fc, [40_000.0, 42_000.0, 41_000.0, 41_000.0])
    textbook = candidate_forecasts(y[None, :], np.array([110]), 4, WEEKLY.gap, WEEKLY, robust=False)[0, 1]
    np.testing.assert_array_equal(textbook, y[110 - 52 + 1: 110 - 52 + 5])
    history = _frame(y, WEEKLY)
    future = pd.DataFrame(index=pd.date_range(history.index[-1] + 2 * WEEKLY.step, periods=2, freq=WEEKLY.step,
                                              name="ds"))
    np.testing.assert_array_equal(SeasonalNaive(WEEKLY).fit(history).predict(future), [280_960.0, 40_000.0])
    seasonal = Baseline(WEEKLY).fit(history)
    seasonal.method_ = "seasonal_naive"
    np.testing.assert_array_equal(seasonal.predict(future), [40_000.0, 42_000.0])
    daily = 50 + 30 * (np.arange(70) % 7 == 5)  # one weekday sells more: repeated as it is
    fc = candidate_forecasts(daily[None, :].astype(float), np.array([70]), 7, 0, DAILY)[0, 1]
    np.testing.assert_array_equal(fc, daily[-7:])


def test_a_last_promotion_week_is_not_repeated_but_a_new_level_is():
    """The baseline's naive is the median of the last three periods: a last week's promotion (10 x the series'
    level) is not repeated as every forecast period's value, and two weeks of a new level are; the textbook last
    value stays for ``robust=False`` and a history of fewer than three periods."""
    spike = np.r_[np.full(60, 100.0), 1_000.0]
    step = np.r_[np.full(60, 100.0), 200.0, 210.0]
    n = np.array([61, 62])
    y = np.full((2, 62), np.nan)
    y[0, :61], y[1] = spike, step
    fc = candidate_forecasts(np.nan_to_num(y), n, 2, WEEKLY.gap, WEEKLY)[:, 0]
    np.testing.assert_array_equal(fc, [[100.0, 100.0], [200.0, 200.0]])
    textbook = candidate_forecasts(np.nan_to_num(y), n, 2, WEEKLY.gap, WEEKLY, robust=False)[:, 0]
    np.testing.assert_array_equal(textbook, [[1_000.0, 1_000.0], [210.0, 210.0]])
    short = candidate_forecasts(np.array([[5.0, 9.0]]), np.array([2]), 2, WEEKLY.gap, WEEKLY)[0, 0]
    np.testing.assert_array_equal(short, [9.0, 9.0])
    model = Baseline(WEEKLY).fit(_frame(spike, WEEKLY))
    model.method_ = "naive"
    future = pd.DataFrame(index=pd.date_range("2024-03-04", periods=2, freq=WEEKLY.step, name="ds"))
    assert (model.predict(future) == 100.0).all()
