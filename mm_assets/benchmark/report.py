"""The benchmark's output: the machine it ran on, its goals, a table on the terminal, a JSON file.

The JSON is the record kept over time (``bench/results/<UTC timestamp>.json``), so it carries everything needed
to compare two runs: the machine (CPU model, cores, memory, Python, library versions), the workload, every
stage's figures, the baseline, the speedup and the goals with their verdicts.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path

import psutil

LIBRARIES = ("dagster", "pandas", "pyarrow", "numpy", "scikit-learn", "prophet", "mm-assets")
CYCLE_STAGES = ("ingest", "datasets", "train", "promote", "score", "publish")

# the goals, on 2 cores; the cycle's at full size only (10,000 series x 4,000 days, ~40M rows), Prophet's at
# 200 series x 3 years of days, the rest at every size
FULL_SIZE = (10_000, 4_000)
GOAL_CYCLE_S = {"linear": 60.0, "lightgbm": 120.0}  # lightgbm: the default model
GOAL_SPEEDUP = 20.0
GOAL_PEAK_MB = 4096.0
GOAL_BOOKKEEPING_PCT = 10.0
GOAL_PROPHET_MODELS_PER_S = 12.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in LIBRARIES},
    }


def goals(result: dict) -> dict:
    """Each goal: target, measured value, pass/fail (``None`` when it does not apply)."""
    stages = result["stages"]
    cycle_wall = result["total_wall_s"]
    bookkeeping = sum(stages[s]["bookkeeping_s"] for s in CYCLE_STAGES if s in stages)
    peak = max((stages[s]["peak_rss_mb"] for s in CYCLE_STAGES if s in stages), default=0.0)
    speedup = result.get("speedup_vs_baseline")
    model = result["workload"]["model"]
    train_rate = stages.get("train", {}).get("models_per_s")
    workload = result["workload"]
    full_size = workload["series"] >= FULL_SIZE[0] and workload["days"] >= FULL_SIZE[1]
    cycle_goal = GOAL_CYCLE_S.get(model)
    out = {
        "cycle_wall_s": {"target": f"<= {cycle_goal:g}" if cycle_goal else "-", "value": cycle_wall,
                         "pass": cycle_wall <= cycle_goal if cycle_goal and full_size else None,
                         "note": f"for model {' / '.join(f'{m} {g:g} s' for m, g in GOAL_CYCLE_S.items())} at "
                                 f"{FULL_SIZE[0]:,} series x {FULL_SIZE[1]:,} days"},
        "speedup_vs_baseline": {"target": f">= {GOAL_SPEEDUP:g}", "value": speedup,
                                "pass": None if speedup is None else speedup >= GOAL_SPEEDUP},
        "peak_rss_mb": {"target": f"<= {GOAL_PEAK_MB:g}", "value": round(peak, 1), "pass": peak <= GOAL_PEAK_MB},
        "bookkeeping_pct": {"target": f"<= {GOAL_BOOKKEEPING_PCT:g}",
                            "value": round(100 * bookkeeping / cycle_wall, 1) if cycle_wall else None,
                            "pass": cycle_wall > 0 and 100 * bookkeeping / cycle_wall <= GOAL_BOOKKEEPING_PCT},
        "prophet_models_per_s": {"target": f">= {GOAL_PROPHET_MODELS_PER_S:g}",
                                 "value": train_rate if model == "prophet" else None,
                                 "pass": (train_rate or 0) >= GOAL_PROPHET_MODELS_PER_S if model == "prophet" else None,
                                 "note": "with --model prophet, at 200 series x 1,095 days"},
    }
    peers = [p for p in (result.get("peers") or {}).get("peers", [])]
    ours = (result.get("peers") or {}).get("ours") or {}
    if peers and ours.get("holdout_wape") is not None:
        ahead = [p["peer"] for p in peers if (ours["models_per_s"] or 0) >= (p["models_per_s"] or 0)
                 and ours["holdout_wape"] <= p["holdout_wape"]]
        out["ahead_of_every_peer"] = {"target": "all", "value": f"{len(ahead)} of {len(peers)}",
                                      "pass": len(ahead) == len(peers),
                                      "note": "faster and at equal or better holdout WAPE on the same series"}
    return out


def _fmt(value, width: int, digits: int = 1) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width},.{digits}f}"
    return f"{value:>{width},}"


def format_report(result: dict) -> str:
    w = result["workload"]
    m = result["machine"]
    lines = [
        "",
        f"mm-assets benchmark: {w['series']:,} series x {w['days']:,} days = {w['rows']:,} rows, model {w['model']}, "
        f"{w['partitions']} Dagster partitions ({w['stores']} stores in hash buckets), "
        f"{w['partitions_per_run']} per run",
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, "
        f"dagster {m['versions']['dagster']}",
        f"setup: generate {result['setup']['generate_s']:.1f}s (not in the cycle)",
        "",
        f"{'stage':<14}{'wall_s':>9}{'cpu_s':>9}{'peak_MB':>9}{'rows':>12}{'rows/s':>12}{'models':>8}"
        f"{'models/s':>10}{'dagster_s':>10}{'dagster%':>9}{'runs':>5}",
    ]

    def row(name: str, s: dict) -> str:
        return (f"{name:<14}{_fmt(s['wall_s'], 9, 2)}{_fmt(s['cpu_s'], 9, 2)}{_fmt(s['peak_rss_mb'], 9, 0)}"
                f"{_fmt(s['rows'], 12)}{_fmt(s['rows_per_s'], 12, 0)}{_fmt(s['models'], 8)}"
                f"{_fmt(s['models_per_s'], 10, 1)}{_fmt(s['bookkeeping_s'], 10, 2)}"
                f"{_fmt(s['bookkeeping_pct'], 9, 1)}{_fmt(s['runs'], 5)}")

    lines.append(row("history_load*", result["setup"]["history_load"]))
    for name, label in (("history_cut", "history_cut*"), ("history_models", "prior_models*"),
                        ("prior_cycle", "prior_cycle*")):
        if name in result["setup"]:
            lines.append(row(label, result["setup"][name]))
    for name in CYCLE_STAGES:
        if name in result["stages"]:
            lines.append(row(name, result["stages"][name]))
    total = result["total_wall_s"]
    cpu = sum(result["stages"][s]["cpu_s"] for s in CYCLE_STAGES if s in result["stages"])
    bookkeeping = sum(result["stages"][s]["bookkeeping_s"] for s in CYCLE_STAGES if s in result["stages"])
    runs = result.get("cycle_runs")
    lines.append(f"{'daily cycle':<14}{_fmt(total, 9, 2)}{_fmt(cpu, 9, 2)}{'':>61}{_fmt(bookkeeping, 10, 2)}"
                 f"{_fmt(round(100 * bookkeeping / total, 1) if total else None, 9, 1)}{_fmt(runs, 5)}")
    lines.append("  * setup, not part of the daily cycle; dagster_s = time in the instance's run/event storage; the "
                 "cycle runs the project's jobs (train_job = datasets + train, promote_job = promote + score), "
                 "each stage's figures from its steps")
    b = result.get("baseline")
    if b and b.get("error"):
        lines += ["", f"baseline FAILED: {b['error']}"]
    elif b:
        lines += [
            "",
            f"baseline ({b['method']}): {b['series']} series in {b['wall_s']:.2f}s = {b['models_per_s']:.2f} "
            f"models/s (read {b.get('read_s', 0):.2f}s apart)",
            f"project train: {result['stages']['train']['models_per_s']} models/s -> speedup "
            f"{result['speedup_vs_baseline']}x",
        ]
    p = result.get("peers")
    if p and p.get("error"):
        lines += ["", f"peers FAILED: {p['error']}"]
    elif p:
        ours = p["ours"]
        lines += ["", f"peers on the same {p['series']} series and holdout (holdout + refit + forecast; ours: "
                      f"{ours['what']}):",
                  f"  {'':<28}{'series/s':>10}{'holdout WAPE':>14}{'ours faster':>13}",
                  f"  {'mm-assets ' + result['workload']['model']:<28}{_fmt(ours['models_per_s'], 10, 1)}"
                  f"{_fmt(ours['holdout_wape'], 14, 3)}"]
        for peer in p["peers"]:
            speedup = f"{peer['ours_speedup']}x" if peer.get("ours_speedup") else "-"
            lines.append(f"  {peer['peer']:<28}{_fmt(peer['models_per_s'], 10, 1)}{_fmt(peer['holdout_wape'], 14, 3)}"
                         f"{speedup:>13}")
    lines += ["", "goals (2 cores):"]
    for name, g in result["goals"].items():
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[g["pass"]]
        note = f"  ({g['note']})" if g.get("note") else ""
        lines.append(f"  [{mark}] {name:<22} {g['target']:<8} measured {g['value']}{note}")
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path
