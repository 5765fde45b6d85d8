"""The digest of what a model version was fitted from: equal for the same rows in any order, changed by any value
of its own rows, by the recipe, and (for a batch) by any series of the batch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_assets.forecasting.fit_digest import batch_digest, fit_digest, recipe_text, same_fit, series_digests
from mm_assets.forecasting.series import SeriesConfig

IDS = ["store", "item"]


def _frame() -> pd.DataFrame:
    ds = pd.date_range("2026-01-05", periods=6, freq="W-MON")
    return pd.concat([pd.DataFrame({"store": s, "item": "I1", "ds": ds, "y": np.arange(6.0) + k,
                                    "price": 2.0 + k, "promo": [0.0, 1, 0, 0, 1, 0]})
                      for k, s in enumerate(["S1", "S2", "S3"])], ignore_index=True)


def _digests(frame: pd.DataFrame) -> np.ndarray:
    starts = np.flatnonzero(frame["store"].ne(frame["store"].shift()).to_numpy())
    return series_digests(frame, starts, np.r_[starts[1:], len(frame)], IDS)


def test_a_series_digest_is_its_rows_in_any_order_and_changes_with_any_value_of_its_own():
    frame = _frame()
    before = _digests(frame)
    assert len(set(before.tolist())) == 3
    shuffled = pd.concat([g.sample(frac=1.0, random_state=1) for _, g in frame.groupby("store")], ignore_index=True)
    assert (_digests(shuffled) == before).all()
    for column, value in (("y", 99.0), ("price", 2.5), ("promo", 1.0), ("ds", pd.Timestamp("2027-01-04"))):
        changed = frame.copy()
        changed.loc[8, column] = value  # a row of S2
        after = _digests(changed)
        assert after[1] != before[1] and after[0] == before[0] and after[2] == before[2], column
    missing = frame.copy()
    missing.loc[7, "y"] = np.nan
    assert _digests(missing)[1] != before[1]
    renamed = frame.assign(store=frame["store"].str.lower())  # the ids say which series, not what it holds
    assert (_digests(renamed) == before).all()


def test_a_batch_digest_knows_which_series_each_rows_are_and_every_series_of_the_batch():
    digests = _digests(_frame())
    keys = ["S1/I1", "S2/I1", "S3/I1"]
    whole = batch_digest(keys, digests)
    assert batch_digest(keys[::-1], digests[::-1]) == whole  # the order of the series does not count
    assert batch_digest(["S1/I1", "S3/I1", "S2/I1"], digests) != whole  # nor may two series swap their rows
    assert batch_digest(keys[:2], digests[:2]) != whole  # a series fewer
    other = digests.copy()
    other[2] += np.uint64(1)
    assert batch_digest(keys, other) != whole


def test_a_fit_is_the_same_only_for_the_same_recipe_and_data_and_never_when_unknown():
    cfg = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52, regressors=("price",))
    recipe = recipe_text("lightgbm", {"objective": "l2"}, cfg)
    digest = fit_digest(recipe, 12345)
    assert float(digest).is_integer() and 0 <= digest < 2 ** 48  # exact as a JSON number
    assert same_fit(digest, fit_digest(recipe, 12345))
    assert not same_fit(digest, fit_digest(recipe, 12346))
    assert not same_fit(digest, fit_digest(recipe_text("lightgbm", {"objective": "tweedie"}, cfg), 12345))
    assert not same_fit(digest, fit_digest(recipe_text("linear", {"objective": "l2"}, cfg), 12345))
    longer = SeriesConfig(frequency="W-MON", horizon=4, gap=1, season=52, regressors=("price",))
    assert not same_fit(digest, fit_digest(recipe_text("lightgbm", {"objective": "l2"}, longer), 12345))
    assert not same_fit(float("nan"), float("nan")) and not same_fit(None, digest) and not same_fit(digest, "x")
