"""Running the peers (``peers``) from the benchmark: in their own venv, on the baseline's sample, beside our figures.

The peers' script runs in ``.venv-peers`` (``make peers-install``; ``MM_ASSETS_PEERS_PYTHON`` names another
interpreter). Our side of the comparison, on exactly the series the peers held out:

- WAPE: the holdout WAPE every series' latest model recorded in the registry (its last ``horizon`` days, the
  days the peers forecast), pooled over those series by their actual sales of those days;
- speed: series per second of the cycle's train stage (holdout fit + refit) and score stage (the forecast)
  together, the same work the peers are timed for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mm_assets.ids import series_keys

REPO = Path(__file__).resolve().parents[2]
PEERS_ENV = "MM_ASSETS_PEERS_PYTHON"


def peers_python() -> str | None:
    configured = os.environ.get(PEERS_ENV)
    if configured:
        return configured
    candidate = REPO / ".venv-peers" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


def our_holdout_wape(registry_url: str, sample: pd.DataFrame, held_out: list[str], horizon: int) -> float | None:
    """Pooled WAPE of the latest models' holdouts over the series ``held_out``: each series' recorded WAPE weighted by its
    actual sales of the holdout days (its last ``horizon`` days, from ``sample``)."""
    from mm_assets.registry.model_registry import ModelRegistry

    latest = ModelRegistry(registry_url, read_only=True).latest()
    wape = latest.set_index("series_key")["wape"].astype(float)
    frame = sample.assign(series_key=series_keys(sample, ["store", "item"]), date=pd.to_datetime(sample["date"]))
    last = frame.groupby("series_key")["date"].transform("max")
    held = frame[frame["date"] > last - pd.Timedelta(days=horizon)]
    actual = held["sales"].abs().groupby(held["series_key"]).sum()
    keys = [k for k in held_out if k in wape.index and k in actual.index and np.isfinite(wape[k])]
    total = float(actual[keys].sum())
    return round(float((wape[keys] * actual[keys]).sum()) / total, 4) if total > 0 else None


def compare(settings, sample: pd.DataFrame, workdir: Path, stages: dict, log: Callable[[str], None] = print) -> dict:
    """Run the peers on ``sample`` and put our figures beside theirs; an error is reported, not raised."""
    python = peers_python()
    if python is None:
        return {"error": "no .venv-peers: run `make peers-install` (make bench does), or set MM_ASSETS_PEERS_PYTHON"}
    sample_path, out_path = workdir / "peers-sample.parquet", workdir / "peers.json"
    sample.to_parquet(sample_path)
    cores = settings.runner.max_concurrency or os.cpu_count() or 1
    series = sample[["store", "item"]].drop_duplicates().shape[0]
    log(f"peers: statsforecast and mlforecast on {series} series ({python}) ...")
    proc = subprocess.run([python, "-m", "mm_assets.benchmark.peers", str(sample_path), "--horizon",
                           str(settings.horizon), "--cores", str(cores), "--out", str(out_path)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        print(proc.stderr[-4000:], file=sys.stderr)
        return {"error": f"the peers failed (exit {proc.returncode}): {tail[0]}"}
    result = json.loads(out_path.read_text())
    train, score = stages["train"], stages["score"]
    wall = (train.wall_s or 0) + (score.wall_s or 0)
    ours_rate = round(train.models / wall, 2) if wall and train.models else None
    result["ours"] = {
        "holdout_wape": our_holdout_wape(settings.storage.registry, sample, result["holdout_series"],
                                         settings.horizon),
        "models_per_s": ours_rate, "what": "train + score stages of the cycle, every series",
    }
    for peer in result["peers"]:
        rate = peer.get("models_per_s")
        peer["ours_speedup"] = round(ours_rate / rate, 2) if ours_rate and rate else None
    result.pop("holdout_series", None)
    return result
