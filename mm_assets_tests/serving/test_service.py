"""The forecast service without a web server: model choice, forecasts, on-demand loading, bad input."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.series import SeriesConfig, regularize, split_future
from mm_assets.forecasting.training import forecast_from_model
from mm_assets.ingest.datasets import dataset_file
from mm_assets.lake import Lake
from mm_assets.registry.model_registry import ModelRegistry
from mm_assets.serving.answer import BASELINE_PLAN_NOTE, ENVELOPE_PLAN_NOTE
from mm_assets.serving.config import ServingConfig, ServingConfigError, parse_bytes, settings_file
from mm_assets.serving.lookup import ModelLookup, RegistryUnavailable
from mm_assets.serving.service import ForecastService
from mm_assets.settings import Settings

from .conftest import CHAMPIONS, HORIZON, PLAN_DAYS, SERIES, relocated

pytestmark = pytest.mark.serving


def body(*series) -> str:
    return json.dumps({"series": list(series)})


def one(store="S1", item="I2", **extra) -> dict:
    return {"store": store, "item": item, **extra}


@pytest.fixture(scope="module")
def service(serving_project):
    _, settings, _, _ = serving_project
    return ForecastService(settings)


def series_rows(settings: Settings, key: str) -> pd.DataFrame:
    """The series' rows in its partition's dataset (what batch scoring forecasts it from), read independently of
    the service."""
    store, item = key.split("/")
    frame = Lake(settings.storage.lake).read_parquet(dataset_file(store))
    return frame[frame["item"] == item].reset_index(drop=True)


def reference(settings: Settings, registered: pd.DataFrame, key: str, horizon: int, request_plan=None):
    """What the batch code computes for this series: ``forecast_from_model`` on its rows (history and stored plan),
    with its champion, or without one its baseline fitted on the rows; ``request_plan`` (a frame by ds) is laid
    over the stored plan value by value."""
    rows = series_rows(settings, key)
    cfg = SeriesConfig.from_settings(settings)
    if key in CHAMPIONS:
        registry = ModelRegistry(settings.storage.registry, Lake(settings.storage.lake), read_only=True)
        model = registry.load_model(registered.set_index("series_key").loc[key])
        cfg = model.cfg
    else:
        model = Baseline(cfg).fit(regularize(rows, cfg))
    planned = None
    if request_plan is not None:
        planned = request_plan.combine_first(split_future(rows, cfg))
    return forecast_from_model(model, cfg, horizon=horizon, rows=rows, planned=planned)


def yhat(answer: dict) -> list[float]:
    return [p["yhat"] for p in answer["points"]]


# ---- models and forecasts -----------------------------------------------------------------------------
def test_nothing_is_loaded_before_a_request(serving_project):
    _, settings, _, _ = serving_project
    fresh = ForecastService(settings)
    assert len(fresh.cache) == 0 and fresh.cache.stats.loads == 0
    reply = fresh.handle(body(one("S2", "I1", horizon=3)))
    assert reply.status == 200 and len(fresh.cache) == 1 and reply.headers["x-mm-cache-misses"] == "1"
    again = fresh.handle(body(one("S2", "I1", horizon=3)))
    assert again.headers["x-mm-cache-misses"] == "0" and fresh.cache.stats.loads == 1


@pytest.mark.parametrize("horizon", [1, 7, HORIZON])
def test_forecasts_are_batch_scorings_forecasts_of_the_series_rows(service, serving_project, horizon):
    _, settings, _, registered = serving_project
    reply = service.handle(body(*[one(s, i, horizon=horizon) for s, i in SERIES]))
    assert reply.status == 200, reply.body
    for answer in reply.body["forecasts"]:
        key = f"{answer['store']}/{answer['item']}"
        expected, info = reference(settings, registered, key, horizon)
        assert answer["horizon"] == horizon and len(answer["points"]) == horizon
        assert [p["ds"] for p in answer["points"]] == [d.date().isoformat() for d in expected["ds"]]
        np.testing.assert_allclose(yhat(answer), expected["yhat"], rtol=1e-9, atol=1e-9)
        assert answer["origin"] == info["origin"].date().isoformat() == "2026-06-30"
        assert answer["planned_periods"] == info["planned_periods"] == horizon  # the stored plan covers them all
    sources = {f"{a['store']}/{a['item']}": (a["model_source"], a["model_type"], a["model_version"])
               for a in reply.body["forecasts"]}
    assert sources == {"S1/I1": ("champion", "linear", 1), "S1/I2": ("champion", "linear", 1),
                       "S2/I1": ("baseline", "baseline", 0), "S2/I2": ("baseline", "baseline", 0)}


def test_the_stored_plan_changes_the_default_forecast(service, serving_project):
    """The plan is not decoration: without it (the model's stored tail, no plan: what the endpoint served before)
    the champion's forecast differs on the planned promotion days."""
    _, settings, _, registered = serving_project
    answer = service.handle(body(one("S1", "I2"))).body["forecasts"][0]
    registry = ModelRegistry(settings.storage.registry, Lake(settings.storage.lake), read_only=True)
    model = registry.load_model(registered.set_index("series_key").loc["S1/I2"])
    unplanned, _ = forecast_from_model(model, model.cfg, horizon=HORIZON)
    promo = split_future(series_rows(settings, "S1/I2"), model.cfg)["promo"].to_numpy()[:HORIZON]
    assert promo.any()
    differs = ~np.isclose(yhat(answer), unplanned["yhat"].to_numpy(), rtol=1e-6)
    assert differs[promo == 1].all()


def test_the_champion_serves_rather_than_a_newer_trained_version(service, serving_project):
    _, settings, _, registered = serving_project
    reply = service.handle(body(one("S1", "I1", horizon=5)))
    answer = reply.body["forecasts"][0]
    assert (answer["model_source"], answer["model_version"], answer["note"]) == ("champion", 1, None)
    expected, _ = reference(settings, registered, "S1/I1", 5)  # registered: the v1 registrations
    np.testing.assert_allclose(yhat(answer), expected["yhat"], rtol=1e-9)


def test_a_champion_forecast_the_envelope_replaced_is_labelled_as_the_warehouse_labels_it(serving_project,
                                                                                           monkeypatch):
    from mm_assets.forecasting import envelope

    _, settings, _, registered = serving_project
    monkeypatch.setattr(envelope, "violation", lambda *args: "above 3 x the recent maximum (test)")
    answer = ForecastService(settings).handle(body(one("S1", "I2"))).body["forecasts"][0]
    assert (answer["model_source"], answer["model_type"], answer["model_version"]) == ("baseline", "baseline", 1)
    assert answer["note"] == "above 3 x the recent maximum (test)"
    rows = series_rows(settings, "S1/I2")
    cfg = SeriesConfig.from_settings(settings)
    expected, _ = forecast_from_model(Baseline(cfg).fit(regularize(rows, cfg)), cfg, rows=rows)
    np.testing.assert_allclose(yhat(answer), expected["yhat"], rtol=1e-9)


def test_a_what_if_the_envelope_replaced_says_the_answer_is_not_the_plans_effect(serving_project, monkeypatch):
    """A model whose forecast leaves the envelope even without a plan is not trusted with one: the baseline
    answers, and the note says why and that the numbers are not the plan's effect (they differ from the model's
    default, so "this plan does not change its forecast" would be false)."""
    from mm_assets.forecasting import envelope

    _, settings, _, _ = serving_project
    monkeypatch.setattr(envelope, "violation", lambda *args: "above 3 x the recent maximum (test)")
    plan = [{"ds": "2026-07-03", "price": 2.1, "promo": 1}]
    answer = ForecastService(settings).handle(body(one("S1", "I2", horizon=6, regressors=plan))).body["forecasts"][0]
    assert (answer["model_source"], answer["model_type"]) == ("baseline", "baseline")
    assert answer["note"] == f"above 3 x the recent maximum (test); {ENVELOPE_PLAN_NOTE}"
    assert BASELINE_PLAN_NOTE not in answer["note"]


def test_a_linear_what_if_above_the_envelope_is_capped_at_its_bound(serving_project):
    """As a global model's (``test_global_model``): a plan that lifts the forecast above the envelope is capped at
    the bound and stays the champion's answer."""
    import dataclasses

    _, settings, _, _ = serving_project
    svc = ForecastService(settings)
    base = svc.handle(body(one("S1", "I2", horizon=7))).body["forecasts"][0]
    default = yhat(base)
    low = svc.cache.peek("S1/I2").limits["price"].seen[0]
    plan = [{"ds": p["ds"], "promo": 1, "price": 0.6 * low} for p in base["points"]]
    lifted = yhat(svc.handle(body(one("S1", "I2", horizon=7, regressors=plan))).body["forecasts"][0])
    assert max(lifted) > max(default)
    entry = svc.cache.peek("S1/I2")
    multiple = max(default) / entry.what_if.reference * 1.0001
    entry.cfg = dataclasses.replace(entry.cfg, envelope_multiple=multiple)
    entry.what_if = dataclasses.replace(entry.what_if, cfg=entry.cfg)
    answer = svc.handle(body(one("S1", "I2", horizon=7, regressors=plan))).body["forecasts"][0]
    assert (answer["model_source"], answer["model_type"]) == ("champion", "linear")
    bound = multiple * entry.what_if.reference
    np.testing.assert_allclose(yhat(answer), np.minimum(lifted, bound), rtol=1e-12)
    assert "capped there" in answer["note"]


def test_a_series_without_a_champion_gets_its_baseline_as_in_the_warehouse(service, serving_project):
    """S2/I1 has a trained linear model the gate did not promote: batch scoring publishes its baseline, and so
    does the endpoint by default."""
    _, settings, _, registered = serving_project
    answer = service.handle(body(one("S2", "I1"))).body["forecasts"][0]
    assert (answer["model_source"], answer["model_type"], answer["model_version"]) == ("baseline", "baseline", 0)
    assert "no production champion" in answer["note"]
    expected, _ = reference(settings, registered, "S2/I1", HORIZON)
    np.testing.assert_allclose(yhat(answer), expected["yhat"], rtol=1e-9)


def test_the_latest_trained_model_serves_only_when_opted_in(serving_project, tmp_path):
    _, settings, _, _ = serving_project
    latest = ForecastService(settings, ServingConfig(fallback="latest"))
    answer = latest.handle(body(one("S2", "I1"))).body["forecasts"][0]
    assert (answer["model_source"], answer["model_type"], answer["model_version"]) == ("latest", "linear", 1)
    assert "MM_ASSETS_SERVING_FALLBACK=latest" in answer["note"]
    default = ForecastService(settings).handle(body(one("S2", "I1"))).body["forecasts"][0]
    assert yhat(answer) != yhat(default)
    storage = settings.storage.model_copy(update={"production_registry": f"sqlite:///{tmp_path}/none.db"})
    plain = settings.model_copy(update={"storage": storage})
    answer = ForecastService(plain, ServingConfig(fallback="latest")).handle(body(one("S1", "I1"))).body
    assert (answer["forecasts"][0]["model_source"], answer["forecasts"][0]["model_version"]) == ("latest", 2)
    answer = ForecastService(plain).handle(body(one("S1", "I1"))).body  # no production registry yet: baselines
    assert (answer["forecasts"][0]["model_source"], answer["forecasts"][0]["model_version"]) == ("baseline", 0)
    assert not (tmp_path / "none.db").exists()  # looking for it never creates it


def test_fallback_none_makes_a_series_without_champion_unknown(serving_project):
    _, settings, _, _ = serving_project
    strict = ForecastService(settings, ServingConfig(fallback="none"))
    assert strict.handle(body(one("S1", "I1"))).status == 200
    reply = strict.handle(body(one("S2", "I1")))
    assert reply.status == 404 and reply.body["series"] == [{"store": "S2", "item": "I1"}]
    assert "MM_ASSETS_SERVING_FALLBACK=none" in reply.body["message"]


def test_a_series_without_champion_or_rows_is_unknown(serving_project, tmp_path):
    """No champion and no rows in the lake: batch scoring has no forecast of it either, so no baseline is made up."""
    from mm_assets.serving.synthetic import train_models, write_registry

    _, settings, _, _ = serving_project
    storage = settings.storage.model_copy(update={"registry": f"sqlite:///{tmp_path}/registry.db",
                                                  "production_registry": f"sqlite:///{tmp_path}/p.db"})
    local = settings.model_copy(update={"storage": storage})
    write_registry(local, [("S8", "I1")], train_models(local, 1, days=120), run_id="x", promote=False)
    reply = ForecastService(local).handle(body(one("S8", "I1")))
    assert reply.status == 404 and "needs its rows" in reply.body["message"]


def planned_frame(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([(p, q) for _, p, q in rows], columns=["price", "promo"],
                        index=pd.DatetimeIndex([d for d, _, _ in rows], name="ds"))


def test_a_what_if_lays_its_values_over_the_stored_plan(service, serving_project):
    """A period or a regressor the request leaves out keeps the stored plan's value, as batch scoring has it."""
    _, settings, _, registered = serving_project
    stored = split_future(series_rows(settings, "S1/I2"), SeriesConfig.from_settings(settings))
    flip = {d: 1.0 - stored.loc[d, "promo"] for d in (pd.Timestamp("2026-07-02"), pd.Timestamp("2026-07-04"))}
    plan = [{"ds": "2026-07-02", "promo": flip[pd.Timestamp("2026-07-02")]},
            {"ds": "2026-07-04", "price": 1.5, "promo": flip[pd.Timestamp("2026-07-04")]}]
    reply = service.handle(body(one("S1", "I2", horizon=7, regressors=plan)))
    assert reply.status == 200, reply.body
    answer = reply.body["forecasts"][0]
    request_plan = planned_frame([("2026-07-02", np.nan, plan[0]["promo"]), ("2026-07-04", 1.5, plan[1]["promo"])])
    expected, info = reference(settings, registered, "S1/I2", 7, request_plan)
    np.testing.assert_allclose(yhat(answer), expected["yhat"], rtol=1e-9)
    assert answer["planned_periods"] == info["planned_periods"] == 7
    default = service.handle(body(one("S1", "I2", horizon=7))).body["forecasts"][0]["points"]
    changed = [a["yhat"] != b["yhat"] for a, b in zip(answer["points"], default)]
    assert changed[1] and changed[3] and not changed[0]  # the planned days differ, day 1 keeps the stored plan


def test_a_linear_what_if_is_computed_from_arrays_without_the_general_path(serving_project, monkeypatch):
    """The what-if path of a linear model builds no pandas frames per request: the general path (which the test
    above checks it against) is not called once the model is cached."""
    import mm_assets.serving.service as service_module

    _, settings, _, registered = serving_project
    fresh = ForecastService(settings)
    assert fresh.handle(body(one("S1", "I2", horizon=7))).status == 200  # loads and caches the model

    def general_path(*args, **kwargs):
        raise AssertionError("the general forecast path was used for a linear what-if")

    monkeypatch.setattr(service_module, "forecast_from_model", general_path)
    plan = [{"ds": "2026-07-03", "price": 2.5}]
    reply = fresh.handle(body(one("S1", "I2", horizon=5, regressors=plan)))
    assert reply.status == 200, reply.body
    monkeypatch.undo()
    expected, info = reference(settings, registered, "S1/I2", 5, planned_frame([("2026-07-03", 2.5, np.nan)]))
    answer = reply.body["forecasts"][0]
    np.testing.assert_allclose(yhat(answer), expected["yhat"], rtol=1e-9)
    assert [p["ds"] for p in answer["points"]] == [d.date().isoformat() for d in expected["ds"]]
    assert answer["planned_periods"] == info["planned_periods"] == 5


def test_a_baseline_what_if_takes_the_general_path_and_is_batch_scorings(service, serving_project):
    _, settings, _, registered = serving_project
    plan = [{"ds": "2026-07-03", "price": 2.1, "promo": 1}]
    answer = service.handle(body(one("S2", "I2", horizon=6, regressors=plan))).body["forecasts"][0]
    expected, info = reference(settings, registered, "S2/I2", 6, planned_frame([("2026-07-03", 2.1, 1.0)]))
    np.testing.assert_allclose(yhat(answer), expected["yhat"], rtol=1e-9)
    assert answer["planned_periods"] == info["planned_periods"] == 6 and answer["model_source"] == "baseline"
    assert BASELINE_PLAN_NOTE in answer["note"]  # the plan changes nothing here, and the answer says so
    default = service.handle(body(one("S2", "I2", horizon=6))).body["forecasts"][0]
    assert yhat(default) == yhat(answer) and BASELINE_PLAN_NOTE not in default["note"]


def test_concurrent_requests_for_one_cold_series_look_it_up_once(serving_project):
    _, settings, _, _ = serving_project
    fresh = ForecastService(settings)
    calls = []
    find = fresh.lookup.find

    def slow_find(key):
        calls.append(key)
        time.sleep(0.2)
        return find(key)

    fresh.lookup.find = slow_find
    replies = []
    barrier = threading.Barrier(8)

    def ask():
        barrier.wait()
        replies.append(fresh.handle(body(one("S2", "I1", horizon=4))))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["S2/I1"] and fresh.cache.stats.loads == 1
    assert [r.status for r in replies] == [200] * 8
    assert len({json.dumps(r.body) for r in replies}) == 1


def test_the_cache_bound_holds_and_evicted_models_come_back(serving_project):
    _, settings, _, _ = serving_project
    small = ForecastService(settings, ServingConfig(cache_models=2))
    for store, item in [("S1", "I1"), ("S1", "I2"), ("S2", "I1"), ("S2", "I2"), ("S1", "I1")]:
        assert small.handle(body(one(store, item, horizon=2))).status == 200
        assert len(small.cache) <= 2
    assert small.cache.stats.loads == 5 and small.cache.stats.evictions == 3
    entry = small.cache.peek("S1/I1")
    # the bytes, the default forecast, the entry's overhead, the series' rows and stored plan, and a linear model
    # kept for what-ifs (counted as its pickle's size) with its forecast periods' design rows
    assert entry.what_if is not None and entry.rows is not None and len(entry.rows) == 150 + PLAN_DAYS
    rows_bytes = sum(entry.rows[c].to_numpy().nbytes for c in entry.rows.columns)  # its values
    assert entry.size == (2 * len(entry.blob) + entry.yhat.nbytes + 1024 + entry.what_if.rows.rows.nbytes
                          + rows_bytes + 2 * HORIZON * 8)


def local_registries(settings: Settings, tmp_path) -> Settings:
    """The settings with copies of both registries (a test may change them; the lake stays shared)."""
    storage = {}
    for name in ("registry", "production_registry"):
        url = getattr(settings.storage, name)
        shutil.copy(url.removeprefix("sqlite:///"), tmp_path / f"{name}.db")
        storage[name] = f"sqlite:///{tmp_path}/{name}.db"
    return settings.model_copy(update={"storage": settings.storage.model_copy(update=storage)})


def local_lake(settings: Settings, tmp_path) -> Settings:
    """The settings with a copy of the lake: its datasets may change (its bundles' registered paths stay in the
    shared lake, so only the baseline-served series S2/* are forecast from it)."""
    shutil.copytree(settings.storage.lake, tmp_path / "lake")
    return settings.model_copy(update={"storage": settings.storage.model_copy(update={"lake": str(tmp_path / "lake")})})


def test_a_new_champion_is_picked_up_after_the_refresh_interval(serving_project, tmp_path):
    from mm_assets.serving.synthetic import train_models, write_registry

    _, settings, _, _ = serving_project
    local = local_registries(settings, tmp_path)
    svc = ForecastService(local, ServingConfig(refresh_s=0))
    assert svc.handle(body(one("S1", "I2"))).body["forecasts"][0]["model_version"] == 1
    assert svc.handle(body(one("S1", "I2"))).headers["x-mm-cache-misses"] == "1"  # re-checked, same model
    assert svc.cache.stats.loads == 1
    write_registry(local, [("S1", "I2")], train_models(local, 1, days=150, seed=5), run_id="r3")  # promoted
    answer = svc.handle(body(one("S1", "I2"))).body["forecasts"][0]
    assert (answer["model_source"], answer["model_version"]) == ("champion", 2) and svc.cache.stats.loads == 2


def test_a_re_cut_dataset_is_read_again_after_the_refresh_interval(serving_project, tmp_path):
    """A new day's observation (or a new plan) changes the series' rows: the next refresh forecasts from them."""
    _, settings, _, _ = serving_project
    local = local_lake(settings, tmp_path)
    svc = ForecastService(local, ServingConfig(refresh_s=0))
    assert svc.handle(body(one("S2", "I1"))).body["forecasts"][0]["origin"] == "2026-06-30"
    assert svc.handle(body(one("S2", "I1"))).status == 200 and svc.cache.stats.loads == 1  # unchanged: kept
    lake = Lake(local.storage.lake)
    frame = lake.read_parquet(dataset_file("S2"))
    frame.loc[frame["ds"] == pd.Timestamp("2026-07-01"), "y"] = 7.0  # the plan's first day has been observed
    lake.write_parquet(frame, dataset_file("S2"))
    answer = svc.handle(body(one("S2", "I1"))).body["forecasts"][0]
    assert answer["origin"] == "2026-07-01" and answer["points"][0]["ds"] == "2026-07-02"
    assert svc.cache.stats.loads == 2


def test_a_series_whose_rows_stopped_before_the_lakes_newest_period_says_so(serving_project, tmp_path):
    """A store whose feed stopped is forecast from its last row, for periods the other stores have passed: its
    answer's note says so (its points alone would pass for current), once its origin is more than
    ``ingest.max_normal_gap`` periods before the lake's newest, and not before."""
    _, settings, _, _ = serving_project
    local = relocated(settings, tmp_path)
    lake = Lake(local.storage.lake)
    svc = ForecastService(local, ServingConfig(refresh_s=0))
    assert svc.handle(body(one("S1", "I2"))).body["forecasts"][0]["note"] is None  # no period file: nothing to say
    stub = pd.DataFrame({"store": ["S3"], "item": ["I1"], "date": [pd.Timestamp("2026-07-03")], "sales": [1.0]})
    lake.write_parquet(stub, "raw", "sales", "2026-07-03.parquet")  # 3 days after S1/I2's origin: normal
    lake.write_parquet(stub, "raw", "sales", "notes.parquet")  # not a period's file
    assert svc.handle(body(one("S1", "I2"))).body["forecasts"][0]["note"] is None
    lake.write_parquet(stub, "raw", "sales", "2026-07-12.parquet")
    # the plan's periods after the newest sale are not sales: every demo answer said its rows had stopped
    lake.write_parquet(stub.assign(sales=np.nan), "raw", "sales", "2026-07-15.parquet")
    for series, what in ((one("S1", "I2"), "champion"), (one("S2", "I1", regressors=[]), "baseline")):
        answer = svc.handle(body(series)).body["forecasts"][0]
        assert answer["model_source"] == what and answer["origin"] == "2026-06-30"
        assert ("this series' newest observed day is 2026-06-30, 12 days before the newest in the data (2026-07-12)"
                in answer["note"]), answer["note"]
    kept = ForecastService(local, ServingConfig(refresh_s=3600))
    kept.handle(body(one("S1", "I2")))
    lake.write_parquet(stub, "raw", "sales", "2026-07-20.parquet")  # listed again only after the refresh interval
    assert "(2026-07-12)" in kept.handle(body(one("S1", "I2"))).body["forecasts"][0]["note"]


def test_a_champion_series_gone_from_its_dataset_is_a_404_not_a_forecast_from_its_stored_tail(serving_project,
                                                                                                 tmp_path):
    """A delisted item keeps its champion, but batch scoring no longer forecasts it and the warehouse keeps its last
    forecasts: forecast from the model's stored tail, the endpoint would answer numbers the warehouse does not have.
    Once its store's dataset is re-cut without it, a cached answer stops too; its store's other series go on."""
    import sqlite3

    _, settings, _, _ = serving_project
    local = local_registries(local_lake(settings, tmp_path), tmp_path)
    for name, table in (("registry", "model_versions"), ("production_registry", "champions")):
        with sqlite3.connect(getattr(local.storage, name).removeprefix("sqlite:///")) as conn:  # the copy's models
            conn.execute(f"UPDATE {table} SET artifact_uri = replace(artifact_uri, ?, ?)",
                         (settings.storage.lake, local.storage.lake))
    svc = ForecastService(local, ServingConfig(refresh_s=0))
    assert svc.handle(body(one("S1", "I2"))).status == 200
    lake = Lake(local.storage.lake)
    frame = lake.read_parquet(dataset_file("S1"))
    lake.write_parquet(frame[frame["item"] != "I2"], dataset_file("S1"))
    for _ in range(2):  # the cached series, then the same without a cache entry
        reply = svc.handle(body(one("S1", "I2")))
        assert reply.status == 404 and reply.body["error"] == "series_not_in_data", reply.body
        assert "S1/I2 has a model but no row in its partition's dataset (datasets/S1.parquet)" in reply.body["message"]
        assert "forecast_predictions" in reply.body["message"]
    assert svc.handle(body(one("S1", "I1"))).status == 200
    assert svc.handle(body(one("S9", "I9"))).body["error"] == "unknown_series"  # no model: unknown, as before
    reply = svc.handle({"series": [one("S1", "I2"), one("S1", "I1")], "skip_unknown": True})
    assert reply.status == 200 and [f["item"] for f in reply.body["forecasts"]] == ["I1"]
    assert [(m["item"], m["error"]) for m in reply.body["not_served"]] == [("I2", "series_not_in_data")]
    assert "datasets/S1.parquet" in reply.body["not_served"][0]["message"]


def test_an_unreadable_dataset_is_a_503_and_the_service_goes_on(serving_project, tmp_path, caplog):
    import logging

    _, settings, _, _ = serving_project
    local = local_lake(settings, tmp_path)
    lake = Lake(local.storage.lake)
    good = lake.read_bytes(dataset_file("S2"))
    lake.write_bytes(b"not parquet", dataset_file("S2"))
    svc = ForecastService(local)
    with caplog.at_level(logging.ERROR, logger="azmlinfsrv.mm_assets"):
        reply = svc.handle(body(one("S2", "I1")))
        assert svc.handle(body(one("S2", "I2"))).status == 503
    lines = [r.getMessage() for r in caplog.records if "rows of S2/" in r.getMessage()]
    assert len(lines) == 2 and ["Traceback" in line for line in lines] == [True, False]  # its traceback once
    assert reply.status == 503 and reply.body["error"] == "data_unavailable" and "S2/I1" in reply.body["message"]
    assert "Traceback" not in json.dumps(reply.body) and str(tmp_path) not in json.dumps(reply.body)
    assert "S2/I1" not in svc.cache
    lake.write_bytes(good, dataset_file("S2"))  # repaired: the next request is answered
    assert svc.handle(body(one("S2", "I1"))).status == 200


def test_a_lake_that_cannot_be_reached_is_a_503_not_a_500_and_cached_series_keep_answering(serving_project, tmp_path,
                                                                                            monkeypatch):
    """An unreachable Azure lake raises the Azure SDK's own errors (ServiceRequestError), which are not OSErrors: they
    escaped as 500s for cached and uncached series alike (found on Azurite, stopped)."""

    class ServiceRequestError(Exception):  # azure.core.exceptions' is an AzureError, not an OSError
        pass

    _, settings, _, _ = serving_project
    local = local_lake(settings, tmp_path)
    svc = ForecastService(local, ServingConfig(refresh_s=0))  # re-checked at every request
    cached = svc.handle(body(one("S2", "I1")))
    assert cached.status == 200

    def unreachable(*args, **kwargs):
        raise ServiceRequestError("Cannot connect to host 127.0.0.1:10000")

    monkeypatch.setattr(svc.lake.fs, "info", unreachable)  # fsspec shares one instance: restored after the test
    monkeypatch.setattr(svc.lake.fs, "open", unreachable)
    assert svc.handle(body(one("S2", "I1"))).body == cached.body
    uncached = svc.handle(body(one("S2", "I2")))
    assert uncached.status == 503 and uncached.body["error"] == "data_unavailable", uncached.body
    assert "ServiceRequestError" in uncached.body["message"] and "127.0.0.1" not in uncached.body["message"]


def test_a_cached_series_keeps_answering_while_its_dataset_is_rewritten_in_place(serving_project, tmp_path,
                                                                                caplog):
    """Another writer rewrites a dataset in place (not atomically): for a moment it is cut short. A cached series'
    refresh that cannot read it keeps the series' entry (its rows as they were) and tries again at later requests,
    logging it once per version of the file; only a series without its rows is a 503 naming the file. Once the file
    can be read, the series is forecast from it."""
    import logging

    _, settings, _, _ = serving_project
    local = local_lake(settings, tmp_path)
    lake = Lake(local.storage.lake)
    svc = ForecastService(local, ServingConfig(refresh_s=0))  # re-checked at every request
    cached = svc.handle(body(one("S2", "I1")))
    assert cached.status == 200
    good = lake.read_bytes(dataset_file("S2"))
    lake.write_bytes(good[: len(good) // 2], dataset_file("S2"))  # mid-write
    with caplog.at_level(logging.WARNING, logger="azmlinfsrv.mm_assets"):
        for _ in range(3):
            assert svc.handle(body(one("S2", "I1"))).body == cached.body
        uncached = svc.handle(body(one("S2", "I2")))
    assert uncached.status == 503 and uncached.body["error"] == "data_unavailable"
    assert "the rows of series S2/I2" in uncached.body["message"] and "datasets/S2.parquet" in uncached.body["message"]
    assert str(tmp_path) not in json.dumps(uncached.body)
    kept = [r for r in caplog.records if "cached series keep answering" in r.getMessage()]
    assert len(kept) == 1 and "datasets/S2.parquet" in kept[0].getMessage()  # once for this version of the file
    assert svc.cache.stats.loads == 1

    frame = pd.read_parquet(__import__("io").BytesIO(good))
    frame.loc[frame["ds"] == pd.Timestamp("2026-07-01"), "y"] = 7.0  # the writer is done: a new day's rows
    lake.write_parquet(frame, dataset_file("S2"))
    answer = svc.handle(body(one("S2", "I1"))).body["forecasts"][0]
    assert answer["origin"] == "2026-07-01" and svc.cache.stats.loads == 2
    assert svc.handle(body(one("S2", "I2"))).status == 200


def promote(local: Settings, rows: pd.DataFrame, run_id: str) -> None:
    """Register ``rows`` (changed registrations) and make them champions in ``local``'s production registry."""
    from mm_assets.serving.synthetic import add_champions

    registered = ModelRegistry(local.storage.registry, Lake(local.storage.lake)).register(
        rows.drop(columns=["version", "run_id", "trained_at"]), run_id)
    add_champions(local.storage.production_registry, registered)


def test_a_model_that_cannot_be_read_is_a_503_naming_its_file_and_the_service_goes_on(serving_project, tmp_path):
    """Without a published forecast to answer with, a series whose model's bytes cannot be unpickled is a 503
    naming the model's file in the lake (retry: the file may be being rewritten), not cached."""
    _, settings, _, rows = serving_project
    local = local_registries(settings, tmp_path)
    broken = rows[rows["series_key"] == "S1/I2"]
    promote(local, broken.assign(artifact_offset=broken["artifact_offset"] + 1), "broken")
    svc = ForecastService(local)
    reply = svc.handle(body(one("S1", "I2")))
    assert reply.status == 503 and reply.body["error"] == "model_unavailable", reply.body
    message = reply.body["message"]
    assert "champion model v2 of series S1/I2" in message and "Traceback" not in json.dumps(reply.body)
    assert "models/S1/r1/bundle.bin: EOFError" in message and "retry later" in message  # the file ends before it
    assert "S1/I2" not in svc.cache
    assert svc.handle(body(one("S1", "I1"))).status == 200


def test_a_model_error_names_its_file_in_the_lake_but_never_where_the_server_keeps_it(serving_project, tmp_path,
                                                                                        monkeypatch):
    import mm_assets.serving.service as service_module

    _, settings, _, rows = serving_project
    local = local_registries(settings, tmp_path)
    lake = Lake(local.storage.lake)
    gone = rows[rows["series_key"] == "S1/I2"]
    promote(local, gone.assign(artifact_uri=lake.full_uri("models", "deleted", "models.bin")), "gone")
    reply = ForecastService(local).handle(body(one("S1", "I2")))
    assert reply.status == 503 and reply.body["error"] == "model_unavailable"
    message = reply.body["message"]
    assert "models/deleted/models.bin: FileNotFoundError" in message and str(local.storage.lake) not in message

    # a model that was read but fails to forecast is a 500 with the reason, its paths and URIs cut out
    def fails(*args, **kwargs):
        raise OSError(f"cannot open {lake.path('models', 'x.bin')} or abfs://c@a.dfs.core.windows.net/y.bin")

    monkeypatch.setattr(service_module, "forecast_from_model", fails)
    reply = ForecastService(local).handle(body(one("S2", "I2")))  # a baseline: forecast by the general path
    assert reply.status == 500 and reply.body["error"] == "model_unavailable"
    message = reply.body["message"]
    assert "OSError" in message and "<path>" in message and str(local.storage.lake) not in message
    assert "x.bin" not in message and "abfs" not in message


def test_a_per_series_model_that_cannot_be_read_answers_from_its_published_forecast(serving_project, tmp_path,
                                                                                     caplog):
    """A champion whose model file is cut short: its published batch forecast (the same model, origin and rows)
    still answers the default request, with a note; a what-if, which needs the model, is a 503 naming the file.
    The error is logged once per version of the file, and the model serves again once its file can be read."""
    import logging

    from mm_assets.serving.answer import UNREADABLE_NOTE
    from mm_assets.serving.synthetic import publish_forecasts

    from .conftest import relocated

    _, settings, _, _ = serving_project
    local = relocated(settings, tmp_path)
    publish_forecasts(local, ["S1", "S2"])
    lake = Lake(local.storage.lake)
    good = ForecastService(local).handle(body(one("S1", "I1"), one("S1", "I2")))
    assert good.status == 200 and [a["note"] for a in good.body["forecasts"]] == [None, None]
    first = good.body["forecasts"][0]["points"][0]["ds"]
    bundle = lake.read_bytes("models", "S1", "r1", "bundle.bin")
    lake.write_bytes(bundle[: len(bundle) // 3], "models", "S1", "r1", "bundle.bin")  # cut short
    svc = ForecastService(local, ServingConfig(refresh_s=0))  # re-checked at every request
    with caplog.at_level(logging.INFO, logger="azmlinfsrv.mm_assets"):
        for _ in range(3):
            reply = svc.handle(body(one("S1", "I1"), one("S1", "I2")))
            assert reply.status == 200, reply.body
            for answer, expected in zip(reply.body["forecasts"], good.body["forecasts"]):
                assert answer["note"] == UNREADABLE_NOTE  # the same labels, origin, planned periods and points
                assert {**answer, "note": None, "points": None} == {**expected, "points": None}
                assert [p["ds"] for p in answer["points"]] == [p["ds"] for p in expected["points"]]
                np.testing.assert_allclose(yhat(answer), yhat(expected), rtol=1e-9, atol=1e-12)
            what_if = svc.handle(body(one("S1", "I1", regressors=[{"ds": first, "promo": 1}])))
            assert what_if.status == 503 and what_if.body["error"] == "model_unavailable", what_if.body
            assert "models/S1/r1/bundle.bin" in what_if.body["message"]
            assert "a what-if plan needs the model" in what_if.body["message"]
    logged = [r for r in caplog.records if "cannot be read" in r.getMessage() or "model_unavailable" in
              r.getMessage()]
    assert [r.getMessage().split(" (")[0] for r in logged] == ["model v1 of S1/I1", "model v1 of S1/I2"]  # once each

    lake.write_bytes(bundle, "models", "S1", "r1", "bundle.bin")  # rewritten whole: the model serves again
    what_if = svc.handle(body(one("S1", "I1", regressors=[{"ds": first, "promo": 1}])))
    assert what_if.status == 200 and what_if.body["forecasts"][0]["note"] is None
    assert svc.handle(body(one("S1", "I1"))).body == {"forecasts": good.body["forecasts"][:1]}  # the model's again


def test_deeply_nested_json_is_a_400_not_a_crash(serving_project):
    _, settings, _, _ = serving_project
    reply = ForecastService(settings).handle("[" * 50_000)
    assert reply.status == 400 and reply.body["error"] == "invalid_json" and "too deeply" in reply.body["message"]


def test_an_unreadable_registry_is_a_503_and_the_next_request_tries_again(serving_project):
    _, settings, _, _ = serving_project
    svc = ForecastService(settings)
    find = svc.lookup.find

    def down(key):
        raise ConnectionError("database restarting")

    svc.lookup.find = down
    reply = svc.handle(body(one("S1", "I2")))
    assert reply.status == 503 and reply.body["error"] == "registry_unavailable"
    assert "ConnectionError" in reply.body["message"] and "restarting" not in reply.body["message"]
    svc.lookup.find = find
    assert svc.handle(body(one("S1", "I2"))).status == 200


def test_cached_series_keep_answering_while_the_registry_cannot_be_asked(serving_project, tmp_path, caplog):
    """The registry's database restarts: a cached series' refresh cannot ask it for the series' champion. The series
    keeps answering from its cache and asks again later; a series not cached is the 503. The outage is logged once,
    not per request, and so is its end; a champion promoted meanwhile serves once the registry answers."""
    import logging

    from mm_assets.serving.synthetic import train_models, write_registry

    _, settings, _, _ = serving_project
    local = local_registries(settings, tmp_path)
    svc = ForecastService(local, ServingConfig(refresh_s=0))  # re-checked at every request
    cached = svc.handle(body(one("S1", "I2")))
    assert cached.status == 200
    find = svc.lookup.find

    def down(key):
        raise ConnectionError("database restarting")

    svc.lookup.find = down
    with caplog.at_level(logging.INFO, logger="azmlinfsrv.mm_assets"):
        for _ in range(3):
            assert svc.handle(body(one("S1", "I2"))).body == cached.body
        uncached = svc.handle(body(one("S1", "I1")))
        write_registry(local, [("S1", "I2")], train_models(local, 1, days=150, seed=5), run_id="r3")  # promoted
        assert svc.handle(body(one("S1", "I2"))).body == cached.body
        svc.lookup.find = find  # the registry answers again
        answer = svc.handle(body(one("S1", "I2"))).body["forecasts"][0]
        assert svc.handle(body(one("S1", "I1"))).status == 200
    assert uncached.status == 503 and uncached.body["error"] == "registry_unavailable"
    assert "ConnectionError" in uncached.body["message"] and "restarting" not in uncached.body["message"]
    assert (answer["model_source"], answer["model_version"]) == ("champion", 2)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "registry cannot be asked" in errors[0] and "Traceback" in errors[0]
    assert len([r for r in caplog.records if "registry answers again" in r.getMessage()]) == 1


def test_a_registry_that_cannot_be_asked_is_asked_again_after_the_retry_interval(serving_project, tmp_path):
    """A database that is down may take its connection timeout to say so: once a lookup failed, a cached series
    whose refresh is due answers from its cache without asking it until ``RETRY_S`` has passed; a series not cached
    asks (its alternative is the 503)."""
    _, settings, _, _ = serving_project
    svc = ForecastService(settings, ServingConfig(refresh_s=60))
    assert svc.handle(body(one("S1", "I1"), one("S1", "I2"))).status == 200
    asked = []

    def down(key):
        asked.append(key)
        raise ConnectionError("database restarting")

    svc.lookup.find = down
    for key in ("S1/I1", "S1/I2"):
        svc.cache.peek(key).checked_at -= 120  # their refresh is due
    for _ in range(3):
        assert svc.handle(body(one("S1", "I2"))).status == 200
        assert svc.handle(body(one("S1", "I1"))).status == 200
    assert asked == ["S1/I2"]
    assert svc.handle(body(one("S2", "I1"))).status == 503 and asked == ["S1/I2", "S2/I1"]


def test_a_model_trained_for_a_shorter_horizon_limits_its_requests(serving_project, tmp_path):
    from mm_assets.serving.synthetic import train_models, write_registry

    _, settings, _, _ = serving_project
    storage = settings.storage.model_copy(update={"registry": f"sqlite:///{tmp_path}/registry.db",
                                                  "production_registry": f"sqlite:///{tmp_path}/p.db"})
    local = settings.model_copy(update={"storage": storage})
    write_registry(local, [("S7", "I1")], train_models(local.model_copy(update={"horizon": 7}), 1, days=120),
                   run_id="short")
    svc = ForecastService(local)
    assert svc.handle(body(one("S7", "I1", horizon=7))).status == 200
    reply = svc.handle(body(one("S7", "I1", horizon=10)))
    assert reply.status == 400 and "its model forecasts at most 7 periods" in reply.body["message"]
    default = svc.handle(body(one("S7", "I1"))).body  # no horizon given: the settings' 14 is too far here
    assert default["problems"][0]["field"] == "series[0].horizon"


@pytest.mark.parametrize("horizon, gap", [(HORIZON + 7, 0), (HORIZON, 2)])
def test_a_champion_that_cannot_reach_the_settings_horizon_is_answered_by_its_baseline_as_batch_scoring_does(
        serving_project, horizon, gap):
    """The horizon or the gap grown past what the champion was trained for: batch scoring publishes the series'
    baseline (version 0, the reason in ``note``), and so does the endpoint, on the settings' dates; before, it
    answered the champion on its own gap's dates and refused a request without a horizon."""
    _, settings, _, _ = serving_project
    longer = settings.model_copy(update={"horizon": horizon, "gap": gap})
    svc = ForecastService(longer)
    answer = svc.handle(body(one("S1", "I2"))).body["forecasts"][0]
    assert (answer["model_source"], answer["model_type"], answer["model_version"]) == ("baseline", "baseline", 0)
    assert answer["note"] == (f"model v1 cannot forecast with these settings: it was trained for horizon + gap = "
                              f"{HORIZON} periods and the settings ask for {horizon} + {gap} = {horizon + gap}")
    rows = series_rows(longer, "S1/I2")
    cfg = SeriesConfig.from_settings(longer)
    expected, _ = forecast_from_model(Baseline(cfg).fit(regularize(rows, cfg)), cfg, horizon=horizon, rows=rows)
    assert [p["ds"] for p in answer["points"]] == [d.date().isoformat() for d in expected["ds"]]
    assert yhat(answer) == pytest.approx(expected["yhat"].tolist())


# ---- bad input ----------------------------------------------------------------------------------------
BAD = [
    ("{not json", 400, "invalid_json", "not valid JSON"),
    ("", 400, "invalid_json", "empty"),
    (b"\xff\xfe", 400, "invalid_json", "UTF-8"),
    ('{"series": [], "series": [{"store": "S1", "item": "I1"}]}', 400, "invalid_json", 'key "series" twice'),
    ('{"series": [{"store": "S1", "item": "I1", "store": "S2"}]}', 400, "invalid_json", 'key "store" twice'),
    ("[1, 2]", 400, "invalid_request", "JSON object"),
    ("{}", 400, "invalid_request", "series: missing field"),
    ('{"series": {"store": "S1"}}', 400, "invalid_request", "must be a list"),
    ('{"series": []}', 400, "invalid_request", "at least one series"),
    ('{"series": [{"store": "S1"}]}', 400, "invalid_request", "series[0].item: missing field"),
    ('{"series": [{"store": "S1", "item": "I1"}], "extra": 1}', 400, "invalid_request", "extra: unknown field"),
    ('{"series": [{"store": "S1", "item": "I1", "horzon": 3}]}', 400, "invalid_request", "horzon: unknown field"),
    ('{"series": [{"store": "../S1", "item": "I1"}]}', 400, "invalid_request", "'..'"),
    ('{"series": [{"store": ["S1"], "item": "I1"}]}', 400, "invalid_request", "must be a string"),
    ('{"series": [{"store": 2.0, "item": "I1"}]}', 400, "invalid_request",
     'must be a string or a whole number ("2" or 2, as the source writes it), got float 2.0'),
    ('{"series": [{"store": "S1", "item": "I1", "horizon": 0}]}', 400, "invalid_request", "0 is out of range"),
    ('{"series": [{"store": "S1", "item": "I1", "horizon": 15}]}', 400, "invalid_request", "15 is out of range: 1..14"),
    ('{"series": [{"store": "S1", "item": "I1", "horizon": "7"}]}', 400, "invalid_request", "must be an integer"),
    ('{"series": [{"store": "S1", "item": "I1", "regressors": [{"promo": 1}]}]}', 400, "invalid_request",
     "ds: missing field"),
    ('{"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "2026-07-01", "rain": 1}]}]}', 400,
     "invalid_request", "unknown regressor"),
    ('{"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "2026-07-01", "price": NaN}]}]}', 400,
     "invalid_request", "finite number"),
    ('{"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "2026-09-01", "promo": 1}]}]}', 400,
     "invalid_request", "not a forecast period"),
    # a whole number past a float's range, and real dates nanoseconds since 1970 cannot count: 400s, not 500s
    ('{"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "2026-07-01", "price": 1%s}]}]}' % ("0" * 309),
     400, "invalid_request", "price: must be a finite number, got 10000000\u2026 (310 digits)"),
    ('{"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "9999-12-31", "promo": 1}]}]}', 400,
     "invalid_request", "9999-12-31 is not a forecast period"),
    ('{"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "1600-01-01", "promo": 1}]}]}', 400,
     "invalid_request", "1600-01-01 is not a forecast period"),
    ('{"series": [{"store": "S1", "item": "I1", "horizon": 9%s}]}' % ("9" * 399), 400, "invalid_request",
     "horizon: 99999999\u2026 (400 digits) is out of range: 1..14"),
    ('{"series": [{"store": "S1", "item": "I1", "horizon": null}]}', 400, "invalid_request",
     "must be an integer 1..14, got null"),
    ('{"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "2026-07-01", "price": true}]}]}', 400,
     "invalid_request", "true is a 0/1 flag's value"),
    ("series=S1", 400, "invalid_json", "not valid JSON"),
    ('{"series": [{"store": "S9", "item": "I1"}]}', 404, "unknown_series", "S9/I1"),
    ('{"series": [{"store": "S1", "item": "I1"}, {"store": "S1", "item": "I9"}]}', 404, "unknown_series",
     "1 of the requested series: S1/I9"),
    ('{"series": [{"store": "S1", "item": "I9"}]}', 404, "unknown_series", '"skip_unknown": true'),
    ('{"series": [{"store": "S1", "item": "I1"}], "skip_unknown": "yes"}', 400, "invalid_request",
     'skip_unknown: must be true or false, got "yes"'),
    ('{"series": [{"store": "S1", "item": "I1"}], "skip_unknown": 1}', 400, "invalid_request",
     "skip_unknown: must be true or false"),
]


def test_a_request_of_many_mistakes_lists_twenty_and_counts_them_all(service):
    """800,000 unknown keys are one mistake repeated: the answer lists the first 20 problems and says how many
    there are, not a body ten times the request's size; a hundred series each with a bad horizon are all counted
    (the message said "and 15 more" of 100)."""
    row = {"ds": "2026-07-01", "promo": 1} | {f"k{n}": 0 for n in range(50_000)}
    reply = service.handle(body(one("S1", "I1", regressors=[row])))
    assert reply.status == 400 and reply.body["problem_count"] == 50_000, reply.body["message"]
    assert len(reply.body["problems"]) == 20 and len(json.dumps(reply.body)) < 10_000
    assert "(and 49995 more; the first 20 are listed in problems)" in reply.body["message"]
    reply = service.handle(body(*[one("S1", "I1", horizon=0)] * 100))
    assert reply.body["problem_count"] == 100 and "(and 95 more; the first 20" in reply.body["message"]
    reply = service.handle(body(one("S1", "I1", horizon=0), one("S1", "I1", horizon=99)))
    assert reply.body["problem_count"] == 2 and len(reply.body["problems"]) == 2 and "more" not in reply.body["message"]


def test_a_form_encoded_body_is_told_to_send_json(service):
    """``curl -d 'series=S1'`` sends a form: the answer says so whatever the body (before, only an empty one)."""
    reply = service.handle("series=S1", content_type="application/x-www-form-urlencoded")
    assert reply.status == 400 and "send JSON with Content-Type: application/json" in reply.body["message"]
    assert service.handle(body(one("S1", "I1", horizon=1)),
                          content_type="application/x-www-form-urlencoded").status == 200


def test_a_request_that_is_not_a_scoring_post_is_refused_before_its_body_is_read(service):
    assert service.refuse_request("POST", None) is None and service.refuse_request("POST", "identity") is None
    got = service.refuse_request("GET", None)
    assert got.status == 405 and got.body["error"] == "method_not_allowed" and got.headers["Allow"] == "POST, OPTIONS"
    assert service.refuse_request("OPTIONS", None).status == 200
    got = service.refuse_request("POST", "gzip")
    assert got.status == 415 and "Content-Encoding: \"gzip\"" in got.body["message"]
    assert service.handle(b"\xef\xbb\xbf" + body(one("S1", "I1", horizon=1)).encode()).status == 200


def test_skip_unknown_answers_the_served_series_and_lists_the_others(service):
    """A planner's batch of a whole category keeps its answer when one id is wrong: the others are forecast as
    they would be alone, and the one no model serves is listed with its code and why, once however often sent."""
    alone = service.handle(body(one("S1", "I1"), one("S2", "I1", horizon=3))).body["forecasts"]
    series = [one("S1", "I1"), one("S9", "I9"), one("S2", "I1", horizon=3), one("S9", "I9")]
    reply = service.handle({"series": series, "skip_unknown": True})
    assert reply.status == 200, reply.body
    assert reply.body["forecasts"] == alone
    (missing,) = reply.body["not_served"]
    assert missing["store"] == "S9" and missing["item"] == "I9" and missing["error"] == "unknown_series"
    assert "no model serves series S9/I9" in missing["message"]
    assert service.handle({"series": series, "skip_unknown": False}).status == 404  # the default, spelt out
    served = service.handle({"series": [one("S1", "I1")], "skip_unknown": True}).body
    assert served["not_served"] == [] and len(served["forecasts"]) == 1
    nothing = service.handle({"series": [one("S9", "I9")], "skip_unknown": True})
    assert nothing.status == 200 and nothing.body["forecasts"] == [] and len(nothing.body["not_served"]) == 1
    bad = service.handle({"series": [one("S1", "I1", horizon=99), one("S9", "I9")], "skip_unknown": True})
    assert bad.status == 400 and bad.body["error"] == "invalid_request"  # bad input is still refused whole


@pytest.mark.parametrize("raw, status, code, fragment", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_a_4xx_naming_the_problem(service, raw, status, code, fragment):
    reply = service.handle(raw)
    assert reply.status == status, reply.body
    assert reply.body["error"] == code and fragment in reply.body["message"], reply.body
    json.dumps(reply.body)  # serializable


PLAN = '{"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "2026-07-01", %s}]}]}'


@pytest.mark.parametrize("ds", ["2026-07-01junk", "20260701", "2026-07-01T00:00:00", " 2026-07-01", "2026-7-1",
                                "２０２６-07-01", "2026-02-30"])
def test_a_plan_date_is_exactly_yyyy_mm_dd(service, ds):
    reply = service.handle(body(one("S1", "I1", regressors=[{"ds": ds, "promo": 1}])))
    assert reply.status == 400 and reply.body["error"] == "invalid_request", reply.body
    assert reply.body["problems"] == [{"field": "series[0].regressors[0].ds",
                                       "problem": f"{json.dumps(ds, ensure_ascii=False)} is not a date: write it as YYYY-MM-DD, e.g. 2026-11-25"}]


OUT_OF_RANGE = [
    ('"promo": 7', "promo", "7 is not allowed: promo is a 0/1 flag (0: off, 1: on), so 0 or 1"),
    ('"promo": 0.5', "promo", "0.5 is not allowed: promo is a 0/1 flag"),
    ('"promo": -1', "promo", "-1 is not allowed: promo is a 0/1 flag"),
    ('"price": -5', "price", "-5 is out of range: price is positive (price-like), so > 0; price's history ranges 1.6..2.2, "
                             "so a plan is accepted within 0.16..22 (10x either way)"),
    ('"price": 0', "price", "0 is out of range: price is positive (price-like), so > 0"),
    ('"price": 1e300', "price", "1e+300 is out of range: price's history ranges 1.6..2.2, so a plan is accepted "
                                "within 0.16..22"),  # the bound it missed, not "so > 0" (it is)
    ('"price": 0.01', "price", "0.01 is out of range: price's history ranges 1.6..2.2"),
]


@pytest.mark.parametrize("values, column, fragment", OUT_OF_RANGE, ids=[v for v, _, _ in OUT_OF_RANGE])
def test_a_planned_value_its_model_cannot_take_is_a_400_naming_field_series_and_range(service, values, column,
                                                                                      fragment):
    reply = service.handle(PLAN % values)
    assert reply.status == 400 and reply.body["error"] == "invalid_request", reply.body
    (problem,) = reply.body["problems"]
    assert problem["field"] == f"series[0].regressors[0].{column}"
    assert problem["problem"].startswith(f"series S1/I1: {fragment}"), problem["problem"]
    assert fragment in reply.body["message"]


def test_values_within_the_limits_are_forecast(service):
    plan = [{"ds": "2026-07-01", "promo": 0, "price": 0.17}, {"ds": "2026-07-02", "promo": True, "price": 21.5}]
    assert service.handle(body(one("S1", "I1", regressors=plan))).status == 200


def test_true_or_false_is_a_flags_value_only(service):
    """JSON true is 1 for a 0/1 flag; for a price it is a client's bug, not a price of 1.0."""
    reply = service.handle(body(one("S1", "I1", regressors=[{"ds": "2026-07-01", "price": True}])))
    assert reply.status == 400, reply.body
    (problem,) = reply.body["problems"]
    assert problem["field"] == "series[0].regressors[0].price"
    assert "true is a 0/1 flag's value, and price is not a flag (positive): give a number" in problem["problem"]


def test_every_out_of_range_value_of_every_series_is_listed(service):
    """A baseline-served series is held to its rows' kinds as well; problems of several series come in one answer."""
    reply = service.handle(body(one("S1", "I2", regressors=[{"ds": "2026-07-03", "promo": 2, "price": -1}]),
                                one("S2", "I1", regressors=[{"ds": "2026-07-01", "promo": 1},
                                                            {"ds": "2026-07-02", "promo": 3}])))
    assert reply.status == 400
    assert [(p["field"], p["problem"].split(":")[0]) for p in reply.body["problems"]] == [
        ("series[0].regressors[0].promo", "series S1/I2"), ("series[0].regressors[0].price", "series S1/I2"),
        ("series[1].regressors[1].promo", "series S2/I1")]


def test_echoed_values_are_cut_short(service):
    """A 5 MB id is named by its first characters, not echoed twice in full."""
    huge = "X" * 5_000_000
    for raw in [body(one(huge, "I1")), json.dumps({"series": [one()], huge: 1}),
                body(one(regressors=[{"ds": huge, "promo": 1}])), body(one(horizon=huge)),
                body(one(regressors=[{"ds": "2026-07-01", huge: 1}]))]:
        reply = service.handle(raw)
        text = json.dumps(reply.body, ensure_ascii=False)
        assert reply.status == 400 and len(text) < 2_000, len(text)
        assert "X" * 8 + "\u2026" in text and "X" * 100 not in text  # cut, and the ellipsis says so


def test_too_many_series_is_a_413(serving_project):
    _, settings, _, _ = serving_project
    svc = ForecastService(settings, ServingConfig(max_series=3))
    reply = svc.handle(body(*[one("S1", "I1")] * 4))
    assert reply.status == 413 and reply.body["error"] == "too_many_series"
    assert reply.body["limit"] == 3 and "MM_ASSETS_SERVING_MAX_SERIES" in reply.body["message"]
    assert svc.handle(body(*[one("S1", "I1")] * 3)).status == 200


def test_a_form_encoded_empty_body_says_to_send_json(service):
    reply = service.handle("", content_type="application/x-www-form-urlencoded")
    assert reply.status == 400 and "Content-Type: application/json" in reply.body["message"]


# ---- configuration ------------------------------------------------------------------------------------
def test_a_missing_registry_stops_at_start_with_the_fix(tmp_path):
    with pytest.raises(RegistryUnavailable, match="make demo"):
        ModelLookup(f"sqlite:///{tmp_path}/nothing/registry.db")
    assert not (tmp_path / "nothing" / "registry.db").exists()


def test_limits_come_from_the_environment():
    config = ServingConfig.from_env({
        "MM_ASSETS_SERVING_CACHE_MODELS": "500", "MM_ASSETS_SERVING_CACHE_BYTES": "64MiB",
        "MM_ASSETS_SERVING_MAX_SERIES": "7", "MM_ASSETS_SERVING_REFRESH_S": "0",
        "MM_ASSETS_SERVING_FALLBACK": "latest", "MM_ASSETS_SERVING_SHARED_BYTES": "2GiB",
        "MM_ASSETS_SERVING_MAX_BODY_BYTES": "1MiB",
    })
    assert config == ServingConfig(cache_models=500, cache_bytes=64 * 2**20, max_series=7, refresh_s=0,
                                   fallback="latest", shared_bytes=2 * 2**30, max_body_bytes=2**20)
    assert ServingConfig.from_env({}) == ServingConfig() and ServingConfig().fallback == "baseline"
    assert parse_bytes("268435456") == parse_bytes("256MiB") == 256 * 2**20 and parse_bytes("1G") == 10**9
    assert parse_bytes("1.5MiB") == 3 * 2**19
    for name, value in [("MM_ASSETS_SERVING_CACHE_MODELS", "0"), ("MM_ASSETS_SERVING_CACHE_BYTES", "lots"),
                        ("MM_ASSETS_SERVING_SHARED_BYTES", "0"), ("MM_ASSETS_SERVING_MAX_BODY_BYTES", "a lot"),
                        ("MM_ASSETS_SERVING_MAX_BODY_BYTES", "1.9"),
                        ("MM_ASSETS_SERVING_CHAMPIONS_ONLY", "maybe"), ("MM_ASSETS_SERVING_FALLBACK", "newest")]:
        with pytest.raises(ServingConfigError, match=name):
            ServingConfig.from_env({name: value})


def test_champions_only_keeps_its_meaning_and_cannot_contradict_the_fallback():
    """Deployments that set MM_ASSETS_SERVING_CHAMPIONS_ONLY keep what it meant; false no longer means 'latest'
    (it never asked for it), and a contradiction is an error rather than a silent choice."""
    assert ServingConfig.from_env({"MM_ASSETS_SERVING_CHAMPIONS_ONLY": "true"}).fallback == "none"
    assert ServingConfig.from_env({"MM_ASSETS_SERVING_CHAMPIONS_ONLY": "false"}).fallback == "baseline"
    both = {"MM_ASSETS_SERVING_CHAMPIONS_ONLY": "true", "MM_ASSETS_SERVING_FALLBACK": "none"}
    assert ServingConfig.from_env(both).fallback == "none"
    with pytest.raises(ServingConfigError, match="disagree"):
        ServingConfig.from_env({"MM_ASSETS_SERVING_CHAMPIONS_ONLY": "true", "MM_ASSETS_SERVING_FALLBACK": "latest"})


def test_the_settings_file_can_ship_in_the_azure_ml_model_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mm_assets.yaml").write_text("horizon: 7\n")
    assert settings_file({"AZUREML_MODEL_DIR": str(tmp_path)}) == tmp_path / "model" / "mm_assets.yaml"
    assert settings_file({"AZUREML_MODEL_DIR": str(tmp_path), "MM_ASSETS_SETTINGS": "x.yaml"}) is None
    assert settings_file({}) is None


def test_serving_imports_no_dagster():
    code = ("import sys, mm_assets.serving.service, mm_assets.serving.lookup, mm_assets.serving.loopback; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_azure')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cached_entries_hold_bytes_not_model_objects(service):
    service.handle(body(one("S1", "I2")))
    entry = service.cache.peek("S1/I2")
    assert isinstance(entry.blob, bytes) and pickle.loads(entry.blob).name == "linear"
    assert entry.max_horizon == HORIZON and len(entry.ds) == len(entry.yhat) == HORIZON


@pytest.mark.parametrize("frequency", ["D", "W-MON"])
def test_the_stored_plan_is_the_planned_rows_on_the_forecast_dates(frequency):
    """The plan a cached series keeps is read from arrays: the same values as batch scoring's planned rows
    (``split_future``) reindexed on the forecast dates, around holes, unobserved history and rows off the dates."""
    from mm_assets.serving.cache_entry import stored_plan

    cfg = SeriesConfig(frequency=frequency, horizon=6, regressors=("price", "promo"))
    rng = np.random.default_rng(11)
    for _ in range(30):
        n = int(rng.integers(3, 40))
        ds = pd.date_range("2026-01-05", periods=n, freq=cfg.step)
        rows = pd.DataFrame({"ds": ds, "y": rng.uniform(0, 9, n), "price": rng.uniform(1, 3, n),
                             "promo": rng.integers(0, 2, n).astype(float)})
        planned = int(rng.integers(0, n - 1))  # the last rows are planned (no target) ...
        rows.loc[n - planned:, "y"] = np.nan
        rows = rows.drop(index=rng.choice(n, size=int(rng.integers(0, n // 3 + 1)), replace=False))  # ... with holes
        rows.loc[rng.random(len(rows)) < 0.1, "price"] = np.nan
        if not rows["y"].notna().any():
            continue
        last = rows.loc[rows["y"].notna(), "ds"].max()
        first = last + cfg.step * int(rng.integers(1, 3))
        got = stored_plan(rows.sample(frac=1.0, random_state=1), cfg, first, cfg.horizon)
        expected = split_future(rows, cfg).reindex(pd.date_range(first, periods=cfg.horizon, freq=cfg.step))
        for c in cfg.regressors:
            np.testing.assert_array_equal(got[c], expected[c].to_numpy(dtype=float))
        # a planned price of 0 or below is no plan for a model that reads the price as a price (batch scoring's)
        slipped = rows.assign(price=np.where(rows["y"].isna(), -5.0, rows["price"]))
        got = stored_plan(slipped, cfg, first, cfg.horizon, {"price": "positive", "promo": "flag"})
        assert np.isnan(got["price"]).all()
        np.testing.assert_array_equal(got["promo"], expected["promo"].to_numpy(dtype=float))
        as_is = stored_plan(slipped, cfg, first, cfg.horizon, {"price": "signed"})["price"]
        assert (as_is[~np.isnan(as_is)] == -5.0).all()


def test_a_small_partition_file_is_read_once_for_all_its_series(tmp_path, monkeypatch):
    """The series of a small partition file are cut from one kept read of it (the same rows as a filtered read);
    a rewritten file is read again; a file above the limit is read per series, filtered."""
    import mm_assets.serving.rows as rows_module
    from mm_assets.serving.rows import SeriesRows

    from .conftest import serving_settings_dict

    settings = Settings.model_validate(serving_settings_dict(tmp_path))
    lake = Lake(settings.storage.lake)
    days = pd.date_range("2026-01-01", periods=50, freq="D")

    def write(scale: float) -> None:
        frame = pd.concat([pd.DataFrame({"store": "S1", "item": item, "ds": days, "y": scale * (k + 1.0),
                                         "price": 2.0, "promo": 0.0}) for k, item in enumerate(["I1", "I2", "I3"])])
        lake.write_parquet(frame, dataset_file("S1"))

    def ask(rows: SeriesRows, item: str) -> pd.DataFrame:
        rows.signature("S1")
        return rows.read("S1", ["S1", item])

    write(1.0)
    rows = SeriesRows(lake, settings)
    assert rows.keep("S1") == 1 and rows.keep("S9") == 0  # read before a request (no published forecast here)
    first, second = ask(rows, "I1"), ask(rows, "I2")
    assert rows._kept.stats.loads == 1 and len(first) == len(second) == 50
    assert first["y"].eq(1.0).all() and second["y"].eq(2.0).all() and list(first.columns) == rows.columns
    time.sleep(0.01)
    write(10.0)  # a re-cut dataset: its new rows, read again
    assert ask(rows, "I3")["y"].eq(30.0).all() and rows._kept.stats.loads == 2
    assert ask(rows, "I4") is None  # not in the file

    assert rows._kept.peek(rows._path("S1")).index is not None  # rows of a series together: sliced, no id columns
    interleaved = lake.read_parquet(dataset_file("S1")).sort_values(["ds", "item"], ignore_index=True)
    time.sleep(0.01)
    lake.write_parquet(interleaved, dataset_file("S1"))  # a series in many places: kept with ids, filtered
    got = ask(rows, "I2")
    assert rows._kept.peek(rows._path("S1")).index is None
    assert got["ds"].is_monotonic_increasing and got["y"].eq(20.0).all() and len(got) == 50

    for limit in ("SMALL_FILE_BYTES", "KEPT_FILE_MAX_BYTES"):  # too large on disk, or in memory (a file of repeated
        with monkeypatch.context() as patched:          # values is 15-100 times smaller on disk): filtered reads
            patched.setattr(rows_module, limit, 10)
            filtered = SeriesRows(lake, settings)
            pd.testing.assert_frame_equal(ask(filtered, "I2"), ask(rows, "I2"))
            assert filtered._kept.stats.loads == 0 and filtered.keep("S1") == 0


def test_a_published_forecast_is_read_as_its_series_rows_sorted_by_date(tmp_path):
    """``SeriesRows.published``: one series' rows of its partition's file (the other series' left), sorted by date
    whatever the file's order, its text columns and missing notes as written, and the dataset it was scored from."""
    from mm_assets.parallel.contract import DATASET_SIGNATURE_KEY, predictions_file
    from mm_assets.serving.rows import PUBLISHED_COLUMNS, SeriesRows

    from .conftest import serving_settings_dict

    settings = Settings.model_validate(serving_settings_dict(tmp_path))
    lake = Lake(settings.storage.lake)
    days = pd.date_range("2026-03-01", periods=4, freq="D")
    frame = pd.concat([pd.DataFrame({
        "store": "S1", "item": item, "origin": pd.Timestamp("2026-02-28"), "ds": days, "yhat": [1.0, 2.0, 3.0, 4.0],
        "model_version": 3, "model_source": source, "envelope_replaced": [0, 1, 0, 0],
        "note": [None, "replaced: above the envelope", None, None]}) for item, source in [("I1", "champion"),
                                                                                           ("I2", "baseline")]])
    frame = frame.iloc[::-1].reset_index(drop=True)  # newest first: the reader sorts
    lake.write_parquet(frame, predictions_file("S1"), metadata={DATASET_SIGNATURE_KEY: "sig-1"})
    rows = SeriesRows(lake, settings)
    got = rows.published("S1", ["S1", "I1"])
    assert len(got) == 4 and got.dataset_signature == "sig-1" and set(got.columns) == set(PUBLISHED_COLUMNS)
    assert list(got["ds"]) == list(days.to_numpy()) and list(got["yhat"]) == [1.0, 2.0, 3.0, 4.0]
    assert list(got["model_source"]) == ["champion"] * 4 and list(got["envelope_replaced"]) == [0, 1, 0, 0]
    assert got["note"][1] == "replaced: above the envelope" and got["note"][0] is None
    assert rows.published("S1", ["S1", "I9"]) is None  # no rows of that series
    assert rows.published("S2", ["S2", "I1"]) is None  # no file


def test_a_worker_reads_the_small_files_of_its_champions_partitions_at_start(serving_project, monkeypatch):
    """``preload`` reads the partitions with the most champions first; a request of their series then reads no
    file, and the kept files' budget bounds what the start reads."""
    import mm_assets.serving.preload as preload_module

    _, settings, _, _ = serving_project
    service = ForecastService(settings)
    assert service.lookup.champion_partitions() == ["S1"]  # both champions are in S1
    assert service.preload() == (0, 1)  # no global model; S1's dataset (it has no published forecast)
    reply = service.handle(body(one("S1", "I1"), one("S1", "I2")))
    assert reply.status == 200 and service.rows._kept.stats.loads == 1  # no file read by the requests

    monkeypatch.setattr(preload_module, "PRELOAD_FILL", 0.0)  # a budget already full: nothing is read
    assert ForecastService(settings).preload_rows() == 0


def test_a_published_series_whose_dataset_is_gone_is_a_503_naming_it(serving_project, tmp_path):
    """Without its partition's dataset a baseline-served series cannot be fitted; when batch scoring published it,
    the answer names the missing file (a 503 to retry), not an unknown series (a 404 telling to check the ids)."""
    from mm_assets.parallel.contract import predictions_file

    _, settings, _, _ = serving_project
    local = local_lake(settings, tmp_path)
    lake = Lake(local.storage.lake)
    lake.delete(dataset_file("S2"))
    assert ForecastService(local).handle(body(one("S2", "I1"))).status == 404  # nothing says it exists
    lake.write_parquet(pd.DataFrame({"store": ["S2"], "item": ["I1"], "origin": [pd.Timestamp("2026-06-30")],
                                     "ds": [pd.Timestamp("2026-07-01")], "yhat": [1.0], "model_version": [0],
                                     "model_source": ["baseline"], "envelope_replaced": [0], "note": [None]}),
                       predictions_file("S2"))
    reply = ForecastService(local).handle(body(one("S2", "I1")))
    assert reply.status == 503 and reply.body["error"] == "data_unavailable"
    assert "datasets/S2.parquet is not in the lake" in reply.body["message"]


@pytest.mark.parametrize("setting, url, says", [
    ("PRODUCTION_REGISTRY", "postgresql+psycopg2://mm:s3cret@127.0.0.1:9/prod?connect_timeout=2",
     "storage.production_registry postgresql+psycopg2://mm:***@127.0.0.1:9/prod"),
    ("REGISTRY", "postgres://mm:s3cret@db.example/reg",
     "invalid settings in"),  # the settings refuse it, naming the field (below)
])
def test_a_store_the_endpoint_cannot_read_is_named_before_anything_else(tmp_path, setting, url, says):
    """Before: the driver's exception out of init(), after the preload's warnings, naming no setting."""
    from mm_assets.serving.startup import ServingStartError
    from mm_assets.settings import SettingsError

    (tmp_path / "s.yaml").write_text("horizon: 7\n")
    environ = {"MM_ASSETS_SETTINGS": str(tmp_path / "s.yaml"), "MM_ASSETS__STORAGE__LAKE": str(tmp_path / "lake"),
               f"MM_ASSETS__STORAGE__{setting}": url}
    with pytest.raises((ServingStartError, SettingsError)) as info:
        ForecastService.from_environment(environ)
    message = str(info.value)
    assert message.startswith(says) and "s3cret" not in message
    assert len(message.splitlines()) == 1 or ("storage.registry: postgres://mm:***@db.example/reg: its driver "
                                               "cannot be loaded") in message


def test_a_champion_trained_with_a_regressor_the_settings_dropped_answers_with_its_baseline(serving_project):
    """As batch scoring does, which cannot give the model that column: before, the endpoint answered 500
    ``model_unavailable`` with the model's KeyError while the warehouse held the baseline's forecast."""
    _, settings, _, _ = serving_project
    columns = settings.columns.model_copy(update={"regressors": ["price"]})  # promo dropped after training
    local = settings.model_copy(update={"columns": columns})
    reply = ForecastService(local).handle(body(one("S1", "I1", horizon=5)))
    assert reply.status == 200, reply.body
    answer = reply.body["forecasts"][0]
    assert (answer["model_source"], answer["model_type"], answer["model_version"]) == ("baseline", "baseline", 0)
    assert len(answer["points"]) == 5


def test_an_answer_says_when_the_settings_file_changed_since_the_endpoint_started(serving_project, tmp_path):
    """Batch scoring reads the settings at each run, the endpoint at its start: after the gap grew, a running
    endpoint answered the old weeks with the old champion, and said nothing, while the warehouse published the
    baseline on the new ones. Its answers now name the change and the fix; an edit that changes no setting, or the
    file restored, says nothing."""
    import yaml

    _, settings, _, _ = serving_project
    path = tmp_path / "mm_assets.yaml"
    path.write_text(yaml.safe_dump(json.loads(settings.model_dump_json())))
    environ = {"MM_ASSETS_SETTINGS": str(path), "MM_ASSETS_SERVING_REFRESH_S": "0"}
    service = ForecastService.from_environment(environ)

    def notes() -> str:
        reply = service.handle(body(one("S1", "I1")))
        assert reply.status == 200
        return reply.body["forecasts"][0]["note"] or ""

    assert "settings file" not in notes()
    original = path.read_text()
    path.write_text(original + "# a comment\n")
    assert "settings file" not in notes()  # no setting changed
    path.write_text(original.replace("gap: 0", "gap: 2"))
    note = notes()
    assert f"the settings file {path} changed since this endpoint started (gap: 0 -> 2): batch scoring reads it" in note
    assert note.endswith("restart the endpoint (make serve) or redeploy it with the file")
    path.write_text("horizon: [\n")  # half written
    assert "changed since this endpoint started and no longer loads" in notes()
    path.write_text(original)  # restored: the endpoint's settings are the file's again
    assert "settings file" not in notes()
