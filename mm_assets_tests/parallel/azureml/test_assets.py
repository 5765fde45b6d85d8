"""The training asset, unchanged, on the azureml runner: selected by `runner.kind: azureml` alone.

Azure is the offline fake (fake_azure): the submitted job's parallel node runs on this machine from what the job
says. The lake stays a local folder, seen by the runner as if it were ADLS Gen2 (``LOCATION``).
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from mm_assets.assets.partitions import group_partitions_name
from mm_assets.definitions import build_definitions
from mm_assets.lake import Lake
from mm_assets.parallel.azureml import runner as runner_module
from mm_assets.parallel.train_entry import INJECT_ENV
from mm_assets.registry import ModelRegistry
from mm_assets_tests.conftest import tiny_settings
from mm_assets_tests.parallel.azureml.fake_azure import LOCATION, FakeMLClient


def _store(store: str, items: list[str], days: int = 70) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    parts = []
    for item in items:
        ds = pd.date_range("2025-01-01", periods=days, freq="D")
        weekly = np.array([1.0, 0.9, 0.95, 1.0, 1.2, 1.6, 1.4])[ds.day_of_week]
        parts.append(pd.DataFrame({"store": store, "item": item, "ds": ds,
                                   "y": np.round(20 * weekly + rng.normal(0, 1.5, days)).clip(0),
                                   "price": 2.0, "promo": 0.0}))
    return pd.concat(parts, ignore_index=True)


def test_trained_models_materializes_through_an_azure_ml_job(tmp_path, monkeypatch):
    settings = tiny_settings(tmp_path, horizon=7,
                             runner={"kind": "azureml", "max_concurrency": 1, "max_retries": 0},
                             azureml={"workspace": "ws", "poll_interval_s": 0.01, "max_poll_interval_s": 0.01})
    lake = Lake(settings.storage.lake)
    lake.write_parquet(_store("S1", ["I1", "I2", "I3"]), "datasets", "S1.parquet")
    client = FakeMLClient(lake)
    monkeypatch.setattr(runner_module, "default_ml_client", lambda s: client)
    monkeypatch.setattr(runner_module, "azure_lake", lambda uri: LOCATION)
    monkeypatch.setenv(INJECT_ENV, "S1/I2")  # travels to the job (MM_ASSETS_* variables do; settings do not)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(group_partitions_name(settings), ["S1"])
    result = dg.materialize([defs.get_assets_def("trained_models")], partition_key="S1", instance=instance,
                            resources=defs.resources, raise_on_error=False)
    assert result.success
    (job, _), = client.jobs.submitted
    assert job.tags["mm_assets.run_id"] == result.run_id and job.tags["mm_assets.partitions"] == "S1"
    materialization = result.asset_materializations_for_node("trained_models")[0]
    assert materialization.metadata["series"].value == 3 and materialization.metadata["failed"].value == 1
    (observation,) = result.asset_observations_for_node("trained_models")  # the run-wide figures, apart
    assert observation.metadata["batch_series"].value == 3 and observation.metadata["batch_failed"].value == 1
    registry = ModelRegistry(settings.storage.registry, lake)
    assert sorted(registry.latest(["S1"])["series_key"]) == ["S1/I1", "S1/I3"]
    failures = registry.failures(["S1"])
    assert list(failures["series_key"]) == ["S1/I2"] and list(failures["error_type"]) == ["InjectedFailure"]
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "no_failed_series" and not check.passed
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(m.startswith(f"azureml: submitted job {job.name}") for m in logs)  # in the Dagster run log
    assert any(m == f"azureml: job {job.name} is Completed" for m in logs)
    assert client.models.registered and client.models.registered[0].tags["mm_assets.run_id"] == result.run_id
