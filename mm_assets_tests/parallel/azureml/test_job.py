"""The pipeline job of a batch: what the SDK validates, what its YAML says, and `mm-assets azureml build-job`."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from azure.ai.ml import load_job

from mm_assets.cli import main
from mm_assets.lake import Lake
from mm_assets.parallel.azureml.job import (
    ENTRY_FILE,
    build_pipeline_job,
    parallel_node,
    shareable_arguments,
    stage_code,
    write_job_yaml,
)
from mm_assets.parallel.azureml.mltable import CHUNK_KEY, read_mltable, stage_mltable
from mm_assets.parallel.azureml.shim import ARGS_FLAG, decode_arguments
from mm_assets.parallel.contract import CONTEXT_COLUMN, TRAIN_ENTRY, WHOLE_BATCH_KEY
from mm_assets.settings import AzureMLSettings, Settings
from mm_assets_tests.conftest import tiny_settings
from mm_assets_tests.parallel.azureml.helpers import KEYS, write_store

logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
URL = "https://mmacct.blob.core.windows.net/lake/mm/azureml/r1-train-abc/input"
SECRET_SETTINGS = Settings(storage={"registry": "postgresql+psycopg2://mm:s3cret@db/registry",
                                    "warehouse": "mssql+pyodbc://sa:s3cret@synapse/dw"})


def _job(tmp_path, **overrides):
    kwargs = dict(
        entry_script=TRAIN_ENTRY,
        arguments=["--settings-json", SECRET_SETTINGS.model_dump_json(), "--lake-uri",
                   "abfs://lake@mmacct.dfs.core.windows.net/mm", "--run-id", "r1", "--model-dir", "models/r1"],
        partition_keys=KEYS,
        input_path=URL,
        code_dir=stage_code(tmp_path / "code"),
        azureml=AzureMLSettings(compute="cpu-big", instance_count=3, environment="azureml:mm-assets-job:7"),
        max_concurrency=4,
        mini_batch_timeout_s=120.5,
        max_retries=3,
        mini_batch_error_threshold=5,
        environment_variables={"MM_ASSETS_INJECT_FAILURES": "S1/I1", "MM_ASSETS__STORAGE__REGISTRY": "secret://x",
                               "MM_ASSETS_SETTINGS": "/etc/mm.yaml", "AZURE_CLIENT_ID": "abc"},
        job_name="mm_assets_r1_train_abc",
        tags={"mm_assets.run_id": "r1"},
    )
    kwargs.update(overrides)
    return build_pipeline_job(**kwargs)


def test_built_job_passes_the_sdk_validation(tmp_path):
    job = _job(tmp_path)
    result = job._validate()
    assert result.passed, result.error_messages


def test_parallel_node_maps_the_runner_settings(tmp_path):
    job = _job(tmp_path)
    node = parallel_node(job)
    assert node.partition_keys == KEYS
    assert node.mini_batch_error_threshold == 5
    assert node.error_threshold == -1
    assert node.retry_settings.max_retries == 3 and node.retry_settings.timeout == 121
    assert node.max_concurrency_per_instance == 4
    assert node.resources.instance_count == 3
    assert node.component.is_deterministic is False and job.settings.force_rerun is True
    assert node.task.entry_script == ENTRY_FILE and node.task.append_row_to == "${{outputs.results}}"
    assert job.settings.default_compute == "cpu-big" and job.name == "mm_assets_r1_train_abc"
    assert job.inputs["series"].path == URL and job.inputs["series"].mode == "direct"


def test_zero_concurrency_is_left_to_azure(tmp_path):
    assert parallel_node(_job(tmp_path, max_concurrency=0)).max_concurrency_per_instance is None


def test_arguments_reach_the_shim_intact_and_without_secrets(tmp_path):
    node = parallel_node(_job(tmp_path))
    flag, token = node.task.program_arguments.split()
    assert flag == ARGS_FLAG
    payload = decode_arguments(token)
    assert payload["entry"] == TRAIN_ENTRY and payload["keys"] == KEYS
    args = payload["arguments"]
    assert args[2:] == ["--lake-uri", "abfs://lake@mmacct.dfs.core.windows.net/mm", "--run-id", "r1",
                        "--model-dir", "models/r1"]
    shipped = json.loads(args[1])
    assert "s3cret" not in token and "s3cret" not in args[1]
    assert shipped["storage"] == {"lake": SECRET_SETTINGS.storage.lake}
    # what the entry scripts read is intact: the same settings apart from the sections left home
    restored = Settings.model_validate(shipped)
    assert restored.columns == SECRET_SETTINGS.columns and restored.model == SECRET_SETTINGS.model
    assert restored.horizon == SECRET_SETTINGS.horizon and restored.promotion == SECRET_SETTINGS.promotion


def test_every_setting_but_the_home_sections_travels_with_a_job(tmp_path):
    """A job forecast as if ``gap`` were 0 (the wrong weeks, holdout and gate) when the settings that travel were
    listed by hand and ``gap`` was not among them: every setting but the sections that stay home travels now."""
    from mm_assets.parallel.azureml.job import HOME_SETTINGS

    changed = SECRET_SETTINGS.model_copy(update={
        "gap": 3, "horizon": 5, "season_length": 13, "frequency": "W-MON",
        "model": SECRET_SETTINGS.model.model_copy(update={"min_train_periods": 44, "envelope_multiple": 7.0})})
    job = _job(tmp_path, arguments=["--settings-json", changed.model_dump_json(), "--run-id", "r1"])
    shipped = json.loads(decode_arguments(parallel_node(job).task.program_arguments.split()[1])["arguments"][1])
    restored = Settings.model_validate(shipped)
    assert (restored.gap, restored.horizon, restored.season, restored.min_train_periods) == (3, 5, 13, 44)
    assert set(shipped) == (set(Settings.model_fields) - set(HOME_SETTINGS)) | {"storage"}
    for name in Settings.model_fields:
        if name not in HOME_SETTINGS:
            assert getattr(restored, name) == getattr(changed, name), name


def test_settings_overrides_stay_home_and_other_variables_go_along(tmp_path):
    env = parallel_node(_job(tmp_path)).environment_variables
    assert env == {"MM_ASSETS_INJECT_FAILURES": "S1/I1", "AZURE_CLIENT_ID": "abc"}


def test_shareable_arguments_leave_other_arguments_alone():
    assert shareable_arguments(["--run-id", "r1"]) == ["--run-id", "r1"]


def test_yaml_dump_round_trips_through_load_job_from_any_directory(tmp_path, monkeypatch):
    out = write_job_yaml(_job(tmp_path), tmp_path / "out" / "job.yml", header="a header\nsecond line")
    text = out.read_text()
    assert text.startswith("# a header\n# second line\n")
    assert "azureml:https" not in text  # the path is written as it is
    data = yaml.safe_load(text)
    assert data["jobs"]["mm_assets_train"]["component"]["task"]["code"] == os.path.relpath(tmp_path / "code",
                                                                                          out.parent)
    for cwd in (tmp_path, out.parent):  # `az ml job create -f` may run from anywhere
        monkeypatch.chdir(cwd)
        loaded = load_job(out)
        result = loaded._validate()
        assert result.passed, result.error_messages
    node = parallel_node(loaded)
    assert node.partition_keys == KEYS and node.mini_batch_error_threshold == 5
    assert node.retry_settings.max_retries == 3 and node.component.is_deterministic is False
    assert loaded.inputs["series"].path == URL and loaded.settings.force_rerun is True
    assert "s3cret" not in text


def test_code_folder_holds_the_package_and_the_entry_file(tmp_path):
    code = stage_code(tmp_path / "code")
    assert (code / ENTRY_FILE).is_file()
    assert (code / "mm_assets" / "parallel" / "azureml" / "shim.py").is_file()
    assert not list(code.rglob("__pycache__"))
    assert "from mm_assets.parallel.azureml.shim import init, run, shutdown" in (code / ENTRY_FILE).read_text()
    assert stage_code(tmp_path / "code") == code  # a code folder written here is replaced ...
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError):  # ... any other folder is left alone
        stage_code(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


# ---- the CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path, monkeypatch):
    settings = tiny_settings(tmp_path, runner={"mini_batch_error_threshold": 3, "max_retries": 1})
    lake = Lake(settings.storage.lake)
    write_store(lake, "S1", ["I1", "I2"])
    write_store(lake, "S2", ["I1"])
    write_store(lake, "S3", ["I1"])
    path = tmp_path / "mm_assets.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(path))
    monkeypatch.chdir(tmp_path)
    return settings, lake


@pytest.mark.parametrize("task", ["train", "score"])
def test_build_job_writes_a_yaml_that_loads_and_validates(project, tmp_path, task, capsys):
    settings, lake = project
    (tmp_path / "mm_assets.yaml").write_text(yaml.safe_dump({**settings.model_dump(mode="json"),
                                                             "model": {"type": "linear"}}))
    out = tmp_path / "jobs" / f"{task}.yml"
    assert main(["azureml", "build-job", "--stores", "S1,S2", "--task", task, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 series in 1 mini-batches" in printed and "az ml job create -f" in printed
    assert "not ADLS Gen2" in printed
    job = load_job(out)
    result = job._validate()
    assert result.passed, result.error_messages
    node = parallel_node(job)
    assert node.partition_keys == [CHUNK_KEY]  # the entry scripts take many series: chunks, not one per series
    assert node.mini_batch_error_threshold == 3 and node.error_threshold == -1
    # the timeout is per series (runner.mini_batch_timeout_s) times the series of the largest chunk
    assert node.retry_settings.max_retries == 1 and node.retry_settings.timeout == 60 * 3
    assert node.component.is_deterministic is False
    assert yaml.safe_load(out.read_text())["jobs"][f"mm_assets_{task}"]["component"]["is_deterministic"] is False
    payload = decode_arguments(node.task.program_arguments.split()[1])
    assert payload["entry"] == f"mm_assets.parallel.{task}_entry"
    assert payload["ids"] == ["store", "item"] and payload["keys"] == [CHUNK_KEY] and payload["retries"] == 1
    assert ("--model-dir" if task == "train" else "--manifest") in payload["arguments"]
    staged = out.parent / job.inputs["series"].path
    (chunk,) = [p for p in staged.iterdir() if p.name != "MLTable"]
    assert sorted(read_mltable(Lake(str(staged.parent)), staged.name)[CHUNK_KEY].unique()) == [chunk.name]
    assert (out.parent / f"{task}-code" / ENTRY_FILE).is_file()
    if task == "score":
        manifest = payload["arguments"][payload["arguments"].index("--manifest") + 1]
        assert lake.exists(manifest)


def test_a_global_model_is_built_as_one_whole_batch_mini_batch(project, tmp_path, capsys):
    settings, _ = project
    (tmp_path / "mm_assets.yaml").write_text(yaml.safe_dump({**settings.model_dump(mode="json"),
                                                             "model": {"type": "lightgbm"}}))
    out = tmp_path / "jobs" / "train.yml"
    assert main(["azureml", "build-job", "--stores", "S1,S2", "--task", "train", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 series in 1 mini-batches" in printed
    # as the training asset stages it: S3's series are learnt from too (model.global_context_rows), marked
    assert "also learns from the series of 1 other store partition(s)" in printed
    job = load_job(out)
    assert job._validate().passed
    node = parallel_node(job)
    assert node.partition_keys == [WHOLE_BATCH_KEY] and node.retry_settings.timeout == 60 * 3
    assert node.resources.instance_count == 1  # one mini-batch: a second node would be billed idle
    staged = read_mltable(Lake(str((out.parent / job.inputs["series"].path).parent)), Path(job.inputs["series"].path).name)
    assert staged.groupby("store")[CONTEXT_COLUMN].agg(set).to_dict() == {"S1": {False}, "S2": {False}, "S3": {True}}
    # the header counts the batch's own rows apart from those learnt from
    own, learnt = int((~staged[CONTEXT_COLUMN]).sum()), int(staged[CONTEXT_COLUMN].sum())
    assert f"(3 series, {own} rows, and {learnt} rows of other stores' series learnt from)." in out.read_text()


def test_ten_thousand_series_are_a_few_hundred_mini_batches_that_pass_the_sdk_validation(tmp_path):
    """The shape of a full-size batch: 10,000 series of 50 stores → at most about azureml.max_mini_batches
    chunks, every series in exactly one, the job valid by the SDK's own rules."""
    lake = Lake(str(tmp_path / "lake"))
    files = []
    for s in range(50):
        n = 200
        frame = pd.DataFrame({"store": f"S{s:02d}", "item": np.repeat([f"I{i:03d}" for i in range(n)], 3),
                              "ds": np.tile(pd.date_range("2025-01-01", periods=3).to_numpy(), n), "y": 1.0})
        lake.write_parquet(frame, "datasets", f"S{s:02d}.parquet")
        files.append(f"datasets/S{s:02d}.parquet")
    settings = AzureMLSettings()
    staged = stage_mltable(lake, files, KEYS, "azureml/big/input", series_per_chunk=25,
                           max_mini_batches=settings.max_mini_batches)
    sizes = staged.series[CHUNK_KEY].value_counts()
    assert staged.total == 10_000 and sizes.sum() == 10_000
    assert staged.mini_batches == len(sizes) <= settings.max_mini_batches
    assert sizes.max() < 2 * 10_000 / settings.max_mini_batches  # hash buckets are roughly even
    job = build_pipeline_job(entry_script=TRAIN_ENTRY, arguments=["--run-id", "r1"],
                             partition_keys=list(staged.partition_keys), id_columns=KEYS,
                             input_path=URL, code_dir=stage_code(tmp_path / "code"), azureml=settings,
                             max_concurrency=4, mini_batch_timeout_s=30.0 * sizes.max(), max_retries=2,
                             mini_batch_error_threshold=-1)
    assert job._validate().passed
    assert parallel_node(job).partition_keys == [CHUNK_KEY]


def test_build_job_names_missing_partitions(project, tmp_path, capsys):
    assert main(["azureml", "build-job", "--stores", "S1,S9", "--out", str(tmp_path / "j.yml")]) == 2
    err = capsys.readouterr().err
    assert "['S9']" in err and "S1" in err
