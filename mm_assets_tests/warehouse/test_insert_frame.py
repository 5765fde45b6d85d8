"""insert_frame stores exactly what SQLAlchemy's own executemany stores, on SQLite's fast path too."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.sql import insert_frame, plain_records


def _table(metadata: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("store", sa.String(64)),
        sa.Column("ds", sa.DateTime),
        sa.Column("stamp", sa.DateTime),
        sa.Column("yhat", sa.Float),
        sa.Column("version", sa.Integer),
        sa.Column("flag", sa.Boolean),
        sa.Column("note", sa.Text),
    )


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ds = pd.Series(pd.date_range("2025-01-01", periods=7, freq="D").repeat(n // 7 + 1)[:n])
    stores = pd.Series([f"S{i % 13}" for i in range(n)], dtype="string")
    yhat = rng.gamma(2.0, 10.0, n)
    if n > 7:  # missing values of every kind
        ds[5], stores[2] = pd.NaT, pd.NA
        yhat[[1, 7]] = np.nan
    return pd.DataFrame({
        "store": stores,
        "ds": ds,
        "stamp": pd.Series(pd.Timestamp("2025-05-30 12:34:56.789", tz="UTC"), index=range(n)),
        "yhat": yhat,
        "version": np.arange(n, dtype=np.int64),
        "flag": np.arange(n) % 2 == 0,
        "note": [None if i % 5 else f"note {i}" for i in range(n)],
    })


@pytest.mark.parametrize("rows", [1, 25, 23_456])
def test_sqlite_fast_path_stores_what_sqlalchemy_stores(tmp_path, rows):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/x.db")
    metadata = sa.MetaData()
    ours, theirs = _table(metadata, "ours"), _table(metadata, "theirs")
    metadata.create_all(engine)
    frame = _frame(rows)
    with engine.begin() as conn:
        assert insert_frame(conn, ours, frame, chunk_rows=10_000) == rows
        conn.execute(theirs.insert(), plain_records(frame))
    with engine.connect() as conn:  # the stored values themselves, not what SQLAlchemy reads back
        a = conn.exec_driver_sql("SELECT * FROM ours ORDER BY rowid").fetchall()
        b = conn.exec_driver_sql("SELECT * FROM theirs ORDER BY rowid").fetchall()
        typed = pd.read_sql(sa.select(ours), conn)
    assert a == b
    assert typed["ds"].isna().sum() == (1 if rows > 7 else 0)
    assert typed.loc[0, "stamp"] == dt.datetime(2025, 5, 30, 12, 34, 56, 789000)
    assert typed["version"].tolist() == list(range(rows))


def test_empty_frame_inserts_nothing(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/x.db")
    metadata = sa.MetaData()
    table = _table(metadata, "t")
    metadata.create_all(engine)
    with engine.begin() as conn:
        assert insert_frame(conn, table, _frame(10).iloc[0:0]) == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0


def test_a_column_the_table_lacks_is_an_error(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/x.db")
    metadata = sa.MetaData()
    table = _table(metadata, "t")
    metadata.create_all(engine)
    with engine.begin() as conn, pytest.raises(Exception, match="unknown"):
        insert_frame(conn, table, _frame(3).assign(unknown=1))
