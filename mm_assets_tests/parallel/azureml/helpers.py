"""Small lakes for the azureml tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_assets.lake import Lake

KEYS = ["store", "item"]
FAKE_ENTRY = "mm_assets_tests.parallel.azureml.fake_entry"


def write_store(lake: Lake, store, items: list, int_ids: bool = False, first_rows: int = 5) -> str:
    """One dataset file of ``store`` with one series per item (``first_rows + i`` rows), sorted by the keys."""
    parts = []
    for i, item in enumerate(items):
        n = first_rows + i
        parts.append(pd.DataFrame({
            "store": store,
            "item": item,
            "ds": pd.date_range("2024-01-01", periods=n, freq="D"),
            "y": np.arange(n, dtype=float) + i,
            "price": np.round(np.linspace(1.0, 2.0, n), 2),
        }))
    frame = pd.concat(parts, ignore_index=True)
    if int_ids:
        frame = frame.astype({"store": "int64", "item": "int64"})
    name = f"S{store}" if int_ids else str(store)
    lake.write_parquet(frame, "datasets", f"{name}.parquet")
    return f"datasets/{name}.parquet"
