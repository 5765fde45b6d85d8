"""The benchmark's goals name the size and model they apply to, and judge only there."""

from __future__ import annotations

from mm_assets.benchmark.report import goals


def _result(model: str, series: int, days: int, cycle_s: float, train_rate: float = 50.0) -> dict:
    stages = {s: {"bookkeeping_s": 0.1, "peak_rss_mb": 900.0, "wall_s": cycle_s / 6, "models_per_s": train_rate}
              for s in ("ingest", "datasets", "train", "promote", "score", "publish")}
    return {"stages": stages, "total_wall_s": cycle_s, "speedup_vs_baseline": 25.0,
            "workload": {"model": model, "series": series, "days": days}}


def test_the_cycle_goal_is_judged_at_full_size_only_and_per_model():
    small = goals(_result("linear", 2_000, 1_000, cycle_s=30.0))["cycle_wall_s"]
    assert small["pass"] is None and "10,000 series x 4,000 days" in small["note"]
    assert goals(_result("linear", 10_000, 4_000, cycle_s=59.0))["cycle_wall_s"]["pass"] is True
    assert goals(_result("linear", 10_000, 4_000, cycle_s=61.0))["cycle_wall_s"]["pass"] is False
    assert goals(_result("lightgbm", 10_000, 4_000, cycle_s=110.0))["cycle_wall_s"]["pass"] is True
    assert goals(_result("prophet", 10_000, 4_000, cycle_s=110.0))["cycle_wall_s"]["pass"] is None


def test_prophet_and_every_size_goals():
    prophet = goals(_result("prophet", 200, 1_095, cycle_s=30.0, train_rate=11.9))
    assert prophet["prophet_models_per_s"]["pass"] is False and prophet["prophet_models_per_s"]["target"] == ">= 12"
    assert goals(_result("linear", 200, 1_095, cycle_s=30.0))["prophet_models_per_s"]["pass"] is None
    small = goals(_result("linear", 50, 100, cycle_s=10.0))
    assert small["peak_rss_mb"]["pass"] is True and small["bookkeeping_pct"]["pass"] is True
