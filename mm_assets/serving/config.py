"""Serving limits (environment variables) and the settings file the endpoint runs with.

The project settings (``mm_assets.yaml``, ``MM_ASSETS__SECTION__FIELD``) say where the registries and the lake
are, the id columns, the regressors and the horizon. What only the endpoint needs comes from environment
variables, so a deployment can tune them without a new settings file:

  MM_ASSETS_SERVING_CACHE_MODELS   models kept in memory per worker process (default 2000)
  MM_ASSETS_SERVING_CACHE_BYTES    bytes kept in memory per worker process (default 256MiB; K/M/G, KiB/MiB/GiB)
  MM_ASSETS_SERVING_SHARED_BYTES   bytes of global models (one serves many series) kept per worker process, by
                                   their pickled size (default 512MiB; the newest one is kept whatever its size)
  MM_ASSETS_SERVING_MAX_SERIES     series in one request (default 100); more is a 413
  MM_ASSETS_SERVING_MAX_BODY_BYTES bytes of one request body (default 8MiB; K/M/G, KiB/MiB/GiB); a larger body is
                                   a 413 before it is read or parsed (a body without a length is cut off there)
  MM_ASSETS_SERVING_REFRESH_S      seconds a cached model is served before the registry is asked again whether
                                   a newer version serves the series (default 300; 0 = ask on every request)
  MM_ASSETS_SERVING_FALLBACK       what serves a series without a production champion: ``baseline`` (default:
                                   its baseline, fitted on its rows in the lake, as batch scoring publishes it),
                                   ``latest`` (its latest trained model, ``model_source = latest``: an explicit
                                   opt-in, its forecasts differ from the warehouse's) or ``none`` (a 404)
  MM_ASSETS_SERVING_CHAMPIONS_ONLY true: the same as MM_ASSETS_SERVING_FALLBACK=none; false: no effect

In Azure ML the settings file may ship inside the deployment's model folder: without ``MM_ASSETS_SETTINGS``,
``$AZUREML_MODEL_DIR/mm_assets.yaml`` (or one folder below it) is used when present.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mm_assets.settings import SETTINGS_ENV, Settings, load_settings

ENV_CACHE_MODELS = "MM_ASSETS_SERVING_CACHE_MODELS"
ENV_CACHE_BYTES = "MM_ASSETS_SERVING_CACHE_BYTES"
ENV_SHARED_BYTES = "MM_ASSETS_SERVING_SHARED_BYTES"
ENV_MAX_SERIES = "MM_ASSETS_SERVING_MAX_SERIES"
ENV_MAX_BODY_BYTES = "MM_ASSETS_SERVING_MAX_BODY_BYTES"
ENV_REFRESH_S = "MM_ASSETS_SERVING_REFRESH_S"
ENV_CHAMPIONS_ONLY = "MM_ASSETS_SERVING_CHAMPIONS_ONLY"
ENV_FALLBACK = "MM_ASSETS_SERVING_FALLBACK"
FALLBACK_BASELINE, FALLBACK_LATEST, FALLBACK_NONE = "baseline", "latest", "none"
FALLBACKS = (FALLBACK_BASELINE, FALLBACK_LATEST, FALLBACK_NONE)
MODEL_DIR_ENV = "AZUREML_MODEL_DIR"
SETTINGS_FILE_NAME = "mm_assets.yaml"

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3}


class ServingConfigError(ValueError):
    """A serving setting that cannot be used; the message names the variable and the fix."""


def parse_bytes(text: str) -> int:
    """``268435456``, ``256MiB``, ``300M``, ``1GiB`` → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 268435456, 256MiB, 300M, 1GiB)")
    size = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if size != int(size):  # '1.9' bytes was taken as 1
        raise ValueError(f"{text!r} is not a whole number of bytes (examples: 268435456, 1.5MiB)")
    return int(size)


@dataclass(frozen=True)
class ServingConfig:
    cache_models: int = 2000
    cache_bytes: int = 256 * 1024**2
    shared_bytes: int = 512 * 1024**2
    max_series: int = 100
    # 100 series with a year of daily plans of five regressors are about 4 MB of JSON
    max_body_bytes: int = 8 * 1024**2
    refresh_s: float = 300.0
    fallback: str = FALLBACK_BASELINE  # what serves a series without a champion (FALLBACKS)

    def __post_init__(self):
        if self.fallback not in FALLBACKS:
            raise ServingConfigError(f"fallback {self.fallback!r}: use one of {', '.join(FALLBACKS)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingConfig:
        environ = os.environ if environ is None else environ
        values: dict = {}

        def read(name: str, field: str, parse, minimum) -> None:
            raw = environ.get(name, "").strip()
            if not raw:
                return
            try:
                value = parse(raw)
            except ValueError as exc:
                raise ServingConfigError(f"{name}={raw!r}: {exc}") from None
            if value < minimum:
                raise ServingConfigError(f"{name}={raw!r}: must be at least {minimum}")
            values[field] = value

        read(ENV_CACHE_MODELS, "cache_models", int, 1)
        read(ENV_CACHE_BYTES, "cache_bytes", parse_bytes, 1)
        read(ENV_SHARED_BYTES, "shared_bytes", parse_bytes, 1)
        read(ENV_MAX_SERIES, "max_series", int, 1)
        read(ENV_MAX_BODY_BYTES, "max_body_bytes", parse_bytes, 1)
        read(ENV_REFRESH_S, "refresh_s", float, 0)
        fallback = _fallback(environ)
        if fallback:
            values["fallback"] = fallback
        return cls(**values)


def _fallback(environ: Mapping[str, str]) -> str | None:
    """``MM_ASSETS_SERVING_FALLBACK``, or ``none`` from the older ``MM_ASSETS_SERVING_CHAMPIONS_ONLY=true``
    (deployments that set it keep their meaning); None: the default. Both set and disagreeing is an error, not a
    silent choice."""
    fallback = environ.get(ENV_FALLBACK, "").strip().lower()
    if fallback and fallback not in FALLBACKS:
        raise ServingConfigError(f"{ENV_FALLBACK}={fallback!r}: use one of {', '.join(FALLBACKS)}")
    flag = environ.get(ENV_CHAMPIONS_ONLY, "").strip().lower()
    if flag and flag not in ("1", "true", "yes", "0", "false", "no"):
        raise ServingConfigError(f"{ENV_CHAMPIONS_ONLY}={flag!r}: use true or false")
    if flag in ("1", "true", "yes"):
        if fallback and fallback != FALLBACK_NONE:
            raise ServingConfigError(
                f"{ENV_CHAMPIONS_ONLY}=true and {ENV_FALLBACK}={fallback} disagree: unset "
                f"{ENV_CHAMPIONS_ONLY} (it means {ENV_FALLBACK}=none)")
        return FALLBACK_NONE
    return fallback or None


def settings_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The settings file the endpoint uses: ``$MM_ASSETS_SETTINGS``, else one shipped in the Azure ML model
    folder, else none (``load_settings`` then takes ./mm_assets.yaml if present)."""
    environ = os.environ if environ is None else environ
    if environ.get(SETTINGS_ENV):
        return None  # load_settings resolves and checks it
    model_dir = environ.get(MODEL_DIR_ENV)
    if model_dir and Path(model_dir).is_dir():
        root = Path(model_dir)
        for candidate in [root / SETTINGS_FILE_NAME, *sorted(root.glob(f"*/{SETTINGS_FILE_NAME}"))]:
            if candidate.is_file():
                return candidate
    return None


def serving_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    return load_settings(settings_file(environ), environ=environ)
