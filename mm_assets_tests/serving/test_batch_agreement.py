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
from mm_assets.serving.answer import ALONE_NOTE
from mm_assets.serving.config import ServingConfig
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


def test_a_global_models_default_answer_is_its_batch_forecast_of_whole_stores(tmp_path, monkeypatch):
    """``lightgbm`` reads a store's other products (their prices and promotions on the same dates): batch scoring
    forecasts a store's series together, the endpoint one series alone. Its default answer is the published batch
    forecast of the same model and origin, equal to what the warehouse has."""
    import pickle

    from mm_assets.forecasting.global_training import train_global
    from mm_assets.forecasting.series import SeriesConfig
    from mm_assets.parallel.contract import predictions_file
    from mm_assets.serving.synthetic import (
        add_champions,
        daily_rows,
        plan_rows,
        publish_forecasts,
        write_datasets,
        write_registry,
    )

    from .conftest import END, PLAN_DAYS, serving_settings_dict

    settings = Settings.model_validate({**serving_settings_dict(tmp_path),
                                        "model": {"type": "lightgbm", "params": {"num_boost_round": 40}}})
    series = [("S1", "I1"), ("S1", "I2"), ("S1", "I3"), ("S2", "I1"), ("S2", "I2")]
    frames = [pd.concat([daily_rows(150, k, END), plan_rows(PLAN_DAYS, k, END)], ignore_index=True)
              for k in range(len(series))]
    for store in ("S1", "S2"):  # demand moves with the price against the store's other products (cannibalisation)
        members = [k for k, (s, _) in enumerate(series) if s == store]
        mean = np.mean([frames[k]["price"].to_numpy() for k in members], axis=0)
        for k in members:
            frames[k]["y"] = np.round(frames[k]["y"] * (frames[k]["price"] / mean) ** -4)
    write_datasets(settings, series, frames)
    lake = Lake(settings.storage.lake)
    frame = pd.concat([lake.read_parquet(dataset_file(s)) for s in ("S1", "S2")], ignore_index=True)
    model, outcomes, _ = train_global(frame, ["store", "item"], SeriesConfig.from_settings(settings),
                                      settings.model.params)
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    registered = write_registry(settings, series, [(blob, outcomes[k]) for k in range(len(series))], promote=False)
    first = registered.iloc[0]  # one artifact every series points at, as training registers a global model
    registered = registered.assign(artifact_uri=first["artifact_uri"], artifact_offset=first["artifact_offset"],
                                   artifact_size=first["artifact_size"])
    add_champions(settings.storage.production_registry, registered)
    many = publish_forecasts(settings, ["S1", "S2"])
    batch = batch_scoring(settings, monkeypatch, tmp_path)
    alone = batch[batch["path"] == "one"].set_index(["series_key", "ds"])["yhat"]
    together = many.set_index(["series_key", "ds"])["yhat"]
    assert not np.allclose(alone.loc[together.index], together)  # the store's other products count

    reply = ForecastService(settings).handle(json.dumps({"series": [{"store": s, "item": i} for s, i in series]}))
    assert reply.status == 200, reply.body
    for answer in reply.body["forecasts"]:
        key = f"{answer['store']}/{answer['item']}"
        rows = many[many["series_key"] == key].sort_values("ds")
        assert answer["model_source"] == "champion" and answer["model_type"] == "lightgbm"
        np.testing.assert_allclose([p["yhat"] for p in answer["points"]], rows["yhat"].to_numpy()[:HORIZON],
                                   rtol=1e-12, err_msg=key)
    # a what-if moves the published forecast by the model's response to the plan (on the series alone): the
    # stored plan itself answers the published forecast
    published = many[many["series_key"] == "S1/I1"].sort_values("ds")["yhat"].to_numpy()[:HORIZON]
    plan = lake.read_parquet(dataset_file("S1"))
    planned = plan[(plan["item"] == "I1") & plan["y"].isna()].iloc[:1]
    day, price = pd.Timestamp(planned["ds"].iloc[0]).date().isoformat(), float(planned["price"].iloc[0])

    def what_if(service: ForecastService, value: float) -> np.ndarray:
        reply = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1",
                                                       "regressors": [{"ds": day, "price": value}]}]}))
        assert reply.status == 200, reply.body
        return np.array([p["yhat"] for p in reply.body["forecasts"][0]["points"]])

    service = ForecastService(settings)
    np.testing.assert_array_equal(what_if(service, price), published)  # to the last bit
    cheaper = what_if(service, 0.7 * price)
    assert not np.allclose(cheaper, published)

    # a plan that changes the last period only runs that period's booster: the periods before it are the published
    # forecast to the last bit; a series that had it answers a plan of an earlier period as a fresh one does
    dates = [str(d.date()) for d in sorted(many.loc[many["series_key"] == "S1/I1", "ds"])][:HORIZON]
    assert dates.index(day) < len(dates) - 1

    def plan_at(service: ForecastService, when: str, value: float) -> np.ndarray:
        reply = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1",
                                                       "regressors": [{"ds": when, "price": value}]}]}))
        assert reply.status == 200, reply.body
        return np.array([p["yhat"] for p in reply.body["forecasts"][0]["points"]])

    late = ForecastService(settings)
    last = plan_at(late, dates[-1], 0.5 * price)
    np.testing.assert_array_equal(last[:-1], published[:-1])
    assert last[-1] != published[-1]
    np.testing.assert_array_equal(plan_at(late, day, 0.7 * price), cheaper)
    np.testing.assert_array_equal(plan_at(ForecastService(settings), dates[-1], 0.5 * price), last)

    # a re-published forecast reaches a cached series at its next refresh, though its dataset did not change
    fresh = ForecastService(settings, ServingConfig(refresh_s=0))

    def default(service: ForecastService) -> dict:
        reply = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1"}]}))
        assert reply.status == 200, reply.body
        return reply.body["forecasts"][0]

    assert [p["yhat"] for p in default(fresh)["points"]] == list(published) and default(fresh)["note"] is None
    # a re-cut dataset (here a new plan) is not in the forecast published before it: the series is forecast alone
    original = lake.read_parquet(dataset_file("S1"))
    replanned = original.assign(price=np.where(original["y"].isna(), 0.7 * original["price"], original["price"]))
    lake.write_parquet(replanned, dataset_file("S1"))
    answer = default(fresh)
    assert answer["note"] == ALONE_NOTE and not np.allclose([p["yhat"] for p in answer["points"]], published)
    lake.write_parquet(original, dataset_file("S1"))
    republished = lake.read_parquet(predictions_file("S1"))
    lake.write_parquet(republished.assign(yhat=2 * republished["yhat"]), predictions_file("S1"))
    np.testing.assert_allclose([p["yhat"] for p in default(fresh)["points"]], 2 * published, rtol=1e-12)

    lake.delete(predictions_file("S1"))  # without a published forecast the endpoint has the series alone, and says so
    assert default(fresh)["note"] == ALONE_NOTE
    alone_service = ForecastService(settings)
    alone_stored, alone_cheaper = what_if(alone_service, price), what_if(alone_service, 0.7 * price)
    np.testing.assert_allclose(alone_stored, alone.loc["S1/I1"].sort_index().to_numpy()[:HORIZON], rtol=1e-9)
    np.testing.assert_allclose(np.log1p(cheaper) - np.log1p(published), np.log1p(alone_cheaper) - np.log1p(alone_stored),
                               atol=1e-9)


def test_a_per_series_champion_answers_its_published_forecast_not_one_made_anew(serving_project, tmp_path):
    """After an upgrade the endpoint's code may compute a version's forecast otherwise than the batch run that
    published it (a new default for an unplanned price): until the next batch run the endpoint answered its own
    numbers, a third below the warehouse's for one tuna brand, with no note. A champion's default answer is the
    published forecast of the same version, origin and rows; a what-if moves it by the model's response."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mm_assets.parallel.contract import predictions_file
    from mm_assets.serving.synthetic import publish_forecasts

    from .conftest import relocated

    def points(body: str) -> list[dict]:
        reply = ForecastService(local).handle(body)
        assert reply.status == 200, reply.body
        return reply.body["forecasts"][0]

    _, settings, _, _ = serving_project
    local = relocated(settings, tmp_path)
    publish_forecasts(local, ["S1"])
    ask = json.dumps({"series": [{"store": "S1", "item": "I1"}]})
    computed = points(ask)
    first = computed["points"][0]["ds"]
    what_if = json.dumps({"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": first, "price": 1.7}]}]})
    computed_what_if = points(what_if)["points"]
    assert computed_what_if[0]["yhat"] != computed["points"][0]["yhat"]  # the plan moves the first period
    # the published file as an older release wrote it: other numbers of the same version, origin and dataset
    path = Lake(local.storage.lake).path(predictions_file("S1"))
    table = pq.read_table(path)
    older = table.set_column(table.schema.get_field_index("yhat"), "yhat",
                             pa.array(table.column("yhat").to_numpy() * 1.5))
    pq.write_table(older.replace_schema_metadata(table.schema.metadata), path)
    rows = older.to_pandas()
    published = rows[rows["series_key"] == "S1/I1"].sort_values("ds")["yhat"].tolist()
    answer = points(ask)
    assert [p["yhat"] for p in answer["points"]] == published
    assert published == pytest.approx([1.5 * p["yhat"] for p in computed["points"]])
    assert answer["note"] is None and answer["model_version"] == computed["model_version"]
    # a what-if moves that forecast by the model's response to the plan (in log1p), the other periods stay
    moved = points(what_if)["points"]
    assert moved[1:] == answer["points"][1:]
    assert np.log1p(moved[0]["yhat"]) - np.log1p(published[0]) == pytest.approx(
        np.log1p(computed_what_if[0]["yhat"]) - np.log1p(computed["points"][0]["yhat"]))
