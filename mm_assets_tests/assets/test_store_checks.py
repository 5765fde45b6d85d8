"""Checks evaluated per store in Dagster, and the stores' metadata tables."""

import json

import pandas as pd

from mm_assets.assets.partitions import group_partitions_name


def test_a_run_of_stores_logs_each_stores_evaluation_and_no_notice_that_checks_were_not_produced(tmp_path):
    """The checks are events, not outputs: Dagster's notice that the step 'did not yield expected outputs'
    naming them would tell an operator that checks shown passed a line above never ran."""
    import dagster as dg

    from mm_assets.assets.store_checks import evaluations, store_asset, store_check
    from mm_assets.checks.verdict import Verdict
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path)

    @store_asset(settings, dg.AssetSpec("stores_asset"),
                 [store_check("all_good", "stores_asset", settings, "every store passes")])
    def stores_asset(context: dg.AssetExecutionContext):
        yield dg.MaterializeResult()
        yield from evaluations(context, {"all_good": {k: Verdict(passed=k != "B", description=f"{k} is bad\nmore")
                                                      for k in context.partition_keys}})

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(group_partitions_name(settings), ["A", "B"])
    result = dg.materialize([stores_asset], instance=instance,
                            tags={"dagster/asset_partition_range_start": "A", "dagster/asset_partition_range_end": "B"})
    assert result.success
    verdicts = {e.partition: e.passed for e in result.get_asset_check_evaluations()}
    assert verdicts == {"A": True, "B": False}
    messages = [r.user_message for r in instance.all_logs(result.run_id)]
    assert not [m for m in messages if "did not yield or return expected outputs" in m]
    # a failed check is a line of the run's log at its severity: its event alone is logged at DEBUG, and a log
    # filtered to warnings and errors showed a green run whose ERROR check had not passed
    said = [(r.level, r.user_message) for r in instance.all_logs(result.run_id)
            if "did not pass" in r.user_message and r.level >= 30]
    assert said == [(40, "check all_good [B] did not pass: B is bad")]


def test_the_store_metadata_names_the_series_on_their_baseline_and_why():
    from mm_assets.reporting.on_baseline import on_baseline_table

    decided = pd.DataFrame({"series_key": ["A/1", "A/2", "B/1"], "partition_key": ["A", "A", "B"],
                            "reason": ["passes the gate", "does not beat the baseline: MAE 1.2 x", "passes"]})
    current = pd.DataFrame({"series_key": ["A/1", "B/1"], "partition_key": ["A", "B"]})
    table = on_baseline_table(decided, current, "A")
    assert "| A/2 | does not beat the baseline: MAE 1.2 x |" in table and "A/1" not in table
    assert "every series" in on_baseline_table(decided, current, "B")


def test_worst_vs_baseline_lists_a_series_once_and_an_undefined_wape_as_na():
    from mm_assets.reporting.accuracy_summary import store_summary

    sums = pd.DataFrame({
        "store": "S1", "item": ["I1", "I1", "I2"], "model_version": [1, 2, 1], "model_source": "champion",
        "points": 5, "sum_actual": [0.0, 0.0, 10.0], "sum_abs_error": [5.0, 5.0, 2.0], "sum_error": [5.0, 5.0, -1.0],
        "sum_baseline_abs_error": [1.0, 1.0, 3.0], "first_ds": pd.Timestamp("2026-11-01"),
        "last_ds": pd.Timestamp("2026-11-05")})
    table = store_summary(sums, ["store", "item"])["worst_vs_baseline"]
    assert table.count("| S1 | I1 |") == 1 and "| S1 | I1 | 2 | 10 | n/a | n/a | 5.00 |" in table
    assert "nan" not in table


def test_what_got_worse_compares_with_the_model_of_the_previous_data_not_a_same_day_rerun():
    from types import SimpleNamespace

    from mm_assets.reporting.changes import previous_day_versions, worst_rises

    stored = pd.DataFrame({"series_key": ["A/1"] * 3 + ["A/2"], "version": [1, 2, 3, 1],
                           "data_end": pd.to_datetime(["2026-11-28", "2026-11-29", "2026-11-29", "2026-11-28"]),
                           "wape": [0.2, 0.3, 0.3, 0.4]})

    def rows_of(keys, versions):
        pairs = set(zip(keys, (int(v) for v in versions)))
        return stored[[(k, v) in pairs for k, v in zip(stored["series_key"], stored["version"])]]

    registered = pd.DataFrame({"series_key": ["A/1", "A/2"], "version": [4, 2],
                               "data_end": pd.to_datetime(["2026-11-29", "2026-11-29"])})
    previous = previous_day_versions(SimpleNamespace(rows_of=rows_of), registered).set_index("series_key")
    assert previous.loc["A/1", "version"] == 1  # versions 2 and 3 are the same day's data: reruns
    assert previous.loc["A/2", "version"] == 1
    # the cycle summary's line: across every store, the largest rises first, against the previous day's version
    current = registered.assign(model_type="lightgbm", wape=[0.9, 0.42])
    reg = SimpleNamespace(rows_of=rows_of)
    stored["model_type"] = "lightgbm"
    assert worst_rises(reg, current) == (1, ["A/1 20.0% → 90.0%"])  # A/2: 40 → 42 %, within 5 points
    from mm_assets.reporting.changes import rises_and_falls

    assert rises_and_falls(reg, current)[2] == 0  # and none fell by as much
    assert worst_rises(reg, current.iloc[:0]) == (0, [])
    first = SimpleNamespace(rows_of=lambda keys, versions: pd.DataFrame(columns=["series_key", "version"]))
    assert worst_rises(first, current) == (0, [])  # a first cycle: no earlier version


def test_what_got_worse_outlives_any_number_of_same_day_reruns():
    """Four reruns on the same data made the day's rises vanish: the previous data's version was looked for three
    versions back only, and the rerun was compared with a rerun. However many reruns, the comparison is with the
    previous data's model, read in a few rounds."""
    from types import SimpleNamespace

    from mm_assets.reporting.changes import previous_day_versions, worst_rises

    reruns = 40
    stored = pd.DataFrame({"series_key": ["A/1"] * (reruns + 2) + ["A/2"] * 2,
                           "version": [*range(1, reruns + 3), 1, 2],
                           "data_end": pd.to_datetime(["2026-11-20", "2026-11-27"] + ["2026-12-04"] * reruns
                                                      + ["2026-11-27", "2026-12-04"]),
                           "model_type": "lightgbm", "wape": [0.2, 0.11] + [0.3] * reruns + [0.4, 0.41]})
    reads = []

    def rows_of(keys, versions):
        reads.append(len(keys))
        pairs = set(zip(keys, (int(v) for v in versions)))
        return stored[[(k, v) in pairs for k, v in zip(stored["series_key"], stored["version"])]]

    reg = SimpleNamespace(rows_of=rows_of)
    registered = pd.DataFrame({"series_key": ["A/1", "A/2"], "version": [reruns + 3, 3],
                               "data_end": pd.to_datetime(["2026-12-04", "2026-12-04"]),
                               "model_type": "lightgbm", "wape": [0.3, 0.41]})
    previous = previous_day_versions(reg, registered).set_index("series_key")
    assert previous.loc["A/1", "version"] == 2 and previous.loc["A/2", "version"] == 1
    # A/1 read 3, 6, 12 then the 21 versions left (down to version 1); A/2 its 2 in the first read, where it
    # found its previous data's version
    assert reads == [3 + 2, 6, 12, 21]
    assert worst_rises(reg, registered) == (1, ["A/1 11.0% → 30.0%"])
    # a series with one version before, all of them the same day's: compared with the version before
    alone = pd.DataFrame({"series_key": ["A/2"], "version": [3], "data_end": pd.to_datetime(["2026-11-27"])})
    assert previous_day_versions(reg, alone).iloc[0]["version"] == 2
    assert previous_day_versions(reg, alone.assign(version=1)).empty  # a first version: nothing before it


def test_after_a_corrected_source_what_got_worse_compares_with_the_version_that_served():
    """The same data end with other holdout actuals is no rerun: the source was corrected and the store retrained.
    Comparing with the version before the one that served (an older data end) showed a model two runs old."""
    from types import SimpleNamespace

    from mm_assets.reporting.changes import previous_day_versions

    def metrics(fingerprint: float) -> str:
        return json.dumps({"holdout_fingerprint": fingerprint})

    stored = pd.DataFrame({"series_key": ["A/1"] * 3, "version": [1, 2, 3],
                           "data_end": pd.to_datetime(["2026-11-22", "2026-11-23", "2026-11-23"]),
                           "metrics": [metrics(10.0), metrics(20.0), metrics(20.0)]})

    def rows_of(keys, versions):
        pairs = set(zip(keys, (int(v) for v in versions)))
        return stored[[(k, v) in pairs for k, v in zip(stored["series_key"], stored["version"])]]

    reg = SimpleNamespace(rows_of=rows_of)
    for fingerprint, compared in ((20.0, 1), (35.0, 3)):  # a rerun of the same actuals; corrected actuals
        registered = pd.DataFrame({"series_key": ["A/1"], "version": [4], "data_end": pd.to_datetime(["2026-11-23"]),
                                   "metrics": [metrics(fingerprint)]})
        assert previous_day_versions(reg, registered).iloc[0]["version"] == compared


def test_markdown_of_a_report_becomes_markdown_metadata_and_plain_text_stays_text():
    import dagster as dg

    from mm_assets.assets.metadata import dagster_metadata
    from mm_assets.reporting.markdown import LakePath, Markdown

    out = dagster_metadata({"table": Markdown("| a |\n|---|"), "note": "plain", "keys": ["S1"], "n": 3,
                            "path": LakePath("data/lake/datasets/S1.parquet")})
    assert isinstance(out["path"], dg.PathMetadataValue) and out["path"].path == "data/lake/datasets/S1.parquet"
    assert isinstance(out["table"], dg.MarkdownMetadataValue) and out["table"].value == "| a |\n|---|"
    assert out["note"] == "plain" and isinstance(out["keys"], dg.JsonMetadataValue) and out["n"] == 3
