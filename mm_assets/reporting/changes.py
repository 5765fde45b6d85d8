"""What got worse: each series' new model against its previous version, on their holdouts.

Why: a retrain can quietly make a series worse (a promotion, a price change, a bug in the data); the gate keeps
the champion then, but the operator wants to see which series and by how much, per store, in the UI.

No Dagster here.
"""

from __future__ import annotations

import math

import pandas as pd

WORSE_BY = 0.05  # holdout WAPE up by more than 5 points counts as worse
SHOWN = 10


def worse_than_previous(current: pd.DataFrame, previous: pd.DataFrame, shown: int = SHOWN) -> tuple[int, str]:
    """``current``/``previous``: registry rows (series_key, version, model_type, wape) of the new models and of
    the versions before them → (series whose holdout WAPE rose by more than ``WORSE_BY``, a markdown table of
    the ``shown`` largest rises)."""
    if current.empty or previous.empty:
        return 0, "No previous version to compare with."
    prev = previous[["series_key", "version", "model_type", "wape"]].rename(
        columns={"version": "previous_version", "model_type": "previous_type", "wape": "previous_wape"})
    both = current[["series_key", "version", "model_type", "wape"]].merge(prev, on="series_key")
    for col in ("wape", "previous_wape"):  # fallbacks have no WAPE: a column of them only is of dtype object
        both[col] = pd.to_numeric(both[col], errors="coerce")
    both = both[both["wape"].notna() & both["previous_wape"].notna()]
    both = both.assign(change=both["wape"] - both["previous_wape"])
    worse = both[both["change"] > WORSE_BY].nlargest(shown, "change")
    count = int((both["change"] > WORSE_BY).sum())
    if worse.empty:
        return 0, f"No series' holdout WAPE rose by more than {WORSE_BY:.0%} against its previous version."
    lines = ["| series | previous (v, type) | previous WAPE | new (v, type) | new WAPE | change |",
             "|---|---|---|---|---|---|"]
    for _, r in worse.iterrows():
        lines.append(f"| {r['series_key']} | v{int(r['previous_version'])} {r['previous_type']} | "
                     f"{_pct(r['previous_wape'])} | v{int(r['version'])} {r['model_type']} | {_pct(r['wape'])} | "
                     f"+{r['change'] * 100:.1f} pts |")
    return count, "\n".join(lines)


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1%}"
