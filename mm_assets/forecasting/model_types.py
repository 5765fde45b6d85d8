"""The names of the model types, in one place: settings validate against them, the forecasting code, the gate and
the reports compare with them; and the options each type reads from ``model.params`` (``params_problems``). No
imports beyond the standard library, so settings can use it.

``ModelType`` is a ``StrEnum``: its members are the strings stored in registries and settings files
(``ModelType.LINEAR == "linear"``), so stored rows and YAML keep plain strings.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any


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


# ---- the options of each model type (``model.params``), checked when the settings load ----
# Why: every model takes its options as keyword arguments with defaults, so a misspelt one (num_leavs) would be
# ignored and the run would train with the defaults, saying nothing. Settings therefore refuse a key the model type
# does not read, naming the closest valid one, and a value of the wrong kind where that is cheap to tell.
# Each option maps to (accepts(value), what it must be). lightgbm's are in ``lightgbm_options`` (its ``DEFAULTS``
# are its keys). The tests check these names against the models' own arguments (and Prophet's).

Check = tuple[Callable[[Any], bool], str]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(low: int, optional: bool = False) -> Check:
    """A whole number >= ``low`` (or null when ``optional``: the default)."""
    what = f"a whole number >= {low}" + (" or null (the default)" if optional else "")
    return (lambda v: (optional and v is None) or (_is_int(v) and v >= low)), what


def number(low: float, high: float | None = None, above: bool = False, optional: bool = False) -> Check:
    """A number >= ``low`` (> ``low`` when ``above``), at most ``high``, or null when ``optional``."""
    what = f"a number {'>' if above else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "") + (
        " or null (the default)" if optional else "")

    def accepts(v: Any) -> bool:
        if optional and v is None:
            return True
        return _is_number(v) and (v > low if above else v >= low) and (high is None or v <= high)

    return accepts, what


def flag() -> Check:
    return (lambda v: isinstance(v, bool)), "true or false"


def choice(*values: Any) -> Check:
    shown = ", ".join("null" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in values)
    return (lambda v: any(v is c if c is None or isinstance(c, bool) else (isinstance(v, str) and v == c)
                          for c in values)), f"one of {shown}"


def anything() -> Check:
    return (lambda v: True), ""


# a Prophet seasonality: true / false / auto, or the number of its Fourier terms
_SEASONALITY: Check = ((lambda v: isinstance(v, bool) or v == "auto" or (_is_int(v) and v >= 1)),
                       "true, false, auto or a number of Fourier terms >= 1")

OPTIONS: dict[str, dict[str, Check]] = {
    ModelType.BASELINE.value: {},
    ModelType.SEASONAL_NAIVE.value: {},
    ModelType.LINEAR.value: {
        "alpha": number(0, above=True, optional=True),
        "fourier_order": whole(0, optional=True),
        "log_target": flag(),
        "bias_correction": number(0, 1),
        "trend_years": number(0),
        "fourier_years": number(0),
        "max_train_periods": whole(2, optional=True),
    },
    ModelType.ETS.value: {
        "trend": choice(AUTO, None, False, "add", "mul", "additive", "multiplicative"),
        "damped": flag(),
        "seasonal": choice(AUTO, None, False, "add", "mul", "additive", "multiplicative"),
        "log_target": flag(),
        "max_fit_periods": whole(2, optional=True),
    },
    # any argument of Prophet(...) (prophet 1.1 .. 1.5); uncertainty_samples defaults to 0 here (no sampling)
    ModelType.PROPHET.value: {
        "growth": choice("linear", "logistic", "flat"),
        "changepoints": anything(),
        "n_changepoints": whole(0),
        "changepoint_range": number(0, 1, above=True),
        "yearly_seasonality": _SEASONALITY,
        "weekly_seasonality": _SEASONALITY,
        "daily_seasonality": _SEASONALITY,
        "holidays": anything(),
        "seasonality_mode": choice("additive", "multiplicative"),
        "seasonality_prior_scale": number(0, above=True),
        "holidays_prior_scale": number(0, above=True),
        "changepoint_prior_scale": number(0, above=True),
        "mcmc_samples": whole(0),
        "interval_width": number(0, 1, above=True),
        "uncertainty_samples": whole(0),
        "stan_backend": anything(),
        "scaling": choice("absmax", "minmax"),
        "holidays_mode": choice(None, "additive", "multiplicative"),
    },
}


def options_of(model_type: str) -> dict[str, Check]:
    """The options ``model_type`` reads from ``model.params``, each with its check."""
    if model_type == ModelType.LIGHTGBM:
        from mm_assets.forecasting.lightgbm_options import CHECKS, DEFAULTS

        return {key: CHECKS.get(key, anything()) for key in DEFAULTS}
    return OPTIONS[model_type]


def _unknown(field: str, key: str, valid: list[str], model_type: str) -> str:
    close = difflib.get_close_matches(key.lower(), valid, n=3, cutoff=0.6)
    meant = f"; did you mean {' or '.join(close)}?" if close else ""
    if not valid:
        return f"{field}: model type {model_type} takes no options; remove it (model.params must be empty)"
    return f"{field}: unknown option of model type {model_type}{meant} (valid keys for {model_type}: {', '.join(valid)})"


def option_problems(model_type: str, params: dict[str, Any], field: str = "model.params") -> list[str]:
    """What is wrong with the options ``params`` of ``model_type``, one line each, every line starting with the
    field it is about (``model.params.<key>``); empty when nothing is."""
    options = options_of(model_type)
    problems = []
    for key, value in params.items():
        name = f"{field}.{key}"
        if key not in options:
            problem = _unknown(name, str(key), list(options), model_type)
            if key in MODEL_TYPES and field == "model.params":
                problem += (f"; options per candidate ({{{key}: {{...}}}}) are for model.type auto only: for "
                            f"model.type {model_type} write its options themselves")
            problems.append(problem)
            continue
        accepts, what = options[key]
        if not accepts(value):
            hint = ""
            if isinstance(value, str) and what.startswith("a number"):
                with contextlib.suppress(ValueError):  # PyYAML reads 1e-2 (no decimal point) as text
                    hint = f" (YAML reads {value} as text: write {float(value)!r})"
            problems.append(f"{name} {value!r} is not valid for {model_type}: it must be {what}{hint}")
    return problems


def params_problems(model_type: str, params: dict[str, Any], auto_candidates: Sequence[str] = ()) -> list[str]:
    """What is wrong with ``model.params`` for ``model.type`` (for ``auto``: a mapping of options per candidate,
    ``{linear: {alpha: 2}}``, each of a type in ``auto_candidates``), one line each naming its field."""
    if model_type != AUTO:
        return option_problems(model_type, params)
    problems = []
    for key, options in params.items():
        name = f"model.params.{key}"
        if key not in PER_SERIES_TYPES:
            close = difflib.get_close_matches(str(key).lower(), list(PER_SERIES_TYPES), n=3, cutoff=0.6)
            meant = f" (did you mean {' or '.join(close)}?)" if close else ""
            problems.append(
                f"{name}: not a model type auto can choose{meant}; model.type auto takes options per candidate, e.g. "
                f"{{linear: {{alpha: 2}}}} (valid keys for auto: {', '.join(PER_SERIES_TYPES)})")
        elif key not in auto_candidates:
            problems.append(f"{name}: {key} is not in model.auto_candidates ({', '.join(auto_candidates)}), so "
                            "these options would never be used; add it to auto_candidates or remove them")
        elif not isinstance(options, dict):
            problems.append(f"{name} {options!r} is not valid for auto: it must be a mapping of {key}'s options, "
                            f"e.g. {{{key}: {{...}}}} (valid keys for {key}: {', '.join(options_of(key)) or 'none'})")
        else:
            problems.extend(option_problems(key, options, field=name))
    return problems
