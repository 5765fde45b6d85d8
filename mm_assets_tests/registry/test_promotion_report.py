"""The promotion report applies the gate's rules to the registries without writing."""

from __future__ import annotations

import json

from mm_assets.registry import ModelRegistry
from mm_assets.registry.report import promotion_report
from mm_assets.settings import Settings
from mm_assets_tests.registry.test_model_registry import model_rows


def test_a_challenger_that_ties_its_baseline_on_its_own_holdout_does_not_pass(tmp_path):
    """Five series beat their baseline by 40 %; the sixth forecast exactly its baseline's error (its model forecast
    what the baseline did). Weighed with the run, its ratio is under 1, but the gate rejects such a tie: the report
    must not count it as passing either (it did, and said 6 where the gate promoted 5)."""
    settings = Settings(storage={"lake": str(tmp_path / "lake"), "registry": f"sqlite:///{tmp_path}/registry.db",
                                 "warehouse": f"sqlite:///{tmp_path}/warehouse.db",
                                 "production_registry": f"sqlite:///{tmp_path}/production.db"})
    rows = model_rows([("S1", f"I{i}") for i in range(6)], accuracy=0.8)
    rows["metrics"] = [json.dumps({"accuracy": 0.8, "rel_mae_baseline": r, "holdout_points": 2})
                       for r in [0.6] * 5 + [1.0]]
    ModelRegistry(settings.storage.registry).register(rows, run_id="r1")
    report = promotion_report(settings)
    assert report["series"] == 6
    assert report["challengers_passing_rules"] == 5
    assert report["failures_by_rule"] == {"ties the baseline on its own holdout": 1}
    assert report["failure_examples"] == {"ties the baseline on its own holdout": [rows["series_key"].iloc[5]]}


def test_a_champion_promoted_over_one_that_could_not_serve_counts_as_serving(tmp_path):
    """A promoted decision names the champion it replaced as unfit for the settings ("the champion cannot forecast
    with these settings: ..."); the report took that for the new champion and said all 3 of 3 could not forecast,
    where the warehouse published every series from them."""
    from mm_assets.registry.production import ProductionRegistry
    from mm_assets.registry.promotion import CANNOT_SERVE, PROMOTED, REJECTED

    settings = Settings(storage={"lake": str(tmp_path / "lake"), "registry": f"sqlite:///{tmp_path}/registry.db",
                                 "warehouse": f"sqlite:///{tmp_path}/warehouse.db",
                                 "production_registry": f"sqlite:///{tmp_path}/production.db"})
    rows = model_rows([("S1", f"I{i}") for i in range(3)], accuracy=0.8)
    rows["metrics"] = json.dumps({"accuracy": 0.8, "rel_mae_baseline": 0.6, "holdout_points": 28})
    ModelRegistry(settings.storage.registry).register(rows, run_id="r1")
    champions = rows.drop(columns=["status", "reason", "data_start", "n_obs", "duration_s"]).assign(
        version=1, source_artifact_uri=rows["artifact_uri"])
    decided = rows[["series_key", "partition_key", "ids"]].assign(
        decision=[PROMOTED, PROMOTED, REJECTED], challenger_version=1, challenger_model_type="linear",
        challenger_accuracy=0.8, challenger_mase=None, challenger_wape=0.2, champion_version=None, champion_wape=None,
        reason=[f"passes the gate; the champion could not be re-scored on the holdout; {CANNOT_SERVE}: it was "
                "trained for horizon + gap = 14 periods and the settings ask for 28 + 0 = 28"] * 2
        + [f"challenger fails; its baseline serves it until a challenger passes; {CANNOT_SERVE}: it was trained "
           "for horizon + gap = 14 periods and the settings ask for 28 + 0 = 28"])
    ProductionRegistry(settings.storage.production_registry, writable=True).apply(champions, decided, "gate-1")
    report = promotion_report(settings)
    assert report["champions"] == 3 and report["champions_unfit_for_settings"] == 1
