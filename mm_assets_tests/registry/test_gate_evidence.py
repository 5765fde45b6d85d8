"""The baseline rule weighs a short holdout with the latest models of its model type in every store
(``promotion.prior_points``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mm_assets.registry.gate import (
    CHALLENGER_COLUMNS,
    EVIDENCE_COLUMNS,
    gate_counts,
    pooled_evidence,
    promotion_manifest,
)
from mm_assets.registry.promotion import PROMOTED, REJECTED, GateRule, business_rules, decide, weigh_rel_baseline


def test_a_two_point_loss_passes_when_the_run_beats_the_baseline_broadly():
    # nine series beat their baseline by 40 %, one loses by 10 % on two points
    rel = np.array([0.6] * 9 + [1.1])
    weighed = weigh_rel_baseline(rel, [2] * 10, ["lightgbm"] * 10, [True] * 10, prior_points=8)
    pooled = np.log(rel[1:-1]).mean()  # without the highest and lowest tenth
    assert weighed[-1] == pytest.approx(math.exp((2 * math.log(1.1) + 8 * pooled) / 10))
    assert weighed[-1] < 1
    # a long holdout clearly lost still fails: 56 points against the run's 8
    long = weigh_rel_baseline(np.array([0.6] * 9 + [1.5]), [56] * 10, ["lightgbm"] * 10, [True] * 10, 8)
    assert long[-1] > 1


def test_a_model_type_worse_than_the_baseline_across_the_run_is_not_helped():
    rel = np.array([1.3] * 9 + [0.95])  # the one narrow win on two points is outweighed by the run's losses
    weighed = weigh_rel_baseline(rel, [2] * 10, ["linear"] * 10, [True] * 10, prior_points=8)
    assert (weighed > 1).all()


def test_each_model_type_is_weighed_with_its_own_series_and_fallbacks_do_not_count():
    rel = np.array([0.5, 0.5, 1.2, 2.0, 2.0, 1.05, 1.0])
    types = ["lightgbm", "lightgbm", "lightgbm", "ets", "ets", "ets", "baseline"]
    eligible = [True] * 6 + [False]
    weighed = weigh_rel_baseline(rel, [2] * 7, types, eligible, prior_points=8)
    assert weighed[2] < 1  # lightgbm's run pulls its loss under 1
    assert weighed[5] > 1.05  # ets' run pulls its near-tie further over
    assert weighed[6] == pytest.approx(1.0)  # nothing of its type to pool with: its own ratio


def test_one_junk_series_does_not_move_the_decision_of_the_others():
    """tuna's seven series' own two-point ratios: item 5 loses narrowly (1.062), the run wins broadly, one series by
    far (0.153), which must keep counting. An eighth series whose holdout holds a ×1,000 spike (ratio 1,000) must
    not turn the run's evidence against item 5, as the plain mean of the logs did."""
    tuna = np.array([1.428, 1.028, 1.062, 0.5, 1.873, 0.562, 0.153])
    before = weigh_rel_baseline(tuna, [2] * 7, ["ets"] * 7, [True] * 7, prior_points=8)
    assert (before < 1).all()  # the run wins broadly: each two-point loss is weighed with it
    trimmed = np.log([0.5, 0.562, 1.028, 1.062, 1.428]).mean()  # without 0.153 and 1.873
    assert before == pytest.approx(np.exp((2 * np.log(tuna) + 8 * trimmed) / 10))
    junk = np.r_[tuna, 1000.0]
    after = weigh_rel_baseline(junk, [2] * 8, ["ets"] * 8, [True] * 8, prior_points=8)
    assert after[2] < 1
    assert np.exp((2 * np.log(1.062) + 8 * np.log(junk).mean()) / 10) > 1  # what the plain mean decided


def test_undefined_stays_undefined_and_zero_prior_is_the_own_ratio():
    rel = np.array([0.5, np.nan, 0.0, 1.4])
    weighed = weigh_rel_baseline(rel, [2, 0, 2, 2], ["linear"] * 4, [True] * 4, prior_points=8)
    assert math.isnan(weighed[1])
    assert np.isfinite(weighed[[0, 2, 3]]).all()  # a perfect holdout (ratio 0) is clipped, not -infinity
    assert np.array_equal(weigh_rel_baseline(rel, [2] * 4, ["linear"] * 4, [True] * 4, 0), rel, equal_nan=True)


def _challengers(rels, points=2, model_type="lightgbm"):
    rows = []
    for i, rel in enumerate(rels):
        metrics = {"rel_mae_baseline": rel, "wape": 0.3}
        if points is not None:
            metrics["holdout_points"] = points
        rows.append({"series_key": f"S1|I{i}", "partition_key": "S1" if i < 5 else "S2", "ids": "[]",
                     "model_type": model_type, "version": 1, "status": "trained", "accuracy": 0.7, "wape": 0.3,
                     "mase": 0.5, "metrics": json.dumps(metrics), "data_end": "2026-01-01", "artifact_uri": "x",
                     "artifact_offset": 0, "artifact_size": 1})
    return pd.DataFrame(rows, columns=CHALLENGER_COLUMNS)


def test_the_manifest_carries_both_ratios_and_the_counts_show_what_the_run_moved():
    challengers = _challengers([0.6, 0.6, 0.6, 0.6, 1.1, 0.6, 0.6, 0.6, 0.6, 0.6])
    manifest = promotion_manifest(challengers, pd.DataFrame(), prior_points=8, default_points=2)
    row = manifest.set_index("series_key").loc["S1|I4"]
    assert row["rel_baseline"] == pytest.approx(1.1)
    assert row["rel_baseline_weighed"] < 1
    assert row["holdout_points"] == 2
    decided = pd.DataFrame({"partition_key": manifest["partition_key"], "decision": PROMOTED})
    counts = gate_counts(decided, pd.DataFrame(), pd.DataFrame(), ["S1", "S2"], manifest)
    assert counts["S1"]["passed_on_pooled_evidence"] == 1
    assert counts["S2"]["passed_on_pooled_evidence"] == 0
    assert counts["S1"]["failed_on_pooled_evidence"] == 0
    # without pooled evidence the same series is judged on its own holdout
    alone = promotion_manifest(challengers, pd.DataFrame(), prior_points=0)
    assert alone.set_index("series_key").loc["S1|I4", "rel_baseline_weighed"] == pytest.approx(1.1)


def test_an_intermittent_series_is_judged_by_its_rmse_ratio_and_the_reason_says_so():
    challengers = _challengers([1.2, 1.2])
    metrics = [json.loads(m) for m in challengers["metrics"]]
    metrics[0].update(rel_rmse_baseline=0.9, intermittent=1.0)  # mostly zero sales: squared error judges
    metrics[1].update(rel_rmse_baseline=0.9, intermittent=0.0)
    challengers["metrics"] = [json.dumps(m) for m in metrics]
    manifest = promotion_manifest(challengers, pd.DataFrame(), prior_points=0).set_index("series_key")
    assert manifest.loc["S1|I0", "rel_baseline"] == pytest.approx(0.9)
    assert manifest.loc["S1|I0", "rel_baseline_by"] == "RMSE"
    assert manifest.loc["S1|I1", "rel_baseline"] == pytest.approx(1.2)
    assert manifest.loc["S1|I1", "rel_baseline_by"] == "MAE"
    decision, reason = decide(GateRule(), "lightgbm", "trained", 0.7, 0.5, 0.3,
                              rel_baseline=manifest.loc["S1|I0", "rel_baseline"], by="RMSE")
    assert decision == PROMOTED and "RMSE 0.900 x the baseline's" in reason
    _, reason = decide(GateRule(), "lightgbm", "trained", 0.7, 0.5, 0.3, rel_baseline=1.2)
    assert reason.startswith("does not beat the baseline: MAE 1.200")


def test_models_registered_before_the_points_were_recorded_count_the_horizon():
    manifest = promotion_manifest(_challengers([0.6] * 9 + [1.1], points=None), pd.DataFrame(), 8, default_points=28)
    assert (manifest["holdout_points"] == 28).all()
    weighed = manifest.set_index("series_key").loc["S1|I9", "rel_baseline_weighed"]
    assert weighed == pytest.approx(math.exp((28 * math.log(1.1) + 8 * np.log([0.6] * 8).mean()) / 36))


def test_the_reason_names_both_ratios():
    decision, reason = decide(GateRule(), "lightgbm", "trained", 0.7, 0.5, 0.3, rel_baseline=0.9, own_rel=1.1,
                              points=2.0)
    assert decision == PROMOTED
    assert "0.900" in reason and "weighed with its model type's series, its own holdout of 2 points 1.100 x" in reason
    _, reason = decide(GateRule(), "lightgbm", "trained", 0.7, 0.5, 0.3, rel_baseline=0.9, own_rel=1.1, points=2.0,
                       pool=(0.62, 1204))
    assert "weighed with 1,204 series of its model type in every store (0.620 x), its own holdout" in reason
    decision, reason = decide(GateRule(), "lightgbm", "trained", 0.7, 0.5, 0.3, rel_baseline=1.05, own_rel=0.95,
                              points=2.0)
    assert decision == REJECTED
    assert "does not beat the baseline: MAE 1.050" in reason and "0.950" in reason


def test_the_entry_script_judges_the_weighed_ratio_and_reads_a_manifest_without_it(monkeypatch):
    from mm_assets.parallel import promote_entry

    entry = {"model_type": "lightgbm", "status": "trained", "version": 3.0, "champion_version": None,
             "accuracy": 0.7, "mase": 0.5, "wape": 0.3, "rel_baseline": 1.1, "holdout_points": 2.0,
             "rel_baseline_weighed": 0.9}
    monkeypatch.setattr(promote_entry, "_state", {"cfg": None, "rule": GateRule(), "manifest": {"S1/I1": entry}})
    row = promote_entry._judge(lambda: None, ["S1", "I1"], ["store", "item"])
    assert row["decision"] == PROMOTED
    assert "0.900" in row["reason"] and "its own holdout of 2 points 1.100 x" in row["reason"]
    del entry["rel_baseline_weighed"]  # a manifest written before the weighing: the own ratio decides
    row = promote_entry._judge(lambda: None, ["S1", "I1"], ["store", "item"])
    assert row["decision"] == REJECTED
    assert "MAE 1.100" in row["reason"] and "weighed" not in row["reason"]


def test_a_champion_whose_series_failed_training_is_kept_with_that_reason(monkeypatch):
    from types import SimpleNamespace

    import numpy as np

    from mm_assets.forecasting.series import SeriesConfig
    from mm_assets.parallel import promote_entry

    entry = {"model_type": "lightgbm", "status": "trained", "version": 4.0, "champion_version": 4.0, "accuracy": 0.7,
             "mase": 0.5, "wape": 0.3,
             "not_retrained": np.bool_(True)}  # as read back from the manifest file
    entry.update(champion_artifact_uri="bundle", champion_artifact_offset=0, champion_artifact_size=10)
    cache = SimpleNamespace(model=lambda uri, offset, size: SimpleNamespace(name="linear"))
    monkeypatch.setattr(promote_entry, "_state", {"cfg": SeriesConfig(frequency="W-MON", horizon=2, gap=1),
                                                  "rule": GateRule(), "manifest": {"S1/I1": entry}, "cache": cache})
    row = promote_entry._judge(lambda: None, ["S1", "I1"], ["store", "item"])
    assert row["decision"] == "kept_champion" and row["reason"].startswith("no new challenger")
    entry["not_retrained"] = np.bool_(False)
    assert promote_entry._judge(lambda: None, ["S1", "I1"], ["store", "item"])["reason"] == \
        "the challenger is the champion"
    # a version newer than the champion, trained before and not promoted: when the newest training fails, it is
    # not judged again as if it were news (it could replace the champion on an older training's evidence)
    entry.update(version=5.0, not_retrained=np.bool_(True))
    row = promote_entry._judge(lambda: None, ["S1", "I1"], ["store", "item"])
    assert row["decision"] == "kept_champion" and "it failed there: mm-assets failures" in row["reason"]
    assert row["challenger_version"] == 5


def test_a_series_without_a_champion_whose_training_failed_is_judged_on_its_latest_version_said_to_be_older(
        monkeypatch):
    from mm_assets.forecasting.series import SeriesConfig
    from mm_assets.parallel import promote_entry

    entry = {"model_type": "linear", "status": "trained", "version": 3.0, "champion_version": None, "accuracy": 0.1,
             "mase": 1.5, "wape": 0.9, "rel_baseline": 1.5, "not_retrained": True}
    monkeypatch.setattr(promote_entry, "_state", {"cfg": SeriesConfig(frequency="W-MON", horizon=2, gap=1),
                                                  "rule": GateRule(), "manifest": {"S1/I1": entry}})
    row = promote_entry._judge(lambda: None, ["S1", "I1"], ["store", "item"])
    assert row["decision"] == REJECTED
    assert row["reason"].endswith("; v3 is not new: the store's newest training run did not train this series (it "
                                  "failed there: mm-assets failures)")


def test_a_series_without_a_sale_before_its_holdout_is_told_why_its_forecast_was_replaced(monkeypatch):
    """A series that sold nothing in the envelope's window before its holdout: any forecast of a sale leaves the
    envelope (0 x its recent maximum). The reason says so, and the summary counts it by that rule; a replaced
    forecast of a series that did sell keeps the general reason."""
    from mm_assets.cycle import rejection_examples, rejection_reasons
    from mm_assets.parallel import promote_entry
    from mm_assets.registry.promotion import HOLDOUT_REPLACED, NO_RECENT_SALE

    challengers = _challengers([0.6, 0.6, 0.6, 0.6, 1.0, 1.0])
    metrics = [json.loads(m) for m in challengers["metrics"]]
    metrics[4].update(envelope_replaced=1.0, fit_recent_max=0.0)
    metrics[5].update(envelope_replaced=1.0, fit_recent_max=412.0)
    challengers["metrics"] = [json.dumps(m) for m in metrics]
    manifest = promotion_manifest(challengers, pd.DataFrame(), prior_points=8, default_points=2).set_index("series_key")
    assert manifest["no_recent_sale"].tolist() == [False] * 4 + [True, False]
    reasons = {}
    for key in ("S1|I4", "S1|I5"):
        entry = manifest.loc[key].to_dict()
        monkeypatch.setattr(promote_entry, "_state", {"cfg": None, "rule": GateRule(), "manifest": {"S1/x": entry}})
        reasons[key] = promote_entry._judge(lambda: None, ["S1", "x"], ["store", "item"])["reason"]
    assert reasons == {"S1|I4": NO_RECENT_SALE, "S1|I5": HOLDOUT_REPLACED}
    assert "allows a forecast of 0 only" in NO_RECENT_SALE
    decisions = pd.DataFrame({"decision": ["rejected", "rejected"], "reason": list(reasons.values()),
                              "series_key": list(reasons)})
    assert set(rejection_reasons(decisions)) == {"no sale before its holdout", HOLDOUT_REPLACED.split(":")[0]}
    # the summary names the series each rule stopped
    assert rejection_examples(decisions) == {"no sale before its holdout": ["S1|I4"],
                                             HOLDOUT_REPLACED.split(":")[0]: ["S1|I5"]}


def test_a_challenger_whose_holdout_forecast_the_baseline_replaced_is_not_promoted_on_pooled_evidence(monkeypatch):
    """Its holdout forecast left the sanity envelope (an all-zero series, a model that explodes there) and the
    baseline's was scored: a tie with the baseline that the other series would otherwise lift past the gate."""
    from mm_assets.parallel import promote_entry
    from mm_assets.registry.promotion import HOLDOUT_REPLACED

    challengers = _challengers([0.6, 0.6, 0.6, 0.6, 1.0, 0.6])
    metrics = [json.loads(m) for m in challengers["metrics"]]
    metrics[4]["envelope_replaced"] = 1.0
    challengers["metrics"] = [json.dumps(m) for m in metrics]
    manifest = promotion_manifest(challengers, pd.DataFrame(), prior_points=8, default_points=2)
    row = manifest.set_index("series_key").loc["S1|I4"]
    assert bool(row["holdout_replaced"]) and row["rel_baseline_weighed"] == pytest.approx(1.0)  # not weighed
    others = manifest.set_index("series_key").drop("S1|I4")
    assert others["rel_baseline_weighed"].tolist() == pytest.approx([0.6] * 5)  # nor weighing the others toward 1
    entry = row.to_dict()
    monkeypatch.setattr(promote_entry, "_state", {"cfg": None, "rule": GateRule(), "manifest": {"S1/I4": entry}})
    judged = promote_entry._judge(lambda: None, ["S1", "I4"], ["store", "item"])
    assert judged["decision"] == REJECTED and judged["reason"] == HOLDOUT_REPLACED
    # the same tie without the replacement (the model forecast the zeros too) is no evidence either
    entry.update(holdout_replaced=False, rel_baseline_weighed=0.7)
    judged = promote_entry._judge(lambda: None, ["S1", "I4"], ["store", "item"])
    assert judged["decision"] == REJECTED and judged["reason"].startswith("ties the baseline on its own holdout")
    # a little worse on its own short holdout, it passes on the pooled evidence
    entry.update(rel_baseline=1.05, rel_mae_baseline=1.05)
    assert promote_entry._judge(lambda: None, ["S1", "I4"], ["store", "item"])["decision"] == PROMOTED


def test_a_baseline_that_auto_chose_is_not_called_a_fallback():
    """Status ``trained`` with the baseline's model type (auto chose it by the series' own backtest) is rejected as
    the baseline, and the reason says why it is one; a too-short series' fallback says fallback."""
    chosen = business_rules(GateRule(), "baseline", "trained", 0.7, 0.5, 1.0)
    assert chosen.startswith("challenger is the baseline (model type baseline, trained: auto's choice")
    assert "fallback" not in chosen
    assert business_rules(GateRule(), "baseline", "fallback", 0.7, 0.5, 1.0).startswith(
        "challenger is the baseline (fallback)")


def _others(rels, model_type="lightgbm", status="trained", store="S7"):
    """Other stores' latest registry rows as the gate reads them (``EVIDENCE_COLUMNS``)."""
    return pd.DataFrame({"series_key": [f"{store}|J{i}" for i in range(len(rels))], "model_type": model_type,
                         "status": status, "metrics": [json.dumps({"rel_mae_baseline": r}) for r in rels]})


def test_a_one_store_run_is_weighed_with_the_other_stores_latest_models():
    """A store that sells one item (cheese: one series a retailer) run on its own from the UI: its two-point loss
    is weighed with the other stores' latest models of its type, not judged alone."""
    alone = _challengers([1.1])
    others = pd.concat([_others([0.6] * 20), _others([3.0] * 5, status="fallback"),
                        _others([3.0] * 5, model_type="baseline"), _others([3.0] * 5, model_type="linear")])
    replaced = _others([3.0] * 5)
    replaced["metrics"] = [json.dumps({"rel_mae_baseline": 3.0, "envelope_replaced": 1.0})] * 5
    others = pd.concat([others, replaced], ignore_index=True)
    own = promotion_manifest(alone, pd.DataFrame(), prior_points=8, default_points=2)
    assert own["rel_baseline_weighed"].iloc[0] == pytest.approx(1.1)  # itself only: the coin toss
    pooled = promotion_manifest(alone, pd.DataFrame(), prior_points=8, default_points=2, others=others)
    row = pooled.iloc[0]
    # 21 lightgbm series pooled: the fallbacks, baselines, another model type and replaced holdouts do not count
    assert (row["pool_series"], row["pool_other_stores"]) == (21, 20)
    logs = np.log([0.6] * 17)  # the 21 without their highest and lowest tenth (2 each: 1.1 among them)
    assert row["pool_ratio"] == pytest.approx(math.exp(logs.mean()))
    assert row["rel_baseline_weighed"] == pytest.approx(math.exp((2 * math.log(1.1) + 8 * logs.mean()) / 10))
    assert row["rel_baseline_weighed"] < 1
    assert pooled_evidence(pooled) == {"lightgbm": {"series": 21, "in_other_stores": 20,
                                                    "trimmed_mean_ratio": pytest.approx(0.6, abs=1e-4)}}
    # a model type the other stores lose with pulls its one-store run the other way
    worse = promotion_manifest(_challengers([0.95], model_type="linear"), pd.DataFrame(), 8, 2, others=others)
    assert worse["rel_baseline_weighed"].iloc[0] > 1


def test_the_gate_weighs_alike_however_the_stores_were_cut_into_runs():
    challengers = _challengers([0.6, 0.7, 1.1, 0.5, 1.3, 0.8, 0.9, 1.05, 0.65, 0.75])
    whole = promotion_manifest(challengers, pd.DataFrame(), 8, 2).set_index("series_key")
    cut = []
    for store in ("S1", "S2"):
        mine = challengers[challengers["partition_key"] == store]
        rest = challengers[challengers["partition_key"] != store]
        cut.append(promotion_manifest(mine, pd.DataFrame(), 8, 2, others=rest[["series_key", *EVIDENCE_COLUMNS]]))
    cut = pd.concat(cut).set_index("series_key").loc[whole.index]
    assert cut["rel_baseline_weighed"].to_numpy() == pytest.approx(whole["rel_baseline_weighed"].to_numpy())
    assert (cut["pool_series"] == 10).all() and (cut["pool_other_stores"] == 5).all()
    assert (whole["pool_other_stores"] == 0).all()


def test_a_delisted_series_champion_is_not_counted_as_serving_its_store():
    """A store with items gone from the source keeps their champions (they serve nothing): counted among the
    store's champions, they made served_by_baseline negative (-20 for a store gone whole) or too low."""
    decided = pd.DataFrame({"partition_key": ["S1", "S1", "S1"], "series_key": ["S1|I1", "S1|I2", "S1|I3"],
                            "decision": [PROMOTED, REJECTED, REJECTED]})
    failures = pd.DataFrame({"partition_key": ["S1"], "series_key": ["S1|I4"]})
    current = pd.DataFrame({"partition_key": ["S1", "S1", "S1", "S2", "S2"],
                            "series_key": ["S1|I1", "S1|I4", "S1|I9", "S2|I1", "S2|I2"]})  # S1|I9, S2: gone
    counts = gate_counts(decided, failures, current, ["S1", "S2"])
    assert (counts["S1"]["series"], counts["S1"]["champions"], counts["S1"]["served_by_baseline"]) == (4, 2, 2)
    assert counts["S1"]["served_by_baseline_share"] == 0.5
    assert (counts["S2"]["series"], counts["S2"]["champions"], counts["S2"]["served_by_baseline"]) == (0, 0, 0)


def test_a_series_whose_training_failed_after_its_latest_version_is_not_retrained_though_its_store_failed_whole():
    """Every series of a store failed (a store of one item): no newer run of the store was in the registry, so its
    latest version was judged again as if new (kept against its champion on a new holdout, or promoted over it)."""
    challengers = _challengers([0.6, 0.6, 0.6]).assign(
        trained_at=pd.Timestamp("2026-01-02 03:00"), run_id=["r1", "r1", "r2"])
    challengers.loc[2, "partition_key"] = "S3"  # a store of one series, trained by r2
    assert not promotion_manifest(challengers, pd.DataFrame())["not_retrained"].any()
    failures = pd.DataFrame({"series_key": ["S1|I2", "S1|I0"], "failed_at": [pd.Timestamp("2026-01-03 03:00"),
                                                                            pd.Timestamp("2026-01-01 03:00")]})
    manifest = promotion_manifest(challengers, pd.DataFrame(), failures=failures).set_index("series_key")
    # I2 failed after its version was trained; I0's failure is older than its version (resolved by retraining)
    assert manifest["not_retrained"].to_dict() == {"S1|I0": False, "S1|I1": False, "S1|I2": True}
