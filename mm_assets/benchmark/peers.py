"""The benchmark's peers: the libraries a user would pick instead of mm-assets, on the same series and holdout.

- statsforecast (Nixtla): ``SeasonalNaive`` and ``AutoETS`` (weekly season), ``n_jobs`` = cores: the usual fast
  many-series statistical library.
- mlforecast (Nixtla) with LightGBM: lags 1, 7, 14, 28, 7- and 28-day rolling means of lag 1, day of week and
  of year, price and promo as dynamic features, log1p target, recursive forecasts: the usual global-model
  pipeline.

Each is timed like the cycle's training and scoring: a holdout fit and forecast of each series' last
``horizon`` days (its WAPE, pooled over the series, is reported beside ours), then a refit on everything and a
forecast of the next ``horizon`` days. Missing days are filled (sales 0, price carried forward, promo 0), as
both libraries need a regular grid.

It runs in its own venv (``.venv-peers``, ``requirements-peers.txt``): statsforecast's pins conflict with the
Dagster environment's. ``python -m mm_assets.benchmark.peers SAMPLE.parquet --horizon H --cores N --out F.json``;
the sample has the columns date, store, item, sales, price, promo. No Dagster here.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from mm_assets.forecasting.series import quarter_periods
from mm_assets.ids import series_keys

SEASON = 7


def prepare(sample: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(all rows, holdout train rows, holdout test rows) in the Nixtla layout: unique_id, ds, y, price, promo, on
    a daily grid per series; series too short for a holdout are left out."""
    from utilsforecast.preprocessing import fill_gaps

    df = pd.DataFrame({
        "unique_id": series_keys(sample, ["store", "item"]),
        "ds": pd.to_datetime(sample["date"]), "y": sample["sales"].astype(float),
        "price": sample["price"].astype(float), "promo": sample["promo"].astype(float),
    })
    df = fill_gaps(df, freq="D", start="per_serie", end="per_serie").sort_values(["unique_id", "ds"],
                                                                                  ignore_index=True)
    df["y"] = df["y"].fillna(0.0)
    df["price"] = df.groupby("unique_id")["price"].ffill()
    df["price"] = df.groupby("unique_id")["price"].bfill()
    df["promo"] = df["promo"].fillna(0.0)
    length = df.groupby("unique_id")["ds"].transform("size")
    df = df[length >= horizon + 4 * SEASON].reset_index(drop=True)
    position = df.groupby("unique_id").cumcount(ascending=False)  # 0 = the last day
    test = df[position < horizon].reset_index(drop=True)
    train = df[position >= horizon].reset_index(drop=True)
    return df, train, test


def future_exog(df: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """The next ``horizon`` days of every series: its regular price (the highest of its last quarter), no promotion
    (as the cycle plans them)."""
    last = df.groupby("unique_id").tail(1).copy()
    recent = df.groupby("unique_id").tail(quarter_periods(1))  # daily series
    last["price"] = recent.groupby("unique_id")["price"].max().reindex(last["unique_id"]).to_numpy()
    rows = [pd.DataFrame({"unique_id": uid, "ds": pd.date_range(ds + pd.Timedelta(days=1), periods=horizon),
                          "price": price, "promo": 0.0})
            for uid, ds, price in zip(last["unique_id"], last["ds"], last["price"])]
    return pd.concat(rows, ignore_index=True)


def pooled_wape(test: pd.DataFrame, forecast: pd.DataFrame, column: str) -> float:
    merged = test[["unique_id", "ds", "y"]].merge(forecast[["unique_id", "ds", column]], on=["unique_id", "ds"])
    return float(np.abs(merged["y"] - merged[column]).sum() / max(np.abs(merged["y"]).sum(), 1e-9))


def _timed(label: str, fn: Callable[[], dict], series: int) -> dict:
    started = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - started
    # wall time only: statsforecast's n_jobs work runs in child processes this process's CPU clock does not see
    return {"peer": label, "series": series, "wall_s": round(wall, 3),
            "models_per_s": round(series / wall, 2) if wall > 0 else None, **out}


def statsforecast_peers(df, train, test, horizon: int, cores: int) -> list[dict]:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive

    out = []
    for label, model in (("statsforecast SeasonalNaive", SeasonalNaive(season_length=SEASON)),
                         ("statsforecast AutoETS", AutoETS(season_length=SEASON))):
        def run(model=model) -> dict:
            sf = StatsForecast(models=[model], freq="D", n_jobs=cores)
            holdout = sf.forecast(df=train[["unique_id", "ds", "y"]], h=horizon)
            wape = pooled_wape(test, holdout, repr(model))
            forecast = sf.forecast(df=df[["unique_id", "ds", "y"]], h=horizon)
            return {"holdout_wape": round(wape, 4), "forecast_rows": int(len(forecast))}

        out.append(_timed(label, run, df["unique_id"].nunique()))
    return out


def mlforecast_peer(df, train, test, horizon: int, cores: int) -> dict:
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import GlobalSklearnTransformer
    from sklearn.preprocessing import FunctionTransformer

    def make() -> MLForecast:
        model = lgb.LGBMRegressor(n_estimators=200, learning_rate=0.06, num_leaves=31, n_jobs=cores, verbose=-1,
                                  random_state=0)
        return MLForecast(
            models={"lightgbm": model}, freq="D", lags=[1, 7, 14, 28],
            lag_transforms={1: [RollingMean(window_size=7), RollingMean(window_size=28)]},
            date_features=["dayofweek", "dayofyear"], num_threads=cores,
            target_transforms=[GlobalSklearnTransformer(FunctionTransformer(np.log1p, np.expm1))],
        )

    def run() -> dict:
        holdout_model = make().fit(train, static_features=[])
        holdout = holdout_model.predict(horizon, X_df=test[["unique_id", "ds", "price", "promo"]])
        wape = pooled_wape(test, holdout, "lightgbm")
        forecast = make().fit(df, static_features=[]).predict(horizon, X_df=future_exog(df, horizon))
        return {"holdout_wape": round(wape, 4), "forecast_rows": int(len(forecast))}

    return _timed("mlforecast LightGBM", run, df["unique_id"].nunique())


def run_peers(sample: pd.DataFrame, horizon: int, cores: int) -> dict:
    df, train, test = prepare(sample, horizon)
    peers = [*statsforecast_peers(df, train, test, horizon, cores), mlforecast_peer(df, train, test, horizon, cores)]
    return {"series": int(df["unique_id"].nunique()), "holdout_series": sorted(test["unique_id"].unique()),
            "peers": peers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample")
    parser.add_argument("--horizon", type=int, required=True)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = run_peers(pd.read_parquet(args.sample), args.horizon, args.cores)
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
