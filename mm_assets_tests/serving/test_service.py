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

from mm_assets.forecasting.training import forecast_from_model
from mm_assets.lake import Lake
from mm_assets.registry.model_registry import ModelRegistry
from mm_assets.serving.config import ServingConfig, ServingConfigError, parse_bytes, settings_file
from mm_assets.serving.lookup import ModelLookup, RegistryUnavailable
from mm_assets.serving.service import ForecastService
from mm_assets.settings import Settings

from .conftest import HORIZON

pytestmark = pytest.mark.serving


def body(*series) -> str:
    return json.dumps({"series": list(series)})


def one(store="S1", item="I2", **extra) -> dict:
    return {"store": store, "item": item, **extra}


@pytest.fixture(scope="module")
def service(serving_project):
    _, settings, _, _ = serving_project
    return ForecastService(settings)


def reference(settings: Settings, rows: pd.DataFrame, key: str, horizon: int, planned=None):
    """What the batch code computes for this series' model: forecast_from_model on the stored model."""
    registry = ModelRegistry(settings.storage.registry, Lake(settings.storage.lake), read_only=True)
    model = registry.load_model(rows.set_index("series_key").loc[key])
    return forecast_from_model(model, model.cfg, horizon=horizon, planned=planned)


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
def test_forecasts_are_the_stored_models_forecasts(service, serving_project, horizon):
    _, settings, _, rows = serving_project
    reply = service.handle(body(*[one(s, i, horizon=horizon) for s, i in [("S1", "I2"), ("S2", "I1"), ("S2", "I2")]]))
    assert reply.status == 200, reply.body
    for answer in reply.body["forecasts"]:
        key = f"{answer['store']}/{answer['item']}"
        expected, info = reference(settings, rows, key, horizon)
        assert answer["horizon"] == horizon and len(answer["points"]) == horizon
        assert [p["ds"] for p in answer["points"]] == [d.date().isoformat() for d in expected["ds"]]
        np.testing.assert_allclose([p["yhat"] for p in answer["points"]], expected["yhat"], rtol=1e-9, atol=1e-9)
        assert answer["origin"] == info["origin"].date().isoformat() == "2026-06-30"
        assert answer["planned_periods"] == 0 and answer["model_version"] == 1
        assert answer["model_source"] == "latest"
    types = {f"{a['store']}/{a['item']}": a["model_type"] for a in reply.body["forecasts"]}
    assert types == {"S1/I2": "linear", "S2/I1": "linear", "S2/I2": "baseline"}


def test_the_champion_serves_rather_than_a_newer_trained_version(service, serving_project):
    _, settings, _, rows = serving_project
    reply = service.handle(body(one("S1", "I1", horizon=5)))
    answer = reply.body["forecasts"][0]
    assert (answer["model_source"], answer["model_version"]) == ("champion", 1)
    expected, _ = reference(settings, rows, "S1/I1", 5)  # rows are the v1 registrations
    np.testing.assert_allclose([p["yhat"] for p in answer["points"]], expected["yhat"], rtol=1e-9)


def test_without_a_production_registry_the_latest_version_serves(serving_project, tmp_path):
    _, settings, _, _ = serving_project
    storage = settings.storage.model_copy(update={"production_registry": f"sqlite:///{tmp_path}/none.db"})
    plain = ForecastService(settings.model_copy(update={"storage": storage}))
    answer = plain.handle(body(one("S1", "I1"))).body["forecasts"][0]
    assert (answer["model_source"], answer["model_version"]) == ("latest", 2)
    assert not (tmp_path / "none.db").exists()  # looking for it never creates it


def test_champions_only_makes_a_series_without_champion_unknown(serving_project):
    _, settings, _, _ = serving_project
    strict = ForecastService(settings, ServingConfig(champions_only=True))
    assert strict.handle(body(one("S1", "I1"))).status == 200
    reply = strict.handle(body(one("S1", "I2")))
    assert reply.status == 404 and reply.body["series"] == [{"store": "S1", "item": "I2"}]


def test_planned_regressors_are_used_and_the_rest_default(service, serving_project):
    _, settings, _, rows = serving_project
    plan = [{"ds": "2026-07-02", "promo": 1}, {"ds": "2026-07-04", "price": 1.5, "promo": 1}]
    reply = service.handle(body(one("S1", "I2", horizon=7, regressors=plan)))
    assert reply.status == 200, reply.body
    answer = reply.body["forecasts"][0]
    planned = pd.DataFrame({"price": [np.nan, 1.5], "promo": [1.0, 1.0]},
                           index=pd.DatetimeIndex(["2026-07-02", "2026-07-04"], name="ds"))
    expected, info = reference(settings, rows, "S1/I2", 7, planned=planned)
    np.testing.assert_allclose([p["yhat"] for p in answer["points"]], expected["yhat"], rtol=1e-9)
    assert answer["planned_periods"] == info["planned_periods"] == 2
    default = service.handle(body(one("S1", "I2", horizon=7))).body["forecasts"][0]["points"]
    changed = [a["yhat"] != b["yhat"] for a, b in zip(answer["points"], default)]
    assert changed[1] and changed[3] and not changed[0]  # the promotion days differ, day 1 does not


def test_a_linear_what_if_is_computed_from_arrays_without_the_general_path(serving_project, monkeypatch):
    """The what-if path of a linear model builds no pandas frames per request: the general path (which the test
    above checks it against) is not called once the model is cached."""
    import mm_assets.serving.service as service_module

    _, settings, _, rows = serving_project
    fresh = ForecastService(settings)
    assert fresh.handle(body(one("S1", "I2", horizon=7))).status == 200  # loads and caches the model

    def general_path(*args, **kwargs):
        raise AssertionError("the general forecast path was used for a linear what-if")

    monkeypatch.setattr(service_module, "forecast_from_model", general_path)
    plan = [{"ds": "2026-07-03", "price": 2.5}]
    reply = fresh.handle(body(one("S1", "I2", horizon=5, regressors=plan)))
    assert reply.status == 200, reply.body
    monkeypatch.undo()
    planned = pd.DataFrame({"price": [2.5], "promo": [np.nan]}, index=pd.DatetimeIndex(["2026-07-03"], name="ds"))
    expected, info = reference(settings, rows, "S1/I2", 5, planned=planned)
    answer = reply.body["forecasts"][0]
    np.testing.assert_allclose([p["yhat"] for p in answer["points"]], expected["yhat"], rtol=1e-9)
    assert [p["ds"] for p in answer["points"]] == [d.date().isoformat() for d in expected["ds"]]
    assert answer["planned_periods"] == info["planned_periods"] == 1


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
    # the bytes, the default forecast, the entry's overhead, and a linear model kept for what-ifs (counted as
    # its pickle's size) with its forecast periods' design rows
    assert entry.what_if is not None
    assert entry.size == 2 * len(entry.blob) + entry.yhat.nbytes + 1024 + entry.what_if.rows.rows.nbytes


def test_a_new_version_is_picked_up_after_the_refresh_interval(serving_project, tmp_path):
    from mm_assets.serving.synthetic import train_models, write_registry

    _, settings, _, _ = serving_project
    shutil.copy(settings.storage.registry.removeprefix("sqlite:///"), tmp_path / "registry.db")
    storage = settings.storage.model_copy(update={"registry": f"sqlite:///{tmp_path}/registry.db"})
    local = settings.model_copy(update={"storage": storage})
    svc = ForecastService(local, ServingConfig(refresh_s=0))
    assert svc.handle(body(one("S2", "I1"))).body["forecasts"][0]["model_version"] == 1
    assert svc.handle(body(one("S2", "I1"))).headers["x-mm-cache-misses"] == "1"  # re-checked, same model
    assert svc.cache.stats.loads == 1
    write_registry(local, [("S2", "I1")], train_models(local, 1, days=150, seed=5), run_id="r3")
    answer = svc.handle(body(one("S2", "I1"))).body["forecasts"][0]
    assert answer["model_version"] == 2 and svc.cache.stats.loads == 2


def test_a_model_that_cannot_be_read_is_a_500_and_the_service_goes_on(serving_project, tmp_path):
    _, settings, _, rows = serving_project
    shutil.copy(settings.storage.registry.removeprefix("sqlite:///"), tmp_path / "registry.db")
    storage = settings.storage.model_copy(update={"registry": f"sqlite:///{tmp_path}/registry.db"})
    local = settings.model_copy(update={"storage": storage})
    broken = rows[rows["series_key"] == "S2/I1"].drop(columns=["version", "run_id", "trained_at"])
    broken = broken.assign(artifact_offset=broken["artifact_offset"] + 1)
    ModelRegistry(local.storage.registry, Lake(local.storage.lake)).register(broken, "broken")
    svc = ForecastService(local)
    reply = svc.handle(body(one("S2", "I1")))
    assert reply.status == 500 and reply.body["error"] == "model_unavailable"
    assert "v2 of series S2/I1" in reply.body["message"] and "Traceback" not in json.dumps(reply.body)
    assert "S2/I1" not in svc.cache
    assert svc.handle(body(one("S1", "I2"))).status == 200


def test_a_500_names_the_cause_but_never_where_the_server_keeps_its_files(serving_project, tmp_path):
    _, settings, _, rows = serving_project
    shutil.copy(settings.storage.registry.removeprefix("sqlite:///"), tmp_path / "registry.db")
    storage = settings.storage.model_copy(update={"registry": f"sqlite:///{tmp_path}/registry.db"})
    local = settings.model_copy(update={"storage": storage})
    lake = Lake(local.storage.lake)
    gone = rows[rows["series_key"] == "S2/I1"].drop(columns=["version", "run_id", "trained_at"])
    gone = gone.assign(artifact_uri=lake.full_uri("models", "deleted", "models.bin"))
    ModelRegistry(local.storage.registry, lake).register(gone, "gone")
    reply = ForecastService(local).handle(body(one("S2", "I1")))
    assert reply.status == 500 and reply.body["error"] == "model_unavailable"
    message = reply.body["message"]
    assert "FileNotFoundError" in message and "<path>" in message
    assert str(local.storage.lake) not in message and "models.bin" not in message


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


# ---- bad input ----------------------------------------------------------------------------------------
BAD = [
    ("{not json", 400, "invalid_json", "not valid JSON"),
    ("", 400, "invalid_json", "empty"),
    (b"\xff\xfe", 400, "invalid_json", "UTF-8"),
    ("[1, 2]", 400, "invalid_request", "JSON object"),
    ("{}", 400, "invalid_request", "series: missing field"),
    ('{"series": {"store": "S1"}}', 400, "invalid_request", "must be a list"),
    ('{"series": []}', 400, "invalid_request", "at least one series"),
    ('{"series": [{"store": "S1"}]}', 400, "invalid_request", "series[0].item: missing field"),
    ('{"series": [{"store": "S1", "item": "I1"}], "extra": 1}', 400, "invalid_request", "extra: unknown field"),
    ('{"series": [{"store": "S1", "item": "I1", "horzon": 3}]}', 400, "invalid_request", "horzon: unknown field"),
    ('{"series": [{"store": "../S1", "item": "I1"}]}', 400, "invalid_request", "'..'"),
    ('{"series": [{"store": ["S1"], "item": "I1"}]}', 400, "invalid_request", "must be a string"),
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
    ('{"series": [{"store": "S9", "item": "I1"}]}', 404, "unknown_series", "S9/I1"),
    ('{"series": [{"store": "S1", "item": "I1"}, {"store": "S1", "item": "I9"}]}', 404, "unknown_series",
     "1 of the requested series: S1/I9"),
]


@pytest.mark.parametrize("raw, status, code, fragment", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_a_4xx_naming_the_problem(service, raw, status, code, fragment):
    reply = service.handle(raw)
    assert reply.status == status, reply.body
    assert reply.body["error"] == code and fragment in reply.body["message"], reply.body
    json.dumps(reply.body)  # serializable


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
        "MM_ASSETS_SERVING_CHAMPIONS_ONLY": "true",
    })
    assert config == ServingConfig(cache_models=500, cache_bytes=64 * 2**20, max_series=7, refresh_s=0,
                                   champions_only=True)
    assert ServingConfig.from_env({}) == ServingConfig()
    assert parse_bytes("268435456") == parse_bytes("256MiB") == 256 * 2**20 and parse_bytes("1G") == 10**9
    for name, value in [("MM_ASSETS_SERVING_CACHE_MODELS", "0"), ("MM_ASSETS_SERVING_CACHE_BYTES", "lots"),
                        ("MM_ASSETS_SERVING_CHAMPIONS_ONLY", "maybe")]:
        with pytest.raises(ServingConfigError, match=name):
            ServingConfig.from_env({name: value})


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
