"""The per-store verdicts behind the checks: each store judged on its own rows only."""

import pandas as pd

from mm_assets.assets.partitions import group_partitions_name
from mm_assets.assets.promotion import decision_for_every_series, served_by_model
from mm_assets.assets.scoring import envelope_within, every_series_forecast
from mm_assets.assets.store_checks import no_failed_series


def _rows(spec: dict[str, tuple[str, int, int]]) -> pd.DataFrame:
    """series_key -> (store, forecast rows, rows replaced by the envelope)."""
    out = []
    for key, (store, n, replaced) in spec.items():
        out += [{"series_key": key, "partition_key": store, "envelope_replaced": int(i < replaced)} for i in range(n)]
    return pd.DataFrame(out)


def test_every_series_forecast_fails_only_the_store_with_a_short_or_failed_series():
    rows = _rows({"A/1": ("A", 3, 0), "A/2": ("A", 3, 0), "B/1": ("B", 3, 0), "B/2": ("B", 2, 0)})
    failures = pd.DataFrame({"series_key": ["C/9"], "partition_key": ["C"]})
    verdicts = every_series_forecast(["A", "B", "C"], rows, failures, horizon=3)
    assert verdicts["A"].passed
    assert not verdicts["B"].passed and verdicts["B"].metadata["complete_series"] == 1
    assert "1 of 2 series of store B" in verdicts["B"].description
    assert not verdicts["C"].passed and verdicts["C"].metadata["failed"] == 1


def test_envelope_within_counts_series_not_rows_and_names_them():
    rows = _rows({"A/1": ("A", 3, 2), "A/2": ("A", 3, 0), "B/1": ("B", 3, 0)})
    verdicts = envelope_within(["A", "B"], rows)
    assert not verdicts["A"].passed and verdicts["A"].metadata["envelope_replaced"] == 1
    assert verdicts["A"].metadata["replaced_keys"] == "A/1"
    assert verdicts["B"].passed


def test_no_failed_series_per_store():
    done = pd.DataFrame({"series_key": ["A/1", "B/1"], "partition_key": ["A", "B"]})
    failures = pd.DataFrame({"series_key": ["B/2"], "partition_key": ["B"]})
    verdicts = no_failed_series(["A", "B"], failures, done)
    assert verdicts["A"].passed and verdicts["A"].metadata["series"] == 1
    assert not verdicts["B"].passed and verdicts["B"].metadata == {"failed": 1, "series": 2, "failed_keys": "B/2"}


def test_served_by_model_and_decisions_per_store():
    counts = {"A": {"series": 4, "served_by_baseline": 1, "served_by_baseline_share": 0.25},
              "B": {"series": 3, "served_by_baseline": 3, "served_by_baseline_share": 1.0}}
    served = served_by_model(counts, max_share=0.5)
    assert served["A"].passed and not served["B"].passed
    assert "3 of 3 series of store B" in served["B"].description
    assert "3 whose challengers do not beat the baseline" in served["B"].description
    new_store = served_by_model({"N": {**counts["B"], "series": 1, "served_by_baseline": 1, "fallback": 1,
                                       "served_by_baseline_share": 1.0}}, max_share=0.5)["N"]
    assert "1 too short for the model" in new_store.description and "do not beat" not in new_store.description
    # one series of one on its baseline says little of the models: a warning (a store of 3 or more: an error)
    assert new_store.warn_only and "A store of fewer than 3 series: a warning." in new_store.description
    assert not served["B"].warn_only
    manifest = pd.DataFrame({"partition_key": ["A"] * 4 + ["B"] * 4})  # B: one series got no decision
    decided = decision_for_every_series(manifest, counts)
    assert decided["A"].passed and not decided["B"].passed
    assert "1 of 4 series of store B" in decided["B"].description
    # a store whose series all got none: gone from the source, most likely, which retiring it answers
    gone = decision_for_every_series(pd.DataFrame({"partition_key": ["G"] * 3}), {"G": {**counts["B"], "series": 0}})
    assert not gone["G"].passed
    assert gone["G"].description.startswith("none of the 3 series of store G got a decision: a store gone from the "
                                            "source") and "mm-assets retire-partition G" in gone["G"].description


def test_complete_horizon_reads_the_newest_origin_of_every_series_back():
    from mm_assets.assets.publishing import complete_horizon

    predictions = pd.DataFrame({"store": "A", "item": ["1", "1", "2", "2"]})
    published = pd.DataFrame({"store": "A", "item": ["1", "1", "2"],  # item 2's newest origin lost a row
                              "origin": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-02"]),
                              "rows": [1, 2, 1]})
    verdict = complete_horizon("A", predictions, published, ["store", "item"], horizon=2)
    assert not verdict.passed and verdict.metadata == {"complete_series": 1, "series": 2, "horizon": 2}
    assert "1 of 2 series of store A" in verdict.description
    whole = published.assign(rows=[1, 2, 2])
    assert complete_horizon("A", predictions, whole, ["store", "item"], horizon=2).passed


def test_a_run_of_stores_logs_each_stores_evaluation_and_no_notice_that_checks_were_not_produced(tmp_path):
    """The checks are events, not outputs: Dagster's notice that the step 'did not yield expected outputs'
    naming them would tell an operator that checks shown passed a line above never ran."""
    import dagster as dg

    from mm_assets.assets.store_checks import Verdict, evaluations, store_asset, store_check
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path)

    @store_asset(settings, dg.AssetSpec("stores_asset"),
                 [store_check("all_good", "stores_asset", settings, "every store passes")])
    def stores_asset(context: dg.AssetExecutionContext):
        yield dg.MaterializeResult()
        yield from evaluations(context, {"all_good": {k: Verdict(passed=k != "B") for k in context.partition_keys}})

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(group_partitions_name(settings), ["A", "B"])
    result = dg.materialize([stores_asset], instance=instance,
                            tags={"dagster/asset_partition_range_start": "A", "dagster/asset_partition_range_end": "B"})
    assert result.success
    verdicts = {e.partition: e.passed for e in result.get_asset_check_evaluations()}
    assert verdicts == {"A": True, "B": False}
    messages = [r.user_message for r in instance.all_logs(result.run_id)]
    assert not [m for m in messages if "did not yield or return expected outputs" in m]


def test_champions_forecast_fails_the_store_whose_champion_could_not_forecast_and_says_why():
    from mm_assets.assets.scoring import champions_forecast

    rows = pd.DataFrame({
        "series_key": ["A/1", "A/1", "A/2", "B/1", "B/2"], "partition_key": ["A", "A", "A", "B", "B"],
        "note": ["model v4 failed to forecast: ValueError: forecast reaches 14 periods past the history"] * 2
        + [None, "no production champion: the series' baseline serves it", "envelope: 1e9 > 3 x 20"]})
    verdicts = champions_forecast(["A", "B"], rows)
    assert not verdicts["A"].passed and verdicts["A"].metadata["champion_failed"] == 1
    assert "A/1: model v4 failed to forecast" in verdicts["A"].description
    assert verdicts["B"].passed  # a series without a champion, or replaced by the envelope: other checks


def test_a_series_gone_from_the_data_is_not_expected_to_get_a_decision_and_is_counted_apart():
    """A delisted item keeps its old model and champion; its store's newest training run did not train it."""
    manifest = pd.DataFrame({
        "series_key": ["A/1", "A/2", "A/3", "B/1"], "partition_key": ["A", "A", "A", "B"],
        "run_id": ["new", "new", "old", "b-run"],
        "trained_at": pd.to_datetime(["2026-12-01 10:00", "2026-12-01 10:00", "2026-11-20 10:00", "2026-11-20 09:00"])})
    counts = {"A": {"series": 2, "served_by_baseline": 0}, "B": {"series": 1, "served_by_baseline": 0}}
    decided = decision_for_every_series(manifest, counts)
    assert decided["A"].passed and decided["A"].metadata["series_not_in_newest_training"] == 1
    assert decided["B"].passed and decided["B"].metadata["series_not_in_newest_training"] == 0
    counts["A"]["series"] = 1  # one of the two series still in the data got no decision
    assert not decision_for_every_series(manifest, counts)["A"].passed
    assert "mm-assets failures --store A" in decision_for_every_series(manifest, counts)["A"].description


def test_realized_beats_baseline_judges_a_store_only_on_enough_points():
    from mm_assets.assets.accuracy import MIN_JUDGED_POINTS, realized_beats_baseline

    stores = pd.DataFrame({"mase_vs_baseline": [1.88, 1.88, 0.7], "points": [4, MIN_JUDGED_POINTS, 100]},
                          index=["new", "old", "good"])
    verdicts = realized_beats_baseline(["new", "old", "good"], stores, window=28)
    assert verdicts["new"].passed and verdicts["new"].metadata["judged"] is False
    assert "not judged yet, 4 realised points" in verdicts["new"].note  # a pass that judged nothing says so
    assert verdicts["good"].note is None
    assert not verdicts["old"].passed and "1.88 × the baseline's" in verdicts["old"].description
    assert verdicts["good"].passed and verdicts["good"].metadata["judged"] is True


def test_the_store_metadata_names_the_series_on_their_baseline_and_why():
    from mm_assets.assets.promotion import on_baseline_table

    decided = pd.DataFrame({"series_key": ["A/1", "A/2", "B/1"], "partition_key": ["A", "A", "B"],
                            "reason": ["passes the gate", "does not beat the baseline: MAE 1.2 x", "passes"]})
    current = pd.DataFrame({"series_key": ["A/1", "B/1"], "partition_key": ["A", "B"]})
    table = on_baseline_table(decided, current, "A").value
    assert "| A/2 | does not beat the baseline: MAE 1.2 x |" in table and "A/1" not in table
    assert "every series" in on_baseline_table(decided, current, "B").value


def test_worst_vs_baseline_lists_a_series_once_and_an_undefined_wape_as_na():
    from mm_assets.assets.accuracy import _store_summary

    sums = pd.DataFrame({
        "store": "S1", "item": ["I1", "I1", "I2"], "model_version": [1, 2, 1], "model_source": "champion",
        "points": 5, "sum_actual": [0.0, 0.0, 10.0], "sum_abs_error": [5.0, 5.0, 2.0], "sum_error": [5.0, 5.0, -1.0],
        "sum_baseline_abs_error": [1.0, 1.0, 3.0], "first_ds": pd.Timestamp("2026-11-01"),
        "last_ds": pd.Timestamp("2026-11-05")})
    table = _store_summary(sums, ["store", "item"])["worst_vs_baseline"].value
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
