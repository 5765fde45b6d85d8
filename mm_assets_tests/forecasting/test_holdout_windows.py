"""A holdout of several windows of the horizon: where they are, that no window is forecast by a model that saw it,
and that every training path (per series, the vectorised linear batch, the global model) and the gate's re-scoring
of a champion lay them out alike."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting import holdout
from mm_assets.forecasting.batch_linear import train_linear_batch
from mm_assets.forecasting.global_training import train_global
from mm_assets.forecasting.series import SeriesConfig
from mm_assets.forecasting.training import train_series
from mm_assets.ids import series_keys
from mm_assets.parallel.promote_entry import challenger_windows, champion_on_holdout
from mm_assets.runs import slice_boundaries

from .synthetic import retail_panel

IDS = ["store", "item"]
WEEKLY = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52, regressors=("price", "deal", "display"),
                      min_train_periods=20, holdout_periods=8)
FAST = {"num_boost_round": 40}


def _slices(frame: pd.DataFrame) -> list[tuple[int, int]]:
    starts, stops = slice_boundaries(series_keys(frame, IDS).to_numpy())
    return list(zip(starts, stops))


def test_windows_cover_holdout_periods_as_far_as_the_history_allows():
    cfg = dataclasses.replace(WEEKLY, min_train_periods=10)
    assert cfg.holdout_windows == 4
    # 10 + 1 + 2 periods: one window; each horizon more adds one, up to four
    assert holdout.windows([5, 12, 13, 14, 15, 17, 19, 500], cfg).tolist() == [1, 1, 1, 1, 2, 3, 4, 4]
    assert dataclasses.replace(cfg, holdout_periods=7).holdout_windows == 4  # at least the periods asked
    # windows and their lead time take at most half of a history: the model judged is fitted on most of it
    wide = dataclasses.replace(cfg, min_train_periods=2, holdout_periods=40)
    assert holdout.windows([20, 41, 338], wide).tolist() == [4, 9, 20]
    assert dataclasses.replace(cfg, holdout_periods=0).holdout_windows == 1
    assert dataclasses.replace(cfg, horizon=28, holdout_periods=8).holdout_windows == 1
    # the model is fitted before the windows and the lead time; window 0 (the newest) ends at the data's end
    assert holdout.fit_lengths([100], [4], cfg).tolist() == [100 - 1 - 8]
    assert holdout.origin_lengths([100], 0, cfg).tolist() == [100 - 1 - 2]
    assert holdout.origin_lengths([100], 3, cfg).tolist() == holdout.fit_lengths([100], [4], cfg).tolist()


def _frame(seed: int = 3) -> pd.DataFrame:
    frame = retail_panel(stores=2, items=4, weeks=90, seed=seed, missing=0.0)
    # one series only long enough for two windows: 20 + 1 + 2 + 2 periods
    short = frame[(frame["store"] == frame["store"].iloc[0]) & (frame["item"] == frame["item"].iloc[0])]
    keep = ~frame.index.isin(short.index[: len(short) - 25])
    return frame[keep].sort_values([*IDS, "ds"], ignore_index=True)


def _after_the_fit_scaled(frame: pd.DataFrame, cfg: SeriesConfig, factor: float) -> pd.DataFrame:
    """Each series' actuals after the holdout model's data (its windows and the lead time before) × ``factor``."""
    out = frame.copy()
    for lo, hi in _slices(frame):
        n = hi - lo
        cut = lo + int(holdout.fit_lengths(n, holdout.windows(n, cfg), cfg))
        out.loc[cut:hi - 1, "y"] *= factor
    return out


def _per_series(frame, cfg, model_type):
    return {i: train_series(frame.iloc[lo:hi], cfg, model_type) for i, (lo, hi) in enumerate(_slices(frame))}


def _global(frame, cfg):
    return train_global(frame, IDS, cfg, FAST)[1]


def _linear_batch(frame, cfg):
    outcomes, pending = train_linear_batch(frame, IDS, cfg)
    assert not pending
    return outcomes


PATHS = {"linear per series": lambda f, c: _per_series(f, c, "linear"), "linear batch": _linear_batch,
         "ets": lambda f, c: _per_series(f, c, "ets"), "lightgbm": _global}


@pytest.mark.parametrize("path", list(PATHS))
def test_no_window_is_forecast_by_a_model_that_saw_it(path):
    """The holdout model is fitted before the first window: the actuals of the windows change its forecasts of
    the first window not at all, and those of the later ones only through the history each is forecast from."""
    frame = _frame()
    train = PATHS[path]
    before, after = train(frame, WEEKLY), train(_after_the_fit_scaled(frame, WEEKLY, 3.0), WEEKLY)
    assert before.keys() == after.keys() and len(before) == 8
    windows = []
    for index, outcome in before.items():
        record, changed = outcome.extra["holdout"], after[index].extra["holdout"]
        w = int(outcome.metrics["holdout_periods"]) // WEEKLY.horizon
        windows.append(w)
        assert len(record["forecast"]) == w * WEEKLY.horizon
        assert len(record["ds"]) == len(record["actual"]) == (w + 2) * WEEKLY.horizon  # two horizons before
        assert outcome.metrics["holdout_points"] <= w * WEEKLY.horizon
        # the oldest window is forecast from the holdout model's own data: as it was
        np.testing.assert_allclose(changed["forecast"][:2], record["forecast"][:2], rtol=1e-9)
        # the newer ones read the (changed) actuals before them (ets here fits a level that barely moves), and
        # the metrics all of them
        if path != "ets":
            assert not np.allclose(changed["forecast"][2:], record["forecast"][2:], rtol=1e-6)
        assert after[index].metrics["wape"] != pytest.approx(outcome.metrics["wape"])
    assert sorted(windows) == [2] + [4] * 7  # the short series is judged on the two windows it has


@pytest.mark.parametrize("path", ["linear batch", "lightgbm", "linear per series"])
def test_the_batch_paths_judge_each_series_as_the_per_series_rules_do(path):
    """The vectorised paths' holdout metrics: those of their own forecasts of each window, against the baseline
    chosen at the holdout model's data and forecast from each window's origin, as ``training`` computes one
    series', with the envelope's reference at the holdout model's data end (``fit_recent_max``: 0 for a series
    that sold nothing there)."""
    from mm_assets.forecasting import envelope
    from mm_assets.forecasting.baseline import Baseline
    from mm_assets.forecasting.metrics import forecast_metrics
    from mm_assets.forecasting.series import regularize

    frame = _frame(seed=8)
    silent = (frame["store"] == frame["store"].iloc[-1]) & (frame["item"] == frame["item"].iloc[-1])
    frame.loc[silent & (frame.index < frame.index[silent][-8]), "y"] = 0.0  # no sale before its holdout windows
    outcomes = PATHS[path](frame, WEEKLY)
    for index, (lo, hi) in enumerate(_slices(frame)):
        outcome = outcomes[index]
        regular = regularize(frame.iloc[lo:hi], WEEKLY)
        w = int(holdout.windows(len(regular), WEEKLY))
        n_fit = int(holdout.fit_lengths(len(regular), w, WEEKLY))
        yardstick = Baseline(WEEKLY).fit(regular.iloc[:n_fit])
        base, actual = [], []
        for j in reversed(range(w)):
            n = int(holdout.origin_lengths(len(regular), j, WEEKLY))
            test = regular.iloc[n + WEEKLY.gap:n + WEEKLY.gap + WEEKLY.horizon]
            base.append(yardstick.predict(test, history=regular.iloc[:n]))
            actual.append(test["y"].to_numpy(dtype=float))
        forecast = np.array(outcome.extra["holdout"]["forecast"], dtype=float)
        expected = forecast_metrics(np.concatenate(actual), forecast, regular["y"].to_numpy()[:n_fit], WEEKLY.season,
                                    y_baseline=np.concatenate(base))
        for name in ("wape", "mase", "rel_mae_baseline", "rel_rmse_baseline", "holdout_points"):
            assert outcome.metrics[name] == pytest.approx(expected[name], rel=1e-3, nan_ok=True), (index, name)
        fit_max = envelope.recent_max(regular["y"].to_numpy()[:n_fit], WEEKLY)
        assert outcome.metrics["fit_recent_max"] == pytest.approx(fit_max), index
    assert outcomes[len(outcomes) - 1].metrics["fit_recent_max"] == 0.0  # the silent series


def test_several_windows_make_the_global_model_refit_on_everything():
    frame = _frame()
    _, outcomes, _ = train_global(frame, IDS, WEEKLY, {**FAST, "max_train_rows": 100})  # sampled: no refit…
    assert "refitted on every period" in outcomes[1].reason and "4 holdout windows" in outcomes[1].reason
    one = dataclasses.replace(WEEKLY, holdout_periods=0)
    _, alone, _ = train_global(frame, IDS, one, {**FAST, "max_train_rows": 100})
    assert "the holdout fit is served" in alone[1].reason  # …with one window, the sampled holdout fit serves


def test_the_gate_rescores_a_champion_on_the_challengers_windows():
    frame = _frame()
    lo, hi = _slices(frame)[1]
    rows = frame.iloc[lo:hi]
    outcome = train_series(rows, WEEKLY, "linear")
    champion = train_series(rows.iloc[:-10], WEEKLY, "linear").model  # trained before the holdout
    entry = {"data_end": rows["ds"].max(), "metrics": json.dumps(outcome.metrics)}
    assert challenger_windows(entry, WEEKLY) == 4
    assert challenger_windows({"data_end": rows["ds"].max(), "metrics": "{}"}, WEEKLY) == 1  # recorded before
    actual, prediction, base = champion_on_holdout(entry, rows, WEEKLY, champion)
    np.testing.assert_allclose(actual, [np.nan if v is None else v for v in outcome.extra["holdout"]["actual"][4:]])
    assert len(prediction) == len(base) == 8
    # the champion of the challenger's own recipe and data scores what the challenger scored
    same, same_pred, _ = champion_on_holdout(entry, rows, WEEKLY, outcome.model)
    np.testing.assert_allclose(same_pred, outcome.extra["holdout"]["forecast"], atol=1e-4)  # the record's rounding
