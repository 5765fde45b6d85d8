"""The SQL warehouse BI reads: SQLAlchemy Core, any URL (SQLite by default, Postgres, Synapse/SQL Server).

Why SQLAlchemy Core with generic types: the same table definitions create and load SQLite on a laptop and a
server warehouse in production. Publishing a partition is idempotent: inside one transaction the rows of that
partition and forecast origin are deleted and the new ones bulk-inserted (executemany), so re-publishing
replaces and a crash mid-publish leaves the previous rows in place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from mm_assets.sql import engine_for, in_chunks

PREDICTION_COLUMNS = ("origin", "ds", "yhat", "model_type", "model_version", "model_source")


def _prediction_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    return sa.Table(
        "forecast_predictions",
        metadata,
        *[sa.Column(c, sa.String(200), nullable=False) for c in id_columns],
        sa.Column("origin", sa.DateTime, nullable=False),
        sa.Column("ds", sa.DateTime, nullable=False),
        sa.Column("yhat", sa.Float, nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("model_source", sa.String(16), nullable=False),
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint(*id_columns, "origin", "ds", name="pk_forecast_predictions"),
        sa.Index("ix_forecast_predictions_partition", "partition_key", "origin"),
    )


class Warehouse:
    def __init__(self, url: str, id_columns: Sequence[str]):
        self.url = url
        self.id_columns = list(id_columns)
        self.engine = engine_for(url)
        self.metadata = sa.MetaData()
        self.predictions = _prediction_table(self.metadata, self.id_columns)
        self._check_existing_schema()
        self.metadata.create_all(self.engine)

    def _check_existing_schema(self) -> None:
        inspector = sa.inspect(self.engine)
        if inspector.has_table("forecast_predictions"):
            have = {c["name"] for c in inspector.get_columns("forecast_predictions")}
            want = {c.name for c in self.predictions.columns}
            if have != want:
                raise RuntimeError(
                    f"warehouse table forecast_predictions has columns {sorted(have)}, expected {sorted(want)} "
                    "(columns.ids changed?). Point storage.warehouse at a new database or migrate the table."
                )

    def publish_predictions(self, frame: pd.DataFrame, partition_key: str, run_id: str) -> int:
        """Replace the partition's forecasts for the origins in ``frame``; one transaction."""
        cols = [*self.id_columns, *PREDICTION_COLUMNS]
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"predictions lack columns {missing}")
        data = frame[cols].copy()
        data["partition_key"] = partition_key
        data["run_id"] = run_id
        data["published_at"] = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        for c in ("origin", "ds"):
            data[c] = pd.to_datetime(data[c]).dt.to_pydatetime() if len(data) else data[c]
        data["model_version"] = data["model_version"].astype(int)
        records = data.astype(object).to_dict("records")
        origins = sorted({pd.Timestamp(o).to_pydatetime() for o in data["origin"]})
        table = self.predictions
        with self.engine.begin() as conn:
            conn.execute(
                table.delete().where(table.c.partition_key == partition_key).where(table.c.origin.in_(origins))
            )
            for chunk in in_chunks(records, 10_000):
                conn.execute(table.insert(), list(chunk))
        return len(records)

    def read_predictions(self, partition_keys: Sequence[str] | None = None) -> pd.DataFrame:
        q = sa.select(self.predictions)
        if partition_keys is not None:
            q = q.where(self.predictions.c.partition_key.in_(list(partition_keys)))
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def count(self, table: str = "forecast_predictions") -> int:
        t = self.metadata.tables[table]
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
