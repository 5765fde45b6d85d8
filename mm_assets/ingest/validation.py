"""Validation of source rows before anything is written to the lake.

Why before: a bad batch must fail with a message that names the column, the problem, examples and the fix,
while every file already in the lake stays as it was. The output is the lake's raw schema: the source's
own column names (the contract BI and users know), ids as strings, a float target, numeric regressors, plus
``_partition`` (the Dagster partition of each row) for pushdown when datasets are cut.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mm_assets.ids import (
    InvalidIdError,
    bad_id_values,
    file_name_problem,
    id_problem,
    invalid_ids_message,
    partition_keys_for,
    shortened,
    visible_form,
)
from mm_assets.ingest.period_grid import ANCHOR_DAY, DAY_NAMES, grid_problem
from mm_assets.ingest.sales_leap import SalesLeap
from mm_assets.settings import Settings

PARTITION_COLUMN = "_partition"


class DataValidationError(ValueError):
    """Source rows that cannot be ingested; the message says what and how to fix it."""


MAX_TARGET = 1e12  # no store sells a trillion units of an item in a period: larger values are data errors


def plain(value: Any) -> str:
    """A value as a user wrote it in the source, not as pandas spells it: ``2026-11-21`` for
    ``Timestamp('2026-11-21 00:00:00')``, ``2.5`` for ``np.float64(2.5)``, NULL for a missing value; text keeps its
    quotes, so that ``'NaN'`` (text) and a NULL read apart."""
    if value is None or value is pd.NaT or value is pd.NA:
        return "NULL"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        if value.tzinfo is None and value == value.replace(hour=0, minute=0, second=0, microsecond=0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return "NULL"
    return repr(shortened(value)) if isinstance(value, str) else repr(value)


def _examples(frame: pd.DataFrame, mask: pd.Series, columns: list[str], n: int = 3) -> str:
    rows = frame.loc[mask, columns].head(n)
    return "; ".join(", ".join(f"{c}={plain(row[c])}" for c in columns) for _, row in rows.iterrows())


def _first_pair(frame: pd.DataFrame, mask: pd.Series, key: list[str]) -> pd.Series:
    """The rows of ``mask`` (duplicated keys) that share the first one's key: the example of a duplicate shows the
    rows of one key with their values side by side (which sale is right?), not the first rows of three keys."""
    first = frame.loc[mask, key].iloc[0]
    return mask & frame[key].eq(first).all(axis=1)


# text a source may hold for a missing value: not a number, and not the NULL a missing value is
MISSING_TEXT = ("nan", "null", "none", "n/a", "na", "-", "")
THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")  # 1,585 or 12,345.5: a number with thousands separators
DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")  # 0,0434 or 12,5: a decimal comma (not when every value is 1,585-like)
# the words a source may write a 0/1 flag with ('Y' / 'N', true / false): on, and off
FLAG_ON = ("y", "yes", "true", "t", "on")
FLAG_OFF = ("n", "no", "false", "f", "off")


def _not_numbers_fix(values: pd.Series, column: str) -> str:
    """The fix for ``values`` (the source's values of ``column`` that are not numbers)."""
    texts = sorted({str(v).strip() for v in values if isinstance(v, str) and v.strip().lower() in MISSING_TEXT})
    if texts:
        shown = " / ".join(repr(t) for t in texts)
        return (f"a missing value is stored as NULL, not as the text {shown}: store NULL in the source, or turn the "
                f"text into NULL in source.query (e.g. NULLIF({column}, {texts[0]!r}))")
    decimal = [v for v in values if isinstance(v, str) and DECIMAL_COMMA.match(v.strip())
               and not THOUSANDS.match(v.strip())]
    if decimal:  # CAST('0,04' AS REAL) is 0.0 in SQLite: the comma must become a point first
        return (f"the values use a decimal comma (e.g. {decimal[0]!r}): turn it into a point in source.query (e.g. "
                f"CAST(REPLACE({column}, ',', '.') AS REAL)); a plain CAST reads '0,04' as 0")
    words = {v.strip() for v in values if isinstance(v, str)}
    if words and all(w.lower() in FLAG_ON + FLAG_OFF for w in words):  # CAST('Y' AS REAL) is 0.0 in SQLite
        on_of = dict(zip(FLAG_OFF, FLAG_ON))  # only off words seen: their on words, in the source's case
        on = (sorted(w for w in words if w.lower() in FLAG_ON)
              or [on_of[w] if w.islower() else on_of[w.lower()].upper() for w in sorted(words)])
        shown = " / ".join(repr(w) for w in sorted(words))
        return (f"the values are the words of a flag ({shown}): turn them into 1 and 0 in source.query (e.g. "
                f"CASE WHEN {column} IN ({', '.join(repr(w) for w in on)}) THEN 1 ELSE 0 END); a plain CAST reads "
                "every word as 0")
    grouped = [v for v in values if isinstance(v, str) and THOUSANDS.match(v.strip())]
    if grouped:  # CAST('1,585' AS REAL) is 1.0 in SQLite: the separators must go first
        return (f"the values hold thousands separators (e.g. {grouped[0]!r}): remove them in source.query (e.g. "
                f"CAST(REPLACE({column}, ',', '') AS REAL)); a plain CAST reads '1,585' as 1")
    return f"clean the source or cast the column in source.query (e.g. CAST({column} AS REAL))"


def _refuse_unfit_store_names(frame: pd.DataFrame, settings: Settings) -> None:
    """A partition value is a file name (``datasets/<store>.parquet``), so two kinds are refused here, before the
    partition is registered (once it is, every batch with it fails until the partition is retired):

    - one ending in '.' makes '<store>..parquet', which the lake refuses, and Windows and Azure storage drop a
      name's trailing dot;
    - values that differ only in case or in how an accent is encoded ('Store A' and 'STORE A'; 'Café' composed or
      not) name one file on a case-insensitive disk (macOS, Windows), where their stores' data would overwrite
      each other."""
    column = settings.partition.column
    if not settings.partition.values_name_files:
        return
    values = pd.Series(pd.unique(frame[column].astype(str)))
    dotted = [v for v in values if v.endswith(".")][:5]
    if dotted:
        raise DataValidationError(
            f"partition column {column!r} (partition.column): {', '.join(repr(v) for v in dotted)} ends with '.'; a "
            f"store's files are named by it ('{dotted[0]}.parquet'), and a name ending in '.' is not a valid file or "
            f"blob name everywhere. Rename it in the source or in source.query (e.g. RTRIM({column}, '.')), or "
            "partition by hash bucket (partition.buckets)")
    folded = values.map(lambda v: unicodedata.normalize("NFC", v).casefold())
    twins = values[folded.duplicated(keep=False)]
    if len(twins):
        groups = twins.groupby(folded[twins.index]).agg(sorted)
        shown = "; ".join(" and ".join(repr(v) for v in group) for group in list(groups)[:3])
        encoded = any(len({unicodedata.normalize("NFC", v) for v in group}) < len(group) for group in groups)
        spell = (f"NORMALIZE({column}, NFC) on PostgreSQL 13+, or the same accented letters in the source"
                 if encoded else f"UPPER({column})")
        raise DataValidationError(
            f"partition column {column!r} (partition.column): {shown} differ only in case or in how an accent is "
            "encoded; their files (datasets/<store>.parquet) are one file on a case-insensitive disk (macOS, "
            f"Windows). Give each store one spelling in the source or in source.query (e.g. {spell}), or "
            "partition by hash bucket (partition.buckets)")


def whole_number_ids(frame: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """``frame`` with each id column of floats that are all whole numbers as integers (a nullable column).

    Why: an INTEGER id column read with a NULL in it comes as floats (a float column is how pandas holds an
    integer one with a missing value), and the store 2 would become "2.0" in the reads with a NULL and "2" in
    the others: every series of those reads split in two, under stores of their own."""
    converted = {}
    for c in ids:
        values = frame[c]
        if pd.api.types.is_float_dtype(values):
            known = values.dropna()
            if len(known) and np.isfinite(known).all() and (known == np.round(known)).all() \
                    and known.abs().max() < 2.0 ** 53:
                converted[c] = values.astype("Int64")
    return frame.assign(**converted) if converted else frame


def configured_columns(settings: Settings) -> dict[str, str]:
    """Every column the settings name in the source, with the setting that names it."""
    cols = settings.columns
    return {cols.timestamp: "columns.timestamp", cols.target: "columns.target",
            **{c: "columns.ids" for c in cols.ids}, **{c: "columns.regressors" for c in cols.regressors}}


INVISIBLE = "\ufeff\u200b\u00a0 \t\r\n"  # a byte-order mark, a zero-width or non-breaking space, white space


def _folded(name: str) -> str:
    """A column name as ``missing_columns`` matches it: without invisible characters around it, in any case."""
    return name.strip(INVISIBLE).casefold()


def missing_columns(needed: dict[str, str], available: list[str]) -> str | None:
    """What the source lacks of the configured columns (``needed``: column -> its setting), every one at once and
    each with the source's column of the same name in another case (``Date`` for ``date``) or with invisible
    characters around it (a UTF-8 byte-order mark that a CSV import left on the first column's name, a space), or
    None."""
    by_fold = {_folded(c): c for c in available}
    missing = []
    for column, role in needed.items():
        if column not in available:
            twin = by_fold.get(_folded(column))
            hint = ""
            if twin is not None and twin.strip(INVISIBLE) != twin:
                hint = (f": the source's column {twin!r} is it with invisible characters in its name (a byte-order "
                        f"mark a CSV import left, or spaces); rename it in the source, or select it as {column!r} in "
                        "source.query")
            elif twin is not None:
                hint = f": did you mean {twin!r}?"
            missing.append(f"{column!r} ({role})" + hint)
    if not missing:
        return None
    return (f"is missing column(s) {'; '.join(missing)}; it has {', '.join(available)}. Map the columns.* settings "
            "to the source's names (they are case-sensitive) or select them in source.query.")


@dataclass
class MergedRows:
    """Rows that ``ingest.on_duplicates: sum | last`` merged into others sharing their (timestamp, ids) key, over
    an ingest's reads: the setting asks for it, but rows merged without a word hid a feed that started sending
    each row twice (its sales doubled under ``sum``)."""

    rows: int = 0
    example: str = ""
    policy: str = ""

    def add(self, rows: int, example: str, policy: str) -> None:
        self.rows += rows
        self.example = self.example or example
        self.policy = policy

    def line(self, key: str) -> str:
        """The ingest's log line and metadata text."""
        how = "summed into one" if self.policy == "sum" else "dropped for the last of them"
        return (f"{self.rows:,} source rows shared a ({key}) key with another row and were {how} "
                f"(ingest.on_duplicates: {self.policy}), e.g. {self.example}. Expected of a source that sends "
                "a day's sales in parts; a feed that sends each row twice doubles its sales under 'sum'")


def validate_raw(frame: pd.DataFrame, settings: Settings, now: pd.Timestamp | None = None,
                 held: list[dict] | None = None, settled: bool = False,
                 merged: MergedRows | None = None) -> pd.DataFrame:
    """Checked and typed copy of source rows. Raises DataValidationError naming the problem.

    ``held``: when given, a problem of some rows' values (a date that cannot be read, an empty or unusable id, a
    target or regressor that is not a number, a missing, negative or absurd target, a duplicate key) holds back their series
    instead: every row of such a series is left out of the returned rows, and the series is appended to ``held``
    (``hold_back``). Problems of the source as a whole (missing columns, the wrong frequency, store names that
    cannot name a file) still raise. ``settled``: the source's weeks are known to be dated by the configured weekday
    (the lake holds periods ingested so): rows off it are then held back however few rows were read beside them (a
    new week of one mistyped row), not taken for the frequency mistaken for the whole source. ``merged``: counts
    the rows that ``ingest.on_duplicates: sum | last`` merged, with an example."""
    cols = settings.columns
    needed = configured_columns(settings)
    problem = missing_columns(needed, list(frame.columns))
    if problem:
        raise DataValidationError(f"source {problem}")
    out = whole_number_ids(frame[list(needed)].copy(), cols.ids)
    held_before = len(held) if held is not None else 0

    def refuse(mask: pd.Series, kind: str, describe: Callable[[pd.Series], str]) -> None:
        """Raise ``describe(mask)``, or hold back the series of ``mask``'s rows (each with its own rows' text)."""
        nonlocal out
        if held is None:
            raise DataValidationError(describe(mask))
        out = hold_back(out, mask, kind, describe, settings, held)

    _refuse_numeric_dates(out, cols.timestamp, cols.ids)
    raw_ts = out[cols.timestamp]
    if raw_ts.dtype == object or pd.api.types.is_string_dtype(raw_ts):
        # text dates must be ISO: '03/04/2026' is March or April depending on who reads it
        text = raw_ts.astype("string")
        not_iso = text.notna() & ~text.str.match(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$").fillna(False)
        if not_iso.any():
            refuse(not_iso, f"{cols.timestamp!r} not an ISO date", lambda m: (
                f"column {cols.timestamp!r} (columns.timestamp): {int(m.sum())} values are not ISO dates "
                f"(YYYY-MM-DD or YYYY-MM-DD HH:MM:SS), e.g. {_examples(out, m, [*cols.ids, cols.timestamp])}; "
                "store ISO dates, or convert them in source.query"))
    ts = pd.to_datetime(out[cols.timestamp], errors="coerce", format="mixed")
    bad = ts.isna()
    if bad.any():
        refuse(bad, f"{cols.timestamp!r} not a timestamp", lambda m: (
            f"column {cols.timestamp!r} (columns.timestamp): {int(m.sum())} values are not timestamps, e.g. "
            f"{_examples(out, m, [*cols.ids, cols.timestamp])}; fix the source or cast it in source.query"))
        ts = ts[out.index]
    # a row belongs to its calendar day: '2026-10-01 12:00:00' is the sale of 2026-10-01, and the period grid is
    # one of days (several rows of one day are then duplicates, see ingest.on_duplicates)
    days = ts.dt.normalize()
    had_time = bool((days != ts).any())
    out[cols.timestamp] = days.astype("datetime64[ns]")
    for c in cols.ids:
        if out[c].isna().any():
            others = [cols.timestamp, *(o for o in cols.ids if o != c)]
            refuse(out[c].isna(), f"{c!r} empty (NULL)", lambda m, c=c, others=others: (
                f"id column {c!r} (columns.ids) has {int(m.sum())} empty (NULL) values, e.g. the rows "
                f"{_examples(out, m, others)}; give every row its {c}, or leave such rows out in source.query "
                f"(WHERE {c} IS NOT NULL)"))
    if held is not None and not settings.is_daily:
        # most rows on the weekday the weeks are dated by: the others are slips of their series, held back; most
        # rows off it is the frequency mistaken for the whole source, refused below with the weekday that fits
        off = out[cols.timestamp].dt.day_of_week != ANCHOR_DAY[settings.week_anchor]
        if off.any() and (off.mean() < 0.5 or settled):
            day = DAY_NAMES[ANCHOR_DAY[settings.week_anchor]]
            refuse(off, f"{cols.timestamp!r} not a {day}", lambda m: (
                f"column {cols.timestamp!r} (columns.timestamp): {int(m.sum())} rows are not dated by a {day}, "
                f"e.g. {_examples(out, m, [*cols.ids, cols.timestamp])}; frequency {settings.frequency} dates every "
                f"week by its {day}: date every row by the {day} of its week in source.query, or fix the dates "
                "in the source"))
    # the step of the dates is judged on the rows with a sale: a plan may hold only a few promotion days
    # each row's series: daily settings also judge whether every series is weekly on its own weekday
    series = out.groupby(list(cols.ids), dropna=False, sort=False).ngroup().to_numpy() if settings.is_daily else None
    problem = grid_problem(out[cols.timestamp], settings.frequency, cols.timestamp, sold=out[cols.target].notna(),
                           series=series)
    if problem:
        if not settings.is_daily:  # the rows off the weekday, by their ids
            off = out[cols.timestamp].dt.day_of_week != ANCHOR_DAY[settings.week_anchor]
            if off.any():
                problem += f" (rows off the weekday: {_examples(out, off, [*cols.ids, cols.timestamp])})"
        raise DataValidationError(problem)
    for c in cols.ids:
        out[c] = out[c].astype(str)
        names_files = c == settings.partition.column and settings.partition.values_name_files
        bad_ids = bad_id_values(out[c].unique(), file_name=names_files)
        if bad_ids:
            if held is None:
                raise InvalidIdError(invalid_ids_message(bad_ids, c))
            refuse(out[c].isin(list(bad_ids)), f"{c!r} not usable as an id",
                   lambda m, c=c, f=names_files: invalid_ids_message(bad_id_values(out.loc[m, c], f), c))
    _refuse_unfit_store_names(out, settings)

    now = now if now is not None else pd.Timestamp.now().normalize()
    problems = [(kind, column, mask) for kind, column, mask in value_problems(out, settings, now) if mask.any()]
    if held is None and problems:  # every kind at once: a second one was found only after the first was fixed
        raise DataValidationError("\n".join(_value_message(kind, column, out, mask, settings)
                                             for kind, column, mask in problems))
    for kind, column, mask in problems:
        mask = mask.reindex(out.index, fill_value=False)  # the rows of series held for an earlier kind are gone
        if mask.any():
            refuse(mask, kind, lambda m, kind=kind, column=column: _value_message(kind, column, out, m, settings))
    for c in [cols.target, *cols.regressors]:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    _refuse_flags_without_zero(out, settings)

    key = [cols.timestamp, *cols.ids]
    dup = out.duplicated(key, keep=False)
    if dup.any():
        policy = settings.ingest.on_duplicates
        if policy == "error":
            dropped = " (times of day are dropped: a row belongs to its calendar day)" if had_time else ""
            refuse(dup, "duplicate key", lambda m: (
                f"{int(m.sum())} rows share a ({', '.join(key)}) key{dropped}, e.g. "
                f"{_examples(out, _first_pair(out, m, key), [*key, cols.target])}. "
                "Aggregate them in source.query, or set ingest.on_duplicates to 'sum' or 'last'."))
        else:
            if merged is not None:  # the rows that disappear into others, and the first pair of them
                merged.add(int(dup.sum()) - int(out.loc[dup, key].drop_duplicates().shape[0]),
                           _examples(out, _first_pair(out, dup, key), [*key, cols.target]), policy)
            if policy == "sum":
                order = list(out.columns)  # the stored files' column order: another is a change of columns
                grouped = out.groupby(key, sort=False)
                # min_count=1: duplicated planned rows (no target) stay without a target, not a sale of 0
                summed = grouped[cols.target].sum(min_count=1)
                regs = grouped[list(cols.regressors)].last() if cols.regressors else None
                out = (summed.to_frame() if regs is None else pd.concat([summed, regs], axis=1)).reset_index()
                out = out[[c for c in order if c in out.columns]]
            else:
                out = out.drop_duplicates(key, keep="last")
    out[PARTITION_COLUMN] = partition_keys_for(out, settings.partition.column, settings.partition.buckets)
    if held is not None and len(held) > held_before:
        _also_wrong(whole_number_ids(frame[list(needed)], cols.ids), held[held_before:], settings, now)
    return out.sort_values([PARTITION_COLUMN, *cols.ids, cols.timestamp], ignore_index=True)


def value_problems(rows: pd.DataFrame, settings: Settings, now: pd.Timestamp) -> list[tuple[str, str, pd.Series]]:
    """Every kind of bad value of the target and the regressors in ``rows`` (as the source gave them): (kind, column,
    rows that have it), in the order ``validate_raw`` reports them. One list for the check and for the note of what
    else a held series' rows have (``_also_wrong``), so that the two cannot name a problem differently."""
    cols = settings.columns
    target = pd.to_numeric(rows[cols.target], errors="coerce")
    when = rows[cols.timestamp]
    if not pd.api.types.is_datetime64_any_dtype(when):
        when = pd.to_datetime(when, errors="coerce", format="mixed")
    past = when < now + pd.Timedelta(days=1)  # a row of today, at any time of day, is past
    empty = rows[cols.target].isna()
    missing = empty & past
    if missing.any():
        missing &= ~not_reported_yet(rows, when, empty, settings, now)
    out = [(f"{cols.target!r} not a number", cols.target, target.isna() & rows[cols.target].notna()),
           (f"{cols.target!r} missing", cols.target, missing),
           (f"{cols.target!r} infinite or above {MAX_TARGET:.0e}", cols.target,
            np.isinf(target) | (target.abs() > MAX_TARGET)),
           (f"{cols.target!r} negative", cols.target, target < 0)]
    for c in cols.regressors:
        values = pd.to_numeric(rows[c], errors="coerce")
        out += [(f"{c!r} not a number", c, values.isna() & rows[c].notna()), (f"{c!r} infinite", c, np.isinf(values))]
    return out


def not_reported_yet(rows: pd.DataFrame, when: pd.Series, empty: pd.Series, settings: Settings,
                     now: pd.Timestamp) -> pd.Series:
    """The rows without a target of a store that has no sale on their date or after among ``rows``, within
    ``max_normal_gap`` periods of the store's newest sale among them (of ``now``, the source's newest sale, when
    they hold none of the store's): the store has not reported that period yet, and its rows there are its plan,
    as after the source's newest sale. Why: stores of one source report at different times, and one store's sales
    of a period made every other store's planned rows of it "missing", which held them back or refused the
    ingest. A row without a target in a period its store did report is missing data, as before; so is one of a
    store that stopped reporting longer ago (the summary's stores behind), or one far back in history."""
    store = rows[settings.partition.column]
    newest = when.where(~empty).groupby(store).transform("max")  # the store's newest sale among the rows
    allowed = settings.max_normal_gap * settings.step
    recent = (when - newest <= allowed) | (newest.isna() & (pd.Timestamp(now) - when <= allowed))
    return empty & (newest.isna() | (when > newest)) & recent


def _value_message(kind: str, column: str, rows: pd.DataFrame, m: pd.Series, settings: Settings) -> str:
    """What ``validate_raw`` says of the rows ``m`` that have the bad value ``kind`` in ``column``, with the fix."""
    cols = settings.columns
    n, period = int(m.sum()), "day" if settings.is_daily else "week"
    examples = _examples(rows, m, [*cols.ids, cols.timestamp, column])
    if column != cols.target:
        fix = (_not_numbers_fix(rows.loc[m, column], column) if kind.endswith("not a number")
               else "fix them in the source")
        what = "are not numbers" if kind.endswith("not a number") else "are infinite"
        return f"regressor column {column!r} (columns.regressors): {n} values {what}, e.g. {examples}; {fix}"
    head = f"column {column!r} (columns.target): {n}"
    if kind.endswith("not a number"):
        return (f"{head} values are not numbers, e.g. {examples}; {_not_numbers_fix(rows.loc[m, column], column)} "
                f"(only planned future rows may leave the target empty: a past {period} without sales is 0, or no row)")
    if kind.endswith("missing"):
        return (f"{head} past rows have no value (NaN), e.g. {_examples(rows, m, [*cols.ids, cols.timestamp])}. "
                f"Drop those rows in the source (a missing {period} is fine) or fill them; only planned future rows, "
                f"and the rows of a store that has not reported its newest {period}s yet, may leave the target empty.")
    if kind.endswith("negative"):
        return (f"{head} rows are negative, e.g. {examples}. Demand cannot be negative: net returns out in the "
                f"source or clip in source.query (e.g. CASE WHEN {column} < 0 THEN 0 ELSE {column} END).")
    return (f"{head} values are infinite or above {MAX_TARGET:.0e}, e.g. {examples}. A sale that large is a unit "
            "or export error: fix it in the source or filter it in source.query.")


def _also_wrong(frame: pd.DataFrame, held: list[dict], settings: Settings, now: pd.Timestamp) -> None:
    """Adds to each held series' problem the other kinds of bad values its rows have: a series is held for its
    first problem, and its rows leave the checks there, so a second one (a negative sale, then a text price) was
    found only after the first was fixed and the ingest run again."""
    ids = list(settings.columns.ids)
    wanted = pd.DataFrame([h["ids"] for h in held if h.get("ids")], columns=ids).drop_duplicates()
    if not len(wanted):
        return
    keys = frame[ids].astype(str)
    rows = frame[keys.merge(wanted.assign(_held=True), on=ids, how="left")["_held"].fillna(False).to_numpy(bool)]
    if not len(rows):
        return
    found = pd.DataFrame({kind: mask.to_numpy(bool) for kind, _, mask in value_problems(rows, settings, now)})
    per_series = found.groupby([rows[c].astype(str).to_numpy() for c in ids]).sum()
    for h in held:
        key = (h["ids"] if len(ids) > 1 else h["ids"][0]) if h.get("ids") else None
        if key is None or key not in per_series.index:
            continue
        counts = per_series.loc[key]
        also = [f"{kind} ({int(n)} row{'s' if n != 1 else ''})" for kind, n in counts.items()
                if n and kind != h["kind"]]
        if also:
            h["problem"] += f" Its rows also have: {'; '.join(also)}."


# a held-back series' record (``hold_back``)
HELD_COLUMNS = ("series", "store", "bad_rows", "first_date", "kind", "problem")
SPECIFIC_PROBLEMS = 100  # held series whose problem text is made of their own rows; the others share the batch's
MISSING_ID, EMPTY_ID = "<NULL>", "<empty>"  # how a held series without an id value is named


def hold_back(frame: pd.DataFrame, mask: pd.Series, kind: str, describe: Callable[[pd.Series], str],
              settings: Settings, held: list[dict]) -> pd.DataFrame:
    """``frame`` without every row of the series that have a row in ``mask``; each such series is appended to
    ``held`` as a record of ``HELD_COLUMNS``: its ids ('/'-joined), its store partition (None when the
    partition column's value is empty or unusable: such rows belong to no store), how many of its rows have the problem, the first such row's
    date, the ``kind`` of problem (a short label, e.g. "'price' not a number") and the problem: ``describe`` of
    the series' own rows (the column, what is wrong, examples and the fix; past ``SPECIFIC_PROBLEMS`` series, of
    the batch's); and under ``ids`` its id values as the lake stores them (None when one is unusable: the lake
    holds no such series).

    Why the whole series and not the bad rows alone: a series with a row dropped would train on a history that
    silently lacks a period (a sale read as absent); held back, it keeps what the lake stored before."""
    cols = settings.columns
    ids = list(cols.ids)
    partition_column = settings.partition.column
    name_problem = file_name_problem if settings.partition.values_name_files else id_problem
    group = frame.groupby(ids, dropna=False, sort=False).ngroup()
    bad_groups = pd.unique(group[mask])
    first = frame.loc[mask].assign(_group=group[mask]).groupby("_group", sort=False)
    counts = first.size()
    heads = first.head(1).set_index("_group")
    shared = describe(mask) if len(bad_groups) > SPECIFIC_PROBLEMS else None
    for n, g in enumerate(bad_groups):
        row = heads.loc[g]
        values = [row[c] for c in ids]
        # its store is named by the partition column alone: a series with an unusable item id still belongs to
        # its store, whose check and `failures --store` must list it; without a usable store value it has none
        values = _as_stored(values, ids.index(partition_column), name_problem)
        part = values[ids.index(partition_column)]
        store_ok = not (pd.isna(part) or name_problem(str(part)))
        usable = store_ok and not any(pd.isna(v) or id_problem(str(v)) for v in values)
        store = None
        if store_ok:
            one = pd.DataFrame({partition_column: [str(part)]})
            store = str(partition_keys_for(one, partition_column, settings.partition.buckets).iloc[0])
        when = pd.to_datetime(row[cols.timestamp], errors="coerce")
        held.append({"series": "/".join(_id_label(row[c]) for c in ids), "store": store, "bad_rows": int(counts.loc[g]),
                     "first_date": None if pd.isna(when) else str(when.date()), "kind": kind,
                     "problem": describe(mask & (group == g)) if n < SPECIFIC_PROBLEMS else shared,
                     "ids": tuple(str(v) for v in values) if usable else None})
    return frame[~group.isin(bad_groups)]


def _as_stored(values: list, store_at: int, name_problem) -> list:
    """A held series' id values as the lake would store them: an id written with spaces around it or an
    invisible character (``'S01 '``) is the series whose id reads the same (``ids.visible_form``), when that one is
    a usable id. Its stored rows are then kept as a held series' are; else (a store re-exported with a trailing
    space) the source would no longer write the stored series at all, and every period file rewritten from it would
    drop the store's history while the message said it stays."""
    out = list(values)
    for k, value in enumerate(values):
        if pd.isna(value) or not (text := str(value)) or not id_problem(text):
            continue
        plain = visible_form(text)
        if plain != text and not (name_problem if k == store_at else id_problem)(plain):
            out[k] = plain
    return out


def _refuse_flags_without_zero(frame: pd.DataFrame, settings: Settings) -> None:
    """Refuse a regressor that holds only the value 1 and is empty (NULL) elsewhere: a 0/1 flag whose 0 is stored
    as NULL, as a LEFT JOIN of a promotions table writes it. An empty regressor value is read as missing and carried
    forward from the period before (a closed day keeps its price), so every row would read 1 and the models would
    learn nothing from the column, silently: on orangeJuice with its deal flag so stored, WAPE went from 41.6 % to
    50.4 %. A problem of the source as a whole, refused before anything is stored, with the fix."""
    cols = settings.columns
    for c in cols.regressors:
        values = frame[c]
        empty = values.isna()
        seen = values[~empty]
        if empty.any() and len(seen) and bool((seen == 1.0).all()):
            raise DataValidationError(
                f"column {c!r} (columns.regressors) holds only the value 1 and is empty (NULL) in "
                f"{int(empty.sum()):,} of {len(values):,} rows, e.g. {_examples(frame, empty, [*cols.ids, cols.timestamp])}"
                f": a 0/1 flag whose 0 is stored as NULL (a LEFT JOIN of a promotions table)? An empty value is read "
                f"as missing and carried forward from the period before, so every row would read 1 and the models "
                f"would learn nothing from it. Store 0 there, or write it in source.query (e.g. COALESCE({c}, 0) AS "
                f"{c}); if 1 is right in every row, leave {c!r} out of columns.regressors: a column that never "
                "changes tells the models nothing")


def _id_label(value) -> str:
    """An id value as a held series is named: a missing or empty one apart from any real id."""
    if pd.isna(value):
        return MISSING_ID
    return EMPTY_ID if str(value).strip() == "" else str(value)


def _refuse_numeric_dates(frame: pd.DataFrame, column: str, ids: list[str]) -> None:
    """Numbers are not dates: pandas would read 20261001 as nanoseconds after 1970 and file every row under
    1970-01-01, so a numeric timestamp column is an error naming an example and the conversion."""
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values) or not values.notna().any():
        return
    raise DataValidationError(
        f"column {column!r} (columns.timestamp) holds numbers, not dates, e.g. "
        f"{_examples(frame, values.notna(), [*ids, column], n=2)}; store ISO dates (YYYY-MM-DD), or convert them "
        f"in source.query (for numbers such as 20261001 in SQLite: substr({column}, 1, 4) || '-' || "
        f"substr({column}, 5, 2) || '-' || substr({column}, 7, 2) AS {column})"
    )


def check_no_future_sales(rows: pd.DataFrame, settings: Settings, today: pd.Timestamp,
                          held: list[dict] | None = None, leap: SalesLeap | None = None) -> pd.DataFrame:
    """``rows``: source rows dated after ``today``, or from a ``leap``'s first sale on. A sale among them (a typo
    such as 2099, or 2020 in data of 2018) would make every planned row before it look like missing data and end
    the source's sales there: an error that names the rows, or, given ``held`` (``ingest.on_bad_rows: hold``),
    their series held back (``hold_back``). Returns ``rows`` without the held series."""
    cols = settings.columns
    if rows.empty:
        return rows
    when = pd.to_datetime(rows[cols.timestamp], errors="coerce", format="mixed")
    sold = pd.to_numeric(rows[cols.target], errors="coerce").notna()
    future = (when >= leap.start if leap is not None else when > today) & sold
    if not future.any():
        return rows

    def describe(mask: pd.Series) -> str:
        example = _examples(rows, mask, [*cols.ids, cols.timestamp, cols.target])
        if leap is not None and not (when[mask] > today).all():
            return (f"column {cols.timestamp!r} (columns.timestamp): {int(mask.sum())} rows with a sale are "
                    f"{leap.words(settings)}, e.g. {example}. Fix the date in the source; they are read once the "
                    "rest of the source reaches their dates.")
        return (f"column {cols.timestamp!r} (columns.timestamp): {int(mask.sum())} rows with a sale are dated after "
                f"today ({today.date()}), e.g. {example}. "
                "Fix the date in the source; rows after today may only carry the plan (regressors, no target).")

    if held is None:
        raise DataValidationError(describe(future))
    kind = "sale dated after today" if leap is None else "sale dated far after the rest (a mistyped date?)"
    return hold_back(rows, future, kind, describe, settings, held)
