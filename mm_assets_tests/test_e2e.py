"""End to end: the whole asset graph on tiny data in a temporary Dagster instance.

Asserts what a user checks after `make demo`: every series has a model or a recorded fallback, every series
has a forecast for every horizon step in the warehouse, an injected failing series is recorded and surfaced
(metadata, asset check, registry), re-running does not duplicate warehouse rows, and bad input fails with a
clear message while nothing already stored is lost.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.assets.settings_hold import SETTINGS_TAG, settings_digest
from mm_assets.cycle import run_cycle, summarize
from mm_assets.definitions import build_definitions
from mm_assets.forecasting.global_training import BATCH_SERIES
from mm_assets.forecasting.metrics import metric_column
from mm_assets.ids import series_keys
from mm_assets.lake import Lake
from mm_assets.registry import ModelRegistry
from mm_assets.registry.gate import eligible_evidence, judged_ratio
from mm_assets.registry.production import ProductionRegistry
from mm_assets.registry.promotion import SAME_FIT
from mm_assets.registry.report import promotion_report
from mm_assets.warehouse import Warehouse
from mm_assets_tests.conftest import TINY_END

pytestmark = pytest.mark.e2e

FAILING = "S02/I003"


def _source(settings) -> pd.DataFrame:
    return pd.read_sql("select * from sales", sa.create_engine(settings.source.url))


def _step_failure_message(result) -> str:
    return next(
        e.step_failure_data.error.message for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
    )


def _check_evaluations(instance, asset: str, check: str):
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(asset), check), limit=10
    )
    return records


def decisions_of(wh, decision: str):
    decisions = wh.read_table("promotion_decisions")
    return decisions[decisions["decision"] == decision]


def test_full_cycle_end_to_end(tiny_project, monkeypatch):
    settings, spec = tiny_project
    # a gate the tiny, noisy data can pass for some series, so both champions and baselines appear
    settings = settings.model_copy(update={"promotion": settings.promotion.model_copy(update={"min_accuracy": 0.5})})
    monkeypatch.setenv("MM_ASSETS_INJECT_FAILURES", FAILING)
    defs = build_definitions(settings)
    source = _source(settings)
    all_series = set(series_keys(source, ["store", "item"]))
    assert len(all_series) == spec.stores * spec.items

    with dg.instance_for_test() as instance:
        report = run_cycle(defs, instance, settings, log=lambda m: None)
        assert report.ok, report.runs
        # every run of the cycle is launched held to the settings it was built from
        assert {run.tags.get(SETTINGS_TAG) for run in instance.get_runs()} == {settings_digest(settings)}

        # Dagster saw every raw period and every store partition of the model assets
        stores = sorted(source["store"].unique())
        assert sorted(instance.get_dynamic_partitions("stores")) == stores
        for asset in ("series_datasets", "trained_models", "production_models", "batch_predictions",
                      "forecast_predictions", "model_metrics", "promotion_decisions"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(stores), asset
        raw_done = instance.get_materialized_partitions(dg.AssetKey("raw_sales"))
        assert str(source["date"].max())[:10] in raw_done and str(source["date"].min())[:10] in raw_done

        # registry: a model (or recorded fallback) for every series but the injected one, which is a failure
        registry = ModelRegistry(settings.storage.registry)
        latest = registry.latest()
        assert set(latest["series_key"]) == all_series - {FAILING}
        assert set(latest["status"]) <= {"trained", "fallback"}
        assert (latest.loc[latest["status"] == "fallback", "reason"].str.len() > 0).all()
        failures = registry.failures()
        assert list(failures["series_key"]) == [FAILING]
        assert failures["error_type"].iloc[0] == "InjectedFailure"

        # surfaced: the check failed and the partition metadata counts it
        checks = _check_evaluations(instance, "trained_models", "no_failed_series")
        status = {}  # the newest evaluation of each store (records come newest first)
        for record in checks:
            status.setdefault(record.event.asset_check_evaluation.partition, record.status.value)
        assert status["S02"] == "FAILED" and status["S01"] == "SUCCEEDED"
        # the warehouse read back: every series (the failed one served by its baseline) has the whole horizon
        horizon = {}
        for record in _check_evaluations(instance, "forecast_predictions", "complete_horizon"):
            horizon.setdefault(record.event.asset_check_evaluation.partition, record.status.value)
        assert set(horizon) == {"S01", "S02", "S03"} and set(horizon.values()) == {"SUCCEEDED"}
        mat = instance.get_latest_materialization_event(dg.AssetKey("trained_models"), )
        events = instance.fetch_materializations(dg.AssetKey("trained_models"), limit=100).records
        failed_counts = {
            e.asset_materialization.partition: e.asset_materialization.metadata["failed"].value for e in events
        }
        assert failed_counts["S02"] == 1 and failed_counts["S01"] == 0
        assert mat is not None

        # warehouse: every series (the failed one by the baseline) x every horizon step
        wh = Warehouse(settings.storage.warehouse, ["store", "item"])
        preds = wh.read_predictions()
        per_series = preds.groupby(["store", "item"]).size()
        assert len(per_series) == len(all_series)
        assert (per_series == settings.horizon).all()
        failed_rows = preds[(preds["store"] == "S02") & (preds["item"] == "I003")]
        assert set(failed_rows["model_source"]) == {"baseline"}

        # the gate: production holds only gate-passing models; one decision with a reason per series
        production = ProductionRegistry(settings.storage.production_registry)
        champions = production.current()
        assert len(champions) > 0
        assert (champions["accuracy"] >= settings.promotion.min_accuracy).all()
        assert not champions["model_type"].isin(["seasonal_naive", "baseline"]).any()
        promoted = decisions_of(wh, "promoted")
        assert promoted["reason"].str.contains("x the baseline's").all()  # each beat its own baseline
        decisions = wh.read_table("promotion_decisions")
        assert len(decisions) == len(all_series)
        assert not decisions.duplicated(["store", "item"]).any()
        assert (decisions["reason"].str.len() > 0).all()
        assert set(decisions["decision"]) <= {"promoted", "rejected"}
        champion_keys = set(champions["series_key"])
        source_by_series = preds.assign(key=preds["store"] + "/" + preds["item"]).groupby("key")["model_source"].first()
        assert set(source_by_series[source_by_series == "champion"].index) == champion_keys
        assert (source_by_series[~source_by_series.index.isin(champion_keys)] == "baseline").all()
        # the one-store run (S03: partitions_per_run 2) weighed its series with every store's latest models of
        # their type, S01's and S02's of the run before too, as one run of all stores would have
        pools = [r.asset_observation.metadata["pooled_evidence"].value
                 for r in instance.fetch_observations(dg.AssetKey("production_models"), limit=10).records
                 if r.asset_observation.metadata["stores_in_run"].value == 1]
        every = latest.assign(rel=judged_ratio(latest["metrics"])[0])
        every = every[eligible_evidence(every, every["rel"].to_numpy())]
        assert len(pools) == 1 and pools[0], pools
        for model_type, pool in pools[0].items():
            mine = every[every["model_type"] == model_type]
            assert pool["series"] == len(mine) and pool["in_other_stores"] == int(mine["partition_key"].ne("S03").sum())
            assert 0 < pool["in_other_stores"] < pool["series"]
        # ... and its global model learnt from S01's and S02's series too (the failing one among them: it fails
        # only where it is trained), where the run of S01 and S02 learnt from theirs
        learnt = pd.Series(metric_column(latest["metrics"], BATCH_SERIES), index=latest["partition_key"])
        assert set(learnt["S03"]) == {len(all_series)} and set(learnt["S01"]) == {2 * spec.items - 1}
        metrics = wh.read_table("model_metrics")
        assert len(metrics) == len(all_series) - 1  # the failed series has no model yet
        assert (preds["yhat"] >= 0).all()
        # forecasts start the period after each series' last observation
        last_obs = source.dropna(subset=["sales"]).groupby(["store", "item"])["date"].max().map(pd.Timestamp)
        first_ds = preds.groupby(["store", "item"])["ds"].min()
        assert ((first_ds - last_obs.reindex(first_ds.index)) == pd.Timedelta(days=1)).all()

        # the failure is retried on the next run: without the injection it trains
        monkeypatch.delenv("MM_ASSETS_INJECT_FAILURES")
        raw_files = Lake(settings.storage.lake).signatures("raw", "sales")
        dataset_files = Lake(settings.storage.lake).signatures("datasets")
        report2 = run_cycle(defs, instance, settings, log=lambda m: None)
        assert report2.ok and report2.rewritten == []  # the same rows: no period rewritten
        # the second cycle re-ingested every period with the same rows: each file stayed as it was, so each
        # store's datasets cut appended nothing instead of cutting from every file again, and kept its file
        assert Lake(settings.storage.lake).signatures("raw", "sales") == raw_files
        assert Lake(settings.storage.lake).signatures("datasets") == dataset_files
        cuts: dict = {}
        for record in instance.fetch_materializations(dg.AssetKey("series_datasets"), limit=1000).records:
            event = record.asset_materialization
            cuts.setdefault(event.partition, event.metadata["cut"].value)  # the newest first
        assert cuts and set(cuts.values()) == {"unchanged: no new period file and the same plan, the file is kept as "
                                               "it is"}
        latest2 = registry.latest()
        assert set(latest2["series_key"]) == all_series
        # the global model's staged copies of each run's batch are gone once the runs are done
        the_lake = Lake(settings.storage.lake)
        assert [name for name in the_lake.list("staging") if name != "raw_sales"] == []
        assert the_lake.list("manifests") == []  # the gate's and scoring's, two files a cycle, kept for ever before
        assert latest2.loc[latest2["series_key"] != FAILING, "version"].eq(2).all()
        # re-publishing replaced rows: no duplicate (ids, origin, ds)
        preds2 = wh.read_predictions()
        assert not preds2.duplicated(["store", "item", "origin", "ds"]).any()
        assert len(preds2) == len(all_series) * settings.horizon
        # second gate run, decisions of both runs kept. S03's run learnt from the very rows of the first (every
        # store's, S02/I003's among them: it failed only where it is trained): its challengers are its champions'
        # own fits, kept with no new production version. S01's and S02's learnt from S02/I003 too this time:
        # another fit, judged by its WAPE
        decisions2 = wh.read_table("promotion_decisions")
        assert len(decisions2) == 2 * len(all_series)
        latest_run = decisions2[decisions2["gate_run_id"] == decisions2["gate_run_id"].iloc[-1]]
        assert set(latest_run["decision"]) <= {"promoted", "kept_champion", "rejected"}
        newest2 = production.newest_decisions(stores)
        refit = newest2["reason"].str.contains(SAME_FIT, regex=False)
        assert set(newest2.loc[refit, "series_key"]) == {k for k in champions["series_key"] if k.startswith("S03/")}
        assert (newest2.loc[refit, "decision"] == "kept_champion").all() and refit.sum() > 0
        assert report2.summary["kept_same_fit"] == int(refit.sum())
        champions2 = production.current().set_index("series_key")
        for key, champion in champions.set_index("series_key").iterrows():
            if key.startswith("S03/"):
                assert champions2.loc[key, "promoted_at"] == champion["promoted_at"], key
        assert len(champions2) >= len(champions)
        # a rejected challenger of a series with a champion leaves the champion serving: the summary says so
        newest = production.newest_decisions(stores)
        kept_after = newest.loc[newest["decision"] == "rejected", "series_key"].isin(champions["series_key"])
        assert report2.summary["rejected_keeping_champion"] == int(kept_after.sum())
        assert report.summary["series_with_model"] == len(all_series) - 1  # the failing one had no version yet
        assert report2.summary["series_with_model"] == len(all_series) and not report2.summary["failed_series"]
        # the median holdout accuracy is of the model's own holdouts, not of the fallbacks' baselines
        assert 0 < report2.summary["accuracy_series"] <= report2.summary["trained"]

        # it fails again: it keeps its version of the run before, and the summary does not count it as trained
        monkeypatch.setenv("MM_ASSETS_INJECT_FAILURES", FAILING)
        with sa.create_engine(settings.source.url).begin() as conn:  # a correction of an old day in the source
            conn.exec_driver_sql("UPDATE sales SET sales = sales + 1 WHERE date LIKE '2026-03-02%' AND store = 'S01'")
        report3 = run_cycle(defs, instance, settings, log=lambda m: None)
        assert report3.rewritten == ["2026-03-02"]  # named in the summary: the source changed that day's rows
        assert report3.summary["failed_series"] == 1 and report3.summary["failed_keeping_older"] == 1
        assert report3.summary["trained_this_cycle"] == len(all_series) - 1
        assert report3.summary["series_with_model"] == len(all_series)  # the failing one keeps its model
        # ... and is said not to be trained by its store's newest run (as a delisted item would be)
        assert report3.summary["series_not_retrained"] == 1 and report2.summary["series_not_retrained"] == 0
        decided = ("promoted", "kept_champion", "rejected")
        assert sum(report3.summary[k] for k in decided) == len(all_series)  # this cycle's decisions, every series
        # a store the next cycle could not judge (gone from the source) shows none of its older decisions as that
        # cycle's: counted from the cycle's start
        later = summarize(settings, stores, since=dt.datetime.now(dt.UTC).replace(tzinfo=None))
        assert sum(later[k] for k in decided) == 0


def refusing(settings):
    """``settings`` with ``ingest.on_bad_rows: error``: a bad row refuses the ingest (with the default, ``hold``, it
    holds back its series: ``test_held_series.py``)."""
    return settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"on_bad_rows": "error"})})


def test_bad_input_fails_clearly_and_loses_nothing(tiny_project):
    settings = refusing(tiny_project[0])
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        lake = Lake(settings.storage.lake)
        day = "2026-06-30"
        before_file = lake.read_bytes("raw", "sales", f"{day}.parquet")
        before_models = ModelRegistry(settings.storage.registry).count()
        before_preds = Warehouse(settings.storage.warehouse, ["store", "item"]).count()

        engine = sa.create_engine(settings.source.url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE sales SET sales = -3 WHERE date = :d AND store = 'S01' AND item = 'I001'"),
                         {"d": day})
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False
        )
        assert not result.success
        message = _step_failure_message(result)
        assert "negative" in message and "'sales'" in message and "S01" in message

        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE sales SET sales = 1, store = 'S/../x' WHERE date = :d AND store = 'S01' "
                                 "AND item = 'I001'"), {"d": day})
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False
        )
        assert not result.success
        message = _step_failure_message(result)
        assert "'store'" in message and "S/../x" in message

        # nothing already stored was lost or changed
        assert lake.read_bytes("raw", "sales", f"{day}.parquet") == before_file
        assert ModelRegistry(settings.storage.registry).count() == before_models
        assert Warehouse(settings.storage.warehouse, ["store", "item"]).count() == before_preds
        assert "S" not in [p for p in lake.list() if p.startswith("S/")]


def test_backfill_read_in_slices_replaces_files_only_when_every_slice_is_valid(tiny_project):
    from mm_assets.automation import range_tags

    settings = refusing(tiny_project[0])
    # 3-day slices: a 10-day backfill is four source reads
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"periods_per_read": 3})})
    defs = build_definitions(settings)
    days = [str(d.date()) for d in pd.date_range("2026-06-21", "2026-06-30", freq="D")]
    lake = Lake(settings.storage.lake)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, tags=range_tags(days))
        assert result.success
        assert instance.get_materialized_partitions(dg.AssetKey("raw_sales")) >= set(days)
        source = _source(settings)
        for day in days:
            stored = pd.read_parquet(lake.path("raw", "sales", f"{day}.parquet"))
            assert len(stored) == int((source["date"].astype(str).str[:10] == day).sum()) > 0
        before = {day: lake.read_bytes("raw", "sales", f"{day}.parquet") for day in days}
        # ingested again with the same rows, every period keeps its file as it was (the datasets cut appends)
        signatures = lake.signatures("raw", "sales")
        assert defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, tags=range_tags(days)).success
        assert lake.signatures("raw", "sales") == signatures

        engine = sa.create_engine(settings.source.url)
        with engine.begin() as conn:  # a bad row in the last slice; the first slices change their values
            conn.execute(sa.text("UPDATE sales SET sales = sales + 1 WHERE date < :d"), {"d": days[3]})
            conn.execute(sa.text("UPDATE sales SET sales = -3 WHERE date = :d AND store = 'S01' AND item = 'I001'"),
                         {"d": days[-1]})
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=range_tags(days), raise_on_error=False
        )
        assert not result.success
        assert "negative" in _step_failure_message(result)
        assert {day: lake.read_bytes("raw", "sales", f"{day}.parquet") for day in days} == before
        assert not lake.exists("staging", "raw_sales")  or lake.list("staging", "raw_sales") == []
        with engine.begin() as conn:  # the bad row mended: only the periods whose rows changed are rewritten
            conn.execute(sa.text("UPDATE sales SET sales = 3 WHERE date = :d AND store = 'S01' AND item = 'I001'"),
                         {"d": days[-1]})
        assert defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, tags=range_tags(days)).success
        after = lake.signatures("raw", "sales")
        changed = {name for name in after if after[name] != signatures[name]}
        assert changed == {f"{day}.parquet" for day in (*days[:3], days[-1])}


def test_planned_rows_inside_and_after_the_ingested_periods_reach_scoring(tmp_path, monkeypatch):
    from mm_assets.demo.generator import DemoSpec, write_source
    from mm_assets.ingest.periods import PLAN_FILE
    from mm_assets.parallel.contract import DATASET_SIGNATURE_KEY, predictions_file
    from mm_assets_tests.conftest import TINY_END, tiny_settings

    monkeypatch.chdir(tmp_path)
    settings = tiny_settings(tmp_path, ingest={"periods_per_read": 60})
    # sales up to TINY_END, then a price and promotion plan for the horizon: rows without sales
    spec = DemoSpec(stores=2, items=3, days=212, end_date=TINY_END, seed=7, future_days=settings.horizon)
    write_source(spec, url=settings.source.url)
    # and a promotion planned after today, beyond the newest raw_sales period
    later = pd.date_range(pd.Timestamp.today().normalize() + pd.Timedelta(days=3), periods=4, freq="D")
    extra = pd.DataFrame({"date": later.strftime("%Y-%m-%d"), "store": "S01", "item": "I001", "sales": None,
                          "price": 1.0, "promo": 1})
    extra.to_sql("sales", sa.create_engine(settings.source.url), if_exists="append", index=False)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        report = run_cycle(defs, instance, settings, log=lambda m: None)
    assert report.ok
    # the summary's count: every forecast period of the 6 series had plan rows
    assert report.periods_with_plan == report.periods_forecast == 6 * settings.horizon
    lake = Lake(settings.storage.lake)
    plan = pd.read_parquet(lake.path(*PLAN_FILE))
    assert len(plan) == 4 and plan["sales"].isna().all() and (plan["promo"] == 1).all()
    dataset = pd.read_parquet(lake.path("datasets", "S01.parquet"))
    mine = dataset[(dataset["item"] == "I001")]
    assert mine.loc[mine["ds"] > pd.Timestamp(TINY_END), "y"].isna().all()
    assert set(later) <= set(mine["ds"])  # the plan after the newest period is in the dataset
    # the rows a global model would train on, which size the runs: here, under its window, every row
    from mm_assets.ingest.datasets import TRAINING_ROWS_KEY
    assert int(lake.footer_metadata("datasets", "S01.parquet")[TRAINING_ROWS_KEY]) == len(dataset)
    predictions = pd.concat(pd.read_parquet(lake.path(predictions_file(k))) for k in ("S01", "S02"))
    assert (predictions["planned_periods"] == settings.horizon).all()  # every series used its plan
    assert (pd.to_datetime(predictions["origin"]) == pd.Timestamp(TINY_END)).all()
    # each forecast names the dataset it was scored from: the endpoint answers with it only for those rows
    cut = lake.signatures("datasets", suffix=".parquet")
    for k in ("S01", "S02"):
        assert lake.footer_metadata(predictions_file(k))[DATASET_SIGNATURE_KEY] == cut[f"{k}.parquet"]


def test_empty_source_is_a_clear_error(tmp_path, monkeypatch):
    from mm_assets.ingest.source import SourceError
    from mm_assets_tests.conftest import tiny_settings

    monkeypatch.chdir(tmp_path)
    settings = tiny_settings(tmp_path)
    engine = sa.create_engine(settings.source.url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE sales (date DATE, store TEXT, item TEXT, sales FLOAT, price FLOAT, promo INT)"))
    with dg.instance_for_test() as instance, pytest.raises(SourceError, match="has no rows"):
        run_cycle(build_definitions(settings), instance, settings, log=lambda m: None)


def test_a_cycle_whose_ingest_fails_counts_no_period_as_ingested(tiny_project):
    settings = refusing(tiny_project[0])
    with sa.create_engine(settings.source.url).begin() as conn:  # a bad row the ingest run refuses
        conn.exec_driver_sql("UPDATE sales SET sales = -3 WHERE rowid = (SELECT min(rowid) FROM sales)")
    with dg.instance_for_test() as instance:
        report = run_cycle(build_definitions(settings), instance, settings, log=lambda m: None)
    assert [(job, ok) for job, _, ok, _ in report.runs] == [("ingest_job", False)]
    assert report.periods == 0 and report.partitions == 0 and not report.ok
    assert report.stopped == "ingest_job" and report.summary == {}  # nothing stored: nothing to summarise


def test_promotion_report_cli_applies_the_settings_rule(tiny_project, monkeypatch, capsys):
    from mm_assets.cli import main

    settings, _ = tiny_project
    # one gate run over every store: the report weighs each series with every series, the gate with its run's
    settings = settings.model_copy(update={"schedule": settings.schedule.model_copy(update={"partitions_per_run": 10})})
    instance = dg.DagsterInstance.ephemeral()
    cycle = run_cycle(build_definitions(settings), instance, settings, log=lambda m: None)
    assert cycle.ok
    # the report applies the gate's rules as the gate does (a tie on the own holdout is no pass): on the first day
    # the series passing are those the gate promoted
    assert promotion_report(settings)["challengers_passing_rules"] == cycle.summary["promoted"] > 0
    # the CLI reads the settings in force: the defaults plus these environment overrides
    for key, value in {
        "MM_ASSETS__STORAGE__REGISTRY": settings.storage.registry,
        "MM_ASSETS__STORAGE__PRODUCTION_REGISTRY": settings.storage.production_registry,
        "MM_ASSETS__PROMOTION__MIN_ACCURACY": "0.0",
    }.items():
        monkeypatch.setenv(key, value)
    assert main(["promotion-report", "--min-share", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "gate: PASS" in out and "the gate's decisions are in promotion_decisions" in out  # not the gate's own
    monkeypatch.setenv("MM_ASSETS__PROMOTION__MIN_ACCURACY", "0.999")
    report_file = settings.storage.lake + "/report.json"
    assert main(["promotion-report", "--min-share", "0.99", "--json", report_file]) == 1
    out = capsys.readouterr().out
    assert "gate: FAIL" in out and "accuracy < min_accuracy" in out
    # the rule's line names its first series, as the JSON does
    examples = json.loads(Path(report_file).read_text())["failure_examples"]["accuracy < min_accuracy"]
    assert len(examples) == 3 and f"e.g. {', '.join(examples)}" in out
    assert main(["promotion-report"]) == 1  # the default share (0.5) fails when no series passes
    assert "required 50.0%" in capsys.readouterr().out
    # champions promoted under the lower floor serve, but do not pass today's rule; each failure of a rule counts
    report = json.loads(Path(report_file).read_text())
    assert report["champions"] > 0 and report["champions_below_floors"] == report["champions"]
    assert report["series_with_gate_passing_model"] == report["challengers_passing_rules"] == 0
    assert sum(report["failures_by_rule"].values()) == report["series"]
    assert report["failures_by_rule"]["accuracy < min_accuracy"] > 1
    # the next day's ingest fails: the cycle stops there, and the summary shows what was stored, unchanged
    with sa.create_engine(settings.source.url).begin() as conn:  # a bad row the ingest run refuses
        conn.exec_driver_sql("UPDATE sales SET sales = -3 WHERE rowid = (SELECT min(rowid) FROM sales)")
    report = run_cycle(build_definitions(refusing(settings)), instance, refusing(settings), log=lambda m: None)
    assert report.stopped == "ingest_job" and report.periods == 0
    assert report.summary["champions"] > 0 and report.summary["series_with_model"] > 0


def test_champions_trained_for_a_shorter_horizon_are_said_to_serve_nothing_and_not_counted(tiny_project):
    """The horizon raised from 14 to 28 and every new challenger rejected: yesterday's champions stay in the
    registry but cannot forecast 28 periods. Their series are forecast by their baseline; the scoring check says so
    with advice that holds (retraining alone repeats the rejection), the gate's reason does not say the champion
    stays (it serves nothing), and the promotion report does not count them as gate-passing models."""
    from mm_assets.registry.promotion import CANNOT_SERVE

    settings, _ = tiny_project
    instance = dg.DagsterInstance.ephemeral()
    assert run_cycle(build_definitions(settings), instance, settings, log=lambda m: None).ok
    champions = len(ProductionRegistry(settings.storage.production_registry).current())
    assert champions > 0
    longer = settings.model_copy(update={"horizon": 28, "promotion": settings.promotion.model_copy(
        update={"min_accuracy": 0.999})})
    report = run_cycle(build_definitions(longer), instance, longer, log=lambda m: None)
    failed = [c for c in report.failed_checks if c.name == "champions_forecast"]
    assert failed and all("cannot forecast with these settings: it was trained for horizon + gap = 14"
                          in c.description for c in failed)
    assert "retraining alone repeats that" in failed[0].description
    # the summary neither counts them as kept by a rejected challenger nor leaves them unnamed among the champions
    assert report.summary["champions_serving_nothing"] == champions == report.summary["champions"]
    assert report.summary["rejected_keeping_champion"] == 0 < report.summary["rejected"]
    production = ProductionRegistry(settings.storage.production_registry)
    decisions = production.newest_decisions(sorted(production.current()["partition_key"].unique()))
    unfit = decisions[decisions["reason"].str.contains(CANNOT_SERVE, regex=False)]
    assert len(unfit) == champions
    assert unfit["reason"].str.contains("its baseline serves it until a challenger passes").all()
    assert not unfit["reason"].str.contains("the champion stays").any()
    lenient = longer.model_copy(update={"promotion": longer.promotion.model_copy(update={"min_accuracy": 0.0})})
    counted = promotion_report(lenient)
    assert counted["champions"] == champions and counted["champions_unfit_for_settings"] == champions
    assert counted["champions_below_floors"] == 0


@pytest.mark.parametrize("reader", ["cycle", "backtest"])
def test_periods_the_source_took_back_leave_the_lake_the_datasets_and_the_forecasts(tiny_project, reader):
    """The source's last 10 days are deleted after a cycle (a load rolled back): the next ingest, the cycle's or
    the backtest's, reads the lake's periods past the source's newest date again, so the datasets end at the
    source's newest day and the forecasts start after it; before, the lake kept those days and the models went on
    from rows that were gone."""
    from mm_assets.cycle import run_backtest
    from mm_assets.ingest.datasets import dataset_file

    settings, _ = tiny_project
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    assert run_cycle(defs, instance, settings, log=lambda m: None).ok
    end = pd.Timestamp(TINY_END) - pd.Timedelta(days=10)
    with sa.create_engine(settings.source.url).begin() as conn:
        conn.execute(sa.text("DELETE FROM sales WHERE date > :d"), {"d": f"{end.date()} 23:59"})
    lines: list[str] = []
    if reader == "cycle":
        assert run_cycle(defs, instance, settings, log=lines.append).ok
    else:
        assert run_backtest(defs, instance, settings, origins=1, log=lines.append).batched_ok
    assert any(line.startswith("note: the lake holds 10 periods after the source's newest date") for line in lines)
    lake = Lake(settings.storage.lake)
    for store in ("S01", "S02", "S03"):
        dataset = lake.read_parquet(dataset_file(store))
        assert dataset.loc[dataset["y"].notna(), "ds"].max() == end
    if reader == "cycle":
        newest = Warehouse(settings.storage.warehouse, ["store", "item"]).newest_predictions(["S01", "S02", "S03"])
        assert set(pd.to_datetime(newest["origin"])) == {end}


def test_model_retention_deletes_old_versions_and_bundles_but_not_what_serves(tiny_project):
    """``storage.model_retention_days``: training deletes the versions older than the retention with the bundle
    files no remaining version points at; each series' latest and its champion's stay (a global model's bundle
    stays while a champion points at it), and every day's forecasts are served. The gate deletes the production
    copies of champions replaced before the retention."""
    import glob

    settings, _ = tiny_project
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(
        update={"model_retention_days": 1})})
    defs = build_definitions(settings)
    lake = Lake(settings.storage.lake)
    reg = ModelRegistry(settings.storage.registry, lake)

    def age_every_version():  # as if the versions and champions so far were two days old
        with reg.engine.begin() as conn:
            conn.execute(sa.text("UPDATE model_versions SET trained_at = datetime(trained_at, '-2 days')"))
        with sa.create_engine(settings.storage.production_registry).begin() as conn:
            conn.execute(sa.text("UPDATE champions SET promoted_at = datetime(promoted_at, '-2 days')"))

    with dg.instance_for_test() as instance:
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        per_day = reg.count()
        age_every_version()
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        age_every_version()
        champions = ProductionRegistry(settings.storage.production_registry).current()  # as day 3's training sees
        assert run_cycle(defs, instance, settings, log=lambda m: None).ok
        pruned = [r.asset_observation.metadata["pruned_versions"].value  # run-wide figures: an observation a run
                  for r in instance.fetch_observations(dg.AssetKey("trained_models"), limit=100).records
                  if "pruned_versions" in r.asset_observation.metadata]
    versions = pd.read_sql("SELECT series_key, version, artifact_uri FROM model_versions", reg.engine)
    left = set(zip(versions["series_key"], versions["version"].astype(int)))
    kept = {(k, int(v)) for k, v in zip(champions["series_key"], champions["version"])}
    assert kept <= left  # the champions' versions stay: the gate heals a champion's production copy from them
    old = {(k, v) for k, v in left if v < 3}  # days 1 and 2: only what a champion needs is left of them
    assert old <= kept and sum(pruned) == 3 * per_day - len(left) > 0
    assert reg.count() == len(left) and len(left) == per_day + len(old)  # day 3's versions all there
    files = {lake.relative(p) for p in glob.glob(f"{settings.storage.lake}/models/*/*.bin")}
    assert files == {lake.relative(u) for u in versions["artifact_uri"]}  # no file without a version, none missing
    # the production copies: the current champions' only (their earlier champions' rows stay, as the record)
    now = ProductionRegistry(settings.storage.production_registry).current()
    copies = {lake.relative(p) for p in glob.glob(f"{settings.storage.lake}/production/models/*/*.bin")}
    assert copies == {lake.relative(u) for u in now["artifact_uri"]}
    history = pd.read_sql("SELECT COUNT(*) AS n FROM champions", sa.create_engine(settings.storage.production_registry))
    assert int(history["n"].iloc[0]) > len(now)
    # pruning again deletes and counts nothing: the copies deleted before are not counted a second time
    from mm_assets.registry.model_registry import retention_cutoff

    writer = ProductionRegistry(settings.storage.production_registry, lake, writable=True)
    assert writer.prune_copies(retention_cutoff(1)) == 0


def test_the_error_threshold_fails_a_global_models_run_past_that_many_failed_series(tiny_project, monkeypatch):
    """A global model's batch is one mini-batch that does not fail as a whole when some of its series fail:
    runner.mini_batch_error_threshold counts those series, so two failures past a threshold of 1 fail the run
    (before, the run was green whatever failed). The failures are recorded and the trained series kept."""
    settings, _ = tiny_project
    settings = settings.model_copy(update={
        "model": settings.model.model_copy(update={"type": "lightgbm"}),
        "runner": settings.runner.model_copy(update={"mini_batch_error_threshold": 1})})
    monkeypatch.setenv("MM_ASSETS_INJECT_FAILURES", "S02/I003,S02/I001")  # one store: the same run (job)
    with dg.instance_for_test() as instance:
        report = run_cycle(build_definitions(settings), instance, settings, log=lambda m: None)
        failed = [job for job, _, success, _ in report.runs if not success]
        assert failed == ["train_job"]  # the run of S01..S02 (S03's run is another job, with its own count)
        run = next(r for r in instance.get_runs() if r.job_name == "train_job" and r.status == dg.DagsterRunStatus.FAILURE)
        messages = [e.dagster_event.step_failure_data.error.message for e in instance.all_logs(run.run_id)
                    if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert any("2 failed series exceed runner.mini_batch_error_threshold=1" in m for m in messages), messages
        registry = ModelRegistry(settings.storage.registry)
        assert set(registry.failures()["series_key"]) == {"S02/I003", "S02/I001"}
        assert len(registry.latest()) == 10  # the other series' models are kept
    settings = settings.model_copy(update={"runner": settings.runner.model_copy(update={"mini_batch_error_threshold": 2})})
    with dg.instance_for_test() as instance:  # at the threshold: the run passes, the failures still recorded
        assert run_cycle(build_definitions(settings), instance, settings, log=lambda m: None).ok
