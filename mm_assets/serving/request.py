"""A forecast request's body, parsed and validated, and the error answers (``ServingError``) that the endpoint
gives instead of a forecast.

Why apart from ``service.py``: checking what a client sent needs no model, cache or lake, only the settings' id
columns, regressors and horizon; what needs the series' model (the forecast window, the values its model can take)
is checked by ``ForecastService`` once the model is known. The request's format is described in ``service.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mm_assets.ids import id_problem, series_key

MAX_PROBLEMS = 20
REQUEST_KEYS = ("series", "skip_unknown")
ECHO_CHARS = 64  # a value the client sent is echoed at most this long: a 5 MB id must not make a 10 MB answer


# ---- errors -------------------------------------------------------------------------------------------
class ServingError(Exception):
    """An answer other than 200: HTTP status, error code, message, details for the JSON body."""

    def __init__(self, status: int, code: str, message: str, *, logged: bool = False, **details: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.logged = logged  # its cause is in the log already (once per file version): not logged per request

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


def _cut(text: str) -> str:
    """``text`` cut to ``ECHO_CHARS`` (with an ellipsis): enough to recognise what a client sent in an answer."""
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "\u2026"


def echo(value: Any) -> str:
    """A value the client sent, spelt as JSON writes it (``null``, ``true``, ``NaN``, ``"text"``: the client wrote
    JSON, and Python's ``None`` or ``'text'`` would be a second language to decode), cut."""
    if isinstance(value, str):
        return _cut(json.dumps(value[: ECHO_CHARS + 1], ensure_ascii=False))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**ECHO_CHARS:
        digits = str(abs(value))  # a number of hundreds of digits: its length says more than its digits
        return f"{'-' if value < 0 else ''}{digits[:8]}\u2026 ({len(digits)} digits)"
    try:
        return _cut(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):  # not JSON (a caller in Python passed its own objects)
        return _cut(repr(value))


def _name(key: Any) -> str:
    """A field name the client sent, as a field path shows it, cut."""
    return _cut(str(key))


class Problems:
    """The problems found in a request: all of them counted, the first ``MAX_PROBLEMS`` kept. A body of 800,000
    unknown keys is one mistake repeated; listing each would make an answer ten times the request's size."""

    def __init__(self) -> None:
        self.listed: list[dict[str, str]] = []
        self.count = 0

    def add(self, field: str, problem: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_PROBLEMS:
            self.listed.append({"field": field, "problem": problem})

    def __bool__(self) -> bool:
        return self.count > 0


def invalid(problems: list[dict[str, str]] | Problems) -> ServingError:
    """The 400 answer: the first five problems in the message, the first ``MAX_PROBLEMS`` in ``problems``, and
    how many there are in all (``problem_count``), so a client knows whether one round of fixes is enough."""
    if not isinstance(problems, Problems):
        found = Problems()
        for p in problems:
            found.add(p["field"], p["problem"])
        problems = found
    listed, count = problems.listed, problems.count
    shown = "; ".join(f"{p['field']}: {p['problem']}" for p in listed[:5])
    more = ""
    if count > 5:
        more = f" (and {count - 5} more" + (f"; the first {len(listed)} are listed in problems)"
                                            if count > len(listed) else ")")
    return ServingError(400, "invalid_request", f"invalid request: {shown}{more}", problems=listed,
                        problem_count=count)


# ---- requests -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesRequest:
    index: int
    ids: tuple[str, ...]
    key: str
    horizon: int
    plan: tuple[tuple[pd.Timestamp, dict[str, float], int], ...] = ()  # (ds, {regressor: value}, row in the request)


@dataclass(frozen=True)
class Request:
    """A request body's series, and whether series no model serves are left out of a 200 answer
    (``skip_unknown``: a planner's batch of a whole category keeps its answer when one item left the source) or
    fail the whole request with a 404 naming them (the default: a client that sends only what it knows learns of
    a wrong id at once)."""

    series: list[SeriesRequest]
    skip_unknown: bool = False


class PlannedBool(float):
    """A planned value given as JSON true/false: 1/0 for a 0/1 flag, refused for any other kind (``true`` is no
    price: a client that sends it has a bug, and 1.0 would be forecast silently)."""


def _is_number(value: Any) -> bool:
    """A finite JSON number. A whole number past a float's range (1 followed by 309 zeros) is not one: Python
    reads it as an exact integer, which no float, and so no forecast, can take."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


_PATH = re.compile(r"(?:\b[A-Za-z][A-Za-z0-9+.-]*://|(?<![\w.])/)[^\s'\",;)]+")


def public_reason(exc: BaseException) -> str:
    """An exception as a client may read it: its type and message with file paths and URIs replaced by
    ``<path>`` (where the server keeps its files is for the server log, which has the full traceback)."""
    return f"{type(exc).__name__}: {_PATH.sub('<path>', str(exc))}"


class _DuplicateKey(ValueError):
    """A key twice in one JSON object: ``json`` keeps the last silently, so half of what was sent would vanish."""


def _object_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with each key once (``json.loads``' ``object_pairs_hook``)."""
    out = dict(pairs)
    if len(out) < len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(twice)
    return out


def parse_request(
    raw: str | bytes | Mapping | None,
    id_columns: list[str],
    regressors: list[str],
    max_horizon: int,
    max_series: int,
    content_type: str | None = None,
) -> Request:
    """The validated request body; raises ServingError (4xx) naming every problem found."""
    if raw is None:
        raw = ""
    hint = ""
    if content_type and "form" in content_type.lower():  # curl -d without -H, an HTML form: the body is not JSON
        hint = f" (it was sent as {content_type.split(';')[0]}: send JSON with Content-Type: application/json)"
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = raw.decode("utf-8-sig")  # a byte-order mark (Windows editors write one) is not the body's
        except UnicodeDecodeError as exc:
            raise ServingError(400, "invalid_json", f"request body is not UTF-8: {exc}{hint}") from None
    if isinstance(raw, str):
        raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            raise ServingError(400, "invalid_json", 'request body is empty; expected {"series": [...]}' + hint)
        try:
            body = json.loads(raw, object_pairs_hook=_object_once)
        except json.JSONDecodeError as exc:
            raise ServingError(
                400, "invalid_json",
                f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}",
            ) from None
        except _DuplicateKey as exc:
            raise ServingError(400, "invalid_json", f"request body has the key {echo(str(exc))} twice in one object: "
                               "send each key once (JSON readers keep only one of them)") from None
        except RecursionError:  # thousands of nested [ or {: no request of ours nests more than a few levels
            raise ServingError(400, "invalid_json", "request body nests arrays or objects too deeply; expected "
                               '{"series": [...]}') from None
        except ValueError as exc:  # a number of thousands of digits: Python's guard on int() parsing
            raise ServingError(400, "invalid_json", f"request body holds a number JSON cannot be read as: {exc}; "
                               "numbers here are horizons, prices and flags of a few digits") from None
    else:
        body = raw
    if not isinstance(body, Mapping):
        raise ServingError(400, "invalid_request", 'request body must be a JSON object {"series": [...]}')
    problems = Problems()
    problem = problems.add

    for key in body:
        if key not in REQUEST_KEYS:
            problem(_name(key), f"unknown field (expected: {', '.join(REQUEST_KEYS)})")
    skip_unknown = body.get("skip_unknown", False)
    if not isinstance(skip_unknown, bool):
        problem("skip_unknown", f"must be true or false, got {echo(skip_unknown)}: true answers the series a model "
                "serves and lists the others in not_served")
    if "series" not in body:
        problem("series", "missing field: a list of series, e.g. "
                + json.dumps({c: "..." for c in id_columns} | {"horizon": max_horizon}))
        raise invalid(problems)
    items = body["series"]
    if not isinstance(items, list):
        problem("series", "must be a list of series objects")
        raise invalid(problems)
    if not items:
        problem("series", "must list at least one series")
        raise invalid(problems)
    if len(items) > max_series:
        raise ServingError(
            413, "too_many_series",
            f"{len(items)} series in one request; at most {max_series} are allowed (MM_ASSETS_SERVING_MAX_SERIES): "
            "split the request",
            limit=max_series, received=len(items),
        )
    allowed = {*id_columns, "horizon", "regressors"}
    out: list[SeriesRequest] = []
    for i, item in enumerate(items):
        where = f"series[{i}]"
        if not isinstance(item, Mapping):
            problem(where, "must be an object with " + ", ".join(id_columns) + " and optionally horizon")
            continue
        ok = True
        for key in item:
            if key not in allowed:
                problem(f"{where}.{_name(key)}", f"unknown field (expected: {', '.join(sorted(allowed))})")
                ok = False
        ids: list[str] = []
        for column in id_columns:
            if column not in item:
                problem(f"{where}.{column}", "missing field")
                ok = False
                continue
            value = item[column]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                problem(f"{where}.{column}", "must be a string or a whole number (\"2\" or 2, as the source writes "
                        f"it), got {type(value).__name__} {echo(value)}")
                ok = False
                continue
            text = str(value)
            bad = id_problem(text)
            if bad:
                problem(f"{where}.{column}", f"{echo(text)} {bad}")
                ok = False
            ids.append(text)
        horizon = item.get("horizon", max_horizon)
        if isinstance(horizon, float) and horizon.is_integer():
            horizon = int(horizon)
        if isinstance(horizon, bool) or not isinstance(horizon, int):
            problem(f"{where}.horizon", f"must be an integer 1..{max_horizon}, got {echo(horizon)}")
            ok = False
        elif not 1 <= horizon <= max_horizon:
            problem(f"{where}.horizon", f"{echo(horizon)} is out of range: 1..{max_horizon} periods")
            ok = False
        plan = _parse_plan(item.get("regressors"), f"{where}.regressors", regressors, max_horizon, problem)
        if plan is None:
            ok = False
        if ok:
            out.append(SeriesRequest(index=i, ids=tuple(ids), key=series_key(ids), horizon=horizon, plan=plan))
    if problems:
        raise invalid(problems)
    return Request(out, skip_unknown)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _plan_date(value: Any) -> pd.Timestamp | None:
    """A plan row's ``ds``: exactly ``YYYY-MM-DD``, else None. Nothing is cut off or guessed: "2026-11-25junk"
    or "20261125" may be a client's bug, and a date read from part of it would plan the wrong day silently."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return None
    try:
        return pd.Timestamp(dt.date.fromisoformat(value))
    except ValueError:
        return None


def _parse_plan(raw: Any, where: str, regressors: list[str], max_horizon: int, problem) -> tuple | None:
    """The planned rows of one series, sorted by date: (ds, {regressor: value}, index in the request). Checks
    what needs no model (form, dates, names, finite numbers); the forecast window and the values the series'
    model can take are checked once its model is known (``plan_checks.plan_problems``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problem(where, 'must be a list of {"ds": "YYYY-MM-DD", <regressor>: value} objects')
        return None
    if len(raw) > max_horizon:
        problem(where, f"{len(raw)} rows; at most one per forecast period ({max_horizon})")
        return None
    if not regressors:
        problem(where, "this deployment's models use no regressors (columns.regressors is empty)")
        return None
    rows: list[tuple[pd.Timestamp, dict[str, float], int]] = []
    seen: set[pd.Timestamp] = set()
    ok = True
    for j, row in enumerate(raw):
        at = f"{where}[{j}]"
        if not isinstance(row, Mapping):
            problem(at, 'must be an object {"ds": "YYYY-MM-DD", <regressor>: value}')
            ok = False
            continue
        if "ds" not in row:
            problem(f"{at}.ds", "missing field (the period's date, YYYY-MM-DD)")
            ok = False
            continue
        ds = _plan_date(row["ds"])
        if ds is None:
            problem(f"{at}.ds", f"{echo(row['ds'])} is not a date: write it as YYYY-MM-DD, e.g. 2026-11-25")
            ok = False
            continue
        if ds in seen:
            problem(f"{at}.ds", f"{ds.date()} is given twice")
            ok = False
        seen.add(ds)
        values: dict[str, float] = {}
        for name, value in row.items():
            if name == "ds":
                continue
            if name not in regressors:
                problem(f"{at}.{_name(name)}", f"unknown regressor (configured: {', '.join(regressors)})")
                ok = False
            elif isinstance(value, bool):
                values[name] = PlannedBool(value)  # a flag's 1/0; any other kind refuses it (plan_problems)
            elif not _is_number(value):
                problem(f"{at}.{name}", f"must be a finite number, got {echo(value)}")
                ok = False
            else:
                values[name] = float(value)
        if not values and ok:
            problem(at, f"names no regressor value (configured: {', '.join(regressors)})")
            ok = False
        rows.append((ds, values, j))
    return tuple(sorted(rows, key=lambda r: r[0])) if ok else None
