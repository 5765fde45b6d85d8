"""A daily cycle with one bad row in the source: the series is held back and the cycle goes on for the others.
The summary names the series and the problem, its store's check no_series_held_back is red (and only its store's),
its stored rows are kept, and once the source is fixed the next cycle takes its rows and the check is green."""

from __future__ import annotations

import datetime as dt
import sqlite3

import dagster as dg
import pytest
import yaml

from mm_assets.cli import main
from mm_assets.ingest.periods import raw_file
from mm_assets.lake import Lake
from mm_assets_tests.conftest import TINY_END, tiny_settings

pytestmark = pytest.mark.e2e

DAY = TINY_END.isoformat()
NEXT_DAY = (TINY_END + dt.timedelta(days=1)).isoformat()
WHERE = f"date LIKE '{DAY}%' AND store = 'S01' AND item = (SELECT min(item) FROM sales WHERE store = 'S01')"


def _check_status(instance: dg.DagsterInstance, store: str) -> bool | None:
    """Whether the newest evaluation of no_series_held_back for ``store`` passed."""
    key = dg.AssetCheckKey(dg.AssetKey("series_datasets"), "no_series_held_back")
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
    for record in records:  # newest first
        evaluation = record.event.dagster_event.event_specific_data if record.event else None
        if evaluation is not None and getattr(evaluation, "partition", None) == store:
            return bool(evaluation.passed)
    return None


def _earlier_origins(instance: dg.DagsterInstance, store: str) -> int:
    """batch_predictions' newest ``series_from_earlier_origin`` of ``store``."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey("batch_predictions"), asset_partitions=[store]), limit=1).records
    return records[0].asset_materialization.metadata["series_from_earlier_origin"].value


def _held_in_warehouse(settings) -> dict[str, tuple[str, str]]:
    """model_metrics' series with ``held_since``: series key → (that date, the problem)."""
    from mm_assets.warehouse import Warehouse

    rows = Warehouse(settings.storage.warehouse, ["store", "item"]).read_table("model_metrics")
    rows = rows[rows["held_since"].notna()]
    return {f"{r.store}/{r.item}": (str(r.held_since)[:10], r.held_problem) for r in rows.itertuples()}


def test_a_bad_row_holds_back_its_series_and_the_cycle_goes_on(tmp_path, monkeypatch, capsys):
    from mm_assets.demo.generator import DemoSpec, write_source

    settings = tiny_settings(tmp_path)
    write_source(DemoSpec(stores=2, items=4, days=120, end_date=TINY_END, seed=3), url=settings.source.url)
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(tmp_path / "settings.yaml"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert main(["cycle"]) == 0
    capsys.readouterr()
    con = sqlite3.connect(tmp_path / "source.db")
    item, stored = con.execute(f"SELECT item, sales FROM sales WHERE {WHERE}").fetchone()
    con.execute(f"UPDATE sales SET sales = NULL WHERE {WHERE}")
    con.commit()

    assert main(["cycle"]) == 0
    out = capsys.readouterr().out
    assert f"series held back                1  for bad rows in the source (S01/{item})" in out
    assert "past rows have no value" in out and "check no_series_held_back ERROR [S01]" in out
    assert "from a recent origin" not in out  # its stored rows reach the newest day: forecast from there
    raw = Lake(settings.storage.lake).read_parquet(raw_file(DAY))
    assert raw.loc[(raw["store"] == "S01") & (raw["item"] == item), "sales"].tolist() == [stored]
    with dg.DagsterInstance.get() as instance:
        assert _check_status(instance, "S01") is False and _check_status(instance, "S02") is True
    held = _held_in_warehouse(settings)  # BI sees it too, not a series like the others
    assert list(held) == [f"S01/{item}"] and held[f"S01/{item}"][0] == DAY
    assert "past rows have no value" in held[f"S01/{item}"][1]

    con.execute(f"UPDATE sales SET sales = {stored} + 5 WHERE {WHERE}")
    con.commit()
    assert main(["cycle"]) == 0
    out = capsys.readouterr().out
    assert "series held back" not in out and "no_series_held_back" not in out
    assert "from a recent origin" not in out
    raw = Lake(settings.storage.lake).read_parquet(raw_file(DAY))
    assert raw.loc[(raw["store"] == "S01") & (raw["item"] == item), "sales"].tolist() == [stored + 5]
    with dg.DagsterInstance.get() as instance:
        assert _check_status(instance, "S01") is True
    assert _held_in_warehouse(settings) == {}

    # a new day whose row of the series is bad: the others are forecast from it, the series from the day before,
    # and the summary counts it (no check warns of one period behind)
    con.execute(f"INSERT INTO sales SELECT date(date, '+1 day'), store, item, sales, price, promo FROM sales "
                f"WHERE date LIKE '{DAY}%'")
    con.execute(f"UPDATE sales SET sales = NULL WHERE {WHERE.replace(DAY, NEXT_DAY)}")
    con.commit()
    assert main(["cycle"]) == 0
    out = capsys.readouterr().out
    assert f"from a recent origin     {1:>8,}  series forecast from a period before the newest ({NEXT_DAY})" in out
    with dg.DagsterInstance.get() as instance:  # the UI shows it per store: the partitions' metadata
        assert _earlier_origins(instance, "S01") == 1 and _earlier_origins(instance, "S02") == 0
