"""A global model's whole-batch job on the local runner: one mini-batch for the run, failures per series."""

from __future__ import annotations

import dagster as dg

from mm_assets.assets.partitions import group_partitions_name
from mm_assets.definitions import build_definitions
from mm_assets.lake import Lake
from mm_assets.registry import ModelRegistry
from mm_assets_tests.conftest import tiny_settings
from mm_assets_tests.parallel.azureml.test_assets import _store


def _materialize(settings, stores, others=()):
    """``trained_models`` of ``stores`` in one run; ``others``: more store partitions with a dataset, not run."""
    lake = Lake(settings.storage.lake)
    for store in [*stores, *others]:
        lake.write_parquet(_store(store, ["I1", "I2", "I3"]), "datasets", f"{store}.parquet")
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(group_partitions_name(settings), [*stores, *others])
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
    result, registry = _materialize(settings, ["S1"], others=["S2"])  # S2's series learnt from, not trained
    failures = registry.failures()
    assert sorted(failures["series_key"]) == ["S1/I1", "S1/I2", "S1/I3"]
    assert failures["error_message"].str.startswith("the whole batch failed:").all()
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "no_failed_series" and not check.passed and check.partition == "S1"


def test_a_run_with_more_rows_than_rows_per_run_fits_one_global_model_per_group_of_stores(tmp_path, capfd):
    """A backfill launched from the Dagster UI is cut by its number of partitions only: its training fits one
    global model per group of stores that fits ``schedule.rows_per_run``, so that memory stays what the setting
    stands for, and says so in the run's log."""
    from mm_assets.assets.fanout import whole_batch_groups

    stores = ["S1", "S2", "S3"]
    rows = len(_store("S1", ["I1", "I2", "I3"]))
    settings = tiny_settings(tmp_path, horizon=7, schedule={"rows_per_run": 2 * rows},
                             model={"type": "lightgbm", "params": {"num_boost_round": 20}})
    result, registry = _materialize(settings, stores)
    assert result.success
    assert whole_batch_groups(Lake(settings.storage.lake), stores, 2 * rows) == [["S1", "S2"], ["S3"]]
    latest = registry.latest(stores)
    assert len(latest) == 9 and set(latest["model_type"]) == {"lightgbm"}
    latest["model"] = list(zip(latest["artifact_uri"], latest["artifact_offset"]))
    by_store = latest.groupby("partition_key")["model"].agg(lambda v: tuple(sorted(set(v))))
    assert by_store["S1"] == by_store["S2"] != by_store["S3"]  # S1 and S2 share a model, S3 has its own
    assert "one global model for each of 2 groups" in capfd.readouterr().err  # the run's log


def test_a_one_store_run_learns_from_the_other_stores_series_and_registers_only_its_own(tmp_path, capfd):
    """A store materialized alone from the UI: its global model learns from the other stores' datasets too (within
    ``model.global_context_rows``), and models are registered for its own series only."""
    from mm_assets.forecasting.global_training import BATCH_SERIES
    from mm_assets.forecasting.metrics import metric_column

    rows = len(_store("S1", ["I1", "I2", "I3"]))

    def learnt_from(context_rows, folder):
        settings = tiny_settings(tmp_path / folder, horizon=7, model={
            "type": "lightgbm", "params": {"num_boost_round": 20}, "global_context_rows": context_rows})
        result, registry = _materialize(settings, ["S2"], others=["S1", "S3"])
        assert result.success
        latest = registry.latest()
        assert sorted(latest["series_key"]) == ["S2/I1", "S2/I2", "S2/I3"]  # no model for the others' series
        assert registry.failures().empty
        (observation,) = result.asset_observations_for_node("trained_models")
        learnt = set(metric_column(latest["metrics"], BATCH_SERIES))
        assert {observation.metadata["global_model_series"].value} == learnt  # the run's figures show it
        return learnt

    assert learnt_from(10 * rows, "all") == {9.0}  # its 3 series and the other stores' 6
    logged = capfd.readouterr().err  # the run's log says so, naming its own stores apart from the others
    assert ("the global model of 1 store partition(s) (S2) learns from the series of 2 other(s) too (S1, S3)"
            in logged), logged
    assert "it makes models for its own stores' series only" in logged
    assert learnt_from(2 * rows, "one") == {6.0}  # room for one other store's rows: S1, the first in order
    assert learnt_from(0, "none") == {3.0}  # 0: its own series only


def test_a_backtest_batch_learns_from_other_stores_and_returns_rows_for_its_own_series_only(tmp_path, monkeypatch):
    """The backtest of a small run stages other stores' series as its training does: learnt from, not judged."""
    import pandas as pd

    from mm_assets.forecasting.series import SeriesConfig
    from mm_assets.parallel import backtest_entry
    from mm_assets.parallel.contract import CONTEXT_COLUMN, MiniBatchContext

    settings = tiny_settings(tmp_path, horizon=7, model={"type": "lightgbm", "params": {"num_boost_round": 20}})
    monkeypatch.setattr(backtest_entry, "_state", {"settings": settings, "cfg": SeriesConfig.from_settings(settings),
                                                   "models": ["lightgbm", "baseline"], "origins": 2, "every": None})
    own = _store("S1", ["I1", "I2"])
    alone = backtest_entry.run(own.copy(), MiniBatchContext({}))
    batch = pd.concat([own, _store("S2", ["I1", "I2", "I3"])], ignore_index=True)
    batch[CONTEXT_COLUMN] = batch["store"] == "S2"
    with_others = backtest_entry.run(batch, MiniBatchContext({}))
    assert set(with_others["store"]) == {"S1"} and len(with_others) == len(alone) > 0
    assert set(with_others["model_type"]) == {"lightgbm", "baseline"}
