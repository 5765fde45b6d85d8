"""Which series of a store its baseline serves after the gate, and why: what the ``production_models`` asset
shows beside its counts. No Dagster here."""

from __future__ import annotations

import pandas as pd

from mm_assets.reporting.markdown import Markdown

ON_BASELINE_ROWS = 20


def on_baseline(decided: pd.DataFrame, current: pd.DataFrame, key: str) -> pd.DataFrame:
    """The gate's decisions of the store's series served by their baseline after it (no champion)."""
    champions = set(current.loc[current["partition_key"] == key, "series_key"]) if len(current) else set()
    return decided[(decided["partition_key"] == key) & ~decided["series_key"].isin(champions)] if len(decided) \
        else decided


def on_baseline_table(decided: pd.DataFrame, current: pd.DataFrame, key: str) -> Markdown:
    """The store's series served by their baseline after the gate (no champion), each with the gate's reason: the
    counts say how many, this says which and why (the first ``ON_BASELINE_ROWS``)."""
    part = on_baseline(decided, current, key)
    if not len(part):
        return Markdown("every series of the store is served by a champion")
    lines = ["| series | why the baseline serves it |", "|---|---|"]
    lines += [f"| {k} | {str(r).replace('|', '/')} |" for k, r in
              zip(part["series_key"][:ON_BASELINE_ROWS], part["reason"][:ON_BASELINE_ROWS])]
    more = len(part) - ON_BASELINE_ROWS
    return Markdown("\n".join(lines) + (f"\n\n… and {more} more (promotion_decisions)" if more > 0 else ""))
