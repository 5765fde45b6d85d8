"""Dagster resources: one per external system (lake, source, registry, warehouse, runner).

Each wraps a Dagster-free class, so the same objects serve the CLI, the tests and the Azure ML job image.
Their configuration defaults come from the settings file; in the UI's launchpad any of them can be
overridden per run (another warehouse, another runner). The settings themselves are not a resource: the
partitions, schemas and checks of the assets are built from them when the code location loads, and the asset
factories hand the same ``Settings`` to the asset bodies.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import dagster as dg

from mm_assets.ingest.source import SourceReader
from mm_assets.lake import Lake
from mm_assets.parallel.contract import JobResult, JobSpec
from mm_assets.parallel.local_runner import run_job
from mm_assets.registry import ModelRegistry
from mm_assets.registry.production import ProductionRegistry
from mm_assets.settings import Settings, load_settings
from mm_assets.warehouse import Warehouse


class LakeResource(dg.ConfigurableResource):
    """The data lake root: a local folder or an ``abfs://container@account.dfs.core.windows.net/path`` URI.

    Azure credentials: by default adlfs's own (``AZURE_STORAGE_CONNECTION_STRING``, key or SAS variables, else
    ``DefaultAzureCredential``: AKS workload identity, managed identity, ``az login``). With ``adls2`` set
    (dagster-azure's ``ADLS2Resource``), its account and credential are used instead; a key or SAS token is
    also put into this process's environment (``AZURE_STORAGE_ACCOUNT_KEY`` / ``AZURE_STORAGE_SAS_TOKEN``) because
    the runner's worker processes build their lake from the URI alone and inherit that environment. Neither the
    URI nor any message carries a credential."""

    uri: str
    # a dagster_azure.adls2.ADLS2Resource; typed by its base so that importing the project does not import
    # the Data Lake SDK (checked when used)
    adls2: dg.ConfigurableResource | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.adls2 is not None:
            self._check_adls2()
            for name, value in self._adls2_environment().items():
                os.environ[name] = value

    def get(self) -> Lake:
        if self.adls2 is None:
            return Lake(self.uri)
        self._check_adls2()
        return Lake(self.uri, storage_options=self._adls2_storage_options())

    def _check_adls2(self) -> None:
        from dagster_azure.adls2 import ADLS2Resource

        from mm_assets.lake.lake import AZURE_PROTOCOLS, azure_location

        if not isinstance(self.adls2, ADLS2Resource):
            raise dg.Failure(f"lake.adls2 must be dagster-azure's ADLS2Resource, not {type(self.adls2).__name__}")
        scheme = self.uri.split("://", 1)[0] if "://" in self.uri else ""
        if scheme not in AZURE_PROTOCOLS:
            raise dg.Failure(f"lake.adls2 is set but the lake {self.uri!r} is not an abfs:// URI")
        _, account, _ = azure_location(self.uri)
        if account is not None and account != self.adls2.storage_account:
            raise dg.Failure(f"the lake URI names storage account {account!r} but lake.adls2.storage_account is "
                             f"{self.adls2.storage_account!r}")
        if os.environ.get("AZURE_STORAGE_CONNECTION_STRING"):
            raise dg.Failure("lake.adls2 is set and AZURE_STORAGE_CONNECTION_STRING is in the environment: adlfs "
                             "would prefer the connection string in the worker processes; configure one of them")

    def _adls2_storage_options(self) -> dict:
        from dagster_azure.adls2 import ADLS2Key, ADLS2SASToken

        account = self.adls2.storage_account
        options: dict = {"account_name": account, "account_host": f"{account}.blob.{self.adls2.endpoint_suffix}",
                         "use_listings_cache": False}
        credential = self.adls2.credential
        if isinstance(credential, ADLS2Key):
            options["account_key"] = credential.key
        elif isinstance(credential, ADLS2SASToken):
            options["sas_token"] = credential.token
        else:  # adlfs builds DefaultAzureCredential(**kwargs) itself (sync and async)
            options.update(credential.kwargs)
        return options

    def _adls2_environment(self) -> dict[str, str]:
        from dagster_azure.adls2 import ADLS2Key, ADLS2SASToken

        credential = self.adls2.credential
        env = {"AZURE_STORAGE_ACCOUNT_NAME": self.adls2.storage_account}
        if isinstance(credential, ADLS2Key) and credential.key:
            env["AZURE_STORAGE_ACCOUNT_KEY"] = credential.key
        elif isinstance(credential, ADLS2SASToken) and credential.token:
            env["AZURE_STORAGE_SAS_TOKEN"] = credential.token
        return env


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
    series_per_minibatch: int = 250
    azureml_json: str = ""  # AzureMLSettings as JSON (runner.kind=azureml); "" = the defaults

    def run(
        self,
        spec: JobSpec,
        on_progress: Callable[[int, int, int], None] | None = None,
        context: dg.OpExecutionContext | dg.AssetExecutionContext | None = None,
    ) -> JobResult:
        """Run ``spec`` where ``kind`` says. ``context`` (optional) gives the azureml runner the run log and
        the run's termination (which cancels the Azure ML job)."""
        if self.kind not in ("local", "azureml"):
            raise dg.Failure(f"runner.kind={self.kind!r} is not a runner; use 'local' or 'azureml'")
        env = {k: v for k, v in os.environ.items() if k.startswith("MM_ASSETS_")}
        spec = JobSpec(
            **{
                **spec.__dict__,
                "max_concurrency": self.max_concurrency,
                "mini_batch_timeout_s": self.mini_batch_timeout_s,
                "max_retries": self.max_retries,
                "mini_batch_error_threshold": self.mini_batch_error_threshold,
                "series_per_task": self.series_per_task,
                "series_per_minibatch": self.series_per_minibatch if spec.multi_series else 1,
                "environment": {**env, **spec.environment},
            }
        )
        if self.kind == "azureml":
            return self._run_azureml(spec, on_progress, context)
        return run_job(spec, on_progress=on_progress)

    def _run_azureml(self, spec: JobSpec, on_progress, context) -> JobResult:
        from mm_assets.parallel.azureml.mltable import StagingError
        from mm_assets.parallel.azureml.runner import AzureMLJobError, AzureMLRunner, RunHooks
        from mm_assets.parallel.azureml.storage import AzureMLConfigError
        from mm_assets.settings import AzureMLSettings

        settings = AzureMLSettings.model_validate_json(self.azureml_json) if self.azureml_json else AzureMLSettings()
        hooks = RunHooks()
        if context is not None:
            run_id = context.run.run_id

            def should_cancel() -> bool:  # the run is being terminated (UI, API): cancel the Azure ML job
                run = context.instance.get_run_by_id(run_id)
                return run is not None and run.status in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)

            hooks = RunHooks(log=context.log, should_cancel=should_cancel)
        try:
            return AzureMLRunner(settings).run(spec, on_progress=on_progress, hooks=hooks)
        except (AzureMLConfigError, StagingError) as exc:
            raise dg.Failure(description=str(exc)) from exc
        except AzureMLJobError as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={"azureml_job": exc.job_name or "", "azureml_studio_url": exc.studio_url or ""},
            ) from exc


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    settings = settings or load_settings()
    lake = LakeResource(uri=settings.storage.lake)
    r = settings.runner
    return {
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
            series_per_minibatch=r.series_per_minibatch,
            azureml_json=settings.azureml.model_dump_json(),
        ),
    }
