"""The gate's champion re-score: a champion that saw the challenger's holdout is refit on the data before it;
when its recipe is the challenger's, that refit is the challenger's own holdout model, so its score is taken from
the challenger rather than fitted again (the every-day case, for every series of a run)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mm_assets.demo.generator import DemoSpec, generate_sales
from mm_assets.forecasting.series import SeriesConfig, regularize
from mm_assets.forecasting.training import train_series
from mm_assets.parallel import promote_entry
from mm_assets.registry.promotion import PROMOTED, GateRule, decide

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
    same = promote_entry.refits_as_challenger(entry, CFG, champion, {})
    if champion_params:  # another recipe: refit, and a different score
        assert refit != pytest.approx(challenger.metrics["wape"], rel=1e-6) and not same
    else:  # the challenger's recipe: its own score, not fitted again, and the reason says so
        assert scored == challenger.metrics["wape"] and same
        older = train_series(rows.iloc[:-30], CFG, "linear").model  # trained before the holdout: compared for real
        assert not promote_entry.refits_as_challenger(entry, CFG, older, {})
        decision, reason = decide(GateRule(), "linear", "trained", 0.9, 0.5, scored, scored, True, rel_baseline=0.8,
                                  same_recipe=same)
        assert decision == PROMOTED and "same model type and options fitted on older data" in reason
        assert "<= champion's" not in reason  # no comparison is quoted that did not happen


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


def test_a_global_champion_is_judged_against_a_challenger_of_another_type_by_its_recipe_refit():
    """Rule c for a global champion: its recipe refitted on the mini-batch before the holdout, one fit for all."""
    from types import SimpleNamespace

    from mm_assets.forecasting.global_training import train_global
    from mm_assets.ids import series_key
    from mm_assets.parallel.contract import MiniBatchContext, series_in
    from mm_assets_tests.forecasting.synthetic import retail_panel

    ids = ["store", "item"]
    weekly = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52, regressors=("price", "deal", "display"),
                          min_train_periods=20)
    panel = retail_panel(stores=2, items=4, weeks=110, seed=3)
    params = {"num_boost_round": 40}
    champion, _, _ = train_global(panel, ids, weekly, params)  # yesterday's default model, saw the holdout
    _, outcomes, _ = train_global(panel, ids, weekly, {**params, "refit": False})  # its recipe's holdout fit
    series = series_in(panel, MiniBatchContext({}), ids)
    data_end = {series_key(i): panel.iloc[lo:hi].dropna(subset=["y"])["ds"].max() for lo, hi, i in series}
    manifest = {key: {"version": 2, "model_type": "linear", "data_end": end, "champion_version": 1,
                      "champion_artifact_uri": "bundle", "champion_artifact_offset": 0,
                      "champion_artifact_size": 10**6} for key, end in data_end.items()}
    cache = SimpleNamespace(model=lambda uri, offset, size: champion)
    settings = SimpleNamespace(model=SimpleNamespace(type="linear", params={}))
    saved = dict(promote_entry._state)
    promote_entry._state.update(cfg=weekly, settings=settings, manifest=manifest, cache=cache)
    try:
        refits = promote_entry.global_champion_refits(panel, series, ids)
        assert set(refits) == set(data_end)  # every series: judged, one fit for the mini-batch
        for index, (_, _, i) in enumerate(series):  # the recipe's own holdout WAPE, series by series
            assert refits[series_key(i)] == pytest.approx(outcomes[index].metrics["wape"], rel=1e-9)
        for entry in manifest.values():  # the same recipe: no refit (the fresher model wins a tie)
            entry["model_type"] = "lightgbm"
        settings.model = SimpleNamespace(type="lightgbm", params=params)
        assert promote_entry.global_champion_refits(panel, series, ids) == {}
        # ... and its score is the challenger's own holdout WAPE: a tie the fresher model wins, said as such
        key = series_key(series[0][2])
        entry = {**manifest[key], "wape": 0.3}
        view = champion.for_series(series[0][2])
        assert promote_entry.champion_wape_on_holdout(entry, panel, weekly, view, params) == 0.3
    finally:
        promote_entry._state.clear()
        promote_entry._state.update(saved)


def test_a_global_champion_is_not_refitted_on_fewer_series_than_it_learnt_from(monkeypatch):
    """Refitted on one store's series, a global champion that had learnt from a whole run is another, weaker model:
    the challenger won against that (cheese, after model.type changed: 0.652 against a refit's 0.659, where the
    champion's own score on the very same holdout was 0.220). On the same data its own holdout WAPE is taken; on
    newer data, refitting it on fewer series than it learnt from is refused, and the reason says why."""
    from types import SimpleNamespace

    from mm_assets.forecasting.global_training import BATCH_SERIES, train_global
    from mm_assets.forecasting.metrics import metrics_json
    from mm_assets.ids import series_key
    from mm_assets.parallel.contract import MiniBatchContext, series_in
    from mm_assets.registry.promotion import KEPT_CHAMPION
    from mm_assets_tests.forecasting.synthetic import retail_panel

    ids = ["store", "item"]
    weekly = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52, regressors=("price", "deal", "display"),
                          min_train_periods=20)
    panel = retail_panel(stores=2, items=4, weeks=110, seed=3)
    params = {"num_boost_round": 40}
    champion, whole, _ = train_global(panel, ids, weekly, params)  # learnt from the 8 series of both stores
    store = panel[panel["store"] == panel["store"].iloc[0]].reset_index(drop=True)  # the promotion's mini-batch
    series = series_in(store, MiniBatchContext({}), ids)
    challenger = train_series(store.iloc[series[0][0]:series[0][1]].reset_index(drop=True), weekly, "linear")
    first = whole[0]
    assert first.metrics[BATCH_SERIES] == 8 and len(series) == 4
    same_data = {"version": 2, "model_type": "linear", "status": "trained", "accuracy": 0.6, "mase": 0.5,
                 "rel_baseline": 0.8, "wape": first.metrics["wape"] + 0.05, "data_end": first.data_end,
                 "champion_version": 1, "champion_artifact_uri": "bundle", "champion_artifact_offset": 0,
                 "champion_artifact_size": 10**6, "metrics": metrics_json(challenger.metrics),
                 "champion_metrics": metrics_json(first.metrics), "champion_holdout_wape": first.metrics["wape"],
                 "champion_holdout_end": first.data_end}
    key = series_key(series[0][2])
    state = {"cfg": weekly, "rule": GateRule(), "manifest": {key: same_data},
             "cache": SimpleNamespace(model=lambda uri, offset, size: champion),
             "settings": SimpleNamespace(model=SimpleNamespace(type="linear", params={}))}
    monkeypatch.setattr(promote_entry, "_state", state)
    assert promote_entry.global_champion_refits(store, series, ids) == {}  # its own holdout is this one
    row = promote_entry._judge(lambda: store.iloc[series[0][0]:series[0][1]], series[0][2], ids, {})
    assert row["decision"] == KEPT_CHAMPION and row["champion_wape"] == first.metrics["wape"]
    # a week later: the champion saw the holdout, and the mini-batch holds 4 of the 8 series it learnt from; its
    # own holdout of a week before stands in (a worse challenger of another type passed unjudged before)
    week = first.data_end - pd.Timedelta(weeks=1)
    state["manifest"][key] = {**same_data, "champion_holdout_end": week}
    refits = promote_entry.global_champion_refits(store, series, ids)
    assert refits == {key: "its global model learnt from 8 series, and refitted on the 1 series handed here it "
                           "would be another, weaker model"}
    row = promote_entry._judge(lambda: store.iloc[series[0][0]:series[0][1]], series[0][2], ids, refits)
    assert row["decision"] == KEPT_CHAMPION and row["champion_wape"] == first.metrics["wape"]
    assert row["reason"].endswith(f"(the champion's WAPE on its own holdout, ending {week.date()}: a global model of "
                                  "another model type or options is not refitted on this one; its global model "
                                  "learnt from 8 series, and refitted on the 1 series handed here it would be "
                                  "another, weaker model)")
    better = {**state["manifest"][key], "wape": first.metrics["wape"] - 0.01}
    state["manifest"][key] = better
    assert promote_entry._judge(lambda: store, series[0][2], ids, refits)["decision"] == PROMOTED
    # a champion whose own holdout ended more than a horizon before: nothing near to compare with, and said so
    state["manifest"][key] = {**same_data, "champion_holdout_end": first.data_end - pd.Timedelta(weeks=3)}
    row = promote_entry._judge(lambda: store.iloc[series[0][0]:series[0][1]], series[0][2], ids, refits)
    assert row["decision"] == PROMOTED and pd.isna(row["champion_wape"])
    assert row["reason"].endswith("the champion could not be re-scored on the holdout (its global model learnt "
                                  "from 8 series, and refitted on the 1 series handed here it would be another, "
                                  "weaker model)")


def test_a_global_champion_of_other_series_is_judged_by_its_own_holdout_on_the_same_data():
    """The same options fitted on other series (a store re-run alone) are another model: on the same data its
    own holdout WAPE is the champion's score on this holdout, and a worse challenger keeps it; on newer data it
    cannot be re-scored, and the reason says so."""
    import json

    from mm_assets.forecasting.global_training import BATCH_ID, BATCH_SERIES, train_global
    from mm_assets.forecasting.metrics import FINGERPRINT, metrics_json
    from mm_assets.registry.promotion import KEPT_CHAMPION
    from mm_assets_tests.forecasting.synthetic import retail_panel

    ids = ["store", "item"]
    weekly = SeriesConfig(frequency="W-MON", horizon=2, gap=1, season=52, regressors=("price", "deal", "display"),
                          min_train_periods=20)
    panel = retail_panel(stores=2, items=4, weeks=110, seed=3)
    params = {"num_boost_round": 40}
    champion, whole, _ = train_global(panel, ids, weekly, params)  # the run of both stores
    alone = panel[panel["store"] == panel["store"].iloc[0]].reset_index(drop=True)
    _, single, _ = train_global(alone, ids, weekly, params)  # one store re-run alone: same options, 4 series
    first = whole[0]
    assert first.metrics[BATCH_SERIES] == 8 and single[0].metrics[BATCH_SERIES] == 4
    assert first.metrics[BATCH_ID] != single[0].metrics[BATCH_ID]
    entry = {"model_type": "lightgbm", "wape": first.metrics["wape"] + 0.05, "data_end": first.data_end,
             "metrics": metrics_json(single[0].metrics), "champion_metrics": metrics_json(first.metrics),
             "champion_holdout_wape": first.metrics["wape"], "champion_holdout_end": first.data_end}
    view = champion.for_series([str(v) for v in panel.loc[0, ids]])
    assert not promote_entry.refits_as_challenger(entry, weekly, view, params)  # not the challenger's recipe
    scored = promote_entry.champion_wape_on_holdout(entry, panel, weekly, view, params)
    assert scored == first.metrics["wape"]
    decision, reason = decide(GateRule(), "lightgbm", "trained", 0.7, 0.5, entry["wape"], scored, True,
                              rel_baseline=0.8)
    assert decision == KEPT_CHAMPION and "worse than the champion's" in reason
    # the same series learnt from, on the same data end: still its own holdout WAPE (one row of another series,
    # a period file rebuilt, refits every series of a global model differently)
    same = {**entry, "metrics": json.dumps({BATCH_ID: first.metrics[BATCH_ID]})}
    assert not promote_entry.refits_as_challenger(same, weekly, view, params)
    assert promote_entry.champion_wape_on_holdout(same, panel, weekly, view, params) == first.metrics["wape"]
    # ... and on older data (every day): the challenger's own recipe, whose refit is the challenger
    yesterday = {**same, "champion_holdout_end": first.data_end - pd.Timedelta(weeks=1)}
    assert promote_entry.refits_as_challenger(yesterday, weekly, view, params)
    # newer data than the champion's, learnt from other series: its own holdout is another one, not re-scored
    later = {**entry, "champion_holdout_end": first.data_end - pd.Timedelta(weeks=1)}
    assert pd.isna(promote_entry.champion_wape_on_holdout(later, panel, weekly, view, params))
    # the same data end after a late correction of a holdout period: other actuals, so the champion's recorded
    # WAPE is of data that are no longer the source's; the same recipe's refit is the challenger itself
    corrected = {**same, "metrics": json.dumps({BATCH_ID: first.metrics[BATCH_ID],
                                                FINGERPRINT: first.metrics[FINGERPRINT] * 3})}
    assert pd.isna(promote_entry.holdout_wape_on_the_same_data(corrected))
    assert promote_entry.refits_as_challenger(corrected, weekly, view, params)
    other_batch = {**entry, "metrics": metrics_json({**single[0].metrics, FINGERPRINT: first.metrics[FINGERPRINT] * 3})}
    assert pd.isna(promote_entry.champion_wape_on_holdout(other_batch, panel, weekly, view, params))
    # the gate's reason for it says why (every series of a run, on the day a series came or left): it read as if
    # something had failed
    from types import SimpleNamespace

    from mm_assets.ids import series_key

    ids_of = [str(v) for v in panel.loc[0, ids]]
    judged = {**later, "version": 2, "status": "trained", "accuracy": 0.7, "mase": 0.5, "rel_baseline": 0.8,
              "champion_version": 1, "champion_artifact_uri": "bundle", "champion_artifact_offset": 0,
              "champion_artifact_size": 10**6}
    saved = dict(promote_entry._state)
    promote_entry._state.update(cfg=weekly, rule=GateRule(), manifest={series_key(ids_of): judged},
                                cache=SimpleNamespace(model=lambda uri, offset, size: champion),
                                settings=SimpleNamespace(model=SimpleNamespace(type="lightgbm", params=params)))
    try:
        row = promote_entry._judge(lambda: panel, ids_of, ids, {})
    finally:
        promote_entry._state.clear()
        promote_entry._state.update(saved)
    assert row["decision"] == "promoted" and row["reason"].endswith(
        "the champion could not be re-scored on the holdout: it is the same model type and options fitted on older "
        "data of another set of series (a series came to or left the run), which only refitting every series it "
        "learnt from could score here: the fresher model replaces it")


def test_a_champion_trained_with_a_regressor_the_settings_dropped_does_not_hold_its_series(monkeypatch):
    """Before: re-scoring it read the dropped column (KeyError) and the gate failed for its series every day, so a
    passing challenger trained without the column was never promoted."""
    from dataclasses import replace
    from types import SimpleNamespace

    from mm_assets.forecasting.models import cannot_serve
    from mm_assets.registry.promotion import GateRule

    rows = _rows()
    champion = train_series(rows, CFG, "linear").model  # trained with price and promo
    today = replace(CFG, regressors=("price",))  # promo removed from columns.regressors
    challenger = train_series(rows.drop(columns="promo"), today, "linear")
    assert cannot_serve(champion, today.horizon, today.gap, today.regressors) == (
        "it was trained with the regressor promo, which the settings (columns.regressors) no longer have")
    assert cannot_serve(champion, CFG.horizon, CFG.gap, CFG.regressors) is None
    entry = {"model_type": "linear", "status": "trained", "version": 2.0, "champion_version": 1.0,
             "accuracy": challenger.metrics["accuracy"], "mase": 0.5, "wape": challenger.metrics["wape"],
             "rel_baseline": 0.8, "data_end": challenger.data_end, "champion_artifact_uri": "bundle",
             "champion_artifact_offset": 0, "champion_artifact_size": 10}
    state = {"cfg": today, "rule": GateRule(), "manifest": {"S1/I1": entry},
             "cache": SimpleNamespace(model=lambda uri, offset, size: champion),
             "settings": SimpleNamespace(model=SimpleNamespace(type="linear", params={}))}
    monkeypatch.setattr(promote_entry, "_state", state)
    row = promote_entry._judge(lambda: rows.drop(columns="promo"), ["S1", "I1"], ["store", "item"])
    assert row["decision"] == "promoted"
    assert row["reason"].endswith("the champion cannot forecast with these settings: it was trained with the "
                                  "regressor promo, which the settings (columns.regressors) no longer have")


def test_a_champion_trained_on_another_target_is_not_scored_and_says_why(monkeypatch):
    """After columns.target changed, a champion the gate kept (its challenger did not pass) forecast the old
    column: published as the champion's forecast in another unit. Scoring now serves the baseline and says why."""
    from dataclasses import replace
    from types import SimpleNamespace

    from mm_assets.forecasting.models import cannot_serve
    from mm_assets.parallel import score_entry

    units = replace(CFG, target="sales")
    champion = train_series(_rows(), units, "linear").model
    revenue = replace(CFG, target="revenue")
    assert cannot_serve(champion, revenue.horizon, revenue.gap, revenue.regressors, revenue.target) == (
        "it was trained to forecast sales, and the settings now forecast revenue (columns.target)")
    assert cannot_serve(champion, units.horizon, units.gap, units.regressors, units.target) is None
    older = train_series(_rows(), CFG, "linear").model  # stored before the target was kept: not judged on it
    assert cannot_serve(older, revenue.horizon, revenue.gap, revenue.regressors, revenue.target) is None
    entry = {"version": 3, "artifact_uri": "bundle", "artifact_offset": 0, "artifact_size": 10}
    monkeypatch.setattr(score_entry, "_state", {"cfg": revenue,
                                                "cache": SimpleNamespace(model=lambda uri, offset, size: champion)})
    model, note = score_entry._entry_model(entry, ["S1", "I1"])
    assert model is None and note == ("model v3 cannot forecast with these settings: it was trained to forecast "
                                      "sales, and the settings now forecast revenue (columns.target)")
    score_entry._state["cfg"] = units
    assert score_entry._entry_model(entry, ["S1", "I1"]) == (champion, None)


def _judged_alone(monkeypatch, entry: dict, champion, rows: pd.DataFrame) -> dict:
    """The gate's decision for series S1/I1 of manifest ``entry``, its champion ``champion``, its rows ``rows``."""
    from types import SimpleNamespace

    state = {"cfg": CFG, "rule": GateRule(), "manifest": {"S1/I1": entry},
             "cache": SimpleNamespace(model=lambda uri, offset, size: champion),
             "settings": SimpleNamespace(model=SimpleNamespace(type="linear", params={}),
                                         promotion=SimpleNamespace(prior_points=8.0))}
    monkeypatch.setattr(promote_entry, "_state", state)
    return promote_entry._judge(lambda: rows, ["S1", "I1"], ["store", "item"])


def test_a_champion_whose_recipe_does_not_beat_the_baseline_on_the_newest_holdout_is_retired(monkeypatch):
    """The challenger is the champion's recipe fitted before the holdout (every day's case): when it does not beat
    the baseline, neither does the champion on that evidence, so the champion is retired and the baseline serves
    the series until a challenger passes. Before, it served on while every challenger failed (a trial: 9 days at
    5 times the baseline's realised error). A champion trained before the holdout, judged on its own, stays."""

    from mm_assets.registry.promotion import CHAMPION_RETIRED

    rows = _rows()
    challenger = train_series(rows, CFG, "linear")
    entry = {"model_type": "linear", "status": "trained", "version": 2.0, "champion_version": 1.0,
             "accuracy": challenger.metrics["accuracy"], "mase": 0.5, "wape": challenger.metrics["wape"],
             "rel_baseline": 1.08, "data_end": challenger.data_end, "champion_artifact_uri": "bundle",
             "champion_artifact_offset": 0, "champion_artifact_size": 10}

    def judged(champion, **changes) -> dict:
        return _judged_alone(monkeypatch, {**entry, **changes}, champion, rows)

    same = train_series(rows, CFG, "linear").model  # saw the holdout, the challenger's recipe
    row = judged(same)
    assert row["decision"] == "rejected" and row["retire_champion"]
    assert row["reason"].startswith("does not beat the baseline: MAE 1.080") and row["reason"].endswith(CHAMPION_RETIRED)
    assert "the champion stays" not in row["reason"]
    # within promotion.retire_margin (5 %) of the baseline it stays: a series whose model and baseline are about
    # even switched between them day after day
    row = judged(same, rel_baseline=1.03)
    assert row["decision"] == "rejected" and not row["retire_champion"]
    assert row["reason"].endswith("; the champion stays: it is the same model type and options, and this is within "
                                  "promotion.retire_margin (0.05) of the baseline")
    older = train_series(rows.iloc[:-30], CFG, "linear").model  # trained before the holdout: not the challenger
    row = judged(older)
    assert not row["retire_champion"] and row["reason"].endswith("; the champion stays")
    other = train_series(rows, CFG, "linear", {"alpha": 5.0}).model  # another recipe: no evidence against it
    assert not judged(other)["retire_champion"]
    assert not judged(same, rel_baseline=0.9)["retire_champion"]  # a challenger that passes replaces it
    assert not judged(same, accuracy=0.1, rel_baseline=0.9)["retire_champion"]


def test_a_champion_of_before_a_series_stopped_selling_is_re_scored_when_its_challenger_fails_and_retired(
        monkeypatch):
    """A champion trained before a series' sales stopped forecasts its old level through the zeros that follow,
    and a challenger that forecasts the zeros too only ties the baseline: rejected, so the champion served on (a
    trial: 1,300-1,700 a week through 16 weeks without a sale). A rejected challenger's champion that its ratio
    does not judge (another recipe, or fitted before the holdout) is re-scored on the same holdout against the
    baseline, weighed as a challenger is; beyond promotion.retire_margin it is retired."""

    from mm_assets.registry.promotion import RETIRED

    rows = _rows()
    # 80 days without a sale: every origin of the baseline's choice among the zeros, so it forecasts them exactly
    stopped = rows.assign(y=rows["y"].where(rows.index < len(rows) - 80, 0.0))
    champion = train_series(stopped.iloc[:-80], CFG, "linear").model  # promoted while it still sold
    challenger = train_series(stopped, CFG, "linear")
    entry = {"model_type": "linear", "status": "trained", "version": 2.0, "champion_version": 1.0,
             "accuracy": challenger.metrics["accuracy"], "mase": 0.5, "wape": challenger.metrics["wape"],
             "rel_baseline": 1.0, "rel_baseline_by": "MAE", "pool_ratio": 0.7, "pool_series": 40,
             "data_end": challenger.data_end, "champion_artifact_uri": "bundle", "champion_artifact_offset": 0,
             "champion_artifact_size": 10}

    def judged(model, frame, **changes) -> dict:
        return _judged_alone(monkeypatch, {**entry, **changes}, model, frame)

    ratio, points = promote_entry.champion_against_baseline(entry, stopped, CFG, champion)
    assert ratio == float("inf") and points == CFG.horizon  # the baseline forecast the zeros exactly
    # a slow mover's (a thousandth of the level): its errors add up to under 10 units, no evidence either way
    slow = stopped.assign(y=stopped["y"] / 1000)
    ratio, _ = promote_entry.champion_against_baseline(
        entry, slow, CFG, train_series(slow.iloc[:-80], CFG, "linear").model)
    assert math.isnan(ratio)
    row = judged(champion, stopped)
    assert row["decision"] == "rejected" and row["retire_champion"], row["reason"]
    assert RETIRED in row["reason"] and "the champion stays" not in row["reason"]
    assert "re-scored on this holdout, does not beat the baseline either (MAE " in row["reason"]
    assert "its own holdout ∞ (the baseline was exact)" in row["reason"]
    # the same champion on the series that kept selling beats its baseline there: it stays
    kept = train_series(rows.iloc[:-40], CFG, "linear").model
    ratio, _ = promote_entry.champion_against_baseline(entry, rows, CFG, kept)
    assert ratio < 1.0
    row = judged(kept, rows)
    assert row["decision"] == "rejected" and not row["retire_champion"] and row["reason"].endswith("the champion stays")


def test_a_challenger_whose_baseline_was_exact_is_beaten_not_undefined_and_its_recipe_retired(monkeypatch):
    """Every holdout actual 0 and the baseline forecast 0: the baseline's error is 0, the challenger's ratio to
    it undefined. Read as "undefined", the challenger was rejected without being beaten and its champion, of the
    same recipe, served on at its old level through the zeros (an operator trial: 2.1 and 58.3 against 0)."""
    import json

    from mm_assets.registry.promotion import CHAMPION_RETIRED

    rows = _rows()
    challenger = train_series(rows, CFG, "linear")
    same = train_series(rows, CFG, "linear").model  # saw the holdout, the challenger's recipe
    entry = {"model_type": "linear", "status": "trained", "version": 2.0, "champion_version": 1.0,
             "accuracy": float("nan"), "mase": 0.5, "wape": float("nan"), "rel_baseline": float("nan"),
             "rel_baseline_weighed": float("nan"), "pool_ratio": 0.7, "pool_series": 40,
             "metrics": json.dumps({"holdout_points": 14, "rmse": 3.5}), "data_end": challenger.data_end,
             "champion_artifact_uri": "bundle", "champion_artifact_offset": 0, "champion_artifact_size": 10}
    row = _judged_alone(monkeypatch, entry, same, rows)
    assert row["decision"] == "rejected" and row["retire_champion"], row["reason"]
    assert row["reason"].startswith("does not beat the baseline: the baseline forecast the holdout without error")
    assert row["reason"].endswith(CHAMPION_RETIRED)
    # no error either (a model that forecast the zeros too), or a slow mover's few expected units (0.2 a day for
    # two weeks: under 10 in all): undefined, as before, and the champion stays
    for rmse in (0.0, 0.2):
        exact = {**entry, "metrics": json.dumps({"holdout_points": 14, "rmse": rmse})}
        row = _judged_alone(monkeypatch, exact, same, rows)
        assert row["reason"].startswith("baseline comparison is undefined") and not row["retire_champion"]


def test_a_challenger_that_is_its_champions_own_fit_keeps_the_champion_and_nothing_else_does(monkeypatch):
    """A run again over unchanged data refits every series to its champion: promoting it wrote a production
    version of every series that changed nothing. Kept when the recorded fit digests are equal; a challenger that
    fails the gate is still rejected (its champion retired where the rule says), and a digest unknown or another
    is judged as before."""
    from mm_assets.registry.promotion import CHAMPION_RETIRED, SAME_FIT

    rows = _rows()
    challenger = train_series(rows, CFG, "linear")
    same = train_series(rows, CFG, "linear").model

    def judged(mine, theirs, **changes) -> dict:
        entry = {"model_type": "linear", "status": "trained", "version": 2.0, "champion_version": 1.0,
                 "accuracy": challenger.metrics["accuracy"], "mase": 0.5, "wape": challenger.metrics["wape"],
                 "rel_baseline": 0.8, "data_end": challenger.data_end, "champion_artifact_uri": "bundle",
                 "champion_artifact_offset": 0, "champion_artifact_size": 10,
                 "metrics": f'{{"fit_digest": {mine}}}', "champion_metrics": f'{{"fit_digest": {theirs}}}'}
        return _judged_alone(monkeypatch, {**entry, **changes}, same, rows)

    row = judged(123.0, 123.0)
    assert row["decision"] == "kept_champion" and row["reason"] == f"passes the gate, but {SAME_FIT}"
    assert judged(123.0, 124.0)["decision"] == PROMOTED  # the same recipe on other rows: the fresher fit
    assert judged(123.0, "null")["decision"] == PROMOTED  # a champion registered before digests were
    beaten = judged(123.0, 123.0, rel_baseline=1.2)
    assert beaten["decision"] == "rejected" and beaten["reason"].endswith(CHAMPION_RETIRED)
