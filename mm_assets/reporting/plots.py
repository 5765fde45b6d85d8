"""Small SVG plots for asset metadata: forecast versus actual on the holdout, and the accuracy distribution.

Why SVG from figures kept per process: every store partition of every training run draws three plots in the run's
main process, after the workers are done, so their cost is wall time of the cycle (a PNG from a new figure took
~75 ms; fifteen partitions, over three seconds of a full-size training run). A figure is built once per process
and only its data, ticks and title change per plot, and SVG keeps the text as text (no glyphs rasterised, no PNG
encoded): a third of the time, and the embedded image is half the size of the PNG (markdown with a ``data:`` URI
in the materialization event, which every read of the asset's latest record deserialises).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import threading
import warnings

import matplotlib
import matplotlib.dates
import matplotlib.ticker
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 72
# text stays text (the browser's font), ids do not depend on the run, no creation date: the same plot, same bytes
SVG_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "mm-assets"}
SVG_METADATA = {"Date": None, "Creator": None}

_lock = threading.Lock()  # figures are shared within the process; one plot is drawn at a time


def _svg(fig: Figure) -> bytes:
    # fixed margins instead of bbox_inches="tight", which draws the figure twice
    buffer = io.BytesIO()
    with matplotlib.rc_context(SVG_STYLE), warnings.catch_warnings():
        # the text is written as text and drawn by the browser's fonts: an id in Chinese or Japanese shows there,
        # though the font matplotlib measures it with has no glyph for it (a warning per character, per plot)
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        fig.savefig(buffer, format="svg", dpi=DPI, metadata=SVG_METADATA)
    return buffer.getvalue()


class _HoldoutFigure:
    """Actuals as a grey line, the holdout forecast in red, a dotted line at the holdout's origin."""

    def __init__(self) -> None:
        fig = Figure(figsize=(6.4, 2.4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        (self.actual,) = ax.plot([], [], color="#444444", linewidth=1.2, label="actual")
        (self.forecast,) = ax.plot([], [], color="#d62728", linewidth=1.6, label="holdout forecast")
        self.origin = ax.axvline(0, color="#999999", linestyle=":", linewidth=1)
        self.title = fig.text(0.5, 0.93, "", fontsize=9, ha="center")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper left")
        ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%Y-%m-%d"))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        fig.subplots_adjust(left=0.07, right=0.98, top=0.88, bottom=0.14)
        self.fig, self.ax = fig, ax

    def draw(self, title: str, ds: np.ndarray, actual: np.ndarray, forecast: np.ndarray) -> bytes:
        self.actual.set_data(ds, actual)
        self.forecast.set_data(ds[-len(forecast):], forecast)
        origin = ds[-len(forecast)]
        self.origin.set_xdata([origin, origin])
        self.ax.set_xticks(sorted({ds[0], origin, ds[-1]}))  # the span and the holdout's origin, dated
        self.title.set_text(title)
        self.ax.relim()
        self.ax.autoscale_view()
        return _svg(self.fig)


class _HistogramFigure:
    """Accuracy in 20 bins over [-0.5, 1] (lower values in the first bin), the gate's threshold dashed."""

    EDGES = np.linspace(-0.5, 1.0, 21)

    def __init__(self) -> None:
        fig = Figure(figsize=(4.2, 2.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        self.bars = ax.stairs(np.zeros(len(self.EDGES) - 1), self.EDGES, fill=True, color="#1f77b4")
        self.gate = ax.axvline(0, color="#d62728", linestyle="--", linewidth=1, label="gate")
        self.legend = ax.legend(fontsize=7)
        self.title = ax.set_title("", fontsize=9)
        ax.tick_params(labelsize=7)
        fig.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.14)
        self.fig, self.ax = fig, ax

    def draw(self, values: np.ndarray, threshold: float | None) -> bytes:
        counts, _ = np.histogram(np.clip(values, -0.5, 1.0), bins=self.EDGES)
        self.bars.set_data(counts, self.EDGES)
        shown = threshold is not None
        self.gate.set_visible(shown)
        self.legend.set_visible(shown)
        if shown:
            self.gate.set_xdata([threshold, threshold])
            self.legend.get_texts()[0].set_text(f"gate {threshold:.2f}")
        self.title.set_text(f"holdout accuracy (1 - WAPE), {len(values)} series")
        self.ax.relim()
        self.ax.autoscale_view()
        return _svg(self.fig)


@functools.cache
def _figure(kind: type):
    """The process' one figure of ``kind``, built on first use."""
    return kind()


def forecast_vs_actual_svg(title: str, holdout: dict | str) -> bytes:
    """Actuals of the last three horizons and the holdout forecast of one series."""
    data = json.loads(holdout) if isinstance(holdout, str) else holdout
    ds = np.array(data["ds"], dtype="datetime64[D]")
    actual = np.array([np.nan if v is None else v for v in data["actual"]], dtype=float)
    forecast = np.array(data["forecast"], dtype=float)
    with _lock:
        return _figure(_HoldoutFigure).draw(title, ds, actual, forecast)


def accuracy_histogram_svg(accuracies, threshold: float | None = None) -> bytes:
    values = np.array([a for a in accuracies if a is not None and not math.isnan(a)], dtype=float)
    with _lock:
        return _figure(_HistogramFigure).draw(values, threshold)


def as_markdown_image(svg: bytes, alt: str) -> str:
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg).decode()})"
