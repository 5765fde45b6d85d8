"""What every warehouse column holds, with its unit: the one description BI, the Dagster UI and the docs read.

Why here, beside the table definitions: the column schemas the Dagster UI shows are derived from the SQLAlchemy
tables (``Column.info["description"]``), so a column added to a table without a description fails a test
instead of drifting. Descriptions are kept out of the SQL DDL (no ``COMMENT``): Synapse does not take them.

No Dagster here.
"""

from __future__ import annotations

import sqlalchemy as sa

ID = "series id (one of settings columns.ids)"

COMMON = {
    "origin": "the last observed period the forecast starts from (period start, UTC)",
    "ds": "the forecast period (period start, UTC)",
    "yhat": "point forecast, in units of the target (e.g. units sold per period)",
    "model_type": "model type (lightgbm, linear, ets, prophet, baseline, ...)",
    "model_version": "the series' model version in the registry; 0 for the baseline",
    "model_source": "champion (the promoted model) | baseline (no champion, or its forecast was replaced)",
    "envelope_replaced": "1: the champion's forecast left the sanity envelope and the baseline's was published; 0 "
    "otherwise",
    "partition_key": "Dagster store partition of the row",
    "run_id": "the Dagster run that published the row",
    "published_at": "when the row was published (UTC)",
    "version": "the series' model version in the registry (1, 2, ... per retrain)",
    "status": "trained (a model) | fallback (too short or failed: the baseline serves it)",
    "accuracy": "1 - WAPE on the holdout (fraction; 1 is perfect, can be negative)",
    "wape": "weighted absolute percentage error: sum |y - yhat| / sum y (fraction, 0.25 = 25 %)",
    "mase": "mean absolute scaled error: the absolute errors / the training data's mean one-step seasonal-naive "
            "error (a season back; a period back when the training data hold less than a season of seasonal pairs), "
            "averaged over the points; < 1 is an error below that in-sample scale, not a win over the seasonal-naive "
            "forecast (beats_snaive says that)",
    "smape": "symmetric MAPE on the holdout (fraction, 0..2)",
    "mape": "mean absolute percentage error over periods with y > 0 (fraction, 0.25 = 25 %)",
    "rmse": "root mean squared error, in units of the target",
    "n_obs": "observed periods the model was trained on (count)",
    "data_start": "first period of the training data (UTC)",
    "data_end": "last period of the training data (UTC)",
    "trained_at": "when the model was trained (UTC)",
    "training_run_id": "the Dagster run that trained the model",
    "decision": "promoted | kept_champion | rejected",
    "challenger_version": "model version of the challenger judged",
    "challenger_model_type": "model type of the challenger",
    "challenger_accuracy": "challenger's 1 - WAPE on the holdout (fraction)",
    "challenger_mase": "challenger's MASE on the holdout",
    "challenger_wape": "challenger's WAPE on the holdout (fraction)",
    "champion_version": "model version of the champion before the decision (empty: none)",
    "champion_wape": "the champion re-scored on the challenger's holdout: WAPE (fraction)",
    "decided_at": "when the gate decided (UTC)",
    "gate_run_id": "the Dagster run of the gate",
    "scope": "series (one row per series and model) | partition (pooled over the store's series)",
    "horizon": "periods forecast at each origin (count)",
    "gap": "periods between the origin and the first forecast period (count)",
    "origins": "rolling origins backtested (count)",
    "every": "periods between consecutive origins (count; the horizon unless the backtest was asked otherwise)",
    "n_points": "forecast points scored (count)",
    "bias": "sum (yhat - y) / sum y (fraction; > 0 over-forecasts)",
    "mae": "mean absolute error, in units of the target",
    "naive_mae": "MAE of the naive forecast (last value) of the same points, in units of the target",
    "snaive_mae": "MAE of the seasonal-naive forecast of the same points, in units of the target",
    "beats_naive": "1: the model's MAE is below the naive one (scope series)",
    "beats_snaive": "1: the model's MAE is below the seasonal-naive one (scope series)",
    "series": "series pooled (count; scope partition)",
    "beat_naive_share": "share of the series whose MAE beats naive (fraction; scope partition)",
    "beat_snaive_share": "share of the series whose MAE beats seasonal naive (fraction; scope partition)",
    "sum_abs_error": "sum |y - yhat|, in units of the target (pool WAPE = SUM(sum_abs_error) / SUM(sum_actual))",
    "sum_error": "sum (yhat - y), in units of the target (pool bias = SUM(sum_error) / SUM(sum_actual))",
    "sum_actual": "sum y, in units of the target",
    "backtest_run_id": "the Dagster run of the backtest",
    "lead": "periods from the origin to ds (count)",
    "actual": "the observed target of ds, in units of the target",
    "baseline_yhat": "the baseline's forecast of ds from the same origin, in units of the target",
    "retired_at": "when the store partition was retired (UTC)",
}

PER_TABLE = {
    ("forecast_predictions", "baseline_yhat"): "the baseline's forecast of ds, chosen at the origin from the history "
    "up to it: what realised accuracy judges yhat against (NULL on rows scored before the column existed)",
    ("model_metrics", "reason"): "how the model was made (trained: e.g. the global model's fit and objective) or why the series fell back to its baseline",
    ("model_metrics_history", "reason"): "how the model was made (trained: e.g. the global model's fit and objective) or why the series fell back to its baseline",
    ("model_metrics", "training_failed_at"): "when the series' newest training failed, if after this model was "
    "trained (NULL: the newest training made this model, or none failed since); the row's model is then an older one",
    ("model_metrics", "training_error"): "why that newest training failed (error type: message); the failure log is "
    "`mm-assets failures`",
    ("model_metrics", "held_since"): "the date of the series' first bad row in the source, whose rows the ingest holds "
    "back (ingest.on_bad_rows: hold; NULL: none held): its model and its forecasts are of the rows the lake had "
    "before, until the source is mended and those periods are read again",
    ("model_metrics", "held_problem"): "what is wrong with the held rows (e.g. a negative sale, a sale dated after "
    "today), as the cycle summary and the check no_series_held_back name it",
    ("publish_log", "origin"): "the store's newest origin in forecast_predictions when the run finished it (NULL: "
    "the store has no forecast yet)",
    ("publish_log", "series"): "series of the store forecast from that origin (count; a series whose rows stopped "
    "earlier keeps an older origin and is not counted)",
    ("publish_log", "published_at"): "when the run finished publishing the store (UTC): its forecasts, metrics, "
    "decisions and realised accuracy were all written before",
    ("publish_log", "run_id"): "the Dagster run that published the store (publish_job, or a run that materialized "
    "forecast_accuracy)",
    ("promotion_decisions", "reason"): "why the gate decided so (the rule that held or failed, with the figures)",
}


def documented(table: sa.Table, id_columns) -> sa.Table:
    """``table`` with every column's description in ``info["description"]``; a column without one is an error."""
    for column in table.columns:
        text = ID if column.name in id_columns else PER_TABLE.get((table.name, column.name), COMMON.get(column.name))
        if text is None:
            raise KeyError(f"warehouse column {table.name}.{column.name} has no description in warehouse/columns.py")
        column.info["description"] = text
    return table
