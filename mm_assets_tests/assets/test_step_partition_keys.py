"""A step reads its store partitions once: every read of ``context.partition_keys`` asks the instance whether the
range's ends are still partitions, and a step needs its keys in several places."""

import dagster as dg

from mm_assets.assets.partitions import step_partition_keys

STORES = dg.DynamicPartitionsDefinition(name="stores")


def test_a_step_asks_the_instance_once_for_its_keys(tmp_path):
    seen = []

    @dg.asset(partitions_def=STORES)
    def per_store(context: dg.AssetExecutionContext) -> None:
        storage = context.instance.event_log_storage
        asked = []
        plain = storage.has_dynamic_partition
        storage.has_dynamic_partition = lambda *a, **k: asked.append(a) or plain(*a, **k)
        try:
            first = step_partition_keys(context)
            first.append("changed by a caller")  # a copy each time: the next reader gets the step's keys
            seen.append((step_partition_keys(context), step_partition_keys(context), len(asked)))
        finally:
            del storage.has_dynamic_partition

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("stores", ["s1", "s2", "s3"])
        for start, end in (("s1", "s2"), ("s2", "s3")):
            assert dg.materialize([per_store], instance=instance, tags={
                "dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}).success
    assert seen == [(["s1", "s2"], ["s1", "s2"], 2), (["s2", "s3"], ["s2", "s3"], 2)]  # the range's two ends, once
