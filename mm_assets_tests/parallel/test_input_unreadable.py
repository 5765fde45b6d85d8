"""A store's dataset damaged in the lake fails its run with the file and the fix named, not Arrow's bare error."""

from __future__ import annotations

import pandas as pd
import pytest

from mm_assets.lake import Lake
from mm_assets.parallel.contract import InputUnreadable, read_input, stage_whole_batch


def test_a_damaged_dataset_is_named_with_how_to_heal_it(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write_parquet(pd.DataFrame({"store": ["S1"], "item": ["I1"], "y": [1.0]}), "datasets", "S1.parquet")
    lake.write_bytes(b"PAR1 cut short", "datasets", "S2.parquet")
    assert read_input(lake, "datasets/S1.parquet").num_rows == 1
    with pytest.raises(InputUnreadable) as err:
        stage_whole_batch(lake, ["datasets/S1.parquet", "datasets/S2.parquet"], ["store", "item"], "staging/b.parquet")
    message = str(err.value)
    assert message.startswith("datasets/S2.parquet in the lake cannot be read (")
    assert "materialize series_datasets of that store again" in message
    assert not lake.exists("staging", "b.parquet")  # nothing staged from half the batch


def test_a_dataset_never_cut_is_named_as_missing_not_as_unreadable(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    with pytest.raises(InputUnreadable) as err:
        read_input(lake, "datasets/S99.parquet")
    message = str(err.value)
    assert message.startswith("datasets/S99.parquet is not in the lake: the store's dataset was never cut")
    assert "cannot be read" not in message and "Materialize series_datasets of that store" in message
