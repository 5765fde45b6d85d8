"""The azureml runner against a mocked MLClient: submission, polling, failures, cancellation, output parsing.

``FakeMLClient`` (fake_azure) runs the submitted job's parallel node on this machine from what the job says
(MLTable input, partition keys, retries, threshold, environment, program arguments) and writes the append-row
output as Azure ML does; or, with ``execute=False``, only plays a status script.
"""

from __future__ import annotations

from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pytest

from mm_assets.lake import Lake
from mm_assets.parallel.azureml.codec import encode_rows
from mm_assets.parallel.azureml.job import parallel_node
from mm_assets.parallel.azureml.progress import MESSAGES_ENV, decode_params
from mm_assets.parallel.azureml.runner import AzureMLJobCanceled, AzureMLJobError, AzureMLRunner, RunHooks
from mm_assets.parallel.azureml.storage import AzureMLConfigError
from mm_assets.parallel.contract import JobSpec, ParallelJobError
from mm_assets.resources import build_resources
from mm_assets.settings import AzureMLSettings, Settings
from mm_assets_tests.parallel.azureml.fake_azure import LOCATION, FakeMLClient
from mm_assets_tests.parallel.azureml.helpers import FAKE_ENTRY, KEYS, write_store

ALL = ["S1/I1", "S1/I2", "S1/I3", "S2/I1", "S2/I2"]


class ListLog:
    def __init__(self):
        self.records: list[tuple[str, str]] = []

    def __getattr__(self, level):
        return lambda message: self.records.append((level, message))

    def text(self, level: str | None = None) -> str:
        return "\n".join(m for lv, m in self.records if level in (None, lv))


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def files(lake) -> list[str]:
    return [write_store(lake, "S1", ["I1", "I2", "I3"]), write_store(lake, "S2", ["I1", "I2"])]


def _spec(lake, files, env=None, **kw) -> JobSpec:
    defaults = dict(max_retries=1, mini_batch_timeout_s=30.0, mini_batch_error_threshold=-1)
    defaults.update(kw)
    return JobSpec(entry_script=FAKE_ENTRY, arguments=["--run-id", "r1", "--model-dir", "models/r1"],
                   lake_uri=lake.uri, input_files=files, partition_keys=KEYS, environment=env or {}, **defaults)


def _runner(client, sleeps=None, **settings) -> AzureMLRunner:
    options = dict(poll_interval_s=5.0, max_poll_interval_s=20.0)
    options.update(settings)
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return AzureMLRunner(AzureMLSettings(**options), ml_client=client, location=LOCATION, sleep=record)


def test_a_batch_runs_as_one_job_and_comes_back_as_a_job_result(lake, files):
    client = FakeMLClient(lake)
    log, progress, sleeps = ListLog(), [], []
    result = _runner(client, sleeps).run(_spec(lake, files), on_progress=lambda *a: progress.append(a),
                                         hooks=RunHooks(log=log))
    (job, experiment), = client.jobs.submitted
    assert experiment == "mm-assets" and job.name.startswith("mm_assets_r1_fake_")
    assert job.tags["mm_assets.run_id"] == "r1" and job.tags["mm_assets.partitions"] == "S1,S2"
    assert sorted(result.rows["series_key"]) == ALL and result.failures.empty
    assert result.series_total == result.series_done == 5 and not result.aborted
    assert set(result.rows["rows"]) == {5, 6, 7} and set(result.rows["key_types"]) == {"str,str"}
    # polling: one log line per status change, the output downloaded once, the pipes progress delivered
    assert [m for _, m in log.records if " is " in m] == [f"azureml: job {job.name} is {s}"
                                                          for s in ("Queued", "Running", "Completed")]
    assert client.jobs.downloads == [(job.name, "results")]
    assert progress and progress[-1] == (5, 5, 0)
    # the models of a training batch are mirrored as one Azure ML model pointing at the bundles in the lake
    (model,) = client.models.registered
    assert model.path == "https://mmacct.blob.core.windows.net/lake/mm/models/r1"
    assert model.tags["mm_assets.run_id"] == "r1" and model.tags["mm_assets.series"] == "5"
    assert lake.list("azureml") == []  # staged input removed once the job completed


def test_the_job_carries_the_progress_channel(lake, files):
    client = FakeMLClient(lake, execute=False, statuses=["Completed"])
    _runner(client, progress_messages=True).run(_spec(lake, files))
    env = parallel_node(client.jobs.submitted[0][0]).environment_variables
    params = decode_params(env[MESSAGES_ENV])
    assert params["transport"] == "folder" and params["path"].startswith(lake.path("azureml"))
    client2 = FakeMLClient(lake, execute=False, statuses=["Completed"])
    _runner(client2, progress_messages=False).run(_spec(lake, files))
    assert MESSAGES_ENV not in parallel_node(client2.jobs.submitted[0][0]).environment_variables


def test_failed_series_come_back_as_failure_rows_with_their_error(lake, files):
    client = FakeMLClient(lake)
    log = ListLog()
    result = _runner(client).run(_spec(lake, files, {"FAKE_FAIL": "S1/I2,S2/I1", "FAKE_EMPTY": "S1/I3"}),
                                 hooks=RunHooks(log=log))
    assert sorted(result.rows["series_key"]) == ["S1/I1", "S2/I2"]  # S1/I3 ran and returned nothing: not failed
    failures = result.failures.set_index("series_key").sort_index()
    assert list(failures.index) == ["S1/I2", "S2/I1"]
    assert set(failures["error_type"]) == {"ValueError"}
    assert failures.loc["S1/I2", "error_message"] == "boom in S1/I2 (with spaces)"
    assert list(failures["attempts"]) == [2, 2]  # max_retries=1: two attempts each, both reported
    assert list(failures.loc["S2/I1", ["store", "item"]]) == ["S2", "I1"]
    assert "series S1/I2: attempt failed: ValueError" in log.text("warning")


# ---- chunks of series (entry scripts that take many) ------------------------------------------------------
def _chunked(lake, files, env=None, **kw) -> JobSpec:
    return _spec(lake, files, env, multi_series=True, series_per_minibatch=2, **kw)


def test_entry_scripts_that_take_many_series_get_chunks(lake, files):
    client = FakeMLClient(lake)
    log = ListLog()
    result = _runner(client, max_mini_batches=200).run(_chunked(lake, files), hooks=RunHooks(log=log))
    node = parallel_node(client.jobs.submitted[0][0])
    assert node.partition_keys == ["mm_chunk"]
    assert sorted(result.rows["series_key"]) == ALL and result.failures.empty and result.series_done == 5
    # five series, at least two per chunk: three hash buckets; each series ran inside its chunk, not alone
    assert result.tasks == 3 and "as an MLTable of 3 mini-batches" in log.text("info")
    assert result.rows["series_in_mini_batch"].sum() > 5
    assert set(result.rows["key_types"]) == {"str,str"}  # ids from a chunk's rows are strings, as from folders
    assert set(result.rows["rows"]) == {5, 6, 7}  # every series got exactly its own rows
    # the timeout is per series, times the series of the largest chunk
    assert node.retry_settings.timeout == 30 * int(result.rows["series_in_mini_batch"].max())


def test_at_most_about_max_mini_batches_chunks(lake, files):
    client = FakeMLClient(lake)
    result = _runner(client, max_mini_batches=1).run(_chunked(lake, files))
    assert result.tasks == 1 and set(result.rows["series_in_mini_batch"]) == {5}


def test_a_failing_chunk_is_rerun_series_by_series_and_exactly_the_failing_series_is_recorded(lake, files, tmp_path):
    client = FakeMLClient(lake)
    log = ListLog()
    state = tmp_path / "state"
    state.mkdir()
    env = {"FAKE_FAIL": "S1/I2", "FAKE_FLAKY": "S2/I1", "FAKE_STATE_DIR": str(state)}
    result = _runner(client, max_mini_batches=1).run(_chunked(lake, files, env), hooks=RunHooks(log=log))
    assert client.jobs.local_status == "Completed"  # the chunk itself succeeded: Azure ML counts no failure
    assert sorted(result.rows["series_key"]) == ["S1/I1", "S1/I3", "S2/I1", "S2/I2"]  # flaky: passed alone
    assert set(result.rows.set_index("series_key")["series_in_mini_batch"]) == {1}  # rerun one by one
    (failure,) = result.failures.to_dict("records")
    assert failure["series_key"] == "S1/I2" and failure["error_type"] == "ValueError"
    assert failure["error_message"] == "boom in S1/I2 (with spaces)" and "Traceback" in failure["traceback"]
    assert failure["attempts"] == 2 and (failure["store"], failure["item"]) == ("S1", "I2")
    assert "series S1/I2: attempt failed: ValueError" in log.text("warning")


def test_chunk_failures_count_against_the_error_threshold_per_series(lake, files):
    client = FakeMLClient(lake)
    with pytest.raises(ParallelJobError, match="2 failed mini-batches exceed mini_batch_error_threshold=1"):
        _runner(client, max_mini_batches=1).run(_chunked(lake, files, {"FAKE_FAIL": "S1/I1,S2/I2"},
                                                         mini_batch_error_threshold=1))


def test_over_the_error_threshold_the_job_fails_and_the_partial_result_is_kept(lake, files):
    client = FakeMLClient(lake)
    with pytest.raises(ParallelJobError) as err:
        _runner(client).run(_spec(lake, files, {"FAKE_FAIL": "S1/I1"}, mini_batch_error_threshold=0,
                                  max_concurrency=1))
    assert client.jobs.local_status == "Failed"  # what the node did under Azure ML's semantics
    result = err.value.result
    assert result.aborted and "ended Failed" in str(err.value)
    assert set(result.rows["series_key"]) | set(result.failures["series_key"]) == set(ALL)
    assert result.failures.set_index("series_key").loc["S1/I1", "error_type"] == "ValueError"
    assert lake.list("azureml") != []  # a failed batch keeps its staged input for inspection


def test_completed_job_with_more_failures_than_the_threshold_raises(lake, files):
    client = FakeMLClient(lake, execute=False, statuses=["Completed"])  # an empty output: nothing came back
    with pytest.raises(ParallelJobError, match="exceed mini_batch_error_threshold=2") as err:
        _runner(client).run(_spec(lake, files, mini_batch_error_threshold=2))
    assert set(err.value.result.failures["error_type"]) == {"MissingFromOutput"}


def test_a_job_that_ends_without_output_is_a_job_error(lake, files):
    client = FakeMLClient(lake, execute=False, statuses=["Running", "Failed"], write_output=False)
    with pytest.raises(AzureMLJobError, match="ended Failed without an append-row output") as err:
        _runner(client).run(_spec(lake, files))
    assert err.value.job_name == client.jobs.submitted[0][0].name and err.value.studio_url


def test_terminating_the_run_cancels_the_azure_job(lake, files):
    client = FakeMLClient(lake, execute=False, statuses=["Running"])
    asked = []

    def should_cancel() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(AzureMLJobCanceled):
        _runner(client).run(_spec(lake, files), hooks=RunHooks(log=ListLog(), should_cancel=should_cancel))
    assert client.jobs.canceled == [client.jobs.submitted[0][0].name]
    assert client.jobs.downloads == []


def test_an_interrupt_while_waiting_cancels_the_job_and_propagates(lake, files):
    client = FakeMLClient(lake, execute=False, statuses=["Running"])

    def interrupted(seconds):
        raise KeyboardInterrupt

    runner = AzureMLRunner(AzureMLSettings(), ml_client=client, location=LOCATION, sleep=interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run(_spec(lake, files))
    assert client.jobs.canceled == [client.jobs.submitted[0][0].name]


def test_polling_backs_off_and_restarts_on_each_status_change(lake, files):
    client = FakeMLClient(lake, execute=False, statuses=["Queued", *["Running"] * 6, "Completed"])
    sleeps: list[float] = []
    _runner(client, sleeps).run(_spec(lake, files))
    assert sleeps == [5.0, 5.0, 7.5, 11.25, 16.875, 20.0, 20.0]


def test_a_failed_status_poll_is_retried_without_canceling(lake, files):
    client = FakeMLClient(lake, execute=False, statuses=["Running", "Running", "Completed"], failing_gets=[2, 3])
    log = ListLog()
    _runner(client).run(_spec(lake, files), hooks=RunHooks(log=log))
    assert client.jobs.canceled == [] and "polling job" in log.text("warning")


def test_polling_that_keeps_failing_gives_up_and_cancels(lake, files):
    client = FakeMLClient(lake, execute=False, statuses=["Running"], failing_gets=range(2, 100))
    with pytest.raises(ConnectionError):
        _runner(client).run(_spec(lake, files))
    assert client.jobs.canceled == [client.jobs.submitted[0][0].name]


def test_model_registry_trouble_does_not_fail_the_batch(lake, files):
    lines = [t for key in ALL for t in encode_rows(pd.DataFrame([{"series_key": key}]), key)]
    client = FakeMLClient(lake, fail_models=True, execute=False, statuses=["Completed"], lines=lines)
    log = ListLog()
    result = _runner(client).run(_spec(lake, files), hooks=RunHooks(log=log))
    assert len(result.rows) == 5 and "not mirrored to the Azure ML model registry" in log.text("warning")


def test_a_local_lake_stops_with_a_message_naming_storage_lake(lake, files):
    runner = AzureMLRunner(AzureMLSettings(), ml_client=FakeMLClient(lake))
    with pytest.raises(AzureMLConfigError, match="storage.lake is .*abfs://<container>@<account>"):
        runner.run(_spec(lake, files))
    assert lake.list("azureml") == []  # nothing staged


def test_missing_workspace_settings_are_named(lake, files):
    runner = AzureMLRunner(AzureMLSettings(workspace="ws"), location=LOCATION)
    with pytest.raises(AzureMLConfigError, match="azureml.subscription_id, azureml.resource_group"):
        runner.run(_spec(lake, files))


# ---- selected by configuration alone -------------------------------------------------------------------
def _context(status):
    instance = SimpleNamespace(get_run_by_id=lambda run_id: SimpleNamespace(status=status))
    return SimpleNamespace(run=SimpleNamespace(run_id="run-1"), instance=instance, log=ListLog())


def test_runner_kind_azureml_in_the_settings_dispatches_to_the_azureml_runner(lake, files, monkeypatch):
    settings = Settings(runner={"kind": "azureml", "max_retries": 4, "mini_batch_error_threshold": 7},
                        azureml={"compute": "big-cluster", "workspace": "ws"})
    runner = build_resources(settings)["runner"]
    assert runner.kind == "azureml"
    seen = {}

    def fake_run(self, spec, on_progress=None, hooks=None):
        seen.update(settings=self.settings, spec=spec, hooks=hooks)
        return "result"

    monkeypatch.setattr(AzureMLRunner, "run", fake_run)
    context = _context(dg.DagsterRunStatus.CANCELING)
    assert runner.run(_spec(lake, files), context=context) == "result"
    assert seen["settings"].compute == "big-cluster" and seen["settings"].workspace == "ws"
    assert seen["spec"].max_retries == 4 and seen["spec"].mini_batch_error_threshold == 7
    assert seen["hooks"].log is context.log and seen["hooks"].should_cancel() is True
    runner.run(_spec(lake, files), context=_context(dg.DagsterRunStatus.STARTED))
    assert seen["hooks"].should_cancel() is False


def test_runner_resource_with_a_local_lake_fails_naming_storage_lake(lake, files):
    runner = build_resources(Settings(runner={"kind": "azureml"}))["runner"]
    with pytest.raises(dg.Failure, match="storage.lake"):
        runner.run(_spec(lake, files))
