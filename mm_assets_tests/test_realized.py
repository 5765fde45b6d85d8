"""Realised accuracy: published forecasts against the actuals that arrived, with the baseline of the same days."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_assets.forecasting import baseline
from mm_assets.forecasting.panel import build_panel
from mm_assets.forecasting.series import SeriesConfig
from mm_assets.reporting.realized import ratios, realized_points

CFG = SeriesConfig(frequency="D", horizon=3, season=7, min_train_periods=5)
IDS = ["store", "item"]


def _dataset(days: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ds = pd.date_range("2026-01-01", periods=days, freq="D")
    rows = []
    for item, level in (("I1", 10.0), ("I2", 50.0)):
        y = level + 3 * np.sin(np.arange(days) * 2 * np.pi / 7) + rng.normal(0, 1, days)
        rows.append(pd.DataFrame({"store": "S1", "item": item, "ds": ds, "y": np.round(y, 1)}))
    return pd.concat(rows, ignore_index=True)


def test_points_pair_forecasts_with_actuals_and_the_baseline_of_the_same_days():
    data = _dataset()
    origin = pd.Timestamp("2026-02-01")
    preds = pd.DataFrame({
        "store": "S1", "item": ["I1"] * 3 + ["I2"] * 3, "origin": origin,
        "ds": list(pd.date_range(origin + pd.Timedelta(days=1), periods=3)) * 2,
        "yhat": [10.0, 11.0, 12.0, 50.0, 51.0, 52.0], "model_type": "linear", "model_version": 4,
        "model_source": "champion",
    })
    future = preds.assign(origin=pd.Timestamp("2026-02-09"), ds=preds["ds"] + pd.Timedelta(days=8))  # no actual yet
    points = realized_points(pd.concat([preds, future]), data, IDS, CFG)
    assert len(points) == 6 and (points["origin"] == origin).all() and list(points["lead"][:3]) == [1, 2, 3]
    actual = data.set_index(["item", "ds"])["y"]
    assert np.allclose(points["actual"], [actual[(i, d)] for i, d in zip(points["item"], points["ds"])])
    # the baseline from the history up to the origin, recomputed independently
    history = data[data["ds"] <= origin].sort_values(IDS + ["ds"], ignore_index=True)
    panel = build_panel(history, IDS, CFG)
    method, _ = baseline.choose_rows(panel.y, panel.length, CFG)
    expected = baseline.forecast_rows(panel.y, panel.length, method, 3, 0, CFG)
    assert np.allclose(points["baseline_yhat"].to_numpy().reshape(2, 3), expected)


def test_ratios_pool_sums_and_compare_with_the_baseline():
    points = pd.DataFrame({"store": "S1", "item": ["I1", "I1", "I2"], "lead": [1, 2, 1], "actual": [10.0, 10.0, 20.0],
                           "yhat": [12.0, 8.0, 20.0], "baseline_yhat": [14.0, 14.0, 10.0]})
    points = points.assign(points=1, sum_actual=points["actual"], sum_abs_error=(points["yhat"] - points["actual"]).abs(),
                           sum_error=points["yhat"] - points["actual"],
                           sum_baseline_abs_error=(points["baseline_yhat"] - points["actual"]).abs())
    by_series = ratios(points, ["store", "item"]).set_index("item")
    assert by_series.loc["I1", "wape"] == 0.2 and by_series.loc["I1", "bias"] == 0.0
    assert by_series.loc["I1", "mase_vs_baseline"] == 0.5 and by_series.loc["I2", "mase_vs_baseline"] == 0.0
    assert ratios(points, ["lead"]).set_index("lead").loc[1, "points"] == 2


def test_a_run_judges_the_new_periods_and_the_newest_judged_ones_again():
    from mm_assets.reporting.realized import judged_span

    newest = pd.Timestamp("2026-03-01")
    first = judged_span(newest, None, CFG, window=10, rejudge=1)
    assert first.ds_from is None and first.first_origin == first.origin_from
    assert pd.Timestamp(first.origin_from) == newest - pd.Timedelta(days=2 * 3 + 10)
    through = pd.Timestamp("2026-02-27").to_pydatetime()
    again = judged_span(newest, through, CFG, window=10, rejudge=1)
    assert again.ds_from == through  # the newest judged period is judged again
    assert judged_span(newest, through, CFG, window=10, rejudge=0).ds_from == pd.Timestamp("2026-02-28")
    assert judged_span(newest, through, CFG, window=10, rejudge=3).ds_from == pd.Timestamp("2026-02-25")
    # origins that cannot reach the first judged period are not read: a forecast reaches gap + horizon periods
    assert again.first_origin == pd.Timestamp("2026-02-24")
    # never before the window's origins
    old = judged_span(newest, pd.Timestamp("2025-01-01").to_pydatetime(), CFG, window=10, rejudge=1)
    assert old.ds_from == pd.Timestamp(old.origin_from) + pd.Timedelta(days=1)


def test_a_period_corrected_since_it_was_judged_is_judged_again_within_the_window():
    from mm_assets.reporting.realized import corrected_since, judged_span

    newest = pd.Timestamp("2026-03-01")
    through = pd.Timestamp("2026-02-27").to_pydatetime()
    span = judged_span(newest, through, CFG, window=10, rejudge=1, corrected_from=pd.Timestamp("2026-02-20"))
    assert span.ds_from == pd.Timestamp("2026-02-20")
    assert span.first_origin == pd.Timestamp("2026-02-17")  # the origins whose forecasts reach it
    # never before the window's origins, and a correction after the newest judged period changes nothing
    old = judged_span(newest, through, CFG, window=10, rejudge=1, corrected_from=pd.Timestamp("2025-06-01"))
    assert old.ds_from == pd.Timestamp(old.origin_from) + pd.Timedelta(days=1)
    assert judged_span(newest, through, CFG, window=10, rejudge=1,
                       corrected_from=pd.Timestamp("2026-02-28")).ds_from == through

    judged_at = pd.Timestamp("2026-03-02 06:00").to_pydatetime()
    log = pd.DataFrame({"period": ["2026-02-10", "2026-02-25", "2026-02-20"],
                        "rewritten_at": pd.to_datetime(["2026-03-01 06:00", "2026-03-02 07:00", "2026-03-03 06:00"])})
    assert corrected_since(log, judged_at) == pd.Timestamp("2026-02-20")  # the oldest corrected after judging
    assert corrected_since(log, pd.Timestamp("2026-03-04").to_pydatetime()) is None
    assert corrected_since(log, None) is None  # nothing judged yet: everything is judged anyway
    assert corrected_since(log.iloc[:0], judged_at) is None
