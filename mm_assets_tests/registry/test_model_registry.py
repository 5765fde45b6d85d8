"""Tests of the model registry: versioning, latest-per-series queries, failures, read-only handles, artifacts."""

from __future__ import annotations

import json
import pickle
import time

import pandas as pd
import pytest

from mm_assets.lake import Lake
from mm_assets.registry import ModelRegistry


def model_rows(keys: list[tuple[str, str]], uri: str = "/nowhere/bundle.bin", accuracy: float = 0.9) -> pd.DataFrame:
    """Registry input rows for series (store, item); partition = store."""
    n = len(keys)
    return pd.DataFrame(
        {
            "series_key": [f"{s}/{i}" for s, i in keys],
            "partition_key": [s for s, _ in keys],
            "ids": [json.dumps({"store": s, "item": i}) for s, i in keys],
            "model_type": "linear",
            "status": "trained",
            "reason": None,
            "data_start": pd.Timestamp("2025-01-01"),
            "data_end": pd.Timestamp("2025-05-30"),
            "n_obs": 150,
            "metrics": json.dumps({"accuracy": accuracy}),
            "accuracy": accuracy,
            "wape": 1 - accuracy,
            "mase": float("nan"),
            "artifact_uri": uri,
            "artifact_offset": range(0, 100 * n, 100),
            "artifact_size": 100,
            "duration_s": 0.01,
        }
    )


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{tmp_path}/registry.db")


def test_register_assigns_version_1_then_2_per_series(registry):
    first = registry.register(model_rows([("S1", "I1"), ("S1", "I2")]), run_id="r1")
    assert list(first["version"]) == [1, 1]
    # second run: one known series, one new one
    second = registry.register(model_rows([("S1", "I1"), ("S2", "I1")]), run_id="r2")
    assert dict(zip(second["series_key"], second["version"])) == {"S1/I1": 2, "S2/I1": 1}
    assert registry.count() == 4
    history = registry.versions("S1/I1")
    assert list(history["version"]) == [1, 2]
    assert list(history["run_id"]) == ["r1", "r2"]
    assert history["mase"].isna().all()  # NaN stored as NULL
    assert registry.versions("S1/I2")["reason"].isna().all()


def test_register_empty_frame_is_a_no_op(registry):
    out = registry.register(model_rows([]), run_id="r1")
    assert out.empty and "version" in out.columns
    assert registry.count() == 0


def test_latest_returns_the_max_version_of_every_series(registry):
    registry.register(model_rows([("S1", "I1"), ("S1", "I2"), ("S2", "I1")], accuracy=0.7), run_id="r1")
    registry.register(model_rows([("S1", "I1"), ("S2", "I1")], accuracy=0.8), run_id="r2")
    registry.register(model_rows([("S1", "I1")], accuracy=0.9), run_id="r3")
    latest = registry.latest()
    assert list(latest["series_key"]) == ["S1/I1", "S1/I2", "S2/I1"]  # one row each, sorted
    assert list(latest["version"]) == [3, 1, 2]
    assert list(latest["run_id"]) == ["r3", "r1", "r2"]
    assert list(latest["accuracy"]) == pytest.approx([0.9, 0.7, 0.8])


def test_latest_filters_by_partition_keys(registry):
    registry.register(model_rows([("S1", "I1"), ("S2", "I1"), ("S3", "I1")]), run_id="r1")
    registry.register(model_rows([("S2", "I1")]), run_id="r2")
    latest = registry.latest(["S2", "S3"])
    assert list(latest["series_key"]) == ["S2/I1", "S3/I1"]
    assert list(latest["version"]) == [2, 1]
    assert registry.latest(["S9"]).empty


def test_latest_with_more_than_900_partition_keys(registry):
    keys = [(f"P{p:04d}", "I1") for p in range(2000)]
    registry.register(model_rows(keys), run_id="r1")
    registry.register(model_rows(keys[950:960]), run_id="r2")  # version 2 inside the second chunk
    wanted = [s for s, _ in keys[:1500]]  # two chunks of partition keys
    latest = registry.latest(wanted)
    assert len(latest) == 1500
    assert latest["series_key"].is_unique
    assert set(latest["partition_key"]) == set(wanted)
    v2 = set(latest.loc[latest["version"] == 2, "series_key"])
    assert v2 == {f"{s}/I1" for s, _ in keys[950:960]}
    assert len(registry.latest()) == 2000


def test_bulk_register_of_10k_models_is_fast(registry):
    rows = model_rows([(f"S{i // 100:03d}", f"I{i % 100:03d}") for i in range(10_000)])
    started = time.perf_counter()
    out = registry.register(rows, run_id="bulk")
    elapsed = time.perf_counter() - started
    print(f"register 10,000 models: {elapsed:.3f} s")
    assert registry.count() == 10_000
    assert (out["version"] == 1).all()
    assert elapsed < 5.0
    started = time.perf_counter()
    again = registry.register(rows, run_id="bulk2")  # with the version lookup of 10k existing series
    elapsed = time.perf_counter() - started
    print(f"re-register 10,000 models: {elapsed:.3f} s")
    assert (again["version"] == 2).all()
    assert elapsed < 5.0


def test_record_failures_and_read_them_back(registry):
    failures = pd.DataFrame(
        {
            "series_key": ["S1/I2", "S2/I1"],
            "partition_key": ["S1", "S2"],
            "ids": [json.dumps({"store": "S1", "item": "I2"}), json.dumps({"store": "S2", "item": "I1"})],
            "error_type": ["InjectedFailure", "WorkerCrashed"],
            "error_message": ["boom", "died"],
            "attempts": [3, 3],
        }
    )
    assert registry.record_failures(failures, run_id="r1", task="train") == 2
    assert registry.record_failures(failures.iloc[:1], run_id="r2", task="score") == 1
    assert registry.record_failures(failures.iloc[0:0], run_id="r3", task="train") == 0
    everything = registry.failures()
    assert len(everything) == 3
    r1 = registry.failures(run_id="r1").sort_values("series_key")
    assert list(r1["series_key"]) == ["S1/I2", "S2/I1"]
    assert list(r1["error_type"]) == ["InjectedFailure", "WorkerCrashed"]
    assert set(r1["task"]) == {"train"} and list(r1["attempts"]) == [3, 3]
    s1 = registry.failures(partition_keys=["S1"])
    assert list(s1["run_id"].sort_values()) == ["r1", "r2"]
    assert registry.failures(partition_keys=["S2"], run_id="r2").empty


def test_newest_failures_are_each_series_newest_of_one_task(registry):
    def failed(key: str, message: str) -> pd.DataFrame:
        store = key.split("/")[0]
        return pd.DataFrame({"series_key": [key], "partition_key": [store], "ids": ["{}"],
                             "error_type": ["ValueError"], "error_message": [message], "attempts": [1]})

    registry.record_failures(failed("S1/I1", "first"), run_id="r1", task="train")
    registry.record_failures(failed("S1/I1", "second"), run_id="r2", task="train")
    registry.record_failures(failed("S1/I1", "scoring"), run_id="r3", task="score")
    registry.record_failures(failed("S2/I1", "elsewhere"), run_id="r2", task="train")
    out = registry.newest_failures(["S1"], task="train")
    assert out[["series_key", "error_message", "run_id"]].values.tolist() == [["S1/I1", "second", "r2"]]
    assert registry.newest_failures(["S3"], task="train").empty and registry.newest_failures([], task="train").empty


def test_read_only_registry_refuses_writes(tmp_path, registry):
    registry.register(model_rows([("S1", "I1")]), run_id="r1")
    reader = ModelRegistry(registry.url, read_only=True)
    with pytest.raises(PermissionError, match="read-only"):
        reader.register(model_rows([("S1", "I1")]), run_id="r2")
    with pytest.raises(PermissionError, match="read-only"):
        reader.record_failures(pd.DataFrame({"series_key": ["S1/I1"]}), run_id="r2", task="train")
    assert registry.count() == 1
    assert list(reader.latest()["version"]) == [1]  # reading is allowed


def test_read_only_registry_does_not_create_tables(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.db"
    ModelRegistry(url, read_only=True)
    import sqlalchemy as sa

    assert sa.inspect(sa.create_engine(url)).get_table_names() == []


def test_load_model_reads_its_byte_range_from_a_bundle(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    first = {"model": "first", "coef": [1.0, 2.0]}
    second = {"model": "second", "coef": list(range(50))}
    blobs = [pickle.dumps(first), pickle.dumps(second)]
    lake.write_bytes(b"".join(blobs), "models", "S1", "r1", "w0.bin")
    uri = lake.full_uri("models", "S1", "r1", "w0.bin")
    rows = model_rows([("S1", "I1"), ("S1", "I2")], uri=uri)
    rows["artifact_offset"] = [0, len(blobs[0])]
    rows["artifact_size"] = [len(blobs[0]), len(blobs[1])]
    registry = ModelRegistry(f"sqlite:///{tmp_path}/registry.db", lake=lake)
    registry.register(rows, run_id="r1")
    latest = registry.latest().set_index("series_key")
    assert registry.load_model(latest.loc["S1/I1"]) == first
    assert registry.load_model(latest.loc["S1/I2"].to_dict()) == second


def test_load_model_without_a_lake_says_so(registry):
    with pytest.raises(RuntimeError, match="lake"):
        registry.load_model({"artifact_uri": "/x", "artifact_offset": 0, "artifact_size": 1})


def test_pruning_keeps_latest_and_champion_versions_and_files_another_partition_still_needs(tmp_path):
    """``storage.model_retention_days``: old versions go with the bundle files no remaining version points at; a
    series' latest, its champion's and a global bundle another store's versions share stay, and so do their
    files."""
    import datetime as dt

    from mm_assets.registry.model_registry import prune_old_versions
    from mm_assets.registry.production import ProductionRegistry

    lake = Lake(str(tmp_path / "lake"))
    reg = ModelRegistry(f"sqlite:///{tmp_path}/registry.db", lake)
    day = [dt.datetime(2026, 11, d) for d in (1, 2, 3)]

    def bundle(name: str) -> str:
        lake.write_bytes(b"x" * 400, "models", name)
        return lake.full_uri("models", name)

    one = bundle("day1-S1.bin")  # day 1: S1's own bundle
    shared = bundle("day2-global.bin")  # day 2: one global model for S1 and S2
    three = bundle("day3-S1.bin")  # day 3: S1 only (S2's latest stays day 2's)
    reg.register(model_rows([("S1", "I1"), ("S1", "I2")], uri=one), "r1", trained_at=day[0])
    reg.register(model_rows([("S1", "I1"), ("S1", "I2"), ("S2", "I1")], uri=shared), "r2", trained_at=day[1])
    reg.register(model_rows([("S1", "I1"), ("S1", "I2")], uri=three), "r3", trained_at=day[2])
    cutoff = dt.datetime(2026, 11, 3)  # days 1 and 2 are old
    # S1/I2's champion is its day-1 version: kept (and so its file); S1/I1's day-1 and day-2 versions and
    # S1/I2's day-2 version go
    versions, files = reg.prune(["S1"], cutoff, keep={("S1/I2", 1)})
    assert (versions, files) == (3, 0)  # day 1's file still holds the champion, day 2's serves S2's latest
    left = {(k, int(v)) for k, v in zip(*(reg.latest(["S1", "S2"])[c] for c in ("series_key", "version")))}
    assert left == {("S1/I1", 3), ("S1/I2", 3), ("S2/I1", 1)}
    assert list(reg.versions("S1/I2")["version"]) == [1, 3] and list(reg.versions("S1/I1")["version"]) == [3]
    assert lake.exists("models/day1-S1.bin") and lake.exists("models/day2-global.bin")
    # the champion moved on: day 1's last version and its file go; S2 is another store's: never touched here
    assert reg.prune(["S1"], cutoff) == (1, 1)
    assert not lake.exists("models/day1-S1.bin") and lake.exists("models/day2-global.bin")
    assert reg.prune(["S2"], cutoff) == (0, 0)  # S2's only version is its latest
    assert reg.count() == 3  # S1/I1 v3, S1/I2 v3, S2/I1 v1
    # the asset's wiring: off by default; the production registry's champions kept (an empty one the first day)
    production = ProductionRegistry(f"sqlite:///{tmp_path}/production.db", lake)
    assert prune_old_versions(reg, production, ["S1"], None) == {}
    assert prune_old_versions(reg, production, ["S1", "S2"], 1) == {
        "pruned_versions": 0, "pruned_bundle_files": 0, "pruned_orphan_bundle_files": 0}
    # a run's folder emptied by retention goes with its last file (every run's empty folder stayed)
    reg.register(model_rows([("S1", "I1")], uri=bundle("run4/w1.bin")), "r4", trained_at=day[0])
    reg.register(model_rows([("S1", "I1")], uri=bundle("run5/w1.bin")), "r5", trained_at=day[2])
    assert reg.prune(["S1"], cutoff) == (1, 1)  # S1/I1 v4, of day 1, and its file
    assert not lake.exists("models/run4") and lake.exists("models/run5/w1.bin") and lake.exists("models")


def test_bundle_files_no_version_ever_pointed_at_are_pruned_once_older_than_the_cutoff(tmp_path):
    """A training run stopped after its workers wrote their bundles and before it registered the versions leaves
    files nothing reads: pruning deletes them once they are older than the retention cutoff; a referenced file, a
    fresh one (a running training's) and, in a lake whose registry names its files otherwise (moved, its URIs not
    rewritten), every file stay."""
    import datetime as dt
    import os

    lake = Lake(str(tmp_path / "lake"))
    reg = ModelRegistry(f"sqlite:///{tmp_path}/registry.db", lake)
    assert reg.prune_orphan_bundles(dt.datetime(2100, 1, 1)) == 0  # no lake folder yet
    for run, name in [("r1", "w1.bin"), ("r2", "w1.bin"), ("r2", "w2.bin"), ("r3", "w1.bin")]:
        lake.write_bytes(b"x" * 100, "models", run, name)
    reg.register(model_rows([("S1", "I1")], uri=lake.full_uri("models", "r1", "w1.bin")), "r1")
    long_ago = dt.datetime(2026, 1, 1).timestamp()
    for run, name in [("r1", "w1.bin"), ("r2", "w1.bin"), ("r2", "w2.bin")]:
        os.utime(lake.path("models", run, name), (long_ago, long_ago))
    cutoff = dt.datetime(2026, 6, 1)
    assert reg.prune_orphan_bundles(cutoff) == 2  # run r2 registered nothing
    assert lake.exists("models", "r1", "w1.bin") and lake.exists("models", "r3", "w1.bin")
    assert not lake.exists("models", "r2", "w1.bin") and not lake.exists("models", "r2", "w2.bin")
    # a registry whose newest version names a file elsewhere: nothing is taken for an orphan
    lake.write_bytes(b"x" * 100, "models", "r4", "w1.bin")
    os.utime(lake.path("models", "r4", "w1.bin"), (long_ago, long_ago))
    reg.register(model_rows([("S1", "I1")], uri="/somewhere/else/models/r9/w1.bin"), "r9")
    assert reg.prune_orphan_bundles(cutoff) == 0 and lake.exists("models", "r4", "w1.bin")
