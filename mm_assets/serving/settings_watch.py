"""Whether the settings file changed since the endpoint started, and what every answer then says.

Why: batch scoring reads the settings at each run, the endpoint once, at its start. After an edit (a longer horizon,
another gap, a regressor dropped) the warehouse publishes with the new settings while a running endpoint still
answers with the old ones: other dates, another number of points, a champion the gate no longer lets serve. Nothing
told a client or an operator. The file is read again at most once per refresh interval (a stat and, when its bytes
changed, a load); a change of any setting is named in each answer's ``note`` and logged once, until the endpoint is
restarted (``make serve``) or redeployed with the new file. An edit that changes no setting (a comment) says
nothing; a file that no longer loads is said to.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from mm_assets.settings import Settings, SettingsError, load_settings
from mm_assets.settings_fields import changed_fields, settings_fields
from mm_assets.sql import redact_secrets

log = logging.getLogger("azmlinfsrv.mm_assets")

SHOWN_CHANGES = 4


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class SettingsWatch:
    """The settings file an endpoint started with (``path``), asked again at most every ``interval_s``."""

    def __init__(self, path: Path | None, settings: Settings, environ: Mapping[str, str], interval_s: float):
        self.path = path
        self.settings = settings
        self.environ = dict(environ)
        self.interval_s = interval_s
        self._started = _digest(path) if path is not None else None
        self._seen = self._started
        self._due = time.monotonic() + interval_s
        self._note: str | None = None
        self._lock = threading.Lock()

    def note(self) -> str | None:
        """What an answer says of a settings file changed since the start, or None."""
        if self.path is None or time.monotonic() < self._due:
            return self._note
        with self._lock:
            if time.monotonic() < self._due:
                return self._note
            self._due = time.monotonic() + self.interval_s
            digest = _digest(self.path)
            if digest != self._seen:
                self._seen = digest
                self._note = None if digest == self._started else self._judge()
                if self._note is not None:
                    log.warning("%s", self._note)
        return self._note

    def _judge(self) -> str | None:
        where = f"the settings file {self.path}"
        advice = ("batch scoring reads it at each run and this endpoint only at its start, so the warehouse's "
                  "forecasts may differ from these answers: restart the endpoint (make serve) or redeploy it with "
                  "the file")
        try:
            changes = changed_fields(settings_fields(self.settings),
                                     settings_fields(load_settings(self.path, environ=self.environ)))
        except (SettingsError, OSError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"{where} changed since this endpoint started and no longer loads ({redact_secrets(reason)}); {advice}"
        if not changes:
            return None
        shown = ", ".join(changes[:SHOWN_CHANGES]) + (f" and {len(changes) - SHOWN_CHANGES} more"
                                                      if len(changes) > SHOWN_CHANGES else "")
        return f"{where} changed since this endpoint started ({shown}): {advice}"
