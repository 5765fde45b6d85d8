"""A stored model keeps its tail packed as arrays and unpacks it when read: the same frame, the same forecasts,
and models stored before tails were packed still load."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from mm_assets.forecasting.base import PackedTail
from mm_assets.forecasting.linear import LinearForecaster
from mm_assets.forecasting.series import SeriesConfig


def _model() -> tuple[LinearForecaster, pd.DataFrame]:
    cfg = SeriesConfig(frequency="D", horizon=7, season=7, regressors=("price",), min_train_periods=30)
    index = pd.date_range("2024-01-01", periods=500, freq="D", name="ds")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y": rng.poisson(20, 500).astype(float), "price": rng.uniform(2, 3, 500)}, index=index)
    return LinearForecaster(cfg).fit(frame), frame


def _future(frame: pd.DataFrame) -> pd.DataFrame:
    index = pd.date_range(frame.index[-1] + pd.Timedelta(days=1), periods=7, freq="D", name="ds")
    return pd.DataFrame({"price": 2.5}, index=index)


def test_a_stored_model_unpacks_the_same_tail_and_forecasts_the_same():
    model, frame = _model()
    restored = pickle.loads(pickle.dumps(model))
    assert restored.last_ds == frame.index[-1]
    assert isinstance(restored.__dict__["_tail"], PackedTail)  # the last period read without unpacking
    pd.testing.assert_frame_equal(restored.tail_, model.tail_, check_freq=False)
    assert restored.tail_.index.dtype == model.tail_.index.dtype and restored.tail_.index.name == "ds"
    np.testing.assert_array_equal(restored.predict(_future(frame)), model.predict(_future(frame)))
    assert restored.last_ds == frame.index[-1]


def test_a_model_stored_before_tails_were_packed_still_loads():
    model, frame = _model()
    state = dict(model.__dict__)
    state["tail_"] = state.pop("_tail")  # what older versions stored
    old = LinearForecaster.__new__(LinearForecaster)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.predict(_future(frame)), model.predict(_future(frame)))


def test_a_tail_that_cannot_be_packed_exactly_is_kept_as_it_is():
    frame = pd.DataFrame({"y": [1.0, 2.0], "note": ["a", "b"]}, index=pd.date_range("2024-01-01", periods=2))
    assert PackedTail.of(frame) is frame
    aware = pd.DataFrame({"y": [1.0]}, index=pd.date_range("2024-01-01", periods=1, tz="UTC"))
    assert PackedTail.of(aware) is aware
    assert PackedTail.of(None) is None
