"""Tests of mm_assets.settings: defaults, the YAML file, MM_ASSETS_SETTINGS, MM_ASSETS__* overrides, validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mm_assets.settings import (
    DEFAULT_SETTINGS_FILE,
    SETTINGS_ENV,
    Settings,
    SettingsError,
    load_settings,
    settings_path,
)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Run every test in an empty folder so a ./mm_assets.yaml elsewhere is never picked up."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _write(path, text: str):
    path.write_text(text)
    return path


# ---- defaults ----------------------------------------------------------------------------------------


def test_defaults_without_file_or_environment():
    s = load_settings(environ={})
    assert s == Settings()
    assert s.frequency == "D"
    assert s.horizon == 28
    assert s.columns.ids == ["store", "item"]
    assert s.columns.timestamp == "date"
    assert s.columns.target == "sales"
    assert s.columns.regressors == ["price", "promo"]
    assert s.partition.column == "store"
    assert s.partition.buckets == 0
    assert s.model.type == "lightgbm"
    assert s.storage.lake == "data/lake"
    assert s.runner.kind == "local"
    assert s.ingest.on_duplicates == "error"


def test_no_settings_file_when_none_exists():
    assert settings_path(environ={}) is None


def test_season_defaults_daily_and_weekly():
    assert load_settings(environ={}).season == 7
    weekly = load_settings(environ={"MM_ASSETS__FREQUENCY": "W"})
    assert weekly.season == 52
    assert weekly.pandas_freq == "W-SUN"
    assert not weekly.is_daily
    explicit = load_settings(environ={"MM_ASSETS__FREQUENCY": "W", "MM_ASSETS__SEASON_LENGTH": "4"})
    assert explicit.season == 4


def test_min_train_periods_default_is_reach_plus_thirty():
    # per-series models: horizon + gap + 30 (at least 30 rows with real lags fit the model, not counting the
    # holdout); the global lightgbm (the default) needs only a week of days or a month of weeks
    linear = {"MM_ASSETS__MODEL__TYPE": "linear"}
    assert load_settings(environ=linear).min_train_periods == 28 + 30
    assert load_settings(environ={**linear, "MM_ASSETS__HORIZON": "14"}).min_train_periods == 14 + 30
    assert load_settings(environ={**linear, "MM_ASSETS__HORIZON": "10", "MM_ASSETS__GAP": "2"}).min_train_periods \
        == 12 + 30
    weekly = load_settings(environ={**linear, "MM_ASSETS__FREQUENCY": "W", "MM_ASSETS__HORIZON": "8"})
    assert weekly.min_train_periods == 8 + 30
    assert load_settings(environ={}).min_train_periods == 7
    assert load_settings(environ={"MM_ASSETS__FREQUENCY": "W-MON", "MM_ASSETS__HORIZON": "2",
                                  "MM_ASSETS__GAP": "1"}).min_train_periods == 4
    explicit = load_settings(environ={"MM_ASSETS__MODEL__MIN_TRAIN_PERIODS": "30"})
    assert explicit.min_train_periods == 30


def test_frequency_is_normalised_to_upper_case():
    s = load_settings(environ={"MM_ASSETS__FREQUENCY": "w-mon"})
    assert s.frequency == "W-MON"
    assert s.pandas_freq == "W-MON"
    assert s.season == 52


# ---- the YAML file -------------------------------------------------------------------------------------


def test_yaml_file_is_loaded_and_merged_with_defaults(tmp_path):
    path = _write(
        tmp_path / "s.yaml",
        """
horizon: 14
columns:
  ids: [region, sku]
  target: qty
partition:
  column: region
  buckets: 64
storage:
  lake: /mnt/lake
model:
  type: prophet
  params: {seasonality_mode: multiplicative}
""",
    )
    s = load_settings(path, environ={})
    assert s.horizon == 14
    assert s.columns.ids == ["region", "sku"]
    assert s.columns.target == "qty"
    assert s.columns.timestamp == "date"  # untouched default
    assert s.partition.column == "region"
    assert s.partition.buckets == 64
    assert s.storage.lake == "/mnt/lake"
    assert s.storage.registry == "sqlite:///data/registry.db"  # default kept inside an overridden section
    assert s.model.type == "prophet"
    assert s.model.params == {"seasonality_mode": "multiplicative"}


def test_default_file_in_working_directory_is_used(_isolated_cwd):
    _write(_isolated_cwd / DEFAULT_SETTINGS_FILE, "horizon: 7\n")
    assert settings_path(environ={}).name == DEFAULT_SETTINGS_FILE
    assert load_settings(environ={}).horizon == 7


def test_an_empty_settings_file_is_refused_and_an_empty_mapping_gives_defaults(tmp_path):
    """A file without a setting is a truncated or unwritten one, not a choice: it would run on the demo's
    defaults. ``{}`` says the defaults on purpose."""
    for text in ("", "# settings to come\n\n"):
        path = _write(tmp_path / "empty.yaml", text)
        with pytest.raises(SettingsError, match="the settings file is empty") as err:
            load_settings(path, environ={})
        assert str(path) in str(err.value) and "MM_ASSETS_SETTINGS" in str(err.value)
    assert load_settings(_write(tmp_path / "defaults.yaml", "{}\n"), environ={}) == Settings()


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path):
    path = _write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(SettingsError, match="expected a mapping"):
        load_settings(path, environ={})


def test_invalid_yaml_is_rejected_with_the_file_name(tmp_path):
    path = _write(tmp_path / "broken.yaml", "columns: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML") as err:
        load_settings(path, environ={})
    assert "broken.yaml" in str(err.value)


def test_unquoted_iso_date_in_yaml_is_accepted(tmp_path):
    # YAML reads 2024-01-01 as a date; ingest.start_date is documented as an ISO date, so it must load.
    path = _write(tmp_path / "s.yaml", "ingest:\n  start_date: 2024-01-01\n")
    assert load_settings(path, environ={}).ingest.start_date == "2024-01-01"


# ---- MM_ASSETS_SETTINGS --------------------------------------------------------------------------------


def test_settings_env_points_at_the_file(tmp_path, _isolated_cwd):
    _write(_isolated_cwd / DEFAULT_SETTINGS_FILE, "horizon: 7\n")  # must lose to the explicit file
    path = _write(tmp_path / "explicit.yaml", "horizon: 21\n")
    env = {SETTINGS_ENV: str(path)}
    assert settings_path(env) == path
    assert load_settings(environ=env).horizon == 21


def test_settings_env_with_missing_file_names_the_variable(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SettingsError) as err:
        load_settings(environ={SETTINGS_ENV: str(missing)})
    assert SETTINGS_ENV in str(err.value)
    assert "nope.yaml" in str(err.value)


def test_explicit_path_argument_wins_over_settings_env(tmp_path):
    a = _write(tmp_path / "a.yaml", "horizon: 3\n")
    b = _write(tmp_path / "b.yaml", "horizon: 5\n")
    assert load_settings(a, environ={SETTINGS_ENV: str(b)}).horizon == 3


# ---- MM_ASSETS__SECTION__FIELD overrides ---------------------------------------------------------------


def test_env_override_of_a_section_field():
    uri = "abfs://lake@account.dfs.core.windows.net/mm"
    s = load_settings(environ={"MM_ASSETS__STORAGE__LAKE": uri})
    assert s.storage.lake == uri
    assert s.storage.registry == "sqlite:///data/registry.db"


def test_env_override_of_a_top_level_int():
    s = load_settings(environ={"MM_ASSETS__HORIZON": "14"})
    assert s.horizon == 14
    assert isinstance(s.horizon, int)
    assert s.min_train_periods == 7  # lightgbm: a week of days (a per-series model's default follows the horizon)


def test_env_override_with_a_list_value():
    s = load_settings(
        environ={"MM_ASSETS__COLUMNS__IDS": "[a, b]", "MM_ASSETS__PARTITION__COLUMN": "a"}
    )
    assert s.columns.ids == ["a", "b"]
    assert s.partition.column == "a"


def test_env_override_beats_the_file_and_keeps_its_other_fields(tmp_path):
    path = _write(tmp_path / "s.yaml", "horizon: 10\nstorage:\n  lake: /from/file\n  registry: sqlite:///r.db\n")
    s = load_settings(path, environ={"MM_ASSETS__STORAGE__LAKE": "/from/env"})
    assert s.storage.lake == "/from/env"
    assert s.storage.registry == "sqlite:///r.db"
    assert s.horizon == 10


def test_unrelated_environment_variables_are_ignored():
    s = load_settings(environ={"MM_ASSETS_OTHER": "x", "HORIZON": "3", "PATH": "/bin"})
    assert s == Settings()


def test_env_override_of_an_iso_date():
    s = load_settings(environ={"MM_ASSETS__INGEST__START_DATE": "2024-01-01"})
    assert s.ingest.start_date == "2024-01-01"


def test_env_override_of_a_numeric_looking_string_field():
    s = load_settings(environ={"MM_ASSETS__SOURCE__TABLE": "2024"})
    assert s.source.table == "2024"


# ---- validation errors name the field ------------------------------------------------------------------


def test_unknown_key_is_rejected_and_named(tmp_path):
    path = _write(tmp_path / "s.yaml", "storage:\n  lakes: /typo\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    assert "storage.lakes" in str(err.value)
    assert "s.yaml" in str(err.value)


def test_unknown_env_key_is_rejected_and_named():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"MM_ASSETS__RUNNER__WORKERS": "4"})
    assert "runner.workers" in str(err.value)
    assert "environment" in str(err.value)


def test_bad_frequency_is_rejected_and_named():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"MM_ASSETS__FREQUENCY": "H"})
    msg = str(err.value)
    assert "frequency" in msg
    assert "'H'" in msg


@pytest.mark.parametrize("bad", ["M", "2D", "MS", "W-FOO", "W-MONDAY", "W-"])
def test_other_unsupported_frequencies(bad):
    with pytest.raises(SettingsError, match="frequency") as err:
        load_settings(environ={"MM_ASSETS__FREQUENCY": bad})
    assert "W-MON" in str(err.value)  # the fix: the forms that work


@pytest.mark.parametrize("freq,offset", [("W", 0), ("w-mon", 1), ("W-SAT", 6)])
def test_weekly_partitions_start_on_the_anchor_day(freq, offset):
    from mm_assets.assets.partitions import period_partitions

    settings = load_settings(environ={"MM_ASSETS__FREQUENCY": freq})
    assert period_partitions(settings).day_offset == offset


def test_partition_column_must_be_an_id_column():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"MM_ASSETS__PARTITION__COLUMN": "region"})
    msg = str(err.value)
    assert "partition.column" in msg
    assert "'region'" in msg


def test_duplicate_column_roles_are_rejected():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"MM_ASSETS__COLUMNS__TARGET": "price"})
    msg = str(err.value)
    assert "  - columns: each source column may have one role only; repeated: ['price']" in msg
    assert "columns: columns" not in msg  # the field is named once


@pytest.mark.parametrize("ids", ["[store, version]", "[Store, Origin, item]", "[series]"])
def test_an_id_named_like_a_warehouse_column_is_refused_with_the_rename(ids):
    """Every warehouse table keys its rows by the ids beside its own columns: an id named ``version`` (or
    ``origin``, ``ds``, ``series``...) passed the settings and the cycle then failed at its first write with
    SQLAlchemy's DuplicateColumnError; SQLite compares names without case, so ``Origin`` is taken as well."""
    from mm_assets.warehouse.warehouse import table_definitions

    with pytest.raises(SettingsError) as err:
        load_settings(environ={"MM_ASSETS__COLUMNS__IDS": ids})
    msg = str(err.value)
    taken = [n for n in ids.strip("[]").split(", ") if n not in ("store", "Store", "item")]
    assert f"columns.ids: {taken[0]!r} is also the name of a column the warehouse writes" in msg
    assert f"{taken[0]} AS {taken[0]}_id" in msg
    # the names the warehouse takes are its tables' own: defining them with those ids fails as the cycle did
    import sqlalchemy as sa

    with pytest.raises(sa.exc.DuplicateColumnError):
        table_definitions(["store", taken[0].lower()])
    assert load_settings(environ={"MM_ASSETS__COLUMNS__IDS": "[store, version_id]"}).columns.ids == [
        "store", "version_id"]


def test_empty_id_columns_are_rejected():
    with pytest.raises(SettingsError, match="columns") as err:
        load_settings(environ={"MM_ASSETS__COLUMNS__IDS": "[]"})
    assert "  - columns.ids: at least one id column is required" in str(err.value)


def test_out_of_range_values_are_rejected_and_named():
    with pytest.raises(SettingsError, match="horizon"):
        load_settings(environ={"MM_ASSETS__HORIZON": "0"})
    with pytest.raises(SettingsError, match="model.type"):
        load_settings(environ={"MM_ASSETS__MODEL__TYPE": "xgboost"})
    with pytest.raises(SettingsError, match="partition.buckets"):
        load_settings(environ={"MM_ASSETS__PARTITION__BUCKETS": "-1"})


@pytest.mark.parametrize("model", ["type: linear\n  params: {max_train_periods: 0}",
                                   "type: auto\n  params: {linear: {max_train_periods: 'four years'}}"])
def test_a_bad_linear_training_window_is_refused_when_the_settings_load(tmp_path, model):
    path = _write(tmp_path / "mm_assets.yaml", f"model:\n  {model}\n")
    with pytest.raises(SettingsError, match=r"model\.params\.(linear\.)?max_train_periods .* must be a whole number"):
        load_settings(path)
    good = _write(tmp_path / "ok.yaml", "model:\n  type: linear\n  params: {max_train_periods: 730}\n")
    assert load_settings(good).model.params == {"max_train_periods": 730}


def test_settings_are_frozen():
    s = load_settings(environ={})
    with pytest.raises(ValidationError, match="frozen"):
        s.horizon = 3  # type: ignore[misc]


def test_gap_defaults_to_zero_and_reaches_the_series_config():
    from mm_assets.forecasting.series import SeriesConfig

    assert Settings().gap == 0
    settings = Settings.model_validate({"gap": 3, "horizon": 6, "frequency": "W-MON",
                                        "model": {"type": "auto", "auto_origins": 4}})
    cfg = SeriesConfig.from_settings(settings)
    assert cfg.gap == 3 and cfg.auto_origins == 4 and cfg.auto_candidates == ("baseline", "linear", "ets")
    assert settings.min_train_periods == 9 + 30  # horizon + gap + 30


def test_negative_gap_is_rejected_naming_the_field_and_the_fix(tmp_path):
    path = _write(tmp_path / "s.yaml", "gap: -2\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    assert "gap" in str(err.value) and "use 0" in str(err.value)


def test_unknown_auto_candidate_is_rejected(tmp_path):
    path = _write(tmp_path / "s.yaml", "model:\n  type: auto\n  auto_candidates: [linear, arima]\n")
    with pytest.raises(SettingsError, match="auto_candidates"):
        load_settings(path, environ={})


def _setting_names(model, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    names: set[str] = set()
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= _setting_names(field.annotation, f"{prefix}{name}.")
        else:
            names.add(prefix + name)
    return names


def test_the_configuration_docs_are_generated_from_the_settings():
    from pathlib import Path

    from mm_assets.settings import Settings
    from mm_assets.settings_reference import rewrite, table

    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    assert rewrite(doc) == doc, "docs/configuration.md's settings table is stale: run `make docs`"
    generated = table()
    for name in _setting_names(Settings):  # every setting has its row (and a description: table() requires one)
        assert f"| `{name}` |" in generated, name


def test_the_documented_computed_defaults_are_the_computed_ones():
    from mm_assets.settings import Settings

    daily, weekly = Settings(), Settings(frequency="W-MON", horizon=4)
    assert (daily.season, weekly.season) == (7, 52)  # season_length: "7 daily, 52 weekly"
    assert (daily.max_normal_gap, weekly.max_normal_gap) == (3, 2)  # ingest.max_normal_gap: "3 daily, 2 weekly"
    linear = Settings(model={"type": "linear"}, horizon=14, gap=2)
    assert linear.min_train_periods == 14 + 2 + 30  # "horizon + gap + 30 (lightgbm: 7 daily, 4 weekly)"
    assert (daily.min_train_periods, Settings(frequency="W", horizon=4).min_train_periods) == (7, 4)


def test_every_lightgbm_option_is_documented_with_the_model_types():
    from pathlib import Path

    from mm_assets.forecasting.lightgbm_options import DEFAULTS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `lightgbm`") and "options" not in line)
    missing = [name for name in DEFAULTS if f"`{name}`" not in row]
    assert not missing, f"docs/models.md's lightgbm row does not name the options {missing}"


def test_a_bad_setting_from_the_environment_names_its_variable(tmp_path):
    """A typo in an MM_ASSETS__* variable is not in the settings file: the error names the variable."""
    settings_file = tmp_path / "s.yaml"
    settings_file.write_text("horizon: 7\n")
    with pytest.raises(SettingsError) as err:
        load_settings(settings_file, environ={"MM_ASSETS__STORAGE__LAKEE": "/tmp/x", "MM_ASSETS__HORIZON": "0"})
    text = str(err.value)
    assert "unknown setting 'lakee' in section storage; did you mean lake?" in text
    assert "(set by the environment variable MM_ASSETS__STORAGE__LAKEE)" in text
    assert "(set by the environment variable MM_ASSETS__HORIZON)" in text
    with pytest.raises(SettingsError) as err:  # the file's own mistake names no variable
        settings_file.write_text("horizn: 7\n")
        load_settings(settings_file, environ={"MM_ASSETS__HORIZON": "7"})
    assert "horizn" in str(err.value) and "environment variable" not in str(err.value)
