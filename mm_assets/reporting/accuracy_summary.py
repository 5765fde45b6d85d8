"""What a store's realised accuracy shows in the UI: WAPE, bias and MASE against the baseline over the window,
the champions' share of it, and the series furthest behind their baseline. No Dagster here: the
``forecast_accuracy`` asset only reports it."""

from __future__ import annotations

import pandas as pd

from mm_assets.checks.accuracy import rounded_ratio
from mm_assets.reporting.markdown import Markdown
from mm_assets.reporting.realized import ratios

WORST_SHOWN = 10


def _pct(value, sign: str = "") -> str:
    """A fraction as a percentage; n/a where it is undefined (no sales in the window: WAPE has no denominator)."""
    return "n/a" if pd.isna(value) else f"{value:{sign}.1%}"


def worst_table(by_series: pd.DataFrame, id_columns: list[str]) -> Markdown:
    """The series furthest behind their baseline (MASE vs baseline, highest first)."""
    worst = by_series[by_series["mase_vs_baseline"] >= 1].nlargest(WORST_SHOWN, "mase_vs_baseline")
    if worst.empty:
        return Markdown("Every series' forecasts beat or match its baseline over the window.")
    lines = [f"| {' | '.join(id_columns)} | model v | points | WAPE | bias | MASE vs baseline |",
             "|" + "---|" * (len(id_columns) + 5)]
    for _, r in worst.iterrows():
        lines.append(f"| {' | '.join(str(r[c]) for c in id_columns)} | {int(r['model_version'])} | "
                     f"{int(r['points'])} | {_pct(r['wape'])} | {_pct(r['bias'], '+')} | {r['mase_vs_baseline']:.2f} |")
    return Markdown("\n".join(lines))


def store_summary(sums: pd.DataFrame, id_columns: list[str]) -> dict:
    """Per-store figures from the judged points of the window, summed per series, version and source
    (``Warehouse.accuracy_sums``); no judged points: ``{"points": 0}``."""
    if not len(sums):
        return {"points": 0}
    out: dict = {"points": int(sums["points"].sum()), "first_ds": str(sums["first_ds"].min().date()),
                 "last_ds": str(sums["last_ds"].max().date())}
    total = ratios(sums.assign(all="all"), ["all"]).iloc[0]
    out.update(realized_wape=rounded_ratio(total["wape"]), realized_bias=rounded_ratio(total["bias"]),
               realized_mase_vs_baseline=rounded_ratio(total["mase_vs_baseline"]))
    served = sums[sums["model_source"] == "champion"]
    if len(served):
        champ = ratios(served.assign(all="all"), ["all"]).iloc[0]
        out.update(champion_wape=rounded_ratio(champ["wape"]),
                   champion_mase_vs_baseline=rounded_ratio(champ["mase_vs_baseline"]))
    judged = served if len(served) else sums
    # one row per series (its versions' points together), named by its newest version
    by_series = ratios(judged, id_columns).merge(
        judged.groupby(id_columns, as_index=False)["model_version"].max(), on=id_columns)
    out["worst_vs_baseline"] = worst_table(by_series, id_columns)
    return out
