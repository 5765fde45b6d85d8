"""raw_sales' check ``source_is_current``: a feed that stopped is said in the runs the schedule starts, not only
in ``mm-assets cycle``'s summary (empty periods ingest green, and the models retrain on the same data)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from mm_assets.automation import range_tags
from mm_assets.definitions import build_definitions
from mm_assets_tests.conftest import TINY_END, tiny_settings

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("end, current", [(TINY_END, False), (dt.date.today() - dt.timedelta(days=1), True)],
                         ids=["stopped", "current"])
def test_the_schedules_ingest_warns_when_the_source_stopped(tmp_path, end, current):
    from mm_assets.demo.generator import DemoSpec, write_source

    settings = tiny_settings(tmp_path)
    write_source(DemoSpec(stores=2, items=2, days=30, end_date=end, seed=7), url=settings.source.url)
    defs = build_definitions(settings)
    newest = str((pd.Timestamp.now().normalize() - pd.Timedelta(days=1)).date())  # the schedule's period
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=range_tags([newest, newest]))
    assert result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "source_is_current")
    assert check.check_name == "source_is_current" and check.passed is current
    assert check.severity == dg.AssetCheckSeverity.WARN
    if not current:
        assert check.description.startswith(f"the source's newest sale is {end.isoformat()}, ")
        assert "check the feed" in check.description
        assert check.metadata["newest_sale"].value == end.isoformat()


def test_a_sale_typed_a_year_late_is_held_and_the_rest_of_its_store_stays_forecast(tmp_path, monkeypatch):
    """One row of an extract dated a year after the rest, before today: it was the source's newest sale, so the
    cycle read every period up to it and its store's other series went dormant (no row for a quarter before their
    store's newest). Now its series is held as a mistyped date, the periods end at the rest's newest sale, and
    every other series is forecast from there; no period after it is ingested."""
    import sqlalchemy as sa

    from mm_assets.cycle import run_cycle
    from mm_assets.demo.generator import DemoSpec, write_source
    from mm_assets.warehouse import Warehouse

    monkeypatch.chdir(tmp_path)
    settings = tiny_settings(tmp_path)
    write_source(DemoSpec(stores=2, items=3, days=150, end_date=TINY_END, seed=5), url=settings.source.url)
    engine = sa.create_engine(settings.source.url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE sales SET date = :late WHERE store = 'S01' AND item = 'I002' "
                             "AND date LIKE :day"), {"late": "2026-11-20", "day": f"{TINY_END}%"})  # before today
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        report = run_cycle(build_definitions(settings), instance, settings, log=lines.append)
    assert report.ok, "\n".join(lines)
    assert report.held.count == 1 and report.held.series == ["S01/I002"], report.held
    assert "a mistyped date?" in report.held.problem
    assert any(line.startswith("warning: sales dated from 2026-11-20") for line in lines), lines
    # the periods end at the rest's newest sale, not the day before the mistyped one (months of empty periods)
    from mm_assets.ingest.periods import RAW_FOLDER
    from mm_assets.lake import Lake
    assert Lake(settings.storage.lake).list(*RAW_FOLDER, suffix=".parquet")[-1] == f"{TINY_END}.parquet"
    current = Warehouse(settings.storage.warehouse, ["store", "item"]).current_forecasts()
    origins = current.groupby(["store", "item"])["origin"].max().map(lambda v: str(pd.Timestamp(v).date()))
    others = origins.drop(("S01", "I002"), errors="ignore")
    assert len(others) == 5 and (others == str(TINY_END)).all(), origins


def test_a_sale_dated_after_today_adds_no_periods_and_empty_ones_after_the_source_are_removed(tmp_path, monkeypatch):
    """One sale of an extract dated after today: its series was held, but it was the source's last date, so the
    cycle ingested every period up to today's as an empty file and a raw_sales partition; once the row was fixed,
    every cycle read them all again and kept them. Now the periods end at the source's newest sale, and empty
    period files after it (as an earlier cycle left them) are removed once, with a line saying so."""
    import sqlalchemy as sa

    from mm_assets.cycle import run_cycle
    from mm_assets.demo.generator import DemoSpec, write_source
    from mm_assets.ingest.periods import RAW_FOLDER
    from mm_assets.lake import Lake

    monkeypatch.chdir(tmp_path)
    settings = tiny_settings(tmp_path)
    write_source(DemoSpec(stores=2, items=3, days=150, end_date=TINY_END, seed=5), url=settings.source.url)
    late = str((pd.Timestamp.now() + pd.Timedelta(days=400)).date())  # after today, whenever the test runs
    engine = sa.create_engine(settings.source.url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO sales SELECT :late, store, item, sales, price, promo FROM sales "
                             "WHERE store = 'S01' AND item = 'I002' AND date LIKE :day"),
                     {"late": late, "day": f"{TINY_END}%"})
    lake = Lake(settings.storage.lake)

    def stored() -> list[str]:
        return [n.removesuffix(".parquet") for n in lake.list(*RAW_FOLDER, suffix=".parquet")]

    defs = build_definitions(settings)
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        report = run_cycle(defs, instance, settings, log=lines.append)
        assert report.ok, "\n".join(lines)
        assert report.held.count == 1 and report.held.series == ["S01/I002"], report.held
        assert stored()[-1] == str(TINY_END), stored()[-3:]
        assert max(instance.get_materialized_partitions(dg.AssetKey("raw_sales"))) == str(TINY_END)
        with engine.begin() as conn:  # the source fixed
            conn.execute(sa.text("DELETE FROM sales WHERE date = :late"), {"late": late})
        after = [str(d.date()) for d in pd.date_range(TINY_END + dt.timedelta(days=1), periods=5)]
        for key in after:  # what a cycle before this fix left: empty files up to the mistyped date
            lake.write_parquet(lake.read_parquet(*RAW_FOLDER, f"{TINY_END}.parquet").iloc[0:0],
                               *RAW_FOLDER, f"{key}.parquet")
        lines.clear()
        assert run_cycle(defs, instance, settings, log=lines.append).ok, "\n".join(lines)
        assert any(line.startswith(f"note: removed 5 empty period files after the source's newest period "
                                   f"{TINY_END} ({after[0]} .. {after[-1]})") for line in lines), lines
        assert not any(line.startswith("note: the lake holds") for line in lines), lines
        assert stored()[-1] == str(TINY_END)
