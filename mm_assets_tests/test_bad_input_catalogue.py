"""The bad-input catalogue: one row per bad source row, bad setting or unreachable store, each tried with
``mm-assets cycle`` against a copy of a known-good project (after one full cycle). Every case must end with the
expected exit code and a message that names the problem (and the fix), and leave everything stored exactly as
it was: the three databases' rows and every lake file are hashed before and after.

The fault cases that need processes killed, files truncated or servers started are in ``test_faults.py``,
``test_dead_runs.py``, ``test_dev_ui.py`` and ``serving/test_server.py``; ``docs/operations.md`` lists them all.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mm_assets.cli import main
from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets_tests.conftest import TINY_END, tiny_settings

pytestmark = pytest.mark.e2e

DAY = TINY_END.isoformat()  # the newest period: a changed row there is read by the next cycle


@dataclass
class Case:
    name: str
    sql: str | None = None  # run on the source copy
    settings: dict = field(default_factory=dict)  # merged into the settings file
    exit_code: int = 1  # 1: a run failed, 2: refused before any run
    fragments: tuple[str, ...] = ()  # all must appear in the output (stdout + stderr)
    prepare: Callable[[Path], None] | None = None


def _row(set_clause: str) -> str:
    return (f"UPDATE sales SET {set_clause} WHERE rowid = (SELECT min(rowid) FROM sales WHERE date LIKE '{DAY}%' "
            "AND store = 'S01')")


def _blocked_lake(root: Path) -> None:
    (root / "blocker").write_text("a file where a folder should be")


# a bad value refuses the whole ingest with ingest.on_bad_rows: error; with hold (the default) it holds back its
# series and the cycle goes on, which ``test_held_series.py`` tries
REFUSE = {"ingest": {"on_bad_rows": "error"}}

CASES = [
    Case("negative target", _row("sales = -3"), settings=REFUSE, fragments=("'sales'", "negative", "clip in source.query")),
    Case("text target", _row("sales = 'twelve'"), settings=REFUSE, fragments=("'sales'", "not numbers", "CAST(")),
    Case("missing past target", _row("sales = NULL"), settings=REFUSE, fragments=("past rows have no value", "S01")),
    Case("infinite target", _row("sales = 9e999"), settings=REFUSE, fragments=("infinite or above", "unit or export error")),
    Case("absurd target", _row("sales = 1e300"), settings=REFUSE, fragments=("infinite or above",)),
    Case("slashed date", _row("date = '2026/06/30'"), exit_code=2,
         fragments=("date='2026/06/30'", "store='S01'", "store ISO dates")),
    Case("day-first date", _row("date = '30/06/2026'"), exit_code=2, fragments=("date='30/06/2026'", "ISO")),
    Case("garbage date", _row("date = 'yesterday'"), exit_code=2, fragments=("date='yesterday'",)),
    Case("date with a time zone", _row("date = date || 'T00:00:00Z'"), exit_code=2,
         fragments=("T00:00:00Z'", "without a time zone")),
    Case("date as a number", _row("date = 20260630"), exit_code=2,
         fragments=("columns.timestamp 'date'", "date=20260630", "not a number", "store ISO dates")),
    Case("date of no calendar day", _row("date = '2026-06-31'"), exit_code=2,
         fragments=("columns.timestamp 'date'", "date='2026-06-31'", "real calendar day")),
    Case("weekly frequency on daily data", settings={"frequency": "W-SUN"}, exit_code=2,
         fragments=("frequency W-SUN", "the source's dates are daily", "Set frequency: D", "nothing was ingested")),
    Case("sale dated 2099", _row("date = '2099-01-05'"), settings=REFUSE,
         fragments=("dated after today", "2099", "S01", "Fix the date in the source")),
    Case("id with a slash", _row("item = 'I/../x'"), settings=REFUSE, fragments=("'item'", "'I/../x'", "not allowed")),
    Case("empty id", _row("store = ''"), settings=REFUSE, fragments=("'store'", "is empty")),
    Case("store ending in a dot", _row("store = 'S01.'"),
         fragments=("partition.column", "'S01.' ends with '.'", "RTRIM(store, '.')")),
    Case("id of 450 bytes", _row("store = '" + "é" * 225 + "'"), settings=REFUSE, fragments=("'store'", "longer than 200 bytes")),
    Case("duplicate key",
         f"INSERT INTO sales SELECT * FROM sales WHERE rowid = (SELECT min(rowid) FROM sales WHERE date LIKE '{DAY}%')",
         settings=REFUSE, fragments=("share a (date, store, item) key", "ingest.on_duplicates")),
    Case("text regressor", _row("price = 'cheap'"), settings=REFUSE, fragments=("'price'", "not numbers")),
    Case("infinite regressor", _row("price = -9e999"), settings=REFUSE, fragments=("'price'", "infinite")),
    Case("regressor column dropped", "ALTER TABLE sales DROP COLUMN promo", exit_code=2,
         fragments=("'promo' (columns.regressors)", "Map the columns.* settings")),
    Case("empty table", "DELETE FROM sales", exit_code=2, fragments=("has no rows", "load data or fix source.*")),
    Case("missing table", settings={"source": {"table": "nope"}}, exit_code=2,
         fragments=("source.table 'nope' does not exist",)),
    Case("missing source file", settings={"source": {"url": "sqlite:///{root}/missing/dir/source.db"}}, exit_code=2,
         fragments=("there is no database file", "set source.url")),
    Case("unreachable source", settings={"source": {"url": "postgresql+psycopg2://u:pw@127.0.0.1:9/db"}},
         exit_code=2, fragments=("cannot read the source", "u:***@127.0.0.1:9")),
    Case("timestamp column misnamed", settings={"columns": {"timestamp": "day"}}, exit_code=2,
         fragments=("'day' (columns.timestamp)", "it has date, store")),
    Case("target column misnamed", settings={"columns": {"target": "units"}}, exit_code=2,
         fragments=("'units' (columns.target)",)),
    Case("columns in another case", settings={"columns": {"timestamp": "Date", "target": "SALES"}}, exit_code=2,
         fragments=("'Date' (columns.timestamp): did you mean 'date'?", "'SALES' (columns.target): did you mean")),
    Case("unknown setting", settings={"horizn": 3}, exit_code=2, fragments=("horizn", "did you mean horizon?")),
    Case("unknown setting in a section", settings={"model": {"typ": "linear"}}, exit_code=2,
         fragments=("model.typ", "in section model; did you mean type?")),
    Case("yes/no as a number", settings={"horizon": True}, exit_code=2,
         fragments=("horizon: true is a yes/no value, not a number",)),
    Case("accuracy floor as a percentage", settings={"promotion": {"min_accuracy": 80}}, exit_code=2,
         fragments=("promotion.min_accuracy", "for 80 % write 0.80")),
    Case("unknown time zone", settings={"schedule": {"timezone": "Mars/Olympus"}}, exit_code=2,
         fragments=("schedule.timezone", "'Mars/Olympus' is not an IANA time zone", "Europe/Amsterdam")),
    Case("cron in words", settings={"schedule": {"cron": "every day"}}, exit_code=2,
         fragments=("schedule.cron", "'every day' is not a cron schedule", "'0 3 * * *'")),
    Case("horizon zero", settings={"horizon": 0}, exit_code=2, fragments=("horizon",)),
    Case("unknown frequency", settings={"frequency": "fortnightly"}, exit_code=2, fragments=("frequency",)),
    Case("unknown weekly anchor", settings={"frequency": "W-FOO"}, exit_code=2, fragments=("'W-FOO'", "W-MON")),
    Case("unknown model type", settings={"model": {"type": "xgboost"}}, exit_code=2, fragments=("model.type", "lightgbm")),
    Case("unknown lightgbm objective", settings={"model": {"type": "lightgbm", "params": {"objective": "huber"}}},
         exit_code=2, fragments=("model.params.objective 'huber'", "choose one of")),
    Case("unreachable warehouse", settings={"storage": {"warehouse": "postgresql+psycopg2://w:pw@127.0.0.1:9/wh"}},
         exit_code=2, fragments=("storage.warehouse", "w:***@127.0.0.1:9", "reachable")),
    Case("warehouse URL without its driver", settings={"storage": {"warehouse": "postgresql://w:pw@db.example/wh"}},
         exit_code=2, fragments=("storage.warehouse: postgresql://w:***@db.example/wh",
                                 "name the driver in the URL: postgresql+psycopg2://")),
    Case("unwritable lake", settings={"storage": {"lake": "{root}/blocker/lake"}}, exit_code=2,
         fragments=("storage.lake", "cannot be written"), prepare=_blocked_lake),
    Case("start date after the data", settings={"ingest": {"start_date": "2030-01-01"}}, exit_code=2,
         fragments=("no raw_sales partition covers", "ingest.start_date")),
    Case("partitioning changed under the warehouse", settings={"partition": {"buckets": 2}}, exit_code=2,
         fragments=("partition.buckets = 2", "under partition 'S01'", "Put partition.buckets")),
    Case("an id column added under a written lake", settings={"columns": {"ids": ["store", "item", "channel"]}},
         exit_code=2, fragments=("was written under columns.ids = ['store', 'item']", "Put columns.ids back",
                                 "storage.production_registry")),
]


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _state(root: Path) -> str:
    """A hash of every row of the three databases and every lake file (the Dagster instance is not state)."""
    digest = hashlib.sha256()
    for name in ("registry.db", "production.db", "warehouse.db"):
        con = sqlite3.connect(root / name)
        for line in con.iterdump():
            if "_mm_assets_preflight" not in line:
                digest.update(line.encode())
        con.close()
    for path in sorted((root / "lake").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def good_project(tmp_path_factory):
    """A tiny project after one successful cycle: the known-good state every case starts from."""
    from mm_assets.demo.generator import DemoSpec, write_source

    root = tmp_path_factory.mktemp("good")
    settings = tiny_settings(root, storage={"production_registry": f"sqlite:///{root}/production.db"})
    write_source(DemoSpec(stores=2, items=3, days=120, end_date=TINY_END, seed=3), url=settings.source.url)
    with dg.instance_for_test() as instance:
        assert run_cycle(build_definitions(settings), instance, settings, log=lambda m: None).ok
    return root, settings


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_named_and_nothing_stored_changes(case, good_project, tmp_path, monkeypatch, capsys):
    good, good_settings = good_project
    root = tmp_path / "project"
    shutil.copytree(good, root)
    settings = yaml.safe_load(yaml.safe_dump(good_settings.model_dump(mode="json")))
    settings = yaml.safe_load(yaml.safe_dump(settings).replace(str(good), str(root)))
    overrides = yaml.safe_load(yaml.safe_dump(case.settings).replace("{root}", str(root)))
    (root / "settings.yaml").write_text(yaml.safe_dump(_merge(settings, overrides)))
    if case.prepare:
        case.prepare(root)
    if case.sql:
        con = sqlite3.connect(root / "source.db")
        con.execute(case.sql)
        con.commit()
        con.close()
    before = _state(root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(root / "settings.yaml"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    code = main(["cycle"])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert code == case.exit_code, output[-3000:]
    for fragment in case.fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output[-3000:]}"
    assert "Traceback" not in output
    assert "Stack Trace" not in output  # the reason once, not buried under Dagster's traces of the step and run
    assert _state(root) == before, "stored state changed"
