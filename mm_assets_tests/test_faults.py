"""Faults a running installation meets, produced for real (files truncated, rows renamed), each against a
known-good state: what the operator is told, and that the next cycle heals or proceeds."""

from __future__ import annotations

import glob
import re

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.lake import Lake
from mm_assets.parallel.bundles import BundleCache, BundleError
from mm_assets.registry import ModelRegistry
from mm_assets.registry.production import ProductionRegistry
from mm_assets.warehouse import Warehouse

pytestmark = pytest.mark.e2e


def _latest_check(instance, asset: str, check: str):
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(asset), check), limit=1)
    return records[0].event.dagster_event.event_specific_data  # AssetCheckEvaluation


def _store_checks(instance, asset: str, check: str) -> dict:
    """The newest evaluation of a per-store check, per store partition."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(asset), check), limit=200)
    out = {}
    for record in records:  # newest first; a planned check without its evaluation is skipped
        if record.status.value not in ("SUCCEEDED", "FAILED"):
            continue
        evaluation = record.event.dagster_event.event_specific_data
        out.setdefault(evaluation.partition, evaluation)
    return out


def _newest_materialization_id(instance, asset: str, partition: str) -> int:
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records[0].storage_id


def _loadable(settings, champions: pd.DataFrame) -> int:
    cache = BundleCache(Lake(settings.storage.lake))
    ok = 0
    for _, row in champions.iterrows():
        try:
            cache.model(row["artifact_uri"], int(row["artifact_offset"]), int(row["artifact_size"]))
            ok += 1
        except BundleError:
            pass
    return ok


def test_a_truncated_champion_bundle_is_reported_and_healed(tiny_project):
    settings, _ = tiny_project
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        production = ProductionRegistry(settings.storage.production_registry)
        before = production.current()
        assert len(before) > 0 and _loadable(settings, before) == len(before)
        for path in glob.glob(f"{settings.storage.lake}/production/models/*/champions.bin"):
            with open(path, "r+b") as handle:
                handle.truncate(300)
        assert _loadable(settings, before) < len(before)

        lines: list[str] = []
        assert run_cycle(defs, instance, settings, log=lines.append).ok  # healed: a warning, not a failed cycle
        evaluation = _latest_check(instance, "production_models", "champions_loadable")
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        assert meta["not_healed"] == 0 and meta["replaced"] + meta["restored"] == meta["unloadable"] > 0
        after = production.current()
        assert set(after["series_key"]) >= set(before["series_key"])  # no series lost its champion
        assert _loadable(settings, after) == len(after)
        reasons = production.decisions()["reason"]
        assert reasons.str.contains("cannot be loaded").any()

        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        assert _latest_check(instance, "production_models", "champions_loadable").passed


def test_a_champion_that_cannot_be_restored_fails_the_run_loudly(tiny_project, tmp_path):
    from mm_assets.checks.gate import champions_loadable
    from mm_assets.registry.gate import heal_champions

    settings, _ = tiny_project
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
    lake = Lake(settings.storage.lake)
    production = ProductionRegistry(settings.storage.production_registry, lake=lake, writable=True)
    registry = ModelRegistry(settings.storage.registry, lake=lake)
    champions = production.current()
    # the gate found these champions unloadable and no challenger passed: restore from the training registry,
    # whose bundles are cut short too
    decided = pd.DataFrame({"series_key": champions["series_key"], "decision": "rejected",
                            "champion_version": champions["version"], "champion_unloadable": "cut off"})
    for path in glob.glob(f"{settings.storage.lake}/models/**/*.bin", recursive=True):
        with open(path, "r+b") as handle:
            handle.truncate(100)
    healing = heal_champions(decided, production, registry, "production/models/restore-test", "test-run")
    assert healing.restored == [] and set(healing.unhealed) == set(champions["series_key"])
    assert all("cut off" in why or "cannot be unpickled" in why for why in healing.unhealed.values())
    result = champions_loadable(healing)
    assert not result.passed and not result.warn_only  # an error, not a warning
    assert "not healed" in result.description and "retrain" in result.description


def test_a_store_gone_from_the_source_warns_and_its_batch_goes_on_until_retired(tiny_project, tmp_path, monkeypatch,
                                                                                capsys):
    from mm_assets.cli import main

    settings, _ = tiny_project
    defs = build_definitions(settings)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        registry = ModelRegistry(settings.storage.registry)
        before = registry.latest().groupby("partition_key")["version"].max()
        engine = sa.create_engine(settings.source.url)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE sales SET store = 'S03X' WHERE store = 'S03'")
            newest = conn.exec_driver_sql("SELECT MAX(date) FROM sales").scalar()
            # the other stores sell a day more: S03's forecasts are then a day behind theirs
            conn.exec_driver_sql("INSERT INTO sales SELECT date(date, '+1 day'), store, item, sales, price, promo "
                                 f"FROM sales WHERE date = '{newest}' AND store IN ('S01', 'S02', 'S03X')")
        lines: list[str] = []
        report = run_cycle(defs, instance, settings, log=lines.append)
        assert report.ok, "\n".join(lines)
        # counted once, as a store without rows: not again among the series a day behind, "normal"
        assert report.summary["recent_origin_series"] == 0
        # the summary counts its forecasts apart: they are the first cycle's, not this one's
        gone = report.summary["stores_without_rows"]
        s03 = registry.latest(["S03"])
        assert set(gone) == {"S03"} and gone["S03"][0] == len(s03) > 0
        assert gone["S03"][1] == str(pd.Timestamp(s03["data_end"].max()).date())
        after = registry.latest().groupby("partition_key")["version"].max()
        assert (after[["S01", "S02"]] > before[["S01", "S02"]]).all()  # the batch with S03 was retrained
        assert "S03X" in after.index
        evaluation = _store_checks(instance, "series_datasets", "every_partition_has_rows")["S03"]
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert "S03" in evaluation.description and "retire-partition" in evaluation.description

    capsys.readouterr()
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    monkeypatch.setenv("MM_ASSETS_SETTINGS", str(tmp_path / "settings.yaml"))
    assert main(["cycle"]) == 0  # the command line's summary says it too
    out = capsys.readouterr().out
    assert f"of stores without rows   {len(s03):>8,}  series of 1 store without rows this cycle: S03" in out
    assert main(["retire-partition", "S01", "S03"]) == 2  # S01 still sells: the next ingest would bring it back
    err = capsys.readouterr().err
    assert "store partition S01 still has rows in the ingested period" in err and "S03" not in err
    assert "WHERE store <> 'S01'" in err
    assert main(["promotion-report"]) in (0, 1)
    series_before = int(re.search(r"series +([\d,]+)", capsys.readouterr().out).group(1).replace(",", ""))
    # a run not started yet whose range ends at S03 would fail when it starts: retiring waits until it has ended
    from mm_assets.automation import range_tags

    with dg.DagsterInstance.get() as instance:
        queued = instance.add_run(dg.DagsterRun(job_name="promote_job", run_id="0123456789abcdef",
                                                tags=range_tags(["S02", "S03"]), status=dg.DagsterRunStatus.NOT_STARTED))
        assert main(["retire-partition", "S03"]) == 2
        err = capsys.readouterr().err
        assert "cannot retire S03 now: run 01234567 (promote_job, not_started) covers S03" in err
        assert "wait until they end" in err and "S03" in instance.get_dynamic_partitions("stores")
        instance.report_run_canceled(queued)
    assert main(["retire-partition", "S03"]) == 0
    assert "retired store partition S03" in capsys.readouterr().out
    warehouse = Warehouse(settings.storage.warehouse, settings.columns.ids)
    assert warehouse.retired_partitions() == ["S03"]  # for BI to leave it out; its rows stay as history
    assert len(warehouse.read_table("model_metrics", ["S03"])) == len(s03)
    assert main(["promotion-report"]) in (0, 1)  # the gate report no longer counts its series
    out = capsys.readouterr().out
    assert re.search(rf"series +{series_before - len(s03)}\s+\(1 retired store partition left out", out), out
    assert main(["retire-partition", "S99"]) == 2
    with dg.DagsterInstance.get() as instance:
        assert "S03" not in instance.get_dynamic_partitions("stores")
        assert "S01" in instance.get_dynamic_partitions("stores")
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        checks = _store_checks(instance, "series_datasets", "every_partition_has_rows")
        assert checks["S01"].passed and checks["S03X"].passed
        # a store registered under a name that cannot name a file (before the ingest refused it) names the way out
        instance.add_dynamic_partitions("stores", ["S9."])
        lines = []
        assert not run_cycle(defs, instance, settings, log=lines.append).ok
        assert "store partition(s) 'S9.' cannot name a file" in "\n".join(lines)
        assert "`mm-assets retire-partition S9.`" in "\n".join(lines)
    assert main(["retire-partition", "S9."]) == 0
    with dg.DagsterInstance.get() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        assert warehouse.retired_partitions() == ["S03", "S9."]
        with engine.begin() as conn:  # S03 comes back: registered by the ingest, and no longer retired once published
            conn.exec_driver_sql("UPDATE sales SET store = 'S03' WHERE store = 'S03X'")
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        assert warehouse.retired_partitions() == ["S9."]


def test_a_store_served_entirely_by_the_baseline_fails_its_check(tiny_project):
    """Every series of S02 too short for a model (a new store): the check fails, as a warning that says why (it
    was red for the five weeks a new store takes to get models; a store whose judged series are over the share
    stays red: ``test_store_verdicts``)."""
    settings, spec = tiny_project
    engine = sa.create_engine(settings.source.url)
    with engine.begin() as conn:  # S02 keeps 11 days: too short for any model, every series falls back
        conn.exec_driver_sql("DELETE FROM sales WHERE store = 'S02' AND date < '2026-06-20'")
    with dg.instance_for_test() as instance:
        run_cycle(build_definitions(settings), instance, settings, log=lambda m: None)
        by_store = _store_checks(instance, "production_models", "served_by_model")
        assert set(by_store) == {"S01", "S02", "S03"}  # one evaluation per store partition, none run-wide
        assert not by_store["S02"].passed and by_store["S02"].severity == dg.AssetCheckSeverity.WARN
        assert "4 of 4 series of store S02" in by_store["S02"].description
        assert "Without the series too short for a model it is within the share" in by_store["S02"].description
        assert by_store["S01"].passed and by_store["S01"].description is None
        for store, evaluation in by_store.items():  # each judges its store's newest materialization: current
            assert evaluation.target_materialization_data.storage_id == _newest_materialization_id(
                instance, "production_models", store)
        decisions = _store_checks(instance, "production_models", "decision_for_every_series")
        assert set(decisions) == {"S01", "S02", "S03"} and all(e.passed for e in decisions.values())
        records = instance.fetch_materializations(dg.AssetKey("production_models"), limit=10).records
        share = {r.partition_key: r.asset_materialization.metadata["served_by_baseline_share"].value for r in records}
        assert share["S02"] == 1.0 and share["S01"] < 0.5


def test_a_new_instance_reads_every_period_once_even_with_recent(tiny_project):
    """A new Dagster instance over an existing lake (moved to PostgreSQL), first cycle with --recent: the stores
    without rows in the newest periods were never registered and their series silently dropped (a trial: 3 of 83
    orangeJuice stores). Stores are registered by the periods that hold their rows, so the first cycle reads all."""
    settings, _ = tiny_project
    with sa.create_engine(settings.source.url).begin() as conn:  # S03's rows stop ten days before the others'
        conn.exec_driver_sql("DELETE FROM sales WHERE store = 'S03' AND date > date((SELECT MAX(date) FROM sales), "
                             "'-10 days')")
    from mm_assets.automation import range_tags
    from mm_assets.job_runs import execute_job

    defs = build_definitions(settings)
    with dg.instance_for_test() as before:  # the instance of before ingested every period into the lake
        keys = defs.resolve_job_def("ingest_job").partitions_def.get_partition_keys()
        first = next(k for k in keys if k >= settings.ingest.start_date)
        assert execute_job(defs, before, "ingest_job", range_tags([first, keys[-1]]), "all").success
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lines.append, recent=2).ok
        assert set(instance.get_dynamic_partitions("stores")) == {"S01", "S02", "S03"}
        assert any(line.startswith("note: --recent 2 not applied: this Dagster instance has no store partitions "
                                   "yet") for line in lines), lines
        assert not any("new store partition" in line for line in lines)
        # a store new to the source, with a month of history: --recent 1 registers it from the newest period only,
        # and says what it did not read
        with sa.create_engine(settings.source.url).begin() as conn:
            conn.exec_driver_sql("INSERT INTO sales (date, store, item, sales, price, promo) SELECT date, 'S04', "
                                 "item, sales, price, promo FROM sales "
                                 "WHERE store = 'S01' AND date > date((SELECT MAX(date) FROM sales), '-30 days')")
        lines.clear()
        assert run_cycle(defs, instance, settings, log=lines.append, recent=1).ok
        assert "S04" in instance.get_dynamic_partitions("stores")
    note = next(line for line in lines if "new store partition" in line)
    assert "1 new store partition (S04) registered by --recent" in note and "without --recent" in note


def test_a_damaged_raw_file_is_named_with_the_fix_and_the_next_cycle_heals_it(tiny_project):
    from mm_assets.automation import range_tags
    from mm_assets.job_runs import execute_job

    settings, _ = tiny_project
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        day = sorted(glob.glob(f"{settings.storage.lake}/raw/sales/*.parquet"))[-5]
        with open(day, "r+b") as handle:
            handle.truncate(200)
        run = execute_job(defs, instance, "train_job", range_tags(["S01"]), "S01")
        assert not run.success
        cause = " ".join(run.causes)
        assert day.rsplit("/", 1)[1] in cause and "Re-ingest that period" in cause
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok  # re-ingested: healed


def _cycle_with_the_lake_gone_at(settings, monkeypatch, gone_at: str) -> tuple:
    """(the cycle's report, its log lines) when the lake's folder is replaced by a file as ``gone_at`` starts."""
    import shutil
    from pathlib import Path

    import mm_assets.cycle as cycle

    real = cycle.execute_job

    def execute(defs, instance, job, *args, **kwargs):
        lake = Path(settings.storage.lake)
        if job == gone_at and not lake.is_file():
            if lake.is_dir():
                shutil.rmtree(lake)
            lake.parent.mkdir(parents=True, exist_ok=True)
            lake.write_text("not a folder")
        return real(defs, instance, job, *args, **kwargs)

    monkeypatch.setattr(cycle, "execute_job", execute)
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        report = run_cycle(build_definitions(settings), instance, settings, log=lines.append)
    return report, lines


def test_a_lake_that_goes_away_during_the_ingest_is_named_like_one_that_goes_away_later(tiny_project, monkeypatch):
    """The ingest run is followed by the same check of every store as the later runs: an ingest that failed
    because the lake went away ends with the setting and the fix, not with the storage client's own error."""
    report, lines = _cycle_with_the_lake_gone_at(tiny_project[0], monkeypatch, "ingest_job")
    assert [(job, ok) for job, _, ok, _ in report.runs] == [("ingest_job", False)]
    assert report.stopped == "ingest_job" and report.store_down.startswith("storage.lake")
    assert any(line.startswith("stopping the cycle: storage.lake") for line in lines), lines
    assert report.summary == {} and "summary skipped: the store named above cannot be reached" in lines


def test_a_lake_that_goes_away_mid_cycle_stops_the_cycle_naming_it(tiny_project, monkeypatch):
    """A run that fails because the lake (or a database) went away is followed by a check of every store: the
    cycle stops there, naming the setting and the fix, instead of running every later batch into the same wall."""
    settings, _ = tiny_project
    settings = settings.model_copy(update={"schedule": settings.schedule.model_copy(update={"partitions_per_run": 1})})
    report, lines = _cycle_with_the_lake_gone_at(settings, monkeypatch, "train_job")
    assert [(job, ok) for job, _, ok, _ in report.runs] == [("ingest_job", True), ("train_job", False)]
    assert report.stopped == "train_job [S01]" and report.store_down.startswith("storage.lake")
    assert "cannot be written" in report.store_down
    assert any(line.startswith("stopping the cycle: storage.lake") and "S02" not in line for line in lines), lines
    # the summary, whose reads would wait out the same timeouts (82 s on a lake endpoint that went away), is skipped
    assert report.summary == {} and "summary skipped: the store named above cannot be reached" in lines
