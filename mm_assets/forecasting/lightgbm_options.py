"""The options of the ``lightgbm`` model and their defaults, apart from the model so that settings validation
can check them without importing it."""

from __future__ import annotations

from typing import Any

from mm_assets.forecasting.model_types import Check, flag, number, option_problems, whole

OBJECTIVES = ("auto", "l2", "l1", "tweedie", "mape")
# "auto": tweedie when at least this share of a fit's series are intermittent (baseline.intermittent_rows), else l2
AUTO_TWEEDIE_SHARE = 0.5
DEFAULTS: dict[str, Any] = {
    "objective": "auto",
    "num_boost_round": 200,
    "learning_rate": 0.06,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    # leaves that are ridge fits on the numeric features of their branch instead of constants (LightGBM's
    # ``linear_tree``, with ``linear_lambda`` the ridge's penalty): a point more accurate on price-driven weekly
    # data for a tenth more training time, but intermittent series learn their level factor in sample, where
    # linear leaves fit closer, and are forecast low. "auto": under l2 when no series of the fit is intermittent;
    # true / false: always / never (docs/models.md). Never under l1 or mape: LightGBM fits no linear leaves there
    "linear_tree": "auto",
    "linear_lambda": 10.0,
    "max_train_periods": None,  # newest periods per series a fit learns from (default: 2 years)
    "max_train_rows": 500_000,  # rows per booster; a larger panel is sampled (time and memory follow this)
    "per_step_max_horizon": 4,  # horizons up to this many periods get one booster per step (docs/models.md) ...
    "lead_buckets": 4,  # ... longer ones one per bucket of lead times (each reads lags from its last lead on)
    "n_lags": None,  # lags read at lead .. lead + n_lags - 1 (default: a week of days, a month of weeks)
    # the series itself as a categorical feature (besides each id column): no better on real data, and at 10,000
    # series its splits cost more than the rest of a boosting round
    "series_category": False,
    # refit on every period after the holdout fit: always (true), never (false: the model the gate judged on its
    # holdout is the one served), or "auto": only when the holdout fit learnt from every row it had (a booster
    # that had to sample max_train_rows out of more would learn from another sample of the same size, with the
    # newest horizon + gap periods a few per cent of it; its features read those periods at forecast time anyway)
    "refit": "auto",
    # a positive regressor is a price: its features (log, against its quarter's mean and highest, change) may only
    # lower the forecast as the price rises (LightGBM's monotone constraints, ``advanced`` method), so a planner's
    # what-if never answers a higher price with more sales; false for a positive regressor that is not a price
    "monotone_price": True,
    # a flag or share regressor's own value moves the forecast only the way its training rows show (a promotion
    # up, a closure down; free when they do not say), so a planner's share of 0.75 never forecasts below 0.5
    "monotone_promotions": True,
}


# the options whose values are choices, checked by ``model_options`` itself (the settings check them there too)
CHOICE_OPTIONS = ("objective", "refit", "linear_tree")
# what each other option must be (``model_types.option_problems``)
CHECKS: dict[str, Check] = {
    "num_boost_round": whole(1),
    "learning_rate": number(0, above=True),
    "num_leaves": whole(1),
    "min_data_in_leaf": whole(0),
    "feature_fraction": number(0, 1, above=True),
    "bagging_fraction": number(0, 1, above=True),
    "bagging_freq": whole(0),
    "lambda_l2": number(0),
    "linear_lambda": number(0),
    "max_train_periods": whole(1, optional=True),
    "max_train_rows": whole(1, optional=True),
    "per_step_max_horizon": whole(0),
    "lead_buckets": whole(1),
    "n_lags": whole(1, optional=True),
    "series_category": flag(),
    "monotone_price": flag(),
    "monotone_promotions": flag(),
}


def model_options(params: dict[str, Any] | None) -> dict[str, Any]:
    """``DEFAULTS`` updated with ``params``; an unknown objective, refit or linear_tree is an error that names the
    choices, an option of the wrong kind (``num_leaves: many``) one that says what it must be. Unknown keys are
    refused by the settings (``model_types.params_problems``)."""
    options = {**DEFAULTS, **(params or {})}
    if options["objective"] not in OBJECTIVES:
        raise ValueError(f"model.params.objective {options['objective']!r} is unknown for lightgbm; choose one of "
                         f"{', '.join(OBJECTIVES)}")
    for name in ("refit", "linear_tree"):
        if not (options[name] == "auto" or isinstance(options[name], bool)):
            raise ValueError(f"model.params.{name} {options[name]!r} is unknown for lightgbm; choose auto, true or "
                             "false")
    problems = option_problems("lightgbm", {k: v for k, v in (params or {}).items() if k in CHECKS})
    if problems:
        raise ValueError("\n".join(problems))
    return options
