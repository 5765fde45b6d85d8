"""Validation of series ids and partition keys before they become path segments, partition names or SQL values.

Why: ids come from the user's source database and end up in lake paths (``datasets/<store>.parquet``), Dagster
partition keys and registry rows. An id like ``../../etc`` or ``a/b`` must never escape the lake root or
collide with another series, so it is rejected with a message naming the column, the value and the fix.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence

import pandas as pd

MAX_ID_LENGTH = 200  # bytes: ids become file names (255 bytes at most on common file systems)
SERIES_KEY_SEPARATOR = "/"  # safe: "/" can never occur inside a validated id
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f,\[\]]|\.\.")


class InvalidIdError(ValueError):
    """An id value that cannot be used as a path segment or partition key."""


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a usable id, or None if it is."""
    if value == "" or value.strip() == "":
        return "is empty"
    if len(value.encode("utf-8")) > MAX_ID_LENGTH:  # a file name holds 255 bytes, not characters
        return f"is longer than {MAX_ID_LENGTH} bytes in UTF-8 (it becomes a file name)"
    match = _FORBIDDEN.search(value)
    if match:
        return f"contains {match.group(0)!r} (/, \\, '..', ',', '[', ']' and control characters are not allowed)"
    if value.startswith("."):
        return "starts with '.' (hidden or relative path name)"
    if value != value.strip():
        return "has leading or trailing spaces"
    # (ASCII has no invisible character beyond the control ones refused above: most ids skip the walk)
    hidden = None if value.isascii() else next((ch for ch in value if _invisible(ch)), None)
    if hidden is not None:
        return (f"contains the invisible character U+{ord(hidden):04X} ({unicodedata.name(hidden, 'unnamed')}): "
                "an id that looks the same without it would be another series")
    return None


def visible_form(value: str) -> str:
    """``value`` as it reads on screen: without leading or trailing spaces and invisible format characters, other
    spaces made plain. A source that starts writing ``'S01 '`` means the series the lake stores as ``'S01'``: its
    rows are held back as that series' (``ingest.validation``), so what the lake stored of it stays."""
    if value.isascii():
        return value.strip()
    plain = "".join("" if unicodedata.category(ch) == "Cf" else " " if _invisible(ch) else ch for ch in value)
    return plain.strip()


def _invisible(ch: str) -> bool:
    """A format character (zero-width space, joiner, byte-order mark, soft hyphen), or a space other than the
    plain one (no-break, em, ideographic): it cannot be seen, or cannot be told from a space, in the UI."""
    category = unicodedata.category(ch)
    return category == "Cf" or (category in ("Zs", "Zl", "Zp") and ch != " ")


# characters a file or blob name may not hold on Windows, or that URL-based storage (Azure) reads as syntax
_NOT_IN_FILE_NAMES = re.compile(r'[<>:"|?*#%]')


def file_name_problem(value: str) -> str | None:
    """Why ``value`` cannot name a store's files (``datasets/<store>.parquet``) everywhere the lake may live, or
    None: ``id_problem``, and the characters Windows refuses in file names or a storage URL reads as syntax."""
    problem = id_problem(value)
    if problem:
        return problem
    match = _NOT_IN_FILE_NAMES.search(value)
    if match:
        return (f"contains {match.group(0)!r}, which a store's file name may not hold on Windows or in Azure storage "
                "URLs (< > : \" | ? * # % are not allowed in a partition.column value)")
    return None


def bad_id_values(values: Iterable[str], file_name: bool = False) -> dict[str, str]:
    """The distinct values of ``values`` that are not usable ids, each with ``id_problem``'s reason
    (``file_name_problem``'s for the values that name files: the partition column's)."""
    check = file_name_problem if file_name else id_problem
    problems = ((value, check(str(value))) for value in pd.unique(pd.Series(list(values), dtype="object")))
    return {value: problem for value, problem in problems if problem}


def invalid_ids_message(bad: dict[str, str], column: str) -> str:
    """What is wrong with the first few ``bad`` values of ``column`` (``bad_id_values``), and the fix."""
    shown = "; ".join(f"{shortened(value)!r} {problem}" for value, problem in list(bad.items())[:5])
    return (f"id column {column!r}: {shown}. Fix the values in the source, or map columns.ids to a clean id column "
            "(e.g. in source.query: REPLACE(...) or a surrogate key).")


def shortened(text: str, most: int = 60) -> str:
    """``text`` cut to about ``most`` characters for a message, saying how long it is: an id of hundreds of
    characters, refused for its length, was printed whole in every line that named it."""
    return text if len(text) <= most else f"{text[:most - 20]}…({len(text)} characters)"


def series_key(ids: Sequence[str]) -> str:
    """Canonical string key of one series, e.g. ``S01/I003`` (ids are validated, so this is unambiguous)."""
    return SERIES_KEY_SEPARATOR.join(str(v) for v in ids)


def series_keys(frame: pd.DataFrame, id_columns: Sequence[str]) -> pd.Series:
    """Vectorised ``series_key`` for every row."""
    out = frame[id_columns[0]].astype(str)
    for column in id_columns[1:]:
        out = out + SERIES_KEY_SEPARATOR + frame[column].astype(str)
    return out


def _crc(text: str) -> int:
    """The text's CRC-32: the same on every machine and run (Python's ``hash`` of a string is not)."""
    return zlib.crc32(text.encode())


def stable_hash(values: pd.Series) -> pd.Series:
    """Each value's ``_crc`` of its text (computed once per distinct value)."""
    text = values.astype(str)
    return text.map({u: _crc(u) for u in pd.unique(text)}).astype("int64")


def bucket_of(values: pd.Series, buckets: int) -> pd.Series:
    """Stable hash bucket partition keys (``b0000``…) for a high-cardinality partition column."""
    text = values.astype(str)
    width = max(4, len(str(buckets - 1)))
    return text.map({u: f"b{_crc(u) % buckets:0{width}d}" for u in pd.unique(text)})


def partition_keys_for(frame: pd.DataFrame, column: str, buckets: int) -> pd.Series:
    """The Dagster partition key of every row."""
    if buckets > 0:
        return bucket_of(frame[column], buckets)
    return frame[column].astype(str)
