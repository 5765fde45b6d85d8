"""The gate's champion re-score: a champion that saw the challenger's holdout is refit on the data before it;
when its recipe is the challenger's, that refit is the challenger's own holdout model, so its score is taken from
the challenger rather than fitted again (the every-day case, for every series of a run)."""

from __future__ import annotations

import pandas as pd
import pytest

from mm_assets.demo.generator import DemoSpec, generate_sales
from mm_assets.forecasting.series import SeriesConfig, regularize
from mm_assets.forecasting.training import train_series
from mm_assets.parallel import promote_entry

CFG = SeriesConfig(frequency="D", horizon=14, season=7, regressors=("price", "promo"), min_train_periods=60)


def _rows() -> pd.DataFrame:
    frame = generate_sales(DemoSpec(stores=1, items=1, days=500, future_days=0, seed=5))
    frame = frame.rename(columns={"date": "ds", "sales": "y"})
    return frame[["ds", "y", "price", "promo"]].reset_index(drop=True)


@pytest.mark.parametrize("champion_params", [{}, {"alpha": 5.0}, {"max_train_periods": 200}])
def test_a_champion_that_saw_the_holdout_is_scored_as_its_recipe_refit(champion_params):
    rows = _rows()
    challenger = train_series(rows, CFG, "linear")  # today's: its holdout WAPE is the one to beat
    champion = train_series(rows, CFG, "linear", champion_params).model  # trained on every row: saw the holdout
    assert champion.last_ds == regularize(rows, CFG).index[-1]
    entry = {"model_type": "linear", "wape": challenger.metrics["wape"], "data_end": challenger.data_end}
    refit = promote_entry.champion_wape_on_holdout(entry, rows, CFG, champion)  # fitted again, series alone
    scored = promote_entry.champion_wape_on_holdout(entry, rows, CFG, champion, {})
    assert scored == pytest.approx(refit, rel=1e-9)
    if champion_params:  # another recipe: refit, and a different score
        assert refit != pytest.approx(challenger.metrics["wape"], rel=1e-6)
    else:  # the challenger's recipe: its own score, not fitted again
        assert scored == challenger.metrics["wape"]


def test_a_champion_trained_before_the_holdout_forecasts_as_it_is():
    rows = _rows()
    challenger = train_series(rows, CFG, "linear")
    older = train_series(rows.iloc[:-30], CFG, "linear").model  # yesterday's model, a month older
    entry = {"model_type": "linear", "wape": challenger.metrics["wape"], "data_end": challenger.data_end}
    wape = promote_entry.champion_wape_on_holdout(entry, rows, CFG, older, {})
    assert wape != pytest.approx(challenger.metrics["wape"], rel=1e-6)


def test_a_champion_trained_for_a_shorter_horizon_cannot_serve_and_says_why():
    from dataclasses import replace

    from mm_assets.forecasting.models import cannot_serve

    champion = train_series(_rows(), replace(CFG, horizon=7), "linear").model
    assert cannot_serve(champion, horizon=7, gap=0) is None
    why = cannot_serve(champion, horizon=14, gap=0)
    assert why == "it was trained for horizon + gap = 7 periods and the settings ask for 14 + 0 = 14"
