"""The Azure ML sizing arithmetic: the smallest cluster that meets the target, enough chunks for its processes."""

from __future__ import annotations

import json

import pytest

from mm_assets.cli import main
from mm_assets.parallel.azureml.sizing import Cluster, measured_from_bench, size


@pytest.fixture
def bench_json(tmp_path):
    path = tmp_path / "bench.json"
    stages = {"datasets": {"cpu_s": 90.0}, "train": {"cpu_s": 90.0}, "promote": {"cpu_s": 30.0},
              "score": {"cpu_s": 50.0}, "publish": {"cpu_s": 15.0}}
    path.write_text(json.dumps({"stages": stages, "workload": {"series": 10_000, "days": 4000, "model": "linear"}}))
    return path


def test_cpu_per_series_is_the_fanned_out_stages_of_the_benchmark(bench_json):
    measured = measured_from_bench(bench_json)
    assert measured.cpu_per_series == pytest.approx((90 + 30 + 50) / 10_000)
    assert measured.series == 10_000 and measured.model == "linear"


def test_a_result_without_the_stages_is_named(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"stages": {"train": {"cpu_s": 1}}, "workload": {"series": 1}}))
    with pytest.raises(ValueError, match=r"no stage\(s\) \['promote', 'score'\]"):
        measured_from_bench(path)


@pytest.mark.parametrize("series", [10_000, 100_000, 1_000_000])
def test_the_smallest_cluster_that_meets_the_target(bench_json, series):
    measured, cluster = measured_from_bench(bench_json), Cluster(startup_s=120.0)
    s = size(series, measured, cluster, target_wall_s=900.0)
    assert s.meets_target and s.wall_s <= 900.0
    if s.nodes > 1:
        assert not size(series, measured, Cluster(startup_s=120.0, max_nodes=s.nodes - 1), 900.0).meets_target
    assert s.mini_batches <= s.max_mini_batches and s.series_per_chunk * s.mini_batches >= series
    assert s.mini_batches >= min(s.processes, series // 250)  # every process has a chunk to work on
    assert s.cost == pytest.approx(s.nodes * cluster.node_hour_price * s.wall_s / 3600)


def test_a_target_below_the_start_up_gives_the_fastest_cluster_and_says_so(bench_json):
    s = size(100_000, measured_from_bench(bench_json), Cluster(startup_s=400.0), target_wall_s=600.0)
    assert not s.meets_target and s.wall_s > 3 * 400.0
    assert s.nodes < 100  # not simply the largest: more nodes would no longer make it faster


def test_the_cli_prints_one_row_per_size(bench_json, capsys):
    assert main(["azureml", "sizing", "--bench", str(bench_json), "--series", "10000,200000", "--price", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "| 10,000 |" in out and "| 200,000 |" in out and "0.50 per node-hour" in out
    assert main(["azureml", "sizing", "--bench", str(bench_json.parent / "missing.json")]) == 2
    assert "--bench" in capsys.readouterr().err
