"""Bulk loading into Azure Synapse SQL with COPY INTO from the lake's Parquet.

Why: row inserts over ODBC are slow for millions of forecast rows; Synapse's COPY statement reads Parquet
straight from ADLS Gen2 with the workspace's managed identity (no key in any file). Publishing stays
idempotent: the DELETE of the partition's rows for the same (and any later) origins and the COPY run in one transaction.

The SQL is generated for SQLAlchemy's mssql dialect, so it is exercised offline as text in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from mm_assets.warehouse.warehouse import prediction_deletes, replaced_predictions


def https_url_for_abfs(uri: str) -> str:
    """abfs[s]://container@account.dfs.core.windows.net/path → https://account.dfs.core.windows.net/container/path."""
    if not uri.startswith(("abfs://", "abfss://")):
        raise ValueError(f"COPY INTO loads from ADLS Gen2: expected an abfs:// URI, got {uri!r}")
    rest = uri.split("://", 1)[1]
    if "@" not in rest:
        raise ValueError(f"{uri!r}: expected abfs://<container>@<account>.dfs.core.windows.net/<path>")
    container, host_path = rest.split("@", 1)
    host, _, path = host_path.partition("/")
    return f"https://{host}/{container}/{path}"


def _quote(name: str) -> str:
    return mssql.dialect().identifier_preparer.quote(name)


def copy_into_sql(
    table: str,
    columns: Sequence[str],
    source_url: str,
    schema: str = "dbo",
    credential: str = "IDENTITY = 'Managed Identity'",
) -> str:
    """The COPY INTO statement loading ``columns`` of ``table`` from one Parquet file (columns match by name)."""
    if "'" in source_url:
        raise ValueError("source_url must not contain quotes")
    cols = ", ".join(_quote(c) for c in columns)
    return (
        f"COPY INTO {_quote(schema)}.{_quote(table)} ({cols})\n"
        f"FROM '{source_url}'\n"
        f"WITH (FILE_TYPE = 'PARQUET', CREDENTIAL = ({credential}))"
    )


def delete_partition_sql(table: sa.Table, partition_key: str, predictions: pd.DataFrame,
                         id_columns: Sequence[str]) -> str:
    """The DELETEs that make a re-publish replace (``replaced_predictions``), compiled for mssql with literal
    values (for review/logs)."""
    return ";\n".join(str(stmt.compile(dialect=mssql.dialect(), compile_kwargs={"literal_binds": True}))
                       for stmt in replaced_predictions(table, partition_key, predictions, id_columns))


def publish_with_copy_into(
    engine: sa.Engine,
    table: sa.Table,
    partition_key: str,
    predictions: pd.DataFrame,
    id_columns: Sequence[str],
    staged_parquet_uri: str,
    schema: str = "dbo",
    in_data: pd.DataFrame | None = None,
) -> int:
    """DELETE the partition's rows these predictions replace (``prediction_deletes``), then COPY INTO from the
    staged Parquet; one transaction. Returns how many series were taken out for having left the data."""
    copy_sql = copy_into_sql(table.name, [c.name for c in table.columns], https_url_for_abfs(staged_parquet_uri),
                             schema=schema)
    with engine.begin() as conn:
        deletes, left = prediction_deletes(conn, table, partition_key, predictions, id_columns, in_data)
        for delete in deletes:
            conn.execute(delete)
        conn.execute(sa.text(copy_sql))
    return left
