"""What the endpoint raises and answers when something it needs cannot be read right now: a model's file
(``ModelUnreadable``), the registry (``RegistryDown``), and the 503 answers that name what to retry.

Why apart from ``service.py``: none of these is the request's fault or a bug, and each tells the client what it may
retry; they are raised where ``ForecastService`` reads and caught where it decides what still answers (a cached
entry, the published batch forecast), and need nothing of the lake, registry or cache themselves.
"""

from __future__ import annotations

from mm_assets.serving.lookup import ModelRef
from mm_assets.serving.request import ServingError


def unavailable(code: str, what: str, detail: str) -> ServingError:
    """A 503: ``what`` cannot be read right now; the client retries, the server log has the traceback."""
    return ServingError(503, code, f"{what} cannot be read right now ({detail}); retry later, the server log has "
                        "details")


class ModelUnreadable(Exception):
    """A model's bytes cannot be read from the lake or unpickled: its file is missing, cut short, corrupt or being
    rewritten in place by another writer. Unlike a model that fails to forecast, the request is not at fault and
    the series' published batch forecast, where it is the same model's from the same rows, still answers its
    default request (``ForecastService._from_published``); what needs the model gets a 503 naming the file."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = file  # the model's file, as a path in the lake (never where the server keeps the lake)
        self.reason = reason  # the error's type


def model_unavailable(ref: ModelRef, key: str, cause: str, what_if: bool = False) -> ServingError:
    """The 503 of a series whose model cannot be read (``cause``: its file and the error's type)."""
    needs = (": a what-if plan needs the model (the forecast without regressors is answered from the published "
             "batch forecast)" if what_if else "")
    return ServingError(503, "model_unavailable",
                        f"the {ref.source} model v{ref.version} of series {key} cannot be read from the lake right "
                        f"now ({cause}){needs}; retry later, the server log has details", logged=True)


class RegistryDown(Exception):
    """The registry cannot be asked for a series' model right now (the error's type): a cached series answers from
    its cache meanwhile, a series not cached is a 503."""
