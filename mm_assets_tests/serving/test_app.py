"""The scoring script inside the Azure ML inference server's own Flask app (in process, no socket).

``create()`` builds the app ``azmlinfsrv`` runs: it loads mm_assets/serving/score.py as the entry script,
calls ``init()``, and routes ``POST /score`` to ``run()``. These tests go through that routing, the server's
input parser and response handling.
"""

from __future__ import annotations

import builtins
import gc
import json
from pathlib import Path

import pytest

from mm_assets.serving.loopback import ENTRY_SCRIPT

pytestmark = pytest.mark.serving

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(serving_project):
    _, _, settings_path, _ = serving_project
    mp = pytest.MonkeyPatch()
    saved_print = builtins.print  # the server redirects print() to its logger
    mp.setenv("MM_ASSETS_SETTINGS", str(settings_path))
    mp.setenv("AZUREML_ENTRY_SCRIPT", str(ENTRY_SCRIPT))
    mp.setenv("AML_APP_ROOT", str(REPO))
    from azureml_inference_server_http.server.config import config
    from azureml_inference_server_http.server.create_app import create

    mp.setattr(config, "entry_script", str(ENTRY_SCRIPT))  # the config object is read once per process
    mp.setattr(config, "app_root", str(REPO))
    app = create()
    try:
        yield app.test_client()
    finally:
        gc.unfreeze()  # init froze this test process's objects too
        builtins.print = saved_print
        mp.undo()


def score(client, payload, **kwargs):
    data = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    kwargs.setdefault("content_type", "application/json")
    return client.post("/score", data=data, **kwargs)


def test_health_probe_answers(client):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "Healthy"


def test_init_hides_what_it_made_from_the_garbage_collector(client):
    """A full collection scans every object the collector tracks; init's (imports, preloaded models and files)
    live as long as the worker, and scanning them made a collection a 50 ms stall of the requests in flight."""
    assert gc.get_freeze_count() > 0


def test_score_answers_a_forecast_of_the_requested_length(client):
    resp = score(client, {"series": [{"store": "S1", "item": "I1", "horizon": 14},
                                     {"store": "S2", "item": "I2", "horizon": 3}]})
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    forecasts = resp.get_json()["forecasts"]
    assert [(f["store"], f["item"], f["model_source"], f["model_version"], len(f["points"])) for f in forecasts] == [
        ("S1", "I1", "champion", 1, 14), ("S2", "I2", "baseline", 0, 3)]
    assert forecasts[0]["points"][0] == {"ds": "2026-07-01", "yhat": forecasts[0]["points"][0]["yhat"]}
    assert resp.headers["x-mm-cache-misses"] == "2" and "x-ms-run-fn-exec-ms" in resp.headers


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ("{oops", 400, "invalid_json"),
        ('{"series": [{"store": "S1", "item": "I1", "horizon": ' + "1" * 5001 + "}]}", 400, "invalid_json"),
        ({"series": [{"store": "S1"}]}, 400, "invalid_request"),
        ({"series": [{"store": "S1", "item": "I1", "horizon": 99}]}, 400, "invalid_request"),
        ({"series": [{"store": "S5", "item": "I5"}]}, 404, "unknown_series"),
        ({"series": [{"store": "S1", "item": "I1"}] * 101}, 413, "too_many_series"),
    ],
    ids=["malformed-json", "5001-digit-number", "missing-field", "horizon-out-of-range", "unknown-series",
         "too-many-series"],
)
def test_bad_input_is_a_4xx_json_answer_and_the_server_keeps_serving(client, payload, status, code):
    resp = score(client, payload)
    assert resp.status_code == status and resp.mimetype == "application/json"
    answer = resp.get_json()
    assert answer["error"] == code and answer["message"]
    assert "Traceback" not in resp.get_data(as_text=True)
    assert resp.headers["x-ms-run-function-failed"] == "False"  # a client error, not a failure of run()
    assert score(client, {"series": [{"store": "S1", "item": "I2", "horizon": 2}]}).status_code == 200


def test_a_form_encoded_post_is_read_as_the_json_it_holds(client):
    """The scoring script reads the raw body: a JSON body sent as a form (curl -d without a Content-Type) is
    answered as JSON rather than lost to the server's form parsing."""
    resp = client.post("/score", data='{"series": []}', content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 400 and "series: must list at least one series" in resp.get_json()["message"]
    resp = client.post("/score", data='{"series": [{"store": "S1", "item": "I1", "horizon": 2}]}',
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 200 and len(resp.get_json()["forecasts"][0]["points"]) == 2
    resp = client.post("/score", data="", content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 400 and "Content-Type: application/json" in resp.get_json()["message"]


@pytest.mark.parametrize("raw", [b"\xff\xfe", b'{"series": [{"store": "S1\xff", "item": "I1"}]}'])
def test_a_body_that_is_not_utf8_gets_the_error_code_every_bad_input_gets(client, raw):
    resp = score(client, raw)
    assert resp.status_code == 400 and resp.mimetype == "application/json"
    answer = resp.get_json()
    assert answer["error"] == "invalid_json" and "not UTF-8" in answer["message"]
    assert resp.headers["x-mm-cache-misses"] == "0"  # answered by the scoring script, not by the server
