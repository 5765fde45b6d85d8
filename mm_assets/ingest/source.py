"""Reading the source database: any SQLAlchemy URL, a table or a query, one time window per read.

Why a window and one query: a backfill of a thousand daily partitions reads the source once (start..end) and
is split into day files afterwards, instead of a thousand round trips.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mm_assets.ingest.period_grid import ANCHOR_DAY, grid_problem
from mm_assets.ingest.validation import configured_columns, missing_columns, plain
from mm_assets.settings import Settings
from mm_assets.sql import engine_for, redact


class SourceError(RuntimeError):
    """The source cannot be read as configured; the message names the setting to fix."""


class SourceMissingError(SourceError):
    """The source has nothing to read: no database file, no such table, or no rows (the demo creates one)."""


@dataclass(frozen=True)
class SourceReader:
    url: str
    table: str
    query: str | None
    timestamp: str
    frequency: str | None = None  # D, W or W-<day>: ``date_range`` refuses dates off its grid; None: not checked
    columns: tuple[tuple[str, str], ...] = ()  # (column, its setting) of every configured column: named at once

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceReader:
        return cls(settings.source.url, settings.source.table, settings.source.query, settings.columns.timestamp,
                   settings.frequency, tuple(configured_columns(settings).items()))

    def _engine(self) -> sa.Engine:
        """An engine for reading: a SQLite file that does not exist is an error, never created empty."""
        parsed = sa.engine.make_url(self.url)
        db = parsed.database
        if parsed.get_backend_name() == "sqlite" and db and db != ":memory:" and not Path(db).is_file():
            raise SourceMissingError(
                f"source.url {redact(self.url)}: there is no database file {db}; set source.url to the source "
                "database (run `mm-assets generate-demo` for the demo source)"
            )
        return engine_for(self.url)

    def _select(self, engine: sa.Engine) -> sa.TextClause | sa.Select:
        if self.query:
            return sa.text(self.query)
        try:
            table = sa.Table(self.table, sa.MetaData(), autoload_with=engine)
        except sa.exc.NoSuchTableError:
            raise SourceMissingError(
                f"source.table {self.table!r} does not exist in {redact(self.url)}{_tables_there(engine)}; set "
                "source.table or source.query (run `mm-assets generate-demo` for the demo source)"
            ) from None
        problem = missing_columns(dict(self.columns) or {self.timestamp: "columns.timestamp"}, list(table.c.keys()))
        if problem:
            raise SourceError(f"source.table {self.table!r} {problem}")
        ts = table.c[self.timestamp]
        # SQLite keeps dates as text (whatever tool wrote them): compare as text against ISO bounds.
        bound_type = sa.String() if engine.dialect.name == "sqlite" else ts.type
        return (
            sa.select(*(self._raw(engine, c) if c is ts else c for c in table.c))
            .where(ts >= sa.bindparam("start", type_=bound_type))
            .where(ts < sa.bindparam("end", type_=bound_type))
        )

    @staticmethod
    def _raw(engine: sa.Engine, expression):
        """``expression`` as SQLite stores it (text, or a number) on SQLite: a DATE or DATETIME column's own
        result type would parse every value with ``date.fromisoformat`` and raise on '2026-10-01 12:00:00' (a
        datetime in a DATE column) or on a number, with a traceback instead of a message. Validation parses the
        text and names the values it cannot read. Other databases return typed dates."""
        if engine.dialect.name != "sqlite":
            return expression
        return sa.type_coerce(expression, sa.String).label(getattr(expression, "name", None) or "value")

    def _timestamp(self, value, what: str) -> pd.Timestamp:
        """A date the database returned (``what``: which one, for the message) as a timestamp."""
        fix = "store ISO dates (YYYY-MM-DD), or convert them in source.query"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise _not_dates(self.timestamp, f"numbers, not dates ({what}: {value!r})", fix)
        try:
            return pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise _not_dates(self.timestamp, f"{value!r} ({what}), which is not a date ({_first_line(exc)})",
                             fix) from None

    def _check_text_dates(self, conn: sa.Connection, engine: sa.Engine, table: sa.Table) -> None:
        """Dates kept as text are compared as text (the window, min and max): one '2026/03/03' or '03/03/2026'
        would sort after every ISO date, end the source's range there and fall outside every period. Such
        values are an error that names the rows, before anything is read.

        On SQLite with an index on the date column only its distinct values are checked, walked through the
        index (``_distinct_text_dates``): a few thousand lookups, where a scan of every row of a table of
        tens of millions takes seconds on every ingest."""
        ts = table.c[self.timestamp]
        if engine.dialect.name != "sqlite" and not isinstance(ts.type, sa.String):
            return  # typed DATE/TIMESTAMP columns compare as dates
        text = sa.type_coerce(ts, sa.String)
        iso = sa.and_(sa.or_(*(text.like(form) for form in ISO_DATE_FORMS)),
                      *(sa.not_(text.like(zone)) for zone in TIME_ZONE_SUFFIXES))
        not_a_date = sa.not_(iso)
        if engine.dialect.name == "sqlite":
            # SQLite keeps whatever was written: a number (20261001), or ISO-shaped text of no calendar day
            # ('2026-13-45', '2026-02-30': through julianday() it is NULL or another day) would end the range or
            # fail the read
            day = sa.func.date(sa.func.julianday(ts))
            not_a_date = sa.or_(sa.func.typeof(ts) != "text", not_a_date, day.is_(None),
                                day != sa.func.substr(ts, 1, 10))
        bad = sa.and_(ts.isnot(None), not_a_date)
        values = _distinct_text_dates(conn, engine, table, ts) if engine.dialect.name == "sqlite" else None
        if values is not None:
            if not values:
                return
            bad = sa.and_(bad, ts.in_(values))
        columns = [sa.type_coerce(c, sa.String).label(c.name) if c is ts else c for c in table.c]  # raw text
        rows = conn.execute(sa.select(*columns).where(bad).limit(3)).mappings().all()
        if rows:
            examples = "; ".join(", ".join(f"{k}={plain(v)}" for k, v in row.items()) for row in rows)
            raise SourceError(
                f"columns.timestamp {self.timestamp!r} in {self.table!r} holds values that are not ISO dates "
                f"(YYYY-MM-DD or YYYY-MM-DD HH:MM:SS of a real calendar day, local time without a time zone; "
                f"text, not a number), e.g. {examples}. Dates kept as text are compared as text, so such rows "
                "would be skipped and shift the source's last date; store ISO dates, or convert them in "
                "source.query"
            )

    def read(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """Rows with start <= timestamp < end, as the source returns them (validated later)."""
        engine = self._engine()
        try:
            with engine.connect() as conn:
                stmt = self._select(engine)
                column_type = None if self.query else stmt.get_final_froms()[0].c[self.timestamp].type
                params = _window_params(engine, column_type, start, end)
                return pd.read_sql(stmt, conn, params=params)
        except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:
            raise SourceError(f"cannot read the source at {redact(self.url)}: {getattr(exc, 'orig', exc)}") from None
        finally:
            engine.dispose()

    def last_observed(self, target: str, before: dt.datetime | None = None) -> pd.Timestamp | None:
        """Timestamp of the newest row that has a target value (None if none has), of those dated before
        ``before`` when it is given (a sale mistyped as 2099 is then not the newest). Rows without a target after
        it are the plan (future-known regressors); rows without a target before it are missing data."""
        return self._observed(target, "max", None, before)

    def first_observed(self, target: str, start: dt.datetime) -> pd.Timestamp | None:
        """Timestamp of the oldest row that has a target value among those dated ``start`` or later (None if none
        has): where the sales start again after a silence (``periods.sales_leap``)."""
        return self._observed(target, "min", start, None)

    def last_dated(self, before: dt.datetime) -> pd.Timestamp | None:
        """Timestamp of the newest row dated before ``before``, with a target or not (None if there is none): where
        the cycle's periods end when the source's last date is a sale it holds back (``ingest.source_end``)."""
        return self._observed(None, "max", None, before)

    def _observed(self, target: str | None, which: str, start: dt.datetime | None,
                  before: dt.datetime | None) -> pd.Timestamp | None:
        """The ``which`` (max or min) of the timestamps of the rows that have a target value (any row when
        ``target`` is None), of those dated from ``start`` and before ``before`` where given."""
        func = getattr(sa.func, which)
        engine = self._engine()
        lo, hi = start or dt.datetime(1, 1, 1), before or dt.datetime(9999, 1, 1)
        try:
            with engine.connect() as conn:
                if self.query:
                    named = [sa.column(self.timestamp), *([sa.column(target)] if target is not None else [])]
                    inner = sa.text(self.query).columns(*named).subquery()
                    stmt = sa.select(func(inner.c[self.timestamp]))
                    if target is not None:
                        stmt = stmt.where(inner.c[target].isnot(None))
                    # also when the query's own WHERE leaves :start or :end out
                    if start is not None:
                        stmt = stmt.where(inner.c[self.timestamp] >= sa.bindparam("start"))
                    if before is not None:
                        stmt = stmt.where(inner.c[self.timestamp] < sa.bindparam("end"))
                    value = conn.execute(stmt, _window_params(engine, None, lo, hi)).scalar()
                else:
                    table = self._select(engine).get_final_froms()[0]
                    if target is not None and target not in table.c:
                        return None  # validation names the missing column
                    self._check_text_dates(conn, engine, table)
                    ts = table.c[self.timestamp]
                    stmt = sa.select(self._raw(engine, func(ts))).where(
                        (table.c[target] if target is not None else ts).isnot(None))
                    bound_type = sa.String() if engine.dialect.name == "sqlite" else ts.type
                    if start is not None:
                        stmt = stmt.where(ts >= sa.bindparam("start", type_=bound_type))
                    if before is not None:
                        stmt = stmt.where(ts < sa.bindparam("end", type_=bound_type))
                    bounded = start is not None or before is not None
                    value = conn.execute(stmt, _window_params(engine, ts.type, lo, hi) if bounded else {}).scalar()
        except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:
            raise SourceError(f"cannot read the source at {redact(self.url)}: {getattr(exc, 'orig', exc)}") from None
        finally:
            engine.dispose()
        label = ("the newest date" if target is None else "the newest date with a target" if which == "max"
                 else "the first date with a target after a silence")
        return None if value is None else self._timestamp(value, label)

    def undated_rows(self) -> int:
        """Rows of ``source.table`` without a timestamp (NULL): no read of a period's dates returns them, so they
        would be left out without a word. 0 for a ``source.query`` (its own WHERE on the dates leaves them out)."""
        if self.query:
            return 0
        engine = self._engine()
        try:
            with engine.connect() as conn:
                table = self._select(engine).get_final_froms()[0]
                return int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                        .where(table.c[self.timestamp].is_(None))).scalar() or 0)
        except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:
            raise SourceError(f"cannot read the source at {redact(self.url)}: {getattr(exc, 'orig', exc)}") from None
        finally:
            engine.dispose()

    def date_range(self) -> tuple[pd.Timestamp, pd.Timestamp, int]:
        """(first, last timestamp, rows with a timestamp) of the whole source; raises SourceError when it is empty, and when
        ``frequency`` is set and the dates are off its grid."""
        engine = self._engine()
        try:
            with engine.connect() as conn:
                if self.query:
                    frame = pd.read_sql(
                        sa.text(self.query), conn, params=_window_params(engine, None, dt.datetime(1, 1, 1), dt.datetime(9999, 1, 1))
                    )
                    series = _dates_of(frame, self.timestamp)
                    first, last, rows = series.min(), series.max(), len(frame)
                    if not mostly_on_the_weekday(series.dropna().dt.normalize(), np.ones(series.notna().sum()),
                                                 self.frequency):
                        self._check_grid(series)
                else:
                    stmt = self._select(engine)
                    table = stmt.get_final_froms()[0]
                    self._check_text_dates(conn, engine, table)
                    ts = table.c[self.timestamp]
                    first, last, rows = conn.execute(  # rows with a date: the others are never read
                        sa.select(self._raw(engine, sa.func.min(ts)), self._raw(engine, sa.func.max(ts)),
                                  sa.func.count(ts)).select_from(table)
                    ).one()
                    if rows:
                        first = self._timestamp(first, "the first date")
                        last = self._timestamp(last, "the last date")
                        self._check_table_grid(conn, engine, table, first, last)
        except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:
            raise SourceError(f"cannot read the source at {redact(self.url)}: {getattr(exc, 'orig', exc)}") from None
        finally:
            engine.dispose()
        if not rows:
            where = "query in source.query" if self.query else f"table {self.table!r}"
            raise SourceMissingError(f"the source {where} at {redact(self.url)} has no rows; load data or fix source.*")
        first, last = pd.Timestamp(first), pd.Timestamp(last)
        if first.tz is not None or last.tz is not None:
            raise SourceError(
                f"columns.timestamp {self.timestamp!r} holds dates with a time zone (from {first} to {last}); the "
                "series are on local calendar periods: store local dates without a zone, or convert them in "
                "source.query"
            )
        return first, last, int(rows)

    def _check_grid(self, dates: pd.Series) -> None:
        """Refuse dates off the grid of ``frequency`` (daily dates under a weekly frequency, weekly ones under D)
        before anything is read: each period would ingest fine and every series fail later."""
        problem = grid_problem(dates, self.frequency, self.timestamp) if self.frequency else None
        if problem:
            raise SourceError(f"{problem}; nothing was ingested")

    def _check_table_grid(self, conn: sa.Connection, engine: sa.Engine, table: sa.Table, first: pd.Timestamp,
                          last: pd.Timestamp) -> None:
        """The table's grid check at no cost when the dates fit: under a weekly frequency the first and the last
        date must fall on its weekday. Only when one does not are the newest weeks' distinct days read, so the
        message can say what step the dates have (daily, weekly on another day). Daily settings on weekly data
        are caught when the rows are validated."""
        if not self.frequency or self.frequency == "D":
            return
        ends = pd.Series([first, last])
        if grid_problem(ends, self.frequency, self.timestamp) is None:
            return
        days, rows = self._recent_days(conn, engine, table)
        if mostly_on_the_weekday(days, rows, self.frequency):
            return  # the few rows off it are held back with their series when they are read
        self._check_grid(pd.concat([days, ends], ignore_index=True))

    def _recent_days(self, conn: sa.Connection, engine: sa.Engine, table: sa.Table,
                     limit: int = 400) -> tuple[pd.Series, np.ndarray]:
        """The table's newest ``limit`` distinct calendar days and the rows of each; empty when the database cannot
        say. The newest days, not the newest weeks of time: a sale mistyped years ahead (2028 in a 2016 source) is
        the table's last date, and the weeks before it held that one row alone, off the weekday: the whole source
        was refused as "not weekly" before the row could be held back with its series. Read only when the first
        or the last date is off the weekday."""
        ts = table.c[self.timestamp]
        day = sa.func.date(ts) if engine.dialect.name == "sqlite" else sa.cast(ts, sa.Date)
        stmt = (sa.select(self._raw(engine, day), sa.func.count()).where(ts.isnot(None)).group_by(day)
                .order_by(day.desc()).limit(limit))
        try:
            found = conn.execute(stmt).all()
        except sa.exc.SQLAlchemyError:
            return pd.Series([], dtype="datetime64[ns]"), np.zeros(0)
        days = pd.Series(pd.to_datetime(pd.Series([d for d, _ in found], dtype=object), errors="coerce"))
        rows = np.array([n for _, n in found], dtype=float)
        keep = days.notna().to_numpy()
        return days[keep].reset_index(drop=True), rows[keep]


def mostly_on_the_weekday(days: pd.Series, rows: np.ndarray, frequency: str | None) -> bool:
    """Whether more than half of the ``rows`` (the rows of each of ``days``) fall on the weekday a weekly
    ``frequency`` dates its weeks by. Then the source is weekly as configured, and a few rows off the weekday are
    slips of their series (held back when read: ``validate_raw``), not the frequency mistaken for the source."""
    if not frequency or frequency == "D" or not len(days):
        return False
    anchor = ANCHOR_DAY[(frequency[2:] if frequency.startswith("W-") else "SUN").upper()]
    return bool(rows[days.dt.day_of_week.to_numpy() == anchor].sum() > rows.sum() / 2)


def _dates_of(frame: pd.DataFrame, column: str) -> pd.Series:
    """A query's date column as timestamps; values that are not dates are a ``SourceError`` naming the column."""
    if frame.empty:
        return pd.Series([], dtype="datetime64[ns]")
    values = frame[column]
    fix = "return ISO dates (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS) from the query"
    where = f"{column!r} of source.query"
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        raise _not_dates(where, f"numbers, not dates (e.g. {values.dropna().iloc[0]})", fix)
    try:
        return pd.to_datetime(values)
    except (ValueError, TypeError) as exc:
        raise _not_dates(where, f"values that are not dates of one format ({_first_line(exc)})", fix) from None


def _not_dates(column: str, what: str, fix: str) -> SourceError:
    """The error for a timestamp column that holds ``what`` instead of dates (``column``: its name, quoted, or
    the name and where it comes from)."""
    name = column if column.startswith("'") else repr(column)
    return SourceError(f"columns.timestamp {name} holds {what}; {fix}")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# text dates in ISO form (LIKE patterns): a date, a date and a time, a date 'T' a time
ISO_DATE_FORMS = ("____-__-__", "____-__-__ %", "____-__-__T%")
# text dates that end in a time zone ('...Z', '...+01:00', '...T08:00:00-05:00'): the series are on local
# calendar periods, and such text would compare as text against naive bounds
TIME_ZONE_SUFFIXES = ("%Z", "%+__:__", "%+____", "____-__-__T%-__:__", "____-__-__ %-__:__")

MAX_DISTINCT_WALK = 200_000  # distinct dates walked through an index before a plain scan is cheaper


def _distinct_text_dates(conn: sa.Connection, engine: sa.Engine, table: sa.Table, ts: sa.Column) -> list[str] | None:
    """The distinct values of SQLite column ``ts`` that are not ISO dates (at most three), found by
    walking the distinct values through an index that starts with the column: each step is one index seek
    (``min(ts) WHERE ts > previous``), so the cost follows the number of distinct dates, not of rows.

    None when no such index exists or the column has more than ``MAX_DISTINCT_WALK`` distinct values (the
    caller then scans the rows)."""
    try:
        indexes = sa.inspect(engine).get_indexes(table.name)
    except sa.exc.SQLAlchemyError:
        return None
    if not any(ix.get("column_names") and ix["column_names"][0] == ts.name for ix in indexes):
        return None
    q = engine.dialect.identifier_preparer
    col, tab = q.quote(ts.name), q.quote(table.name)
    walk = sa.text(
        f"WITH RECURSIVE d(v) AS ("  # identifiers quoted by the dialect
        f" SELECT (SELECT min({col}) FROM {tab})"
        f" UNION ALL SELECT (SELECT min({col}) FROM {tab} WHERE {col} > d.v) FROM d WHERE d.v IS NOT NULL"
        f" LIMIT :cap)"
        " SELECT v, v IS NULL AS done FROM d WHERE v IS NULL OR typeof(v) != 'text'"
        " OR date(julianday(v)) IS NULL OR date(julianday(v)) != substr(v, 1, 10) OR NOT"
        " ((" + " OR ".join(f"v LIKE '{form}'" for form in ISO_DATE_FORMS) + ")"
        + "".join(f" AND v NOT LIKE '{zone}'" for zone in TIME_ZONE_SUFFIXES) + ")"
    )
    rows = conn.execute(walk, {"cap": MAX_DISTINCT_WALK + 1}).all()
    if not any(done for _, done in rows):
        return None  # too many distinct values to walk
    return [v for v, done in rows if not done][:3]


def _window_params(engine: sa.Engine, column_type, start: dt.datetime, end: dt.datetime) -> dict:
    """Bind values for the window that compare correctly with how the column is stored.

    On SQLite dates are text in whatever form the writing tool chose ('2024-01-01', '2024-01-01 00:00:00',
    '2024-01-01 00:00:00.000000'): a midnight bound given as 'YYYY-MM-DD' sorts before every one of them for
    that day, so text comparison selects exactly [start, end). Elsewhere typed DATE/DATETIME values are bound.
    """
    if engine.dialect.name == "sqlite":

        def iso(value: dt.datetime) -> str:
            return value.strftime("%Y-%m-%d") if value.time() == dt.time() else value.strftime("%Y-%m-%d %H:%M:%S")

        return {"start": iso(start), "end": iso(end)}
    if isinstance(column_type, sa.DateTime) or column_type is None:
        return {"start": start, "end": end}
    if isinstance(column_type, sa.Date):
        return {"start": start.date(), "end": end.date()}
    return {"start": start, "end": end}


def _tables_there(engine: sa.Engine, shown: int = 10) -> str:
    """", which holds tables a, b and views v" for a missing table's message: a renamed table is then plain to see
    (empty when the database cannot say)."""
    try:
        inspector = sa.inspect(engine)
        names = sorted(inspector.get_table_names()) + sorted(inspector.get_view_names())
    except sa.exc.SQLAlchemyError:
        return ""
    if not names:
        return ", which holds no table"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f", which holds {', '.join(repr(n) for n in names[:shown])}{more}"
