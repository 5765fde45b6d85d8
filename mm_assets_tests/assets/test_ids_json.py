"""The registry's ``ids`` tags: the JSON pandas writes for each row, whatever the ids hold."""

from __future__ import annotations

import json

import pandas as pd

from mm_assets.assets.fanout import ids_json
from mm_assets.settings import Settings


def test_ids_json_is_each_rows_json_for_awkward_ids():
    settings = Settings.model_validate({"columns": {"ids": ["store", "item"]}})
    frame = pd.DataFrame({"store": ["S/01", 'q"u', "é\nx", "a\\b", "plain"], "item": ["I1", "I2", "I3", "I4", "I5"],
                          "other": [1, 2, 3, 4, 5]}, index=[10, 11, 12, 13, 14])
    out = ids_json(frame, settings)
    assert out.index.equals(frame.index)
    assert list(out) == [row.to_json() for _, row in frame[["store", "item"]].iterrows()]
    assert [json.loads(s) for s in out] == frame[["store", "item"]].to_dict("records")
    empty = ids_json(frame.iloc[:0], settings)
    assert len(empty) == 0 and empty.index.equals(frame.index[:0])
