"""``mm-assets bench`` end to end on a tiny workload: every stage runs through Dagster and the JSON has the
fields the goals need."""

from __future__ import annotations

import json

import pytest

from mm_assets.cli import main

pytestmark = pytest.mark.e2e

STAGES = ("ingest", "datasets", "train", "promote", "score", "publish")


def test_bench_writes_the_results(tmp_path, capsys):
    out = tmp_path / "out.json"
    code = main(["bench", "--series", "40", "--days", "200", "--baseline-series", "10", "--json", str(out),
                 "--workdir", str(tmp_path / "work")])
    assert code == 0
    result = json.loads(out.read_text())
    for stage in STAGES:
        s = result["stages"][stage]
        assert s["wall_s"] > 0 and s["cpu_s"] > 0 and s["peak_rss_mb"] > 0, stage
        assert 0 <= s["bookkeeping_s"] <= s["wall_s"], stage
    assert result["stages"]["train"]["models"] == 40
    assert result["stages"]["score"]["models"] == 40
    assert result["stages"]["datasets"]["rows"] == result["workload"]["rows"]
    assert result["total_wall_s"] == pytest.approx(sum(result["stages"][s]["wall_s"] for s in STAGES), abs=0.01)
    assert result["setup"]["history_load"]["rows"] + result["stages"]["ingest"]["rows"] == result["workload"]["rows"]
    prior = result["setup"]["prior_cycle"]  # the day before's cycle: the cycle meets champions
    assert prior["runs"] == 3 * result["stages"]["train"]["runs"] and prior["wall_s"] > 0
    # the cycle runs the project's jobs: ingest, then train (datasets + train), promote (+ score), publish per batch
    assert result["cycle_runs"] == 1 + 3 * result["stages"]["train"]["runs"]
    assert result["stages"]["datasets"]["runs"] == result["stages"]["train"]["runs"]
    assert result["baseline"]["series"] == 10 and result["baseline"]["models_per_s"] > 0
    assert result["speedup_vs_baseline"] > 0
    assert {"cpu_model", "cores", "memory_gb", "python", "platform", "versions"} <= set(result["machine"])
    assert result["workload"]["series"] == 40 and result["workload"]["partitions"] >= 1
    assert set(result["goals"]) >= {"cycle_wall_s", "speedup_vs_baseline", "peak_rss_mb", "bookkeeping_pct"}
    # the peers ran in their own venv on the baseline's sample: speed and holdout WAPE beside ours
    peers = result["peers"]
    assert "error" not in peers, peers
    assert [p["peer"] for p in peers["peers"]] == ["statsforecast SeasonalNaive", "statsforecast AutoETS",
                                                    "mlforecast LightGBM"]
    for peer in peers["peers"]:
        assert peer["models_per_s"] > 0 and 0 < peer["holdout_wape"] < 2 and peer["ours_speedup"] > 0, peer
        assert peer["forecast_rows"] == peer["series"] * result["workload"]["horizon"]
    assert 0 < peers["ours"]["holdout_wape"] < 2 and peers["ours"]["models_per_s"] > 0
    assert result["goals"]["ahead_of_every_peer"]["value"].endswith("of 3")
    printed = capsys.readouterr().out
    assert "daily cycle" in printed and "goals" in printed and "mlforecast LightGBM" in printed
    assert "prior_cycle*" in printed
