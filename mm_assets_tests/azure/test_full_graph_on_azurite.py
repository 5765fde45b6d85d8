"""The whole asset graph with the lake in Azure Blob storage (Azurite), results read back with azure-storage-blob.

The settings are the tiny project's with one change: ``storage.lake`` is an ``abfs://`` URI of the production form.
Registries, warehouse and Dagster instance stay local, as in the local end-to-end test. Every asset writes its
files through adlfs, and the runner's worker processes (forkserver) find the lake from the URI and the inherited
``AZURE_STORAGE_CONNECTION_STRING``. Afterwards the official client reads what a user would look at: raw days,
datasets, model bundles (by byte range, as the registry's rows point), the production copies of the champions,
and the predictions that were published to the warehouse. Nothing lands on the local disk, and no log line or
event carries the account key.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import time

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from mm_assets.cycle import period_keys_for, run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.forecasting.models import Forecaster, as_series_model
from mm_assets.ids import series_keys
from mm_assets.lake import Lake
from mm_assets.registry import ModelRegistry
from mm_assets.registry.production import ProductionRegistry
from mm_assets.warehouse import Warehouse

pytestmark = [pytest.mark.azurite, pytest.mark.e2e]


def _event_text(instance: dg.DagsterInstance) -> str:
    """Every message and metadata value Dagster stored for every run (what the UI shows)."""
    parts = []
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            parts.append(entry.user_message or "")
            event = entry.dagster_event
            if event is None:
                continue
            parts.append(event.message or "")
            data = event.event_specific_data
            metadata = getattr(getattr(data, "materialization", None), "metadata", None) or \
                getattr(data, "metadata", None) or {}
            parts.extend(f"{k}={v.value!r}" for k, v in dict(metadata).items())
            error = getattr(data, "error", None)
            if error is not None:
                parts.append(error.to_string())
    return "\n".join(parts)


def test_whole_asset_graph_with_the_lake_on_azure_storage(tiny_project, azure_env, azure_container, tmp_path,
                                                          caplog):
    caplog.set_level(logging.INFO)
    local_settings, spec = tiny_project
    uri = azure_env.lake_uri(azure_container)
    settings = local_settings.model_copy(update={
        "storage": local_settings.storage.model_copy(update={"lake": uri}),
        "promotion": local_settings.promotion.model_copy(update={"min_accuracy": 0.5}),
    })
    # the lake URI is the only difference from the local run's settings (and the gate, as in the local e2e test)
    local = json.loads(local_settings.model_dump_json())
    azure = json.loads(settings.model_dump_json())
    assert {k for k in local if local[k] != azure[k]} == {"storage", "promotion"}
    assert {k for k in local["storage"] if local["storage"][k] != azure["storage"][k]} == {"lake"}

    source = pd.read_sql("select * from sales", sa.create_engine(settings.source.url))
    all_series = set(series_keys(source, ["store", "item"]))
    stores = sorted(source["store"].unique())
    lines: list[str] = []
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        report = run_cycle(build_definitions(settings), instance, settings, log=lines.append)
        seconds = time.perf_counter() - started
        assert report.ok, report.runs
        for asset in ("series_datasets", "trained_models", "production_models", "batch_predictions",
                      "forecast_predictions"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(stores), asset
        events = _event_text(instance)
    print(f"\nfull asset graph with the lake on Azurite: {seconds:.1f}s "
          f"({len(all_series)} series, {len(stores)} stores, {len(report.runs)} runs)")

    assert not (tmp_path / "lake").exists()  # nothing went to the local disk
    service = azure_env.service()
    container = service.get_container_client(azure_container)
    names = sorted(b.name for b in container.list_blobs())
    assert all(name.startswith("mm/") for name in names)

    def read(name: str, offset: int | None = None, length: int | None = None) -> bytes:
        return container.get_blob_client(name).download_blob(offset=offset, length=length).readall()

    # raw_sales: one Parquet blob per day partition, equal to the source rows of that day
    dates = pd.to_datetime(source["date"])
    days = period_keys_for(settings, dates.min(), dates.max())
    raw = [n for n in names if n.startswith("mm/raw/sales/")]
    assert raw == [f"mm/raw/sales/{d}.parquet" for d in days]
    day = days[-1]
    raw_day = pq.read_table(io.BytesIO(read(f"mm/raw/sales/{day}.parquet"))).to_pandas()
    expected_day = source[pd.to_datetime(source["date"]).dt.strftime("%Y-%m-%d") == day]
    assert len(raw_day) == len(expected_day) and set(raw_day["item"]) == set(expected_day["item"])

    # series_datasets: one sorted blob per store holding every series of it
    for store in stores:
        data = pq.read_table(io.BytesIO(read(f"mm/datasets/{store}.parquet"))).to_pandas()
        assert set(data["store"]) == {store}
        assert set(data["item"]) == set(source.loc[source["store"] == store, "item"])

    # trained models: every registry row points at bytes in the lake; the official client reads them by range
    registry = ModelRegistry(settings.storage.registry, Lake(uri))
    latest = registry.latest()
    assert set(latest["series_key"]) == all_series
    prefix = f"abfs://{azure_container}@devstoreaccount1.dfs.core.windows.net/mm/models/"
    assert latest["artifact_uri"].str.startswith(prefix).all()
    for row in latest.itertuples():
        blob = read(row.artifact_uri.split("@devstoreaccount1.dfs.core.windows.net/", 1)[1],
                    int(row.artifact_offset), int(row.artifact_size))
        model = as_series_model(pickle.loads(blob), row.series_key.split("/"))  # a global model: its series' view
        assert isinstance(model, Forecaster)
        assert type(pickle.loads(blob)) is type(registry.load_model(row._asdict()))

    # the gate copied the champions' bytes into production/models/ of the same lake
    champions = ProductionRegistry(settings.storage.production_registry).current()
    assert len(champions) > 0
    assert champions["artifact_uri"].str.startswith(
        f"abfs://{azure_container}@devstoreaccount1.dfs.core.windows.net/mm/production/models/").all()
    first = champions.iloc[0]
    champion = pickle.loads(read(first["artifact_uri"].split(".core.windows.net/", 1)[1],
                                 int(first["artifact_offset"]), int(first["artifact_size"])))
    assert isinstance(as_series_model(champion, first["series_key"].split("/")), Forecaster)
    # a global model that many champions of one gate run share is copied once into that run's bundle
    shared = champions[champions["model_type"] == "lightgbm"]
    assert (shared.groupby("artifact_uri")["artifact_offset"].nunique() == 1).all()

    # batch predictions in the lake are what the warehouse published: every series, every horizon step
    published = Warehouse(settings.storage.warehouse, ["store", "item"]).read_predictions()
    assert len(published) == len(all_series) * settings.horizon
    for store in stores:
        in_lake = pq.read_table(io.BytesIO(read(f"mm/predictions/{store}.parquet"))).to_pandas()
        in_wh = published[published["store"] == store]
        merged = in_lake.merge(in_wh, on=["store", "item", "ds"], suffixes=("_lake", "_wh"))
        assert len(merged) == len(in_wh) == len(in_lake)
        assert (merged["yhat_lake"] - merged["yhat_wh"]).abs().max() < 1e-9

    # no secret in any log line or stored event
    logs = "\n".join([events, caplog.text, *lines])
    assert azure_env.key not in logs and "AccountKey=" not in logs
