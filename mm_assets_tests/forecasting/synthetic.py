"""Small synthetic series with known structure, shared by the forecasting tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Monday .. Sunday multipliers
WEEKDAY_PROFILE = np.array([0.8, 0.9, 1.0, 1.0, 1.2, 1.6, 1.3])
ELASTICITY = -1.5
PROMO_LIFT = 1.3


def daily_series(n: int = 400, seed: int = 0, start: str = "2023-01-02", noise: float = 0.03) -> pd.DataFrame:
    """Rows ds, y, price, promo: weekday profile x price elasticity x promo lift x small noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=n, freq="D")
    # price changes every 14 days among a few levels
    levels = rng.choice([1.6, 1.8, 2.0, 2.2, 2.4], size=n // 14 + 1)
    price = np.repeat(levels, 14)[:n]
    promo = (rng.random(n) < 0.1).astype(int)
    y = (
        20.0
        * WEEKDAY_PROFILE[ds.day_of_week.to_numpy()]
        * (price / 2.0) ** ELASTICITY
        * np.where(promo == 1, PROMO_LIFT, 1.0)
        * np.exp(rng.normal(0.0, noise, size=n))
    )
    return pd.DataFrame({"ds": ds, "y": y, "price": price, "promo": promo})


def weekly_series(n: int = 156, seed: int = 0, start: str = "2021-01-03") -> pd.DataFrame:
    """Rows ds (Sundays), y, price: a yearly wave plus noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=n, freq="W-SUN")
    week = np.arange(n)
    price = rng.choice([1.8, 2.0, 2.2], size=n)
    y = (100.0 + 30.0 * np.sin(2 * np.pi * week / 52.0)) * (price / 2.0) ** -1.0 * np.exp(
        rng.normal(0.0, 0.03, size=n)
    )
    return pd.DataFrame({"ds": ds, "y": y, "price": price})


def wape(actual, forecast) -> float:
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    return float(np.abs(actual - forecast).sum() / np.abs(actual).sum())


def retail_panel(stores: int = 6, items: int = 5, weeks: int = 110, seed: int = 0, missing: float = 0.03,
                 start: str = "2021-01-04") -> pd.DataFrame:
    """A weekly store × item panel like real retail data: rows store, item, ds (Mondays), y, price (below 1,
    per ounce), deal (0/1), display (a share, zero most weeks), some weeks missing. Every series answers the
    same price elasticity and deal/display lifts around its own level."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=weeks, freq="W-MON")
    rows = []
    for s in range(stores):
        for i in range(items):
            level = rng.uniform(20, 400)
            regular = rng.uniform(0.03, 0.06)
            deal = (rng.random(weeks) < 0.15).astype(float)
            price = regular * np.where(deal == 1, rng.uniform(0.7, 0.85, weeks), 1.0)
            display = np.where(rng.random(weeks) < 0.2, rng.uniform(0.1, 1.0, weeks), 0.0)
            y = level * (price / regular) ** -2.5 * (1 + 0.8 * display) * np.exp(rng.normal(0, 0.15, weeks))
            keep = rng.random(weeks) >= missing
            keep[-6:] = True
            rows.append(pd.DataFrame({"store": f"S{s:02d}", "item": f"I{i:02d}", "ds": ds[keep], "y": np.round(y[keep]),
                                      "price": price[keep], "deal": deal[keep], "display": display[keep]}))
    return pd.concat(rows, ignore_index=True)
