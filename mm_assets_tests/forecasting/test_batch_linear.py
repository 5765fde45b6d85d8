"""The vectorised linear path must be the per-series path, only faster: same coefficients, metrics, stored tail
and forecasts, for daily and weekly data, with and without a lead-time gap, with holes and partial plans."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mm_assets.demo.generator import DemoSpec, generate_sales
from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.batch_linear import forecast_batch, train_linear_batch
from mm_assets.forecasting.panel import build_panel, ffill, rolling_mean, rolling_means, trailing_max
from mm_assets.forecasting.series import SeriesConfig, quarter_periods, regularize, unplanned_values
from mm_assets.forecasting.training import forecast_from_model, train_series
from mm_assets.ids import series_keys
from mm_assets.runs import slice_boundaries

IDS = ["store", "item"]


def _data(freq: str) -> pd.DataFrame:
    frame = generate_sales(DemoSpec(stores=1, items=14, days=700, future_days=60, seed=7))
    frame = frame.rename(columns={"date": "ds", "sales": "y"})
    if freq == "W":
        frame = frame[pd.to_datetime(frame["ds"]).dt.day_of_week == 0]
    frame = frame.reset_index(drop=True)
    drop = frame["y"].isna() & (np.arange(len(frame)) % 3 == 0)  # plans with holes
    return frame[~drop].sort_values([*IDS, "ds"], ignore_index=True)


def _cfg(freq: str, gap: int, holdout_periods: int = 0) -> SeriesConfig:
    if freq == "D":
        return SeriesConfig(frequency="D", horizon=14, season=7, regressors=("price", "promo"),
                            min_train_periods=60, gap=gap, holdout_periods=holdout_periods)
    return SeriesConfig(frequency="W", horizon=6, season=52, regressors=("price", "promo"),
                        min_train_periods=60, gap=gap, holdout_periods=holdout_periods)


def _slices(frame):
    starts, stops = slice_boundaries(series_keys(frame, IDS).to_numpy())
    return list(zip(starts, stops))


@pytest.mark.parametrize("freq,gap,windows", [("D", 0, 1), ("D", 3, 1), ("W", 0, 1), ("W", 2, 1), ("D", 3, 3),
                                               ("W", 2, 4)])
def test_batch_training_equals_per_series_training(freq, gap, windows):
    """``windows``: the holdout's windows of the horizon (``forecasting.holdout``); some series of the weekly data
    are long enough for fewer, and both paths give them as many."""
    frame, cfg = _data(freq), _cfg(freq, gap, (14 if freq == "D" else 6) * windows)
    outcomes, pending = train_linear_batch(frame, IDS, cfg)
    assert len(outcomes) >= 8  # most series take the vectorised path
    fallbacks, periods = 0, set()
    for index, (lo, hi) in enumerate(_slices(frame)):
        alone = train_series(frame.iloc[lo:hi], cfg, "linear")
        if index in pending:
            assert index not in outcomes
            continue
        batch = outcomes[index]
        assert (batch.status, batch.model_type, batch.reason) == (alone.status, alone.model_type, alone.reason)
        assert type(batch.model) is type(alone.model)
        if alone.status == "fallback":
            fallbacks += 1
            assert batch.model.tail_.index.equals(alone.model.tail_.index)
            assert batch.metrics.keys() == alone.metrics.keys()
            for name, value in alone.metrics.items():
                assert (math.isnan(value) and math.isnan(batch.metrics[name])) or batch.metrics[name] == value
            continue
        assert batch.model.columns_ == alone.model.columns_ and batch.model.kinds_ == alone.model.kinds_
        np.testing.assert_allclose(batch.model.fit_.coef, alone.model.fit_.coef, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(batch.model.fit_.alpha, alone.model.fit_.alpha, rtol=1e-9)
        assert batch.model.fit_.intercept[0] == pytest.approx(alone.model.fit_.intercept[0], rel=1e-9)
        assert batch.model.recent_max_ == alone.model.recent_max_
        for name, value in alone.metrics.items():
            assert (math.isnan(value) and math.isnan(batch.metrics[name])) or \
                batch.metrics[name] == pytest.approx(value, rel=1e-7, abs=1e-9), name
        assert batch.extra["holdout"]["ds"] == alone.extra["holdout"]["ds"]
        assert batch.extra["holdout"]["actual"] == alone.extra["holdout"]["actual"]
        np.testing.assert_allclose(batch.extra["holdout"]["forecast"], alone.extra["holdout"]["forecast"], atol=2e-4)
        assert batch.model.tail_.index.equals(alone.model.tail_.index)
        np.testing.assert_allclose(batch.model.tail_.to_numpy(float), alone.model.tail_.to_numpy(float))
        assert (batch.n_obs, batch.data_start, batch.data_end) == (alone.n_obs, alone.data_start, alone.data_end)
        periods.add(batch.metrics["holdout_periods"])
    assert fallbacks >= 1  # the demo data's late launches: baseline fallbacks with the per-series rules
    assert max(periods) == cfg.holdout_windows * cfg.horizon


def test_series_too_short_or_off_grid_are_left_to_the_per_series_path():
    frame, cfg = _data("D"), _cfg("D", 0)
    spans = _slices(frame)
    lo, hi = spans[1]
    short = frame.index[lo + 30 : hi]  # keep 30 periods of series 1: shorter than min_train_periods + horizon
    lo2, hi2 = spans[2]
    shifted = frame.copy()
    shifted.loc[lo2 + 5, "ds"] = shifted.loc[lo2 + 5, "ds"] + pd.Timedelta(hours=12)  # off the daily grid
    shifted = shifted.drop(short)
    outcomes, pending = train_linear_batch(shifted, IDS, cfg)
    assert 2 in pending and 0 in outcomes and outcomes[1].status == "fallback"
    assert train_series(shifted.iloc[_slices(shifted)[1][0]:_slices(shifted)[1][1]], cfg, "linear").status == "fallback"
    with pytest.raises(ValueError, match="off the D grid"):
        lo3, hi3 = _slices(shifted)[2]
        regularize(shifted.iloc[lo3:hi3], cfg)


@pytest.mark.parametrize("freq,gap", [("D", 0), ("D", 5), ("W", 0), ("W", 3)])
def test_batch_forecast_equals_per_series_forecast_with_plans(freq, gap):
    frame, cfg = _data(freq), _cfg(freq, gap)
    outcomes, _ = train_linear_batch(frame, IDS, cfg)
    spans = _slices(frame)
    # every third series has no model: its baseline forecasts it
    models = {i: (outcomes[i].model if i in outcomes and i % 3 else None) for i in range(len(spans))}
    forecasts, pending = forecast_batch(frame, IDS, cfg, models)
    assert pending == [] and len(forecasts) == len(spans)
    planned_total = 0
    for index, (lo, hi) in enumerate(spans):
        rows = frame.iloc[lo:hi]
        model = models[index] or Baseline(cfg).fit(regularize(rows, cfg))
        expected, info = forecast_from_model(model, cfg, rows=rows)
        got = forecasts[index]
        assert list(pd.DatetimeIndex(got.ds)) == list(expected["ds"])
        np.testing.assert_allclose(got.yhat, expected["yhat"].to_numpy(), rtol=1e-8, atol=1e-8)
        assert got.origin == info["origin"] and got.planned_periods == info["planned_periods"]
        planned_total += got.planned_periods
    assert planned_total > 0  # the plans were used (and counted the same way)


def _batch_equals_per_series(frame: pd.DataFrame, cfg: SeriesConfig) -> list[tuple]:
    """Train and forecast ``frame`` on the batch path, each forecast checked equal to the per-series path's (the
    online endpoint's) → (model, its rows, the per-series forecast's info, the batch forecast) per series."""
    outcomes, _ = train_linear_batch(frame, IDS, cfg)
    spans = _slices(frame)
    models = {i: outcomes[i].model for i in range(len(spans)) if i in outcomes}
    forecasts, pending = forecast_batch(frame, IDS, cfg, models)
    assert models and pending == []
    out = []
    for index, model in models.items():
        rows = frame.iloc[slice(*spans[index])]
        expected, info = forecast_from_model(model, cfg, rows=rows)
        np.testing.assert_allclose(forecasts[index].yhat, expected["yhat"].to_numpy(), rtol=1e-8, atol=1e-8)
        out.append((model, rows, info, forecasts[index]))
    return out


@pytest.mark.parametrize("freq,gap", [("D", 0), ("W", 2)])
def test_without_a_plan_batch_and_per_series_forecasts_take_a_shares_usual_value(freq, gap):
    """A share regressor (a display share, 0 in about 40 % of periods) without a plan takes its median of the last
    season on both paths; the per-series path is the online endpoint's and the batch path batch scoring's."""
    rng = np.random.default_rng(3)
    frame = _data(freq)
    frame = frame[frame["y"].notna()].reset_index(drop=True)  # no plan rows: every future value is a default
    frame["display"] = np.where(rng.random(len(frame)) < 0.4, 0.0, rng.uniform(0.05, 0.6, len(frame))).round(3)
    base = _cfg(freq, gap)
    cfg = SeriesConfig(frequency=base.frequency,
                       horizon=base.horizon, season=base.season,
                       regressors=("price", "promo", "display"), min_train_periods=60, gap=gap)
    both = _batch_equals_per_series(frame, cfg)
    assert all(model.kinds_["display"] == "share" for model, _, _, _ in both)
    positive = 0
    for model, rows, info, _ in both:
        assert info["planned_periods"] == 0
        display = regularize(rows, cfg)["display"].to_numpy()
        usual = float(np.nanmedian(display[-cfg.season:]))
        assert unplanned_values({"display": display}, model.kinds_, cfg)["display"] == usual
        positive += usual > 0
    assert positive >= len(both) // 2  # mostly the share's usual value, not 0, is what both forecast with


@pytest.mark.parametrize("freq,gap", [("D", 0), ("W", 2)])
def test_a_price_slip_is_read_as_missing_the_same_way_on_both_paths(freq, gap):
    """A price of 0 in a few rows (the newest among them) keeps the column positive on both paths, and a future
    period without a plan takes the regular price (the highest above 0 of the last quarter), not the slip: the
    same forecasts batch and per series."""
    frame = _data(freq)
    frame = frame[frame["y"].notna()].reset_index(drop=True)
    newest = frame.groupby(IDS)["ds"].transform("max") == frame["ds"]
    frame.loc[newest & (frame["item"].str[-1].isin(["1", "3"])), "price"] = 0.0  # a slip on the origin's row
    cfg = _cfg(freq, gap)
    both = _batch_equals_per_series(frame, cfg)
    assert all(model.kinds_["price"] == "positive" for model, _, _, _ in both)
    slipped = 0
    for model, rows, _, forecast in both:
        assert np.isfinite(forecast.yhat).all()
        price = regularize(rows, cfg)["price"].to_numpy()
        slipped += price[-1] == 0
        quarter = price[-quarter_periods(cfg.step.days):]
        assert unplanned_values({"price": price}, model.kinds_, cfg)["price"] == quarter[quarter > 0].max()
    assert slipped >= 2


@pytest.mark.parametrize("freq,gap", [("D", 0), ("W", 2)])
def test_a_planned_price_of_zero_or_below_is_no_plan_on_both_paths(freq, gap):
    """A plan's price of -5 or 0 (a slip in the source's plan rows) is what the data-quality check says it is:
    no plan there, so the period takes its regular price. It was fed to the model as it was, and moved the
    forecast far below the same period without a plan."""
    frame = _data(freq)
    cfg = _cfg(freq, gap)
    planned = frame["y"].isna()
    slipped = planned & frame["item"].str[-1].isin(["1", "3"])
    assert slipped.any()
    bad = frame.assign(price=np.where(slipped, np.where(np.arange(len(frame)) % 2, -5.0, 0.0), frame["price"]))
    none = frame.assign(price=np.where(slipped, np.nan, frame["price"]))
    got = {rows["item"].iloc[0]: (info, f) for _, rows, info, f in _batch_equals_per_series(bad, cfg)}
    want = {rows["item"].iloc[0]: (info, f) for _, rows, info, f in _batch_equals_per_series(none, cfg)}
    assert got.keys() == want.keys()
    for item, (info, forecast) in got.items():
        np.testing.assert_allclose(forecast.yhat, want[item][1].yhat, rtol=1e-12)
        assert info["planned_periods"] == want[item][0]["planned_periods"] == forecast.planned_periods


@pytest.mark.parametrize("freq,gap", [("D", 0), ("W", 2)])
def test_a_series_on_promotion_at_its_origin_is_forecast_at_its_regular_price_without_a_plan(freq, gap):
    """Without a plan a forecast assumes no promotion: a series whose last weeks are at 40 % off is forecast at
    its regular price (the quarter's highest), as a plan of that price would make it, on both paths; its last
    price would have been the promotion's lift over the whole horizon."""
    frame = _data(freq)
    frame = frame[frame["y"].notna()].reset_index(drop=True)
    cfg = _cfg(freq, gap)
    frame["price"] = 2.5
    promo = frame.groupby(IDS)["ds"].rank(ascending=False) <= 2  # each series' two newest periods
    frame.loc[promo, "price"] = 1.5
    for model, rows, _, forecast in _batch_equals_per_series(frame, cfg):
        price = regularize(rows, cfg)["price"].to_numpy()
        assert price[-1] == 1.5 and unplanned_values({"price": price}, model.kinds_, cfg)["price"] == 2.5
        planned = pd.DataFrame({"price": 2.5}, index=pd.DatetimeIndex(forecast.ds, name="ds"))
        regular, _ = forecast_from_model(model, cfg, rows=rows, planned=planned)
        np.testing.assert_allclose(forecast.yhat, regular["yhat"].to_numpy())


def test_panel_helpers_match_pandas():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 50))
    a[rng.random(a.shape) < 0.2] = np.nan
    a[1, 10:30] = np.nan  # a stretch longer than a window: no value, no mean
    means = rolling_means(a, (1, 7, 60))
    for window in (1, 7, 60):
        expected = np.stack([pd.Series(row).rolling(window, min_periods=1).mean().to_numpy() for row in a])
        np.testing.assert_allclose(rolling_mean(a, window), expected, equal_nan=True)
        np.testing.assert_array_equal(means[window], rolling_mean(a, window))
    for window in (1, 2, 7, 8, 60, 91):  # odd and even windows, longer than the stretch without values and not
        expected = np.stack([pd.Series(row).rolling(window, min_periods=1).max().to_numpy() for row in a])
        np.testing.assert_array_equal(trailing_max(a, window), expected)
    a[0, :3] = a[2, :5] = np.nan  # leading gaps, in the first row too: they stay NaN
    a[3] = np.nan  # a row with nothing to carry
    for view in (a, a[:, ::-1], a[1:, 7:]):  # bfill fills a reversed view
        expected = np.stack([pd.Series(row).ffill().to_numpy() for row in view])
        np.testing.assert_array_equal(ffill(view), expected)


def test_panel_rejects_duplicate_timestamps_and_series_without_target():
    frame, cfg = _data("D"), _cfg("D", 0)
    spans = _slices(frame)
    dup = pd.concat([frame, frame.iloc[[spans[0][0] + 3]]]).sort_values([*IDS, "ds"], kind="stable",
                                                                        ignore_index=True)
    lo, hi = _slices(dup)[4]
    dup.loc[lo:hi - 1, "y"] = np.nan
    panel = build_panel(dup, IDS, cfg)
    assert list(panel.rejected) == [0, 4]


def _long_data(freq: str) -> pd.DataFrame:
    """Four years of days or seven of weeks (the envelope reads four seasons of weeks) with what a window start
    can meet: a hole across it, regressors missing around it, a missing target at it, an off-grid timestamp,
    and a series whose regressors are missing until late in its history (no complete row to start from)."""
    frame = generate_sales(DemoSpec(stores=1, items=10, days=1460 if freq == "D" else 2555, future_days=60, seed=11))
    frame = frame.rename(columns={"date": "ds", "sales": "y"})
    if freq == "W":
        frame = frame[pd.to_datetime(frame["ds"]).dt.day_of_week == 0]
    frame = frame.sort_values([*IDS, "ds"], ignore_index=True)
    item = frame.groupby(IDS, sort=False).ngroup()
    last = frame.loc[frame["y"].notna()].groupby(item)["ds"].transform("max").reindex(frame.index)
    last = last.groupby(item).transform("max")
    step = pd.Timedelta(days=1 if freq == "D" else 7)
    age = (last - pd.to_datetime(frame["ds"])) / step  # periods before the series' newest observation
    around = (age > 330) & (age < 480) if freq == "D" else (age > 190) & (age < 260)
    frame = frame[~((item == 0) & around)]  # a hole across where a window would start
    item = item[frame.index]
    age = age[frame.index]
    around = around[frame.index]
    frame.loc[(item == 1) & around, "price"] = np.nan  # regressors missing around it
    frame.loc[(item == 2) & around, "y"] = np.nan  # the target missing around it
    frame.loc[(item == 4) & (age > (300 if freq == "D" else 150)), "promo"] = np.nan  # no complete row before it
    off = frame.index[(item == 3)][10]
    frame.loc[off, "ds"] = pd.to_datetime(frame.loc[off, "ds"]) + pd.Timedelta(hours=12)  # off the grid
    return frame.reset_index(drop=True)


@pytest.mark.parametrize("freq,gap", [("D", 0), ("D", 5), ("W", 0), ("W", 3)])
def test_batch_forecast_reads_only_the_newest_history_and_gives_the_same_forecasts(freq, gap, monkeypatch):
    import mm_assets.forecasting.batch_linear as batch_linear
    from mm_assets.forecasting.panel import newest_rows, row_layout

    frame, cfg = _long_data(freq), _cfg(freq, gap)
    clean = frame.drop(index=frame.index[(frame.groupby(IDS, sort=False).ngroup() == 3)])
    outcomes, _ = train_linear_batch(clean, IDS, cfg)
    spans = _slices(frame)
    trained = {i: o.model for i, o in enumerate(outcomes.values())}  # series order: 0, 1, 2, 4, ...
    index_of = [i for i in range(len(spans)) if i != 3]
    models = {index_of[j]: (m if j % 4 else None) for j, m in trained.items()}
    models[5] = Baseline(cfg).fit(regularize(frame.iloc[spans[5][0]:spans[5][1]], cfg))

    layout = row_layout(frame, IDS, int(cfg.step.value))
    kept = newest_rows(frame, cfg, layout, batch_linear._periods_read(len(spans), cfg, models))
    per_series = [int(kept[lo:hi].sum()) for lo, hi in spans]
    whole = [hi - lo for lo, hi in spans]
    assert per_series[3] == whole[3] and per_series[4] == whole[4]  # off the grid; no complete row to start at
    assert sum(per_series) < 0.75 * sum(whole)  # the older rows are not read

    windowed, pending = forecast_batch(frame, IDS, cfg, models)
    monkeypatch.setattr(batch_linear, "_periods_read", lambda n, c, m: np.zeros(n, dtype=np.int64))
    everything, pending_all = forecast_batch(frame, IDS, cfg, models)
    assert pending == pending_all == [3]
    assert windowed.keys() == everything.keys()
    for i, full in everything.items():
        got = windowed[i]
        assert list(got.ds) == list(full.ds) and got.origin == full.origin, i
        assert (got.planned_periods, got.envelope) == (full.planned_periods, full.envelope), i
        np.testing.assert_allclose(got.yhat, full.yhat, rtol=1e-9, atol=1e-9, err_msg=str(i))
        np.testing.assert_allclose(got.baseline, full.baseline, rtol=1e-9, atol=1e-9, err_msg=str(i))


def _window(freq: str) -> int:
    """A training window whose reading starts inside ``_long_data``'s band of holes (a year and a bit back for
    days, four years and a bit for weeks: ``read_periods`` = window + the features' reach back)."""
    return 40 if freq == "D" else 150


def _assert_same_model(batch, alone):
    assert (batch.status, batch.model_type, batch.reason) == (alone.status, alone.model_type, alone.reason)
    assert batch.model.columns_ == alone.model.columns_ and batch.model.kinds_ == alone.model.kinds_
    assert batch.model.calendar_ == alone.model.calendar_
    # the served model's statistics are the holdout's span minus its oldest rows: a constant column's coefficient
    # (0 in exact arithmetic) can differ by rounding
    np.testing.assert_allclose(batch.model.fit_.coef, alone.model.fit_.coef, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batch.model.fit_.alpha, alone.model.fit_.alpha, rtol=1e-9)
    assert batch.model.fit_.intercept[0] == pytest.approx(alone.model.fit_.intercept[0], rel=1e-9)
    for name, value in alone.metrics.items():
        assert (math.isnan(value) and math.isnan(batch.metrics[name])) or \
            batch.metrics[name] == pytest.approx(value, rel=1e-7, abs=1e-9), name
    np.testing.assert_allclose(batch.extra["holdout"]["forecast"], alone.extra["holdout"]["forecast"], atol=2e-4)
    assert batch.model.tail_.index.equals(alone.model.tail_.index)
    assert batch.model.recent_max_ == alone.model.recent_max_
    assert (batch.n_obs, batch.data_start, batch.data_end) == (alone.n_obs, alone.data_start, alone.data_end)


@pytest.mark.parametrize("freq,gap,windows", [("D", 0, 1), ("D", 5, 1), ("W", 0, 1), ("W", 3, 1), ("D", 5, 2),
                                               ("W", 3, 3)])
def test_training_window_batch_equals_per_series(freq, gap, windows):
    """With a training window shorter than the history, the vectorised path (which drops the older rows before
    building its panel) fits what the per-series path fits, around holes, missing regressors and targets, with
    a holdout of one window or several."""
    frame, cfg = _long_data(freq), _cfg(freq, gap, (14 if freq == "D" else 6) * windows)
    params = {"max_train_periods": _window(freq)}
    outcomes, pending = train_linear_batch(frame, IDS, cfg, params)
    assert pending == [3]  # off the grid
    trained = 0
    for index, (lo, hi) in enumerate(_slices(frame)):
        if index == 3:
            continue
        alone = train_series(frame.iloc[lo:hi], cfg, "linear", params)
        if alone.status != "trained":  # the missing targets: the baseline, by the same rules
            assert (outcomes[index].status, outcomes[index].reason) == (alone.status, alone.reason)
            continue
        trained += 1
        _assert_same_model(outcomes[index], alone)
        whole = train_series(frame.iloc[lo:hi], cfg, "linear")
        assert (whole.n_obs, whole.data_start) == (alone.n_obs, alone.data_start)  # the record names the history
        assert not np.allclose(whole.model.fit_.coef, alone.model.fit_.coef)  # the window changed the fit
    assert trained >= 7


@pytest.mark.parametrize("freq", ["D", "W"])
def test_training_window_fits_the_whole_history_design_on_its_newest_rows(freq):
    """The rows a fit reads start at an observed target, so the window's features are those of the whole history:
    the fit equals a ridge on the whole history's design restricted to the newest ``max_train_periods`` rows."""
    from mm_assets.forecasting.linear import LinearForecaster, fit_ridge, usable_rows

    frame, cfg = _long_data(freq), _cfg(freq, 0)
    window = _window(freq)
    spans = _slices(frame)
    for index in (0, 1, 4, 5):  # a hole, missing prices around the start; no complete row; a plain series
        lo, hi = spans[index]
        regular = regularize(frame.iloc[lo:hi], cfg)
        model = LinearForecaster(cfg, max_train_periods=window).fit(regular)
        assert len(model.fit_rows(regular)) < len(regular)
        whole = LinearForecaster(cfg, max_train_periods=window)
        whole.kinds_, whole.calendar_ = model.kinds_, model.calendar_
        names, X = whole._arrays(regular, len(regular))
        target = whole.transform_y(regular["y"].to_numpy(dtype=float))[None, :]
        n = np.array([len(regular)])
        usable = usable_rows(whole, X, target, n, len(regular)) & (np.arange(len(regular)) >= len(regular) - window)
        expected = fit_ridge(X, target, usable, None)
        assert names == model.columns_
        np.testing.assert_allclose(model.fit_.coef, expected.coef, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.fit_.mean, expected.mean, rtol=1e-9, atol=1e-12)
        assert model.fit_.intercept[0] == pytest.approx(expected.intercept[0], rel=1e-12)


def test_training_window_decides_regressor_kinds_on_the_rows_it_reads():
    """A price recorded as 0 years ago and positive since is a price (log and relative) for a model that learns
    from the newest periods, in both paths; without a window it is a signed column."""
    frame, cfg = _long_data("D"), _cfg("D", 0)
    spans = _slices(frame)
    frame = frame.drop(index=frame.index[spans[3][0]:spans[3][1]]).reset_index(drop=True)  # the off-grid series
    lo, hi = _slices(frame)[0]
    frame.loc[lo : lo + 200, "price"] = 0.0
    params = {"max_train_periods": 400}
    outcomes, pending = train_linear_batch(frame, IDS, cfg, params)
    alone = train_series(frame.iloc[lo:hi], cfg, "linear", params)
    assert pending == [] and alone.model.kinds_["price"] == "positive"
    _assert_same_model(outcomes[0], alone)
    assert np.isfinite(outcomes[0].model.fit_.coef).all()
    assert train_series(frame.iloc[lo:hi], cfg, "linear").model.kinds_["price"] == "signed"


def test_training_window_is_checked():
    from mm_assets.forecasting.linear import LinearForecaster

    cfg = _cfg("W", 0)
    assert LinearForecaster(cfg).train_periods == 209 and LinearForecaster(_cfg("D", 0)).train_periods == 1461
    for bad in (0, 1, 2.5, "52", True):
        with pytest.raises(ValueError, match="model.params.max_train_periods"):
            LinearForecaster(cfg, max_train_periods=bad)


def _short_series(rng, freq: str, count: int) -> pd.DataFrame:
    """Series too short for the model, made hostile: 1 to 60 periods, holes, missing rows, zeros, a series
    observed only at its end, values from 0.01 to 1,000 times the usual, every kind of regressor, an empty one
    (at most 60 periods: below min_train_periods + horizon + gap in every case of the test)."""
    step = pd.Timedelta(days=1 if freq == "D" else 7)
    frames = []
    for s in range(count):
        n = int(rng.choice([1, 2, 3, 5, 8, 15, 16, 17, 20, 30, 45, 55, 60]))
        y = rng.gamma(2, 5, n) * rng.choice([1, 1000, 0.01])
        y[rng.random(n) < rng.choice([0, 0.2, 0.6])] = np.nan
        y[rng.random(n) < 0.1] = 0
        if s % 10 == 0:
            y[: max(0, n - 3)] = np.nan
        keep = rng.random(n) > rng.choice([0, 0.1])
        keep[-1] = True
        frames.append(pd.DataFrame({
            "store": "S1", "item": f"I{s:04d}", "ds": pd.Timestamp("2026-06-01") - step * np.arange(n)[::-1], "y": y,
            "price": rng.uniform(1, 3, n) if s % 7 else np.full(n, np.nan),
            "promo": (rng.random(n) < 0.2).astype(float),
            "share": np.where(rng.random(n) < 0.7, 0, rng.random(n)),
            "signed": rng.normal(0, 1, n),
        })[keep])
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("freq,gap", [("D", 0), ("D", 3), ("W", 1)])
def test_short_series_get_the_per_series_fallback_from_the_batch(freq, gap):
    """The baselines of short series, made all at once, are the ones ``train_series`` makes one by one: reason,
    metrics, holdout record, chosen method and its reason, regressor kinds, envelope reference and stored tail."""
    cfg = SeriesConfig(frequency=freq, horizon=14 if freq == "D" else 2, season=7 if freq == "D" else 52,
                       regressors=("price", "promo", "share", "signed"), min_train_periods=60, gap=gap)
    frame = _short_series(np.random.default_rng(11), freq, 120)
    outcomes, pending = train_linear_batch(frame, IDS, cfg)
    measured = 0
    for index, (lo, hi) in enumerate(_slices(frame)):
        if frame["y"].iloc[lo:hi].isna().all():  # no target at all: the panel leaves it to the per-series path
            assert index in pending and index not in outcomes
            continue
        alone, batch = train_series(frame.iloc[lo:hi], cfg, "linear"), outcomes[index]
        assert (batch.status, batch.model_type, batch.reason) == (alone.status, alone.model_type, alone.reason)
        assert alone.status == "fallback" and type(batch.model) is Baseline
        assert batch.metrics.keys() == alone.metrics.keys()
        for name, value in alone.metrics.items():
            assert (math.isnan(value) and math.isnan(batch.metrics[name])) or \
                batch.metrics[name] == pytest.approx(value, rel=1e-12, abs=0), name
        assert batch.extra == alone.extra
        measured += alone.extra["holdout"] is not None
        one, many = alone.model, batch.model
        assert (many.method_, many.reason_, many.kinds_) == (one.method_, one.reason_, one.kinds_)
        assert many.recent_max_ == one.recent_max_ or (math.isnan(many.recent_max_) and math.isnan(one.recent_max_))
        assert many.tail_.equals(one.tail_)
        assert (batch.n_obs, batch.data_start, batch.data_end) == (alone.n_obs, alone.data_start, alone.data_end)
    assert len(outcomes) > 100 and 20 < measured < len(outcomes)  # with a holdout and without
