"""The daily schedule and the sensors of the daily cycle, evaluated against a real temporary instance; the
instance's run retries, from the project's local instance (mm_assets/local_instance.yaml)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from mm_assets.automation import batches, contiguous_batches, range_tags
from mm_assets.definitions import build_definitions
from mm_assets.settings import Settings
from mm_assets_tests.conftest import tiny_settings


@pytest.fixture
def defs_and_settings(tmp_path):
    settings = tiny_settings(tmp_path, schedule={"partitions_per_run": 2})
    return build_definitions(settings), settings


def test_batches_and_range_tags():
    assert batches(["a", "b", "c", "d", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]
    tags = range_tags(["S01", "S02", "S03"])
    assert tags == {"dagster/asset_partition_range_start": "S01", "dagster/asset_partition_range_end": "S03"}


def test_daily_schedule_requests_the_last_complete_day(defs_and_settings):
    defs, _ = defs_and_settings
    schedule = defs.resolve_schedule_def("ingest_schedule")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 6, 15, 3, 0, tzinfo=dt.UTC),
            repository_def=defs.get_repository_def(),
        )
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.partition_key == "2026-06-14"
    assert request.run_key == "2026-06-14"


def test_the_schedule_reads_again_the_days_a_store_had_not_reported(defs_and_settings):
    """The lake holds the 12th and 13th with S02's rows still its plan (no sales: it had not reported them): the
    tick of the 14th reads from the 12th, where S02's sales may have come since. Days whose every row has its
    sales are not read again."""
    import numpy as np
    import pandas as pd

    from mm_assets.ingest.periods import raw_file
    from mm_assets.lake import Lake

    defs, settings = defs_and_settings
    schedule = defs.resolve_schedule_def("ingest_schedule")
    lake = Lake(settings.storage.lake)
    for day, late in (("2026-06-11", False), ("2026-06-12", True), ("2026-06-13", True)):
        rows = pd.DataFrame({"date": pd.Timestamp(day), "store": ["S01", "S02"], "item": "I1",
                             "sales": [3.0, np.nan if late else 2.0], "price": 1.0, "promo": 0.0})
        lake.write_parquet(rows, raw_file(day))

    with dg.instance_for_test() as instance:
        def tick():
            context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=dt.datetime(2026, 6, 15, 3, 0, tzinfo=dt.UTC),
                repository_def=defs.get_repository_def())
            return schedule.evaluate_tick(context).run_requests[0]

        request = tick()
        assert request.run_key == "2026-06-14" and request.partition_key is None
        assert (request.tags["dagster/asset_partition_range_start"],
                request.tags["dagster/asset_partition_range_end"]) == ("2026-06-12", "2026-06-14")
        lake.write_parquet(pd.DataFrame({"date": pd.Timestamp("2026-06-13"), "store": ["S01", "S02"], "item": "I1",
                                         "sales": [3.0, 4.0], "price": 1.0, "promo": 0.0}), raw_file("2026-06-13"))
        assert tick().partition_key == "2026-06-14"  # S02 reported: nothing waits
        # a series held since the first period is not read again every day (after a full read, all of history)
        from mm_assets.ingest.held import HELD_FILE, OUTSTANDING_COLUMNS

        held = dict.fromkeys(OUTSTANDING_COLUMNS, "x") | {"bad_rows": 1, "held_from": "2026-06-01",
                                                          "held_to": "2026-06-13"}
        lake.write_parquet(pd.DataFrame([held]), *HELD_FILE)
        assert tick().partition_key == "2026-06-14"


def test_sensor_requests_every_store_in_batches_once_per_ingest(defs_and_settings):
    defs, _ = defs_and_settings
    sensor = defs.resolve_sensor_def("train_after_ingest")
    with dg.instance_for_test() as instance:
        # nothing ingested yet: no request
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        assert not sensor.evaluate_tick(context).run_requests

        instance.add_dynamic_partitions("stores", ["S01", "S02", "S03", "S04", "S05"])
        instance.report_runless_asset_event(dg.AssetMaterialization("raw_sales", partition="2026-06-14"))
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        result = sensor.evaluate_tick(context)
        ranges = [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                  for r in result.run_requests]
        assert ranges == [("S01", "S02"), ("S03", "S04"), ("S05", "S05")]
        assert len({r.run_key for r in result.run_requests}) == 3

        # same cursor, no new materialization: nothing more
        context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor)
        assert not sensor.evaluate_tick(context).run_requests

        # a new ingest: a new round with new run keys
        instance.report_runless_asset_event(dg.AssetMaterialization("raw_sales", partition="2026-06-15"))
        context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor)
        again = sensor.evaluate_tick(context).run_requests
        assert len(again) == 3
        assert not {r.run_key for r in again} & {r.run_key for r in result.run_requests}


def test_sensor_skips_stores_already_retrained_after_the_ingest(defs_and_settings):
    defs, _ = defs_and_settings
    sensor = defs.resolve_sensor_def("train_after_ingest")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["S01", "S02", "S03"])
        instance.report_runless_asset_event(dg.AssetMaterialization("raw_sales", partition="2026-06-14"))
        # S01 and S02 were retrained after that ingest (as `mm-assets cycle` does): only S03 is requested
        for store in ("S01", "S02"):
            instance.report_runless_asset_event(dg.AssetMaterialization("trained_models", partition=store))
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert [r.tags["dagster/asset_partition_range_start"] for r in result.run_requests] == ["S03"]
        instance.report_runless_asset_event(dg.AssetMaterialization("trained_models", partition="S03"))
        instance.report_runless_asset_event(dg.AssetMaterialization("raw_sales", partition="2026-06-15"))
        for store in ("S01", "S02", "S03"):
            instance.report_runless_asset_event(dg.AssetMaterialization("trained_models", partition=store))
        skipped = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor)
        )
        assert not skipped.run_requests and "retrained" in (skipped.skip_message or "")


def test_an_ingest_that_rewrote_nothing_retrains_only_the_stores_never_trained(defs_and_settings):
    """A backfill of periods whose rows came back the same (every period file and the plan ``unchanged``) would
    retrain every store on the same rows: only a store never trained is requested, and the tick says why. A
    backfill in which one period or the plan changed retrains every store."""
    defs, _ = defs_and_settings
    sensor = defs.resolve_sensor_def("train_after_ingest")

    def ingested(files: list[str], plan: str | None = None) -> None:
        for n, file in enumerate(files):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                "raw_sales", partition=f"2026-06-{10 + n:02d}",
                metadata={"file": file, **({"plan_file": plan} if plan and n == len(files) - 1 else {})}))

    def stores(result) -> list[str]:
        return [s for start, end in _ranges(result) for s in ("S01", "S02", "S03") if start <= s <= end]

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["S01", "S02", "S03"])
        ingested(["new", "new"], plan="new")
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert stores(first) == ["S01", "S02", "S03"]
        for store in ("S01", "S02"):  # S03's training never happened
            instance.report_runless_asset_event(dg.AssetMaterialization("trained_models", partition=store))
        ingested(["unchanged"] * 3, plan="unchanged")
        same = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs,
                                                            cursor=first.cursor))
        assert stores(same) == ["S03"]
        for store in ("S01", "S02", "S03"):
            instance.report_runless_asset_event(dg.AssetMaterialization("trained_models", partition=store))
        ingested(["unchanged"] * 2)
        quiet = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=same.cursor))
        assert not quiet.run_requests and "rewrote no period file and no plan" in (quiet.skip_message or "")
        # days before the data starts, materialized from the UI's "missing" partitions: new files of no rows
        for n in range(2):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                "raw_sales", partition=f"2024-02-0{n + 1}", metadata={"file": "new", "rows": 0}))
        empty = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=quiet.cursor))
        assert not empty.run_requests and "rewrote no period file" in (empty.skip_message or "")
        quiet = empty
        for files, plan in ((["unchanged", "rewritten", "unchanged"], None), (["unchanged"], "rewritten"),
                            (["late_sales"], "unchanged"), (["new"], None)):  # a new period with its rows
            ingested(files, plan)
            changed = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs,
                                                                   cursor=quiet.cursor))
            assert stores(changed) == ["S01", "S02", "S03"], (files, plan)
            quiet = changed
            for store in ("S01", "S02", "S03"):
                instance.report_runless_asset_event(dg.AssetMaterialization("trained_models", partition=store))


def _ranges(result):
    return [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
            for r in result.run_requests]


@pytest.mark.parametrize("sensor_name, upstream, downstream", [
    ("promote_after_training", "trained_models", "production_models"),
    ("publish_after_scoring", "batch_predictions", "forecast_predictions"),
])
def test_partition_sensor_requests_exactly_the_new_stores_once(defs_and_settings, sensor_name, upstream,
                                                               downstream):
    defs, _ = defs_and_settings  # partitions_per_run = 2
    sensor = defs.resolve_sensor_def(sensor_name)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["S01", "S02", "S03", "S04", "S05", "S06"])
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert not first.run_requests

        for store in ("S01", "S02", "S03", "S05"):
            instance.report_runless_asset_event(dg.AssetMaterialization(upstream, partition=store))
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        # exactly those stores, batched by 2 and contiguous (S04 was not materialized: S05 runs alone)
        assert _ranges(result) == [("S01", "S02"), ("S03", "S03"), ("S05", "S05")]
        assert len({r.run_key for r in result.run_requests}) == 3

        # the same cursor (also after a daemon restart, which re-reads the stored cursor): nothing twice
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor)
        )
        assert not again.run_requests

        # a new materialization of one store: only that store; one handled downstream already: skipped
        instance.report_runless_asset_event(dg.AssetMaterialization(upstream, partition="S06"))
        instance.report_runless_asset_event(dg.AssetMaterialization(upstream, partition="S02"))
        instance.report_runless_asset_event(dg.AssetMaterialization(downstream, partition="S02"))
        later = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor)
        )
        assert _ranges(later) == [("S06", "S06")]
        assert not {r.run_key for r in later.run_requests} & {r.run_key for r in result.run_requests}
        assert int(later.cursor) > int(result.cursor)


def test_contiguous_batches():
    def limits(partitions: int, rows: int = 10**9) -> Settings:
        return Settings.model_validate({"schedule": {"partitions_per_run": partitions, "rows_per_run": rows}})

    order = ["a", "b", "c", "d", "e", "f", "g"]
    assert contiguous_batches({"a", "b", "c", "e", "g"}, order, limits(2), {}) == [["a", "b"], ["c"], ["e"], ["g"]]
    assert contiguous_batches(set(), order, limits(3), {}) == []
    assert contiguous_batches(set(order), order, limits(3), {}) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    # by rows: partitions join a run while their rows fit; one above the limit runs alone
    rows = {"a": 40, "b": 40, "c": 30, "d": 500, "e": 10, "f": 10, "g": 10}
    assert contiguous_batches(set(order), order, limits(100, 100), rows) == [
        ["a", "b"], ["c"], ["d"], ["e", "f", "g"]]
    assert contiguous_batches(set(order), order, limits(2, 100), rows) == [
        ["a", "b"], ["c"], ["d"], ["e", "f"], ["g"]]
    assert contiguous_batches({"a", "b", "d", "e"}, order, limits(100, 80), rows) == [["a", "b"], ["d"], ["e"]]


class Webhook:
    """A local HTTP endpoint that keeps the JSON bodies posted to it."""

    def __init__(self):
        import http.server
        import json
        import threading

        self.received: list[dict] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=secret"


def test_an_ingest_that_held_series_back_is_alerted_though_it_succeeded(tmp_path):
    import sqlalchemy as sa

    from mm_assets.demo.generator import DemoSpec, write_source
    from mm_assets_tests.conftest import TINY_END

    hook = Webhook()
    try:
        settings = tiny_settings(tmp_path, operations={"alert_webhook": hook.url})
        write_source(DemoSpec(stores=3, items=4, days=30, end_date=TINY_END, seed=7), url=settings.source.url)
        defs = build_definitions(settings)
        sensor = defs.resolve_sensor_def("alert_on_held_series")
        days = [str(d.date()) for d in pd.date_range(TINY_END - dt.timedelta(days=3), TINY_END)]

        def ingest_and_sense(instance):
            result = defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, tags=range_tags(days))
            assert result.success
            success = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
            sensor(dg.build_run_status_sensor_context(sensor_name="alert_on_held_series", dagster_instance=instance,
                                                      dagster_run=result.dagster_run, dagster_event=success))
            return result

        def held_check(result) -> dg.AssetCheckEvaluation:
            return next(c for c in result.get_asset_check_evaluations() if c.check_name == "no_rows_held_back")

        with dg.instance_for_test() as instance:
            clean = ingest_and_sense(instance)
            assert held_check(clean).passed
            assert hook.received == []  # a clean ingest alerts nobody
            # the run's figures are one observation; each period keeps its own (they were copied onto every
            # period: a full re-ingest's hundreds of periods a day)
            periods = [e.event_specific_data.materialization for e in clean.all_events
                       if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION]
            assert len(periods) == len(days) and all("batch_rows" not in m.metadata and "rows" in m.metadata
                                                     for m in periods)
            (observation,) = clean.asset_observations_for_node("raw_sales")
            assert observation.metadata["batch_periods"].value == len(days)
            with sa.create_engine(settings.source.url).begin() as conn:
                conn.exec_driver_sql(f"UPDATE sales SET sales = NULL WHERE date LIKE '{TINY_END}%' AND store = 'S02' "
                                     "AND item = 'I003'")
            result = ingest_and_sense(instance)
        check = held_check(result)  # the UI shows it on raw_sales too (a store id may name no partition)
        assert not check.passed and check.description.startswith("1 series held back for bad rows (S02/I003;")
        assert len(hook.received) == 1
        alert = hook.received[0]
        assert alert["run_id"] == result.run_id and alert["series_held_back"] == 1 and alert["series"] == ["S02/I003"]
        assert "1 series held back for bad rows" in alert["text"] and "past rows have no value" in alert["text"]
        assert "First: column" in alert["text"] and "First: First" not in alert["text"]
    finally:
        hook.server.shutdown()


def test_run_failure_sensor_posts_to_the_webhook(tmp_path):
    hook = Webhook()
    try:
        settings = tiny_settings(tmp_path, operations={"alert_webhook": hook.url})
        defs = build_definitions(settings)
        sensor = defs.resolve_sensor_def("alert_on_run_failure")

        @dg.op
        def boom():
            raise RuntimeError("kaput")

        @dg.job
        def failing_job():
            boom()

        with dg.instance_for_test() as instance:
            result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
            assert not result.success
            failure_event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
            context = dg.build_run_status_sensor_context(
                sensor_name="alert_on_run_failure", dagster_instance=instance, dagster_run=result.dagster_run,
                dagster_event=failure_event,
            ).for_run_failure()
            sensor(context)
        assert len(hook.received) == 1
        alert = hook.received[0]
        assert alert["job"] == "failing_job" and alert["run_id"] == result.run_id
        assert alert["failed_steps"] == ["boom"]
        assert "mm-assets run failed: failing_job" in alert["text"]
    finally:
        hook.server.shutdown()


def test_the_partition_range_tags_are_dagsters_own():
    """The sensors spell the range tags out instead of importing dagster's private module: this keeps them equal."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from mm_assets import automation

    assert automation.ASSET_PARTITION_RANGE_START_TAG == ASSET_PARTITION_RANGE_START_TAG
    assert automation.ASSET_PARTITION_RANGE_END_TAG == ASSET_PARTITION_RANGE_END_TAG



def test_every_job_asks_dagster_to_retry_crashes_only():
    """A run that failed in a step is not relaunched, whatever the instance (Azure's chart cannot say it)."""
    from dagster._core.storage.tags import RETRY_ON_ASSET_OR_OP_FAILURE_TAG

    from mm_assets import automation
    from mm_assets.settings import Settings

    assert list(automation.CRASHES_ONLY) == [RETRY_ON_ASSET_OR_OP_FAILURE_TAG]
    settings = Settings()
    for job in (*automation.build_jobs(settings), automation.build_backtest_job(settings)):
        assert job.tags[RETRY_ON_ASSET_OR_OP_FAILURE_TAG] == "false", job.name


# --- work another run has in hand, and runs that ended without doing it -------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _repo_run_retries() -> dict:
    return yaml.safe_load((ROOT / "mm_assets" / "local_instance.yaml").read_text())["run_retries"]


def _job_run(instance, job_name, stores, materialize=(), fail=False, tags=None):
    """Execute a stand-in for ``job_name`` in process over ``stores`` (registered like the cycle's runs): it
    materializes ``materialize`` ((asset, partition) pairs), then fails in its step if ``fail``."""

    @dg.op(name="work")
    def work():
        for asset, partition in materialize:
            yield dg.AssetMaterialization(asset, partition=partition)
        if fail:
            raise RuntimeError("bad rows in the source")
        yield dg.Output(None)

    job = dg.GraphDefinition(name=job_name, node_defs=[work]).to_job()
    return job.execute_in_process(instance=instance, tags={**range_tags(stores), **(tags or {})},
                                  raise_on_error=False)


def _launched_run(instance, job_name, stores, status=dg.DagsterRunStatus.STARTED, launched=True):
    """A run as the daemon launches it (it has a code origin, so Dagster's run retries can relaunch it), or, with
    ``launched=False``, as `mm-assets cycle` registers one it executes in its own process."""
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.test_utils import create_run_for_test

    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("mm_assets"), "__repository__"),
                             job_name) if launched else None
    return create_run_for_test(instance, job_name=job_name, status=status, tags=range_tags(stores),
                               remote_job_origin=origin)


def _tick(sensor, instance, defs, cursor=None):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor))


def _pending(result) -> set[str]:
    from mm_assets.automation import load_cursor

    return set(load_cursor(result.cursor)[1])


def test_stores_of_a_train_run_in_progress_wait_and_are_requested_if_it_crashes(defs_and_settings):
    defs, _ = defs_and_settings  # partitions_per_run = 2
    sensor = defs.resolve_sensor_def("train_after_ingest")
    with dg.instance_for_test(overrides={"run_retries": _repo_run_retries()}) as instance:
        instance.add_dynamic_partitions("stores", ["S01", "S02", "S03", "S04"])
        instance.report_runless_asset_event(dg.AssetMaterialization("raw_sales", partition="2026-06-14"))
        running = _launched_run(instance, "train_job", ["S01", "S02"], launched=False)  # the cycle's, going

        first = _tick(sensor, instance, defs)
        assert _ranges(first) == [("S03", "S04")]  # not S01..S02: the run in progress has them
        assert _pending(first) == {"S01", "S02"}
        again = _tick(sensor, instance, defs, first.cursor)
        assert not again.run_requests and "covered by run" in again.skip_message and _pending(again) == {"S01", "S02"}

        # the run was killed: the fail_dead_runs sensor marks it failed (no step failed) -> its stores are requested
        instance.report_run_failed(instance.get_run_by_id(running.run_id), "its process is gone")
        after = _tick(sensor, instance, defs, again.cursor)
        assert _ranges(after) == [("S01", "S02")]
        assert not _pending(after) and not {r.run_key for r in after.run_requests} & {r.run_key for r in first.run_requests}
        # requested once: the next tick has nothing left
        assert not _tick(sensor, instance, defs, after.cursor).run_requests


def test_stores_whose_covering_run_failed_on_its_data_are_not_requested_again(defs_and_settings):
    defs, _ = defs_and_settings
    sensor = defs.resolve_sensor_def("promote_after_training")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["S01", "S02", "S03"])
        trained = _job_run(instance, "train_job", ["S01", "S03"],
                           materialize=[("trained_models", s) for s in ("S01", "S02", "S03")])
        assert trained.success
        promoting = _launched_run(instance, "promote_job", ["S01", "S02"], status=dg.DagsterRunStatus.QUEUED)
        first = _tick(sensor, instance, defs)
        assert _ranges(first) == [("S03", "S03")] and _pending(first) == {"S01", "S02"}
        # the queued run ran and failed in its step (bad data, a failed blocking check): it would fail again
        instance.delete_run(promoting.run_id)
        failed = _job_run(instance, "promote_job", ["S01", "S02"], fail=True)
        assert instance.get_run_by_id(failed.run_id).tags["dagster/failure_reason"] == "STEP_FAILURE"
        after = _tick(sensor, instance, defs, first.cursor)
        assert not after.run_requests and _pending(after) == {"S01", "S02"}  # named on every tick, not requested
        assert "failed in a step" in after.skip_message and "re-execute it" in after.skip_message
        again = _tick(sensor, instance, defs, after.cursor)
        assert not again.run_requests and "2 stores S01..S02 not requested again" in again.skip_message
        # re-executed once its cause was fixed: handled, and no longer named
        _job_run(instance, "promote_job", ["S01", "S02"], materialize=[("production_models", s) for s in ("S01", "S02")])
        done = _tick(sensor, instance, defs, again.cursor)
        assert not done.run_requests and not _pending(done) and "failed in a step" not in (done.skip_message or "")


def test_a_run_that_trains_and_promotes_a_store_is_not_followed_by_a_second_gate_run(defs_and_settings):
    """An operator materializes the chain of one store from the UI (one run: datasets .. batch_predictions): its
    trained_models event is the promote sensor's to react to, yet the same run promotes the store after it."""
    import time

    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.test_utils import create_run_for_test

    defs, _ = defs_and_settings
    sensor = defs.resolve_sensor_def("promote_after_training")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["S01", "S02", "S03"])
        chain = create_run_for_test(
            instance, job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": "S03"},
            asset_selection=frozenset(dg.AssetKey(k) for k in ("trained_models", "production_models")))

        def materialized(asset):
            event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, job_name=chain.job_name,
                                 event_specific_data=StepMaterializationData(
                                     dg.AssetMaterialization(asset, partition="S03")))
            instance.store_event(EventLogEntry(error_info=None, level="debug", user_message="", run_id=chain.run_id,
                                               timestamp=time.time(), dagster_event=event))

        time.sleep(1.1)  # trained a while after the run began
        materialized("trained_models")
        first = _tick(sensor, instance, defs)
        assert not first.run_requests and _pending(first) == {"S03"} and "covered by run" in first.skip_message
        materialized("production_models")  # the same run promotes it
        instance.report_run_failed(instance.get_run_by_id(chain.run_id), "done")  # ended (how does not matter)
        after = _tick(sensor, instance, defs, first.cursor)
        assert not after.run_requests and not _pending(after)


def test_a_crashed_run_that_dagster_retries_is_waited_for_not_requested_twice(defs_and_settings, monkeypatch):
    defs, _ = defs_and_settings
    sensor = defs.resolve_sensor_def("publish_after_scoring")
    with dg.instance_for_test(overrides={"run_retries": _repo_run_retries()}) as instance:
        instance.add_dynamic_partitions("stores", ["S01", "S02"])
        for store in ("S01", "S02"):
            instance.report_runless_asset_event(dg.AssetMaterialization("batch_predictions", partition=store))
        crashed = _launched_run(instance, "publish_job", ["S01", "S02"])
        instance.report_run_failed(crashed, "its process is gone")  # as fail_dead_runs reports a killed run
        assert instance.get_run_by_id(crashed.run_id).tags["dagster/will_retry"] == "true"
        first = _tick(sensor, instance, defs)
        assert not first.run_requests and _pending(first) == {"S01", "S02"} and "to be retried" in first.skip_message
        # a retry the daemon never makes (its code location gone) is not waited for forever
        monkeypatch.setattr("mm_assets.automation.RETRY_WAIT_SECONDS", 0)
        assert _ranges(_tick(sensor, instance, defs, first.cursor)) == [("S01", "S02")]
        monkeypatch.undo()
        # the retry (same tags, so the same stores) publishes them: nothing is requested
        for store in ("S01", "S02"):
            instance.report_runless_asset_event(dg.AssetMaterialization("forecast_predictions", partition=store))
        after = _tick(sensor, instance, defs, first.cursor)
        assert not after.run_requests and not _pending(after)
        assert after.cursor.isdigit()  # nothing pending: the plain cursor of before


def test_stores_of_a_cycle_still_going_are_left_to_it_and_requested_if_it_dies(defs_and_settings):
    """`mm-assets cycle` ingests, then trains batch after batch in its own process: between its ingest and a
    batch's train_job no run covers the stores, yet the cycle will train them."""
    from mm_assets.dead_runs import process_tags

    defs, _ = defs_and_settings
    sensor = defs.resolve_sensor_def("train_after_ingest")
    cycle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("stores", ["S01", "S02", "S03", "S04"])
            tags = {**process_tags(), "mm-assets/pid": str(cycle.pid)}
            ingest = _job_run(instance, "ingest_job", ["2026-06-14", "2026-06-14"], tags=tags,
                              materialize=[("raw_sales", "2026-06-14")])
            assert ingest.success
            first = _tick(sensor, instance, defs)
            assert not first.run_requests and _pending(first) == {"S01", "S02", "S03", "S04"}
            assert f"pid {cycle.pid}" in first.skip_message
            # the cycle trains its first batch, then is killed
            _job_run(instance, "train_job", ["S01", "S02"], tags=tags,
                     materialize=[("trained_models", "S01"), ("trained_models", "S02")])
            cycle.kill()
            cycle.wait()
            after = _tick(sensor, instance, defs, first.cursor)
            assert _ranges(after) == [("S03", "S04")] and not _pending(after)
    finally:
        cycle.kill()
        cycle.wait()


def test_the_pending_cursor_round_trips_and_reads_the_old_plain_cursor():
    from mm_assets.automation import dump_cursor, load_cursor

    assert load_cursor(None) == (0, {}) and load_cursor("42") == (42, {})
    assert dump_cursor(42, {}) == "42"
    pending = {"S01": 40, "S02": 40, "S09": 41}
    assert load_cursor(dump_cursor(42, pending)) == (42, pending)


def test_the_instance_retries_crashed_runs_only(tmp_path, monkeypatch):
    """The repository's dagster.yaml, as make demo / make ui install it: Dagster relaunches a run that crashed or
    was killed (up to twice), not one that failed in a step, with the tags that make it cover the same stores."""
    from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
    from dagster._core.storage.tags import TAGS_TO_MAYBE_OMIT_ON_RETRY
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import DEFAULT_REEXECUTION_POLICY

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "mm_assets" / "local_instance.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert "EVENT_LOG_CONSUMER" in instance.get_required_daemon_types()  # the daemon that relaunches them

        crashed = _launched_run(instance, "train_job", ["S01", "S02"])
        instance.report_run_failed(crashed, "its process is gone")  # what fail_dead_runs reports
        assert instance.get_run_by_id(crashed.run_id).tags["dagster/will_retry"] == "true"
        bad_data = _job_run(instance, "train_job", ["S01", "S02"], fail=True)
        assert instance.get_run_by_id(bad_data.run_id).tags["dagster/will_retry"] == "false"
    # a retry re-executes the steps that did not finish, with its parent's tags: the same store range
    assert DEFAULT_REEXECUTION_POLICY == ReexecutionStrategy.FROM_FAILURE
    assert not {"dagster/asset_partition_range_start", "dagster/asset_partition_range_end"} & TAGS_TO_MAYBE_OMIT_ON_RETRY


def test_the_failure_tags_are_dagsters_own():
    from dagster._core.storage import tags

    from mm_assets import automation

    assert automation.FAILURE_REASON_TAG == tags.RUN_FAILURE_REASON_TAG
    assert automation.WILL_RETRY_TAG == tags.WILL_RETRY_TAG
    assert automation.AUTO_RETRY_RUN_ID_TAG == tags.AUTO_RETRY_RUN_ID_TAG
    assert automation.RETRY_NUMBER_TAG == tags.RETRY_NUMBER_TAG
    assert automation.PARTITION_TAG == tags.PARTITION_NAME_TAG


def test_a_failure_alert_says_whether_dagster_relaunches_the_run_or_its_relaunches_are_used_up():
    from types import SimpleNamespace

    from mm_assets.automation import RETRY_NUMBER_TAG, WILL_RETRY_TAG, retry_note

    launched = object()  # a run launched from a code location (not in process)
    assert "Dagster relaunches it" in retry_note(SimpleNamespace(tags={WILL_RETRY_TAG: "true"},
                                                                 remote_job_origin=launched))
    last = retry_note(SimpleNamespace(tags={WILL_RETRY_TAG: "false", RETRY_NUMBER_TAG: "2"},
                                      remote_job_origin=launched))
    assert "relaunches are used up (2 so far" in last and "re-execute it from failure" in last
    assert retry_note(SimpleNamespace(tags={WILL_RETRY_TAG: "false"}, remote_job_origin=launched)) == ""  # first
    assert retry_note(SimpleNamespace(tags={}, remote_job_origin=None)) == ""  # in process: never relaunched


def test_the_schedule_requests_each_period_once_whatever_its_cron(defs_and_settings):
    """Weekly data under the default daily cron: each of a week's ticks asked for the same complete week, and
    Dagster skips a repeated run key only within one scheduled time: seven ingests (and alerts) a week. A run of
    the period that failed is requested again."""
    defs, _ = defs_and_settings
    schedule = defs.resolve_schedule_def("ingest_schedule")
    with dg.instance_for_test() as instance:
        def tick(hour: int):
            return schedule.evaluate_tick(dg.build_schedule_context(
                instance=instance, scheduled_execution_time=dt.datetime(2026, 6, 15, hour, 0, tzinfo=dt.UTC),
                repository_def=defs.get_repository_def()))

        request = tick(3).run_requests[0]
        run = instance.create_run_for_job(defs.resolve_job_def("ingest_job"), tags=request.tags,
                                          status=dg.DagsterRunStatus.SUCCESS)
        later = tick(4)
        assert not later.run_requests
        assert later.skip_message == (f"period 2026-06-14 was requested by an earlier tick (run {run.run_id[:8]}, "
                                      "success); the next period is read once it is complete")
        instance.report_run_failed(run)
        assert tick(5).run_requests[0].tags["mm-assets/scheduled_period"] == "2026-06-14"
