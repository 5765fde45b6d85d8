"""SQLAlchemy helpers shared by the source reader, the registries and the warehouse (no Dagster)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

T = TypeVar("T")


class DatabaseUrlError(ValueError):
    """A database URL names a kind of database or a driver this installation cannot load; the message says
    which URL (its password hidden) and how to write it."""


# The URL scheme of each database the project writes, with the driver it uses: a URL that names no driver gets
# SQLAlchemy's default, which for PostgreSQL (psycopg 3 since SQLAlchemy 2.1) is not installed. psycopg2 is
# installed with the project; pyodbc (Synapse, SQL Server) is not, it needs Microsoft's ODBC driver beside it.
DRIVERS = {"postgresql": "postgresql+psycopg2", "mssql": "mssql+pyodbc", "sqlite": "sqlite"}
DRIVER_NOTES = {"mssql": " (pip install pyodbc, with Microsoft's ODBC Driver 18 for SQL Server)"}


def engine_for(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite files get their folder created and a busy timeout for concurrent runs.
    Raises ``DatabaseUrlError`` for a URL whose database kind or driver cannot be loaded (``postgres://``, or
    ``postgresql://`` without the installed driver), instead of SQLAlchemy's import error."""
    try:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            db = parsed.database
            if db and str(parsed.query.get("uri", "")).lower() == "true" and db.startswith("file:"):
                db = db[len("file:"):].split("?")[0]  # sqlite:///file:/path/x.db?mode=ro&uri=true: a file URI
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            return sa.create_engine(url, connect_args={"timeout": 60})
        return sa.create_engine(url, pool_pre_ping=True)
    except (ImportError, sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as exc:
        raise DatabaseUrlError(_url_problem(url, exc)) from None


def _url_problem(url: str, exc: Exception) -> str:
    """What is wrong with ``url`` (which ``create_engine`` refused with ``exc``) and the URL form that works."""
    forms = ", ".join(f"{scheme}://..." for scheme in DRIVERS.values())
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        return f"{redact_secrets(url)!r} is not a database URL; write one such as {forms}{_file_note(url)}"
    if backend == "postgres":
        backend = "postgresql"
    if backend in DRIVERS:
        return (f"{redact(url)}: its driver cannot be loaded ({exc}); name the driver in the URL: "
                f"{DRIVERS[backend]}://...{DRIVER_NOTES.get(backend, '')}")
    return f"{redact(url)}: {backend!r} is not a database this installation can use; write one of {forms}"


def _file_note(url: str) -> str:
    """For a path to a data file given as a URL: how to bring such a file (the source is a database table)."""
    if not str(url).lower().rsplit("?", 1)[0].endswith((".csv", ".parquet", ".txt", ".tsv", ".xlsx")):
        return ""
    return (". A file is read from a database table: load it into SQLite first, e.g. with pandas "
            "(pd.read_csv(path).to_sql('sales', sa.create_engine('sqlite:///sales.db'))) or the sqlite3 shell's "
            ".import, then set source.url: sqlite:///sales.db and source.table: sales")


def url_problem(url: str) -> str | None:
    """What makes ``url`` unusable that can be told without loading a database driver, or None: not a URL, a
    database kind SQLAlchemy does not know (``postgres://``), or no driver named where SQLAlchemy's default for
    that database is not installed (plain ``postgresql://``). Said when the settings are read, not at the first
    run that opens the database."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return _url_problem(url, ValueError())
    if "+" in parsed.drivername or parsed.get_backend_name() == "sqlite":
        return None  # a driver named in the URL is loaded when the database is opened, where it is used
    try:
        driver = parsed.get_dialect().driver  # SQLAlchemy's dialect module only, not the driver
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        return _url_problem(url, exc)
    if importlib.util.find_spec(driver) is None:
        return _url_problem(url, ImportError(f"No module named {driver!r}, SQLAlchemy's default driver for it"))
    return None


def database_error_line(exc: BaseException) -> str:
    """The database's own first line of a SQLAlchemy error (its driver's message, not SQLAlchemy's wrapping with
    the statement and a link), secrets hidden: what a one-line message about an unusable database quotes."""
    lines = redact_secrets(str(getattr(exc, "orig", exc))).strip().splitlines()
    return lines[0] if lines else ""


def redact(url: str) -> str:
    """A URL safe to log: the password replaced by ***, and so is any secret in its query (an ``odbc_connect``
    string's ``PWD=``, a SAS ``sig=``, an ``AccountKey=``)."""
    try:
        parsed = sa.engine.make_url(url)
        rendered = parsed.set(query={}).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: say nothing of it
        return "<unparseable url>"
    if not parsed.query:
        return rendered
    pairs = []
    for name, values in parsed.query.items():  # decoded by SQLAlchemy; shown decoded, which is fine for a log
        for value in (values,) if isinstance(values, str) else values:
            pairs.append(f"{name}=***" if name.lower() in SECRET_NAMES else f"{name}={redact_secrets(value)}")
    return f"{rendered}?{'&'.join(pairs)}"


# Names whose value is a secret, in connection strings (Key=Value;...), URL queries (?key=value&...) and
# key: value text. Matched case-insensitively as whole names.
SECRET_NAMES = (
    "password", "pwd", "passwd", "accountkey", "account_key", "sharedaccesskey", "sharedaccesssignature", "sig",
    "sas_token", "sastoken", "client_secret", "clientsecret", "access_token", "accesstoken", "refresh_token",
    "apikey", "api_key", "secret", "access_key_or_sas_token",
)
_SECRET_VALUE = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(" + "|".join(SECRET_NAMES) + r")([\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\{[^}]*\}|[^;&\s'\",}]+)"
)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@/\s]+)(@)")


def redact_secrets(text: str) -> str:
    """``text`` with every secret value replaced by ***: Azure Storage connection strings (``AccountKey``,
    ``SharedAccessSignature``), SAS tokens (``sig``), ODBC strings (``PWD``), passwords in URLs, ``client_secret``.
    Names and everything else stay, so a log line still says which account or server it is about."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    return _SECRET_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


def redact_connection_string(value: str) -> str:
    """An Azure Storage connection string safe to log: its keys and signatures replaced by ***."""
    return redact_secrets(value)


def in_chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_frame(conn: sa.Connection, table: sa.Table, frame, chunk_rows: int = 10_000) -> int:
    """Insert the rows of ``frame`` (columns named as ``table``'s) inside ``conn``'s transaction → rows inserted.

    SQLite (the laptop warehouse and registries): the driver's own ``executemany`` over tuples, each column
    converted once per distinct value by its SQLAlchemy type's bind processor (what SQLAlchemy would store,
    e.g. a DATETIME's text), not once per row: SQLAlchemy's per-row parameter processing was two thirds of a
    full-size publish. Other dialects: SQLAlchemy's executemany, which batches rows into multi-row INSERTs.
    """
    if not len(frame):
        return 0
    if conn.dialect.name != "sqlite":
        for chunk in in_chunks(plain_records(frame), chunk_rows):
            conn.execute(table.insert(), list(chunk))
        return len(frame)
    names = list(frame.columns)
    compiled = table.insert().values({n: sa.bindparam(n) for n in names}).compile(dialect=conn.dialect)
    order = list(compiled.positiontup)
    columns = [_driver_values(frame[name], table.c[name].type, conn.dialect) for name in order]
    rows = list(zip(*columns))
    for chunk in in_chunks(rows, chunk_rows):
        conn.exec_driver_sql(compiled.string, list(chunk))
    return len(rows)


def _driver_values(column, sa_type, dialect) -> list:
    """One column as the driver's values: None for missing, plain Python scalars, the type's bind processor
    applied to each distinct value."""
    import numpy as np
    import pandas as pd

    process = sa_type.dialect_impl(dialect).bind_processor(dialect)
    if pd.api.types.is_datetime64_any_dtype(column) and column.dt.tz is not None:
        column = column.dt.tz_localize(None)
    if process is None and not pd.api.types.is_datetime64_any_dtype(column):
        array = column.to_numpy(dtype=object, copy=True)
        array[column.isna().to_numpy()] = None
        return array.tolist()
    codes, uniques = pd.factorize(column)
    if isinstance(uniques, pd.DatetimeIndex):
        plain = list(uniques.to_pydatetime())
    else:
        plain = [v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in uniques.tolist()]
    table = np.empty(len(plain) + 1, dtype=object)  # the last slot is the missing value (code -1)
    table[:-1] = [process(v) for v in plain] if process is not None else plain
    table[-1] = None
    return table[codes].tolist()


def plain_records(frame, columns: Sequence[str] | None = None) -> list[dict]:
    """Rows of a DataFrame as dicts of plain Python values for SQLAlchemy inserts: NaN/NaT/NA → None,
    timestamps → ``datetime``, numpy scalars → Python ones. Column by column (vectorised), not cell by cell:
    a publish writes hundreds of thousands of rows."""
    import numpy as np
    import pandas as pd

    frame = frame if columns is None else frame[list(columns)]
    values = []
    for name in frame.columns:
        column = frame[name]
        missing = column.isna().to_numpy()
        if pd.api.types.is_datetime64_any_dtype(column):
            array = np.array(column.dt.tz_localize(None).dt.to_pydatetime() if column.dt.tz is not None
                             else column.dt.to_pydatetime(), dtype=object)
        else:
            array = column.to_numpy(dtype=object, copy=True)
            valid = column.first_valid_index()
            if column.dtype == object and valid is not None and isinstance(column[valid], pd.Timestamp):
                array = np.array([v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in array],
                                 dtype=object)
        array[missing] = None
        values.append(array.tolist())
    names = list(frame.columns)
    return [dict(zip(names, row)) for row in zip(*values)]


def rows_after(engine: sa.Engine, time: sa.Column, after: dict, order_by: sa.Column | None = None):
    """The rows of ``time``'s table (with a ``partition_key`` column) of each partition in ``after`` whose
    ``time`` is later than that partition's time there, as a DataFrame (empty with the table's columns): one query
    per 900 partitions, bounded below by the chunk's earliest time, then filtered per partition."""
    import pandas as pd

    table = time.table
    frames = []
    with engine.connect() as conn:
        for chunk in in_chunks(sorted(after), 900):
            q = sa.select(table).where(table.c.partition_key.in_(chunk), time > min(after[k] for k in chunk))
            frames.append(pd.read_sql(q if order_by is None else q.order_by(order_by), conn))
    if not frames:
        return pd.DataFrame(columns=[c.name for c in table.columns])
    out = pd.concat(frames, ignore_index=True)
    later = pd.to_datetime(out[time.name]) > pd.to_datetime(out["partition_key"].map(after))
    return out[later].reset_index(drop=True)
