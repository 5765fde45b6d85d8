"""Bring your own data: weekly series, other column names and id columns, hash-bucket partitions.

The same pipeline, configured only through settings, on data that is not the demo's shape.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.demo.generator import DemoSpec, generate_sales
from mm_assets.registry import ModelRegistry
from mm_assets.settings import Settings
from mm_assets.warehouse import Warehouse

pytestmark = pytest.mark.e2e


def _weekly_source(url: str) -> pd.DataFrame:
    daily = generate_sales(DemoSpec(stores=4, items=3, days=700, seed=11))
    daily["week_start"] = daily["date"] - pd.to_timedelta(daily["date"].dt.day_of_week, unit="D")  # Mondays
    weekly = (
        daily.groupby(["store", "item", "week_start"], as_index=False)
        .agg(units=("sales", "sum"), avg_price=("price", "mean"))
        .rename(columns={"store": "shop", "item": "sku"})
    )
    weekly["week_start"] = weekly["week_start"].dt.date
    weekly["region"] = "north"
    weekly.to_sql("weekly_units", sa.create_engine(url), index=False)
    return weekly


def test_weekly_custom_columns_bucket_partitions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/src.db"
    weekly = _weekly_source(url)
    first_monday = str(weekly["week_start"].min())
    settings = Settings.model_validate(
        {
            "source": {"url": url, "table": "weekly_units"},
            "columns": {"timestamp": "week_start", "ids": ["shop", "sku"], "target": "units",
                        "regressors": ["avg_price"]},
            "partition": {"column": "shop", "buckets": 2},
            "frequency": "W-MON",
            "horizon": 6,
            "storage": {"lake": str(tmp_path / "lake"), "registry": f"sqlite:///{tmp_path}/reg.db",
                        "warehouse": f"sqlite:///{tmp_path}/wh.db",
                        "production_registry": f"sqlite:///{tmp_path}/prod.db"},
            "ingest": {"start_date": first_monday},
            "runner": {"max_concurrency": 2},
            "schedule": {"rows_per_run": 1},  # each bucket holds more: a run each
        }
    )
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        report = run_cycle(build_definitions(settings), instance, settings, log=lines.append)
        assert report.ok, report.runs
        buckets = sorted(instance.get_dynamic_partitions("shop_buckets"))
        assert buckets == ["b0000", "b0001"]
        assert [job for job, *_ in report.runs].count("train_job") == 2
        assert any("2 partitions (hash buckets of shop) in 2 runs of each job (at most 100 partitions and 1 rows"
                   in line for line in lines), lines
        raw = instance.get_materialized_partitions(dg.AssetKey("raw_sales"))
        assert first_monday in raw

    latest = ModelRegistry(settings.storage.registry).latest()
    series = weekly[["shop", "sku"]].drop_duplicates()
    assert len(latest) == len(series)
    assert (latest["model_type"].isin(["lightgbm", "baseline"])).all()  # the default: one global model
    assert (latest["model_type"] == "lightgbm").any()
    global_rows = latest[latest["model_type"] == "lightgbm"]
    assert (global_rows.groupby("run_id")["artifact_uri"].nunique() == 1).all()  # one shared model per run
    assert global_rows["run_id"].nunique() == 2

    preds = Warehouse(settings.storage.warehouse, ["shop", "sku"]).read_predictions()
    assert set(preds.columns) >= {"shop", "sku", "origin", "ds", "yhat", "model_type", "model_version"}
    per_series = preds.groupby(["shop", "sku"]).size()
    assert len(per_series) == len(series) and (per_series == 6).all()
    ds = pd.to_datetime(preds["ds"])
    assert (ds.dt.day_of_week == 0).all()  # forecasts land on the data's weekday
    steps = preds.assign(ds=ds).sort_values("ds").groupby(["shop", "sku"])["ds"].diff().dropna()
    assert (steps == pd.Timedelta(days=7)).all()
