"""The checks of ``batch_predictions``: every series forecast over the horizon, no champion forecast outside the
sanity envelope, every champion able to forecast."""

from __future__ import annotations

import pandas as pd

from mm_assets.checks.verdict import Verdict
from mm_assets.parallel.score_entry import champion_failed

CHECKS = {
    "every_series_forecast": "Every series of the store has a forecast for every step of the horizon.",
    "envelope_within": "No champion forecast of the store left the sanity envelope (warning: the baseline's "
    "forecast was published in its place; the champion needs attention).",
    "champions_forecast": "Every champion of the store could load and forecast its series (one that cannot, e.g. "
    "trained for a shorter horizon than the settings' now, leaves its series to the baseline).",
}


def every_series_forecast(keys: list[str], rows: pd.DataFrame, failures: pd.DataFrame, horizon: int) -> dict:
    """Per store: every series has ``horizon`` forecast rows; failed series count as missing."""
    out = {}
    for key in keys:
        part = rows[rows["partition_key"] == key] if len(rows) else rows
        per_series = part.groupby("series_key").size() if len(part) else pd.Series(dtype=int)
        failed = int((failures["partition_key"] == key).sum()) if len(failures) else 0
        complete, series = int((per_series == horizon).sum()), len(per_series) + failed
        out[key] = Verdict(
            passed=complete == series,
            metadata={"complete_series": complete, "series": series, "failed": failed},
            description=f"{series - complete} of {series} series of store {key} have no forecast for the whole "
            f"horizon of {horizon} periods ({failed} failed: mm-assets failures).",
        )
    return out


def envelope_within(keys: list[str], rows: pd.DataFrame) -> dict:
    """Per store: no champion forecast replaced by the baseline's for leaving the sanity envelope."""
    out = {}
    for key in keys:
        part = rows[rows["partition_key"] == key] if len(rows) else rows
        replaced = (part.loc[part["envelope_replaced"] == 1, "series_key"].unique()
                    if len(part) and "envelope_replaced" in part.columns else [])
        out[key] = Verdict(
            passed=len(replaced) == 0,
            metadata={"envelope_replaced": len(replaced), "series": int(part["series_key"].nunique()) if len(part)
                      else 0, "replaced_keys": ", ".join(list(replaced)[:20])},
            description=f"{len(replaced)} champion forecasts of store {key} left the sanity envelope and were "
            "replaced by the baseline's (see envelope_replaced in forecast_predictions).",
        )
    return out


def champions_forecast(keys: list[str], rows: pd.DataFrame) -> dict:
    """Per store: no series whose champion failed to load or to forecast (the baseline's forecast published in
    its place), with the first reasons."""
    first = rows.drop_duplicates("series_key") if len(rows) and "note" in rows.columns else rows.iloc[0:0]
    failed = first[champion_failed(first["note"])] if len(first) else first  # a series' rows share its note
    out = {}
    for key in keys:
        part = failed[failed["partition_key"] == key] if len(failed) else failed
        examples = "; ".join(f"{k}: {n}" for k, n in zip(part["series_key"][:3], part["note"][:3]))
        out[key] = Verdict(
            passed=len(part) == 0,
            metadata={"champion_failed": len(part), "failed_keys": ", ".join(list(part["series_key"])[:20])},
            description=f"{len(part)} champions of store {key} could not forecast and their series were served by "
            f"the baseline, e.g. {examples}. Such a champion is replaced when a challenger trained with today's "
            "settings passes the gate; until then its series stays on its baseline (promotion_decisions says why "
            "a challenger was rejected: retraining alone repeats that). If the store's models were trained before "
            "the settings changed, retrain it (materialize trained_models and production_models).",
        )
    return out
