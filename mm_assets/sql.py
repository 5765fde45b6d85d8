"""SQLAlchemy helpers shared by the source reader, the registries and the warehouse (no Dagster)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

T = TypeVar("T")


def engine_for(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite files get their folder created and a busy timeout for concurrent runs."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url, connect_args={"timeout": 60})
    return sa.create_engine(url, pool_pre_ping=True)


def redact(url: str) -> str:
    """A URL safe to log: the password replaced by ***."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: say nothing of it
        return "<unparseable url>"


def in_chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
