"""The benchmark's workload and the project it runs in: demo data of a given size, settings, a Dagster instance.

Why these choices:

* **Shape.** ``--series N`` becomes ``stores x items`` of the demo generator with at most 500 items per store
  (``items = ceil(N / stores)``, so the series count is N rounded up to a multiple of the store count). Retail
  chains have hundreds to thousands of items per store, and a store with many series is what the project's
  batch grain is built for. Daily data, fixed end date: two runs of the same size see the same rows.
* **Partitions.** Dagster's bookkeeping is paid per partition and per run, not per series, so the benchmark uses
  ``partition.buckets = 16`` stable hash buckets of the store: at most 16 Dagster partitions whatever the size
  (10,000 series = 20 stores -> <= 16 buckets; 1M series would still be 16). 16 is small enough for the
  bookkeeping to stay negligible and large enough for batches of a few buckets to bound memory.
* **Runs per stage.** ``series_datasets`` scans the raw files once and holds one partition at a time, and the
  runner's workers read one partition's dataset at a time, so a run's memory follows the largest partition, not
  the run: each stage is one run up to ``ROWS_PER_RUN`` rows (every size the benchmark is meant for), which is
  what keeps Dagster's per-run cost (~25 events) small next to the work.
* **Isolation.** Everything (source, lake, registries, warehouse, Dagster instance) lives in one work
  directory; the user's ``mm_assets.yaml`` and ``MM_ASSETS__*`` variables are not read, so figures depend on
  the command line only.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path

from mm_assets.demo.generator import DemoSpec
from mm_assets.settings import Settings

MAX_ITEMS_PER_STORE = 500
BUCKETS = 16
ROWS_PER_RUN = 100_000_000
MAX_DAYS_PER_RUN = 365
END_DATE = dt.date(2026, 11, 22)  # DemoSpec's default: every run ends on the same day


@dataclass(frozen=True)
class Workload:
    series: int
    days: int
    model: str = "linear"
    seed: int = 42
    horizon: int = 28

    def __post_init__(self) -> None:
        if self.series < 1 or self.days < 2:
            raise ValueError("the benchmark needs --series >= 1 and --days >= 2")

    @property
    def stores(self) -> int:
        return math.ceil(self.series / MAX_ITEMS_PER_STORE)

    @property
    def items(self) -> int:
        return math.ceil(self.series / self.stores)

    @property
    def spec(self) -> DemoSpec:
        return DemoSpec(stores=self.stores, items=self.items, days=self.days, end_date=END_DATE, seed=self.seed)

    def as_dict(self) -> dict:
        spec = self.spec
        return {"series": spec.series, "series_requested": self.series, "days": self.days, "stores": spec.stores,
                "items_per_store": spec.items, "model": self.model, "seed": self.seed, "horizon": self.horizon,
                "first_date": str(spec.start_date), "last_date": str(spec.end_date)}


def bench_settings(workdir: Path, workload: Workload, workers: int | None = None) -> Settings:
    """Settings of the benchmark project, everything inside ``workdir`` (no settings file, no environment)."""
    workdir = Path(workdir).resolve()
    return Settings.model_validate({
        "source": {"url": f"sqlite:///{workdir}/source.db"},
        "partition": {"column": "store", "buckets": BUCKETS},
        "frequency": "D",
        "horizon": workload.horizon,
        "model": {"type": workload.model},
        "storage": {
            "lake": str(workdir / "lake"),
            "registry": f"sqlite:///{workdir}/registry.db",
            "warehouse": f"sqlite:///{workdir}/warehouse.db",
            "production_registry": f"sqlite:///{workdir}/production.db",
        },
        "runner": {"kind": "local", "max_concurrency": workers or os.cpu_count() or 1},
        "ingest": {"start_date": workload.spec.start_date.isoformat()},
    })


def partitions_per_run(total_rows: int, partitions: int) -> int:
    """How many partitions one run may hold so that it reads at most ``ROWS_PER_RUN`` rows (at least one)."""
    if partitions <= 0:
        return 1
    per_partition = max(1, total_rows // partitions)
    return max(1, min(partitions, ROWS_PER_RUN // per_partition))


def history_days_per_run(series: int) -> int:
    """Days per run of the initial history load: at most ``ROWS_PER_RUN`` rows and ``MAX_DAYS_PER_RUN`` day
    partitions per run (Dagster's cost of one run grows faster than linearly with its partitions)."""
    return max(1, min(MAX_DAYS_PER_RUN, ROWS_PER_RUN // max(series, 1)))


def new_instance(home: Path):
    """A fresh Dagster instance with SQLite storage under ``home``: the event log ``make demo``'s instance has, telemetry
    off (the run queue does not matter: the benchmark runs in process)."""
    import dagster as dg
    import yaml

    from mm_assets.instance_storage import instance_config

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}, **instance_config(home)}))
    return dg.DagsterInstance.from_config(str(home))
