"""The baseline: the same model trained and scored the way a user would without the project.

One process, ``pandas.read_sql`` of the series, then ``df.groupby(ids).apply(fit_and_forecast)``: per series, put
it on a daily grid, build the features with pandas, hold out the last ``horizon`` days and score them, refit on
everything and forecast the next ``horizon`` days. That is what a competent pandas user writes first; it is not
made slow on purpose (vectorised pandas/numpy inside a series, Ridge with the Cholesky solver), and it persists
nothing (no model files, no registry, no warehouse), which favours the baseline.

Models, the same kinds as ``mm_assets.forecasting.models``:
* ``linear``: Ridge on trend, day-of-week dummies, yearly Fourier terms (order 4), the seasonal lag and rolling
  levels shifted by the horizon (direct multi-step), log price, price relative to its 28-day mean, promo; log1p
  target.
* ``prophet``: Prophet with price and promo as regressors, no uncertainty sampling.
* ``seasonal_naive``: the last week repeated.

Only the fitting loop is timed (``models_per_s``); reading the sample from the source is reported apart.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd
import sqlalchemy as sa


def sample_series(frame_ids: pd.DataFrame, k: int) -> pd.DataFrame:
    """``k`` series evenly spread over the sorted (store, item) list: every store and item range is represented."""
    ids = frame_ids.sort_values(list(frame_ids.columns)).reset_index(drop=True)
    if k >= len(ids):
        return ids
    picks = np.linspace(0, len(ids) - 1, k).round().astype(int)
    return ids.iloc[np.unique(picks)].reset_index(drop=True)


def read_sample(url: str, table: str, stores: list[str], items: list[str], k: int) -> tuple[pd.DataFrame, float]:
    """The rows of ``k`` sample series from the source, as a user would read them (one SQL query)."""
    ids = pd.DataFrame([(s, i) for s in stores for i in items], columns=["store", "item"])
    sample = sample_series(ids, k)
    started = time.perf_counter()
    engine = sa.create_engine(url)
    try:
        query = sa.text(
            f"SELECT date, store, item, sales, price, promo FROM {table} "
            "WHERE store IN :stores AND item IN :items"
        ).bindparams(sa.bindparam("stores", expanding=True), sa.bindparam("items", expanding=True))
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn, params={"stores": sorted(set(sample["store"])),
                                                     "items": sorted(set(sample["item"]))})
    finally:
        engine.dispose()
    frame = frame.merge(sample, on=["store", "item"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame, time.perf_counter() - started


def _linear_features(g: pd.DataFrame, n_history: int, horizon: int, season: int = 7) -> pd.DataFrame:
    days = (g.index - pd.Timestamp("1970-01-01")).days.to_numpy(dtype=float)
    X = pd.DataFrame({"trend": days / 365.25}, index=g.index)
    X = X.join(pd.get_dummies(g.index.day_of_week, prefix="dow", drop_first=True, dtype=float).set_index(g.index))
    for k in range(1, 5):
        X[f"sin_{k}"] = np.sin(2 * np.pi * k * days / 365.25)
        X[f"cos_{k}"] = np.cos(2 * np.pi * k * days / 365.25)
    y = np.log1p(g["sales"].iloc[:n_history].ffill().bfill().fillna(0.0)).reindex(g.index)
    lag = season * math.ceil(horizon / season)
    X["lag_season"] = y.shift(lag)
    X["level"] = y.rolling(season, min_periods=1).mean().shift(horizon)
    X["level_long"] = y.rolling(4 * season, min_periods=1).mean().shift(horizon)
    log_price = np.log(g["price"].clip(lower=1e-6))
    X["log_price"] = log_price
    ref = log_price.rolling(4 * season, min_periods=1).mean().shift(1)
    ref.iloc[n_history:] = ref.iloc[n_history - 1]
    X["rel_price"] = log_price - ref
    X["promo"] = g["promo"]
    return X


def _fit_predict_linear(g: pd.DataFrame, n_fit: int, horizon: int) -> np.ndarray:
    """Fit on the first ``n_fit`` rows of the grid ``g``, predict its next ``horizon`` rows."""
    from sklearn.linear_model import Ridge

    frame = g.iloc[: n_fit + horizon]
    X = _linear_features(frame, n_fit, horizon)
    target = np.log1p(frame["sales"].iloc[:n_fit])
    train = X.iloc[:n_fit].assign(y=target).iloc[horizon:].dropna()
    if len(train) < 2:
        return _fit_predict_naive(g, n_fit, horizon)
    model = Ridge(alpha=1.0, solver="cholesky")
    mean, std = train.drop(columns="y").mean(), train.drop(columns="y").std().replace(0, 1).fillna(1)
    model.fit((train.drop(columns="y") - mean) / std, train["y"])
    future = ((X.iloc[n_fit:] - mean) / std).fillna(0.0)
    return np.clip(np.expm1(model.predict(future)), 0, None)


def _fit_predict_prophet(g: pd.DataFrame, n_fit: int, horizon: int) -> np.ndarray:
    from prophet import Prophet

    for name in ("cmdstanpy", "prophet"):
        logging.getLogger(name).setLevel(logging.ERROR)
    df = g.reset_index().rename(columns={"date": "ds", "sales": "y"})
    df[["price", "promo"]] = df[["price", "promo"]].ffill().bfill()
    model = Prophet(uncertainty_samples=0, weekly_seasonality=True, daily_seasonality=False)
    model.add_regressor("price")
    model.add_regressor("promo", standardize=False)
    model.fit(df.iloc[:n_fit][["ds", "y", "price", "promo"]])
    return np.clip(model.predict(df.iloc[n_fit : n_fit + horizon][["ds", "price", "promo"]])["yhat"].to_numpy(), 0, None)


def _fit_predict_naive(g: pd.DataFrame, n_fit: int, horizon: int, season: int = 7) -> np.ndarray:
    last = g["sales"].iloc[:n_fit].ffill().fillna(0.0).to_numpy()[-season:]
    if len(last) == 0:
        return np.zeros(horizon)
    return np.resize(last, horizon)


FITTERS = {"linear": _fit_predict_linear, "prophet": _fit_predict_prophet, "seasonal_naive": _fit_predict_naive}


def fit_and_forecast(g: pd.DataFrame, model: str, horizon: int) -> pd.DataFrame:
    """One series: holdout score, refit on all data, forecast ``horizon`` days past its last day."""
    g = g.set_index("date")[["sales", "price", "promo"]].asfreq("D")
    # too short for the model (late launches): seasonal naive, the same rule as the project's min_train_periods
    min_train = 7 * math.ceil(horizon / 7) + 30
    fitter = FITTERS[model] if g["sales"].notna().sum() - horizon >= min_train else _fit_predict_naive
    future_index = pd.date_range(g.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    future = pd.DataFrame({"sales": np.nan, "price": g["price"].ffill().iloc[-1], "promo": 0.0}, index=future_index)
    n = len(g)
    wape = float("nan")
    if n > horizon + 7:  # a holdout needs history before it (discontinued items can be a few days long)
        holdout = fitter(g, n - horizon, horizon)
        actual = g["sales"].iloc[n - horizon :].to_numpy()
        seen = ~np.isnan(actual)
        if seen.any():
            wape = float(np.abs(actual[seen] - holdout[seen]).sum() / max(np.abs(actual[seen]).sum(), 1e-9))
    forecast = fitter(pd.concat([g, future]).rename_axis("date"), n, horizon)
    return pd.DataFrame({"ds": future_index, "yhat": forecast, "holdout_wape": wape})


def _import_model_library(model: str) -> None:
    if model == "linear":
        import sklearn.linear_model  # noqa: F401
    elif model == "prophet":
        import prophet  # noqa: F401


def run_baseline(frame: pd.DataFrame, model: str, horizon: int) -> dict:
    """Time ``groupby(ids).apply(fit_and_forecast)`` over the sample; returns the figures."""
    ids = ["store", "item"]
    series = frame[ids].drop_duplicates().shape[0]
    _import_model_library(model)  # a user's script imports at the top: not part of the fitting time
    started = time.perf_counter()
    cpu0 = time.process_time()
    out = frame.groupby(ids, sort=False)[["date", "sales", "price", "promo"]].apply(
        fit_and_forecast, model=model, horizon=horizon
    )
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    wape = out.groupby(level=[0, 1])["holdout_wape"].first().dropna()
    return {
        "series": int(series),
        "model": model,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "models_per_s": round(series / wall, 2) if wall > 0 else None,
        "forecast_rows": int(len(out)),
        "median_holdout_accuracy": round(float(1 - wape.median()), 4) if len(wape) else None,
        "method": "pandas groupby(ids).apply(fit_and_forecast), one process",
    }
