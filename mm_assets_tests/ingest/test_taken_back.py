"""Period files after the source's newest date: those with rows are read again once, the empty ones removed."""

from __future__ import annotations

import pandas as pd

from mm_assets.cycle import periods_taken_back, removed_after
from mm_assets.ingest.periods import RAW_FOLDER
from mm_assets.lake import Lake
from mm_assets_tests.conftest import tiny_settings

KEYS = ["2025-12-01", "2025-12-02", "2025-12-03"]  # the source's periods


def _write(lake: Lake, key: str, rows: int) -> None:
    frame = pd.DataFrame({"date": pd.to_datetime([key] * rows), "store": ["S1"] * rows, "sales": [1.0] * rows})
    lake.write_parquet(frame, *RAW_FOLDER, f"{key}.parquet")


def _stored(lake: Lake) -> list[str]:
    return [n.removesuffix(".parquet") for n in lake.list(*RAW_FOLDER, suffix=".parquet")]


def test_empty_periods_after_the_source_are_removed_not_read_again_every_cycle(tmp_path):
    """A sale mistyped into the future, since fixed, left empty period files up to its date: every cycle read
    them all again ("taken back") and kept them. Now they are not read, and the cycle removes them, saying so."""
    settings = tiny_settings(tmp_path)
    lake = Lake(settings.storage.lake)
    for key in KEYS:
        _write(lake, key, 2)
    empty = ["2025-12-04", "2025-12-05", "2025-12-06"]
    for key in empty:
        _write(lake, key, 0)
    lines: list[str] = []
    assert periods_taken_back(settings, KEYS, lake, lines.append) == []
    assert removed_after(lake, KEYS[-1], lines.append) == empty
    assert _stored(lake) == KEYS
    assert lines == [lines[0]] and lines[0].startswith(
        "note: removed 3 empty period files after the source's newest period 2025-12-03 (2025-12-04 .. 2025-12-06)")
    assert removed_after(lake, KEYS[-1], lines.append) == [] and len(lines) == 1


def test_periods_after_the_source_are_read_again_up_to_the_newest_with_rows(tmp_path):
    """A load rolled back: the periods up to the newest file with rows are read again (one range), once; written
    again without rows, they are removed with the empty ones after them."""
    settings = tiny_settings(tmp_path)
    lake = Lake(settings.storage.lake)
    for key in KEYS:
        _write(lake, key, 2)
    _write(lake, "2025-12-04", 0)
    _write(lake, "2025-12-05", 2)
    _write(lake, "2025-12-06", 0)
    lines: list[str] = []
    assert periods_taken_back(settings, KEYS, lake, lines.append) == ["2025-12-04", "2025-12-05"]
    assert lines[0].startswith("note: the lake holds 2 periods after the source's newest date (2025-12-04 .. 2025-12-05)")
    _write(lake, "2025-12-05", 0)  # as the ingest writes it again: the source has no row there
    assert removed_after(lake, KEYS[-1], lines.append) == ["2025-12-04", "2025-12-05", "2025-12-06"]
    assert periods_taken_back(settings, KEYS, lake, lines.append) == [] and _stored(lake) == KEYS
