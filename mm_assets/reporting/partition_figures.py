"""The figures each store partition's materialization shows in the UI: its dataset's, its forecasts' and its
backtest's. Plain values (``Markdown``, ``LakePath``); the assets turn them into Dagster metadata.
"""

from __future__ import annotations

import pandas as pd

from mm_assets.checks.data_quality import NO_ROWS
from mm_assets.forecasting.backtest import format_pooled
from mm_assets.forecasting.closed_days import series_closed_days
from mm_assets.parallel.score_entry import SOURCE_BASELINE
from mm_assets.reporting.markdown import LakePath, Markdown

POOLED_FIGURES = ("mape", "wape", "bias", "mase", "beat_naive_share", "beat_snaive_share")


def dataset_figures(q: pd.Series, path: str, no_rows: bool) -> dict:
    """One store partition's dataset (a row of the quality table) and where it is."""
    return {
        "series": int(q["series"]),
        "rows": int(q["rows"]),
        "first_ds": str(q["first_ds"].date()),
        "last_ds": str(q["last_ds"].date()),
        "gaps": int(q["gaps"]),
        "series_with_gaps": int(q["series_with_gaps"]),
        "series_with_long_gaps": int(q["series_with_long_gaps"]),
        "short_series": int(q["short_series"]),
        "series_ending_early": int(q.get("series_ending_early", 0)),
        # no row for ingest.dormant_after periods: kept apart from the dataset, not forecast until their next row
        "series_dormant": int(q.get("series_dormant", 0)),
        **({"series_dormant_examples": list(q["series_dormant_examples"])} if int(q.get("series_dormant", 0)) else {}),
        "series_stopped_selling": int(q.get("series_stopped_selling", 0)),
        "zero_filled_periods": int(q.get("zero_filled_periods", 0)),
        # planned rows only (not sold yet): left out of the dataset until the first sale
        "series_without_sales": int(q.get("series_without_sales", 0)),
        **({"series_without_sales_examples": list(q["series_without_sales_examples"])}
           if int(q.get("series_without_sales", 0)) else {}),
        "cut": str(q["cut"]),  # appended the new period files to the last cut, or cut from every file
        "path": LakePath(path),
        **({"warning": NO_ROWS} if no_rows else {}),
    }


def plan_periods(part: pd.DataFrame) -> int:
    """Forecast periods that used planned regressors (``planned_periods`` is per series, on each of its rows)."""
    if not len(part) or "planned_periods" not in part.columns:
        return 0
    return int(part.groupby("series_key")["planned_periods"].first().sum())


def forecast_figures(part: pd.DataFrame, envelope_replaced: int, path: str, behind: str | None = None) -> dict:
    """One store's forecast figures: series, rows, how many series' forecasts are their baseline's (no champion,
    or the envelope replaced the champion's: ``forecast_by_baseline``, not the gate's ``served_by_baseline``,
    which counts series without a champion) and how many the envelope replaced, and how many periods used planned
    regressors (price/promo plan rows) rather than the defaults (the regular price, no promotion), and how many series
    are forecast from a period before the store's newest origin (``series_from_earlier_origin``: a series without
    a row in the newest periods, or held back for bad rows; one far behind is also ``series_reach_data_end``'s), and
    ``behind`` (``store_behind``): a whole store whose newest origin is periods before the lake's newest sale."""
    planned = plan_periods(part)
    return {
        "series": int(part["series_key"].nunique()) if len(part) else 0,
        "rows": len(part),
        "forecast_by_baseline": int(part.loc[part["model_source"] == SOURCE_BASELINE, "series_key"].nunique())
        if len(part) else 0,
        "envelope_replaced": envelope_replaced,
        "series_closed_days": series_closed_days(part),  # closed weekdays forecast 0 (the note says which)
        "periods_with_plan": planned,
        "periods_without_plan": len(part) - planned,
        "origin_max": str(part["origin"].max().date()) if len(part) else "",
        "series_from_earlier_origin": earlier_origins(part),
        **({"store_behind": behind} if behind else {}),
        "path": LakePath(path),
    }


def store_behind(origin: pd.Timestamp | None, newest_sale: pd.Timestamp | None, step: pd.Timedelta,
                 allowed: int) -> str | None:
    """What to say of a store whose newest forecast origin is more than ``allowed`` periods (``step``) before the
    lake's newest sale (every store's): its rows stopped, and ``series_from_earlier_origin``, measured within the
    store, cannot see it. None when it is within them, or either date is unknown."""
    if origin is None or newest_sale is None or pd.isna(origin):
        return None
    behind = int((newest_sale - origin) / step)
    if behind <= allowed:
        return None
    return (f"the store's newest origin {origin.date()} is {behind:,} periods before the lake's newest sale "
            f"{newest_sale.date()} (ingest.max_normal_gap {allowed}): no rows of it since (closed, renamed, or a "
            "feed that stopped?); its forecasts start in the past")


def earlier_origins(part: pd.DataFrame) -> int:
    """How many series of one store's forecasts start from an origin before the store's newest."""
    if not len(part):
        return 0
    origins = part.groupby("series_key")["origin"].max()
    return int((origins < origins.max()).sum())


def backtest_figures(pooled: pd.DataFrame) -> dict:
    """A backtest's pooled table as Markdown, and each model's figures flat (``wape_linear``...) for the UI's
    plots."""
    out: dict = {"pooled": Markdown("```\n" + format_pooled(pooled) + "\n```")}
    for r in pooled.itertuples():
        for name in POOLED_FIGURES:
            value = getattr(r, name)
            if pd.notna(value):
                out[f"{name}_{r.model_type}"] = round(float(value), 4)
    return out
