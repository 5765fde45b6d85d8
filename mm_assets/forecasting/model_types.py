"""The names of the model types, in one place: settings validate against them, the forecasting code, the gate and
the reports compare with them. No imports beyond the standard library, so settings can use it.

``ModelType`` is a ``StrEnum``: its members are the strings stored in registries and settings files
(``ModelType.LINEAR == "linear"``), so stored rows and YAML keep plain strings.
"""

from __future__ import annotations

from enum import StrEnum


class ModelType(StrEnum):
    BASELINE = "baseline"  # best of naive, seasonal naive and moving averages per series, by its own backtest
    SEASONAL_NAIVE = "seasonal_naive"
    LINEAR = "linear"
    ETS = "ets"
    PROPHET = "prophet"
    LIGHTGBM = "lightgbm"


AUTO = "auto"  # not a model: per series, the best of model.auto_candidates by backtest
MODEL_TYPES = tuple(m.value for m in ModelType)
# model types that learn across the series of a batch (``forecasting.global_training``), not one series at a time
GLOBAL_TYPES = (ModelType.LIGHTGBM.value,)
# the model types ``auto`` may choose between (one model per series)
PER_SERIES_TYPES = tuple(m for m in MODEL_TYPES if m not in GLOBAL_TYPES)
# simple forecasts, not models a gate promotes: the baseline serves without promotion
BASELINE_TYPES = (ModelType.BASELINE.value, ModelType.SEASONAL_NAIVE.value)
# simplest first: ``auto`` prefers the earlier one of two candidates with the same score
SIMPLICITY_ORDER = ("baseline", "seasonal_naive", "ets", "linear", "prophet", "lightgbm")
