"""A run is held to the settings its first step read: a later step that reads others stops, naming what changed."""

import dagster as dg

from mm_assets.assets.settings_hold import SETTINGS_TAG, held_digest, hold_settings, settings_digest
from mm_assets.settings import Settings

SECRET = "hunter2"


def _settings(**update) -> Settings:
    base = Settings.model_validate({"source": {"url": f"postgresql+psycopg2://planner:{SECRET}@db.example/sales"}})
    return base.model_copy(update=update)


def _two_steps(first: Settings, second: Settings) -> list[dg.AssetsDefinition]:
    """Two steps of one run, each with the settings its process read (a run's steps each load the code location)."""
    @dg.asset
    def trained(context: dg.AssetExecutionContext) -> None:
        hold_settings(context, first)

    @dg.asset(deps=[trained])
    def scored(context: dg.AssetExecutionContext) -> None:
        hold_settings(context, second)

    return [trained, scored]


def _failure(result: dg.ExecuteInProcessResult) -> str:
    events = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in events] == ["scored"]
    return events[0].event_specific_data.error.message


def test_a_step_that_reads_other_settings_stops_and_names_the_fields_that_changed():
    first = _settings()
    edited = first.model_copy(update={"horizon": 14, "model": first.model.model_copy(update={"type": "linear"})})
    with dg.instance_for_test() as instance:
        result = dg.materialize(_two_steps(first, edited), instance=instance, raise_on_error=False)
        assert not result.success
        message = _failure(result)
        assert "horizon: 28 -> 14" in message and 'model.type: "lightgbm" -> "linear"' in message
        assert "source.url" not in message  # unchanged fields are not named
        assert instance.get_run_by_id(result.run_id).tags[SETTINGS_TAG] == settings_digest(first)


def test_the_same_settings_in_every_step_pass_and_a_changed_secret_is_named_masked():
    first = _settings()
    with dg.instance_for_test() as instance:
        result = dg.materialize(_two_steps(first, _settings()), instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).tags[SETTINGS_TAG] == settings_digest(first)

        other_password = _settings(source=first.source.model_copy(
            update={"url": "postgresql+psycopg2://planner:s3cret@db.example/sales"}))
        result = dg.materialize(_two_steps(first, other_password), instance=instance, raise_on_error=False)
        message = _failure(result)
        assert "source.url" in message and SECRET not in message and "s3cret" not in message


def test_a_reexecution_of_some_steps_is_held_to_the_settings_of_the_run_it_continues():
    with dg.instance_for_test() as instance:
        root = instance.add_run(dg.DagsterRun(job_name="cycle", tags={SETTINGS_TAG: "root-digest"}))
        from_failure = instance.add_run(dg.DagsterRun(job_name="cycle", root_run_id=root.run_id,
                                                      parent_run_id=root.run_id, step_keys_to_execute=["scored"]))
        everything_again = instance.add_run(dg.DagsterRun(job_name="cycle", root_run_id=root.run_id,
                                                          parent_run_id=root.run_id))
        assert held_digest(instance, from_failure) == "root-digest"
        assert held_digest(instance, everything_again) is None  # every step runs again: it starts afresh


def test_an_edit_of_the_settings_file_during_a_multiprocess_run_stops_its_next_step(tmp_path, monkeypatch):
    """The real case: each step in a process of its own (Dagster's multiprocess executor), reading the file."""
    settings_file = tmp_path / "mm_assets.yaml"
    settings_file.write_text("horizon: 28\n")
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(settings_file))
    from mm_assets_tests.assets import settings_hold_job

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.execute_job(dg.reconstructable(settings_hold_job.get_job), instance=instance,
                                raise_on_error=False)
        assert not result.success
        failed = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert [e.step_key for e in failed] == ["scored"]
        assert "horizon: 28 -> 14" in failed[0].event_specific_data.error.message
        assert settings_file.read_text() == settings_hold_job.EDITED


def test_every_asset_of_the_project_stops_first_thing_in_a_run_held_to_other_settings(tmp_path):
    """Each asset's step checks the hold before it reads or writes anything (no source, lake or registry here)."""
    from mm_assets.definitions import build_assets, build_definitions
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path)
    defs = build_definitions(settings)
    other = {SETTINGS_TAG: "started-with-other-settings"}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("stores", ["S01"])
        for asset in build_assets(settings):
            partitions = asset.partitions_def
            key = None if partitions is None else partitions.get_partition_keys(dynamic_partitions_store=instance)[-1]
            result = dg.materialize([asset], instance=instance, resources=defs.resources, partition_key=key,
                                    tags=other, raise_on_error=False)
            failed = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
            assert len(failed) == 1, asset.key
            assert "the settings changed since this run started" in failed[0].event_specific_data.error.message, \
                asset.key
