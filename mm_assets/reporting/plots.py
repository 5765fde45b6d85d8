"""Small PNG plots for asset metadata: forecast versus actual on the holdout, and the accuracy distribution.

Why small: they are embedded in every store partition's materialization event (markdown with a data: URI),
so each is kept to a few kilobytes; the UI shows them inline next to the numbers.
"""

from __future__ import annotations

import base64
import io
import json
import math

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.dates
import matplotlib.pyplot as plt
import numpy as np

DPI = 72


def _png(fig) -> bytes:
    # fixed margins instead of bbox_inches="tight", which draws the figure twice: a store partition's plots are
    # drawn on every training run, so their cost counts
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def forecast_vs_actual_png(title: str, holdout: dict | str) -> bytes:
    """Actuals of the last three horizons and the holdout forecast of one series."""
    data = json.loads(holdout) if isinstance(holdout, str) else holdout
    ds = np.array(data["ds"], dtype="datetime64[D]")
    actual = np.array([np.nan if v is None else v for v in data["actual"]], dtype=float)
    forecast = np.array(data["forecast"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    ax.plot(ds, actual, color="#444444", linewidth=1.2, label="actual")
    ax.plot(ds[-len(forecast):], forecast, color="#d62728", linewidth=1.6, label="holdout forecast")
    ax.axvline(ds[-len(forecast)], color="#999999", linestyle=":", linewidth=1)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")
    ax.xaxis.set_major_locator(matplotlib.dates.AutoDateLocator(maxticks=6))
    ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%Y-%m-%d"))
    fig.subplots_adjust(left=0.07, right=0.98, top=0.88, bottom=0.14)
    return _png(fig)


def accuracy_histogram_png(accuracies, threshold: float | None = None) -> bytes:
    values = np.array([a for a in accuracies if a is not None and not math.isnan(a)], dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 2.2))
    ax.hist(np.clip(values, -0.5, 1.0), bins=20, color="#1f77b4")
    if threshold is not None:
        ax.axvline(threshold, color="#d62728", linestyle="--", linewidth=1, label=f"gate {threshold:.2f}")
        ax.legend(fontsize=7)
    ax.set_title(f"holdout accuracy (1 - WAPE), {len(values)} series", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.14)
    return _png(fig)


def as_markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
