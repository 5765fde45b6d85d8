"""The per-store verdicts behind the checks: each store judged on its own rows only."""

import pandas as pd

from mm_assets.checks.gate import decision_for_every_series, served_by_model
from mm_assets.checks.scoring import envelope_within, every_series_forecast
from mm_assets.checks.training import no_failed_series


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
    # which series, not only how many (a store of one account named only the store)
    named = served_by_model(counts, 0.5, {"B": [f"B/{i}" for i in range(1, 8)]})["B"].description
    assert "do not beat the baseline (B/1, B/2, B/3, B/4, B/5 and 2 more); see the reasons in production_models' " \
        "on_baseline table" in named
    new_store = served_by_model({"N": {**counts["B"], "series": 1, "served_by_baseline": 1, "fallback": 1,
                                       "served_by_baseline_share": 1.0}}, max_share=0.5)["N"]
    assert "1 too short for the model" in new_store.description and "do not beat" not in new_store.description
    # one series of one on its baseline says little of the models: a warning (a store of 3 or more: an error)
    assert new_store.warn_only and "A store of fewer than 3 series: a warning." in new_store.description
    assert not served["B"].warn_only
    # a new store of 15 series, all too short for a model: over the share only by them, a warning, said why
    young = served_by_model({"S07": {"series": 15, "served_by_baseline": 15, "fallback": 15,
                                     "served_by_baseline_share": 1.0}}, max_share=0.5)["S07"]
    assert not young.passed and young.warn_only and "Without the series too short for a model" in young.description
    # ... but not when the series that could be judged are over the share themselves
    mixed = served_by_model({"M": {"series": 10, "served_by_baseline": 9, "fallback": 3,
                                   "served_by_baseline_share": 0.9}}, max_share=0.5)["M"]
    assert not mixed.passed and not mixed.warn_only
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
    from mm_assets.checks.publishing import complete_horizon

    predictions = pd.DataFrame({"store": "A", "item": ["1", "1", "2", "2"]})
    published = pd.DataFrame({"store": "A", "item": ["1", "1", "2"],  # item 2's newest origin lost a row
                              "origin": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-02"]),
                              "rows": [1, 2, 1]})
    verdict = complete_horizon("A", predictions, published, ["store", "item"], horizon=2)
    assert not verdict.passed and verdict.metadata == {"complete_series": 1, "series": 2, "horizon": 2}
    assert "1 of 2 series of store A" in verdict.description
    whole = published.assign(rows=[1, 2, 2])
    assert complete_horizon("A", predictions, whole, ["store", "item"], horizon=2).passed
    # a series gone from the source keeps its forecasts of the same origin in the warehouse: not judged (it made
    # the count of series lacking forecasts -1)
    gone = pd.DataFrame({"store": "A", "item": ["3"], "origin": pd.to_datetime(["2026-01-02"]), "rows": [2]})
    verdict = complete_horizon("A", predictions, pd.concat([published, gone]), ["store", "item"], horizon=2)
    assert not verdict.passed and verdict.metadata["complete_series"] == 1
    assert "1 of 2 series of store A" in verdict.description
    assert complete_horizon("A", predictions, pd.concat([whole, gone]), ["store", "item"], horizon=2).passed


def test_champions_forecast_fails_the_store_whose_champion_could_not_forecast_and_says_why():
    from mm_assets.checks.scoring import champions_forecast

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
    assert decided["A"].metadata["series_trained_in_newest_run"] == 2 == decided["A"].metadata["decided_or_failed"]
    assert decided["B"].passed and decided["B"].metadata["series_not_in_newest_training"] == 0
    counts["A"]["series"] = 1  # one of the two series still in the data got no decision
    assert not decision_for_every_series(manifest, counts)["A"].passed
    assert "mm-assets failures --store A" in decision_for_every_series(manifest, counts)["A"].description


def test_realized_beats_baseline_judges_a_store_only_on_enough_points_and_periods():
    """A store of 40 products has 38 points the day after its first cycle, all of one day's luck: not judged
    until they span a week of days (a month of weeks)."""
    from mm_assets.checks.accuracy import MIN_JUDGED_POINTS, min_judged_periods, realized_beats_baseline

    stores = pd.DataFrame({"mase_vs_baseline": [1.88, 1.88, 0.7, 2.18], "points": [4, MIN_JUDGED_POINTS, 100, 38],
                           "periods": [4, 7, 28, 1]}, index=["new", "old", "good", "one_day"])
    verdicts = realized_beats_baseline(["new", "old", "good", "one_day"], stores, window=28,
                                       min_periods=min_judged_periods(True))
    assert "new" not in verdicts and "one_day" not in verdicts  # skipped, as a store without points
    assert verdicts["old"].metadata["periods"] == 7 and verdicts["old"].metadata["min_periods"] == 7
    weekly = realized_beats_baseline(["old"], stores.assign(periods=3), window=8, min_periods=min_judged_periods(False))
    assert weekly == {}  # three weeks: not yet a month
    assert not verdicts["old"].passed and "1.88 × the baseline's" in verdicts["old"].description
    assert verdicts["good"].passed and verdicts["good"].metadata["points"] == 100
