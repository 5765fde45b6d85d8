"""`mm-assets backtest --origins 10 --horizon 2 --gap 2` on weekly data configured through a settings file.

Other column names, weekly Monday data, a price and a promotion flag: every series gets a forecast for every
origin and target period, the pooled metrics are printed, the lake and the warehouse hold the results, and
`auto` records its per-series choice.
"""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from mm_assets.cli import main
from mm_assets.demo.generator import DemoSpec, generate_sales
from mm_assets.warehouse import Warehouse

pytestmark = pytest.mark.e2e

IDS = ["shop", "sku"]


def _weekly_source(url: str) -> pd.DataFrame:
    daily = generate_sales(DemoSpec(stores=2, items=3, days=910, seed=5))
    daily["week_start"] = daily["date"] - pd.to_timedelta(daily["date"].dt.day_of_week, unit="D")  # Mondays
    weekly = (
        daily.groupby(["store", "item", "week_start"], as_index=False)
        .agg(units=("sales", "sum"), avg_price=("price", "mean"), on_promo=("promo", "max"))
        .rename(columns={"store": "shop", "item": "sku"})
    )
    weekly["week_start"] = weekly["week_start"].dt.date
    weekly.to_sql("weekly_units", sa.create_engine(url), index=False)
    return weekly


def _settings_file(tmp_path, url: str, weekly: pd.DataFrame) -> str:
    settings_file = tmp_path / "weekly.yaml"
    settings_file.write_text(yaml.safe_dump({
        "source": {"url": url, "table": "weekly_units"},
        "columns": {"timestamp": "week_start", "ids": IDS, "target": "units", "regressors": ["avg_price", "on_promo"]},
        "partition": {"column": "shop"},
        "frequency": "W-MON",
        "horizon": 6,
        "model": {"type": "linear", "auto_candidates": ["seasonal_naive", "linear", "ets"], "auto_origins": 2},
        "storage": {"lake": str(tmp_path / "lake"), "registry": f"sqlite:///{tmp_path}/reg.db",
                    "warehouse": f"sqlite:///{tmp_path}/wh.db",
                    "production_registry": f"sqlite:///{tmp_path}/prod.db"},
        "ingest": {"start_date": str(weekly["week_start"].min())},
        "runner": {"max_concurrency": 2},
    }))
    return str(settings_file)


def _backtest(tmp_path, monkeypatch, capsys, *args: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``mm-assets backtest <args> --out`` on the weekly source in ``tmp_path`` → (the source's rows, every
    forecast row written, what was printed); fails the test unless it exits 0."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/src.db"
    weekly = _weekly_source(url)
    monkeypatch.setenv("MM_ASSETS_SETTINGS", _settings_file(tmp_path, url, weekly))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    out = tmp_path / "bt.parquet"
    code = main(["backtest", *args, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    return weekly, pd.read_parquet(out), printed


def test_backtest_cli_on_weekly_data(tmp_path, monkeypatch, capsys):
    weekly, rows, printed = _backtest(tmp_path, monkeypatch, capsys, "--origins", "10", "--horizon", "2", "--gap",
                                      "2", "--model", "linear,ets,auto")
    out = tmp_path / "bt.parquet"

    series = weekly[IDS].drop_duplicates()
    assert rows[IDS].drop_duplicates().shape[0] == len(series)
    # every series x model x origin x target period: 10 origins, 2 periods each, 2 and 3 periods... after gap 2
    per = rows.groupby([*IDS, "model_type"]).agg(origins=("origin", "nunique"), n=("ds", "size"))
    assert len(per) == len(series) * 3
    assert (per["origins"] == 10).all() and (per["n"] == 20).all()
    assert set(rows["step"]) == {3, 4}
    ds, origin = pd.to_datetime(rows["ds"]), pd.to_datetime(rows["origin"])
    assert ((ds - origin) == pd.to_timedelta(rows["step"] * 7, unit="D")).all()
    assert (ds.dt.day_of_week == 0).all()
    # origins step by the horizon; the newest one's window ends at the series' last observation
    for (shop, sku), g in rows[rows["model_type"] == "linear"].groupby(IDS):
        origins = sorted(pd.to_datetime(g["origin"].unique()))
        assert all(b - a == pd.Timedelta(weeks=2) for a, b in zip(origins, origins[1:]))
        last = pd.Timestamp(weekly[(weekly["shop"] == shop) & (weekly["sku"] == sku)]["week_start"].max())
        assert origins[-1] + pd.Timedelta(weeks=4) == last
    # forecasts are real and compared with the truth
    assert rows["forecast"].notna().all() and rows["actual"].notna().mean() > 0.9
    assert (rows.loc[rows["model_type"] == "linear", "used_model"] == "linear").mean() > 0.5
    assert set(rows.loc[rows["model_type"] == "auto", "used_model"]) <= {"seasonal_naive", "linear", "ets"}
    assert rows.loc[rows["model_type"] == "auto", "note"].str.startswith("auto: backtest WAPE").all()

    assert "note: at most" not in printed  # every series had its 10 origins
    # the backtest used the periods' actual regressors: said, since served forecasts without a plan do not
    assert "note: each forecast used its periods' actual" in printed and "plan them as future rows" in printed
    # printed pooled metrics per model, with the baselines
    for token in ("MAPE", "WAPE", "bias", "MASE", ">naive", ">snaive", "linear", "ets", "auto", "naive",
                  "seasonal_naive"):
        assert token in printed
    pooled = pd.read_csv(out.with_suffix(".pooled.csv")).set_index("model_type")
    assert {"linear", "ets", "auto", "naive", "seasonal_naive"} <= set(pooled.index)
    for col in ("mape", "wape", "bias", "mase", "beat_naive_share", "beat_snaive_share"):
        assert pooled.loc[["linear", "ets", "auto"], col].notna().all(), col
    assert (pooled.loc["linear", "n_points"] == rows[(rows["model_type"] == "linear") & rows["actual"].notna()]
            .shape[0])

    # the warehouse table: per series and pooled per partition, for each model
    wh = Warehouse(f"sqlite:///{tmp_path}/wh.db", IDS).read_table("backtest_metrics")
    per_series = wh[wh["scope"] == "series"]
    assert len(per_series) == len(series) * 3
    assert set(per_series["horizon"]) == {2} and set(per_series["gap"]) == {2} and set(wh["every"]) == {2}
    assert per_series[["wape", "bias", "mase"]].notna().all().all()
    partition_rows = wh[wh["scope"] == "partition"]
    assert set(partition_rows["partition_key"]) == set(weekly["shop"])
    assert {"linear", "ets", "auto", "naive", "seasonal_naive"} <= set(partition_rows["model_type"])


def test_more_origins_than_the_histories_hold_are_said_not_silently_cut(tmp_path, monkeypatch, capsys):
    weekly, rows, printed = _backtest(tmp_path, monkeypatch, capsys, "--origins", "500", "--horizon", "2", "--gap",
                                      "2", "--model", "seasonal_naive")
    most = int(rows.groupby(IDS)["origin"].nunique().max())
    assert 10 < most < 500
    assert f"note: at most {most:,} of the 500 origins asked per series" in printed


def test_a_store_too_short_for_one_origin_is_named_and_the_others_are_reported(tmp_path, monkeypatch, capsys):
    """A new store with one week of sales has no backtest; the other stores' results are printed and published
    all the same, and the new store is named (before: the run failed and the whole report was lost)."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/src.db"
    weekly = _weekly_source(url)
    newest = weekly["week_start"].max()
    pd.DataFrame([{"shop": "NEWSTORE", "sku": "I001", "week_start": newest, "units": 5.0, "avg_price": 2.0,
                   "on_promo": 0}]).to_sql("weekly_units", sa.create_engine(url), index=False, if_exists="append")
    monkeypatch.setenv("MM_ASSETS_SETTINGS", _settings_file(tmp_path, url, weekly))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))

    code = main(["backtest", "--origins", "2", "--horizon", "2", "--gap", "2", "--model", "linear"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "1 store partitions without any backtest (each series too short for one origin, or failed): NEWSTORE" \
        in printed
    assert "linear" in printed and "WAPE" in printed
    wh = Warehouse(f"sqlite:///{tmp_path}/wh.db", IDS).read_table("backtest_metrics")
    assert set(wh.loc[wh["scope"] == "partition", "partition_key"]) == set(weekly["shop"])  # NEWSTORE: nothing



def test_backtest_origins_every_period_through_both_runners_paths(tmp_path, monkeypatch, capsys):
    """``--every 1``: a long horizon on a short history scored from origins a period apart, by a per-series
    model (series by series) and by the global model (the whole batch at once)."""
    _, rows, printed = _backtest(tmp_path, monkeypatch, capsys, "--origins", "4", "--every", "1", "--horizon", "8",
                                 "--gap", "0", "--model", "linear,lightgbm")
    assert "backtest: 4 origins 1 period apart, horizon 8, gap 0" in printed
    assert set(rows["model_type"]) == {"linear", "lightgbm"}
    for (_, _, model), g in rows.groupby([*IDS, "model_type"]):
        origins = sorted(pd.to_datetime(g["origin"].unique()))
        assert len(origins) == 4, model
        assert all(b - a == pd.Timedelta(weeks=1) for a, b in zip(origins, origins[1:])), model
        assert len(g) == 4 * 8
    assert rows["forecast"].notna().all()
    wh = Warehouse(f"sqlite:///{tmp_path}/wh.db", IDS).read_table("backtest_metrics")
    assert set(wh["every"]) == {1} and set(wh["origins"]) == {4} and set(wh["horizon"]) == {8}


def test_a_horizon_longer_than_every_history_names_the_periods_the_asked_horizon_needs(tmp_path, monkeypatch,
                                                                                        capsys):
    """The reason names the horizon, gap and spacing of the command, not the settings'; and the backtest has just
    run, so it is not told to run it first."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/src.db"
    weekly = _weekly_source(url)
    monkeypatch.setenv("MM_ASSETS_SETTINGS", _settings_file(tmp_path, url, weekly))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))

    code = main(["backtest", "--origins", "2", "--horizon", "500", "--gap", "2", "--model", "seasonal_naive"])
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert code == 1, printed
    assert "(gap + horizon + 2 = 504 periods, and 500 more for each further origin)" in printed
    assert "materialize backtest first" not in printed
