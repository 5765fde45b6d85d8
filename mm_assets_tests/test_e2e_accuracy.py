"""End to end: forecasts published on one day are judged by the next cycle, when their actuals have arrived."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.forecasting.series import SeriesConfig
from mm_assets.ingest.datasets import dataset_file
from mm_assets.lake import Lake
from mm_assets.reporting.realized import realized_points
from mm_assets.warehouse import Warehouse
from mm_assets_tests.conftest import TINY_END, tiny_settings

pytestmark = pytest.mark.e2e


def test_published_forecasts_are_judged_against_actuals_and_the_baseline(tmp_path, monkeypatch):
    from mm_assets.demo.generator import DemoSpec, write_source

    monkeypatch.chdir(tmp_path)
    settings = tiny_settings(tmp_path)
    later = TINY_END + dt.timedelta(days=14)
    write_source(DemoSpec(stores=2, items=3, days=150, end_date=later, seed=5), url=settings.source.url)
    engine = sa.create_engine(settings.source.url)
    week_one = f"{TINY_END + dt.timedelta(days=7)} 23:59"
    with engine.begin() as conn:  # hold back the last two weeks: they arrive after the first and second cycles
        held = pd.read_sql(sa.text("SELECT * FROM sales WHERE date > :d AND date <= :e"), conn,
                           params={"d": f"{TINY_END} 23:59", "e": week_one})
        held_two = pd.read_sql(sa.text("SELECT * FROM sales WHERE date > :e"), conn, params={"e": week_one})
        conn.execute(sa.text("DELETE FROM sales WHERE date > :d"), {"d": f"{TINY_END} 23:59"})
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        warehouse = Warehouse(settings.storage.warehouse, ["store", "item"])
        assert warehouse.count("forecast_accuracy") == 0  # nothing to judge yet
        first = warehouse.read_predictions()
        degraded = (held["store"] == "S01") & (held["item"] == "I001")
        held.loc[degraded, "sales"] *= 8  # a week that breaks the pattern: this series' new model gets worse
        held.to_sql("sales", engine, if_exists="append", index=False)
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok

        points = warehouse.read_table("forecast_accuracy")
        origin = pd.Timestamp(TINY_END)
        judged = points[pd.to_datetime(points["origin"]) == origin]
        assert len(judged) == 6 * 7 and sorted(judged["lead"].unique()) == list(range(1, 8))
        published = first.set_index(["store", "item", "ds"])["yhat"]
        joined = judged.join(published.rename("published"), on=["store", "item", "ds"])
        assert (joined["yhat"] == joined["published"]).all()  # the forecast as it was published that day
        actual = held.assign(ds=pd.to_datetime(held["date"])).set_index(["store", "item", "ds"])["sales"]
        assert (judged.join(actual, on=["store", "item", "ds"]).eval("actual == sales")).all()
        assert judged["baseline_yhat"].notna().all()

        records = instance.fetch_materializations(dg.AssetKey("forecast_accuracy"), limit=10).records
        per_store: dict = {}
        for record in records:  # newest first
            per_store.setdefault(record.partition_key, record.asset_materialization.metadata)
        assert set(per_store) == {"S01", "S02"}
        meta = per_store["S01"]
        assert meta["points"].value > 0 and 0 <= meta["realized_wape"].value < 5
        assert "MASE vs baseline" in meta["worst_vs_baseline"].value or "beat or match" in meta["worst_vs_baseline"].value

        # what got worse, in the store's trained_models metadata: the degraded series and its WAPE change
        trained = instance.fetch_materializations(dg.AssetKey("trained_models"), limit=10).records
        newest: dict = {}
        for record in trained:
            newest.setdefault(record.partition_key, record.asset_materialization.metadata)
        assert newest["S01"]["worse_than_previous_version"].value >= 1
        table = newest["S01"]["worse_than_previous"].value
        assert "S01/I001" in table and "pts" in table
        assert "S01/I001" not in newest["S02"]["worse_than_previous"].value
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("forecast_accuracy"), "realized_beats_baseline"), limit=20)
        by_store: dict = {}  # the check is judged per store: its newest evaluation of each
        for record in (r for r in records if r.status.value in ("SUCCEEDED", "FAILED")):
            evaluation = record.event.dagster_event.event_specific_data
            by_store.setdefault(evaluation.partition, evaluation)
        assert set(by_store) <= {"S01", "S02"}
        for evaluation in by_store.values():  # a store with too few realised points is skipped: no evaluation
            ratio = evaluation.metadata["mase_vs_baseline"].value
            assert evaluation.metadata["points"].value >= evaluation.metadata["min_points"].value
            assert evaluation.passed == (ratio < 1.0)
            assert evaluation.passed or f"{ratio:.2f} × the baseline's" in evaluation.description

        # the next week: only the newly arrived periods are judged (and the newest judged one again), and the
        # table is what judging every point from scratch gives; the baseline stored at scoring is the one
        # recomputed from the history up to each origin
        held_two.to_sql("sales", engine, if_exists="append", index=False)
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        table = warehouse.read_table("forecast_accuracy")
        lake = Lake(settings.storage.lake)
        dataset = pd.concat([lake.read_parquet(dataset_file(k)) for k in ("S01", "S02")], ignore_index=True)
        published = warehouse.read_predictions()
        assert published["baseline_yhat"].notna().all()
        cfg = SeriesConfig.from_settings(settings)
        expected = realized_points(published, dataset, ["store", "item"], cfg)
        recomputed = realized_points(published.drop(columns="baseline_yhat"), dataset, ["store", "item"], cfg)
        key = ["store", "item", "origin", "ds"]
        got = table.assign(origin=pd.to_datetime(table["origin"]), ds=pd.to_datetime(table["ds"]))
        got = got.sort_values(key, ignore_index=True)
        assert len(got) == len(expected) == 6 * 14 + 6 * 7  # origin one over its horizon, origin two over a week
        assert (got[key].to_numpy() == expected[key].to_numpy()).all()
        for col in ("yhat", "actual", "baseline_yhat", "lead"):
            assert np.allclose(got[col].astype(float), expected[col].astype(float)), col
        assert np.allclose(got["baseline_yhat"], recomputed["baseline_yhat"])
        assert got.groupby("origin")["run_id"].nunique().max() <= 2  # origin one: judged in two runs, not redone

        # the source corrects a period judged two cycles ago (older than the newest judged period): the next cycle
        # judges its forecasts again, against the corrected actuals
        day = TINY_END + dt.timedelta(days=3)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE sales SET sales = sales + 100 WHERE date LIKE :d AND store = 'S02'"),
                         {"d": f"{day}%"})
            corrected = pd.read_sql(sa.text("SELECT item, sales FROM sales WHERE date LIKE :d AND store = 'S02'"),
                                    conn, params={"d": f"{day}%"}).set_index("item")["sales"]
        report = run_cycle(defs, instance, settings, log=lambda m: None)
        assert report.ok and report.rewritten == [str(day)]
        table = warehouse.read_table("forecast_accuracy")
        points = table[(pd.to_datetime(table["ds"]) == pd.Timestamp(day)) & (table["store"] == "S02")]
        assert len(points) > 0
        assert (points["actual"].to_numpy() == corrected.loc[points["item"]].to_numpy()).all()

        # the summary's realised ratio is over the check's window, not every point since the first cycle
        from mm_assets.cycle import summarize

        def in_window(days: int) -> pd.DataFrame:
            ds = pd.to_datetime(table["ds"])
            return table[(table["model_source"] == "champion") & table["baseline_yhat"].notna()
                         & (ds >= ds.max() - pd.Timedelta(days=days))]

        narrow = settings.model_copy(update={"operations": settings.operations.model_copy(
            update={"accuracy_window": 5})})
        summary = summarize(narrow, ["S01", "S02"])
        assert summary["realized_window_periods"] == 5
        assert 0 < summary["realized_points"] == len(in_window(5)) < len(in_window(10_000))
        mine = in_window(5)
        assert summary["realized_mase_vs_baseline"] == pytest.approx(
            (mine["yhat"] - mine["actual"]).abs().sum() / (mine["baseline_yhat"] - mine["actual"]).abs().sum())


def test_a_series_deleted_from_the_source_keeps_its_judged_forecasts_and_is_named_as_gone(tmp_path, monkeypatch):
    """A delisted item whose rows the source deleted: the periods it sold in are rewritten (its rows left them),
    and judging those periods again must not erase the forecasts of it already judged; the summary names it as
    gone from the source, and counts it apart among the series forecast from an old origin (no check can see a
    series that is no longer in the data)."""
    from mm_assets.cli import _left_words

    settings, engine, held, held_two, defs, warehouse = _two_weeks_project(tmp_path, monkeypatch)
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        held.to_sql("sales", engine, if_exists="append", index=False)
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        before = warehouse.read_table("forecast_accuracy")
        mine = before[(before["store"] == "S01") & (before["item"] == "I001")]
        assert len(mine) == 7  # its forecast of TINY_END, judged by the week that arrived
        with engine.begin() as conn:  # delisted: every row of it deleted from the source
            conn.execute(sa.text("DELETE FROM sales WHERE store = 'S01' AND item = 'I001'"))
        gone = (held_two["store"] == "S01") & (held_two["item"] == "I001")
        held_two[~gone].to_sql("sales", engine, if_exists="append", index=False)
        report = run_cycle(defs, instance, settings, log=lambda m: None)
        assert report.ok and report.rewritten  # the periods it sold in lost its rows
        after = warehouse.read_table("forecast_accuracy")
        kept = after[(after["store"] == "S01") & (after["item"] == "I001")]
        key = ["origin", "ds", "lead", "yhat", "actual"]
        pd.testing.assert_frame_equal(kept[key].sort_values(key).reset_index(drop=True),
                                      mine[key].sort_values(key).reset_index(drop=True))
        assert len(after) > len(before)  # the other series' new week was judged
        summary = report.summary
        assert summary["series_gone"] == ["S01/I001"] and summary["series_not_retrained"] == 1
        assert summary["stale_series"] == summary["stale_gone"] == 1
        words = _left_words(summary)
        assert words.startswith("1 gone from the source (S01/I001: their champions serve nothing")
        assert "failed there" not in words


def test_a_series_deleted_from_the_source_leaves_current_forecasts_when_the_day_is_run_again(tmp_path, monkeypatch):
    """The cycle run again on the same day after an item was deleted from the source: its forecast of that day's
    origin stayed in current_forecasts beside the store's live series, from the same origin, and BI kept ordering
    it. Now its rows of that origin go, and the store's forecast_predictions metadata counts it."""
    settings, engine, _, _, defs, warehouse = _two_weeks_project(tmp_path, monkeypatch)
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        assert len(warehouse.current_forecasts().groupby(["store", "item"])) == 6
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM sales WHERE store = 'S01' AND item = 'I002'"))
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        current = warehouse.current_forecasts()
        assert ("S01", "I002") not in set(zip(current["store"], current["item"]))
        assert len(current.groupby(["store", "item"])) == 5
        newest = {}
        for record in instance.fetch_materializations(dg.AssetKey("forecast_predictions"), limit=10).records:
            newest.setdefault(record.partition_key, record.asset_materialization.metadata)
        assert newest["S01"]["series_left_the_data"].value == 1 and newest["S02"]["series_left_the_data"].value == 0


def test_a_series_without_rows_for_dormant_after_periods_is_not_forecast_until_its_next_row(tmp_path, monkeypatch):
    """A discontinued item (no row for ``ingest.dormant_after`` periods) is warned of while its rows are merely
    late, then dormant: its store's run neither trains nor forecasts it (its forecasts would start from its own
    last row, for days past), the summary names it as dormant, not as gone from the source, and the check passes
    on it; its next row brings it back, trained on its whole history and forecast from the newest day."""
    from mm_assets.cli import _left_words

    monkeypatch.chdir(tmp_path)
    settings = tiny_settings(tmp_path, ingest={"dormant_after": 10})
    engine, held, held_two = _source_with_two_weeks_to_come(settings)
    defs = build_definitions(settings)
    warehouse = Warehouse(settings.storage.warehouse, ["store", "item"])

    def its(frame: pd.DataFrame) -> pd.Series:
        return (frame["store"] == "S01") & (frame["item"] == "I001")

    def newest_origin() -> pd.Timestamp:
        preds = warehouse.read_table("forecast_predictions")
        return pd.Timestamp(preds.loc[its(preds), "origin"].max())

    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        held[~its(held)].to_sql("sales", engine, if_exists="append", index=False)  # its rows stop
        report = run_cycle(defs, instance, settings, log=lambda m: None)
        assert report.summary["series_dormant"] == [] and report.summary["stale_dormant"] == 0  # 7 days: late
        assert report.summary["stale_series"] == 1
        assert any(c.name == "series_reach_data_end" for c in report.failed_checks)
        held_two[~its(held_two)].to_sql("sales", engine, if_exists="append", index=False)
        report = run_cycle(defs, instance, settings, log=lambda m: None)
        summary = report.summary
        assert report.ok and summary["series_dormant"] == ["S01/I001"] and summary["dormant_with_model"] == 1
        assert summary["series_gone"] == [] and summary["stale_series"] == summary["stale_dormant"] == 1
        assert _left_words(summary) == "1 dormant (below)"
        assert not any(c.name == "series_reach_data_end" for c in report.failed_checks)
        assert newest_origin() == pd.Timestamp(TINY_END)  # not forecast again from its last row
        assert not its(Lake(settings.storage.lake).read_parquet(dataset_file("S01"))).any()

        back = held_two[its(held_two) & (pd.to_datetime(held_two["date"]).dt.date == TINY_END + dt.timedelta(days=14))]
        back.to_sql("sales", engine, if_exists="append", index=False)  # it sells again
        report = run_cycle(defs, instance, settings, log=lambda m: None)
        assert report.ok and report.summary["series_dormant"] == []
        assert newest_origin() == pd.Timestamp(TINY_END + dt.timedelta(days=14))
        rows = Lake(settings.storage.lake).read_parquet(dataset_file("S01"))
        first = pd.to_datetime(held_two["date"]).min() - dt.timedelta(days=150)
        assert rows.loc[its(rows) & rows["y"].notna(), "ds"].min() <= first + dt.timedelta(days=8)  # its history


def test_forecast_retention_keeps_the_newest_days_of_origins_in_the_warehouse(tmp_path, monkeypatch):
    """``storage.forecast_retention_days``: each store's publish deletes its forecasts and judged points of origins
    more than that many days before the newest, after they were judged, and says how many in the metadata."""
    settings, engine, held, held_two, defs, warehouse = _two_weeks_project(
        tmp_path, monkeypatch, horizon=3, storage={"forecast_retention_days": 7},
        operations={"accuracy_window": 1})  # the least it may be: (2 x 3 + 1) days

    def origins(table: str) -> list[str]:
        frame = warehouse.read_table(table)
        return sorted({str(pd.Timestamp(v).date()) for v in frame["origin"]})

    one, two, three = (str(TINY_END + dt.timedelta(days=d)) for d in (0, 7, 14))
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        held.to_sql("sales", engine, if_exists="append", index=False)
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        assert origins("forecast_predictions") == [one, two]  # 7 days apart: kept
        assert origins("forecast_accuracy") == [one]  # judged by the week that arrived
        held_two.to_sql("sales", engine, if_exists="append", index=False)
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        assert origins("forecast_predictions") == [two, three]
        assert origins("forecast_accuracy") == [two]
        log = warehouse.read_table("publish_log")  # each store's whole publishes, pruned with its forecasts
        assert sorted(log["partition_key"]) == ["S01", "S01", "S02", "S02"] and origins("publish_log") == [two, three]
        newest_run = instance.get_runs(dg.RunsFilter(job_name="publish_job"), limit=1)[0]
        done = log[log["run_id"] == newest_run.run_id]
        assert sorted(done["partition_key"]) == ["S01", "S02"] and (done["series"] == 3).all()
        assert {str(pd.Timestamp(v).date()) for v in done["origin"]} == {three}
        assert warehouse.current_forecasts()["origin"].map(lambda v: str(pd.Timestamp(v).date())).eq(three).all()
        for asset in ("forecast_predictions", "forecast_accuracy"):
            newest = {}
            for record in instance.fetch_materializations(dg.AssetKey(asset), limit=20).records:  # newest first
                newest.setdefault(record.partition_key, record.asset_materialization.metadata)
            assert {k: m["pruned_rows"].value for k, m in newest.items()} == {"S01": 3 * 3, "S02": 3 * 3}, asset


def _two_weeks_project(tmp_path, monkeypatch, **overrides):
    """``tiny_settings`` (with ``overrides``) on a source whose next two weeks are held back
    (``_source_with_two_weeks_to_come``) → (settings, the source's engine, the first week's rows, the second's, the
    definitions, the warehouse)."""
    monkeypatch.chdir(tmp_path)
    settings = tiny_settings(tmp_path, **overrides)
    engine, held, held_two = _source_with_two_weeks_to_come(settings)
    return (settings, engine, held, held_two, build_definitions(settings),
            Warehouse(settings.storage.warehouse, ["store", "item"]))


def _source_with_two_weeks_to_come(settings):
    """A demo source of 2 stores x 3 items up to ``TINY_END``, and its next two weeks held back to append later →
    (the source's engine, the first week's rows, the second's)."""
    from mm_assets.demo.generator import DemoSpec, write_source

    write_source(DemoSpec(stores=2, items=3, days=150, end_date=TINY_END + dt.timedelta(days=14), seed=5),
                 url=settings.source.url)
    engine = sa.create_engine(settings.source.url)
    week_one = f"{TINY_END + dt.timedelta(days=7)} 23:59"
    with engine.begin() as conn:
        held = pd.read_sql(sa.text("SELECT * FROM sales WHERE date > :d AND date <= :e"), conn,
                           params={"d": f"{TINY_END} 23:59", "e": week_one})
        held_two = pd.read_sql(sa.text("SELECT * FROM sales WHERE date > :e"), conn, params={"e": week_one})
        conn.execute(sa.text("DELETE FROM sales WHERE date > :d"), {"d": f"{TINY_END} 23:59"})
    return engine, held, held_two
