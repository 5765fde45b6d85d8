"""The registries after a year of daily cycles: their reads through the pointers and through the whole logs.

Every daily cycle adds a model version per series, and a champion and a gate decision per promoted or judged
series. This builds registries holding DAYS such cycles of SERIES series (SQLite, rows written as the cycle
writes them, in bulk), then times what the cycle reads from them each day: the latest models (training's
gate, publishing), the current champions (gate, scoring) and each partition's newest gate decisions
(publishing), through the pointers and, on a read-only handle whose pointers are made to lag, through the whole
logs (how every read worked before the pointers). Prints the figures; writes nothing outside a temporary folder.

    python bench/registry_growth.py [--days 365] [--series 10000] [--partitions 15]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import pandas as pd

from mm_assets.registry import ModelRegistry
from mm_assets.registry.production import ProductionRegistry


def _build(folder: Path, days: int, series: int, partitions: int) -> tuple[str, str]:
    registry, production = folder / "registry.db", folder / "production.db"
    ModelRegistry(f"sqlite:///{registry}")  # the schema
    ProductionRegistry(f"sqlite:///{production}", writable=True)
    keys = [f"S{s % 20:02d}/I{s:06d}" for s in range(series)]
    parts = [f"b{s % partitions:04d}" for s in range(series)]
    now = "2026-01-01 00:00:00"
    with sqlite3.connect(registry) as con:
        for day in range(days):
            con.executemany(
                "INSERT INTO model_versions (series_key, partition_key, ids, model_type, version, status, metrics, "
                "artifact_uri, artifact_offset, artifact_size, trained_at, run_id) VALUES (?,?,'{}','linear',?,"
                "'trained','{}','/m.bin',0,1,?,?)", [(k, p, day + 1, now, f"train-{day}") for k, p in zip(keys, parts)])
    with sqlite3.connect(production) as con:
        for day in range(days):
            con.executemany(
                "INSERT INTO champions (series_key, partition_key, ids, model_type, version, artifact_uri, "
                "artifact_offset, artifact_size, promoted_at, run_id) VALUES (?,?,'{}','linear',?,'/p.bin',0,1,?,?)",
                [(k, p, day + 1, now, f"gate-{day}") for k, p in zip(keys, parts)])
            con.executemany(
                "INSERT INTO promotion_decisions (series_key, partition_key, ids, decision, reason, decided_at, "
                "run_id) VALUES (?,?,'{}','promoted','beats the baseline',?,?)",
                [(k, p, now, f"gate-{day}") for k, p in zip(keys, parts)])
    return f"sqlite:///{registry}", f"sqlite:///{production}"


def _timed(fn) -> tuple[float, int]:
    started = time.perf_counter()
    rows = len(fn())
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mm-registry-growth-") as tmp:
        started = time.perf_counter()
        registry_url, production_url = _build(Path(tmp), args.days, args.series, args.partitions)
        print(f"built {args.days} days x {args.series:,} series "
              f"({args.days * args.series:,} rows per log) in {time.perf_counter() - started:.0f}s")
        started = time.perf_counter()
        registry, production = ModelRegistry(registry_url), ProductionRegistry(production_url, writable=True)
        print(f"first writable open: the pointers caught up from the logs in {time.perf_counter() - started:.1f}s")
        keys = [f"b{p:04d}" for p in range(args.partitions)]
        reads = {"latest models": lambda r, p: r.latest(keys), "current champions": lambda r, p: p.current(keys),
                 "newest gate decisions": lambda r, p: p.newest_decisions(keys)}
        pointed = {name: _timed(lambda f=fn: f(registry, production)) for name, fn in reads.items()}
        for url in (registry_url, production_url):  # the pointers lag: read-only handles read the logs
            with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
                con.execute("DELETE FROM log_marks")
        logs = {name: _timed(lambda f=fn: f(ModelRegistry(registry_url, read_only=True),
                                            ProductionRegistry(production_url))) for name, fn in reads.items()}
    table = pd.DataFrame({"rows": {n: r for n, (_, r) in pointed.items()},
                          "through the pointers s": {n: round(s, 2) for n, (s, _) in pointed.items()},
                          "through the logs s": {n: round(s, 2) for n, (s, _) in logs.items()}})
    print(table.to_string())


if __name__ == "__main__":
    main()
