"""The backtest's own horizon, gap and spacing, as the backtest and its metrics both read them."""

from __future__ import annotations

from mm_assets.assets.evaluation import BacktestConfig, backtest_window
from mm_assets_tests.conftest import tiny_settings


def test_the_runs_horizon_gap_and_spacing_override_the_settings_and_an_explicit_zero_gap_is_kept(tmp_path):
    settings = tiny_settings(tmp_path, gap=1)
    run, every = backtest_window(settings, BacktestConfig())
    assert (run.horizon, run.gap, every) == (14, 1, 14)  # the settings', origins a horizon apart
    run, every = backtest_window(settings, BacktestConfig(horizon=3, gap=0))
    assert (run.horizon, run.gap, every) == (3, 0, 3)
    run, every = backtest_window(settings, BacktestConfig(horizon=3, every=1))
    assert (run.horizon, run.gap, every) == (3, 1, 1)
