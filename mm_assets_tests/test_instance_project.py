"""A Dagster instance used by a second project (another lake) says so once, naming the stores it holds."""

from __future__ import annotations

import dagster as dg

from mm_assets.instance_project import instance_lake_note


def test_another_lake_on_the_same_instance_is_said_once_with_the_stores_it_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with dg.instance_for_test() as instance:
        assert instance_lake_note(instance, "data/lake", ["S01"]) is None  # the first use records it
        assert instance_lake_note(instance, str(tmp_path / "data" / "lake"), ["S01"]) is None  # the same folder
        stores = [f"S{i:02d}" for i in range(1, 8)]
        note = instance_lake_note(instance, "/tmp/cheese/lake", stores)
        assert note.startswith("this Dagster instance (")
        assert f"was last used with the lake {tmp_path / 'data' / 'lake'}, and these settings use /tmp/cheese/lake" \
            in note
        assert "its 7 store partitions (S01, S02, S03, S04, S05 and 2 more)" in note
        assert "set DAGSTER_HOME to another folder" in note
        assert instance_lake_note(instance, "/tmp/cheese/lake", stores) is None  # a lake that moved: said once
        assert instance_lake_note(instance, "abfs://lake@acct.dfs.core.windows.net/mm", []) is not None
