"""One series' answer as the endpoint gives it (``series_answer``): its points (``Points``), labelled as the
warehouse labels the same forecast (``model_source``, ``model_type``, ``note``), and the notes that tell a client
where its forecast came from whenever it is not its champion's own from the series' rows.

Why apart from ``service.py``: an answer is assembled and labelled from the cached entry, the request and the
points alone (no lake, registry or cache is asked); the notes are texts clients read and tests compare, so they are
kept together, where they read alike and can be found by name.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mm_assets.forecasting.model_types import GLOBAL_TYPES
from mm_assets.forecasting.series import FLAG, SHARE
from mm_assets.serving.cache_entry import CachedModel
from mm_assets.serving.limits import number
from mm_assets.serving.lookup import SOURCE_BASELINE, SOURCE_LATEST
from mm_assets.serving.request import SeriesRequest


@dataclass(frozen=True)
class Points:
    """One series' forecast as answered: the points, the periods that used a plan, and why the sanity envelope
    replaced the model's forecast by the baseline's (None: it did not) or capped a what-if."""

    points: list[dict]
    planned: int
    envelope: str | None = None
    capped: str | None = None  # a what-if capped at the envelope's bound, not replaced (``WhatIf.forecast``): why


BASELINE_NOTE = ("no production champion: the series' baseline serves it, fitted on its rows as batch scoring "
                 "does")
BASELINE_PLAN_NOTE = ("the baseline does not read regressors: this plan does not change its forecast (a what-if "
                      "needs a model that learnt them, the series' champion)")
ENVELOPE_PLAN_NOTE = ("this answer is the baseline's, which reads no plan: not the plan's effect (the model's own "
                      "forecast of it left the sanity envelope)")
TAIL_NOTE = ("forecast from the model's stored tail (the history it was trained on), without a plan: its partition's "
             "dataset has no rows of this series in the lake")
ALONE_NOTE = ("forecast from this series alone: its partition's published batch forecast of this model version and "
              "origin is not there (not re-scored since its dataset changed, or missing), and the warehouse's "
              "forecast read the store's other products too, so the two differ, by several percent for a store of "
              "few products)")
ALONE_UNREADABLE_NOTE = ("forecast from this series alone: its partition's published batch forecast cannot be read "
                         "from the lake right now (it is read again shortly: see the log), and the warehouse's "
                         "forecast read the store's other products too, so the two differ, by several percent for a "
                         "store of few products)")
UNREADABLE_NOTE = ("the warehouse's forecast (its partition's published batch forecast of this model version, origin "
                   "and rows): the model itself cannot be read from the lake right now, so a what-if plan for this "
                   "series is refused (503) until it can")
LATEST_NOTE = ("no production champion: its latest trained model serves it (MM_ASSETS_SERVING_FALLBACK=latest); "
               "the warehouse publishes the series' baseline instead")


@functools.lru_cache(maxsize=4096)
def checked_at(monotonic_at: float) -> str:
    """A monotonic-clock moment as UTC wall-clock time, to the second (``2026-12-04T19:20:31Z``): computed once
    per moment (a cached series' every answer names the same one)."""
    wall = time.time() - (time.monotonic() - monotonic_at)
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def series_answer(id_columns: list[str], entry: CachedModel, request: SeriesRequest, points: Points,
                  behind: str | None = None, changed: str | None = None) -> dict[str, Any]:
    """One series' answer, labelled as the warehouse labels the same forecast (``answer_labels``). ``checked_at``:
    when this worker last asked the registry which model serves the series. A cycle's new champions are served from
    a worker's first check after it (within ``MM_ASSETS_SERVING_REFRESH_S``), so two workers can answer from two
    cycles meanwhile; a client tells them apart by it and by ``model_version``/``origin``. ``behind``: the note of a
    series whose rows stopped before the lake's newest period (``behind_note``), or None; ``changed``: that the
    settings file changed since the endpoint started (``settings_watch``), or None."""
    source, model_type, note = answer_labels(entry, request, points.envelope)
    for extra in (points.capped, behind, changed):
        if extra is not None:
            note = extra if note is None else f"{note}; {extra}"
    return {
        **dict(zip(id_columns, request.ids)),
        "model_version": entry.ref.version,
        "model_source": source,
        "model_type": model_type,
        "origin": entry.origin.date().isoformat(),
        "checked_at": checked_at(entry.checked_at),
        "horizon": request.horizon,
        "planned_periods": points.planned,
        "note": note,
        "points": points.points,
    }


def behind_note(origin: pd.Timestamp, newest: pd.Timestamp | None, step: pd.Timedelta, normal_gap: int) -> str | None:
    """What an answer says when the series' origin (its newest observed period) is more than ``normal_gap`` periods
    (``ingest.max_normal_gap``) before ``newest``, the newest period the lake holds sales of, or None. Such a series
    is forecast from where its rows stopped (an item no longer sold, a store whose feed stopped, a series held back
    for a bad row), so its first forecast periods are past for the rest of the data; the cycle summary counts it
    under "from an old origin" and the check ``series_reach_data_end`` names it, and a client reading only the
    points would take them for current."""
    if newest is None or origin >= newest - normal_gap * step:
        return None
    periods = int((newest - origin) / step)
    unit = "day" if step == pd.Timedelta(days=1) else "week"
    return (f"this series' newest observed {unit} is {origin.date()}, {periods:,} {unit}s before the newest in the "
            f"data ({newest.date()}): its rows stopped (an item no longer sold, a store whose feed stopped, or rows "
            "held back as bad), so its forecast starts from then and its first periods are past for the other "
            "series")


def answer_labels(entry: CachedModel, request: SeriesRequest, envelope: str | None) -> tuple[str, str, str | None]:
    """(``model_source``, ``model_type``, ``note``) of one series' answer, labelled as the warehouse labels the same
    forecast: a forecast the sanity envelope replaced (``envelope``: why, else None) is the baseline's
    (``model_source`` and ``model_type`` baseline, the model's version kept, the reason in ``note``), a series
    without a champion is its baseline's (version 0)."""
    source, model_type = entry.ref.source, entry.ref.model_type
    note = entry.unfit or {SOURCE_BASELINE: BASELINE_NOTE, SOURCE_LATEST: LATEST_NOTE}.get(source)
    if entry.from_tail and note is None:
        note = TAIL_NOTE
    elif entry.alone and note is None:
        note = ALONE_NOTE if entry.published_unreadable is None else ALONE_UNREADABLE_NOTE
    elif entry.unreadable is not None and note is None:
        note = UNREADABLE_NOTE
    if envelope is not None and source != SOURCE_BASELINE:
        source, model_type, note = SOURCE_BASELINE, SOURCE_BASELINE, envelope
    if request.plan and envelope is not None:  # the model's answer to this plan was replaced
        note = f"{note}; {ENVELOPE_PLAN_NOTE}"
    elif request.plan and model_type == SOURCE_BASELINE:  # it says so rather than answer as if the plan counted
        note = f"{note}; {BASELINE_PLAN_NOTE}"
    elif request.plan and model_type in GLOBAL_TYPES:
        beyond = _beyond_history(entry, request)
        note = beyond if note is None else note if beyond is None else f"{note}; {beyond}"
    return source, model_type, note


def _beyond_history(entry: CachedModel, request: SeriesRequest) -> str | None:
    """What a tree model's what-if should say when its plan leaves what the series' history had (``Limit.unseen``):
    a price outside its range, or a share between the values it took. Constant leaves are flat beyond the values
    they split on, linear leaves extend their fit past them (and between a share's values near 0 and 1, where
    their refits are not held monotone, a share of 0.75 answered below 0.5 in most orangeJuice series), and the
    period after a planned share reads it as its previous one: either way the answer there is not evidence. A
    planned price is read by its own period only, so the note does not say the next one moves."""
    unseen: dict[str, dict[float, None]] = {}  # regressor -> its planned values its history has no evidence for
    for _, values, _ in request.plan:
        for col, value in values.items():
            limit = entry.limits.get(col)
            if limit is not None and limit.unseen(value):
                unseen.setdefault(col, {})[value] = None
    if not unseen:
        return None
    notes = []
    for shares, where in ((False, "beyond this series' history"), (True, "between the values of this series' history")):
        cols = [col for col in unseen if (entry.limits[col].spans is not None) == shares]
        if cols:
            planned = ", ".join(f"{col} {number(value)}" for col in cols for value in unseen[col])
            had = ", ".join(entry.limits[col].history_words() for col in cols)
            notes.append(f"planned {planned} {where} ({had})")
    # a share is also read by the next period (as its previous value); a price by its own period only
    read_after = any(entry.limits[col].kind in (FLAG, SHARE) for col in unseen)
    after = ", and the period after it reads it as its previous value" if read_after else ""
    return (f"{'; '.join(notes)}: the model has no evidence there (its answer extends what it saw{after}): a guess, "
            "not a measured effect")
