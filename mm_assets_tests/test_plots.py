"""The metadata plots: valid SVG that names what it shows, and figures reused across plots carry nothing over."""

import base64
import math
import warnings
import xml.etree.ElementTree as ET

import pandas as pd

from mm_assets.reporting.plots import accuracy_histogram_svg, as_markdown_image, forecast_vs_actual_svg

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _holdout(periods: int = 84, horizon: int = 28, scale: float = 1.0) -> dict:
    ds = [d.strftime("%Y-%m-%d") for d in pd.date_range("2024-01-01", periods=periods)]
    actual = [None if i % 17 == 0 else round(scale * (5 + math.sin(i / 3)), 4) for i in range(periods)]
    return {"ds": ds, "actual": actual, "forecast": [scale * 5.0] * horizon}


def test_the_holdout_plot_names_the_series_and_dates_the_span_and_the_origin():
    texts = _texts(forecast_vs_actual_svg("typical: S01/I003 (linear, accuracy 0.81)", _holdout()))
    assert "typical: S01/I003 (linear, accuracy 0.81)" in texts
    assert {"2024-01-01", "2024-02-26", "2024-03-24"} <= set(texts)  # first day, holdout origin, last day
    assert {"actual", "holdout forecast"} <= set(texts)


def test_an_id_in_chinese_is_written_as_text_without_a_warning_per_glyph():
    """The browser draws the text; matplotlib's own font has no such glyphs and warned once per character."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        texts = _texts(forecast_vs_actual_svg("typical: 店舗東京/商品 (linear, accuracy 0.81)", _holdout()))
    assert "typical: 店舗東京/商品 (linear, accuracy 0.81)" in texts


def test_a_reused_figure_carries_nothing_from_the_plot_before():
    first = forecast_vs_actual_svg("a", _holdout())
    other = forecast_vs_actual_svg("b", _holdout(periods=21, horizon=7, scale=1000.0))
    assert other != first
    assert "2024-01-21" in _texts(other) and "2024-02-26" not in _texts(other)
    assert forecast_vs_actual_svg("a", _holdout()) == first  # same plot, same bytes

    gated = accuracy_histogram_svg([0.2, 0.5, 0.9], 0.8)
    ungated = accuracy_histogram_svg([0.2, 0.5, 0.9])
    assert "gate 0.80" in _texts(gated)
    assert not any("gate" in t for t in _texts(ungated))
    assert accuracy_histogram_svg([0.2, 0.5, 0.9], 0.8) == gated


def test_the_histogram_counts_only_measured_series():
    texts = _texts(accuracy_histogram_svg([0.1, None, float("nan"), -7.0, 0.95], 0.7))
    assert "holdout accuracy (1 - WAPE), 3 series" in texts


def test_the_markdown_image_embeds_the_svg_bytes():
    svg = accuracy_histogram_svg([0.4, 0.6])
    markdown = as_markdown_image(svg, "accuracy distribution")
    prefix = "![accuracy distribution](data:image/svg+xml;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    assert base64.b64decode(markdown[len(prefix):-1]) == svg


def test_a_run_of_many_store_partitions_draws_the_plots_of_its_least_accurate_ones():
    import pandas as pd

    from mm_assets.reporting.training_summary import PLOTTED_PARTITIONS, partitions_to_plot, readable_metadata

    keys = [f"S{i:02d}" for i in range(PLOTTED_PARTITIONS + 5)]
    registered = pd.DataFrame({"partition_key": keys, "accuracy": [0.9 - 0.01 * i for i in range(len(keys))]})
    registered.loc[registered["partition_key"] == "S00", "accuracy"] = float("nan")  # no holdout: last
    assert partitions_to_plot(registered, keys) == set(keys[5:])  # the lowest accuracies
    assert partitions_to_plot(registered, keys[:PLOTTED_PARTITIONS]) == set(keys[:PLOTTED_PARTITIONS])
    part = pd.DataFrame({"series_key": ["S01/I1"], "model_type": ["lightgbm"], "accuracy": [0.8],
                         "holdout": [_holdout()], "status": ["trained"]})
    drawn = readable_metadata(part, part.iloc[0:0], 0.8)
    assert "forecast_vs_actual" in drawn and "accuracy_distribution" in drawn
    skipped = readable_metadata(part, part.iloc[0:0], 0.8, plots=False)
    assert "forecast_vs_actual" not in skipped and "lowest median holdout accuracy" in skipped["plots"]


def test_a_holdout_with_more_error_than_volume_is_titled_by_its_wape():
    """Accuracy is 1 - WAPE: a slow mover's holdout can fall below zero, which a plot title states as its WAPE."""
    import base64

    import pandas as pd

    from mm_assets.reporting.training_summary import accuracy_label, readable_metadata

    assert accuracy_label(0.62) == "accuracy 0.62" and accuracy_label(0.0) == "accuracy 0.00"
    assert accuracy_label(-0.35) == "WAPE 135%: more error than volume"
    part = pd.DataFrame({"series_key": ["S01/I1", "S01/I2"], "model_type": ["lightgbm"] * 2, "accuracy": [0.8, -0.35],
                         "holdout": [_holdout()] * 2, "status": ["trained"] * 2})
    markdown = str(readable_metadata(part, part.iloc[0:0], None)["forecast_vs_actual"])
    svgs = [base64.b64decode(chunk.split(")")[0]).decode() for chunk in markdown.split("base64,")[1:]]
    assert "accuracy 0.80" in svgs[0] and "WAPE 135%" in svgs[1] and "-0.35" not in svgs[1]
