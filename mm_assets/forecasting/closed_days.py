"""Weekdays a daily series is closed on: forecast 0 there, not a day's typical sales.

Why: a store closed on Sundays has no Sunday rows. Read as missing periods (``ingest.absent_periods: missing``),
they are not sales of 0, so every model forecasts a Sunday like any other day; no actual ever arrives to judge it,
and a planner's weekly total is a sixth too high. A weekday without a single row in a series' newest
``CLOSED_WEEKS`` weeks, while its other days have rows, is taken as closed: its forecasts are 0 (the model's and the
baseline's), and the forecast's note says so. A series whose newest weeks are not all there (a new product, an
outage) takes its store's closed weekdays, those of most of the store's series that span the weeks (at least
``STORE_SERIES``), except a weekday it has rows on itself: a product launched three weeks ago in a store closed on
Sundays sold nothing on Sundays either, and its Sundays were forecast above its weekdays. A series closed on more
than ``MOST_CLOSED_DAYS`` weekdays is left as it is (more like a feed that sends some days than a closing day).

No Dagster here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mm_assets.forecasting.series import DS, Y
from mm_assets.ids import series_keys

CLOSED_WEEKS = 8
MOST_CLOSED_DAYS = 2
STORE_SERIES = 3  # series of a store, spanning the weeks, that must show a closing day for a new series to take it
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CLOSED_NOTE = "closed on "  # how a forecast's note starts saying so (counted by ``series_closed_days``)


def closed_weekdays(rows: pd.DataFrame, id_columns: Sequence[str], store_column: str | None = None) -> pd.DataFrame:
    """Per series (``series_key``) whose newest ``CLOSED_WEEKS`` weeks of rows with sales data (target observed)
    span those weeks: the weekdays (0 = Monday) without a row there, when there are 1 to ``MOST_CLOSED_DAYS``
    of them; with ``store_column``, a series that does not span them takes its store's where
    it has no row itself (``_from_store``) → columns series_key, weekday, from_store (taken from its store)."""
    empty = pd.DataFrame({"series_key": pd.Series(dtype=str), "weekday": pd.Series(dtype=np.int64),
                          "from_store": pd.Series(dtype=bool)})
    if rows.empty:
        return empty
    days = pd.Timedelta(days=7 * CLOSED_WEEKS)
    ds = pd.to_datetime(rows[DS])
    observed = rows[Y].notna()
    if not observed.any():
        return empty
    # from the newest row with sales, not the plan's last day: a plan of two weeks left no series spanning the
    # weeks, and a store closed on Sundays was forecast its Sundays (a trial found a sixth too much a week)
    keep = ((ds > ds[observed].max() - days - pd.Timedelta(days=7)) & observed).to_numpy()  # a week of slack
    frame = pd.DataFrame({"series_key": series_keys(rows[keep], list(id_columns)).to_numpy(), "ds": ds[keep].to_numpy()})
    if store_column is not None:
        frame["store"] = rows.loc[keep, store_column].astype(str).to_numpy()
    newest = frame.groupby("series_key")["ds"].transform("max")
    frame = frame[frame["ds"] > newest - days]
    bounds = frame.groupby("series_key")["ds"].agg(["min", "max"])
    spans = bounds["min"] <= bounds["max"] - days + pd.Timedelta(days=7)  # rows in the window's first week: not new
    all_seen = pd.crosstab(frame["series_key"], frame["ds"].dt.day_of_week).reindex(columns=range(7), fill_value=0)
    spanning = spans.reindex(all_seen.index, fill_value=False).to_numpy()
    shut = all_seen[spanning] == 0
    shut = shut[shut.sum(axis=1).between(1, MOST_CLOSED_DAYS)]
    if store_column is not None and (~spanning).any():
        store_of = frame.groupby("series_key")["store"].first().reindex(all_seen.index)
        shut = pd.concat([shut, _from_store(all_seen, spanning, store_of)])
    if shut.empty:
        return empty
    out = shut.stack()
    out = out[out].reset_index()
    out.columns = ["series_key", "weekday", "closed"]
    out["from_store"] = ~out["series_key"].isin(all_seen.index[spanning])
    return out[["series_key", "weekday", "from_store"]].astype({"weekday": np.int64})


def _from_store(seen: pd.DataFrame, spanning: np.ndarray, store_of: pd.Series) -> pd.DataFrame:
    """The weekdays the series that do not span the weeks (``~spanning``; ``seen``: rows per series and weekday)
    take from their store (``store_of``): those without a row in most of the store's spanning series, at least
    ``STORE_SERIES`` of them, where the series has no row itself → a boolean frame of those series × weekday."""
    shut = (seen == 0) & (seen == 0).sum(axis=1).between(1, MOST_CLOSED_DAYS).to_numpy()[:, None]
    by_store = shut[spanning].groupby(store_of[spanning].to_numpy())
    closing = by_store.sum()
    store_days = (closing >= STORE_SERIES) & (closing > by_store.size().to_numpy()[:, None] / 2)
    new = seen.index[~spanning]
    taken = store_days.reindex(store_of[new].to_numpy(), fill_value=False).to_numpy() & (seen.loc[new] == 0).to_numpy()
    out = pd.DataFrame(taken, index=new, columns=seen.columns)
    return out[out.any(axis=1)]


def series_closed_days(forecasts: pd.DataFrame) -> int:
    """How many series of ``forecasts`` (scored, with their ``note``) had closed weekdays forecast 0."""
    if not len(forecasts) or "note" not in forecasts:
        return 0
    said = forecasts["note"].astype("string").str.contains(CLOSED_NOTE, regex=False).fillna(False).astype(bool)
    return int(forecasts.loc[said, "series_key"].nunique())


def zero_closed_days(forecasts: pd.DataFrame, closed: pd.DataFrame) -> pd.DataFrame:
    """``forecasts`` (series_key, ds, yhat, baseline_yhat, note) with 0 on each series' closed weekdays and the
    note saying so; unchanged where no series is closed."""
    if closed.empty or forecasts.empty:
        return forecasts
    weekday = pd.to_datetime(forecasts["ds"]).dt.day_of_week.to_numpy()
    keys = pd.MultiIndex.from_frame(closed[["series_key", "weekday"]])
    hit = pd.MultiIndex.from_arrays([forecasts["series_key"].to_numpy(), weekday]).isin(keys)
    if not hit.any():
        return forecasts
    out = forecasts.copy()
    out.loc[hit, "yhat"] = 0.0
    if "baseline_yhat" in out:
        out.loc[hit, "baseline_yhat"] = 0.0
    names = closed.groupby("series_key")["weekday"].agg(lambda w: ", ".join(DAY_NAMES[d] for d in sorted(w)))
    inherited = set(closed.loc[closed["from_store"], "series_key"]) if "from_store" in closed else set()
    said = (f"{CLOSED_NOTE}{names[key]} (no row in "
            + (f"its store's other series' newest {CLOSED_WEEKS} weeks, nor in its own" if key in inherited
               else f"its newest {CLOSED_WEEKS} weeks") + "): forecast 0 there"
            for key in out.loc[hit, "series_key"])
    old = out.loc[hit, "note"] if "note" in out else pd.Series(None, index=out.index[hit], dtype=object)
    out.loc[hit, "note"] = [f"{n}; {s}" if isinstance(n, str) and n else s for n, s in zip(old, said)]
    return out
