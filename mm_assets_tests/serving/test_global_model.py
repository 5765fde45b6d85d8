"""The online endpoint serves a global (lightgbm) model: the serving environment loads it, each series gets its
own view of the one model, and what-if plans change its forecast."""

from __future__ import annotations

import datetime as dt
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.global_training import train_global
from mm_assets.forecasting.models import as_series_model
from mm_assets.forecasting.series import SeriesConfig
from mm_assets.forecasting.training import TrainOutcome, forecast_from_model
from mm_assets.serving.answer import TAIL_NOTE
from mm_assets.serving.limits import number
from mm_assets.serving.service import ForecastService
from mm_assets.serving.synthetic import daily_rows, write_registry
from mm_assets.settings import Settings

from .conftest import serving_settings_dict

pytestmark = pytest.mark.serving
SERIES = [("S1", "I1"), ("S1", "I2"), ("S2", "I1")]


@pytest.fixture(scope="module")
def global_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("global")
    data = serving_settings_dict(root)
    data["model"] = {"type": "lightgbm", "params": {"num_boost_round": 40}}
    data["horizon"] = 7
    settings = Settings.model_validate(data)
    cfg = SeriesConfig.from_settings(settings)
    end = dt.date(2026, 6, 30)
    frame = pd.concat([daily_rows(200, k, end).assign(store=s, item=i) for k, (s, i) in enumerate(SERIES)],
                      ignore_index=True).sort_values(["store", "item", "ds"], ignore_index=True)
    model, outcomes, _ = train_global(frame, ["store", "item"], cfg, settings.model.params)
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    models = [(blob, outcomes[i]) for i in range(len(SERIES))]
    assert all(isinstance(o, TrainOutcome) and o.model_type == "lightgbm" for _, o in models)
    write_registry(settings, SERIES, models, run_id="g1", shared=True)  # a store's series share one byte range
    return settings, model


def test_a_runs_global_model_registered_once_is_one_model_for_every_store(tmp_path):
    """Training registers a run's global model once and the gate copies it once, whatever the stores of its
    series: the endpoint then unpickles it once and every store's series run the same boosters (which stay in the
    CPU's caches), not a copy per store. ``one_bundle`` registers it so (the online benchmark's layout)."""
    data = serving_settings_dict(tmp_path)
    data["model"] = {"type": "lightgbm", "params": {"num_boost_round": 10}}
    data["horizon"] = 7
    settings = Settings.model_validate(data)
    end = dt.date(2026, 6, 30)
    frame = pd.concat([daily_rows(120, k, end).assign(store=s, item=i) for k, (s, i) in enumerate(SERIES)],
                      ignore_index=True).sort_values(["store", "item", "ds"], ignore_index=True)
    model, outcomes, _ = train_global(frame, ["store", "item"], SeriesConfig.from_settings(settings),
                                      settings.model.params)
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    registered = write_registry(settings, SERIES, [(blob, outcomes[k]) for k in range(len(SERIES))], run_id="g2",
                                shared=True, one_bundle=True)
    assert registered["artifact_uri"].nunique() == 1 and registered["artifact_offset"].nunique() == 1
    service = ForecastService(settings)
    plan = [{"ds": dt.date(2026, 7, 2).isoformat(), "price": 1.0, "promo": 1}]
    reply = service.handle(json.dumps({"series": [{"store": s, "item": i, "horizon": 7, "regressors": plan}
                                                  for s, i in SERIES]}))
    assert reply.status == 200, reply.body
    assert len(service.shared) == service.shared.loads == 1  # S1's and S2's series: one model read
    boosters = {id(service._shared_model(service.cache.peek(f"{s}/{i}").ref).booster(0)) for s, i in SERIES}
    assert len(boosters) == 1


def test_each_series_gets_the_global_models_forecast(global_project):
    settings, model = global_project
    service = ForecastService(settings)
    reply = service.handle(json.dumps({"series": [{"store": s, "item": i, "horizon": 7} for s, i in SERIES]}))
    assert reply.status == 200, reply.body
    answers = {(a["store"], a["item"]): a for a in reply.body["forecasts"]}
    for s, i in SERIES:
        expected, _ = forecast_from_model(as_series_model(model, [s, i]), model.cfg, horizon=7)
        got = [p["yhat"] for p in answers[(s, i)]["points"]]
        np.testing.assert_allclose(got, expected["yhat"].to_numpy(), rtol=1e-9)
        assert answers[(s, i)]["model_type"] == "lightgbm"
        assert answers[(s, i)]["note"] == TAIL_NOTE  # no dataset in this lake: it says so
    # a large model is unpickled once per byte range (one per store's bundle here) and reused
    assert len(service.shared) == service.shared.loads == 2
    service.handle(json.dumps({"series": [{"store": s, "item": i, "horizon": 3, "regressors": []} for s, i in SERIES]}))
    assert service.shared.loads == 2


def test_a_what_if_plan_changes_the_forecast(global_project):
    settings, _ = global_project
    service = ForecastService(settings)
    base = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1", "horizon": 7}]}))
    first = base.body["forecasts"][0]["points"][0]["ds"]
    plan = [{"ds": first, "price": 1.0, "promo": 1}]
    what_if = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1", "horizon": 7,
                                                      "regressors": plan}]}))
    assert what_if.status == 200, what_if.body
    assert what_if.body["forecasts"][0]["planned_periods"] == 1
    assert what_if.body["forecasts"][0]["points"][0]["yhat"] != base.body["forecasts"][0]["points"][0]["yhat"]


def test_a_global_what_if_is_computed_from_arrays_and_equals_the_general_path(global_project, monkeypatch):
    """Once the series is cached, a what-if runs the boosters on the history cut to what the features read, with no
    pandas frame per request: the same numbers as forecasting the whole series with the plan."""
    import mm_assets.serving.service as service_module

    settings, model = global_project
    service = ForecastService(settings)
    base = service.handle(json.dumps({"series": [{"store": "S1", "item": "I2", "horizon": 7}]}))
    assert base.status == 200, base.body
    days = [p["ds"] for p in base.body["forecasts"][0]["points"]]
    rng = np.random.default_rng(3)
    plans = [[{"ds": days[j], "price": float(rng.choice([0.8, 1.0, 1.6, 2.4])), "promo": int(rng.integers(0, 2))}
              for j in sorted(rng.choice(7, size=int(rng.integers(1, 8)), replace=False))] for _ in range(5)]

    def general_path(*args, **kwargs):
        raise AssertionError("the general forecast path was used for a global model's what-if")

    monkeypatch.setattr(service_module, "forecast_from_model", general_path)
    answers = []
    for plan in plans:
        reply = service.handle(json.dumps({"series": [{"store": "S1", "item": "I2", "horizon": 7,
                                                        "regressors": plan}]}))
        assert reply.status == 200, reply.body
        answers.append(reply.body["forecasts"][0])
    monkeypatch.undo()
    view = as_series_model(model, ["S1", "I2"])
    for plan, answer in zip(plans, answers):
        planned = pd.DataFrame({"price": np.nan, "promo": np.nan}, index=pd.DatetimeIndex(pd.to_datetime(days),
                                                                                          name="ds"))
        for row in plan:
            planned.loc[pd.Timestamp(row["ds"]), ["price", "promo"]] = [row["price"], row["promo"]]
        expected, info = forecast_from_model(view, model.cfg, horizon=7, planned=planned)
        np.testing.assert_allclose([p["yhat"] for p in answer["points"]], expected["yhat"], rtol=1e-9)
        assert answer["planned_periods"] == info["planned_periods"] == len(plan)


def test_cached_series_do_not_hold_their_global_model(global_project):
    """Global models are kept within their own byte budget, apart from the series' entries: a cached series holds
    no model, and a what-if on a series whose model was dropped reads it again and answers the same."""
    import gc
    import weakref

    from mm_assets.serving.config import ServingConfig

    settings, _ = global_project
    service = ForecastService(settings, ServingConfig(shared_bytes=1))  # room for the newest model only

    def ask(store: str, item: str, plan: list | None = None) -> list[float]:
        series = {"store": store, "item": item, "horizon": 7, **({"regressors": plan} if plan else {})}
        reply = service.handle(json.dumps({"series": [series]}))
        assert reply.status == 200, reply.body
        return [p["yhat"] for p in reply.body["forecasts"][0]["points"]]

    default = ask("S1", "I1")
    plan = [{"ds": (dt.date(2026, 7, 2)).isoformat(), "price": 1.0, "promo": 1}]
    what_if = ask("S1", "I1", plan)
    kept = weakref.ref(service._shared_model(service.cache.peek("S1/I1").ref))  # kept: no read
    assert service.shared.loads == 1
    ask("S2", "I1")  # the other store's model: the first one is dropped
    gc.collect()
    assert len(service.shared) == 1 and service.shared.loads == 2
    assert kept() is None  # nothing else held it: not the cached S1/I1 entry
    assert ask("S1", "I1") == default and service.shared.loads == 2  # a cached default needs no model
    np.testing.assert_allclose(ask("S1", "I1", plan), what_if, rtol=1e-12)
    assert service.shared.loads == 3
    # a request that had to read a global model again says so (the series itself was cached: no cache miss)
    reply = service.handle(json.dumps({"series": [{"store": "S2", "item": "I1", "horizon": 7, "regressors": plan}]}))
    assert reply.headers["x-mm-shared-loads"] == "1" and reply.headers["x-mm-cache-misses"] == "0"
    reply = service.handle(json.dumps({"series": [{"store": "S2", "item": "I1", "horizon": 7, "regressors": plan}]}))
    assert reply.headers["x-mm-shared-loads"] == "0"


def test_a_worker_reads_the_champions_global_models_before_its_first_request(global_project, monkeypatch, caplog):
    """``from_environment`` (a worker's ``init``) reads the global models current champions point at, the
    most-served first, within the shared budget: a store's first request no longer waits for its model."""
    import logging

    import lightgbm

    from mm_assets.serving.config import ServingConfig
    from mm_assets.serving.lookup import SharedArtifact

    settings, _ = global_project
    service = ForecastService(settings)
    artifacts = service.lookup.shared_champions(1)
    assert [a.series for a in artifacts] == [2, 1]  # store S1's model serves two series, S2's one
    parsed = []

    class CountedBooster(lightgbm.Booster):
        def __init__(self, *args, **kwargs):
            parsed.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(lightgbm, "Booster", CountedBooster)
    assert service.preload_shared() == 2 and len(service.shared) == 2
    at_start = len(parsed)
    assert at_start >= 2  # every booster of both models, parsed before any request
    reply = service.handle(json.dumps({"series": [{"store": s, "item": i, "horizon": 7} for s, i in SERIES]}))
    assert reply.status == 200 and reply.headers["x-mm-shared-loads"] == "0"
    assert reply.headers["x-mm-cache-misses"] == "3" and service.shared.loads == 2
    plan = [{"ds": reply.body["forecasts"][0]["points"][0]["ds"], "promo": 1}]
    reply = service.handle(json.dumps({"series": [{"store": s, "item": i, "horizon": 7, "regressors": plan}
                                                  for s, i in SERIES]}))
    assert reply.status == 200 and len(parsed) == at_start  # the what-ifs parsed nothing more

    # room for one: the most-served; the other store's model is read by its first request, as before
    one = ForecastService(settings, ServingConfig(shared_bytes=artifacts[0].artifact_size))
    assert one.preload_shared() == 1
    reply = one.handle(json.dumps({"series": [{"store": "S2", "item": "I1", "horizon": 7}]}))
    assert reply.status == 200 and reply.headers["x-mm-shared-loads"] == "1"

    # a model that cannot be read is logged and left to its first request; the others are still read
    broken = ForecastService(settings)
    missing = SharedArtifact(artifacts[0].artifact_uri.replace("bundle.bin", "gone.bin"), 0, 10**6, 5)
    monkeypatch.setattr(broken.lookup, "shared_champions", lambda min_bytes: [missing, *artifacts])
    with caplog.at_level(logging.WARNING, logger="azmlinfsrv.mm_assets"):
        assert broken.preload_shared() == 2
    assert "cannot be preloaded" in caplog.text and "gone.bin" in caplog.text


def test_superseded_and_small_models_are_not_preloaded(global_project, tmp_path):
    """Only the newest champion row of each series counts, and only models of global size."""
    from mm_assets.registry.production import ProductionRegistry
    from mm_assets.serving.lookup import ModelLookup
    from mm_assets.serving.synthetic import add_champions

    settings, _ = global_project
    production = f"sqlite:///{tmp_path}/production.db"

    def rows(uri: str, size: int, keys: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"series_key": keys, "partition_key": "S1", "ids": "{}", "model_type": "lightgbm", "version": 1,
                             "accuracy": 0.9, "wape": 0.1, "mase": 0.5, "metrics": "{}", "data_end": pd.Timestamp(
                                 "2026-06-30"), "artifact_uri": uri, "artifact_offset": 0, "artifact_size": size})

    add_champions(production, rows("lake://old.bin", 10**6, ["S1/I1", "S1/I2", "S1/I3"]), run_id="day1")
    add_champions(production, rows("lake://new.bin", 10**6, ["S1/I1", "S1/I2"]), run_id="day2")
    add_champions(production, rows("lake://small.bin", 100, ["S1/I4"]), run_id="day2")
    for pointers in (False, True):  # each series' newest row, then the gate's pointers to the current ones
        if pointers:
            ProductionRegistry(production, writable=True).engine.dispose()  # a writable handle catches them up
        lookup = ModelLookup(settings.storage.registry, production)
        try:
            found = [(a.artifact_uri, a.series) for a in lookup.shared_champions(1000)]
            assert lookup.champion_partitions() == ["S1"]
        finally:
            lookup.dispose()
        assert found == [("lake://new.bin", 2), ("lake://old.bin", 1)]  # old.bin still serves S1/I3


def test_a_what_if_beyond_the_series_history_says_it_is_not_evidence(global_project):
    """The model saw no price outside the series' own range: a plan there says so in its note."""
    settings, _ = global_project
    service = ForecastService(settings)
    base = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1", "horizon": 7}]}))
    first = base.body["forecasts"][0]["points"][0]["ds"]
    limit = service.cache.peek("S1/I1").limits["price"]
    low, high = limit.seen

    def note(price: float) -> str:
        reply = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1", "horizon": 7,
                                                        "regressors": [{"ds": first, "price": price}]}]}))
        assert reply.status == 200, reply.body
        return reply.body["forecasts"][0]["note"] or ""

    assert "beyond this series' history" not in note((low + high) / 2)
    assert "beyond" not in note(float(number(high))) and "beyond" not in note(float(number(low)))  # as printed
    above = note(1.5 * high)
    assert f"price {number(1.5 * high)} beyond this series' history (price {number(low)}..{number(high)})" in above
    assert "a guess, not a measured effect" in above and "beyond" in note(0.5 * low)


@pytest.fixture(scope="module")
def published_project(tmp_path_factory):
    """A lake as a deployment has it for a global model, but for batch scoring's published forecasts (which name
    the dataset they were scored from: a test publishes them in its copy of the lake, ``published``): each
    store's series share one model's byte range of its store's bundle (``models/<store>/g1/bundle.bin``) and
    their datasets hold their history and plan."""
    from mm_assets.ingest.datasets import dataset_file
    from mm_assets.lake import Lake
    from mm_assets.serving.synthetic import add_champions, plan_rows, write_datasets

    from .conftest import END, PLAN_DAYS

    root = tmp_path_factory.mktemp("published")
    settings = Settings.model_validate({**serving_settings_dict(root),
                                        "model": {"type": "lightgbm", "params": {"num_boost_round": 40}}})
    write_datasets(settings, SERIES, [pd.concat([daily_rows(150, k, END), plan_rows(PLAN_DAYS, k, END)],
                                                ignore_index=True) for k in range(len(SERIES))])
    lake = Lake(settings.storage.lake)
    frame = pd.concat([lake.read_parquet(dataset_file(s)) for s in ("S1", "S2")], ignore_index=True)
    model, outcomes, _ = train_global(frame, ["store", "item"], SeriesConfig.from_settings(settings),
                                      settings.model.params)
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    registered = write_registry(settings, SERIES, [(blob, outcomes[k]) for k in range(len(SERIES))], run_id="g1",
                                promote=False, shared=True)
    add_champions(settings.storage.production_registry, registered)
    return settings


def published(settings: Settings, tmp_path) -> tuple[Settings, pd.DataFrame]:
    """A copy of the project's lake and registries (``relocated``) with its published forecasts, and their rows."""
    from mm_assets.serving.synthetic import publish_forecasts

    from .conftest import relocated

    local = relocated(settings, tmp_path)
    return local, publish_forecasts(local, ["S1", "S2"])


def test_a_global_model_that_cannot_be_read_answers_from_the_published_forecast(published_project, tmp_path,
                                                                                 caplog):
    """A store's global model cut short in the lake: its series' default answers are the published batch forecast
    they are anyway (with a note), a what-if is a 503 naming the model's file, the error is logged once for the
    file, not per series or request, and the model serves again once its file can be read."""
    import logging

    from mm_assets.lake import Lake
    from mm_assets.serving.answer import UNREADABLE_NOTE
    from mm_assets.serving.config import ServingConfig

    local, batch = published(published_project, tmp_path)
    ask = json.dumps({"series": [{"store": s, "item": i} for s, i in SERIES]})
    good = ForecastService(local).handle(ask)
    assert good.status == 200 and [a["note"] for a in good.body["forecasts"]] == [None] * 3
    for answer in good.body["forecasts"]:  # the published forecast, as the warehouse has it
        rows = batch[batch["series_key"] == f"{answer['store']}/{answer['item']}"].sort_values("ds")
        assert [p["yhat"] for p in answer["points"]] == rows["yhat"].tolist()
    lake = Lake(local.storage.lake)
    bundle = lake.read_bytes("models", "S1", "g1", "bundle.bin")
    lake.write_bytes(bundle[: len(bundle) // 2], "models", "S1", "g1", "bundle.bin")
    first = good.body["forecasts"][0]["points"][0]["ds"]
    what_if = json.dumps({"series": [{"store": "S1", "item": "I2", "regressors": [{"ds": first, "promo": 1}]}]})

    service = ForecastService(local, ServingConfig(refresh_s=0))  # re-checked at every request
    with caplog.at_level(logging.INFO, logger="azmlinfsrv.mm_assets"):
        for _ in range(3):
            reply = service.handle(ask)
            assert reply.status == 200, reply.body
            assert [a["note"] for a in reply.body["forecasts"]] == [UNREADABLE_NOTE, UNREADABLE_NOTE, None]
            assert [{**a, "note": None} for a in reply.body["forecasts"]] == good.body["forecasts"]
            refused = service.handle(what_if)
            assert refused.status == 503 and refused.body["error"] == "model_unavailable", refused.body
            assert "champion model v1 of series S1/I2" in refused.body["message"]
            assert "models/S1/g1/bundle.bin" in refused.body["message"] and str(tmp_path) not in refused.body["message"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "models/S1/g1/bundle.bin" in errors[0]  # once for the file, with its traceback
    assert "Traceback" in errors[0]

    lake.write_bytes(bundle, "models", "S1", "g1", "bundle.bin")  # rewritten whole
    reply = service.handle(what_if)
    assert reply.status == 200 and reply.body["forecasts"][0]["planned_periods"] >= 1
    assert service.handle(ask).body == good.body


def test_a_what_if_whose_dropped_global_model_became_unreadable_is_a_503(published_project, tmp_path):
    """A cached series keeps its answer, not its global model: when the model was dropped from the worker's budget
    and its file cannot be read meanwhile, its what-if is the 503 naming the file (not an unexpected 500), and its
    default answer is still the cached one."""
    from mm_assets.lake import Lake
    from mm_assets.serving.config import ServingConfig

    local, _ = published(published_project, tmp_path)
    service = ForecastService(local, ServingConfig(shared_bytes=1))  # room for the newest model only
    default = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1"}]}))
    assert default.status == 200
    assert service.handle(json.dumps({"series": [{"store": "S2", "item": "I1"}]})).status == 200  # S1's dropped
    lake = Lake(local.storage.lake)
    lake.write_bytes(b"\x80\x05not a model", "models", "S1", "g1", "bundle.bin")
    first = default.body["forecasts"][0]["points"][0]["ds"]
    reply = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1",
                                                   "regressors": [{"ds": first, "promo": 1}]}]}))
    assert reply.status == 503 and reply.body["error"] == "model_unavailable", reply.body
    assert "models/S1/g1/bundle.bin" in reply.body["message"]
    assert service.handle(json.dumps({"series": [{"store": "S1", "item": "I1"}]})).body == default.body


def test_a_cached_series_keeps_its_published_answer_while_the_published_file_cannot_be_read(published_project,
                                                                                           tmp_path, caplog,
                                                                                           monkeypatch):
    """Another writer rewrites a store's published forecast in place: for a moment it is cut short, or the lake does
    not answer. A cached series' refresh keeps its answer (the warehouse's) and reads the file again later, the
    file's error logged once per version of it; only a series without a cached answer is forecast alone meanwhile,
    and its note says why. Once the file can be read, both answer from it."""
    import logging

    from mm_assets.lake import Lake
    from mm_assets.parallel.contract import predictions_file
    from mm_assets.serving.answer import ALONE_UNREADABLE_NOTE
    from mm_assets.serving.config import ServingConfig

    local, _ = published(published_project, tmp_path)
    ask = {item: json.dumps({"series": [{"store": "S1", "item": item}]}) for item in ("I1", "I2")}
    good = {item: ForecastService(local).handle(request).body for item, request in ask.items()}
    assert [good[item]["forecasts"][0]["note"] for item in ask] == [None, None]
    service = ForecastService(local, ServingConfig(refresh_s=0))  # re-checked at every request
    assert service.handle(ask["I1"]).body == good["I1"]
    lake = Lake(local.storage.lake)
    whole = lake.read_bytes(predictions_file("S1"))
    lake.write_bytes(whole[: len(whole) // 2], predictions_file("S1"))  # mid-rewrite
    with caplog.at_level(logging.WARNING, logger="azmlinfsrv.mm_assets"):
        for _ in range(3):
            assert service.handle(ask["I1"]).body == good["I1"]
        alone = service.handle(ask["I2"])  # not cached: forecast alone, and it says why
    assert alone.status == 200 and alone.body["forecasts"][0]["note"] == ALONE_UNREADABLE_NOTE
    logged = [r.getMessage() for r in caplog.records if "predictions/S1.parquet" in r.getMessage()]
    assert len(logged) == 1 and "cannot be read" in logged[0]  # once for this version of the file

    lake.write_bytes(whole, predictions_file("S1"))  # the writer is done: both answer the warehouse's forecast
    assert service.handle(ask["I1"]).body == good["I1"] and service.handle(ask["I2"]).body == good["I2"]
    loads = service.cache.stats.loads

    info = lake.fs.info  # the lake does not answer for the file: the cached answers stand, as they are

    def unreachable(path, **kwargs):
        if str(path).endswith(predictions_file("S1")):
            raise ConnectionError("lake unreachable")
        return info(path, **kwargs)

    monkeypatch.setattr(lake.fs, "info", unreachable)
    assert service.handle(ask["I1"]).body == good["I1"] and service.handle(ask["I2"]).body == good["I2"]
    assert service.cache.stats.loads == loads


def test_a_global_champion_trained_for_a_shorter_horizon_answers_what_it_can(global_project):
    """The settings' horizon grew after training (7 → 10): before, every request of its series was a 500, even one
    within the 7 periods the model forecasts; the model's reach was not read through the series' view."""
    settings, model = global_project
    service = ForecastService(settings.model_copy(update={"horizon": 10}))
    reply = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1", "horizon": 7}]}))
    assert reply.status == 200, reply.body
    expected, _ = forecast_from_model(as_series_model(model, ["S1", "I1"]), model.cfg, horizon=7)
    np.testing.assert_allclose([p["yhat"] for p in reply.body["forecasts"][0]["points"]],
                               expected["yhat"].to_numpy(), rtol=1e-9)
    reply = service.handle(json.dumps({"series": [{"store": "S1", "item": "I1", "horizon": 10}]}))
    assert reply.status == 400 and "forecasts at most 7 periods" in reply.body["message"]


def _tight_envelope(service, key: str, default: list[float]) -> float:
    """Narrow the cached series' envelope to just above its default forecast (so a plan that lifts any period
    leaves it); returns the bound."""
    import dataclasses

    entry = service.cache.peek(key)
    reference = entry.what_if.reference
    multiple = max(default) / reference * 1.0001
    cfg = dataclasses.replace(entry.what_if.cfg, envelope_multiple=multiple)
    entry.what_if = dataclasses.replace(entry.what_if, cfg=cfg)
    entry.cfg = cfg
    return multiple * reference


def test_a_what_if_above_the_envelope_is_capped_at_its_bound_not_replaced_by_the_baseline(global_project):
    """A promotion deeper than anything the series sold lately can take the model's forecast above the envelope.
    The baseline reads no plan, so replacing the answer with it could answer a promotion with less than no
    promotion; the what-if is capped at the bound instead, labelled the model's, and says so."""
    settings, _ = global_project
    service = ForecastService(settings)
    ask = {"store": "S1", "item": "I1", "horizon": 7}
    base = service.handle(json.dumps({"series": [ask]})).body["forecasts"][0]
    default = [p["yhat"] for p in base["points"]]
    low = service.cache.peek("S1/I1").limits["price"].seen[0]
    plan = [{"ds": p["ds"], "price": low, "promo": 1} for p in base["points"]]
    free = service.handle(json.dumps({"series": [{**ask, "regressors": plan}]})).body["forecasts"][0]
    lifted = [p["yhat"] for p in free["points"]]
    assert max(lifted) > max(default) and free["note"] == base["note"]  # inside the default envelope
    bound = _tight_envelope(service, "S1/I1", default)
    reply = service.handle(json.dumps({"series": [{**ask, "regressors": plan}]}))
    assert reply.status == 200, reply.body
    answer = reply.body["forecasts"][0]
    capped = [p["yhat"] for p in answer["points"]]
    assert (answer["model_source"], answer["model_type"]) == ("champion", "lightgbm")
    assert capped == pytest.approx(np.minimum(lifted, bound).tolist(), rel=1e-12)
    assert max(capped) == pytest.approx(bound) and min(c - d for c, d in zip(capped, default)) >= -1e-9 * bound
    assert answer["note"].startswith(f"{base['note']}; envelope: this plan's forecast reaches {max(lifted):.6g}")
    assert "capped there" in answer["note"]
    again = service.handle(json.dumps({"series": [ask]})).body["forecasts"][0]
    assert [p["yhat"] for p in again["points"]] == default and again["note"] == base["note"]  # no plan: as before
