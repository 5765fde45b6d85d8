"""Small synthetic model registries for the serving tests and the benchmark (no Dagster, no pipeline run).

``train_models`` fits a few real models (``train_series``, the training code the pipeline uses) on synthetic
daily series; ``write_registry`` stores pickled models in bundle files in the lake (one per partition, byte
ranges, as training does), registers one row per series in the model registry and, by default, records them as
the series' champions in the production registry (what serves by default, as after a gate that promoted them);
``add_champions`` records champions of registered rows. ``write_datasets`` writes the partitions' datasets as
``series_datasets`` cuts them (history, then planned rows from ``plan_rows``), the rows batch scoring and the
endpoint forecast from; ``publish_forecasts`` runs batch scoring on them (a global model's published forecast is its
series' default answer). To reach 10,000+ series quickly the benchmark registers each trained model's bytes under
many series (one copy per series in the bundles, so every series is its own range read and unpickle): the models
are replicated, the serving work is not.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
from collections.abc import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mm_assets.forecasting.metrics import metrics_json
from mm_assets.forecasting.series import SeriesConfig
from mm_assets.forecasting.training import TrainOutcome, train_series
from mm_assets.ids import SERIES_KEY_SEPARATOR, series_key
from mm_assets.lake import Lake
from mm_assets.registry.model_registry import ModelRegistry
from mm_assets.settings import Settings
from mm_assets.sql import engine_for

WEEKDAY = np.array([0.8, 0.9, 1.0, 1.0, 1.2, 1.6, 1.3])


def daily_rows(days: int, seed: int, end: dt.date) -> pd.DataFrame:
    """Rows ds, y, price, promo of one synthetic daily series ending on ``end``."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(end=pd.Timestamp(end), periods=days, freq="D")
    level = 5.0 + 30.0 * rng.random()
    price = np.repeat(rng.choice([1.6, 1.8, 2.0, 2.2], size=days // 14 + 1), 14)[:days]
    promo = (rng.random(days) < 0.1).astype(float)
    y = level * WEEKDAY[ds.day_of_week] * (price / 2.0) ** -1.5 * np.where(promo == 1, 1.3, 1.0)
    y = np.round(y * np.exp(rng.normal(0.0, 0.1, days)))
    return pd.DataFrame({"ds": ds, "y": y, "price": price, "promo": promo})


def train_models(
    settings: Settings, count: int, days: int = 200, end: dt.date = dt.date(2026, 6, 30), seed: int = 0,
    model_type: str | None = None,
) -> list[tuple[bytes, TrainOutcome]]:
    """``count`` models trained on distinct synthetic series: (pickled model, outcome)."""
    cfg = SeriesConfig.from_settings(settings)
    out = []
    for k in range(count):
        outcome = train_series(daily_rows(days, seed + k, end), cfg, model_type or settings.model.type,
                               settings.model.params)
        out.append((pickle.dumps(outcome.model, protocol=pickle.HIGHEST_PROTOCOL), outcome))
    return out


def plan_rows(days: int, seed: int, after: dt.date) -> pd.DataFrame:
    """Planned rows of one synthetic daily series: the ``days`` periods after ``after`` with the price and the
    promotions known in advance (a price change after a week, promotions on about a third of the days) and no
    target, as the source's plan arrives in a dataset."""
    rng = np.random.default_rng(10_000 + seed)
    ds = pd.date_range(pd.Timestamp(after) + pd.Timedelta(days=1), periods=days, freq="D")
    price = np.where(np.arange(days) < 7, rng.choice([1.6, 1.8]), rng.choice([2.0, 2.2]))
    promo = (rng.random(days) < 0.35).astype(float)
    return pd.DataFrame({"ds": ds, "y": np.nan, "price": price, "promo": promo})


def write_datasets(settings: Settings, series: Sequence[Sequence[str]], frames: Sequence[pd.DataFrame]) -> None:
    """Write ``frames[i]`` (ds, y, regressors: history, then planned rows) as the rows of ``series[i]`` into its
    partition's dataset (``datasets/<partition>.parquet``), sorted by ids then ds as ``series_datasets`` writes it."""
    from mm_assets.ingest.datasets import dataset_file

    ids_cols = list(settings.columns.ids)
    part_col = ids_cols.index(settings.partition.column)
    lake = Lake(settings.storage.lake)
    pieces: dict[str, list[pd.DataFrame]] = {}
    for ids, frame in zip(series, frames, strict=True):
        named = frame.assign(**{c: str(v) for c, v in zip(ids_cols, ids)})
        pieces.setdefault(str(ids[part_col]), []).append(named)
    for partition, parts in pieces.items():
        frame = pd.concat(parts, ignore_index=True).sort_values([*ids_cols, "ds"], ignore_index=True)
        lake.write_parquet(frame[[*ids_cols, "ds", "y", *settings.columns.regressors]], dataset_file(partition))


def write_registry(
    settings: Settings,
    series: Sequence[Sequence[str]],
    models: Sequence[tuple[bytes, TrainOutcome]],
    run_id: str = "synthetic",
    promote: bool = True,
    shared: bool = False,
    one_bundle: bool = False,
) -> pd.DataFrame:
    """Register ``series[i]`` with ``models[i % len(models)]``; bundles per partition, a copy of the model's bytes
    per series, or with ``shared`` each distinct model's bytes once per bundle (the series of a global model point
    at one byte range). ``one_bundle`` (with ``shared``): one bundle for the whole run instead, each distinct
    model's bytes once whatever the partitions of its series, as training writes a run's global model and the gate
    copies it (the endpoint then holds one model object, not a copy per store). ``promote``: also record them as
    the series' champions in the settings' production registry (what the endpoint serves by default; False:
    challengers the gate has not promoted). Returns the registered rows."""
    ids_cols = list(settings.columns.ids)
    lake = Lake(settings.storage.lake)
    part_col = ids_cols.index(settings.partition.column)
    by_partition: dict[str, list[int]] = {}
    for i, ids in enumerate(series):
        by_partition.setdefault(str(ids[part_col]), []).append(i)
    rows = []
    whole_run = shared and one_bundle
    blobs, offset, written = [], 0, {}
    uri = lake.full_uri("models", run_id, "bundle.bin")
    for partition, members in by_partition.items():
        if not whole_run:
            blobs, offset, written = [], 0, {}
            uri = lake.full_uri("models", partition, run_id, "bundle.bin")
        for i in members:
            blob, outcome = models[i % len(models)]
            at = written.get(id(blob)) if shared else None
            ids = [str(v) for v in series[i]]
            rows.append({
                "series_key": series_key(ids),
                "partition_key": partition,
                "ids": json.dumps(dict(zip(ids_cols, ids))),
                "model_type": outcome.model_type,
                "status": outcome.status,
                "reason": outcome.reason,
                "data_start": outcome.data_start,
                "data_end": outcome.data_end,
                "n_obs": outcome.n_obs,
                "metrics": metrics_json(outcome.metrics),
                "accuracy": outcome.metrics.get("accuracy"),
                "wape": outcome.metrics.get("wape"),
                "mase": outcome.metrics.get("mase"),
                "artifact_uri": uri,
                "artifact_offset": offset if at is None else at,
                "artifact_size": len(blob),
                "duration_s": outcome.fit_seconds,
            })
            if at is None:
                written[id(blob)] = offset
                blobs.append(blob)
                offset += len(blob)
        if not whole_run:
            lake.write_bytes(b"".join(blobs), "models", partition, run_id, "bundle.bin")
    if whole_run:
        lake.write_bytes(b"".join(blobs), "models", run_id, "bundle.bin")
    registry = ModelRegistry(settings.storage.registry, lake)
    registered = registry.register(pd.DataFrame(rows), run_id)
    registry.engine.dispose()
    if promote and settings.storage.production_registry:
        add_champions(settings.storage.production_registry, registered, run_id=f"{run_id}-promotion")
    return registered


def add_champions(production_url: str, rows: pd.DataFrame, run_id: str = "promotion") -> None:
    """Record registered model rows as the current champions of their series in a production registry."""
    from mm_assets.registry.production import champions, metadata

    engine = engine_for(production_url)
    metadata.create_all(engine)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    columns = {c.name for c in champions.columns} - {"id"}
    records = []
    for row in rows.to_dict("records"):
        record = {k: v for k, v in row.items() if k in columns}
        record.update(promoted_at=now, run_id=run_id, source_artifact_uri=row["artifact_uri"])
        for key in ("data_end",):
            if isinstance(record.get(key), pd.Timestamp):
                record[key] = record[key].to_pydatetime()
        records.append({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()})
    with engine.begin() as conn:
        conn.execute(sa.insert(champions), records)
    engine.dispose()


def publish_forecasts(settings: Settings, partitions: Sequence[str], run_id: str = "synthetic") -> pd.DataFrame:
    """Batch scoring's published forecasts of ``partitions`` (``predictions/<partition>.parquet``, what the endpoint
    answers a global model's series with): the scoring entry script itself, on each partition's dataset as one
    mini-batch with the production registry's current champions, written as ``batch_predictions`` writes them.
    Returns the rows."""
    import sys

    from mm_assets.ingest.datasets import DATASET_FOLDER, dataset_file
    from mm_assets.parallel import score_entry
    from mm_assets.parallel.contract import DATASET_SIGNATURE_KEY, MANIFEST_COLUMNS, MiniBatchContext, predictions_file
    from mm_assets.registry.production import ProductionRegistry

    lake = Lake(settings.storage.lake)
    current = ProductionRegistry(settings.storage.production_registry, lake).current()
    lake.write_parquet(current[MANIFEST_COLUMNS].astype({"version": "int64"}), "manifests", f"{run_id}.parquet")
    argv, sys.argv = sys.argv, ["score_entry", "--settings-json", settings.model_dump_json(), "--lake-uri",
                                settings.storage.lake, "--run-id", run_id, "--manifest", f"manifests/{run_id}.parquet"]
    try:
        score_entry.init()
    finally:
        sys.argv = argv
    ids_cols = list(settings.columns.ids)
    pieces = []
    scored_from = lake.signatures(DATASET_FOLDER, suffix=".parquet")  # the datasets scored, as batch_predictions
    for partition in partitions:
        rows = score_entry.run(lake.read_parquet(dataset_file(partition)), MiniBatchContext({}))
        ids = rows["series_key"].str.split(SERIES_KEY_SEPARATOR, expand=True)
        rows = rows.assign(**{c: ids[j] for j, c in enumerate(ids_cols)})
        lake.write_parquet(rows, predictions_file(partition), metadata={DATASET_SIGNATURE_KEY: scored_from.get(f"{partition}.parquet", "")})
        pieces.append(rows)
    return pd.concat(pieces, ignore_index=True)
