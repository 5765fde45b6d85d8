"""The real training and scoring entry scripts, run through the local runner on a tiny lake.

Four daily series of 150 days (S1/I1, S1/I2, S2/I1, S2/I2), one dataset file per store. Training injects a
failure for S1/I2 (MM_ASSETS_INJECT_FAILURES through JobSpec.environment); scoring then sees S1/I2 without a
model, and a manifest whose S2/I1 entry points at a wrong byte range.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.models import LinearForecaster
from mm_assets.lake import Lake
from mm_assets.parallel import score_entry
from mm_assets.parallel.contract import SCORE_ENTRY, TRAIN_ENTRY, JobResult, JobSpec, Manifest
from mm_assets.parallel.local_runner import run_job
from mm_assets.parallel.train_entry import INJECT_ENV
from mm_assets.settings import Settings

HORIZON = 7
DAYS = 150
SERIES = [("S1", "I1"), ("S1", "I2"), ("S2", "I1"), ("S2", "I2")]
INJECTED = "S1/I2"
CORRUPT = "S2/I1"
PLANNED = "S2/I2"  # carries HORIZON planned future rows (target empty, promotion planned)
FIRST_DAY = pd.Timestamp("2025-01-01")
LAST_OBS = FIRST_DAY + pd.Timedelta(days=DAYS - 1)


def _series(store: str, item: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range(FIRST_DAY, periods=DAYS, freq="D")
    weekly = np.array([1.0, 0.9, 0.95, 1.0, 1.2, 1.6, 1.4])[ds.day_of_week]
    promo = (rng.random(DAYS) < 0.1).astype(float)
    price = np.round(2.0 + 0.1 * rng.standard_normal(DAYS), 2)
    y = np.round(20 * weekly * (1 + 0.5 * promo) + rng.normal(0, 1.5, DAYS)).clip(0)
    frame = pd.DataFrame({"store": store, "item": item, "ds": ds, "y": y, "price": price, "promo": promo})
    if f"{store}/{item}" == PLANNED:
        future = pd.DataFrame(
            {
                "store": store,
                "item": item,
                "ds": pd.date_range(LAST_OBS + pd.Timedelta(days=1), periods=HORIZON, freq="D"),
                "y": np.nan,
                "price": 2.0,
                "promo": 1.0,
            }
        )
        frame = pd.concat([frame, future], ignore_index=True)
    return frame


@pytest.fixture(scope="module", params=["per-series", "vectorised"])
def project(request, tmp_path_factory):
    """Per-series: one series per mini-batch (Azure ML's partition_keys). Vectorised: a store's two series in one
    mini-batch (the local runner's series_per_minibatch), where a failing mini-batch is rerun series by series."""
    root = tmp_path_factory.mktemp("entries")
    lake = Lake(str(root / "lake"))
    settings = Settings(horizon=HORIZON, model={"type": "linear"})  # the per-series and vectorised paths
    files = []
    for store in ("S1", "S2"):
        parts = [_series(s, i, n) for n, (s, i) in enumerate(SERIES) if s == store]
        frame = pd.concat(parts, ignore_index=True).sort_values(["store", "item", "ds"], ignore_index=True)
        lake.write_parquet(frame, "datasets", f"{store}.parquet")
        files.append(f"datasets/{store}.parquet")
    return lake, settings, files, request.param


def _job(project, entry: str, extra: list[str], env=None) -> JobSpec:
    lake, settings, files, mode = project
    vectorised = mode == "vectorised"
    return JobSpec(
        entry_script=entry,
        arguments=["--settings-json", settings.model_dump_json(), "--lake-uri", lake.uri, "--run-id", "r1", *extra],
        lake_uri=lake.uri,
        input_files=files,
        partition_keys=list(settings.columns.ids),
        max_concurrency=2,
        max_retries=1,
        series_per_task=2 if vectorised else 1,
        multi_series=vectorised,
        series_per_minibatch=2 if vectorised else 1,
        mini_batch_timeout_s=120,
        environment=env or {},
    )


@pytest.fixture(scope="module")
def trained(project) -> JobResult:
    job = _job(project, TRAIN_ENTRY, ["--model-dir", "models/r1"], {INJECT_ENV: INJECTED})
    return run_job(job)


@pytest.fixture(scope="module")
def manifest(project, trained) -> pd.DataFrame:
    """The manifest of the trained models, with CORRUPT's entry pointing one byte past its model."""
    lake = project[0]
    frame = trained.rows[["series_key", "model_type", "artifact_uri", "artifact_offset", "artifact_size"]].copy()
    frame["version"] = 1
    frame.loc[frame["series_key"] == CORRUPT, "artifact_offset"] += 1
    lake.write_parquet(frame, "manifests", "r1.parquet")
    return frame


@pytest.fixture(scope="module")
def scored(project, manifest) -> JobResult:
    return run_job(_job(project, SCORE_ENTRY, ["--manifest", "manifests/r1.parquet"]))


# ---- training -----------------------------------------------------------------------------------------
def test_train_returns_one_row_per_series_with_metrics(trained):
    rows = trained.rows.set_index("series_key").sort_index()
    assert list(rows.index) == ["S1/I1", "S2/I1", "S2/I2"]  # all but the injected failure
    assert trained.series_total == trained.series_done == 4
    assert list(rows["store"]) == ["S1", "S2", "S2"] and list(rows["item"]) == ["I1", "I1", "I2"]
    assert set(rows["status"]) == {"trained"}  # 150 days > min_train_periods + horizon
    assert set(rows["model_type"]) == {"linear"}
    for key, row in rows.iterrows():
        assert json.loads(row["ids"]) == dict(zip(["store", "item"], key.split("/")))
        for metric in ("accuracy", "wape", "mase"):
            assert math.isfinite(row[metric]), (key, metric)
        metrics = json.loads(row["metrics"])
        assert metrics["accuracy"] == pytest.approx(row["accuracy"])
        assert metrics["wape"] == pytest.approx(row["wape"])
        assert 0.5 < row["accuracy"] <= 1.0  # a learnable weekly pattern
        assert pd.Timestamp(row["data_start"]) == FIRST_DAY
        assert pd.Timestamp(row["data_end"]) == LAST_OBS  # planned rows are not training data
        assert row["n_obs"] == DAYS


def test_train_artifact_byte_ranges_unpickle_to_the_series_models(project, trained):
    lake = project[0]
    rows = trained.rows
    assert (rows["artifact_size"] > 0).all()
    for uri, group in rows.groupby("artifact_uri"):
        assert lake.relative(uri).startswith("models/r1/")
        data = lake.fs.cat_file(uri)
        spans = sorted(zip(group["artifact_offset"], group["artifact_offset"] + group["artifact_size"]))
        assert spans[0][0] == 0 and spans[-1][1] == len(data)  # the bundle is exactly its models
        assert all(a_end == b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # contiguous
        for _, row in group.iterrows():
            blob = data[row["artifact_offset"] : row["artifact_offset"] + row["artifact_size"]]
            model = pickle.loads(blob)
            assert isinstance(model, LinearForecaster)
            assert model.last_ds == LAST_OBS
            assert model.cfg.horizon == HORIZON


def test_train_injected_failure_is_a_failure_row(trained):
    failures = trained.failures
    assert len(failures) == 1
    fail = failures.iloc[0]
    assert fail["series_key"] == INJECTED
    assert (fail["store"], fail["item"]) == ("S1", "I2")
    assert fail["error_type"] == "InjectedFailure"
    assert INJECT_ENV in fail["error_message"] and INJECTED in fail["error_message"]
    assert fail["attempts"] == 2


# ---- scoring ------------------------------------------------------------------------------------------
def test_score_forecasts_horizon_periods_for_every_series(scored):
    assert scored.failures.empty  # nothing fails: missing or broken models fall back to the baseline
    rows = scored.rows
    assert sorted(rows["series_key"].unique()) == [f"{s}/{i}" for s, i in SERIES]
    expected_days = list(pd.date_range(LAST_OBS + pd.Timedelta(days=1), periods=HORIZON, freq="D"))
    for key, group in rows.groupby("series_key"):
        assert len(group) == HORIZON, key
        assert list(pd.to_datetime(group["ds"]).sort_values()) == expected_days
        assert (pd.to_datetime(group["origin"]) == LAST_OBS).all()
        assert np.isfinite(group["yhat"]).all() and (group["yhat"] >= 0).all()
    assert list(rows.columns[:3]) == ["store", "item", "series_key"]


def test_score_uses_the_manifested_model(scored):
    by_key = scored.rows.groupby("series_key").first()
    for key in ("S1/I1", PLANNED):
        assert by_key.loc[key, "model_source"] == "champion"
        assert by_key.loc[key, "model_type"] == "linear"
        assert by_key.loc[key, "model_version"] == 1
        assert pd.isna(by_key.loc[key, "note"])
    assert by_key.loc[PLANNED, "planned_periods"] == HORIZON  # the planned future rows were used
    assert by_key.loc["S1/I1", "planned_periods"] == 0


def test_score_series_without_a_model_gets_the_flagged_baseline(scored):
    rows = scored.rows[scored.rows["series_key"] == INJECTED]
    assert len(rows) == HORIZON
    assert set(rows["model_source"]) == {"baseline"}
    assert set(rows["model_type"]) == {"baseline"}
    assert set(rows["model_version"]) == {0} and set(rows["envelope_replaced"]) == {0}
    assert set(rows["note"]) == {score_entry.NO_CHAMPION_NOTE}


def test_score_corrupt_manifest_entry_falls_back_to_the_baseline_with_a_note(scored):
    rows = scored.rows[scored.rows["series_key"] == CORRUPT]
    assert len(rows) == HORIZON
    assert set(rows["model_source"]) == {"baseline"}
    assert set(rows["model_version"]) == {0}
    (note,) = set(rows["note"])
    assert note.startswith("model v1 failed to load:")


def test_manifest_rows_are_read_by_series_key_as_the_frame_holds_them():
    frame = pd.DataFrame({"series_key": ["S1/I1", "S1/I2"], "version": [3, 4], "wape": [0.25, math.nan],
                          "artifact_uri": ["file:///a.bin", None]})
    manifest = Manifest(frame)
    assert len(manifest) == 2 and "S1/I2" in manifest and "S9/I9" not in manifest
    assert manifest.get("S1/I1") == {"version": 3, "wape": 0.25, "artifact_uri": "file:///a.bin"}
    second = manifest.get("S1/I2")
    assert second["version"] == 4 and math.isnan(second["wape"])
    assert manifest.get("S9/I9") is None
    with pytest.raises(ValueError, match="names a series twice"):
        Manifest(pd.concat([frame, frame.iloc[:1]]))


def test_manifest_values_are_what_to_dict_gives_for_every_dtype_with_missing_values():
    """Missing values stay what the entry scripts test for: a nullable integer's NA is None (a series without a
    champion), a float's NaN NaN, a missing time NaT."""
    frame = pd.DataFrame({
        "series_key": ["a", "b", "c"],
        "champion_version": pd.array([3, None, 1], dtype="Int64"),
        "wape": [0.2, math.nan, 0.1],
        "model_type": pd.array(["linear", None, "lightgbm"], dtype="string"),
        "note": ["x", None, "z"],
        "data_end": pd.to_datetime(["2024-01-01", None, "2024-01-03"]),
        "ok": pd.array([True, None, False], dtype="boolean"),
    })
    manifest, want = Manifest(frame), frame.set_index("series_key").to_dict("index")
    for key in want:
        got = manifest.get(key)
        assert got.keys() == want[key].keys()
        for name, value in want[key].items():
            assert (pd.isna(value) and pd.isna(got[name]) and type(got[name]) is type(value)) or got[name] == value
    assert manifest.get("b")["champion_version"] is None and manifest.get("b")["ok"] is None


# ---- what each version was fitted from (the gate keeps a champion refitted to itself) -----------------------
def _fit_digests(tmp_path, model_type: str, mode: str, frames: dict[str, pd.DataFrame]) -> dict[str, float]:
    lake = Lake(str(tmp_path / f"lake-{mode}"))
    for store, frame in frames.items():
        lake.write_parquet(frame, "datasets", f"{store}.parquet")
    settings = Settings(horizon=HORIZON, model={"type": model_type})
    job = _job((lake, settings, [f"datasets/{s}.parquet" for s in frames], mode), TRAIN_ENTRY,
               ["--model-dir", "models/r1"])
    rows = run_job(job).rows.set_index("series_key")
    return {key: json.loads(metrics)["fit_digest"] for key, metrics in rows["metrics"].items()}


def _store_frames(changed: str | None = None) -> dict[str, pd.DataFrame]:
    frames = {}
    for store in ("S1", "S2"):
        parts = [_series(s, i, n) for n, (s, i) in enumerate(SERIES) if s == store]
        frames[store] = pd.concat(parts, ignore_index=True).sort_values(["store", "item", "ds"], ignore_index=True)
    if changed:
        frames[changed].loc[3, "y"] += 1  # a correction of one old day of the store's first series
    return frames


def test_a_per_series_fit_digest_is_the_same_in_every_runner_mode_and_changes_only_with_its_own_rows(tmp_path):
    one = _fit_digests(tmp_path / "a", "linear", "per-series", _store_frames())
    chunked = _fit_digests(tmp_path / "b", "linear", "vectorised", _store_frames())
    assert one == chunked and len(set(one.values())) == len(SERIES)  # Azure ML's one series a mini-batch, or many
    corrected = _fit_digests(tmp_path / "c", "linear", "vectorised", _store_frames(changed="S2"))
    assert [key for key in one if corrected[key] != one[key]] == ["S2/I1"]
    assert _fit_digests(tmp_path / "d", "ets", "vectorised", _store_frames())["S1/I1"] != one["S1/I1"]
