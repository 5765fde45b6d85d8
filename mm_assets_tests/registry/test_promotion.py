"""The gate's rules and the production registry's guarantees."""

from __future__ import annotations

import math
import pickle

import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.lake import Lake
from mm_assets.registry.production import ProductionRegistry
from mm_assets.registry.promotion import KEPT_CHAMPION, PROMOTED, REJECTED, GateRule, decide, rule_of

RULE = GateRule(min_accuracy=0.8, max_mase=1.0, champion_tolerance=0.0)  # both optional floors switched on
DEFAULT = GateRule()  # the default gate: beat the series' baseline (and the champion)


@pytest.mark.parametrize(
    "kwargs, decision, words",
    [
        (dict(accuracy=0.85, mase=0.7, challenger_wape=0.15), PROMOTED, "no champion yet"),
        (dict(accuracy=0.79, mase=0.7, challenger_wape=0.21), REJECTED, "accuracy 0.790 < min_accuracy 0.80"),
        (dict(accuracy=0.9, mase=1.0, challenger_wape=0.1), REJECTED, "MASE 1.000 >= max_mase 1.00"),
        (dict(accuracy=math.nan, mase=0.5, challenger_wape=math.nan), REJECTED, "accuracy is undefined"),
        (dict(accuracy=0.9, mase=0.5, challenger_wape=0.1, rel_baseline=1.0), REJECTED,
         "does not beat the baseline"),
        (dict(accuracy=0.9, mase=0.5, challenger_wape=0.1, rel_baseline=math.nan), REJECTED,
         "baseline comparison is undefined"),
        (dict(accuracy=0.9, mase=0.5, challenger_wape=0.10, champion_wape=0.12, has_champion=True), PROMOTED,
         "<= champion's 0.120"),
        (dict(accuracy=0.9, mase=0.5, challenger_wape=0.10, champion_wape=0.10, has_champion=True), PROMOTED,
         "<= champion's"),  # a tie goes to the fresher model
        (dict(accuracy=0.9, mase=0.5, challenger_wape=0.13, champion_wape=0.12, has_champion=True), KEPT_CHAMPION,
         "worse than the champion's 0.120"),
        (dict(accuracy=0.7, mase=0.5, challenger_wape=0.3, champion_wape=0.1, has_champion=True), REJECTED,
         "the champion stays"),
        # worse by less than the third decimal: said with the decimals that tell them apart
        (dict(accuracy=0.9, mase=0.5, challenger_wape=0.17512, champion_wape=0.17504, has_champion=True),
         KEPT_CHAMPION, "WAPE 0.1751 is worse than the champion's 0.1750"),
    ],
)
def test_gate_decisions_and_reasons(kwargs, decision, words):
    kwargs = {"rel_baseline": 0.8, **kwargs}
    got, reason = decide(RULE, "linear", "trained", **kwargs)
    assert got == decision
    assert words in reason


def test_default_gate_promotes_what_beats_the_baseline_whatever_its_absolute_accuracy():
    # an item-level series with 45 % accuracy that beats its baseline is promoted: the planner gets the better one
    assert decide(DEFAULT, "linear", "trained", 0.45, 1.7, 0.55, rel_baseline=0.9)[0] == PROMOTED
    decision, reason = decide(DEFAULT, "linear", "trained", 0.95, 0.2, 0.05, rel_baseline=1.02)
    assert decision == REJECTED and "does not beat the baseline" in reason
    assert "beats the series' baseline" in DEFAULT.describe() and "accuracy" not in DEFAULT.describe()


def test_a_tie_with_the_baseline_on_its_own_holdout_is_not_promoted_by_the_run():
    """A series that never sold: its baseline forecasts the zeros exactly and so does the model, an own ratio of
    1.000. Weighed with the run's series it would pass (0.816 on a real run) and then serve a model that adds
    nothing; the tie is rejected. Weighed or not, a series that beats its baseline is still promoted."""
    decision, reason = decide(DEFAULT, "lightgbm", "trained", math.nan, math.nan, math.nan, rel_baseline=0.816,
                              own_rel=1.0, points=8.0, by="RMSE")
    assert decision == REJECTED and "ties the baseline on its own holdout (RMSE 1.000 x the baseline's over 8 points" in reason
    assert decide(DEFAULT, "lightgbm", "trained", 0.6, 0.8, 0.4, rel_baseline=0.816, own_rel=1.04,
                  points=2.0)[0] == PROMOTED  # a short holdout a little worse: the run's evidence decides
    assert decide(DEFAULT, "lightgbm", "trained", 0.6, 0.8, 0.4, rel_baseline=0.9, own_rel=0.9)[0] == PROMOTED


def test_every_rejection_reason_names_its_rule_without_the_series_figures():
    """The cycle summary and the promotion report count rejections by ``rule_of`` their reason: two series
    stopped by one rule with different figures, with or without a champion, count as one rule, and no rule keeps
    a number (else every series would be a rule of its own)."""
    cases = {
        "accuracy < min_accuracy": [dict(accuracy=a, mase=0.5, challenger_wape=0.3) for a in (0.612, 0.79)],
        "MASE >= max_mase": [dict(accuracy=0.9, mase=m, challenger_wape=0.1) for m in (1.0, 2.345)],
        "does not beat the baseline": [dict(accuracy=0.9, mase=0.5, challenger_wape=0.1, rel_baseline=r,
                                            own_rel=o, points=8.0) for r, o in ((1.0, 1.2), (1.731, 0.9))],
        "ties the baseline on its own holdout": [dict(accuracy=0.9, mase=0.5, challenger_wape=0.1, own_rel=1.0,
                                                      points=p) for p in (2.0, 13.0)],
        "baseline comparison is undefined": [dict(accuracy=0.9, mase=0.5, challenger_wape=0.1,
                                                  rel_baseline=math.nan)],
        "no sale before its holdout": [dict(accuracy=0.9, mase=0.5, challenger_wape=0.1, holdout_replaced=True,
                                            no_recent_sale=True)],
        "its holdout forecast left the sanity envelope and was replaced by the baseline's": [
            dict(accuracy=0.9, mase=0.5, challenger_wape=0.1, holdout_replaced=True)],
    }
    for rule, calls in cases.items():
        for kwargs in calls:
            for has_champion in (False, True):
                decision, reason = decide(RULE, "linear", "trained", **{"rel_baseline": 0.8, **kwargs},
                                          champion_wape=0.2 if has_champion else None, has_champion=has_champion)
                assert decision == REJECTED and rule_of(reason) == rule, reason
    decision, reason = decide(RULE, "seasonal_naive", "fallback", 0.95, 0.2, 0.05, rel_baseline=0.5)
    assert rule_of(reason) == "challenger is the baseline"


def test_tolerance_and_fallbacks():
    loose = GateRule(0.8, 1.0, champion_tolerance=0.02)
    assert decide(loose, "linear", "trained", 0.9, 0.5, 0.13, 0.12, True, rel_baseline=0.5)[0] == PROMOTED
    for model_type, status in (("seasonal_naive", "fallback"), ("baseline", "fallback"), ("baseline", "trained")):
        decision, reason = decide(RULE, model_type, status, 0.95, 0.2, 0.05, rel_baseline=0.5)
        assert decision == REJECTED and reason.endswith("never promoted; the baseline serves the series")
        # with a champion, the champion serves (the reason said the baseline did, and that the champion stayed)
        decision, reason = decide(RULE, model_type, status, 0.95, 0.2, 0.05, 0.1, True, rel_baseline=0.5)
        assert decision == REJECTED and reason.endswith("never promoted; the champion stays")
        assert "baseline serves" not in reason


def test_production_registry_copies_artifacts_and_refuses_readers(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    models = [pickle.dumps({"model": i}) for i in range(3)]
    lake.write_bytes(b"".join(models), "models", "run1", "w1.bin")
    uri = lake.full_uri("models", "run1", "w1.bin")
    offsets = [0, len(models[0]), len(models[0]) + len(models[1])]
    challengers = pd.DataFrame({
        "series_key": ["S1/I1", "S1/I3"], "partition_key": "S1", "ids": "{}", "model_type": "linear",
        "version": [1, 1], "accuracy": 0.9, "wape": 0.1, "mase": 0.5, "metrics": "{}",
        "data_end": pd.Timestamp("2025-06-30"), "artifact_uri": uri,
        "artifact_offset": [offsets[0], offsets[2]], "artifact_size": [len(models[0]), len(models[2])],
    })
    url = f"sqlite:///{tmp_path}/production.db"
    with pytest.raises(PermissionError):
        ProductionRegistry(url, lake).copy_artifacts(challengers, "production/models/r")
    writer = ProductionRegistry(url, lake, writable=True)
    copied = writer.copy_artifacts(challengers, "production/models/r")
    writer.apply(copied, pd.DataFrame(), "gate-1")
    # the copies live in the production area and hold the same bytes
    lake.delete("models", recursive=True)
    current = ProductionRegistry(url, lake).current(["S1"])
    assert list(current["series_key"]) == ["S1/I1", "S1/I3"]
    for (_, row), expected in zip(current.iterrows(), [models[0], models[2]]):
        assert "production/models/r" in row["artifact_uri"]
        start = int(row["artifact_offset"])
        blob = lake.fs.cat_file(lake.path(lake.relative(row["artifact_uri"])), start=start,
                                end=start + int(row["artifact_size"]))
        assert blob == expected
    # a retired champion leaves the current champions (its baseline serves it) and its row stays in the history;
    # the next passing challenger is its champion again, found by the endpoint's lookup as by the gate
    from mm_assets.registry.model_registry import model_versions
    from mm_assets.serving.lookup import ModelLookup

    registry_url = f"sqlite:///{tmp_path}/registry.db"
    model_versions.metadata.create_all(sa.create_engine(registry_url))
    lookup = ModelLookup(registry_url, url)
    assert lookup.find("S1/I3").version == 1
    writer.apply(pd.DataFrame(), pd.DataFrame(), "gate-2", retired=["S1/I3"])
    assert list(ProductionRegistry(url, lake).current(["S1"])["series_key"]) == ["S1/I1"]
    # the endpoint serves its baseline too (it served the retired champion, the newest row, while batch scoring
    # published the baseline)
    assert lookup.find("S1/I3") is None and lookup.find("S1/I1").version == 1
    with writer.engine.connect() as conn:
        history = pd.read_sql("SELECT series_key FROM champions", conn)
    assert sorted(history["series_key"]) == ["S1/I1", "S1/I3"]
    lake.write_bytes(b"".join(models), "models", "run1", "w1.bin")  # a new version trained
    writer.apply(writer.copy_artifacts(challengers.iloc[[1]].assign(version=2), "production/models/r3"),
                 pd.DataFrame(), "gate-3")
    again = ProductionRegistry(url, lake).current(["S1"]).set_index("series_key")
    assert list(again.index) == ["S1/I1", "S1/I3"] and again.loc["S1/I3", "version"] == 2
    assert lookup.find("S1/I3").version == 2


def test_a_promotion_over_a_champion_not_scored_says_the_ratio_and_a_same_recipe_one_says_so():
    """Every holdout actual 0 leaves WAPE undefined, the champion's too: the reason said only "the champion could
    not be re-scored", without the ratio the challenger passed on, and so even for a champion of the same recipe
    (whose score is the challenger's own)."""
    decision, reason = decide(GateRule(), "linear", "trained", float("nan"), 0.5, float("nan"), float("nan"), True,
                              rel_baseline=0.896, same_recipe=True)
    assert decision == PROMOTED and reason.startswith("passes the gate (MAE 0.896 x the baseline's; accuracy n/a)")
    assert "same model type and options fitted on older data" in reason
    decision, reason = decide(GateRule(), "linear", "trained", float("nan"), 0.5, float("nan"), float("nan"), True,
                              rel_baseline=0.896)
    assert reason == ("passes the gate (MAE 0.896 x the baseline's; accuracy n/a); the champion could not be "
                      "re-scored on the holdout")
