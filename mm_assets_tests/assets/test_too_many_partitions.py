"""Thousands of store partitions make a cycle of many small runs: the ingest and the cycle say so, with the fix."""

from mm_assets.assets.partitions import MANY_RUNS, too_many_partitions
from mm_assets.settings import Settings


def test_many_store_partitions_are_named_with_buckets_to_set():
    settings = Settings.model_validate({"schedule": {"partitions_per_run": 25}})  # one partition per store
    assert too_many_partitions(settings, 25 * MANY_RUNS) is None
    advice = too_many_partitions(settings, 2_500)
    assert advice.startswith("2,500 store partitions make 100 runs of each job a cycle (schedule.partitions_per_run 25)")
    assert "Set partition.buckets (e.g. 64: about 39 stores a partition; new storage" in advice
    wider = Settings.model_validate({"schedule": {"partitions_per_run": 200}})
    assert too_many_partitions(wider, 2_500) is None  # 13 runs
    buckets = Settings.model_validate({"partition": {"buckets": 1000}, "schedule": {"partitions_per_run": 25}})
    assert too_many_partitions(buckets, 1000).startswith("1,000 hash buckets make 40 runs")
    assert "e.g. 16: about 38 stores a partition" in too_many_partitions(settings, 600)
    assert too_many_partitions(Settings(), 2_000) is None  # the default: 100 partitions a run, 20 runs
