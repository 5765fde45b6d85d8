"""``docs/warehouse.md``, generated from the table definitions: what BI reads, table by table.

``python -m mm_assets.warehouse.reference > docs/warehouse.md`` (``make docs``); a test keeps the file equal.
No Dagster here.
"""

from __future__ import annotations

from mm_assets.warehouse.warehouse import table_definitions

TABLES = {
    "forecast_predictions": "The batch forecasts: one row per series, origin and forecast period. Re-publishing a "
    "store partition replaces its rows of the same origin, and removes those of any later origin (made from source "
    "periods since taken back), and those of that origin of a series no longer in the store's data (deleted from "
    "the source since; its older origins stay). Each series is forecast from its own last observed period: a series whose rows "
    "stopped before its store's newest (with ingest.absent_periods: missing) keeps an older origin, and forecast "
    "periods that may be past (the check series_reach_data_end and the cycle summary's 'from an old origin' count "
    "such series); one without a row for ingest.dormant_after periods (a discontinued item) is dormant: no longer "
    "forecast, its rows published before stay. The view current_forecasts (below) holds each series' newest origin, "
    "retired stores left out. With storage.forecast_retention_days, a store's publish deletes its rows (and its "
    "forecast_accuracy rows) of origins older than that many days before its newest.",
    "model_metrics": "Holdout metrics of every series' latest model (current state, replaced per store partition).",
    "model_metrics_history": "Holdout metrics of every model version ever published: one row per series and "
    "version, to follow a series' accuracy across retrains.",
    "promotion_decisions": "Every gate decision with its reason, per series and gate run (history).",
    "backtest_metrics": "Rolling-origin backtest accuracy (mm-assets backtest, asset backtest_metrics): scope "
    "series, one row per series and model type; scope partition, pooled per store (ids empty), with rows of "
    "naive and seasonal_naive too (those have partition rows only). Pool within one scope, the partition rows "
    "pooling the series rows: WAPE = SUM(sum_abs_error) / SUM(sum_actual) over scope = 'partition' rows of one "
    "backtest_run_id and model_type (a SUM over both scopes counts every point twice).",
    "forecast_accuracy": "Realised accuracy: every published forecast point whose actual has arrived, with the "
    "baseline's forecast of the same period from the same origin. Pool with sums: WAPE = SUM(ABS(yhat - actual)) "
    "/ SUM(actual), bias = SUM(yhat - actual) / SUM(actual), MASE vs the baseline = SUM(ABS(yhat - actual)) / "
    "SUM(ABS(baseline_yhat - actual)). An actual is on one row per origin that forecast its period (leads gap + "
    "1 to gap + horizon; after a missing period, some periods at one lead only): count sales once per period, "
    "e.g. SELECT store, item, ds, MAX(actual) ... GROUP BY store, item, ds (every row of a period holds the same "
    "actual), not WHERE lead = some lead, which leaves periods out; a plain SUM(actual) counts each sale once per "
    "origin. A series whose rows stopped (a late store, a feed's outage) is forecast again from the same origin at "
    "each cycle, by that day's champion, and its rows of that origin are replaced, as a rerun's are: its points "
    "judge the last forecast made from that origin, which a global model may have made after learning from other "
    "stores' periods past it. The check series_reach_data_end and the cycle summary's 'from an old origin' name "
    "such series while their rows are late.",
    "publish_log": "The publishes that are whole: one row per store partition and run, written when the run has "
    "written everything it publishes of the store (forecasts, metrics, decisions, then forecast_accuracy, the last). "
    "A dashboard refreshed while a cycle publishes shows each store whole but some stores at their previous origin; "
    "one that must not show a store before its realised accuracy is in reads each store at the origin of its "
    "newest row here (join forecast_predictions on partition_key and origin = MAX(origin) per partition_key), and "
    "one that must show a cycle whole waits until the stores it shows have a row at the origin it reads, e.g. "
    "SELECT COUNT(DISTINCT partition_key) FROM publish_log WHERE origin >= '2016-04-25' against their number "
    "(a store without new data keeps its older origin, here as in forecast_predictions). A store's rows of "
    "origins past storage.forecast_retention_days are deleted with its forecasts.",
    "retired_partitions": "Store partitions retired with mm-assets retire-partition: no longer trained, scored or "
    "published. Their rows in the other tables stay as history; current_forecasts leaves them out, and so should "
    "a view of model_metrics as the current state. A store that comes back to the source is removed from here at its next publish.",
}


CURRENT_VIEW = ("The forecast now, for BI: the rows of forecast_predictions of each series' own newest origin, the "
                "stores in retired_partitions left out (the same columns). A series whose rows stopped earlier than "
                "its store's keeps its older origin here (filter on origin to leave such series out). Created with "
                "the tables.")


def reference(tables=None) -> str:
    """Every table (``tables``: name -> sa.Table; default: with the ids store and item), its key and columns."""
    tables = tables if tables is not None else table_definitions(["store", "item"])
    out = ["# Warehouse tables", "",
           "Generated from the table definitions (`mm_assets/warehouse/`) by `make docs`; a test keeps it equal. "
           "Shown with the id columns `store` and `item` (the settings' `columns.ids`). Every table has "
           "`partition_key`, `run_id` and `published_at` (but retired_partitions): publishing is one transaction per store "
           "partition. So while a run publishes, a reader sees each store whole, some at the new origin and others "
           "still at their previous one, and forecast_accuracy is filled in by a later step of the same job; a "
           "report that must show a cycle whole reads a store once publish_log has its row for the run (below), "
           "not at its first new row.", "",
           "On a SQLite warehouse a `datetime` is stored as text, `2016-04-25 00:00:00.000000`: compare it by range "
           "or through `date()` (`date(ds) = '2016-04-25'`), since `ds = '2016-04-25'` matches no row. PostgreSQL, "
           "Azure SQL and Synapse compare dates as dates.", ""]
    for name, table in tables.items():
        key = ", ".join(c.name for c in table.primary_key.columns)
        out += [f"## {name}", "", TABLES[name], "", f"Key: {key}.", "",
                "| column | type | null | description |", "|---|---|---|---|"]
        for column in table.columns:
            kind = str(column.type).lower()
            text = column.info["description"].replace("|", "\\|")
            out.append(f"| `{column.name}` | {kind} | {'yes' if column.nullable else 'no'} | {text} |")
        out.append("")
    out += ["## current_forecasts (view)", "", CURRENT_VIEW, ""]
    return "\n".join(out)


if __name__ == "__main__":  # make docs
    print(reference(), end="")
