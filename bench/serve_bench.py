"""Online-endpoint benchmark (``make bench-serve``): the real inference server on loopback, concurrent clients.

1. Builds a registry of ``--series`` series (default 10,500) in a scratch folder: ``--models`` real linear
   models (default 50) are trained on synthetic daily series and each model's bytes are registered under many
   series, one copy per series in the bundle files (models are replicated; every series is still its own
   registry lookup, byte-range read, unpickle and forecast when it is cold), with each series' dataset in the
   lake (its model's history, then the horizon's plan): a cold request reads the series' rows, as in production. With ``--model lightgbm`` (the
   default model), as a deployment after a daily run: each store's dataset in the lake (100 products, 400 days
   of history, then the horizon's planned prices and promotions), the global models the daily cycle's defaults
   train (one per run of stores: one for 2,000 series; ``--model-per-store`` one per store), a model's series
   sharing one byte range, and batch scoring's published forecasts (default 2,000 series, a cache of 600
   per worker). A cold request then reads the series' rows and its published forecast, as in production.
2. Starts ``azmlinfsrv`` (loopback) with the scoring script, ``--workers`` gunicorn workers and a model cache
   of ``--cache-models`` per worker.
3. Cold: every series requested once, by ``--clients`` concurrent clients (each request loads a model).
   Resident memory of the server (master + workers) is sampled along the way.
4. Warm: ``--warm-requests`` requests over a working set that fits the cache, after it has been loaded.
5. Warm with planned regressors (a planner's what-if: the model runs per request).

Each request asks for one series and a 28-step forecast (the horizon of the settings). Latencies are client-side
(send to last byte), classified cold/warm by the server's ``x-mm-cache-misses`` header. Prints a table, the
goals (2 cores: warm p99 <= 20 ms, cold p99 <= 20 ms, what-if p99 <= 10 ms at >= 1,000 req/s, memory flat at
the cache bound) and writes
bench/results/serve-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mm_assets.serving.loopback import HOST, free_port, start_server, stop_server  # noqa: E402

HORIZON = 28
END = dt.date(2026, 6, 30)
GOALS = {"warm_p99_ms": 20.0, "cold_p99_ms": 20.0, "planned_p99_ms": 10.0, "planned_rps": 1000.0}


# ---- memory --------------------------------------------------------------------------------------------
def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by the server's master and workers."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def server_rss_mib(pid: int) -> tuple[float, dict[int, float]]:
    workers = {w: _rss_kib(w) / 1024 for w in _children(pid)}
    return _rss_kib(pid) / 1024 + sum(workers.values()), workers


# ---- client --------------------------------------------------------------------------------------------
class Client:
    """One keep-alive connection (reopened when the server closes it)."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> tuple[int, dict[str, str], bytes, float]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            started = time.perf_counter()
            try:
                self.conn.request("POST", "/score", body, {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            elapsed = time.perf_counter() - started
            headers = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return resp.status, headers, data, elapsed
        raise RuntimeError("unreachable")


def request_body(store: str, item: str, plan: bool = False, horizon: int = HORIZON) -> bytes:
    series = {"store": store, "item": item, "horizon": horizon}
    if plan:
        first = END + dt.timedelta(days=1)
        series["regressors"] = [{"ds": (first + dt.timedelta(days=d)).isoformat(), "promo": 1, "price": 1.79}
                                for d in (2, 3, 4)]
    return json.dumps({"series": [series]}).encode()


def run_phase(port: int, bodies: list[bytes], clients: int, on_progress=None) -> dict:
    """Send every body once, ``clients`` at a time; returns latencies split by cold/warm and the wall time."""
    lock = threading.Lock()
    position = [0]
    results: list[tuple[int, int, float, str]] = []
    errors: list[str] = []
    caches: dict[str, tuple[int, int]] = {}  # worker pid -> (models, bytes) after its latest answer

    def worker() -> None:
        client = Client(port)
        while True:
            with lock:
                i = position[0]
                if i >= len(bodies):
                    return
                position[0] += 1
            try:
                status, headers, data, elapsed = client.post(bodies[i])
            except Exception as exc:  # noqa: BLE001 - counted and shown
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            misses = int(headers.get("x-mm-cache-misses", "0"))
            with lock:
                pid = headers.get("x-mm-worker-pid", "")
                results.append((status, misses, elapsed, pid))
                if pid:
                    caches[pid] = (int(headers.get("x-mm-cache-models", 0)), int(headers.get("x-mm-cache-bytes", 0)))
                if status != 200 and len(errors) < 5:
                    errors.append(f"HTTP {status}: {data[:200]!r}")
                done = len(results)
            if on_progress is not None:
                on_progress(done)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ok = [r for r in results if r[0] == 200]
    return {
        "requests": len(results),
        "ok": len(ok),
        "errors": errors[:5],
        "wall_s": wall,
        "throughput_rps": len(results) / wall if wall else 0.0,
        "cold_ms": [r[2] * 1e3 for r in ok if r[1] > 0],
        "warm_ms": [r[2] * 1e3 for r in ok if r[1] == 0],
        "caches": caches,
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100 * len(values) + 0.5)) - 1))
    return values[k]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50_ms": pct(values, 50), "p99_ms": pct(values, 99),
            "mean_ms": statistics.fmean(values) if values else float("nan"), "max_ms": max(values, default=float("nan"))}


# ---- registry ------------------------------------------------------------------------------------------
def global_models(settings, series: list[tuple[str, str]], days: int, per_store: bool = False) -> list:
    """``lightgbm`` models as the daily cycle trains them with the settings' defaults: one model learnt across
    the series of each run of stores (``schedule.partitions_per_run`` stores and ``schedule.rows_per_run`` rows at
    most: 2,000 series of 400 days make one run), or, with ``per_store``, one per store of 100 products (as runs
    of one store would: more, smaller models, whose trees a what-if finds out of the CPU's caches more often).
    Each is learnt from its stores' datasets in the lake (history, then a plan of the horizon's prices and
    promotions): (pickled model, outcome) per series, a model's series sharing its bytes."""
    import pickle

    import pandas as pd

    from mm_assets.forecasting.global_training import train_global
    from mm_assets.forecasting.series import SeriesConfig
    from mm_assets.ingest.datasets import dataset_file
    from mm_assets.ingest.partition_rows import runs_by_rows
    from mm_assets.lake import Lake
    from mm_assets.serving.synthetic import daily_rows, plan_rows, write_datasets

    cfg = SeriesConfig.from_settings(settings)
    write_datasets(settings, series, [pd.concat([daily_rows(days, k, END), plan_rows(HORIZON, k, END)],
                                                ignore_index=True) for k in range(len(series))])
    lake = Lake(settings.storage.lake)
    stores: dict[str, list[int]] = {}
    for k, (store, _) in enumerate(series):
        stores.setdefault(store, []).append(k)
    rows = {store: len(members) * (days + HORIZON) for store, members in stores.items()}
    schedule = settings.schedule
    runs = ([[store] for store in stores] if per_store
            else runs_by_rows(sorted(stores), rows, schedule.partitions_per_run, schedule.rows_per_run))
    out: list = [None] * len(series)
    for run in runs:  # stores in order, each sorted by item: the frame is sorted by ids as training wants it
        frame = pd.concat([lake.read_parquet(dataset_file(store)) for store in run], ignore_index=True)
        members = [k for store in run for k in stores[store]]
        model, outcomes, _ = train_global(frame, ["store", "item"], cfg, settings.model.params)
        blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        for position, k in enumerate(members):
            out[k] = (blob, outcomes[position])
    return out


def build(workdir: Path, n_series: int, n_models: int, model_type: str = "linear", per_store: bool = False
          ) -> tuple[Path, list[tuple[str, str]], dict]:
    import pandas as pd

    from mm_assets.serving.synthetic import (
        daily_rows,
        plan_rows,
        publish_forecasts,
        train_models,
        write_datasets,
        write_registry,
    )
    from mm_assets.settings import Settings

    settings = Settings.model_validate({
        "model": {"type": model_type},
        "storage": {
            "lake": str(workdir / "lake"),
            "registry": f"sqlite:///{workdir}/registry.db",
            "warehouse": f"sqlite:///{workdir}/warehouse.db",
            "production_registry": f"sqlite:///{workdir}/production.db",
        },
        "horizon": HORIZON,
    })
    items_per_store = 100
    series = [(f"B{s:04d}", f"I{i:03d}") for s in range((n_series + items_per_store - 1) // items_per_store)
              for i in range(items_per_store)][:n_series]
    t0 = time.perf_counter()
    if model_type == "lightgbm":
        models = global_models(settings, series, days=400, per_store=per_store)
    else:
        models = train_models(settings, n_models, days=240, end=END, model_type=model_type)
        # each series' dataset as a deployment's lake holds it: its model's history, then a plan of the horizon
        write_datasets(settings, series, [pd.concat([daily_rows(240, k % n_models, END), plan_rows(HORIZON, k, END)],
                                                    ignore_index=True) for k in range(len(series))])
    t1 = time.perf_counter()
    # a run's global model is one byte range for every series of the run, whatever its store (as the training
    # registry and the gate's production copy hold it); a model per store is one per store's bundle
    write_registry(settings, series, models, run_id="bench", shared=model_type == "lightgbm", one_bundle=not per_store)
    if model_type == "lightgbm":  # a global model's series answer batch scoring's published forecast
        publish_forecasts(settings, sorted({store for store, _ in series}), run_id="bench")
    t2 = time.perf_counter()
    path = workdir / "mm_assets.yaml"
    path.write_text(settings.model_dump_json(indent=1))
    distinct = {id(blob): len(blob) for blob, _ in models}
    info = {"train_s": t1 - t0, "register_s": t2 - t1, "distinct_models": len(distinct), "model_type": model_type,
            "model_bytes_mean": statistics.fmean(distinct.values()), "series": len(series)}
    return path, series, info


# ---- main ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["linear", "lightgbm"], default="linear",
                        help="linear: --models per-series models replicated; lightgbm: global models as the cycle's defaults "
                             "train them (one per run of stores), shared by their series")
    parser.add_argument("--model-per-store", action="store_true",
                        help="lightgbm: one global model per store of 100 products instead (more, smaller models)")
    parser.add_argument("--series", type=int, default=None,
                        help="distinct series registered and requested (default 10,500; 2,000 with lightgbm)")
    parser.add_argument("--models", type=int, default=50, help="distinct trained linear models (replicated)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (WORKER_COUNT)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gunicorn --threads)")
    parser.add_argument("--cache-models", type=int, default=None,
                        help="cache limit per worker, models (default 2,000; 600 with lightgbm, below its 2,000 series)")
    parser.add_argument("--cache-bytes", default="256MiB", help="cache limit per worker, bytes")
    parser.add_argument("--warm-set", type=int, default=500, help="series in the warm working set")
    parser.add_argument("--warm-requests", type=int, default=5000)
    parser.add_argument("--planned-requests", type=int, default=3000)
    parser.add_argument("--workdir", help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--json", help="result file (default bench/results/serve-<time>.json)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --workdir: serve the registry and lake an earlier run built there (same --model, "
                             "--series, --models) instead of building them again; the server's caches start empty")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed (default: only on errors)")
    args = parser.parse_args(argv)
    if args.series is None:
        args.series = 2_000 if args.model == "lightgbm" else 10_500
    if args.cache_models is None:
        args.cache_models = 600 if args.model == "lightgbm" else 2_000

    scratch = Path(args.workdir or tempfile.mkdtemp(prefix="mm-serve-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count()
    load_before = os.getloadavg()
    print(f"mm-assets online endpoint benchmark: {cores} cores, load average {load_before[0]:.2f} "
          f"(server and clients share these cores; other load distorts the figures), scratch {scratch}")
    if args.model == "lightgbm":
        layout = "one per store of 100 products" if args.model_per_store else "one per run of stores"
        print(f"building a registry of {args.series:,} series: lightgbm models {layout}, shared by their series ...",
              flush=True)
    else:
        print(f"building a registry of {args.series:,} series from {args.models} trained linear models "
              f"(models replicated: one copy of a model's bytes per series) ...", flush=True)
    built = scratch / "built.json"  # what an earlier run with --reuse built there
    same = {"series": args.series, "models": args.models, "model_type": args.model,
            "per_store": args.model_per_store}
    if args.reuse and built.exists() and json.loads(built.read_text())["args"] == same:
        saved = json.loads(built.read_text())
        settings_path, series, build_info = Path(saved["settings"]), [tuple(s) for s in saved["series"]], saved["info"]
        print("  reusing the registry and lake built there before", flush=True)
    else:
        settings_path, series, build_info = build(scratch, args.series, args.models, args.model, args.model_per_store)
        built.write_text(json.dumps({"args": same, "settings": str(settings_path), "series": series,
                                     "info": build_info}))
    print(f"  trained {build_info['distinct_models']} models in {build_info['train_s']:.1f}s, registered "
          f"{len(series):,} series in "
          f"{build_info['register_s']:.1f}s; model size {build_info['model_bytes_mean'] / 1024:.1f} KiB", flush=True)

    port = free_port()
    env = {
        "MM_ASSETS_SETTINGS": str(settings_path),
        "MM_ASSETS_SERVING_CACHE_MODELS": str(args.cache_models),
        "MM_ASSETS_SERVING_CACHE_BYTES": args.cache_bytes,
        "WORKER_COUNT": str(args.workers),
        "GUNICORN_CMD_ARGS": f"--no-control-socket --threads {args.threads}",
        "AZUREML_LOG_LEVEL": "WARNING",
    }
    log_path = scratch / "server.log"
    print(f"starting azmlinfsrv on {HOST}:{port}: {args.workers} workers x {args.threads} threads, cache "
          f"{args.cache_models:,} models / {args.cache_bytes} per worker; {args.clients} concurrent clients", flush=True)
    t0 = time.perf_counter()
    proc = start_server(port, env, log_path=log_path, cwd=scratch)
    startup_s = time.perf_counter() - t0
    results: dict = {"config": vars(args) | {"cores": cores}, "build": build_info, "startup_s": startup_s,
                     "loadavg_before": load_before}
    try:
        time.sleep(1.0)
        rss_start, workers = server_rss_mib(proc.pid)
        print(f"  healthy after {startup_s:.1f}s; RSS {rss_start:.0f} MiB (master + {len(workers)} workers), "
              + ("the champions' global models and the small files of their partitions" if args.model == "lightgbm"
                 else "the small files of the champions' partitions") + " read at start (preload)",
              flush=True)

        # cold: every series once, in random order
        order = list(series)
        random.Random(1).shuffle(order)
        tenths = {round(len(order) * k / 10) for k in range(1, 11)}
        checkpoints = sorted(({args.cache_models, args.workers * args.cache_models, 10_000} | tenths)
                             & set(range(1, len(order) + 1)))
        samples: list[dict] = []
        sampled: set[int] = set()
        sample_lock = threading.Lock()

        def on_progress(done: int) -> None:
            if done in checkpoints and done not in sampled:
                with sample_lock:
                    if done in sampled:
                        return
                    sampled.add(done)
                rss, _ = server_rss_mib(proc.pid)
                samples.append({"series_requested": done, "rss_mib": rss})

        print(f"cold: {len(order):,} distinct series, each requested once ...", flush=True)
        cpu0 = server_cpu_s(proc.pid)
        cold = run_phase(port, [request_body(s, i) for s, i in order], args.clients, on_progress)
        cold["cpu_ms_per_request"] = (server_cpu_s(proc.pid) - cpu0) * 1e3 / max(cold["requests"], 1)
        rss_after, workers = server_rss_mib(proc.pid)
        samples.append({"series_requested": len(order), "rss_mib": rss_after})
        samples = sorted({s["series_requested"]: s for s in samples}.values(), key=lambda s: s["series_requested"])

        # warm: a working set that fits every worker's cache; load it everywhere first
        warm_set = order[-args.warm_set:]
        warm_bodies = [request_body(s, i) for s, i in warm_set]
        for _ in range(3 * args.workers):
            run_phase(port, warm_bodies, args.clients)
        rng = random.Random(2)
        print(f"warm: {args.warm_requests:,} requests over {len(warm_set)} cached series ...", flush=True)
        cpu0 = server_cpu_s(proc.pid)
        warm = run_phase(port, [rng.choice(warm_bodies) for _ in range(args.warm_requests)], args.clients)
        warm["cpu_ms_per_request"] = (server_cpu_s(proc.pid) - cpu0) * 1e3 / max(warm["requests"], 1)
        planned_bodies = [request_body(s, i, plan=True) for s, i in warm_set]
        print(f"warm with planned regressors (the model runs): {args.planned_requests:,} requests ...", flush=True)
        cpu0 = server_cpu_s(proc.pid)
        planned = run_phase(port, [rng.choice(planned_bodies) for _ in range(args.planned_requests)], args.clients)
        planned["cpu_ms_per_request"] = (server_cpu_s(proc.pid) - cpu0) * 1e3 / max(planned["requests"], 1)
        rss_end, workers = server_rss_mib(proc.pid)
    finally:
        stop_server(proc)

    cold_s, warm_s, planned_s = summary(cold["cold_ms"]), summary(warm["warm_ms"]), summary(planned["warm_ms"])
    def extra(phase: dict) -> dict:
        return {k: phase[k] for k in ("throughput_rps", "requests", "ok", "errors", "cpu_ms_per_request")}

    results.update(
        cold=cold_s | extra(cold) | {"warm_hits": len(cold["warm_ms"])},
        warm=warm_s | extra(warm) | {"cold_misses": len(warm["cold_ms"])},
        planned=planned_s | extra(planned),
        rss={"start_mib": rss_start, "after_cold_mib": rss_after, "end_mib": rss_end, "samples": samples,
             "workers_end_mib": workers},
    )
    # the cache is full once it holds as many models as it keeps: the model limit, or fewer if the byte limit binds
    kept = max((models for models, _ in cold["caches"].values()), default=args.cache_models)
    limit = "the model limit" if kept >= args.cache_models else "the byte limit"
    bound_samples = [s for s in samples if s["series_requested"] >= args.workers * kept]
    growth = (bound_samples[-1]["rss_mib"] - bound_samples[0]["rss_mib"]) if len(bound_samples) > 1 else float("nan")
    results["rss"]["growth_past_bound_mib"] = growth

    print()
    print(f"{'phase':<34}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'server CPU ms/req':>19}")
    for name, s in (("cold (model loaded per request)", results["cold"]),
                    ("warm (28-step forecast, cached)", results["warm"]),
                    ("warm + planned regressors", results["planned"])):
        print(f"{name:<34}{s['n']:>9,}{s['throughput_rps']:>8.0f}{s['p50_ms']:>8.1f}{s['p99_ms']:>8.1f}"
              f"{s['max_ms']:>8.1f}{s['cpu_ms_per_request']:>19.1f}")
    print()
    print("resident memory of the server (master + workers), MiB:")
    print(f"  {'at start, no model':<34}{rss_start:>8.0f}")
    for s in samples:
        label = f"after {s['series_requested']:,} distinct series"
        print(f"  {label:<34}{s['rss_mib']:>8.0f}")
    print(f"  {'at the end':<34}{rss_end:>8.0f}")
    for pid, (models, size) in sorted(cold["caches"].items()):
        print(f"  worker {pid}: cache after the cold phase {models:,} models, {size / 2**20:.1f} MiB")
    results["rss"]["worker_caches_after_cold"] = cold["caches"]
    print(f"  growth once every worker's cache is full ({args.workers} x {kept:,} models, {limit}): "
          f"{growth:+.1f} MiB")
    failures = [e for phase in (cold, warm, planned) for e in phase["errors"]]
    if failures:
        print(f"errors: {failures[:5]}")
    load_after = os.getloadavg()
    results["loadavg_after"] = load_after
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; the benchmark itself "
          f"(server + {args.clients} clients) keeps about {min(cores, args.clients):.0f} cores busy")
    print()
    verdicts = {
        "warm_p99": results["warm"]["p99_ms"] <= GOALS["warm_p99_ms"],
        "cold_p99": results["cold"]["p99_ms"] <= GOALS["cold_p99_ms"],
        "what_if": (results["planned"]["p99_ms"] <= GOALS["planned_p99_ms"]
                    and planned["throughput_rps"] >= GOALS["planned_rps"]),
        "memory_flat": abs(growth) <= 0.05 * rss_after,
        "no_errors": not failures,
    }
    print(f"goals ({cores} cores): warm p99 {results['warm']['p99_ms']:.1f} ms <= {GOALS['warm_p99_ms']:.0f} ms: "
          f"{'met' if verdicts['warm_p99'] else 'MISSED'}; cold p99 {results['cold']['p99_ms']:.1f} ms <= "
          f"{GOALS['cold_p99_ms']:.0f} ms: {'met' if verdicts['cold_p99'] else 'MISSED'}; what-if p99 "
          f"{results['planned']['p99_ms']:.1f} ms <= {GOALS['planned_p99_ms']:.0f} ms at {planned['throughput_rps']:,.0f} "
          f"req/s >= {GOALS['planned_rps']:,.0f}: {'met' if verdicts['what_if'] else 'MISSED'}; memory flat at the cache "
          f"bound (growth {growth:+.1f} MiB, within 5%): {'met' if verdicts['memory_flat'] else 'MISSED'}")
    results["goals_met"] = verdicts
    out = Path(args.json) if args.json else REPO / "bench" / "results" / f"serve-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {out}")
    if not args.workdir:
        shutil.rmtree(scratch, ignore_errors=True)
    if failures:
        return 1
    return 0 if all(verdicts.values()) or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
