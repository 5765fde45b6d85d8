"""What a store's training run shows in the UI: counts, accuracy quantiles, plots and the series that failed or
fell back. No Dagster here: the ``trained_models`` asset only reports these.

Why plots for a few stores only: three plots cost about 0.13 s of the run's main process and 48 KB of its event
log a partition, which one partition per store of thousands of stores turns into minutes and tens of MB a cycle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mm_assets.forecasting.global_training import BATCH_SERIES
from mm_assets.forecasting.metrics import metric_column
from mm_assets.forecasting.models import is_global
from mm_assets.forecasting.training import STATUS_FALLBACK, STATUS_TRAINED
from mm_assets.registry.gate import judged_ratio
from mm_assets.reporting.markdown import Markdown
from mm_assets.reporting.plots import accuracy_histogram_svg, as_markdown_image, forecast_vs_actual_svg

# store partitions of a run whose plots are drawn (those of the lowest median accuracy)
PLOTTED_PARTITIONS = 10
LISTED_SERIES = 100  # failed or fallback series listed per store


def _quantile(values: pd.Series, q: float) -> float | None:
    values = values.dropna()
    return round(float(np.quantile(values, q)), 4) if len(values) else None


def partition_summary(rows: pd.DataFrame, failures: pd.DataFrame, key: str) -> dict:
    """One store's figures of the run: series, trained, fallback, failed, accuracy quantiles, fit time, holdout
    forecasts replaced for leaving the sanity envelope, and models that beat their baseline."""
    part = rows[rows["partition_key"] == key] if len(rows) else rows
    failed = failures[failures["partition_key"] == key] if len(failures) else failures
    acc = part["accuracy"] if len(part) else pd.Series(dtype=float)
    return {
        "series": len(part) + len(failed),
        "trained": int((part["status"] == STATUS_TRAINED).sum()) if len(part) else 0,
        "fallback": int((part["status"] == STATUS_FALLBACK).sum()) if len(part) else 0,
        "failed": len(failed),
        "median_accuracy": _quantile(acc, 0.5),
        "p90_accuracy": _quantile(acc, 0.9),
        "p10_accuracy": _quantile(acc, 0.1),
        "fit_seconds": round(float(part["duration_s"].sum()), 2) if len(part) else 0.0,
        "envelope_replaced": int(np.nansum(metric_column(part["metrics"], "envelope_replaced"))) if len(part) else 0,
        "beats_baseline": int((judged_ratio(part["metrics"])[0] < 1).sum()) if len(part) else 0,
    }


def partitions_to_plot(registered: pd.DataFrame, keys: list[str], most: int = PLOTTED_PARTITIONS) -> set[str]:
    """The run's partitions whose plots are drawn: all of them up to ``most``, else the ``most`` of the lowest
    median holdout accuracy (where an operator looks first)."""
    if len(keys) <= most:
        return set(keys)
    accuracy = (registered.groupby("partition_key")["accuracy"].median() if len(registered)
                else pd.Series(dtype=float)).reindex(keys)
    return set(accuracy.sort_values(na_position="last", kind="stable").index[:most])


def accuracy_label(accuracy: float) -> str:
    """A holdout's accuracy as a plot title gives it. Accuracy is 1 - WAPE, below zero where the absolute errors
    outweigh the volume (a slow mover's few sales missed): its WAPE then says more than a negative accuracy."""
    if accuracy >= 0:
        return f"accuracy {accuracy:.2f}"
    return f"WAPE {1 - accuracy:.0%}: more error than volume"


def readable_metadata(part: pd.DataFrame, failed: pd.DataFrame, gate: float | None, plots: bool = True) -> dict:
    """Plots and tables an operator reads in the UI: forecast vs actual for a typical and the worst series,
    the accuracy distribution (``plots``: drawn, else a note saying where they are), and the failed or fallback
    series with their reasons."""
    out: dict = {}
    scored = part.dropna(subset=["accuracy"]) if len(part) else part
    scored = scored[scored["holdout"].notna() & (scored["holdout"] != "null")] if len(scored) else scored
    if len(scored) and not plots:
        out["plots"] = (f"drawn for the {PLOTTED_PARTITIONS} store partitions of this run with the lowest median "
                        "holdout accuracy; this one's holdouts are in the registry (model_metrics)")
    elif len(scored):
        median = scored["accuracy"].median()
        typical = scored.iloc[(scored["accuracy"] - median).abs().argsort().iloc[0]]
        worst = scored.loc[scored["accuracy"].idxmin()]
        images = [
            as_markdown_image(
                forecast_vs_actual_svg(f"{label}: {row['series_key']} ({row['model_type']}, "
                                       f"{accuracy_label(row['accuracy'])})", row["holdout"]),
                f"{label} series {row['series_key']}",
            )
            for label, row in (("typical", typical), ("worst", worst))
        ]
        out["forecast_vs_actual"] = Markdown("\n\n".join(images))
        out["accuracy_distribution"] = Markdown(
            as_markdown_image(accuracy_histogram_svg(scored["accuracy"].tolist(), gate), "accuracy distribution"))
    rows = []
    if len(failed):
        rows += [{"series": r.series_key, "status": "failed", "reason": f"{r.error_type}: {r.error_message}"[:300]}
                 for r in failed.itertuples()]
    if len(part):
        rows += [{"series": r.series_key, "status": "fallback", "reason": r.reason}
                 for r in part[part["status"] == STATUS_FALLBACK].itertuples()]
    if rows:
        out["failed_or_fallback"] = Markdown(pd.DataFrame(rows).head(LISTED_SERIES).to_markdown(index=False))
    return out


def global_fit(registered: pd.DataFrame) -> dict:
    """How the run's global model was made (refitted after its holdout fit, or the holdout fit served) and from
    how many series it learnt (with other stores' when the run was small: ``model.global_context_rows``), as its
    trained series record it; nothing when no series of the run is served by a global model."""
    if not len(registered):
        return {}
    served = registered[(registered["status"] == STATUS_TRAINED) & registered["model_type"].map(is_global)]
    notes = served["reason"].dropna().unique()
    if not len(notes):
        return {}
    learnt = np.array(metric_column(served["metrics"], BATCH_SERIES), dtype=float)
    learnt = learnt[np.isfinite(learnt)]
    return {"global_model_fit": str(notes[0]),
            **({"global_model_series": int(learnt.max())} if len(learnt) else {})}
