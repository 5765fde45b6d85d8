"""The demo generator's plan default (`mm-assets generate-demo`)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.cli import _holdout_words, _plan_days, main, write_rows
from mm_assets.settings import Settings


def test_plan_covers_the_forecast_window_gap_and_horizon():
    daily = Settings.model_validate({"horizon": 14, "gap": 2})
    weekly = Settings.model_validate({"horizon": 4, "gap": 1, "frequency": "W-MON"})
    assert _plan_days(daily, dt.date(2026, 11, 23)) == 16
    assert _plan_days(weekly, dt.date(2026, 11, 24)) == 35
    assert _plan_days(daily, dt.date(2026, 11, 1)) == 16  # rows without sales after the last sale are the plan


def test_the_summary_says_what_the_holdout_is():
    weekly = Settings.model_validate({"horizon": 2, "gap": 1, "frequency": "W-MON"})
    assert "newest 8 weeks, 4 windows of 2" in _holdout_words(weekly)
    three = weekly.model_copy(update={"promotion": weekly.promotion.model_copy(update={"holdout_periods": 5})})
    assert "newest 6 weeks, 3 windows of 2" in _holdout_words(three)
    assert _holdout_words(Settings.model_validate({"horizon": 28})) == "the holdout: each series' newest 28 days"


def test_generate_demo_writes_a_price_and_promotion_plan_without_sales(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    settings = tmp_path / "s.yaml"
    settings.write_text(f"source: {{url: 'sqlite:///{tmp_path}/src.db'}}\nhorizon: 5\ngap: 2\n")
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(settings))
    yesterday = dt.date.today() - dt.timedelta(days=1)
    assert main(["generate-demo", "--stores", "1", "--items", "3", "--days", "40",
                 "--end-date", yesterday.isoformat()]) == 0
    assert "plan for 7 days" in capsys.readouterr().out
    rows = pd.read_sql("SELECT * FROM sales", sa.create_engine(f"sqlite:///{tmp_path}/src.db"))
    rows["date"] = pd.to_datetime(rows["date"])
    plan = rows[rows["sales"].isna()]
    assert len(plan) == 3 * 7 and (plan["date"] > pd.Timestamp(yesterday)).all()
    assert plan["price"].notna().all() and set(plan["promo"]) <= {0, 1}


def test_scoring_metadata_counts_periods_with_and_without_a_plan():
    from mm_assets.reporting.partition_figures import plan_periods

    part = pd.DataFrame({"series_key": ["S/I1"] * 3 + ["S/I2"] * 3, "planned_periods": [2, 2, 2, 0, 0, 0]})
    assert plan_periods(part) == 2
    assert plan_periods(part.iloc[0:0]) == 0


def _settings_file(tmp_path, monkeypatch, text: str):
    """A settings file with ``text``, in effect for the CLI, run from ``tmp_path`` with its own Dagster home."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    settings = tmp_path / "s.yaml"
    settings.write_text(text)
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(settings))
    return settings


def test_source_errors_are_one_line_with_exit_2_and_create_nothing(tmp_path, monkeypatch, capsys):
    settings = _settings_file(tmp_path, monkeypatch, f"source: {{url: 'sqlite:///{tmp_path}/missing/dir/source.db'}}\n")
    assert main(["cycle"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: source.url") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()
    # a date that is not ISO in a text column: named, never a narrowed ingest
    db = tmp_path / "src.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE sales (date TEXT, store TEXT, item TEXT, sales REAL, price REAL, promo INT)"))
        conn.execute(sa.text("INSERT INTO sales VALUES ('2025-01-01', 'S1', 'I1', 1, 1, 0), "
                             "('2025/03/03', 'S1', 'I1', 2, 1, 0)"))
    settings.write_text(f"source: {{url: 'sqlite:///{db}'}}\n")
    assert main(["cycle"]) == 2
    err = capsys.readouterr().err
    assert "date='2025/03/03'" in err and "store ISO dates" in err and "Traceback" not in err


def test_an_unknown_backtest_model_is_refused_before_anything_is_ingested(tmp_path, monkeypatch, capsys):
    _settings_file(tmp_path, monkeypatch,
                   f"source: {{url: 'sqlite:///{tmp_path}/source.db'}}\nstorage: {{lake: '{tmp_path}/lake'}}\n")
    assert main(["backtest", "--origins", "2", "--model", "linear, foo"]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and "['foo'] are unknown" in err and "lightgbm" in err
    assert not (tmp_path / "lake").exists() and not (tmp_path / "home").exists()


def test_backtest_origins_every_less_than_one_period_is_refused_before_anything_is_ingested(
        tmp_path, monkeypatch, capsys):
    _settings_file(tmp_path, monkeypatch,
                   f"source: {{url: 'sqlite:///{tmp_path}/source.db'}}\nstorage: {{lake: '{tmp_path}/lake'}}\n")
    assert main(["backtest", "--origins", "2", "--every", "0"]) == 2
    err = capsys.readouterr().err
    assert "--every must be >= 1" in err and "horizon" in err
    assert not (tmp_path / "lake").exists() and not (tmp_path / "home").exists()


def test_backtest_horizon_and_gap_out_of_range_name_the_option_without_pydantics_dump(tmp_path, monkeypatch, capsys):
    _settings_file(tmp_path, monkeypatch,
                   f"source: {{url: 'sqlite:///{tmp_path}/source.db'}}\nstorage: {{lake: '{tmp_path}/lake'}}\n")
    assert main(["backtest", "--horizon", "0"]) == 2
    err = capsys.readouterr().err
    assert "error: --horizon 0: Input should be greater than or equal to 1" in err
    assert "pydantic" not in err and "validation error" not in err
    assert main(["backtest", "--gap", "-1"]) == 2
    assert "error: --gap -1: gap -1 is out of range: use 0" in capsys.readouterr().err
    assert not (tmp_path / "lake").exists() and not (tmp_path / "home").exists()


@pytest.mark.parametrize("share", ["80", "-1", "1.5"])
def test_promotion_report_refuses_a_min_share_outside_0_to_1(tmp_path, monkeypatch, capsys, share):
    """80 meant as 80 % failed every pipeline ("required 8000.0%"); -1 passed every one."""
    _settings_file(tmp_path, monkeypatch, f"storage: {{registry: 'sqlite:///{tmp_path}/registry.db'}}\n")
    assert main(["promotion-report", "--min-share", share]) == 2
    assert f"--min-share {float(share):g}: a share of the series from 0 to 1" in capsys.readouterr().err


def test_promotion_report_passes_registries_without_series_and_says_so(tmp_path, monkeypatch, capsys):
    """A first deployment's pipeline runs the gate before any model exists: nothing to judge is no failure, said."""
    _settings_file(tmp_path, monkeypatch, f"storage: {{registry: 'sqlite:///{tmp_path}/registry.db', "
                   f"production_registry: 'sqlite:///{tmp_path}/production.db'}}\n")
    assert main(["promotion-report"]) == 0
    out = capsys.readouterr().out
    assert "required 50.0%" in out and "gate: PASS (no series in the registries yet" in out


@pytest.mark.parametrize("command", [["promotion-report"], ["failures"]])
def test_a_report_whose_database_is_down_names_it_in_one_line_with_exit_2(tmp_path, monkeypatch, capsys, command):
    """Not a traceback, and not the gate's exit 1: a pipeline must tell an outage from a gate that failed."""
    _settings_file(tmp_path, monkeypatch, "storage: {registry: 'postgresql+psycopg2://mm:s3cret@127.0.0.1:9/registry"
                   f"?connect_timeout=2', production_registry: 'sqlite:///{tmp_path}/production.db'}}\n")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: storage.registry postgresql+psycopg2://mm:***@127.0.0.1:9/registry?connect_timeout=2 cannot be read:")
    assert len(err.strip().splitlines()) == 1 and "s3cret" not in err and "reachable" in err


def test_failures_lists_the_recorded_failures_newest_first_and_filters_by_store(tmp_path, monkeypatch, capsys):
    """The checks that fail on failed series point an operator at `mm-assets failures`."""
    import pandas as pd

    from mm_assets.registry import ModelRegistry

    _settings_file(tmp_path, monkeypatch, f"storage: {{registry: 'sqlite:///{tmp_path}/registry.db'}}\n")
    assert main(["failures"]) == 0
    assert "no series failures recorded" in capsys.readouterr().out
    registry = ModelRegistry(f"sqlite:///{tmp_path}/registry.db")
    for run, store in (("run-one", "S1"), ("run-two", "S2")):
        registry.record_failures(pd.DataFrame({
            "series_key": [f"{store}/I1"], "partition_key": [store], "ids": ["[]"], "error_type": ["ValueError"],
            "error_message": [f"boom in {store}\nTraceback line"], "attempts": [3]}), run, "train")
    assert main(["failures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 series failures recorded")
    assert "S2/I1" in lines[1] and "ValueError: boom in S2" in lines[1] and "Traceback" not in lines[1]
    assert "S1/I1" in lines[2]
    assert main(["failures", "--store", "S1"]) == 0
    out = capsys.readouterr().out
    assert "S1/I1" in out and "S2/I1" not in out
    # S1/I1 trained on the next run: its failure is shown as over
    from mm_assets_tests.registry.test_model_registry import model_rows

    registry.register(model_rows([("S1", "I1")]), "run-three")
    assert main(["failures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 series failures recorded, newest first (2 shown, 1 of them trained since" in lines[0]
    assert "S1/I1" in lines[2] and "[resolved: trained " in lines[2] and "resolved" not in lines[1]
    # series the ingest holds back are not failures, but an operator looking here is told of them
    from mm_assets.ingest.held import HELD_FILE, OUTSTANDING_COLUMNS
    from mm_assets.lake import Lake

    problem = "column 'price': 'n/a' is not a number. Fix the value in the source"
    held = pd.DataFrame([{"series": "S3/I9", "store": "S3", "bad_rows": 2, "first_date": "2025-01-06",
                          "kind": "'price' not a number", "problem": problem, "held_from": "2025-01-06",
                          "held_to": "2025-01-13"}], columns=list(OUTSTANDING_COLUMNS))
    Lake(str(tmp_path / "data" / "lake")).write_parquet(held, *HELD_FILE)
    assert main(["failures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("and 1 series held back by the ingest for bad rows in the source (their rows of "
                                "2025-01-06 .. 2025-01-13 are not in the lake")
    assert lines[-1] == f"  S3/I9  2 bad rows from 2025-01-06: {problem}"  # each held series says why
    assert main(["failures", "--store", "S1"]) == 0
    assert "held back" not in capsys.readouterr().out
    # a store that is no registered partition is not given a false all-clear
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["failures", "--store", "NOPE"]) == 2
    captured = capsys.readouterr()
    assert "no series failures" not in captured.out
    assert "error: not registered store partitions: NOPE (registered: )" in captured.err


def test_a_new_dagster_home_gets_the_projects_instance_settings_and_a_users_own_stays(tmp_path, monkeypatch, capsys):
    from mm_assets import cli

    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = cli._instance()
    assert (home / "dagster.yaml").read_text() == cli.PROJECT_INSTANCE_YAML.read_text()
    assert "QueuedRunCoordinator" in (home / "dagster.yaml").read_text() and "new, with the project's" in (
        capsys.readouterr().out)
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"  # Dagster's default would not queue
    instance.dispose()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # the user's own: left as it is
    cli._instance().dispose()
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n" and not capsys.readouterr().out


def test_settings_and_the_summary_hide_every_password(tmp_path, monkeypatch, capsys):
    """What the command line prints ends up in logs, pipelines and tickets."""
    from mm_assets.cli import where_lines

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("horizon: 7\n")
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(tmp_path / "s.yaml"))
    monkeypatch.setenv("MM_ASSETS__SOURCE__URL", "postgresql+psycopg2://reader:pw-source@db/sales")
    for name in ("REGISTRY", "PRODUCTION_REGISTRY", "WAREHOUSE"):
        monkeypatch.setenv(f"MM_ASSETS__STORAGE__{name}", f"postgresql+psycopg2://app:pw-{name.lower()}@db/x")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "pw-" not in out and out.count("app:***@db/x") == 3 and "reader:***@db/sales" in out
    # the digest a run of these settings is tagged with, to compare with a run's tag in the UI
    from mm_assets.assets.settings_hold import settings_digest
    from mm_assets.settings import load_settings
    assert f"# digest {settings_digest(load_settings())}:" in out
    settings = Settings.model_validate({"storage": {"warehouse": "postgresql+psycopg2://app:pw-wh@db/x",
                                                   "lake": "abfs://lake@acct.dfs.core.windows.net/mm?sig=pw-sas"}})
    lines = "\n".join(where_lines(settings, str(tmp_path / "home")))
    assert "pw-" not in lines and "app:***@db/x" in lines and "sig=***" in lines


def test_the_summary_names_the_command_that_opens_the_ui_on_its_own_instance(tmp_path, monkeypatch):
    from mm_assets.cli import ui_command

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MM_ASSETS_SETTINGS", raising=False)
    (tmp_path / "Makefile").write_text("ui:\n")
    assert ui_command(str(tmp_path / ".dagster_home")) == "make ui"  # the project's instance, which make ui opens
    other = ui_command("/srv/dagster")  # make ui would open the project's instance, not this one
    assert other.startswith("DAGSTER_HOME=/srv/dagster ")
    assert " -m mm_assets.dev_ui -m mm_assets.definitions " in other  # the wrapper that SIGTERM stops
    monkeypatch.setenv("MM_ASSETS_SETTINGS", "mine.yaml")  # a new shell would load other settings: named
    assert ui_command(str(tmp_path / ".dagster_home")) == f"MM_ASSETS_SETTINGS={tmp_path / 'mine.yaml'} make ui"
    assert ui_command("/srv/dagster").startswith(f"MM_ASSETS_SETTINGS={tmp_path / 'mine.yaml'} DAGSTER_HOME=")


def test_an_instance_that_cannot_be_opened_is_one_line_naming_its_file(tmp_path, monkeypatch, capsys):
    """Before: Dagster's trace of 140-184 lines that named neither the file nor what to fix."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("run_storage:\n  module: no_such_module_here\n  class: RunStorage\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (tmp_path / "s.yaml").write_text("horizon: 7\n")
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(tmp_path / "s.yaml"))
    assert main(["cycle"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: the Dagster instance of {home / 'dagster.yaml'} cannot be "
                                               "used (") and "no_such_module_here" in err[0]


def test_output_cut_short_by_its_reader_is_not_an_error(tmp_path):
    """``mm-assets settings | head -1``: the reader leaves after a line; no traceback, exit 0."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "from mm_assets.cli import main; raise SystemExit(main(['settings']))"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout.readline().startswith(b"# from")
    proc.stdout.close()  # the reader is gone; what the command still prints meets a broken pipe
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err.decode()


def test_a_cycle_of_no_recent_periods_is_refused_naming_the_option(tmp_path, monkeypatch, capsys):
    _settings_file(tmp_path, monkeypatch, "{}\n")
    assert main(["cycle", "--recent", "0"]) == 2
    assert "--recent must be a whole number of periods, 1 or more" in capsys.readouterr().err


def test_a_share_is_rounded_to_a_tenth_never_to_all_or_none_it_is_not():
    from mm_assets.cli import tenth_of_percent

    assert tenth_of_percent(14_114, 15_200) == 92.9 and tenth_of_percent(13_755, 15_200) == 90.5  # not cut to .8, .4
    assert tenth_of_percent(1_999, 2_000) == 99.9 and tenth_of_percent(1, 10_000) == 0.1
    assert tenth_of_percent(5, 5) == 100.0 and tenth_of_percent(0, 5) == 0.0 and tenth_of_percent(0, 0) == 0.0


@pytest.mark.parametrize("name, reader", [("rows.csv", pd.read_csv), ("ROWS.CSV", pd.read_csv),
                                          ("rows.csv.gz", pd.read_csv), ("rows.parquet", pd.read_parquet),
                                          ("rows", pd.read_parquet)])
def test_backtest_rows_are_written_in_the_format_their_file_name_says(tmp_path, name, reader):
    """``backtest --out results.csv`` wrote Parquet under a .csv name: noise in a spreadsheet."""
    frame = pd.DataFrame({"store": ["S1", "S2"], "forecast": [1.5, 2.0], "actual": [1.0, None]})
    write_rows(frame, tmp_path / name)
    back = reader(tmp_path / name)
    pd.testing.assert_frame_equal(back, frame)


def test_a_rule_count_names_its_first_series_and_says_when_there_are_more():
    from mm_assets.cli import _for_example

    assert _for_example(["T/4", "T/5", "T/7"], 3) == "  T/4, T/5, T/7"
    assert _for_example(["T/4", "T/5", "T/7"], 40) == "  e.g. T/4, T/5, T/7"
    assert _for_example(None, 2) == "" and _for_example([], 0) == ""


def test_a_store_behind_for_rows_a_check_left_out_is_not_blamed_on_its_feed():
    """A store whose newest sales were implausible (left out by values_plausible) is forecast from an older
    origin: the summary said only "no new rows in the source", and the operator looked at a feed that was fine."""
    from mm_assets.cli import _behind_words
    from mm_assets.job_runs import FailedCheck

    behind = {"BOSTON_SHAWS": "2016-01-25", "CLOSED": "2015-12-28"}
    checks = [FailedCheck("values_plausible", "WARN", "BOSTON_SHAWS", "5 targets more than ..."),
              FailedCheck("gaps_within_series", "WARN", "CLOSED", "...")]
    words = _behind_words(behind, checks)
    assert "BOSTON_SHAWS (last origin 2016-01-25; values_plausible)" in words and "CLOSED (last origin 2015-12-28):" in words
    assert "left out or held back by it" in words
    assert "left out" not in _behind_words({"CLOSED": "2015-12-28"}, checks)


def test_promotion_report_reads_a_warehouse_of_an_older_version_without_changing_it(tmp_path, monkeypatch, capsys):
    """Run after an upgrade, before the next cycle migrates the warehouse, the report migrated it itself (ALTER
    TABLE, a new table and view), and on a read-only connection it failed with exit 1, a gate's failure code."""
    import hashlib
    import sqlite3

    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:  # a table of an older version: fewer columns, no retired_partitions, no view
        conn.execute("CREATE TABLE model_metrics (partition_key TEXT, store TEXT, item TEXT, version INTEGER)")
    before = hashlib.md5(db.read_bytes()).hexdigest()
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    monkeypatch.chdir(tmp_path / ".")
    _settings_file(tmp_path, monkeypatch, f"storage: {{registry: 'sqlite:///{tmp_path}/registry.db', "
                   f"production_registry: 'sqlite:///{tmp_path}/production.db', warehouse: '{url}'}}\n")
    assert main(["promotion-report"]) == 0
    assert "gate: PASS" in capsys.readouterr().out
    assert hashlib.md5(db.read_bytes()).hexdigest() == before
    assert not (tmp_path / "file:").exists()  # the URI form is a file, not a folder named after it


def test_a_store_named_with_a_quote_is_a_valid_sql_literal_in_the_retire_hint():
    """``retire-partition "O'HARE"`` suggested WHERE store <> 'O'HARE', which no database accepts."""
    import sqlite3

    from mm_assets.cli import _sql_text

    literal = _sql_text("O'HARE_ÉPICERIE")
    assert literal == "'O''HARE_ÉPICERIE'"
    with sqlite3.connect(":memory:") as conn:
        assert conn.execute(f"SELECT {literal}").fetchone() == ("O'HARE_ÉPICERIE",)
