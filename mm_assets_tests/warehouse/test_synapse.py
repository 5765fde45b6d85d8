"""COPY INTO for Synapse, generated for the mssql dialect and checked as text."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.warehouse.synapse import copy_into_sql, delete_partition_sql, https_url_for_abfs
from mm_assets.warehouse.warehouse import (
    CURRENT_FORECASTS,
    _prediction_table,
    create_view_sql,
    current_forecasts_select,
    table_definitions,
)


def test_abfs_uri_becomes_the_https_location_copy_reads():
    assert (https_url_for_abfs("abfs://lake@acct.dfs.core.windows.net/mm/stage/S01/r.parquet")
            == "https://acct.dfs.core.windows.net/lake/mm/stage/S01/r.parquet")
    with pytest.raises(ValueError, match="abfs"):
        https_url_for_abfs("s3://bucket/x.parquet")
    with pytest.raises(ValueError, match="container"):
        https_url_for_abfs("abfs://acct.dfs.core.windows.net/x.parquet")


def test_copy_into_statement_text():
    sql = copy_into_sql("forecast_predictions", ["store", "item", "origin", "ds", "yhat"],
                        "https://acct.dfs.core.windows.net/lake/p.parquet")
    assert sql == (
        "COPY INTO dbo.forecast_predictions (store, item, origin, ds, yhat)\n"
        "FROM 'https://acct.dfs.core.windows.net/lake/p.parquet'\n"
        "WITH (FILE_TYPE = 'PARQUET', CREDENTIAL = (IDENTITY = 'Managed Identity'))"
    )
    quoted = copy_into_sql("forecast predictions", ["order"], "https://a/b.parquet", schema="bi")
    assert quoted.startswith("COPY INTO bi.[forecast predictions] ([order])")
    with pytest.raises(ValueError):
        copy_into_sql("t", ["a"], "https://a/b'; DROP TABLE x; --")


def test_delete_before_copy_is_scoped_to_partition_and_origin():
    table = _prediction_table(sa.MetaData(), ["store", "item"])
    preds = pd.DataFrame({"store": "S01", "item": ["I1", "I2"],
                          "origin": [dt.datetime(2026, 11, 22), dt.datetime(2026, 11, 15)]})
    first, straggler = delete_partition_sql(table, "S01", preds, ["store", "item"]).split(";\n")
    # everything from the newest origin on (and forecasts from periods taken back)
    assert first.startswith("DELETE FROM forecast_predictions WHERE forecast_predictions.partition_key = 'S01'")
    assert first.endswith("forecast_predictions.origin >= '2026-11-22 00:00:00'")
    # the series forecast from an older origin: its own rows from there, not its store's
    assert "forecast_predictions.origin >= '2026-11-15 00:00:00'" in straggler
    assert "forecast_predictions.origin < '2026-11-22 00:00:00'" in straggler
    assert "forecast_predictions.store = 'S01' AND forecast_predictions.item = 'I2'" in straggler
    assert delete_partition_sql(table, "S01", preds.iloc[:0], ["store", "item"]) == ""




def test_the_current_forecasts_view_compiles_for_synapse():
    """The view's DDL as Synapse (SQL Server's dialect) gets it: bracket-quoted names, the per-series newest origin
    and the retired stores left out, no bound parameter left (a view cannot take one)."""
    tables = table_definitions(["store", "item"])
    engine = sa.create_mock_engine("mssql+pyodbc://", lambda *a, **k: None)
    sql = create_view_sql(engine, CURRENT_FORECASTS, current_forecasts_select(
        tables["forecast_predictions"], tables["retired_partitions"], ["store", "item"]))
    assert sql.startswith("CREATE VIEW current_forecasts AS SELECT forecast_predictions.store")
    assert "max(forecast_predictions.origin) AS origin" in sql and "GROUP BY forecast_predictions.store" in sql
    assert "partition_key NOT IN (SELECT retired_partitions.partition_key" in sql
    assert "?" not in sql and ":" not in sql.replace("::", "")
