"""The append-row output: how result rows travel through Azure ML's ``append_row_to`` file and back.

Azure ML appends what every ``run()`` returns to one text file in the output folder (``parallel_run_step.txt``):
one line per returned row, the columns joined by spaces, no header, no types. Our rows carry text with spaces
(reasons, metrics JSON, error messages) and timestamps, so that format cannot hold them as they are. The job-side
wrapper (``shim``) therefore returns a single column whose value is one space-free token per row::

    mmrow1:<percent-encoded compact JSON {"s": series key, "r": {column: value, ...}}>

Timestamps are tagged (``{"$ts": iso}``) and come back as datetimes; NaN/None come back as missing values. A
series whose ``run()`` returned no rows still writes one token with ``"r": null``, so "ran and returned nothing"
is not mistaken for "failed" (Azure ML counts an empty return as a failed mini-batch; the local runner does not).
A series that failed inside a chunk of many (``shim``: the chunk is rerun series by series, each with its
retries) writes one token with ``"f": {error_type, error_message, traceback, attempts}``: the chunk itself
succeeds, and exactly that series is recorded as failed.
The reader takes every token that starts with the marker from every file of the output folder, whatever else
the file holds.

This module does not import Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd

ROW_MARKER = "mmrow1:"
RESULT_COLUMN = "mm_assets_row"
_TS = "$ts"


def _plain(value):
    """A JSON-safe version of one cell (numpy and pandas scalars, timestamps, NaN)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date, np.datetime64)):
        return {_TS: pd.Timestamp(value).isoformat()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (dict, list, tuple)):
        return json.loads(json.dumps(value, default=str))
    return value


def encode_token(series_key: str, row: dict | None) -> str:
    payload = {"s": series_key, "r": None if row is None else {str(k): _plain(v) for k, v in row.items()}}
    return ROW_MARKER + quote(json.dumps(payload, separators=(",", ":"), ensure_ascii=False), safe="")


def encode_failure(series_key: str, error_type: str, error_message: str, traceback: str, attempts: int) -> str:
    payload = {"s": series_key, "r": None, "f": {"error_type": error_type, "error_message": error_message[:2000],
                                                 "traceback": traceback[-4000:], "attempts": int(attempts)}}
    return ROW_MARKER + quote(json.dumps(payload, separators=(",", ":"), ensure_ascii=False), safe="")


def encode_rows(frame, series_key: str) -> list[str]:
    """The tokens of everything one ``run()`` returned (a DataFrame, a list of rows, or nothing)."""
    if frame is None:
        return [encode_token(series_key, None)]
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    if frame.empty:
        return [encode_token(series_key, None)]
    return [encode_token(series_key, row) for row in frame.to_dict("records")]


def result_frame(tokens: list[str]) -> pd.DataFrame:
    """What the wrapper returns to Azure ML: one column, one token per row."""
    return pd.DataFrame({RESULT_COLUMN: tokens})


def _restore(value, ts_columns: set, column: str):
    if isinstance(value, dict) and set(value) == {_TS}:
        ts_columns.add(column)
        return pd.Timestamp(value[_TS])
    return value


@dataclass
class Output:
    """What an append-row output holds: rows, the series that reported (with or without rows), the series that
    failed inside a chunk (key → error fields), and the count of lines that are not ours."""

    rows: pd.DataFrame
    reported: set[str]
    failed: dict[str, dict] = field(default_factory=dict)
    foreign: int = 0


def decode_lines(lines: Iterable[str]) -> Output:
    records: list[dict] = []
    reported: set[str] = set()
    failed: dict[str, dict] = {}
    foreign = 0
    ts_columns: set[str] = set()
    for line in lines:
        tokens = [t.strip("\"'") for t in line.split()]
        ours = [t for t in tokens if t.startswith(ROW_MARKER)]
        if not ours:
            foreign += bool(line.strip())
            continue
        for token in ours:
            payload = json.loads(unquote(token[len(ROW_MARKER) :]))
            if payload.get("f") is not None:
                failed[payload["s"]] = payload["f"]
                continue
            reported.add(payload["s"])
            if payload["r"] is not None:
                records.append({k: _restore(v, ts_columns, k) for k, v in payload["r"].items()})
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for column in ts_columns:
        frame[column] = pd.to_datetime(frame[column])
    return Output(frame, reported, {k: v for k, v in failed.items() if k not in reported}, foreign)


def output_files(folder: Path) -> list[Path]:
    """Every regular file of a downloaded output folder (Azure ML names it parallel_run_step.txt)."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def read_append_row_output(folder: Path) -> tuple[Output, list[Path]]:
    """Decode the append-row output under ``folder``: its content and the files read."""
    files = output_files(folder)

    def lines():
        for file in files:
            with open(file, encoding="utf-8", errors="replace") as handle:
                yield from handle

    return decode_lines(lines()), files
