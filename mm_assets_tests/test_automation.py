"""The daily schedule and the forecast-after-ingest sensor, evaluated against a real temporary instance."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from mm_assets.automation import batches, range_tags
from mm_assets.definitions import build_definitions
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
    schedule = defs.resolve_schedule_def("daily_ingest_schedule")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 6, 15, 3, 0, tzinfo=dt.UTC),
            repository_def=defs.get_repository_def(),
        )
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.partition_key == "2026-06-14"
    assert request.run_key == "2026-06-14"


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
    from mm_assets.automation import contiguous_batches

    order = ["a", "b", "c", "d", "e", "f", "g"]
    assert contiguous_batches({"a", "b", "c", "e", "g"}, order, 2) == [["a", "b"], ["c"], ["e"], ["g"]]
    assert contiguous_batches(set(), order, 3) == []
    assert contiguous_batches(set(order), order, 3) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]


def test_run_failure_sensor_posts_to_the_webhook(tmp_path):
    import http.server
    import json
    import threading

    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook?token=secret"
        settings = tiny_settings(tmp_path, operations={"alert_webhook": url})
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
        assert len(received) == 1
        alert = received[0]
        assert alert["job"] == "failing_job" and alert["run_id"] == result.run_id
        assert alert["failed_steps"] == ["boom"]
        assert "mm-assets run failed: failing_job" in alert["text"]
    finally:
        server.shutdown()


def test_the_partition_range_tags_are_dagsters_own():
    """The sensors spell the range tags out instead of importing dagster's private module: this keeps them equal."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from mm_assets import automation

    assert automation.ASSET_PARTITION_RANGE_START_TAG == ASSET_PARTITION_RANGE_START_TAG
    assert automation.ASSET_PARTITION_RANGE_END_TAG == ASSET_PARTITION_RANGE_END_TAG
