"""A Dagster instance holds one project's stores: a second project (another lake) is refused unless it says its
lake replaced the first for good."""

from __future__ import annotations

import dagster as dg
import pytest

from mm_assets.instance_project import LAKE_KEY, OtherProjectError, instance_lake_note


def test_another_lake_on_an_instance_with_stores_is_refused_and_records_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with dg.instance_for_test() as instance:
        assert instance_lake_note(instance, "data/lake", ["S01"]) is None  # the first use records it
        assert instance_lake_note(instance, str(tmp_path / "data" / "lake"), ["S01"]) is None  # the same folder
        stores = [f"S{i:02d}" for i in range(1, 8)]
        with pytest.raises(OtherProjectError) as refused:
            instance_lake_note(instance, "/tmp/cheese/lake", stores)
        message = str(refused.value)
        assert message.startswith("this Dagster instance (")
        assert f"was last used with the lake {tmp_path / 'data' / 'lake'}, and these settings use /tmp/cheese/lake" \
            in message
        assert "it holds 7 store partitions (S01, S02, S03, S04, S05 and 2 more)" in message
        assert "set DAGSTER_HOME to another folder" in message and "--new-lake" in message
        recorded = instance.run_storage.get_cursor_values({LAKE_KEY})[LAKE_KEY]
        assert recorded == str(tmp_path / "data" / "lake")  # refused: the lake stays the first project's
        with pytest.raises(OtherProjectError):  # refused again, not said once
            instance_lake_note(instance, "/tmp/cheese/lake", stores)
        # the lake replaced the first for good: recorded, said once
        note = instance_lake_note(instance, "/tmp/cheese/lake", stores, new_lake=True)
        assert "--new-lake: this lake is now the instance's" in note
        assert instance_lake_note(instance, "/tmp/cheese/lake", stores) is None
        # an instance without stores takes another lake with a note
        azure = "abfs://lake@acct.dfs.core.windows.net/mm"
        assert "holds no store partitions" in instance_lake_note(instance, azure, [])


def test_the_same_lake_spelt_another_way_is_the_same_lake():
    """``abfss://`` is the usual ADLS spelling of what adlfs reads as ``abfs://``: after a cycle on one, the other
    (or the same URI with a trailing slash) was refused as another project's lake, with advice to use --new-lake."""
    lake = "abfs://lake@devstoreaccount1.dfs.core.windows.net/cheese"
    with dg.instance_for_test() as instance:
        assert instance_lake_note(instance, lake, ["S01"]) is None
        for same in ("abfss://lake@devstoreaccount1.dfs.core.windows.net/cheese", lake + "/",
                     "ABFS://lake@DevStoreAccount1.dfs.core.windows.net/cheese/"):
            assert instance_lake_note(instance, same, ["S01"]) is None, same
        for other in ("abfs://lake@devstoreaccount1.dfs.core.windows.net/Cheese",  # paths keep their case
                      "abfs://lake@devstoreaccount1.dfs.core.windows.net/tuna"):
            with pytest.raises(OtherProjectError):
                instance_lake_note(instance, other, ["S01"])


def test_the_cycle_command_refuses_another_projects_instance_and_runs_nothing(tmp_path, monkeypatch, capsys):
    from mm_assets.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_ASSETS__STORAGE__LAKE", str(tmp_path / "other" / "lake"))
    from mm_assets.cli import _instance

    instance = _instance()
    instance.run_storage.set_cursor_values({LAKE_KEY: str(tmp_path / "first" / "lake")})
    instance.add_dynamic_partitions("stores", ["S01", "S02"])
    runs = instance.get_runs_count()
    assert main(["cycle"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: this Dagster instance (") and "it holds 2 store partitions (S01, S02)" in err
    assert instance.get_runs_count() == runs and not (tmp_path / "other").exists()
