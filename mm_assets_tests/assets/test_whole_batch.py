"""A global model's whole-batch job on the local runner: one mini-batch for the run, failures per series."""

from __future__ import annotations

import dagster as dg

from mm_assets.assets.partitions import group_partitions_name
from mm_assets.definitions import build_definitions
from mm_assets.lake import Lake
from mm_assets.registry import ModelRegistry
from mm_assets_tests.conftest import tiny_settings
from mm_assets_tests.parallel.azureml.test_assets import _store


def _materialize(settings, stores):
    lake = Lake(settings.storage.lake)
    for store in stores:
        lake.write_parquet(_store(store, ["I1", "I2", "I3"]), "datasets", f"{store}.parquet")
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(group_partitions_name(settings), stores)
    kwargs = ({"partition_key": stores[0]} if len(stores) == 1 else
              {"tags": {"dagster/asset_partition_range_start": stores[0],
                        "dagster/asset_partition_range_end": stores[-1]}})
    result = dg.materialize([defs.get_assets_def("trained_models")], instance=instance, resources=defs.resources,
                            raise_on_error=False, **kwargs)
    return result, ModelRegistry(settings.storage.registry, lake)


def test_one_global_model_across_the_stores_of_a_run(tmp_path):
    settings = tiny_settings(tmp_path, horizon=7, model={"type": "lightgbm", "params": {"num_boost_round": 20}})
    result, registry = _materialize(settings, ["S1", "S2"])
    assert result.success
    latest = registry.latest(["S1", "S2"])
    assert len(latest) == 6 and set(latest["model_type"]) == {"lightgbm"}
    # every series of both stores points at the same bytes: one model learnt across the stores
    assert latest[["artifact_uri", "artifact_offset", "artifact_size"]].drop_duplicates().shape[0] == 1
    # how that model was made is in the run's figures and in each series' registry row: here every row was
    # learnt from (no sample), so the holdout fit was followed by a refit on every period
    (observation,) = result.asset_observations_for_node("trained_models")
    fit = observation.metadata["global_model_fit"].value
    assert fit.startswith("global lightgbm refitted on every period") and "refit: auto" in fit
    assert set(latest["reason"]) == {fit}


def test_a_batch_that_fails_as_a_whole_is_recorded_for_every_series(tmp_path):
    # LightGBM refuses a tree of one leaf: the whole batch's mini-batch raises (retried, then given up)
    settings = tiny_settings(tmp_path, horizon=7, runner={"max_retries": 0},
                             model={"type": "lightgbm", "params": {"num_leaves": 1}})
    result, registry = _materialize(settings, ["S1"])
    failures = registry.failures(["S1"])
    assert sorted(failures["series_key"]) == ["S1/I1", "S1/I2", "S1/I3"]
    assert failures["error_message"].str.startswith("the whole batch failed:").all()
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "no_failed_series" and not check.passed and check.partition == "S1"
