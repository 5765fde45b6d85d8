"""What one store partition publishes, shaped for the warehouse tables, and the one transaction that writes it.

Why apart from the asset: the registries' rows become warehouse rows (ids unpacked from their JSON tags) and
Synapse takes its forecasts by COPY INTO rather than inserts; the asset only says which stores and when.
"""

from __future__ import annotations

import json

import pandas as pd

from mm_assets.warehouse.synapse import publish_with_copy_into
from mm_assets.warehouse.warehouse import (
    LATEST_ONLY_COLUMNS,
    METRIC_COLUMNS,
    retention_cutoff,
    with_prediction_defaults,
)


def metrics_frame(latest: pd.DataFrame, id_columns: list[str], failures: pd.DataFrame | None = None,
                  held: pd.DataFrame | None = None) -> pd.DataFrame:
    """Registry rows → model_metrics rows (ids from the JSON tags, extra metrics unpacked).

    ``failures`` (each series' newest failed training, ``ModelRegistry.newest_failures``) fill
    ``training_failed_at`` and ``training_error`` where that failure is newer than the model: the row then says
    the series' newest training did not make it, instead of showing its older model as if it were today's.
    ``held`` (the series the ingest holds back, ``ingest.held.held_series``) fill ``held_since`` and
    ``held_problem``: a held series is trained and forecast from the rows before its bad ones, and looked like any
    other series in the warehouse."""
    if latest.empty:
        return pd.DataFrame(columns=[*id_columns, *METRIC_COLUMNS, *LATEST_ONLY_COLUMNS])
    ids = pd.DataFrame([json.loads(t) for t in latest["ids"]], index=latest.index)
    extra = pd.DataFrame([json.loads(m) if m else {} for m in latest["metrics"]], index=latest.index)
    out = pd.concat([ids[id_columns], latest], axis=1)
    for col in ("smape", "mape", "rmse"):
        out[col] = extra.get(col)
    out["training_failed_at"], out["training_error"] = pd.NaT, None
    if failures is not None and len(failures):
        newest = failures.set_index("series_key")
        failed_at = pd.to_datetime(out["series_key"].map(newest["failed_at"]))
        after = failed_at > pd.to_datetime(out["trained_at"])
        error = newest["error_type"].fillna("error") + ": " + newest["error_message"].fillna("")
        out.loc[after, "training_failed_at"] = failed_at[after]
        out.loc[after, "training_error"] = out.loc[after, "series_key"].map(error).str.slice(0, 2000)
    out["held_since"], out["held_problem"] = pd.NaT, None
    if held is not None and len(held):
        since = held["first_date"].where(held["first_date"].notna(), held["held_from"])  # its first bad row's date
        first = held.assign(since=since).groupby("series").agg(since=("since", "min"), problem=("problem", "first"))
        out["held_since"] = pd.to_datetime(out["series_key"].map(first["since"]))
        out["held_problem"] = out["series_key"].map(first["problem"]).astype(object).str.slice(0, 2000)
    return out.rename(columns={"run_id": "training_run_id"})


def decisions_frame(decisions: pd.DataFrame, id_columns: list[str]) -> pd.DataFrame:
    """Gate decisions → promotion_decisions rows (ids from the JSON tags, the gate's run named as such)."""
    if decisions.empty:
        return decisions
    ids = pd.DataFrame([json.loads(t) for t in decisions["ids"]], index=decisions.index)
    return pd.concat([ids[id_columns], decisions.rename(columns={"run_id": "gate_run_id"})], axis=1)


def decisions_to_publish(production, wh, partition_keys: list[str], id_columns: list[str]) -> pd.DataFrame:
    """The promotion_decisions rows a publish of these partitions writes: each one's newest gate run, and any
    gate run decided after the newest one the warehouse holds. Why the second: a run stopped between its gate
    and its publish left decisions (champions changed by them) that the next run's newest gate run would hide
    from BI for good."""
    newest = production.newest_decisions(partition_keys)
    missed = production.decisions_after(wh.newest_decided(partition_keys))
    if len(missed):
        newest = pd.concat([newest, missed], ignore_index=True).drop_duplicates("id").sort_values("id",
                                                                                                   ignore_index=True)
    return decisions_frame(newest, id_columns)


def publish_store(wh, the_lake, key: str, run_id: str, preds: pd.DataFrame, metrics: pd.DataFrame,
                  decisions: pd.DataFrame | None, missed: pd.DataFrame | None = None,
                  retention_days: int | None = None, in_data: pd.DataFrame | None = None) -> dict[str, int]:
    """One store's three tables in one transaction → rows per table (and ``pruned_*``: rows of origins older than
    ``retention_days`` before the newest, ``storage.forecast_retention_days``). On Synapse (an ``mssql`` warehouse
    with an ADLS lake) the forecasts are bulk-loaded with COPY INTO from a Parquet file staged in the lake."""
    keep_from = retention_cutoff(preds["origin"].max() if len(preds) else None, retention_days)
    if not (wh.engine.dialect.name == "mssql" and the_lake.protocol in ("abfs", "abfss", "az")):
        return wh.publish_partition(key, run_id, preds, metrics, decisions, missed, keep_from, in_data)
    staged = f"warehouse_stage/forecast_predictions/{key}/{run_id}.parquet"
    now = pd.Timestamp.now("UTC").tz_localize(None)
    stage = with_prediction_defaults(preds).assign(partition_key=key, run_id=run_id, published_at=now)
    stage = stage[[c.name for c in wh.predictions.columns]]
    the_lake.write_parquet(stage, staged)
    left = publish_with_copy_into(wh.engine, wh.predictions, key, preds, wh.id_columns, the_lake.full_uri(staged),
                                  in_data=in_data)
    counts = wh.publish_partition(key, run_id, preds.iloc[0:0], metrics, decisions, missed, keep_from)
    counts["forecast_predictions"], counts["left_the_data"] = len(preds), left
    return counts
