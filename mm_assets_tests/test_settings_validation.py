"""Settings that pydantic alone would accept or explain badly: a yes/no where a number is meant, a percentage
where a share is meant, an unknown key, a time zone or cron that only Dagster would refuse (when the schedule
is built, after `mm-assets settings` called them valid)."""

from __future__ import annotations

import random

import pytest

from mm_assets.settings import CRON_FIELDS, Settings, SettingsError, cron_problem, load_settings


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """An empty working folder: a ./mm_assets.yaml elsewhere is never read."""
    monkeypatch.chdir(tmp_path)


def _error(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as err:
        load_settings(path=None, environ=environ)
    return str(err.value)


# ---- numbers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, field", [("HORIZON", "horizon"), ("GAP", "gap"), ("SEASON_LENGTH", "season_length"),
                                        ("RUNNER__MAX_RETRIES", "runner.max_retries"),
                                        ("PROMOTION__MIN_ACCURACY", "promotion.min_accuracy"),
                                        ("MODEL__ENVELOPE_MULTIPLE", "model.envelope_multiple")])
@pytest.mark.parametrize("value", ["true", "no"])
def test_a_yes_no_value_is_not_a_number(key, field, value):
    message = _error({f"MM_ASSETS__{key}": value})
    assert f"{field}: {'true' if value == 'true' else 'false'} is a yes/no value, not a number" in message


def test_numbers_still_load_as_numbers():
    s = load_settings(path=None, environ={"MM_ASSETS__HORIZON": "14", "MM_ASSETS__PROMOTION__MIN_ACCURACY": "0.8"})
    assert (s.horizon, s.promotion.min_accuracy) == (14, 0.8)
    assert Settings(horizon=1).horizon == 1


@pytest.mark.parametrize("value, hint", [("80", "for 80 % write 0.80"), ("95.5", "for 95.5 % write 0.95"),
                                         ("1.2", "for 1.2 % write 0.01"), ("-0.1", "e.g. 0.80 for 80 %"),
                                         ("250", "e.g. 0.80 for 80 %")])
def test_min_accuracy_is_a_share_and_a_percentage_is_refused_with_the_share_meant(value, hint):
    message = _error({"MM_ASSETS__PROMOTION__MIN_ACCURACY": value})
    assert "promotion.min_accuracy" in message and "not a share between 0 and 1" in message
    assert hint in message


@pytest.mark.parametrize("value", [0, 0.8, 1])
def test_min_accuracy_accepts_its_range(value):
    assert Settings(promotion={"min_accuracy": value}).promotion.min_accuracy == value


# ---- unknown keys --------------------------------------------------------------------------------------------


def test_an_unknown_top_level_key_names_the_closest_key_and_every_valid_one():
    message = _error({"MM_ASSETS__HORIZN": "3"})
    line = next(line for line in message.splitlines() if line.strip().startswith("- horizn"))
    assert "unknown setting 'horizn' at the top level; did you mean horizon?" in line
    assert "valid keys at the top level: source, columns," in line and "schedule, operations" in line
    assert "Extra inputs" not in message


def test_an_unknown_key_in_a_section_names_its_section_and_the_closest_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("model:\n  typ: linear\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert "model.typ: unknown setting 'typ' in section model; did you mean type?" in message
    assert "valid keys in section model: type, params, auto_candidates" in message


def test_an_unknown_key_with_no_close_match_lists_the_valid_keys_only():
    message = _error({"MM_ASSETS__SCHEDULE__WHENEVER": "1"})
    assert "unknown setting 'whenever' in section schedule (valid keys in section schedule: cron, timezone, " \
           "partitions_per_run, rows_per_run)" in message
    assert "did you mean" not in message


def test_every_invalid_field_is_listed_at_once():
    message = _error({"MM_ASSETS__HORIZN": "3", "MM_ASSETS__SCHEDULE__TIMEZONE": "Mars/Olympus",
                      "MM_ASSETS__PROMOTION__MIN_ACCURACY": "80"})
    assert "horizn" in message and "schedule.timezone" in message and "promotion.min_accuracy" in message


# ---- schedule ------------------------------------------------------------------------------------------------


def test_an_unknown_time_zone_is_refused_with_examples_and_close_names():
    message = _error({"MM_ASSETS__SCHEDULE__TIMEZONE": "Mars/Olympus"})
    assert "schedule.timezone: 'Mars/Olympus' is not an IANA time zone" in message
    assert "e.g. UTC, Europe/Amsterdam" in message
    typo = _error({"MM_ASSETS__SCHEDULE__TIMEZONE": "Europe/Amsterdm"})
    assert "did you mean Europe/Amsterdam" in typo


@pytest.mark.parametrize("zone", ["UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata"])
def test_real_time_zones_load(zone):
    assert load_settings(path=None, environ={"MM_ASSETS__SCHEDULE__TIMEZONE": zone}).schedule.timezone == zone


@pytest.mark.parametrize("cron, problem", [
    ("every day", "it has 2 fields, cron has 5"),
    ("0 3 * * * *", "it has 6 fields"),
    ("0 25 * * *", "hour '25' is not valid (0-23"),
    ("0 3 * 13 *", "month '13' is not valid (1-12 or jan-dec"),
    ("0 3 * * funday", "day of week 'funday' is not valid"),
    ("0 3 31 2 *", "February has no 30th or 31st"),
    ("@reboot", "the aliases are @hourly, @daily"),
])
def test_a_bad_cron_is_refused_naming_the_problem_and_an_example(cron, problem):
    message = _error({"MM_ASSETS__SCHEDULE__CRON": cron})
    assert f"schedule.cron: {cron!r} is not a cron schedule: {problem}" in message
    assert "e.g. '0 3 * * *' (03:00 every day)" in message


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/15 6-18 * * mon-fri", "30 2 1,15 * *", "@daily", "0 4 L * *",
                                  "0 5 * * 1#2", "0 0 29 2 *"])
def test_good_crons_load(cron):
    assert load_settings(path=None, environ={"MM_ASSETS__SCHEDULE__CRON": cron}).schedule.cron == cron


# every form a field may take, valid or not, in Dagster's grammar
CRON_ATOMS = ["*", "?", "L", "l", "5", "05", "0", "7", "12", "13", "23", "24", "29", "30", "31", "59", "60", "2",
              "50-10", "5-1", "1-5", "2-2", "0-0", "1-L", "L-2", "*/15", "*/0", "*/100", "5/15", "1-5/2", "1-5/0",
              "?/2", "L/2", "5#3", "1#5", "1#6", "1#0", "L5", "L7", "5L", "LW", "15W", "jan", "JAN", "feb",
              "feb-jan", "mon", "sun-sat", "mon#2", "Lmon", "W", "#", "5#", "-1", "1-", "/5", "*/", "1--3", "1,,2",
              "1,*", "*,1", "1,15", "1.5", "+1", "0x1", "H"]


def _dagster_accepts(cron: str) -> bool:
    from dagster._utils.schedules import is_valid_cron_string

    try:
        return bool(is_valid_cron_string(cron))
    except Exception:  # noqa: BLE001 - what Dagster cannot parse it refuses
        return False


def test_the_cron_check_agrees_with_dagsters_own():
    # every atom in every field, then random expressions: what the settings accept Dagster must accept (else the
    # code location fails on a schedule called valid), and what they refuse Dagster refuses, but for croniter's
    # reading of 0-0 as a range in a field that starts at 1 (refused here as out of range)
    rng = random.Random(7)
    singles = [" ".join(atom if i == f else "*" for i in range(len(CRON_FIELDS)))
               for f in range(len(CRON_FIELDS)) for atom in CRON_ATOMS]
    mixes = [" ".join(rng.choice(CRON_ATOMS) if rng.random() < 0.4 else rng.choice(["*", "0", "3", "2", "31", "mon"])
                      for _ in range(rng.choice([4, 5, 5, 5, 6]))) for _ in range(3000)]
    accepted_wrongly, refused_wrongly = [], []
    for cron in singles + mixes + ["@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@reboot", ""]:
        ours, theirs = cron_problem(cron) is None, _dagster_accepts(cron)
        if ours and not theirs:
            accepted_wrongly.append(cron)
        if theirs and not ours and "0-0" not in cron.split()[2:4]:
            refused_wrongly.append(cron)
    assert not accepted_wrongly, accepted_wrongly[:10]
    assert not refused_wrongly, refused_wrongly[:10]
    assert sum(cron_problem(c) is None for c in mixes) > 50  # the random expressions are not all invalid


def test_a_date_that_is_no_calendar_day_names_its_field_in_the_file_and_the_environment(tmp_path):
    """YAML reads an unquoted 2026-02-30 as a date and failed with "day is out of range for month" and a traceback."""
    path = tmp_path / "mm_assets.yaml"
    path.write_text("ingest:\n  start_date: 2026-02-30\n")
    with pytest.raises(SettingsError, match=r"ingest\.start_date: '2026-02-30' is not an ISO date"):
        load_settings(path, environ={})
    with pytest.raises(SettingsError, match=r"ingest\.start_date: '2026-02-30' is not an ISO date"):
        load_settings(None, environ={"MM_ASSETS__INGEST__START_DATE": "2026-02-30"})
    path.write_text("ingest:\n  start_date: 2026-02-28\n")  # a real day still loads from the unquoted date
    assert load_settings(path, environ={}).ingest.start_date == "2026-02-28"


# ---- database URLs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, says", [
    ("postgresql://mm:s3cret@db.example/wh", "postgresql://mm:***@db.example/wh: its driver cannot be loaded"),
    ("postgres://mm:s3cret@db.example/wh", "postgres://mm:***@db.example/wh: its driver cannot be loaded"),
    ("s3cret-not-a-url", "is not a database URL"),
])
@pytest.mark.parametrize("field", ["storage.warehouse", "storage.registry", "storage.production_registry",
                                   "source.url"])
def test_a_database_url_that_cannot_work_is_refused_when_the_settings_are_read(field, url, says):
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3, which is not installed; postgres:// is no dialect at all.
    Before, `mm-assets settings` passed them and the first run that opened the database failed."""
    message = _error({"MM_ASSETS__" + field.upper().replace(".", "__"): url})
    line = next(line for line in message.splitlines() if field in line)
    assert says in line and ("name the driver in the URL: postgresql+psycopg2://..." in line
                             or "write one such as" in line)
    assert "s3cret" not in message.replace("s3cret-not-a-url", "")


def test_a_data_file_given_as_the_source_url_is_told_how_to_load_it():
    """A CSV or Parquet path as source.url: the source is a database table, so the message says how to load the
    file into SQLite and what to set."""
    message = _error({"MM_ASSETS__SOURCE__URL": "/data/sales.csv"})
    line = next(line for line in message.splitlines() if "source.url" in line)
    assert "is not a database URL" in line and "load it into SQLite first" in line and "to_sql" in line
    assert "load it into SQLite" not in _error({"MM_ASSETS__SOURCE__URL": "not-a-url"})


def test_a_database_url_naming_its_driver_is_not_opened_when_the_settings_are_read():
    """A driver named in the URL is loaded where the database is used (pyodbc for Synapse is not installed
    wherever settings are read); a SQLite file is not created by reading the settings."""
    s = load_settings(path=None, environ={"MM_ASSETS__STORAGE__WAREHOUSE": "mssql+pyodbc://u:p@syn.example/wh",
                                          "MM_ASSETS__STORAGE__REGISTRY": "sqlite:///nowhere/reg.db"})
    assert s.storage.warehouse.startswith("mssql+pyodbc://")
    import os
    assert not os.path.exists("nowhere")


# ---- what the file or the environment says twice, or not as meant -------------------------------------------


def test_a_key_written_twice_in_the_file_is_refused_naming_both_lines(tmp_path):
    """YAML readers keep the last of two silently: the value read first in the file would not be in force."""
    file = tmp_path / "s.yaml"
    file.write_text("horizon: 3\ngap: 0\nmodel:\n  type: linear\nhorizon: 5\n")
    with pytest.raises(SettingsError) as err:
        load_settings(file, environ={})
    assert "the key 'horizon' is written twice (lines 1 and 5): keep one" in str(err.value)
    file.write_text("model:\n  type: linear\n  params: {alpha: 1, alpha: 2}\n")
    with pytest.raises(SettingsError, match="the key 'alpha' is written twice"):
        load_settings(file, environ={})


@pytest.mark.parametrize("field", ["ids", "regressors"])
def test_one_name_where_a_list_is_meant_gets_the_list_form(field):
    message = _error({f"MM_ASSETS__COLUMNS__{field.upper()}": "store, item"})
    assert f"columns.{field}: 'store, item' is text, and this is a list of column names: write [store, item]" in message


@pytest.mark.parametrize("variable, meant", [("MM_ASSETS_HORIZON", "MM_ASSETS__HORIZON"),
                                             ("MM_ASSETS_STORAGE__LAKE", "MM_ASSETS__STORAGE__LAKE")])
def test_a_setting_variable_with_one_underscore_is_refused_not_ignored(variable, meant):
    message = _error({variable: "3"})
    assert f"the environment variable {variable} is not read" in message and f"rename it {meant}" in message


def test_the_projects_other_variables_are_not_taken_for_misspelt_settings():
    load_settings(path=None, environ={"MM_ASSETS_SERVING_FALLBACK": "none", "MM_ASSETS_INJECT_FAILURES": "S1/I1",
                                      "MM_ASSETS_SERVING_HOST": "0.0.0.0"})


# ---- forecast retention --------------------------------------------------------------------------------------


def test_a_forecast_retention_shorter_than_what_accuracy_reads_back_is_refused_with_the_minimum():
    """Rows forecast_accuracy still judges (origins of the newest 2 x horizon + accuracy_window periods) must not be
    deleted under it: the minimum is named, in days of the frequency."""
    message = _error({"MM_ASSETS__STORAGE__FORECAST_RETENTION_DAYS": "60"})
    assert "storage.forecast_retention_days 60" in message and "84 days" in message, message  # 2 x 28 + 28 daily
    weekly = _error({"MM_ASSETS__STORAGE__FORECAST_RETENTION_DAYS": "100", "MM_ASSETS__FREQUENCY": "W-MON",
                     "MM_ASSETS__HORIZON": "2", "MM_ASSETS__OPERATIONS__ACCURACY_WINDOW": "12"})
    assert "set it to at least 112" in weekly, weekly  # (2 x 2 + 12) weeks
    ok = load_settings(path=None, environ={"MM_ASSETS__STORAGE__FORECAST_RETENTION_DAYS": "84"})
    assert ok.storage.forecast_retention_days == 84
    assert Settings().storage.forecast_retention_days is None  # off by default: every row is kept
