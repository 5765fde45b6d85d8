"""model.params is checked per model type when the settings load: a misspelt option is refused with the closest
valid key, not ignored (the run would train with the defaults and say nothing)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from mm_assets.cli import main
from mm_assets.forecasting.lightgbm_options import DEFAULTS, model_options
from mm_assets.forecasting.model_types import OPTIONS, PER_SERIES_TYPES, options_of, params_problems
from mm_assets.forecasting.models import ETSForecaster, LinearForecaster
from mm_assets.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]

# the options docs/models.md lists for each model type (its table of model types), with a valid value each
DOCUMENTED = {
    "lightgbm": {"objective": "tweedie", "num_boost_round": 50, "learning_rate": 0.1, "num_leaves": 15,
                 "min_data_in_leaf": 5, "feature_fraction": 0.9, "bagging_fraction": 1.0, "bagging_freq": 0,
                 "lambda_l2": 0, "max_train_periods": 365, "max_train_rows": 100_000, "per_step_max_horizon": 4,
                 "lead_buckets": 2, "n_lags": 14, "series_category": True, "refit": "auto"},
    "linear": {"alpha": 2, "fourier_order": 2, "log_target": False, "bias_correction": 0.5, "trend_years": 1.5,
               "fourier_years": 2, "max_train_periods": 730},
    "ets": {"trend": None, "damped": False, "seasonal": "add", "log_target": True, "max_fit_periods": 400},
    "prophet": {"uncertainty_samples": 100, "seasonality_mode": "multiplicative", "changepoint_prior_scale": 0.1,
                "yearly_seasonality": 5, "weekly_seasonality": "auto", "growth": "flat", "interval_width": 0.9},
    "baseline": {},
    "seasonal_naive": {},
}


def _load(tmp_path, model: dict):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"model": model}))
    return load_settings(path, environ={})


def _refusal(tmp_path, model: dict) -> str:
    with pytest.raises(SettingsError) as info:
        _load(tmp_path, model)
    return str(info.value)


@pytest.mark.parametrize("model_type", sorted(DOCUMENTED))
def test_every_model_type_accepts_its_documented_options(tmp_path, model_type):
    params = DOCUMENTED[model_type]
    assert _load(tmp_path, {"type": model_type, "params": params}).model.params == params


def test_auto_accepts_the_options_of_its_candidates(tmp_path):
    params = {"linear": {"alpha": 2}, "ets": {"damped": False}, "baseline": {}}
    assert _load(tmp_path, {"type": "auto", "params": params}).model.params == params
    with_prophet = {"type": "auto", "auto_candidates": ["linear", "prophet"],
                    "params": {"prophet": DOCUMENTED["prophet"]}}
    assert _load(tmp_path, with_prophet).model.params["prophet"] == DOCUMENTED["prophet"]


@pytest.mark.parametrize("model_type, typo, meant", [
    ("lightgbm", "num_leavs", "num_leaves"), ("lightgbm", "objectiv", "objective"),
    ("linear", "alpa", "alpha"), ("ets", "dampd", "damped"), ("prophet", "uncertainty_sample", "uncertainty_samples"),
    ("prophet", "seasonality_mod", "seasonality_mode"),
])
def test_a_misspelt_option_is_refused_with_the_closest_key_and_the_valid_ones(tmp_path, model_type, typo, meant):
    message = _refusal(tmp_path, {"type": model_type, "params": {typo: 3}})
    assert f"model.params.{typo}: unknown option of model type {model_type}; did you mean {meant}" in message
    assert f"(valid keys for {model_type}: {', '.join(options_of(model_type))})" in message


def test_every_misspelt_option_is_named_at_once(tmp_path):
    message = _refusal(tmp_path, {"type": "lightgbm", "params": {"num_leavs": 3, "objectiv": "mape"}})
    assert "model.params.num_leavs: unknown option" in message and "did you mean num_leaves" in message
    assert "model.params.objectiv: unknown option" in message and "did you mean objective" in message


@pytest.mark.parametrize("model_type", ["baseline", "seasonal_naive"])
def test_a_model_without_options_refuses_any(tmp_path, model_type):
    message = _refusal(tmp_path, {"type": model_type, "params": {"alpha": 5}})
    assert f"model.params.alpha: model type {model_type} takes no options" in message


def test_auto_refuses_a_misspelt_candidate_option_and_options_nobody_uses(tmp_path):
    message = _refusal(tmp_path, {"type": "auto", "params": {"linear": {"alpa": 2}}})
    assert "model.params.linear.alpa: unknown option of model type linear; did you mean alpha?" in message
    message = _refusal(tmp_path, {"type": "auto", "params": {"lnear": {"alpha": 2}}})
    assert "model.params.lnear: not a model type auto can choose (did you mean linear?)" in message
    assert "valid keys for auto: baseline, seasonal_naive, linear, ets, prophet" in message
    message = _refusal(tmp_path, {"type": "auto", "params": {"alpha": 2}})  # options not per candidate
    assert "model.params.alpha: not a model type auto can choose" in message and "{linear: {alpha: 2}}" in message
    message = _refusal(tmp_path, {"type": "auto", "params": {"prophet": {"uncertainty_samples": 10}}})
    assert "model.params.prophet: prophet is not in model.auto_candidates (baseline, linear, ets)" in message
    message = _refusal(tmp_path, {"type": "auto", "params": {"linear": 2}})
    assert "model.params.linear 2 is not valid for auto: it must be a mapping of linear's options" in message


def test_per_candidate_options_under_a_single_model_type_say_they_are_for_auto(tmp_path):
    message = _refusal(tmp_path, {"type": "linear", "params": {"linear": {"alpha": 2}}})
    assert "model.params.linear: unknown option of model type linear" in message
    assert "are for model.type auto only" in message


@pytest.mark.parametrize("model_type, params, fragment", [
    ("lightgbm", {"num_leaves": 0}, "model.params.num_leaves 0 is not valid for lightgbm: it must be a whole number >= 1"),
    ("lightgbm", {"num_leaves": "many"}, "model.params.num_leaves 'many' is not valid for lightgbm"),
    ("lightgbm", {"num_boost_round": True}, "model.params.num_boost_round True is not valid for lightgbm"),
    ("lightgbm", {"learning_rate": "1e-2"}, "it must be a number > 0 (YAML reads 1e-2 as text: write 0.01)"),
    ("lightgbm", {"feature_fraction": 1.5}, "model.params.feature_fraction 1.5 is not valid for lightgbm"),
    ("lightgbm", {"series_category": "yes"}, "model.params.series_category 'yes' is not valid for lightgbm: it must "
                                             "be true or false"),
    ("lightgbm", {"objective": "huber"}, "model.params.objective 'huber' is unknown for lightgbm; choose one of"),
    ("linear", {"alpha": -1}, "model.params.alpha -1 is not valid for linear: it must be a number > 0 or null"),
    ("linear", {"max_train_periods": 0}, "model.params.max_train_periods 0 is not valid for linear"),
    ("ets", {"trend": "linear"}, "model.params.trend 'linear' is not valid for ets: it must be one of auto, null, false, add"),
    ("prophet", {"uncertainty_samples": -5}, "model.params.uncertainty_samples -5 is not valid for prophet"),
    ("prophet", {"seasonality_mode": "multiplicativ"}, "model.params.seasonality_mode 'multiplicativ' is not valid"),
])
def test_a_value_of_the_wrong_kind_is_refused_naming_what_it_must_be(tmp_path, model_type, params, fragment):
    assert fragment in _refusal(tmp_path, {"type": model_type, "params": params})


def test_the_model_options_of_lightgbm_check_values_too():
    with pytest.raises(ValueError, match="model.params.num_leaves 0 is not valid for lightgbm"):
        model_options({"num_leaves": 0})
    assert model_options({"num_leaves": 7})["num_leaves"] == 7


def _arguments(function) -> list[str]:
    return [name for name, p in inspect.signature(function).parameters.items()
            if name not in ("self", "cfg") and p.kind is not p.VAR_KEYWORD]


def test_the_option_lists_are_the_models_own_arguments():
    # a model that gains an option must be listed, or the settings would refuse it
    assert sorted(OPTIONS["linear"]) == sorted(_arguments(LinearForecaster.__init__))
    assert sorted(OPTIONS["ets"]) == sorted(_arguments(ETSForecaster.__init__))
    assert list(options_of("lightgbm")) == list(DEFAULTS)
    assert set(OPTIONS) | {"lightgbm"} == set(DOCUMENTED)
    assert set(PER_SERIES_TYPES) == set(OPTIONS)


def test_prophet_takes_every_argument_of_prophet():
    prophet = pytest.importorskip("prophet")
    assert sorted(OPTIONS["prophet"]) == sorted(_arguments(prophet.Prophet.__init__))


def test_the_documented_options_are_the_ones_checked():
    table = (ROOT / "docs" / "models.md").read_text()
    for model_type in ("lightgbm", "linear", "ets"):
        row = next(line for line in table.splitlines() if line.startswith(f"| `{model_type}`"))
        for key in options_of(model_type):
            assert f"`{key}`" in row, (model_type, key)


def test_the_shipped_settings_and_the_demo_defaults_validate():
    assert load_settings(ROOT / "mm_assets.yaml", environ={}).model.params == {}
    assert load_settings(None, environ={"MM_ASSETS_SETTINGS": str(ROOT / "mm_assets.yaml")}).model.type == "lightgbm"
    assert params_problems("lightgbm", {}) == []


@pytest.mark.parametrize("command", ["settings", "cycle"])
def test_the_cli_stops_with_exit_code_2_before_anything_runs(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MM_ASSETS_SETTINGS", raising=False)
    monkeypatch.setenv("MM_ASSETS__MODEL__PARAMS", "{num_leavs: 3, objectiv: mape}")
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert "model.params.num_leavs: unknown option of model type lightgbm; did you mean num_leaves" in err
    assert "model.params.objectiv" in err
    assert not (tmp_path / "data").exists()  # nothing ran


def test_linear_typo_through_the_environment_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MM_ASSETS_SETTINGS", raising=False)
    monkeypatch.setenv("MM_ASSETS__MODEL__TYPE", "linear")
    monkeypatch.setenv("MM_ASSETS__MODEL__PARAMS", "{alpa: 5}")
    assert main(["settings"]) == 2
    assert "model.params.alpa: unknown option of model type linear; did you mean alpha?" in capsys.readouterr().err


def test_the_settings_command_prints_the_derived_defaults_of_null_settings(tmp_path, monkeypatch, capsys):
    """`mm-assets settings` prints min_train_periods: null; a user comparing models must see that a per-series
    model asks for horizon + gap + 30 periods where lightgbm asks for 4 weeks."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MM_ASSETS_SETTINGS", raising=False)
    monkeypatch.setenv("MM_ASSETS__FREQUENCY", "W-MON")
    monkeypatch.setenv("MM_ASSETS__HORIZON", "3")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "# derived default season_length: 52" in out
    assert ("# derived default model.min_train_periods: 4 (model.type lightgbm; other types linear, ets, prophet, "
            "auto: 33)") in out
    assert "# derived default ingest.max_normal_gap: 2" in out
