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
