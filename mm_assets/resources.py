"""Dagster resources: one per external system (settings, lake, source, registry, warehouse, runner).

Each wraps a Dagster-free class, so the same objects serve the CLI, the tests and the Azure ML job image.
Their configuration defaults come from the settings file; in the UI's launchpad any of them can be
overridden per run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import dagster as dg

from mm_assets.ingest.source import SourceReader
from mm_assets.lake import Lake
from mm_assets.parallel.local_runner import JobResult, JobSpec, run_job
from mm_assets.registry import ModelRegistry
from mm_assets.registry.production import ProductionRegistry
from mm_assets.settings import Settings, load_settings
from mm_assets.warehouse import Warehouse


class SettingsResource(dg.ConfigurableResource):
    """The project settings (columns, frequency, horizon, model, partitioning). JSON of ``Settings``."""

    settings_json: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "SettingsResource":
        return cls(settings_json=settings.model_dump_json())

    def get(self) -> Settings:
        return _parse_settings(self.settings_json)


@functools.lru_cache(maxsize=8)
def _parse_settings(text: str) -> Settings:
    return Settings.model_validate_json(text)


class LakeResource(dg.ConfigurableResource):
    """The data lake root: a local folder or an ``abfs://container@account.dfs.core.windows.net/path`` URI."""

    uri: str

    def get(self) -> Lake:
        return Lake(self.uri)


class SourceResource(dg.ConfigurableResource):
    """The source database rows are copied from (any SQLAlchemy URL; a table or a query)."""

    url: str
    table: str = "sales"
    query: str | None = None
    timestamp_column: str = "date"

    def get(self) -> SourceReader:
        return SourceReader(self.url, self.table, self.query, self.timestamp_column)


class RegistryResource(dg.ConfigurableResource):
    """The training model registry (SQL index; artifacts in the lake)."""

    url: str
    lake: LakeResource

    def get(self) -> ModelRegistry:
        return ModelRegistry(self.url, self.lake.get())


class ProductionRegistryResource(dg.ConfigurableResource):
    """The production registry (champions, decisions). ``reader()`` refuses writes; only the promotion
    asset calls ``writer()``."""

    url: str
    lake: LakeResource

    def reader(self) -> ProductionRegistry:
        return ProductionRegistry(self.url, self.lake.get(), writable=False)

    def writer(self) -> ProductionRegistry:
        return ProductionRegistry(self.url, self.lake.get(), writable=True)


class WarehouseResource(dg.ConfigurableResource):
    """The SQL warehouse BI reads."""

    url: str

    def get(self, id_columns) -> Warehouse:
        return Warehouse(self.url, id_columns)


class RunnerResource(dg.ConfigurableResource):
    """Where the per-series fan-out runs: ``local`` (process pool) or ``azureml`` (parallel jobs)."""

    kind: str = "local"
    max_concurrency: int = 0
    mini_batch_timeout_s: float = 300.0
    max_retries: int = 2
    mini_batch_error_threshold: int = -1
    series_per_task: int = 250

    def run(self, spec: JobSpec, on_progress: Callable[[int, int, int], None] | None = None) -> JobResult:
        if self.kind != "local":
            raise dg.Failure(
                f"runner.kind={self.kind!r} is not available in this build; use 'local'",
            )
        env = {k: v for k, v in os.environ.items() if k.startswith("MM_ASSETS_")}
        spec = JobSpec(
            **{
                **spec.__dict__,
                "max_concurrency": self.max_concurrency,
                "mini_batch_timeout_s": self.mini_batch_timeout_s,
                "max_retries": self.max_retries,
                "mini_batch_error_threshold": self.mini_batch_error_threshold,
                "series_per_task": self.series_per_task,
                "environment": {**env, **spec.environment},
            }
        )
        return run_job(spec, on_progress=on_progress)


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    settings = settings or load_settings()
    lake = LakeResource(uri=settings.storage.lake)
    r = settings.runner
    return {
        "settings": SettingsResource.from_settings(settings),
        "lake": lake,
        "source": SourceResource(
            url=settings.source.url,
            table=settings.source.table,
            query=settings.source.query,
            timestamp_column=settings.columns.timestamp,
        ),
        "registry": RegistryResource(url=settings.storage.registry, lake=lake),
        "production": ProductionRegistryResource(url=settings.storage.production_registry, lake=lake),
        "warehouse": WarehouseResource(url=settings.storage.warehouse),
        "runner": RunnerResource(
            kind=r.kind,
            max_concurrency=r.max_concurrency,
            mini_batch_timeout_s=r.mini_batch_timeout_s,
            max_retries=r.max_retries,
            mini_batch_error_threshold=r.mini_batch_error_threshold,
            series_per_task=r.series_per_task,
        ),
    }
