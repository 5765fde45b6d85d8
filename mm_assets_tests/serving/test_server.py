"""The real inference server process (azmlinfsrv's gunicorn + Flask) on loopback, with the scoring script."""

from __future__ import annotations

import datetime as dt
import gzip
import http.client
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mm_assets.serving.loopback import HOST, free_port, start_server, stop_server

pytestmark = pytest.mark.serving


@pytest.fixture(scope="module")
def server(serving_project):
    root, _, settings_path, _ = serving_project
    port = free_port()
    log = root / "server.log"
    env = {"MM_ASSETS_SETTINGS": str(settings_path), "WORKER_COUNT": "1",
           "GUNICORN_CMD_ARGS": "--no-control-socket --threads 4", "MM_ASSETS_SERVING_MAX_BODY_BYTES": "64KiB"}
    proc = start_server(port, env, log_path=log, cwd=root)
    try:
        yield port, proc, log
    finally:
        stop_server(proc)
    assert proc.poll() is not None


def post(port: int, payload, content_type="application/json") -> tuple[int, dict, dict]:
    data = (payload if isinstance(payload, bytes) else payload.encode() if isinstance(payload, str)
            else json.dumps(payload).encode())
    req = urllib.request.Request(f"http://{HOST}:{port}/score", data=data, method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) with a socket listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_server_listens_on_loopback_only(server):
    port, proc, _ = server
    with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b"Healthy"
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0


def test_a_demo_series_gets_a_forecast_of_the_requested_length(server):
    port, _, _ = server
    status, answer, headers = post(port, {"series": [{"store": "S1", "item": "I2", "horizon": 14}]})
    assert status == 200
    forecast = answer["forecasts"][0]
    assert (forecast["store"], forecast["item"], forecast["model_source"]) == ("S1", "I2", "champion")
    assert len(forecast["points"]) == 14 and forecast["points"][-1]["ds"] == "2026-07-14"
    assert all(isinstance(p["yhat"], float) and p["yhat"] >= 0 for p in forecast["points"])
    checked = dt.datetime.strptime(forecast["checked_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - checked).total_seconds()) < 600  # the worker's check, in UTC


def test_a_body_over_the_limit_is_refused_unread_with_or_without_a_length(server):
    """A 50 MB body was read whole, then parsed, then refused: a client could make a worker hold any size."""
    port, proc, log = server
    big = b'{"series": [' + b'{"store": "S1", "item": "I1"}, ' * 20_000 + b'{"store": "S1", "item": "I1"}]}'
    status, answer, _ = post(port, big)
    assert (status, answer["error"], answer["received"], answer["limit"]) == (413, "body_too_large", len(big), 65536)
    assert "MM_ASSETS_SERVING_MAX_BODY_BYTES" in answer["message"]
    conn = http.client.HTTPConnection(HOST, port, timeout=30)  # chunked: no Content-Length to go by
    conn.putrequest("POST", "/score")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for start in range(0, len(big), 16384):
            piece = big[start:start + 16384]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused unread: the server may answer and close before the client has sent it all
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    conn.close()
    assert (resp.status, answer.get("error"), answer.get("received")) == (413, "body_too_large", None), answer
    assert "sent without a length" in answer["message"]
    assert proc.poll() is None and post(port, {"series": [{"store": "S1", "item": "I1", "horizon": 1}]})[0] == 200


def test_bad_requests_are_4xx_json_and_the_process_keeps_serving(server):
    port, proc, log = server
    cases = [
        ("not json", 400, "invalid_json"),
        (b"\xff\xfe not utf-8", 400, "invalid_json"),
        ({"series": [{"item": "I1"}]}, 400, "invalid_request"),
        ({"series": [{"store": "S1", "item": "I1", "regressors": [{"ds": "2026-07-01", "promo": 7}]}]}, 400,
         "invalid_request"),
        ({"series": [{"store": "S1", "item": "I1", "horizon": 15}]}, 400, "invalid_request"),
        ({"series": [{"store": "S3", "item": "I1"}]}, 404, "unknown_series"),
        ({"series": [{"store": "S1", "item": "I1"}] * 101}, 413, "too_many_series"),
    ]
    for payload, status, code in cases:
        got, answer, headers = post(port, payload)
        assert (got, answer["error"]) == (status, code), answer
        assert headers["Content-Type"] == "application/json" and "Traceback" not in json.dumps(answer)
    assert proc.poll() is None
    assert post(port, {"series": [{"store": "S1", "item": "I1", "horizon": 1}]})[0] == 200
    got, answer, _ = post(port, {"series": [{"store": "S1", "item": "I1", "horizon": 1}, {"store": "S3", "item": "I1"}],
                                 "skip_unknown": True})
    assert got == 200 and [f["store"] for f in answer["forecasts"]] == ["S1"], answer
    assert [(m["store"], m["error"]) for m in answer["not_served"]] == [("S3", "unknown_series")]
    assert "Traceback" not in log.read_text()


def request(port: int, method: str, data: bytes | None = None, headers=None) -> tuple[int, bytes, list[str]]:
    """(status, body, the Allow header's methods: the server writes a header's comma-separated values apart)."""
    req = urllib.request.Request(f"http://{HOST}:{port}/score", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get_all("Allow") or []
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get_all("Allow") or []


def test_only_a_post_of_uncompressed_json_is_scored(server):
    """The server routes GET and OPTIONS to the scoring script too: a GET is told to POST (it used to be told its
    body was empty, or, with a body, scored), a browser's preflight gets the methods allowed, and a gzip body is
    refused by name (it used to be "not UTF-8"). A body with a byte-order mark is read."""
    port, proc, _ = server
    payload = json.dumps({"series": [{"store": "S1", "item": "I1", "horizon": 1}]}).encode()
    status, body, allow = request(port, "GET", payload)
    assert status == 405 and json.loads(body)["error"] == "method_not_allowed", body
    assert "POST" in json.loads(body)["message"] and allow == ["POST", "OPTIONS"]
    status, _, allow = request(port, "OPTIONS")
    assert status == 200 and allow == ["POST", "OPTIONS"]
    status, body, _ = request(port, "POST", gzip.compress(payload),
                              {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 415 and json.loads(body)["error"] == "unsupported_encoding", body
    status, body, _ = request(port, "POST", b"\xef\xbb\xbf" + payload, {"Content-Type": "application/json"})
    assert status == 200 and len(json.loads(body)["forecasts"][0]["points"]) == 1, body
    assert proc.poll() is None


def test_concurrent_requests_for_a_cold_series_all_get_the_same_answer(server):
    port, _, _ = server
    results = []
    barrier = threading.Barrier(8)

    def ask():
        barrier.wait()
        results.append(post(port, {"series": [{"store": "S2", "item": "I1", "horizon": 7}]}))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [200] * 8
    assert len({json.dumps(r[1]) for r in results}) == 1


def test_a_slow_client_does_not_stall_the_endpoint(server):
    # a body announced (Content-Length 1000) but never sent: the connection holds one thread, not the server
    import socket
    import time

    port, proc, _ = server
    with socket.create_connection((HOST, port), timeout=5) as slow:
        slow.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"series\": [")
        started = time.monotonic()
        status, _, _ = post(port, {"series": [{"store": "S1", "item": "I1", "horizon": 1}]})
        assert status == 200 and time.monotonic() - started < 5
    assert proc.poll() is None


def test_make_serve_defaults_to_several_workers_with_threads():
    from mm_assets.serving.loopback import DEFAULT_THREADS, DEFAULT_WORKERS, serving_defaults

    env: dict[str, str] = {"GUNICORN_CMD_ARGS": "--no-control-socket"}
    serving_defaults(env)
    assert env == {"WORKER_COUNT": str(DEFAULT_WORKERS),
                   "GUNICORN_CMD_ARGS": f"--no-control-socket --threads {DEFAULT_THREADS}"}
    mine = {"WORKER_COUNT": "8", "GUNICORN_CMD_ARGS": "--threads 2 --control-socket /run/mm.ctl"}
    serving_defaults(mine)
    assert mine == {"WORKER_COUNT": "8", "GUNICORN_CMD_ARGS": "--threads 2 --control-socket /run/mm.ctl"}  # kept
    bare: dict[str, str] = {}
    serving_defaults(bare)  # no shared ~/.gunicorn/gunicorn.ctl between two servers of one user
    assert bare["GUNICORN_CMD_ARGS"] == f"--threads {DEFAULT_THREADS} --no-control-socket"


def test_a_store_it_cannot_read_stops_the_server_with_one_line_naming_it(tmp_path):
    """Raised from init(), the server printed the project's line inside each worker's two tracebacks; now each
    worker logs it once and exits with gunicorn's boot error, which stops the server."""
    settings = tmp_path / "mm_assets.yaml"
    settings.write_text("storage:\n  registry: postgresql+psycopg2://mm:s3cret@127.0.0.1:9/reg?connect_timeout=2\n")
    lines, text = _cannot_start(tmp_path, {"MM_ASSETS_SETTINGS": str(settings)}, "storage.registry")
    assert len(lines) == 2 and "s3cret" not in text  # one per worker, the password hidden
    assert "Connection refused" in lines[0]


@pytest.mark.parametrize(("env", "named"), [
    ({"MM_ASSETS_SERVING_FALLBACK": "latest", "MM_ASSETS_SERVING_CHAMPIONS_ONLY": "true"},
     "MM_ASSETS_SERVING_CHAMPIONS_ONLY=true and MM_ASSETS_SERVING_FALLBACK=latest disagree"),
    ({"MM_ASSETS_SERVING_MAX_SERIES": "many"}, "MM_ASSETS_SERVING_MAX_SERIES='many'"),
    ({"MM_ASSETS_SETTINGS": "missing.yaml"}, "missing.yaml"),
], ids=["contradiction", "not-a-number", "no-settings-file"])
def test_a_serving_setting_that_is_wrong_stops_the_server_with_one_line_naming_it(tmp_path, env, named):
    lines, _ = _cannot_start(tmp_path, env, named)
    assert len(lines) == 2  # one per worker


def _cannot_start(tmp_path, env: dict[str, str], named: str) -> tuple[list[str], str]:
    """(the server log's "cannot start" lines naming ``named``, the whole log) of a server that must not start;
    no traceback of the server's own wraps them."""
    log = tmp_path / "server.log"
    with pytest.raises(RuntimeError, match="exited with code"):
        proc = start_server(free_port(), {"WORKER_COUNT": "2", **env}, log_path=log, cwd=tmp_path)
        stop_server(proc)  # pragma: no cover - only if it started after all
    text = log.read_text()
    assert "User's init function failed" not in text and "Traceback" not in text
    return [line for line in text.splitlines() if "mm-assets cannot start: " in line and named in line], text
