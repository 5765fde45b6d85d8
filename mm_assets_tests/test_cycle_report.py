"""What the command line reports of a cycle: failed checks under their run, series forecast from an old origin."""

from mm_assets.job_runs import MAX_CHECK_LINES, MAX_NAMED, FailedCheck, JobRun


def test_failed_checks_are_printed_under_their_run_once_each_and_capped():
    reach = [FailedCheck("series_reach_data_end", "WARN", f"S{i:02d}", f"store S{i:02d}: 1 series ends early")
             for i in range(MAX_NAMED + 3)]
    others = [FailedCheck(f"check_{k}", "ERROR", "S00", f"problem {k}") for k in range(MAX_CHECK_LINES)]
    others.insert(1, FailedCheck("check_0", "ERROR", "S13", "problem 0"))
    run = JobRun("train_job", "S00..S12", True, 1.0, "abcdef123456", failed_checks=[*reach, *others])
    lines = run.log_lines()
    assert lines[0].startswith("  train_job [S00..S12] ok")
    assert lines[1] == "    check series_reach_data_end WARN [S00]: store S00: 1 series ends early"
    named = ", ".join(f"S{i:02d}" for i in range(1, MAX_NAMED + 1))
    assert lines[2] == (f"      also warned for {MAX_NAMED + 2} more: {named} ... (each with its own finding: the UI's "
                        "asset checks)")  # a warning, not a failure
    assert lines[4] == "      also failed for 1 more: S13 (each with its own finding: the UI's asset checks)"
    assert [line.split(":")[0] for line in lines[3:4] + lines[5:-1]] == [
        f"    check check_{k} ERROR [S00]" for k in range(MAX_CHECK_LINES - 1)]
    assert lines[-1] == "    ... and 1 more failed checks (the UI's asset checks list every one)"
    assert JobRun("ingest_job", "x", True, 1.0, "abcdef123456").log_lines() == [
        "  ingest_job [x] ok in 1.0s (run abcdef12)"]


def test_a_series_forecast_from_an_old_origin_is_counted_apart():
    import pandas as pd

    from mm_assets.cycle import newest_origins, recent_origin_examples, recent_origins, stale_series

    preds = pd.DataFrame({
        "store": ["S1", "S1", "S1", "S2", "S2", "S3"], "item": ["A", "A", "B", "C", "D", "E"],
        "origin": ["2026-11-20", "2026-11-01", "2026-11-10", "2026-10-01", "2026-10-01", "2026-11-19"]})
    newest, none = newest_origins(preds, ["store", "item"]), newest_origins(preds.iloc[:0], ["store", "item"])
    # S1/B is 10 days behind the newest; S2's data stopped as a whole (its series agree with each other): behind too
    assert stale_series(newest, "store", pd.Timedelta(days=3)) == (
        {"S1/B", "S2/C", "S2/D"}, {"S2": "2026-10-01"})
    assert stale_series(newest, "store", pd.Timedelta(days=10)) == (
        {"S2/C", "S2/D"}, {"S2": "2026-10-01"})
    assert stale_series(newest, "store", pd.Timedelta(days=60)) == (set(), {})
    assert stale_series(none, "store", pd.Timedelta(days=3)) == (set(), {})
    # a source rolled back to an earlier end, and S1 gone from it: its old forecasts are not the newest that the
    # stores with rows (S2, S3) are behind; judged from theirs (2026-11-19), S3 is current
    rolled = newest_origins(pd.DataFrame({"store": ["S1", "S2", "S3"], "item": ["A", "C", "E"],
                                          "origin": ["2026-12-20", "2026-11-01", "2026-11-01"]}), ["store", "item"])
    assert stale_series(rolled, "store", pd.Timedelta(days=3)) == (
        {"S2/C", "S3/E"}, {"S2": "2026-11-01", "S3": "2026-11-01"})  # as it was: every other store behind
    assert stale_series(rolled, "store", pd.Timedelta(days=3), pd.Timestamp("2026-11-01")) == (set(), {})

    # within 3 days of the newest (2026-11-20): S3/E only (S1/A's newest is the newest itself)
    assert recent_origins(newest, pd.Timedelta(days=3)) == (1, "2026-11-20")
    assert recent_origins(newest, pd.Timedelta(days=10)) == (2, "2026-11-20")  # and S1/B
    assert recent_origins(none, pd.Timedelta(days=3)) == (0, None)
    # named, the oldest first: a count alone after a late feed left the operator to search each store
    assert recent_origin_examples(newest, pd.Timedelta(days=10)) == ["S1/B from 2026-11-10", "S3/E from 2026-11-19"]
    assert recent_origin_examples(newest, pd.Timedelta(days=10), shown=1) == ["S1/B from 2026-11-10"]
    assert recent_origin_examples(none, pd.Timedelta(days=3)) == []


def test_plan_periods_sums_the_scoring_runs_store_partitions_and_nothing_else():
    from types import SimpleNamespace

    import dagster as dg

    from mm_assets.cycle import plan_periods

    def materialization(asset: str, **figures):
        metadata = {k: dg.MetadataValue.int(v) for k, v in figures.items()}
        return SimpleNamespace(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION, asset_key=dg.AssetKey(asset),
                               event_specific_data=SimpleNamespace(materialization=SimpleNamespace(metadata=metadata)))

    run = SimpleNamespace(all_events=[
        materialization("batch_predictions", periods_with_plan=28, periods_without_plan=0),
        materialization("batch_predictions", periods_with_plan=0, periods_without_plan=56),  # a store without plans
        materialization("batch_predictions"),  # a run-wide materialization: no store figures
        materialization("trained_models", periods_with_plan=5, periods_without_plan=5),
        SimpleNamespace(event_type=dg.DagsterEventType.STEP_SUCCESS, asset_key=None),
    ])
    assert plan_periods(run) == (28, 84)
    assert plan_periods(None) == (0, 0)  # a run that did not start


def test_a_history_shorter_than_a_model_needs_is_said_before_the_runs():
    from mm_assets.cycle import history_too_short
    from mm_assets.settings import Settings

    weekly = Settings.model_validate({"frequency": "W-MON", "horizon": 80, "model": {"type": "lightgbm"}})
    why = history_too_short(weekly, 68)
    assert why.startswith("the source spans 68 periods, fewer than a model needs") and "horizon 80" in why
    assert history_too_short(weekly.model_copy(update={"horizon": 2}), 68) is None
    assert "lower model.min_train_periods" not in why  # not set: nothing to lower
    # a new deployment's 8 weeks under a settings file that asks 30 of them: the setting is named with its default
    asks = Settings.model_validate({"frequency": "W-MON", "horizon": 2, "gap": 1,
                                    "model": {"type": "lightgbm", "min_train_periods": 30}})
    assert "lower model.min_train_periods (set to 30; the default of lightgbm is 4), shorten the horizon" in (
        history_too_short(asks, 8))



def test_a_source_whose_newest_sale_is_days_behind_today_is_said():
    import pandas as pd

    from mm_assets.ingest.periods import sale_lag
    from mm_assets.settings import Settings

    today = pd.Timestamp("2026-12-02 09:30")
    daily = Settings()  # tolerance: ingest.max_normal_gap, 3 days
    assert sale_lag(daily, pd.Timestamp("2026-11-29"), today) is None
    late = sale_lag(daily, pd.Timestamp("2026-11-22"), today)
    assert late.startswith("the source's newest sale is 2026-11-22, 10 days before today (2026-12-02)")
    assert "already past" in late
    weekly = Settings(frequency="W-MON")
    assert sale_lag(weekly, pd.Timestamp("2026-11-16"), today) is None  # 2 weeks: within the tolerance
    assert "3 weeks before today" in sale_lag(weekly, pd.Timestamp("2026-11-09"), today)
    assert sale_lag(daily, None, today) is None


def test_sales_of_the_period_in_progress_are_said_to_wait_for_it_to_complete():
    """A weekly source with this week's sales: the ingest stops at the last complete week, and says so."""
    import pandas as pd

    from mm_assets.cycle import period_in_progress
    from mm_assets.settings import Settings

    weekly = Settings(frequency="W-MON")
    keys = ["2026-11-16", "2026-11-23"]  # complete weeks on 2026-12-03
    said = period_in_progress(weekly, keys, pd.Timestamp("2026-11-30"))
    assert said.startswith("the sales of 2026-11-30 .. 2026-12-06 (the week in progress, up to 2026-11-30)")
    assert "by the first cycle from 2026-12-07; the forecasts start after 2026-11-23" in said
    assert "a week's date is its first day" in said  # a source dating weeks by their last day is told the fix
    assert period_in_progress(weekly, keys, pd.Timestamp("2026-11-23")) is None  # nothing waits
    daily = period_in_progress(Settings(), ["2026-12-01", "2026-12-02"], pd.Timestamp("2026-12-03"))
    assert daily.startswith("the sales of 2026-12-03 (the day in progress")
    assert period_in_progress(weekly, keys, None) is None and period_in_progress(weekly, [], None) is None


def test_rewritten_periods_with_rows_added_or_removed_are_said_apart_from_corrections():
    from mm_assets.cli import _rewritten_words

    assert _rewritten_words(3, 0) == "corrections?"
    assert _rewritten_words(3, 3).startswith("each with rows removed, or added beside changed values: a store or "
                                             "series gone")
    assert _rewritten_words(68, 2).startswith("2 with rows removed") and _rewritten_words(68, 2).endswith(
        "the others corrections?")


def test_the_summary_after_an_ingest_that_failed_does_not_call_the_stored_figures_this_cycles(
        tmp_path, monkeypatch, capsys):
    """The cycle stopped at its ingest: the figures are of each store's newest run before, and say so."""
    from mm_assets import cli, cycle, definitions
    from mm_assets.cycle import CycleReport, summarize
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path)
    summary = {**summarize(settings, []), "series_with_model": 89, "trained_this_cycle": 89, "trained": 88}
    report = CycleReport(stopped="ingest_job", summary=summary)
    monkeypatch.setattr(cycle, "run_cycle", lambda *args, **kwargs: report)
    monkeypatch.setattr(definitions, "build_definitions", lambda settings: None)
    monkeypatch.setattr(cli, "_instance", lambda: None)
    monkeypatch.setattr(cli, "_say_other_lake", lambda *args, **kwargs: None)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    cli._run_cycle(settings)
    out = capsys.readouterr().out
    assert "THE CYCLE STOPPED: ingest_job failed" in out
    assert f"  series trained             {0:>8,}  this cycle; 89 series have a model from earlier runs" in out
    assert "89  this cycle" not in out


def test_the_summary_says_which_model_versions_the_registry_keeps_and_the_realised_window(
        tmp_path, monkeypatch, capsys):
    """Under storage.model_retention_days the registry holds only the kept versions: "(all runs)" was wrong; the
    realised ratio names the window it is over."""
    from mm_assets import cli, cycle, definitions
    from mm_assets.cycle import CycleReport, summarize
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path)
    summary = {**summarize(settings, []), "model_versions_total": 810, "realized_points": 120,
               "realized_mase_vs_baseline": 0.75, "realized_window_periods": 28}
    monkeypatch.setattr(cycle, "run_cycle", lambda *args, **kwargs: CycleReport(summary=summary))
    monkeypatch.setattr(definitions, "build_definitions", lambda settings: None)
    monkeypatch.setattr(cli, "_instance", lambda: None)
    monkeypatch.setattr(cli, "_say_other_lake", lambda *args, **kwargs: None)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    kept = settings.model_copy(update={"storage": settings.storage.model_copy(update={"model_retention_days": 7})})
    for current, words in ((settings, "(every run's)"), (kept, "(those of the last 7 days, each series' latest and "
                                                                "the champions: storage.model_retention_days)")):
        cli._run_cycle(current)
        out = capsys.readouterr().out
        assert f"  model versions registered       810  {words}" in out
        assert "120 points with actuals in the newest 28 periods: operations.accuracy_window)" in out


def test_the_summary_names_planned_periods_that_got_their_sales_together(tmp_path, monkeypatch, capsys):
    """A feed back after an outage brings the sales of several periods the lake held as plan only: the summary
    said nothing of it. One such period is every day's (the newest planned period got its sales): not named."""
    from mm_assets import cli, cycle, definitions
    from mm_assets.cycle import CycleReport, summarize
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path)
    summary = summarize(settings, [])
    monkeypatch.setattr(definitions, "build_definitions", lambda settings: None)
    monkeypatch.setattr(cli, "_instance", lambda: None)
    monkeypatch.setattr(cli, "_say_other_lake", lambda *args, **kwargs: None)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    for days, named in ((["2026-12-01"], False), ([f"2026-12-0{d}" for d in range(1, 7)], True)):
        report = CycleReport(summary=summary, first_sales=days)
        monkeypatch.setattr(cycle, "run_cycle", lambda *args, report=report, **kwargs: report)
        cli._run_cycle(settings)
        out = capsys.readouterr().out
        assert ("planned periods sold            6  periods the lake held as plan only that got their sales in "
                "this cycle: 2026-12-01, 2026-12-02, 2026-12-03, 2026-12-04, 2026-12-05 ... (a feed catching up"
                in out) == named
        assert ("planned periods sold" in out) == named


def test_champions_serving_nothing_say_which_left_the_envelope_and_which_cannot_forecast(
        tmp_path, monkeypatch, capsys):
    """A champion whose forecasts left the sanity envelope serves nothing now too, but not because it "cannot
    forecast under the current settings": the summary says which is which, and the check to read."""
    from mm_assets import cli, cycle, definitions
    from mm_assets.cycle import CycleReport, summarize
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path)
    monkeypatch.setattr(definitions, "build_definitions", lambda settings: None)
    monkeypatch.setattr(cli, "_instance", lambda: None)
    monkeypatch.setattr(cli, "_say_other_lake", lambda *args, **kwargs: None)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    for idle, left, words in ((3, 1, "(3 of them serve nothing now: 1 whose forecasts left the sanity envelope, "
                                     "replaced by their baseline's (check envelope_within); 2 whose series' newest "
                                     "forecasts are their baseline's"),
                              (1, 1, "(1 of them serve nothing now: 1 whose forecasts left the sanity envelope, "
                                     "replaced by their baseline's (check envelope_within))")):
        summary = {**summarize(settings, []), "champions": 9, "champions_serving_nothing": idle,
                   "champions_left_envelope": left}
        monkeypatch.setattr(cycle, "run_cycle", lambda *args, summary=summary, **kwargs: CycleReport(summary=summary))
        cli._run_cycle(settings)
        out = capsys.readouterr().out
        assert words in out, out
