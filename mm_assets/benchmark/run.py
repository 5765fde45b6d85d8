"""The daily-cycle benchmark: generate a workload, run the daily cycle through Dagster stage by stage, measure.

Stages, on one fresh SQLite-backed instance (the same machinery as ``mm_assets.cycle.run_cycle``:
``execute_in_process`` runs, the local runner with one worker per core):

  setup         generate (the demo source), history_load (raw_sales over every day but the last), prior_cycle
                (the day before's cycle on those files: datasets cut once, training, gate, scoring, publishing;
                what every day of a deployment but its first meets: champions, yesterday's forecasts, the jobs'
                snapshots Dagster stores once)
  daily cycle   ingest (the newest day), datasets (appends the newest day to the day before's cut), train,
                promote, score, publish

The daily cycle runs as a deployment runs it: the project's jobs, ``ingest_job``, then for each batch of
partitions ``train_job`` (datasets + training), ``promote_job`` (gate + scoring) and ``publish_job``, batched like
``run_cycle`` does (``range_tags``, at most ``partitions_per_run`` per run, see ``workload``). Dagster's cost of a
run is paid once per job, as in a deployment; each stage is still timed on its own, the runs split at the step
where the next stage begins (``measure.StageClock``). Then the baseline runs on a sample of the same series.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from mm_assets.assets.partitions import group_partitions
from mm_assets.automation import PUBLISH_ASSETS, batches, range_tags
from mm_assets.benchmark import baseline as baseline_mod
from mm_assets.benchmark import peer_runner as peers_mod
from mm_assets.benchmark import report as report_mod
from mm_assets.benchmark.measure import StageClock, StageMeasurement, measure
from mm_assets.benchmark.workload import (
    Workload,
    bench_settings,
    history_days_per_run,
    new_instance,
    partitions_per_run,
)
from mm_assets.cycle import period_keys_for
from mm_assets.forecasting.models import GLOBAL_TYPES
from mm_assets.job_runs import execute_job
from mm_assets.memory import release_freed

# stage -> assets it materializes
STAGE_ASSETS = {
    "ingest": ["raw_sales"],
    "datasets": ["series_datasets"],
    "train": ["trained_models"],
    "promote": ["production_models"],
    "score": ["batch_predictions"],
    "publish": list(PUBLISH_ASSETS),
}
# the daily cycle: the project's jobs (automation.build_jobs) and the stages each runs, in order
CYCLE_JOBS = {"train_job": ("datasets", "train"), "promote_job": ("promote", "score"), "publish_job": ("publish",)}


class BenchmarkError(RuntimeError):
    """A stage's run failed; the message names the stage and the failed steps."""


@dataclass
class Options:
    series: int = 10_000
    days: int = 4_000
    model: str = "linear"
    seed: int = 42
    baseline_series: int = 200
    workdir: Path | None = None
    keep: bool = False
    workers: int | None = None
    peers: bool = True  # statsforecast and mlforecast on the baseline's sample (their own venv)


def bench_definitions(settings) -> dg.Definitions:
    """The project's assets, resources and the jobs of its daily cycle."""
    from mm_assets.definitions import build_definitions

    defs = build_definitions(settings)
    jobs = [defs.resolve_job_def(name) for name in ("ingest_job", *CYCLE_JOBS)]
    return dg.Definitions(assets=defs.assets, jobs=jobs, resources=defs.resources)


def stage_of_step(defs: dg.Definitions) -> dict[str, str]:
    """Step key -> benchmark stage: the op of each stage's assets (a multi-asset is one step)."""
    return {defs.resolve_assets_def(key).node_def.name: stage for stage, keys in STAGE_ASSETS.items() for key in keys}


def _metadata_sum(result, asset: str, key: str) -> int:
    """Sum of a numeric metadata entry over the run's materializations of ``asset`` (per partition)."""
    total = 0
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.to_user_string() == asset and key in mat.metadata:
            total += int(mat.metadata[key].value)
    return total


class _Runner:
    def __init__(self, defs: dg.Definitions, settings, instance, log: Callable[[str], None]):
        self.defs = defs
        self.settings = settings
        self.instance = instance
        self.log = log
        for name in ["ingest_job", *CYCLE_JOBS]:
            defs.resolve_job_def(name)  # resolved (and cached by Definitions) before any stage is timed

    def execute(self, stage: str, job_name: str, keys: list[str], m: StageMeasurement | None = None):
        label = keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"
        run = execute_job(self.defs, self.instance, job_name, range_tags(keys), label, settings=self.settings)
        if m is not None:
            m.runs += 1
        self.log(f"  {stage}: {job_name} [{label}] {'ok' if run.success else 'FAILED'} in {run.seconds:.1f}s")
        if not run.success:
            raise BenchmarkError(f"stage {stage}: run {run.run_id} failed: {'; '.join(run.causes) or 'see the run'}")
        return run.result


def run_benchmark(options: Options, log: Callable[[str], None] = print) -> dict:
    """Run everything; returns the result dictionary (the JSON's content)."""
    workload = Workload(series=options.series, days=options.days, model=options.model, seed=options.seed)
    created = options.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="mm-bench-", dir="/tmp")) if created else Path(options.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"benchmark work directory: {workdir}")
    load_before = os.getloadavg()  # other work on the machine skews every figure: recorded with them
    instance = None
    try:
        settings = bench_settings(workdir, workload, options.workers)
        from mm_assets.demo.generator import write_source

        spec = workload.spec
        log(f"generating {spec.stores} stores x {spec.items} items x {spec.days} days ...")
        started = time.perf_counter()
        rows = write_source(spec, url=settings.source.url, table=settings.source.table)
        generate_s = time.perf_counter() - started
        release_freed()  # the generator's freed memory is not the cycle's: every stage's peak would carry it
        log(f"  {rows:,} rows in {generate_s:.1f}s")

        instance = new_instance(workdir / "dagster_home")
        defs = bench_definitions(settings)
        runner = _Runner(defs, settings, instance, log)
        keys = period_keys_for(settings, *(_source_span(settings)))
        history, newest = keys[:-1], keys[-1:]

        with measure("history_load", instance) as hist:
            for chunk in batches(history, history_days_per_run(spec.series)):
                hist.rows = (hist.rows or 0) + _metadata_sum(
                    runner.execute("history_load", "ingest_job", chunk, hist), "raw_sales", "rows")
        groups = instance.get_dynamic_partitions(group_partitions(settings).name)
        per_run = partitions_per_run(rows, len(groups))
        runs = batches(groups, per_run)
        log(f"{len(groups)} partitions, {per_run} per run -> {len(runs)} run(s) per stage")

        with measure("prior_cycle", instance) as prior:  # the day before's cycle: today's meets its champions
            for batch in runs:
                for job in CYCLE_JOBS:
                    runner.execute("prior_cycle", job, batch, prior)

        # stage -> (asset, metadata key) of its rows, (asset, key) of its models; rows default to the dataset rows
        counted = {"ingest": ("raw_sales", "rows", None, None),
                   "datasets": ("series_datasets", "rows", None, None),
                   "train": (None, None, "trained_models", "series"),
                   "promote": (None, None, "production_models", "series"),
                   "score": (None, None, "batch_predictions", "series"),
                   "publish": ("forecast_predictions", "rows", None, None)}
        rows_done = dict.fromkeys(counted, 0)
        models_done = dict.fromkeys(counted, 0)

        def count(result) -> None:
            for stage, (row_asset, row_key, model_asset, model_key) in counted.items():
                if row_asset:
                    rows_done[stage] += _metadata_sum(result, row_asset, row_key)
                if model_asset:
                    models_done[stage] += _metadata_sum(result, model_asset, model_key)

        cycle_runs = 0
        with StageClock(instance, stage_of_step(defs)) as clock:
            with clock.run("ingest"):
                result = runner.execute("ingest", "ingest_job", newest)
            count(result)
            cycle_runs += 1
            for batch in runs:  # batch after batch, as run_cycle and the sensors chain them
                for job, job_stages in CYCLE_JOBS.items():
                    with clock.run(job_stages[0]):
                        result = runner.execute("+".join(job_stages), job, batch)
                    count(result)
                    cycle_runs += 1
        stages: dict[str, StageMeasurement] = {name: clock.stages[name] for name in counted}
        for name, m in stages.items():
            row_asset, _, _, model_key = counted[name]
            m.rows = rows_done[name] if row_asset else rows_done["datasets"]
            m.models = models_done[name] if model_key else None
        _log_top_bookkeeping(stages, log)

        result: dict = {
            "benchmark": "mm-assets daily cycle",
            "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {**report_mod.machine(),
                        "load_average_1m": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)}},
            "workload": {**workload.as_dict(), "rows": rows, "partitions": len(groups),
                         "partitions_per_run": per_run, "workers": settings.runner.max_concurrency,
                         "series_per_task": settings.runner.series_per_task},
            "stages": {name: s.as_dict() for name, s in stages.items()},
            "setup": {"generate_s": round(generate_s, 3), "history_load": hist.as_dict(),
                      "prior_cycle": prior.as_dict()},
            "total_wall_s": round(sum(s.wall_s for s in stages.values()), 3),
            "cycle_runs": cycle_runs,
        }
        sample = None
        try:
            sample = _sample(settings, spec, options.baseline_series, log)
            result["baseline"] = _baseline(settings, workload, sample, log)
        except Exception as exc:  # noqa: BLE001 - the cycle's figures are still worth writing
            log(f"baseline failed: {type(exc).__name__}: {exc}")
            result["baseline"] = {"error": f"{type(exc).__name__}: {exc}", "models_per_s": None}
        if sample is not None and options.peers:
            result["peers"] = peers_mod.compare(settings, sample[0], workdir, stages, log)
        train_rate = stages["train"].models / stages["train"].wall_s if stages["train"].wall_s else 0
        base_rate = (result["baseline"] or {}).get("models_per_s")
        result["speedup_vs_baseline"] = round(train_rate / base_rate, 2) if base_rate else None
        result["speedup_by_model"] = {workload.model: result["speedup_vs_baseline"]}
        result["goals"] = report_mod.goals(result)
        return result
    finally:
        if instance is not None:
            instance.dispose()
        if created and not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif options.keep or not created:
            log(f"work directory kept: {workdir}")


def _source_span(settings):
    from mm_assets.ingest.source import SourceReader

    first, last, _ = SourceReader.from_settings(settings).date_range()
    return first, last


def _sample(settings, spec, k: int, log) -> tuple | None:
    """The rows of ``k`` series spread over the data set, read as a user would (baseline and peers use them)."""
    if k <= 0:
        return None
    return baseline_mod.read_sample(settings.source.url, settings.source.table, spec.store_ids, spec.item_ids, k)


def _baseline(settings, workload: Workload, sample, log) -> dict | None:
    if sample is None:
        return None
    if workload.model in GLOBAL_TYPES:  # one model over all series: there is no per-series loop to compare with
        log(f"baseline: none for the global model {workload.model}")
        return None
    frame, read_s = sample
    log(f"baseline: {workload.model} on {frame[['store', 'item']].drop_duplicates().shape[0]} series "
        f"({len(frame):,} rows, read in {read_s:.1f}s) ...")
    out = baseline_mod.run_baseline(frame, workload.model, settings.horizon)
    out["read_s"] = round(read_s, 3)
    out["rows"] = int(len(frame))
    return out


def _log_top_bookkeeping(stages: dict[str, StageMeasurement], log) -> None:
    for name, s in stages.items():
        top = s.detail.get("bookkeeping_top") or []
        if top:
            log(f"  {name}: storage time by method: " + ", ".join(f"{k} {n}x {t}s" for k, n, t in top[:3]))


def default_json_path() -> Path:
    """bench/results/<UTC timestamp>.json of the repository (else of the working directory)."""
    repo = Path(__file__).resolve().parents[2]
    root = repo if (repo / "bench").is_dir() else Path.cwd()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return root / "bench" / "results" / f"{stamp}.json"


def main(options: Options, json_path: str | None = None, log: Callable[[str], None] = print) -> int:
    result = run_benchmark(options, log=log)
    log(report_mod.format_report(result))
    path = report_mod.write_json(result, Path(json_path) if json_path else default_json_path())
    log(f"\nresults written to {path}")
    return 0
