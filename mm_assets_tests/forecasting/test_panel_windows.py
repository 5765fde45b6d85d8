"""Where a series' training window starts reading (``panel.window_starts``): the newest observed period at least
``periods`` back from the series' end, or 0. Most series are answered from one column; the rest by a search."""

from __future__ import annotations

import numpy as np

from mm_assets.forecasting.panel import window_start, window_starts


def _by_definition(y: np.ndarray, end: np.ndarray, periods: int) -> np.ndarray:
    out = []
    for row, n in zip(y, end, strict=True):
        candidates = [p for p in range(len(row)) if not np.isnan(row[p]) and p <= n - periods]
        out.append(max(candidates) if candidates else 0)
    return np.array(out)


def test_window_starts_equal_the_definition_on_gappy_panels():
    rng = np.random.default_rng(7)
    for _ in range(400):
        k, t = int(rng.integers(1, 12)), int(rng.integers(1, 40))
        y = rng.normal(size=(k, t))
        y[rng.random((k, t)) < rng.random()] = np.nan  # from no gaps to all missing
        end = rng.integers(0, t + 1, k)
        periods = int(rng.integers(0, t + 5))
        assert window_starts(y, end, periods).tolist() == _by_definition(y, end, periods).tolist()


def test_a_missing_period_at_the_window_edge_moves_the_start_back_to_an_observed_one():
    y = np.array([[1.0, 2.0, np.nan, np.nan, 5.0, 6.0],
                  [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                  [np.nan] * 6])
    assert window_starts(y, np.array([6, 6, 6]), 3).tolist() == [1, 3, 0]
    assert window_start(~np.isnan(y[0]), 3) == 1
