"""Azure ML online-endpoint scoring script: ``init()`` once per worker process, ``run()`` per request.

Loaded by the Azure ML inference server (``azmlinfsrv`` from ``azureml-inference-server-http``), locally by
``make serve`` and in Azure by a managed online deployment (``deploy/azureml/online/deployment.yml``).

``init()`` reads the settings in force (``MM_ASSETS_SETTINGS``, else a ``mm_assets.yaml`` in the deployment's
model folder, else ./mm_assets.yaml; plus ``MM_ASSETS__*`` overrides) and the serving limits
(``MM_ASSETS_SERVING_*``), checks that the model registry exists, reads the global models current champions point
at (the most-served first, within ``MM_ASSETS_SERVING_SHARED_BYTES``), imports LightGBM and hides what it made from
Python's garbage collector (``gc.freeze``). Series are loaded on
first use into a bounded LRU cache (see ``service.py`` for the request and answer formats).

``run(request)`` receives the raw HTTP request (``@rawhttp``): the body's bytes are ours to decode and parse, so
a body that is not UTF-8 or not JSON gets the same ``{"error": ..., "message": ...}`` answer as every other bad
input (left to the server, a body that is not UTF-8 got its own ``{"message": ...}`` without an error code); the
Content-Type header only improves the message for a form-encoded body. It returns an ``AMLResponse``: 200 with the
forecasts, or a 4xx/5xx JSON body naming the problem. Outside the server (an image without ``rawhttp``) ``run``
takes the body as text or bytes, as the server's default passes it. A body over ``MM_ASSETS_SERVING_MAX_BODY_BYTES``
is a 413 ``body_too_large`` before it is read (by its Content-Length) or, sent without a length, once that much is in:
a client cannot make a worker hold a body of any size.
Headers ``x-mm-cache-misses`` (models this request had to load), ``x-mm-cache-models`` and
``x-mm-cache-bytes`` (the worker's cache after the request) and ``x-mm-worker-pid`` make the cache observable.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import sys
from pathlib import Path

if importlib.util.find_spec("mm_assets") is None:  # Azure ML: the code folder is the package, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mm_assets.serving.config import ServingConfigError
from mm_assets.serving.service import ForecastService, Reply
from mm_assets.serving.startup import ServingStartError
from mm_assets.settings import SettingsError

WORKER_BOOT_ERROR = 3  # gunicorn's exit code for a worker that failed to boot: the server halts

try:  # the inference server's request and response API (Flask); older images ship it as azureml.contrib.services
    from azureml_inference_server_http.api.aml_request import rawhttp
    from azureml_inference_server_http.api.aml_response import AMLResponse
except ImportError:  # pragma: no cover - depends on the image
    try:
        from azureml.contrib.services.aml_request import rawhttp
        from azureml.contrib.services.aml_response import AMLResponse
    except ImportError:
        AMLResponse = None

        def rawhttp(func):
            return func

_service: ForecastService | None = None


def init() -> None:
    global _service
    try:
        _service = ForecastService.from_environment()
    except (ServingStartError, ServingConfigError, SettingsError) as exc:
        # one line naming the setting and the fix; raised on, the server printed it inside tracebacks of its own
        # (each worker's two, and its shutdown's), 130 lines in all, whatever is raised (it catches SystemExit
        # too). A worker that exits with gunicorn's boot error code stops the server, as a failed init() does
        logging.getLogger("azmlinfsrv.mm_assets").error("mm-assets cannot start: %s", exc)
        for handler in logging.getLogger().handlers + logging.getLogger("azmlinfsrv").handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(WORKER_BOOT_ERROR)
    if importlib.util.find_spec("lightgbm") is not None:
        # a global (lightgbm) model's default answer is its published forecast and needs no LightGBM, so without
        # this the first what-if of every worker imported it: 0.7 s of that one request; its features' running
        # maximum is SciPy's, another 0.4 s
        import lightgbm  # noqa: F401
        import scipy.ndimage  # noqa: F401
    # What init made (the modules imported, the models and files preloaded: ~200,000 objects) lives as long as the
    # worker: out of the collector's sight, a full collection scans the requests' objects only, 10 ms instead of
    # 50-60 ms, and the requests queued behind it wait that much less (the standard advice for forking servers)
    gc.freeze()


def respond(reply: Reply):
    if AMLResponse is None:  # outside the inference server: the body (the status is in reply)
        return reply.body
    return AMLResponse(reply.body, reply.status, reply.headers, json_str=True)


class BodyTooLarge(Exception):
    """A request body over ``MM_ASSETS_SERVING_MAX_BODY_BYTES``; ``received`` its length (None: sent without one)."""

    def __init__(self, received: int | None):
        super().__init__(received)
        self.received = received


def _body(request, request_headers, limit: int) -> tuple[object, str | None]:
    """(body, Content-Type) of the raw request, or of a body passed as it is. A body over ``limit`` bytes raises
    ``BodyTooLarge`` before it is read: by its Content-Length, or (sent without one) once ``limit`` bytes are in."""
    if hasattr(request, "get_data"):
        from werkzeug.exceptions import RequestEntityTooLarge

        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge(request.content_length)
        # read at most one byte past the limit (a chunked body has no length to go by; Werkzeug's own maximum cuts
        # it off at the limit without a word, and the truncated JSON then read as malformed)
        request.max_content_length = limit + 1  # Flask 3.1: this request's own limit
        parts, total = [], 0
        try:
            while total <= limit:
                piece = request.stream.read(min(1 << 16, limit + 1 - total))
                if not piece:
                    break
                parts.append(piece)
                total += len(piece)
        except RequestEntityTooLarge:
            total = limit + 1
        if total > limit:
            raise BodyTooLarge(request.content_length)
        return b"".join(parts), request.headers.get("Content-Type")
    if isinstance(request, (str, bytes)) and len(request) > limit:
        raise BodyTooLarge(len(request))
    return request, (request_headers or {}).get("Content-Type")


@rawhttp
def run(request, request_headers=None):
    if _service is None:
        return respond(Reply(503, {"error": "not_ready", "message": "init() has not run"}, {}))
    if hasattr(request, "method"):  # the raw HTTP request (not a body passed as it is)
        refused = _service.refuse_request(request.method, request.headers.get("Content-Encoding"))
        if refused is not None:
            return respond(refused)
    try:
        body, content_type = _body(request, request_headers, _service.config.max_body_bytes)
    except BodyTooLarge as exc:
        return respond(_service.refuse_body(exc.received))
    return respond(_service.handle(body, content_type=content_type))
