"""Workers' progress and failures as dagster-pipes messages, one chunk sequence per worker, merged for the run."""

from __future__ import annotations

import logging

from mm_assets.parallel.azureml import progress
from mm_assets.parallel.azureml.progress import (
    MESSAGES_ENV,
    BlobMessageSource,
    FolderMessageSource,
    ProgressReporter,
    ProgressTracker,
    decode_params,
    encode_params,
    open_channel,
)
from mm_assets_tests.parallel.azureml.fake_azure import FakeBlobServiceClient


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _worker(params, name, clock=None) -> ProgressReporter:
    return ProgressReporter(open_channel(params, name), name, interval_s=10.0, clock=clock or Clock())


def test_params_travel_in_dagster_pipes_encoding():
    params = {"transport": "folder", "path": "/x", "interval": 2.0}
    assert decode_params(encode_params(params)) == params


def test_folder_channel_merges_workers_and_nets_out_retried_successes(tmp_path):
    source = FolderMessageSource(str(tmp_path / "pipes"))
    params = source.params()
    a, b = _worker(params, "node0-1"), _worker(params, "node1-7")
    a.series_done("S1/I1")
    a.attempt_failed("S1/I2", {"store": "S1", "item": "I2"}, ValueError("bad data"))
    b.attempt_failed("S2/I1", {"store": "S2", "item": "I1"}, RuntimeError("flaky"))
    b.series_done("S2/I1")  # the retry succeeded
    b.series_done("S2/I2")
    a.close()
    b.close()
    tracker = ProgressTracker()
    assert tracker.feed(source.read_new())
    assert tracker.done_keys == {"S1/I1", "S2/I1", "S2/I2"}
    assert tracker.failed_keys == {"S1/I2"}
    assert tracker.last_error["S1/I2"]["error_type"] == "ValueError"
    assert "bad data" in tracker.last_error["S1/I2"]["error_message"]
    assert tracker.workers == {"node0-1", "node1-7"}
    assert source.read_new() == []  # every chunk is read once


def test_progress_is_throttled_per_worker(tmp_path):
    source = FolderMessageSource(str(tmp_path / "pipes"))
    clock = Clock()
    reporter = _worker(source.params(), "w", clock)
    for i in range(5):
        reporter.series_done(f"S1/I{i}")
    clock.now = 11.0
    reporter.series_done("S1/I5")  # interval elapsed: one message with the six keys
    reporter.close()  # a last (empty) progress message
    messages = [m["params"]["payload"] for m in source.read_new() if m["method"] == "report_custom_message"]
    assert [len(m["keys"]) for m in messages] == [6, 0]
    assert messages[-1]["done"] == 6


def test_a_partially_written_chunk_is_read_on_a_later_poll(tmp_path):
    source = FolderMessageSource(str(tmp_path / "pipes"))
    folder = tmp_path / "pipes" / "w"
    folder.mkdir(parents=True)
    line = '{"__dagster_pipes_version": "0.1", "method": "report_custom_message", "params": {"payload": ' \
           '{"mm_assets": "progress", "worker": "w", "done": 1, "failed_attempts": 0, "keys": ["S1/I1"]}}}'
    (folder / "1.json").write_text(line[:40])
    assert source.read_new() == []
    (folder / "1.json").write_text(line)
    assert len(source.read_new()) == 1


def test_blob_channel_uses_the_dagster_pipes_writer_and_the_dagster_azure_reader(monkeypatch):
    blob = FakeBlobServiceClient()
    monkeypatch.setattr(progress, "blob_client_factory", lambda url: blob)
    source = BlobMessageSource(blob, blob.url, "lake", "mm/azureml/b1/pipes")
    params = source.params()
    assert params["bucket"] == "lake" and params["key_prefix"] == "mm/azureml/b1/pipes"
    reporter = ProgressReporter.from_environment({MESSAGES_ENV: encode_params(params)})
    reporter.series_done("S1/I1")
    reporter.attempt_failed("S1/I2", {"store": "S1", "item": "I2"}, KeyError("price"))
    reporter.close()
    names = [n for _, n in blob.store]
    assert names and all(n.startswith(f"mm/azureml/b1/pipes/{reporter.worker}/") for n in names)
    assert names[0].endswith("/1.json")  # dagster-pipes chunk naming
    tracker = ProgressTracker()
    tracker.feed(source.read_new())
    assert tracker.done_keys == {"S1/I1"} and tracker.failed_keys == {"S1/I2"}
    source.cleanup()
    assert blob.store == {}


def test_failed_attempts_are_forwarded_to_the_run_log_up_to_a_cap(tmp_path, caplog):
    source = FolderMessageSource(str(tmp_path / "pipes"))
    reporter = _worker(source.params(), "w")
    for i in range(5):
        reporter.attempt_failed(f"S1/I{i}", {}, ValueError(f"bad {i}"))
    reporter.close()
    log = logging.getLogger("test.progress")
    tracker = ProgressTracker(log=log, max_logs=3)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        tracker.feed(source.read_new())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and "series S1/I0: attempt failed: ValueError: bad 0" in warnings[0]
    assert any("not forwarded" in r.getMessage() for r in caplog.records)


def test_no_channel_without_the_bootstrap_variable():
    assert ProgressReporter.from_environment({}) is None
