"""README › Runner fidelity, row by row: the Azure ML code path (MLTable input, shim, append-row output) run on this
machine against the local runner's own path, and the real entry scripts, unchanged, on the folder the job reads.

Rows tested elsewhere: threshold, failure rows, empty returns, progress, cancellation, backoff (test_runner);
concurrency, timeout and retry mapping, error_threshold = -1, no reuse (test_job); append-row format (test_codec).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mm_assets.lake import Lake
from mm_assets.parallel.azureml import codec
from mm_assets.parallel.azureml.mltable import mltable_as_local_input, stage_mltable
from mm_assets.parallel.azureml.runner import AzureMLRunner, RunHooks
from mm_assets.parallel.azureml.shim import SHIM_MODULE, encode_arguments
from mm_assets.parallel.contract import SCORE_ENTRY, TRAIN_ENTRY, JobResult, JobSpec
from mm_assets.parallel.local_runner import run_job
from mm_assets.settings import AzureMLSettings, Settings
from mm_assets_tests.parallel.azureml.fake_azure import LOCATION, FakeMLClient
from mm_assets_tests.parallel.azureml.helpers import FAKE_ENTRY, KEYS, write_store

ARGS = ["--run-id", "r1", "--tag", "two words", "--json", '{"a": [1, "b c"]}']


def _spec(lake: Lake, entry: str, arguments, files, **kw) -> JobSpec:
    options = dict(max_concurrency=1, max_retries=1, mini_batch_timeout_s=60.0, series_per_task=4,
                   partition_keys=KEYS)
    options.update(kw)
    return JobSpec(entry_script=entry, arguments=arguments, lake_uri=lake.uri, input_files=files, **options)


def run_the_azure_way(lake: Lake, entry: str, arguments, files, folder: str, series_per_chunk: int = 1,
                      **kw) -> JobResult:
    """What a node does: MLTable folder → mini-batches → shim(entry) → append-row tokens → rows."""
    staged = stage_mltable(lake, files, KEYS, f"{folder}/input", series_per_chunk=series_per_chunk)
    keys = list(staged.partition_keys)
    local = mltable_as_local_input(lake, staged.folder, keys, f"{folder}/as-local.parquet")
    token = encode_arguments(entry, arguments, keys, KEYS, max_retries=1)
    result = run_job(_spec(lake, SHIM_MODULE, ["--mm-assets-args", token], [local], partition_keys=keys, **kw))
    lines = [" ".join(str(v) for v in row) for row in result.rows.itertuples(index=False)]  # the append-row file
    result.rows = codec.decode_lines(lines).rows
    return result


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory):
    """The fake entry over integer-id series, directly (local runner) and the Azure way."""
    lake = Lake(str(tmp_path_factory.mktemp("fidelity") / "lake"))
    files = [write_store(lake, 7, [10, 20, 30], int_ids=True), write_store(lake, 8, [10], int_ids=True)]
    direct = run_job(_spec(lake, FAKE_ENTRY, ARGS, files))
    azure = run_the_azure_way(lake, FAKE_ENTRY, ARGS, files, "azureml/fidelity")
    return direct.rows.set_index("series_key").sort_index(), azure.rows.set_index("series_key").sort_index()


def test_mini_batches_one_per_series_with_exactly_its_rows(both_ways):
    direct, azure = both_ways
    assert list(direct.index) == list(azure.index) == ["7/10", "7/20", "7/30", "8/10"]
    assert list(azure["rows"]) == list(direct["rows"]) == [5, 6, 7, 5]
    assert list(azure["y_sum"]) == list(direct["y_sum"])
    assert list(azure["first_ds"]) == list(direct["first_ds"])


def test_key_values_arrive_as_strings(both_ways):
    direct, azure = both_ways
    assert set(direct["key_types"]) == set(azure["key_types"]) == {"str,str"}  # mini_batch_context values
    assert set(azure["column_types"]) == {"str,str"}  # id columns of the mini-batch: from the folder names
    assert set(direct["column_types"]) == {"int64,int64"}  # locally: the dataset's dtype (mm-assets stores str)


def test_init_receives_the_same_arguments(both_ways):
    direct, azure = both_ways
    assert [json.loads(a) for a in direct["argv"]] == [ARGS] * 4
    assert [json.loads(a) for a in azure["argv"]] == [ARGS] * 4


def test_rows_survive_the_append_row_file(both_ways):
    direct, azure = both_ways
    assert list(azure["note"]) == list(direct["note"]) == ['a text with spaces, "quotes" and a\nnewline'] * 4


def test_timeout_and_retries_per_mini_batch_the_azure_way(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    state = tmp_path / "state"
    state.mkdir()
    files = [write_store(lake, "S1", ["I1", "I2", "I3"])]
    client = FakeMLClient(lake)
    runner = AzureMLRunner(AzureMLSettings(), ml_client=client, location=LOCATION, sleep=lambda s: None)
    spec = JobSpec(entry_script=FAKE_ENTRY, arguments=["--run-id", "r2"], lake_uri=lake.uri, input_files=files,
                   partition_keys=KEYS, max_retries=1, mini_batch_timeout_s=1.0,
                   environment={"FAKE_HANG": "S1/I1", "FAKE_FLAKY": "S1/I2", "FAKE_STATE_DIR": str(state)})
    result = runner.run(spec, hooks=RunHooks())
    assert sorted(result.rows["series_key"]) == ["S1/I2", "S1/I3"]  # the flaky one succeeded on its retry
    (failure,) = result.failures.to_dict("records")
    assert failure["series_key"] == "S1/I1" and failure["error_type"] == "MiniBatchTimeout"
    assert failure["attempts"] == 2


# ---- the real entry scripts, unchanged, on the MLTable folder the Azure job reads -----------------------
HORIZON = 7
SERIES = [("S1", "I1"), ("S1", "I2"), ("S2", "I1"), ("S2", "I2")]


def _series(store: str, item: str, seed: int, days: int = 70) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2025-01-01", periods=days, freq="D")
    weekly = np.array([1.0, 0.9, 0.95, 1.0, 1.2, 1.6, 1.4])[ds.day_of_week]
    promo = (rng.random(days) < 0.1).astype(float)
    y = np.round(20 * weekly * (1 + 0.5 * promo) + rng.normal(0, 1.5, days)).clip(0)
    return pd.DataFrame({"store": store, "item": item, "ds": ds, "y": y,
                         "price": np.round(2.0 + 0.1 * rng.standard_normal(days), 2), "promo": promo})


@pytest.fixture(scope="module")
def entry_project(tmp_path_factory):
    lake = Lake(str(tmp_path_factory.mktemp("entries") / "lake"))
    settings = Settings(horizon=HORIZON)
    files = []
    for store in ("S1", "S2"):
        frame = pd.concat([_series(s, i, n) for n, (s, i) in enumerate(SERIES) if s == store], ignore_index=True)
        lake.write_parquet(frame, "datasets", f"{store}.parquet")
        files.append(f"datasets/{store}.parquet")
    return lake, settings, files


def _arguments(lake, settings, run_id, extra):
    return ["--settings-json", settings.model_dump_json(), "--lake-uri", lake.uri, "--run-id", run_id, *extra]


@pytest.fixture(scope="module")
def trained_both_ways(entry_project):
    lake, settings, files = entry_project
    direct = run_job(_spec(lake, TRAIN_ENTRY, _arguments(lake, settings, "d", ["--model-dir", "models/d"]), files))
    azure = run_the_azure_way(lake, TRAIN_ENTRY, _arguments(lake, settings, "a", ["--model-dir", "models/a"]),
                              files, "azureml/train")
    return direct, azure


def test_training_entry_script_gives_the_same_models_on_the_mltable_folder(trained_both_ways):
    direct, azure = trained_both_ways
    assert direct.failures.empty and azure.failures.empty
    d, a = (r.rows.set_index("series_key").sort_index() for r in (direct, azure))
    assert list(d.index) == list(a.index) == ["S1/I1", "S1/I2", "S2/I1", "S2/I2"]
    for column in ("store", "item", "status", "model_type", "n_obs", "ids", "metrics"):
        assert list(a[column]) == list(d[column]), column
    for column in ("accuracy", "wape", "mase"):
        assert np.allclose(a[column].astype(float), d[column].astype(float)), column
    assert (a["artifact_uri"].str.contains("/models/a/")).all()  # the bundles were written where asked


def test_training_entry_script_in_chunks_gives_the_same_models(entry_project):
    """Chunks (the layout the azureml runner uses for training, promotion and scoring): one mini-batch of all
    four series, the vectorised linear path, the same models as the local runner's mini-batches. (A global model
    is never chunked: it trains as one whole-batch mini-batch.)"""
    lake, _, files = entry_project
    settings = Settings(horizon=HORIZON, model={"type": "linear"})
    direct = run_job(_spec(lake, TRAIN_ENTRY, _arguments(lake, settings, "m", ["--model-dir", "models/m"]), files,
                           multi_series=True, series_per_minibatch=4))
    chunked = run_the_azure_way(lake, TRAIN_ENTRY, _arguments(lake, settings, "c", ["--model-dir", "models/c"]),
                                files, "azureml/train-chunks", series_per_chunk=4)
    assert chunked.tasks == 1 and chunked.failures.empty
    d, c = (r.rows.set_index("series_key").sort_index() for r in (direct, chunked))
    assert list(d.index) == list(c.index) == ["S1/I1", "S1/I2", "S2/I1", "S2/I2"]
    for column in ("store", "item", "status", "model_type", "n_obs", "ids"):
        assert list(c[column]) == list(d[column]), column
    assert set(c["model_type"]) == {"linear"}
    assert np.allclose(c["wape"].astype(float), d["wape"].astype(float))


def test_scoring_entry_script_gives_the_same_forecasts_on_the_mltable_folder(entry_project, trained_both_ways):
    lake, settings, files = entry_project
    direct_train, _ = trained_both_ways
    manifest = direct_train.rows[["series_key", "model_type", "artifact_uri", "artifact_offset", "artifact_size"]]
    lake.write_parquet(manifest.assign(version=1), "manifests", "m.parquet")
    args = _arguments(lake, settings, "s", ["--manifest", "manifests/m.parquet"])
    direct = run_job(_spec(lake, SCORE_ENTRY, args, files))
    azure = run_the_azure_way(lake, SCORE_ENTRY, args, files, "azureml/score")
    d, a = (r.rows.sort_values(["series_key", "ds"], ignore_index=True) for r in (direct, azure))
    assert len(d) == len(a) == 4 * HORIZON
    assert list(a["ds"]) == list(d["ds"]) and list(a["origin"]) == list(d["origin"])
    assert np.allclose(a["yhat"].astype(float), d["yhat"].astype(float))
    assert set(a["model_source"]) == {"champion"} and list(a["model_version"]) == list(d["model_version"])
    assert not any(isinstance(v, float) and math.isnan(v) for v in a["yhat"])
