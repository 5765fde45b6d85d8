"""Pointers to the current row of every series over the registries' append-only logs.

Why: the registries keep every model version, promotion and gate decision (history is what an auditor and BI
read), so their logs grow by every series every day. "The newest row of every series of these partitions" as
an aggregate over a log reads all of that history: after a year of daily cycles at 10,000 series the model
registry's ``latest`` took 15 s, the champions 4 s and the newest gate decisions 46 s, each run, growing every
day. A pointer table (one row per series or partition, naming its current row) makes those reads follow the
series, not the days.

How they stay true: each log has a mark, the highest log id its pointers cover. A writer catches the pointers up
from the rows after the mark, in the transaction that wrote them, and every writable handle does so when it
opens: rows written by code that did not know the pointers (a rollback, a registry from before them) are taken
in then, so a pointer is never silently behind. A read-only handle that finds the pointers behind the log (or
missing) reads the log as before: slower, never wrong.

No Dagster here.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from mm_assets.sql import in_chunks


def marks_table(metadata: sa.MetaData) -> sa.Table:
    """The marks of one database's logs: ``log`` (the log table's name) → the highest id its pointers cover."""
    return sa.Table(
        "log_marks",
        metadata,
        sa.Column("log", sa.String(64), primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
    )


def series_pointers(metadata: sa.MetaData, name: str, points_to: str) -> sa.Table:
    """A pointer table with one row per series: its key, its partition (what the daily reads filter by) and
    ``points_to``, the integer naming its current row in the log."""
    return sa.Table(
        name,
        metadata,
        sa.Column("series_key", sa.String(512), primary_key=True),
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column(points_to, sa.Integer, nullable=False),
        sa.Index(f"ix_{name}_partition", "partition_key"),
    )


def top_id(conn: sa.Connection, log: sa.Table) -> int:
    """The log's highest id (0 when empty): one index seek."""
    return int(conn.execute(sa.select(sa.func.max(log.c.id))).scalar() or 0)


def mark(conn: sa.Connection, marks: sa.Table, log: sa.Table) -> int:
    return int(conn.execute(sa.select(marks.c.last_id).where(marks.c.log == log.name)).scalar() or 0)


def set_mark(conn: sa.Connection, marks: sa.Table, log: sa.Table, value: int) -> None:
    conn.execute(marks.delete().where(marks.c.log == log.name))
    conn.execute(marks.insert(), [{"log": log.name, "last_id": int(value)}])


def replace_rows(conn: sa.Connection, table: sa.Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert ``rows`` into ``table`` by its primary key column ``key`` (delete, then insert: every dialect)."""
    for chunk in in_chunks(list(rows), 500):
        conn.execute(table.delete().where(table.c[key].in_([r[key] for r in chunk])))
        conn.execute(table.insert(), list(chunk))


# Tables seen in each database (by engine): pointer tables are created, never dropped, so once seen a daily read
# does not ask the database's catalogue again (on PostgreSQL a query of its own on every read)
_seen: weakref.WeakKeyDictionary[sa.Engine, set[str]] = weakref.WeakKeyDictionary()


def is_current(conn: sa.Connection, marks: sa.Table, log: sa.Table, pointers: sa.Table) -> bool:
    """Whether ``pointers`` exist and cover every row of ``log`` (a read-only handle then reads them)."""
    wanted = {marks.name, pointers.name}
    seen = _seen.setdefault(conn.engine, set())
    if not wanted <= seen:
        seen.update(wanted & set(sa.inspect(conn).get_table_names()))
        if not wanted <= seen:
            return False
    return mark(conn, marks, log) >= top_id(conn, log)


def newest_per_group(log: sa.Table, group: str, after: int, order: str = "id") -> sa.Select:
    """The log's rows after id ``after`` that are the newest (highest ``order``) of their ``group``: the rows a
    catch-up points to."""
    newest = (sa.select(log.c[group], sa.func.max(log.c[order]).label("top"))
              .where(log.c.id > after).group_by(log.c[group]).subquery())
    return sa.select(log).join(newest, sa.and_(log.c[group] == newest.c[group], log.c[order] == newest.c.top))
