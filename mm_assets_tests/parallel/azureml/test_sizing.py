"""The Azure ML sizing arithmetic: the smallest cluster that meets the target, enough chunks for its processes."""

from __future__ import annotations

import json

import pytest

from mm_assets.cli import main
from mm_assets.parallel.azureml.sizing import Cluster, measured_from_bench, size, training_days


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
    one_run = series * measured.days  # every store in one run (schedule.rows_per_run raised to hold them)
    s = size(series, measured, cluster, target_wall_s=900.0, rows_per_run=one_run)
    assert s.meets_target and s.wall_s <= 900.0 and s.runs == 1
    if s.nodes > 1:
        assert not size(series, measured, Cluster(startup_s=120.0, max_nodes=s.nodes - 1), 900.0,
                        rows_per_run=one_run).meets_target
    assert s.mini_batches <= s.max_mini_batches and s.series_per_chunk * s.mini_batches >= series
    assert s.mini_batches >= min(s.processes, series // 250)  # every process has a chunk to work on
    assert s.cost == pytest.approx(s.nodes * cluster.node_hour_price * s.wall_s / 3600)


def test_a_cycle_of_many_runs_pays_each_runs_three_jobs(bench_json):
    """``mm-assets cycle`` runs a cycle's runs (at most ``schedule.rows_per_run`` rows each) one after another, each
    with its three jobs and their start-up: the table claimed 14.8 minutes for 1,000,000 series of 4,000 days, 200
    runs of the default 20,000,000 rows then. A run's rows are those a global model's training reads: each series'
    newest 1,152 days of its 4,000 (``training_days``), so the default 15,000,000 rows make 77 runs."""
    measured, one_node = measured_from_bench(bench_json), Cluster(startup_s=120.0, max_nodes=1)
    assert training_days() == 1_152
    many = size(1_000_000, measured, one_node, 900.0)
    assert many.runs == 77 and not many.meets_target
    share = -(-1_000_000 // 77)
    one = size(share, measured, one_node, 900.0, rows_per_run=share * 1_152)  # one run's share
    assert one.runs == 1 and many.wall_s == pytest.approx(77 * one.wall_s)


def test_a_global_model_trains_each_run_on_one_node(tmp_path):
    """lightgbm's training is one mini-batch per run: more nodes do not shorten it (the table planned 1,000,000
    series of the default model on 33 nodes in 15 minutes, from chunks that do not exist)."""
    path = tmp_path / "lgbm.json"
    stages = {"train": {"cpu_s": 140.0}, "promote": {"cpu_s": 20.0}, "score": {"cpu_s": 40.0}}
    path.write_text(json.dumps({"stages": stages, "workload": {"series": 10_000, "days": 1000, "model": "lightgbm"}}))
    measured = measured_from_bench(path)
    assert measured.global_model and measured.train_cpu_per_series == pytest.approx(0.014)
    rows = 200_000 * 1000
    small, large = (size(200_000, measured, Cluster(max_nodes=n), 900.0, rows_per_run=rows) for n in (1, 40))
    train_alone = 240.0 + 0.014 * 200_000 / 4  # start-up, then one node's 4 threads
    assert large.wall_s > train_alone + 2 * 240.0 and small.wall_s > large.wall_s
    assert large.wall_s - (train_alone + 2 * 240.0) < small.wall_s - (train_alone + 2 * 240.0)  # promote, score


def test_the_cli_refuses_sizes_and_a_cluster_that_cannot_be(bench_json, capsys):
    assert main(["azureml", "sizing", "--bench", str(bench_json), "--vcpus", "0", "--series", "0,10"]) == 2
    err = capsys.readouterr().err
    assert "--vcpus 0: at least 1" in err and "--series 0: each size at least 1 series" in err
    assert main(["azureml", "sizing", "--bench", str(bench_json), "--price", "-1", "--target-minutes", "0"]) == 2
    err = capsys.readouterr().err
    assert "--price -1: 0 or more" in err and "--target-minutes 0: more than 0" in err


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
