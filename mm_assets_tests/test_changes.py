"""What got worse: new models against their previous versions."""

from __future__ import annotations

import pandas as pd

from mm_assets.reporting.changes import WORSE_BY, worse_than_previous


def test_the_largest_rises_are_listed_with_their_numbers():
    current = pd.DataFrame({"series_key": ["S/A", "S/B", "S/C"], "version": [3, 5, 2], "model_type": "lightgbm",
                            "wape": [0.50, 0.21, 0.30]})
    previous = pd.DataFrame({"series_key": ["S/A", "S/B", "S/C"], "version": [2, 4, 1],
                             "model_type": ["linear", "lightgbm", "lightgbm"], "wape": [0.20, 0.20, 0.40]})
    count, table = worse_than_previous(current, previous)
    assert count == 1  # S/B rose by one point only, S/C improved
    assert "| S/A | v2 linear | 20.0% | v3 lightgbm | 50.0% | +30.0 pts |" in table
    assert "S/B" not in table and "S/C" not in table
    # beside the rises, the falls: holdouts a period apart move some series each way (S/C fell by 10 points)
    assert table.startswith("1 series rose and 1 fell by more than 5 points of holdout WAPE")


def test_nothing_to_compare_says_so():
    current = pd.DataFrame({"series_key": ["S/A"], "version": [1], "model_type": "linear", "wape": [0.3]})
    assert worse_than_previous(current, current.iloc[0:0])[0] == 0
    same = worse_than_previous(current, current.assign(version=0))
    assert same[0] == 0 and f"by more than {WORSE_BY * 100:.0f} points" in same[1]


def test_a_store_of_fallbacks_only_has_nothing_worse_and_does_not_fail():
    # every series of a new store is a fallback in both versions: no WAPE at all (a column of None, dtype object)
    current = pd.DataFrame({"series_key": ["N/A", "N/B"], "version": [2, 2], "model_type": "baseline",
                            "wape": [None, None]})
    previous = current.assign(version=1)
    assert current["wape"].dtype == object
    count, text = worse_than_previous(current, previous)
    assert count == 0 and "No series" in text


def test_rises_on_the_same_holdout_are_not_called_noise():
    """A rerun on data that did not move (a changed setting, a store's global model fitted alone) is judged on the
    same periods: no week's luck there, so a rise is the model's."""
    ends = {"data_end": pd.Timestamp("2026-11-22")}
    current = pd.DataFrame({"series_key": ["S/A", "S/B"], "version": [2, 2], "model_type": "lightgbm",
                            "wape": [0.68, 0.50], **ends})
    previous = current.assign(version=1, wape=[0.62, 0.50])
    count, table = worse_than_previous(current, previous)
    assert count == 1 and "each on the same holdout as before" in table and "noise" not in table
    moved = previous.assign(data_end=pd.Timestamp("2026-11-21"))
    assert "1 up and 0 down are too few to tell from a week's luck" in worse_than_previous(current, moved)[1]
    later = pd.DataFrame({"series_key": ["S/C"], "version": [2], "model_type": "lightgbm", "wape": [0.9],
                          "data_end": pd.Timestamp("2026-11-23")})
    mixed = pd.concat([current, later], ignore_index=True)
    before = pd.concat([previous, later.assign(version=1, wape=0.5, data_end=pd.Timestamp("2026-11-22"))],
                       ignore_index=True)
    text = worse_than_previous(mixed, before)[1]
    assert "1 on holdouts of different periods" in text and "1 on the same holdout as before" in text


def test_a_holdout_corrected_late_is_not_the_same_holdout():
    """The source corrected a holdout period (the data's end unchanged): the two versions were scored on other
    actuals, so a rise is not said to be the model's."""
    import json

    ends = {"data_end": pd.Timestamp("2026-11-22")}
    current = pd.DataFrame({"series_key": ["S/A"], "version": [2], "model_type": "lightgbm", "wape": [0.68],
                            "metrics": [json.dumps({"holdout_fingerprint": 300.0})], **ends})
    previous = current.assign(version=1, wape=[0.17], metrics=[json.dumps({"holdout_fingerprint": 100.0})])
    count, table = worse_than_previous(current, previous)
    assert count == 1 and "same holdout as before" not in table and "corrected actuals" in table
    unchanged = previous.assign(metrics=current["metrics"])
    assert "each on the same holdout as before" in worse_than_previous(current, unchanged)[1]


def test_versions_judged_over_another_number_of_periods_are_not_compared():
    """A changed horizon (8 weeks to 4) judges the new versions over other periods: every series would rise or fall
    with the setting, so those are left out. A version registered before the count was recorded was judged on one
    window of the horizon: compared with a version judged so, not with one judged over several windows (an upgrade
    to a holdout of 8 weeks in 4 windows called 3 of tuna's 7 brands worse than their 2-week holdouts)."""
    import json

    from mm_assets.reporting.changes import rises_and_falls

    def rows(version: int, wapes: list[float], periods: list[float | None]) -> pd.DataFrame:
        return pd.DataFrame({"series_key": ["S/A", "S/B", "S/C"], "version": version, "model_type": "lightgbm",
                             "wape": wapes, "data_end": pd.Timestamp("2026-11-22"),
                             "metrics": [json.dumps({} if p is None else {"holdout_periods": p}) for p in periods]})

    current = rows(2, [0.50, 0.50, 0.50], [4.0, 8.0, 4.0])
    previous = rows(1, [0.20, 0.20, 0.20], [8.0, 8.0, None])

    class Registry:
        def rows_of(self, keys, versions):
            return previous[previous["series_key"].isin(keys)]

    count, table = worse_than_previous(current, previous, horizon=4)
    assert count == 2 and "S/A" not in table and "S/B" in table and "S/C" in table
    worse, lines, falls, *_ = rises_and_falls(Registry(), current, horizon=4)
    assert worse == 2 and [line.split()[0] for line in lines] == ["S/B", "S/C"] and falls == 0
    # the horizon was 2: S/C's previous version held 2 periods, its new one 4
    count, table = worse_than_previous(current, previous, horizon=2)
    assert count == 1 and "S/C" not in table
    assert rises_and_falls(Registry(), current, horizon=2)[0] == 1
    # without the horizon, a version without the count is compared only with another without it
    assert worse_than_previous(current, previous)[0] == 1
    both_unknown = rows(2, [0.50, 0.50, 0.50], [None, None, None])
    assert worse_than_previous(both_unknown, rows(1, [0.20, 0.20, 0.20], [None, None, None]))[0] == 3


def test_far_more_rises_than_falls_are_not_called_noise_and_a_harder_holdout_is_named():
    """Holdouts a period apart move some series each way; far more rises than falls are more than that luck
    (an orangeJuice cycle: 436 rose and 239 fell, once called "a like number"). Where the baseline's WAPE on the
    same holdout rose as much, the new periods were harder for any forecast, not the model worse."""
    import json

    keys = [f"S/{i}" for i in range(40)]
    rises = [0.60] * 30 + [0.20] * 10  # 30 rose by 30 points, 10 fell by 20
    before = [0.30] * 30 + [0.40] * 10
    harder = [json.dumps({"baseline_wape": 0.9})] * 30 + [json.dumps({"baseline_wape": 0.5})] * 10
    calm = [json.dumps({"baseline_wape": 0.5})] * 40
    current = pd.DataFrame({"series_key": keys, "version": 2, "model_type": "lightgbm", "wape": rises,
                            "data_end": pd.Timestamp("2026-11-23"), "metrics": harder})
    previous = pd.DataFrame({"series_key": keys, "version": 1, "model_type": "lightgbm", "wape": before,
                             "data_end": pd.Timestamp("2026-11-22"), "metrics": calm})
    count, text = worse_than_previous(current, previous)
    assert count == 30 and "30 rises against 10 falls are more than a week's luck" in text
    assert "on 30 of them the baseline's holdout WAPE rose by as much" in text and "noise" not in text
    count, text = worse_than_previous(current.assign(metrics=calm), previous)
    assert "more than a week's luck, and the baseline's did not rise with them" in text
    balanced = current.assign(wape=[0.60] * 10 + [0.30] * 20 + [0.20] * 10)
    assert "a like number each way is noise" in worse_than_previous(balanced, previous)[1]
    # 5 of 7 brands up and none down: within the slack of "more than luck", but no like number either way
    few = worse_than_previous(current.iloc[:7].assign(wape=[0.6] * 5 + [0.3] * 2, metrics=calm[:7]),
                              previous.iloc[:7])[1]
    assert "5 up and 0 down are too few to tell from a week's luck" in few and "like number" not in few
