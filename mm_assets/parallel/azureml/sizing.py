"""How big an Azure ML cluster a daily cycle needs: nodes, processes, mini-batches, wall time and cost per size,
from the CPU per series a benchmark measured (``make bench`` writes it as JSON).

The model is deliberately simple, and every input is a number the user can check:

- CPU per series: the train + promote + score stages' CPU seconds of a ``make bench`` result divided by its
  series. Those stages run in the runner's worker processes, so this is what a node's processes spend (it
  includes reading the series, which a node does too).
- A job of N series runs as ``M`` chunks (``mltable.chunk_size``: at least ``runner.series_per_minibatch`` series,
  about ``azureml.max_mini_batches`` chunks at most) over ``P = nodes x processes`` worker processes, one per
  vCPU. Chunks are the unit of scheduling, so the work takes ``ceil(M / P)`` waves of one chunk each
  (chunk CPU + a fixed overhead per mini-batch), plus the job's start-up (nodes allocated, environment pulled).
- The cluster is the smallest that meets the target wall time, with enough chunks for every process
  (``max_mini_batches`` to set is part of the answer); cost = nodes x node-hour price x wall time, three jobs a
  day (train, promote, score) each paying the start-up.
- A cycle cuts its stores into runs of at most ``schedule.rows_per_run`` rows (series x the days of history a
  global model's training reads: ``training_days``), and ``mm-assets cycle`` runs them one after another, each
  with its three jobs: the wall time is the runs' sum.
- A global model (``lightgbm``) trains one model per run as one mini-batch: its train job runs on one node, its
  vCPUs as the booster's threads, whatever the cluster's size; more nodes speed its promote and score jobs only.

The start-up and per-mini-batch overhead defaults are assumptions to replace with one's own measurement (one
small job in the workspace shows both); the node-hour price is the user's own (region, VM size, agreement).

No Dagster here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from mm_assets.forecasting.model_types import GLOBAL_TYPES
from mm_assets.parallel.azureml.mltable import chunk_size
from mm_assets.settings import ScheduleSettings, Settings

STAGES = ("train", "promote", "score")
DEFAULT_ROWS_PER_RUN = ScheduleSettings.model_fields["rows_per_run"].default


def training_days() -> int:
    """Days of a daily series that count towards ``schedule.rows_per_run`` (``datasets.training_window_rows``): the
    newest ones a global model's training reads, under the default settings (daily, horizon 28, as the benchmark)."""
    from mm_assets.ingest.datasets import training_window_of

    return training_window_of(Settings.model_validate({}))[0]


@dataclass(frozen=True)
class Measured:
    cpu_per_series: float  # CPU seconds per series, train + promote + score
    series: int
    days: int
    model: str
    source: str
    train_cpu_per_series: float = 0.0  # of it, training's

    @property
    def global_model(self) -> bool:
        """A model type that trains one model per run, as one mini-batch (``GLOBAL_TYPES``)."""
        return self.model in GLOBAL_TYPES


@dataclass(frozen=True)
class Cluster:
    vcpus_per_node: int = 4
    node_hour_price: float = 0.20  # the user's own price; this default is only a placeholder
    startup_s: float = 240.0  # per job: nodes allocated, image pulled, init() (assumption; measure yours)
    overhead_per_mini_batch_s: float = 2.0  # per mini-batch: scheduling, reading its chunk (assumption)
    max_nodes: int = 100


@dataclass(frozen=True)
class Sizing:
    series: int
    nodes: int
    processes: int
    mini_batches: int
    max_mini_batches: int
    series_per_chunk: int
    wall_s: float  # the three jobs of each run of a cycle, one after the other
    cost: float
    meets_target: bool
    runs: int = 1  # runs of at most rows_per_run rows, each with its three jobs


def measured_from_bench(path: str | Path) -> Measured:
    """CPU per series of a ``make bench`` result (``--json``)."""
    data = json.loads(Path(path).read_text())
    stages = data.get("stages") or {}
    missing = [s for s in STAGES if s not in stages]
    if missing:
        raise ValueError(f"{path}: the benchmark result has no stage(s) {missing}; run `make bench` (it writes "
                         "bench/results/<date>-<model>-<series>x<days>.json)")
    workload = data["workload"]
    cpu = sum(float(stages[s]["cpu_s"]) for s in STAGES)
    series = int(workload["series"])
    return Measured(cpu_per_series=cpu / series, series=series, days=int(workload["days"]),
                    model=str(workload["model"]), source=str(path),
                    train_cpu_per_series=float(stages["train"]["cpu_s"]) / series)


def size(series: int, measured: Measured, cluster: Cluster, target_wall_s: float = 900.0,
         series_per_minibatch: int = 250, rows_per_run: int = DEFAULT_ROWS_PER_RUN) -> Sizing:
    """The smallest cluster whose daily cycle (three jobs per run) of ``series`` series meets ``target_wall_s``."""
    runs = max(1, math.ceil(series * min(measured.days, training_days()) / rows_per_run))
    per_run = math.ceil(series / runs)
    jobs = len(STAGES)

    def plan(nodes: int) -> Sizing:
        processes = nodes * cluster.vcpus_per_node
        max_mb = max(200, 4 * processes)  # a few chunks per process keeps every process busy to the end
        per_chunk = chunk_size(per_run, series_per_minibatch, max_mb)
        mini_batches = math.ceil(per_run / per_chunk)
        waves = math.ceil(mini_batches / processes)
        if measured.global_model:  # training: one mini-batch on one node, its vCPUs as threads
            chunked = measured.cpu_per_series - measured.train_cpu_per_series
            train = cluster.startup_s + measured.train_cpu_per_series * per_run / cluster.vcpus_per_node
            run_wall = train + (jobs - 1) * cluster.startup_s + waves * (
                chunked * per_chunk + (jobs - 1) * cluster.overhead_per_mini_batch_s)
        else:
            run_wall = jobs * cluster.startup_s + waves * (
                measured.cpu_per_series * per_chunk + jobs * cluster.overhead_per_mini_batch_s)
        wall = runs * run_wall
        cost = nodes * cluster.node_hour_price * wall / 3600.0
        return Sizing(series, nodes, processes, mini_batches, max_mb, per_chunk, wall, cost, wall <= target_wall_s,
                      runs)

    plans = []
    for nodes in range(1, cluster.max_nodes + 1):
        plans.append(plan(nodes))
        if plans[-1].meets_target:
            return plans[-1]
    # the target is out of reach (start-up alone may exceed it): the smallest cluster within 1 % of the fastest
    fastest = min(p.wall_s for p in plans)
    return next(p for p in plans if p.wall_s <= fastest * 1.01)


def sizing_table(measured: Measured, cluster: Cluster, sizes=(10_000, 100_000, 1_000_000),
                 target_wall_s: float = 900.0, series_per_minibatch: int = 250,
                 rows_per_run: int = DEFAULT_ROWS_PER_RUN) -> str:
    """A Markdown table: one row per size."""
    lines = [
        f"CPU per series (train + promote + score): {measured.cpu_per_series * 1000:.1f} ms, measured by "
        f"{Path(measured.source).name} ({measured.model}, {measured.series:,} series x {measured.days:,} days).",
        f"Nodes of {cluster.vcpus_per_node} vCPUs at {cluster.node_hour_price:.2f} per node-hour, "
        f"{cluster.startup_s:.0f} s start-up per job, {cluster.overhead_per_mini_batch_s:.1f} s per mini-batch, "
        f"target {target_wall_s / 60:.0f} min for the three jobs of every run; runs of at most {rows_per_run:,} rows "
        f"(schedule.rows_per_run; series x {min(measured.days, training_days()):,} days), one after another.",
    ]
    if measured.global_model:
        lines.append(f"{measured.model} trains one global model per run as one mini-batch, on one node (its "
                     f"{cluster.vcpus_per_node} vCPUs as threads: {measured.train_cpu_per_series * 1000:.1f} ms of "
                     "training CPU per series): more nodes speed the promote and score jobs only.")
    lines += [
        "",
        "| series | runs | nodes | processes | azureml.max_mini_batches | mini-batches per run | series per chunk "
        "| wall (3 jobs per run) | cost per cycle | meets target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        s = size(n, measured, cluster, target_wall_s, series_per_minibatch, rows_per_run)
        lines.append(f"| {n:,} | {s.runs:,} | {s.nodes} | {s.processes} | {s.max_mini_batches} | {s.mini_batches} | "
                     f"{s.series_per_chunk:,} | {s.wall_s / 60:.1f} min | {s.cost:.2f} | "
                     f"{'yes' if s.meets_target else 'no: the fastest there is'} |")
    return "\n".join(lines)
