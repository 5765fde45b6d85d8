"""Every setting by its name, and what changed between two sets of them.

Why a module of its own: a Dagster run held to its settings (``assets.settings_hold``) and a running endpoint whose
settings file was edited (``serving.settings_watch``, which must not import Dagster) name a change alike
(``horizon: 28 -> 14``), secrets masked.
"""

from __future__ import annotations

import hashlib
import json

from mm_assets.settings import Settings
from mm_assets.sql import redact_secrets


def settings_fields(settings: Settings) -> dict[str, str]:
    """Every setting as ``section.field`` -> its value as JSON, secrets in strings masked (``redact_secrets``);
    a value with a secret masked ends in a short digest of the whole, so that a changed password is named too."""
    out: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key in sorted(value):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key])
        else:
            out[prefix] = json.dumps(_masked(value) if isinstance(value, str) else value, sort_keys=True)

    walk("", settings.model_dump(mode="json"))
    return out


def _masked(text: str) -> str:
    masked = redact_secrets(text)
    return masked if masked == text else f"{masked} (digest {hashlib.sha256(text.encode()).hexdigest()[:6]})"


def changed_fields(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """``field: before -> now`` for each setting that differs, in the order of their names."""
    return [f"{name}: {before.get(name, 'unset')} -> {now.get(name, 'unset')}"
            for name in sorted(set(before) | set(now)) if before.get(name) != now.get(name)]
