"""The endpoint's default forecast is the one batch scoring publishes: the batch-scoring entry script itself is run
on the same lake and production registry, and every series' online answer must equal its rows.

The series' datasets carry a plan (prices and promotions after the last observation), so a forecast that ignored
it, or started from another origin or history, would differ on the planned days."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from mm_assets.ingest.datasets import dataset_file
from mm_assets.lake import Lake
from mm_assets.parallel import score_entry
from mm_assets.parallel.contract import MANIFEST_COLUMNS, MiniBatchContext
from mm_assets.registry.production import ProductionRegistry
from mm_assets.serving.service import ForecastService
from mm_assets.settings import Settings

from .conftest import CHAMPIONS, HORIZON, SERIES

pytestmark = pytest.mark.serving


def batch_scoring(settings: Settings, monkeypatch, tmp_path) -> pd.DataFrame:
    """``forecast_predictions`` rows as the scoring entry script makes them: the manifest of current champions
    (as ``batch_predictions`` writes it), each partition's dataset scored as one mini-batch (the local runner's
    vectorised path) and series by series (Azure ML's one-series mini-batches)."""
    lake = Lake(settings.storage.lake)
    current = ProductionRegistry(settings.storage.production_registry, lake).current()
    lake.write_parquet(current[MANIFEST_COLUMNS].astype({"version": "int64"}), "manifests", "agreement.parquet")
    monkeypatch.setattr(sys, "argv", ["score_entry", "--settings-json", settings.model_dump_json(),
                                      "--lake-uri", settings.storage.lake, "--run-id", "agreement",
                                      "--manifest", "manifests/agreement.parquet"])
    score_entry.init()
    pieces = []
    for store in sorted({s for s, _ in SERIES}):
        frame = lake.read_parquet(dataset_file(store))
        pieces.append(score_entry.run(frame, MiniBatchContext({})).assign(path="many"))
        for item, rows in frame.groupby("item"):
            context = MiniBatchContext({"store": store, "item": item})
            pieces.append(score_entry.run(rows.reset_index(drop=True), context).assign(path="one"))
    return pd.concat(pieces, ignore_index=True)


def test_the_online_default_forecast_is_batch_scorings_for_every_series(serving_project, monkeypatch, tmp_path):
    _, settings, _, _ = serving_project
    batch = batch_scoring(settings, monkeypatch, tmp_path)
    assert (batch["planned_periods"] == HORIZON).all()  # the plan is in play for every series and period
    reply = ForecastService(settings).handle(json.dumps({"series": [{"store": s, "item": i} for s, i in SERIES]}))
    assert reply.status == 200, reply.body
    for answer in reply.body["forecasts"]:
        key = f"{answer['store']}/{answer['item']}"
        for path, rows in batch[batch["series_key"] == key].groupby("path"):
            rows = rows.sort_values("ds")
            assert len(rows) == HORIZON, (key, path)
            np.testing.assert_allclose([p["yhat"] for p in answer["points"]], rows["yhat"], rtol=1e-9, atol=1e-12,
                                       err_msg=f"{key} ({path})")
            assert [p["ds"] for p in answer["points"]] == [d.date().isoformat() for d in rows["ds"]]
            assert answer["origin"] == pd.Timestamp(rows["origin"].iloc[0]).date().isoformat()
            assert (answer["model_source"], answer["model_type"], answer["model_version"]) == (
                rows["model_source"].iloc[0], rows["model_type"].iloc[0], int(rows["model_version"].iloc[0]))
            assert answer["planned_periods"] == int(rows["planned_periods"].iloc[0])
    assert {a["model_source"] for a in reply.body["forecasts"]} == {"champion", "baseline"}
    assert sorted(f"{a['store']}/{a['item']}" for a in reply.body["forecasts"]
                  if a["model_source"] == "champion") == CHAMPIONS
