"""Tests of cutting validated raw rows into series datasets, and of the per-partition quality summary."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mm_assets.forecasting.series import SeriesConfig
from mm_assets.forecasting.training import train_series
from mm_assets.ingest.datasets import cut_partition, deduplicate, quality_by_partition, to_series_frame
from mm_assets.ingest.validation import PARTITION_COLUMN
from mm_assets.runs import key_boundaries, slice_boundaries
from mm_assets.settings import Settings

SETTINGS = Settings.model_validate({"horizon": 7, "model": {"min_train_periods": 21}})
THRESHOLD = SETTINGS.min_train_periods + SETTINGS.horizon  # a series is short below 28 periods
START = pd.Timestamp("2025-01-01")


def series(store: str, item: str, days: int, drop: tuple[int, ...] = (), start: pd.Timestamp = START,
           freq: str = "D", y=None, planned: int = 0) -> pd.DataFrame:
    ds = pd.date_range(start, periods=days + planned, freq=freq)
    values = np.full(days + planned, 5.0) if y is None else np.asarray(y, dtype=float)
    values[days:] = np.nan  # planned rows: target unknown
    frame = pd.DataFrame({PARTITION_COLUMN: store, "store": store, "item": item, "ds": ds, "y": values,
                          "price": 2.0, "promo": 0.0})
    return frame.drop(index=list(drop)).reset_index(drop=True)


def test_to_series_frame_renames_keeps_canonical_columns_dedups_and_sorts():
    raw = pd.DataFrame(
        {
            "date": pd.to_datetime(["2025-01-02", "2025-01-01", "2025-01-01", "2025-01-01", "2025-01-02"]),
            "sales": [2.0, 1.0, 3.0, 7.0, 9.0],
            "store": ["S2", "S2", "S1", "S1", "S1"],
            "item": ["I1", "I1", "I1", "I1", "I1"],
            "price": 1.5,
            "promo": 0.0,
            "comment": "dropped",
            PARTITION_COLUMN: ["S2", "S2", "S1", "S1", "S1"],
        }
    )
    frame = to_series_frame(raw, Settings())
    assert len(frame) == 5  # duplicates survive the cut so that the quality check can count them
    out = deduplicate(frame, Settings())
    assert list(out.columns) == [PARTITION_COLUMN, "store", "item", "ds", "y", "price", "promo"]
    assert list(zip(out["store"], out["ds"].dt.day, out["y"])) == [
        ("S1", 1, 7.0),  # duplicate (S1, I1, 1 Jan): the last one kept
        ("S1", 2, 9.0),
        ("S2", 1, 1.0),
        ("S2", 2, 2.0),
    ]


def test_quality_counts_series_rows_and_span_per_partition():
    frame = pd.concat([series("S1", "I1", 40), series("S1", "I2", 35, start=START + pd.Timedelta(days=5)),
                       series("S2", "I1", 50)], ignore_index=True)
    q = quality_by_partition(frame, SETTINGS)
    assert sorted(q.index) == ["S1", "S2"]
    assert q.loc["S1", "series"] == 2 and q.loc["S2", "series"] == 1
    assert q.loc["S1", "rows"] == 75 and q.loc["S2", "rows"] == 50
    assert q.loc["S1", "first_ds"] == START and q.loc["S1", "last_ds"] == START + pd.Timedelta(days=39)
    for column in ("gaps", "series_with_gaps", "short_series", "duplicate_keys", "negative_target"):
        assert q[column].sum() == 0, column


def test_quality_counts_gaps_inside_series():
    frame = pd.concat(
        [
            series("S1", "I1", 40, drop=(3, 4, 20)),  # three missing days
            series("S1", "I2", 40, drop=(0, 39)),  # first and last day missing: its span shrinks, no gap
            series("S2", "I1", 40, drop=(10,)),
        ],
        ignore_index=True,
    )
    q = quality_by_partition(frame, SETTINGS)
    assert q.loc["S1", "gaps"] == 3 and q.loc["S1", "series_with_gaps"] == 1
    assert q.loc["S2", "gaps"] == 1 and q.loc["S2", "series_with_gaps"] == 1


def test_closed_days_are_normal_gaps_and_an_outage_is_long():
    closed = tuple(range(6, 60, 7))  # one closed day a week
    frame = pd.concat([series("S1", "I1", 60, drop=closed),
                       series("S1", "I2", 60, drop=(20, 21, 22)),  # three days in a row: still normal (daily: 3)
                       series("S1", "I3", 60, drop=tuple(range(30, 34)))],  # four in a row: an outage
                      ignore_index=True)
    q = quality_by_partition(frame, SETTINGS)
    assert q.loc["S1", "series_with_gaps"] == 3 and q.loc["S1", "series_with_long_gaps"] == 1
    strict = Settings.model_validate({"horizon": 7, "ingest": {"max_normal_gap": 1}})
    assert quality_by_partition(frame, strict).loc["S1", "series_with_long_gaps"] == 2
    weekly = Settings(frequency="W", horizon=4)  # weekly: more than two missing weeks in a row is long
    weeks = pd.concat([series("S1", "I1", 30, drop=(5, 6), freq="W-SUN"),
                       series("S1", "I2", 30, drop=(10, 11, 12), freq="W-SUN")], ignore_index=True)
    assert quality_by_partition(weeks, weekly).loc["S1", "series_with_long_gaps"] == 1


def test_quality_counts_gaps_in_weekly_series():
    weekly = Settings(frequency="W", horizon=4)
    frame = series("S1", "I1", 30, drop=(5, 6), freq="W-SUN")
    q = quality_by_partition(frame, weekly)
    assert q.loc["S1", "gaps"] == 2  # missing weeks, not missing days


def test_quality_counts_duplicates_and_negative_targets():
    s1 = series("S1", "I1", 40)
    s1.loc[7, "y"] = -1.0
    s1.loc[8, "y"] = -2.0
    s1 = pd.concat([s1, s1.iloc[[3]]], ignore_index=True).sort_values("ds", ignore_index=True)
    frame = pd.concat([s1, series("S2", "I1", 40)], ignore_index=True)
    q = quality_by_partition(frame, SETTINGS)
    assert q.loc["S1", "duplicate_keys"] == 2  # both rows sharing the key
    assert q.loc["S1", "negative_target"] == 2
    assert q.loc["S2", "duplicate_keys"] == 0 and q.loc["S2", "negative_target"] == 0


def test_quality_counts_short_series_at_the_training_threshold():
    frame = pd.concat(
        [
            series("S1", "I1", THRESHOLD - 1),  # one period short
            series("S1", "I2", THRESHOLD),  # just long enough
            series("S1", "I3", THRESHOLD + 2, drop=(5, 6)),  # gaps do not shorten the history (grid periods)
            series("S2", "I1", 5),
        ],
        ignore_index=True,
    )
    q = quality_by_partition(frame, SETTINGS)
    assert q.loc["S1", "short_series"] == 1
    assert q.loc["S2", "short_series"] == 1


def test_planned_future_rows_do_not_make_a_short_series_long():
    # observed days one short of the threshold + 14 planned days: training regularizes to the observed
    # periods (planned rows are dropped) and falls back to seasonal naive
    frame = series("S1", "I1", THRESHOLD - 1, planned=14)
    outcome = train_series(frame, SeriesConfig.from_settings(SETTINGS), "linear")
    assert outcome.status == "fallback"  # what the quality summary must predict
    q = quality_by_partition(frame, SETTINGS)
    assert q.loc["S1", "short_series"] == 1


def test_a_plan_row_years_ahead_is_no_gap_in_either_path():
    """A planned row dated 2099 (a typo in a plan) is not thousands of missing periods: gaps count up to the
    newest sale, and planned rows after it are not history."""
    from mm_assets.ingest.datasets import cut_partition

    s1 = series("S1", "I1", 40, drop=(12, 13, 14, 15), planned=3)  # a four-day outage
    far = s1.iloc[[-1]].assign(ds=pd.Timestamp("2099-01-05"))
    frame = pd.concat([s1, far, series("S1", "I2", 40)], ignore_index=True)
    q = quality_by_partition(frame, SETTINGS)
    assert q.loc["S1", "gaps"] == 4 and q.loc["S1", "series_with_long_gaps"] == 1  # the outage, and only it
    raw = frame.rename(columns={"ds": "date", "y": "sales"}).drop(columns=PARTITION_COLUMN).assign(_partition="S1")
    _, fast = cut_partition(raw, SETTINGS, "S1")
    for column in ("gaps", "series_with_gaps", "series_with_long_gaps"):
        assert fast.loc["S1", column] == q.loc["S1", column], column
    assert fast.loc["S1", "long_gap_examples"] == ["S1/I1: 4 periods missing, 2025-01-13 to 2025-01-16"]


def test_quality_counts_missing_past_targets_but_not_planned_rows():
    s1 = series("S1", "I1", 40, planned=7)
    s1.loc[10, "y"] = np.nan  # a hole in the past
    q = quality_by_partition(pd.concat([s1, series("S2", "I1", 40, planned=7)], ignore_index=True), SETTINGS)
    assert q.loc["S1", "missing_target"] == 1
    assert q.loc["S2", "missing_target"] == 0


@pytest.mark.parametrize(
    "values, starts, stops",
    [
        (["a", "a", "b", "c", "c", "c"], [0, 2, 3], [2, 3, 6]),
        (["x"], [0], [1]),
        ([], [], []),
    ],
)
def test_slice_boundaries(values, starts, stops):
    got_starts, got_stops = slice_boundaries(np.array(values, dtype=object))
    assert list(got_starts) == starts and list(got_stops) == stops


def test_spill_by_partition_scans_once_and_keeps_every_row_of_the_asked_partitions(tmp_path):
    from mm_assets.ingest import datasets as ds_module
    from mm_assets.lake import Lake

    lake = Lake(str(tmp_path / "lake"))
    rng = np.random.default_rng(0)
    days = []
    for _d, day in enumerate(pd.date_range("2025-01-01", periods=12, freq="D")):
        n = 50
        frame = pd.DataFrame({
            "_partition": rng.choice(["P1", "P2", "P3", "P 4/x"], n),  # a key a folder name must escape
            "item": [f"I{i}" for i in range(n)],
            "date": day,
            "sales": rng.random(n),
        })
        days.append(frame)
        lake.write_parquet(frame, "raw", "sales", f"{day.date()}.parquet")
    spill = tmp_path / "spill"
    spill.mkdir()
    files = ds_module.spill_by_partition(lake.dataset("raw", "sales"), ["P1", "P3", "P9", "P 4/x"], str(spill))
    assert sorted(files) == ["P 4/x", "P1", "P3"]  # P9 has no rows; P2 was not asked for
    everything = pd.concat(days, ignore_index=True)
    for key, path in files.items():  # every row, in the order of the scan (a duplicate key keeps its order)
        got = ds_module.read_spilled(path).to_pandas()
        want = everything[everything["_partition"] == key].reset_index(drop=True)
        assert len(got) == len(want) > 0
        pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


def test_key_boundaries_equal_the_runs_of_series_keys_for_frames_and_arrow_tables():
    import pyarrow as pa

    from mm_assets.ids import series_keys
    from mm_assets.runs import key_boundaries

    frame = pd.DataFrame({
        "store": ["S1", "S1", "S1", "S2", "S2", "S1", "S3"],
        "item": [1, 1, 2, 2, 2, 2, 2],
        "ds": pd.date_range("2025-01-01", periods=7),
    })
    expected = slice_boundaries(series_keys(frame, ["store", "item"]).to_numpy())
    arrow_strings = frame.astype({"store": pd.ArrowDtype(pa.string()), "item": pd.StringDtype("pyarrow")})
    python_strings = frame.astype({"store": object, "item": pd.StringDtype("python")})
    for rows in (frame, pa.Table.from_pandas(frame), arrow_strings, python_strings):
        starts, stops = key_boundaries(rows, ["store", "item"])
        assert list(starts) == list(expected[0]) == [0, 2, 3, 5, 6]
        assert list(stops) == list(expected[1])
    empty = key_boundaries(frame.iloc[0:0], ["store", "item"])
    assert len(empty[0]) == len(empty[1]) == 0


def test_cut_partition_equals_the_frame_path_with_duplicates_gaps_and_plans():
    from mm_assets.ingest.datasets import cut_partition

    settings = Settings()
    rng = np.random.default_rng(5)
    parts = []
    for item, (start, n) in enumerate([(0, 120), (10, 60), (30, 20), (0, 90)]):
        ds = pd.date_range("2025-01-01", periods=n, freq="D") + pd.Timedelta(days=start)
        frame = pd.DataFrame({"date": ds, "store": "S1", "item": f"I{item}", "sales": rng.poisson(5, n).astype(float),
                              "price": 2.0, "promo": 0.0})
        parts.append(frame.drop(index=rng.choice(n, 5, replace=False)))  # gaps
    parts[0] = parts[0].drop(index=range(60, 66), errors="ignore")  # an outage: six days or so in a row
    raw = pd.concat(parts, ignore_index=True)
    raw.loc[raw.index[-4:], "sales"] = np.nan  # planned rows after the last sale of I3
    raw.loc[raw.index[7], "sales"] = np.nan  # a missing past target
    raw.loc[raw.index[9], "sales"] = -1.0
    raw = pd.concat([raw, raw.iloc[[3, 50]].assign(sales=99.0)], ignore_index=True)  # duplicates, later wins
    raw = raw.sample(frac=1.0, random_state=1).reset_index(drop=True)  # any source order
    raw["_partition"] = "S1"
    expected_frame = to_series_frame(raw, settings)
    expected_quality = quality_by_partition(expected_frame, settings)
    expected = deduplicate(expected_frame, settings).drop(columns="_partition")
    part, quality = cut_partition(raw, settings, "S1")
    pd.testing.assert_frame_equal(part.reset_index(drop=True), expected.reset_index(drop=True))
    for column in expected_quality.columns:
        assert quality.loc["S1", column] == expected_quality.loc["S1", column], column
    assert quality.loc["S1", "duplicate_keys"] == 4 and quality.loc["S1", "gaps"] > 0
    assert quality.loc["S1", "series_with_long_gaps"] >= 1


def test_sorting_after_a_sorted_prefix_equals_sorting_everything():
    """A previous cut's rows (sorted, no duplicate keys) with new rows after them: new series, duplicate keys
    among the new rows (source order kept), and rows dated before the prefix's last ones."""
    from mm_assets.ingest.datasets import sorted_rows

    rng = np.random.default_rng(11)
    prefix = pd.DataFrame({
        "store": np.repeat(["S1", "S1", "S2"], 5), "item": np.repeat(["I2", "I9", "I1"], 5),
        "ds": np.tile(pd.date_range("2025-01-01", periods=5, freq="D"), 3), "y": rng.random(15),
    })
    new = pd.DataFrame({
        "store": ["S2", "S1", "S0", "S1", "S1", "S1", "S2"],
        "item": ["I1", "I9", "I5", "I2", "I3", "I2", "I1"],
        "ds": pd.to_datetime(["2025-01-06", "2025-01-06", "2025-01-02", "2025-01-06", "2025-01-01", "2025-01-06",
                              "2024-12-31"]),
        "y": rng.random(7),
    })  # S1/I2 on 01-06 twice: the second wins later, so their order must stay
    frame = pd.concat([prefix, new], ignore_index=True)
    expected = sorted_rows(frame, ["store", "item"])
    pd.testing.assert_frame_equal(expected, frame.sort_values(["store", "item", "ds"], kind="stable", ignore_index=True))
    got = sorted_rows(frame, ["store", "item"], presorted=len(prefix))
    pd.testing.assert_frame_equal(got, expected)
    assert got["y"].is_unique and got.iloc[0]["store"] == "S0"
    pd.testing.assert_frame_equal(sorted_rows(prefix, ["store", "item"], presorted=len(prefix)), prefix)


def test_a_days_append_is_merged_as_blocks_and_equals_sorting_everything():
    """New rows dated at or after their series' last previous row (the daily append) are merged as whole blocks,
    without sorting the rows; a tail with one earlier row is sorted as before. Both equal a sort of everything,
    on random cuts with new series, duplicate keys among the new rows and a new row on a previous row's date."""
    from mm_assets.ingest import datasets

    rng = np.random.default_rng(5)
    used = []
    real = datasets._appended_blocks
    datasets._appended_blocks = lambda *a: used.append(real(*a) is not None) or real(*a)
    try:
        for trial in range(60):
            series = [(f"S{s}", f"I{i}") for s in range(3) for i in range(int(rng.integers(1, 5)))]
            rows = [(st, it, pd.Timestamp("2025-01-01") + pd.Timedelta(days=d))
                    for st, it in series for d in range(int(rng.integers(1, 6)))]
            prefix = pd.DataFrame(rows, columns=["store", "item", "ds"]).assign(y=rng.random(len(rows)))
            last = prefix.groupby(["store", "item"])["ds"].max()
            new = []
            for _ in range(int(rng.integers(0, 8))):
                if rng.random() < 0.3:  # a series the previous cut did not have
                    st, it, base = "S9", f"I{int(rng.integers(0, 3))}", pd.Timestamp("2025-01-03")
                else:
                    st, it = series[int(rng.integers(len(series)))]
                    base = last[(st, it)]
                new.append((st, it, base + pd.Timedelta(days=int(rng.integers(0, 3)))))
            if trial % 4 == 3 and new:  # one row dated before its series' last one: sorted row by row
                st, it, _ = new[0]  # before the series' first row, or inside its history
                new[0] = (st, it, pd.Timestamp("2024-12-30") if trial % 8 == 3 else
                          last.get((st, it), pd.Timestamp("2025-01-02")) - pd.Timedelta(days=1))
            tail = pd.DataFrame(new, columns=["store", "item", "ds"]).assign(y=rng.random(len(new)))
            frame = pd.concat([prefix, tail], ignore_index=True)
            if trial % 2:  # the lake's id columns: Arrow strings, beyond ASCII (sorted by code point)
                frame = frame.assign(item=frame["item"].str.replace("I", "Ïtem ").astype("string[pyarrow]"),
                                     store=frame["store"].astype("string[pyarrow]"))
            reference = frame.sort_values(["store", "item", "ds"], kind="stable", ignore_index=True)
            for presorted in (len(prefix), 0):
                got = datasets.sorted_rows(frame, ["store", "item"], presorted=presorted)
                pd.testing.assert_frame_equal(got, reference)
                _, starts, stops = datasets.sorted_order(frame, ["store", "item"], presorted)
                expected_starts, expected_stops = key_boundaries(reference, ["store", "item"])
                assert starts.tolist() == expected_starts.tolist() and stops.tolist() == expected_stops.tolist()
    finally:
        datasets._appended_blocks = real
    assert any(used) and not all(used)  # both ways were taken


def test_a_target_far_above_its_series_is_flagged_and_named():
    from mm_assets.ingest.datasets import cut_partition
    from mm_assets.ingest.target_rules import extreme_targets

    y = np.array([10, 12, 1e6, 11, 0, 0, 0, 1, 0, 3, 5e4, np.nan, 2e9])
    sid = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 3, 3])  # a spike; a slow mover; one value; a huge one alone
    assert list(extreme_targets(y, np.array([0, 4, 10, 11]), sid)) == [2]
    # two slips in 150 weeks of about 30: each lifts the mean of the other's "others" to 3e9; both are flagged
    rng = np.random.default_rng(3)
    weeks = rng.poisson(30, 150).astype(float)
    weeks[[40, 90]] = 5e11
    assert list(extreme_targets(weeks, np.array([0]), np.zeros(150, dtype=int))) == [40, 90]
    # bulk orders of 2,000 in a series that sells 0-1 most weeks are not slips: 4 of them keep the others' mean high
    bulk = rng.integers(0, 2, 200).astype(float)
    bulk[[10, 60, 110, 160]] = 2000.0
    assert len(extreme_targets(bulk, np.array([0]), np.zeros(200, dtype=int))) == 0
    # a spike of 388 times the series' level (a hostile tuna week) is flagged; one of 150 times (orangeJuice's
    # largest real promotion week against its series' other weeks) is not
    for times, flagged in ((388, [70]), (150, [])):
        spiked = rng.poisson(30, 120).astype(float)
        spiked[70] = times * np.delete(spiked, 70).mean()
        assert list(extreme_targets(spiked, np.array([0]), np.zeros(120, dtype=int))) == flagged, times

    settings = Settings()
    ds = pd.date_range("2025-01-01", periods=30, freq="D")
    raw = pd.DataFrame({"date": np.tile(ds, 2), "store": "S1", "item": np.repeat(["I1", "I2"], 30),
                        "sales": 5.0, "price": 2.0, "promo": np.nan})
    raw.loc[40, "sales"] = 1e9
    raw["_partition"] = "S1"
    _, quality = cut_partition(raw, settings, "S1")
    assert quality.loc["S1", "extreme_target"] == 1
    assert quality.loc["S1", "extreme_target_examples"] == ["S1/I2 2025-01-11: 1e+09"]
    assert quality.loc["S1", "empty_regressors"] == ["promo"]
    _, nothing = cut_partition(raw.iloc[0:0], settings, "S2")  # a partition without rows says nothing of them
    assert nothing.loc["S2", "extreme_target"] == 0 and nothing.loc["S2", "empty_regressors"] == []
    # left out, the absurd day is a day without a value, never a day without sales, however absent rows are read
    for absent in ("missing", "zero"):
        part, quality = cut_partition(raw, Settings(ingest={"absent_periods": absent}), "S1")
        kept = part[part["item"] == "I2"]
        assert ds[10] not in set(kept["ds"]) and len(kept) == 29 and kept["y"].eq(5.0).all(), absent
        assert quality.loc["S1", "zero_filled_periods"] == 0, absent


def test_a_newest_value_far_above_everything_before_it_is_warned_of_not_a_promotion():
    """×100 in the newest period of a series selling about 50 (largest before 90): named by values_plausible and
    kept. A promotion week at 15 times the largest before, a short series and an earlier slip are not named."""
    from mm_assets.checks.data_quality import values_plausible
    from mm_assets.ingest.datasets import cut_partition

    rng = np.random.default_rng(5)
    ds = pd.date_range("2025-01-01", periods=40, freq="D")
    items = ["slip", "promo", "short", "old", "plain", "other"]  # five judged: a store, not series one by one
    raw = pd.DataFrame({"date": np.tile(ds, 6), "store": "S1", "item": np.repeat(items, 40),
                        "sales": rng.uniform(10, 90, 240), "price": 2.0, "promo": 0.0})
    raw.loc[39, "sales"] = 5000.0  # slip: its newest
    raw.loc[79, "sales"] = 15 * raw.loc[40:78, "sales"].max()  # promo: a big week, below 20 times
    raw = raw.drop(index=range(80, 100))  # short: 20 observations only
    raw.loc[119, "sales"] = 2000.0  # short's newest, but too little history to judge it by
    raw.loc[130, "sales"] = 5000.0  # old: a slip long ago, not its newest
    raw["_partition"] = "S1"
    part, quality = cut_partition(raw, Settings(), "S1")
    assert quality.loc["S1", "newest_jumps"] == 1
    assert quality.loc["S1", "newest_jump_examples"] == ["S1/slip 2025-02-09: 5000"]
    assert part["y"].max() == 5000.0  # kept: it may be real
    verdict = values_plausible(quality)
    assert not verdict.passed and "1 series' newest target values are more than 20 times" in verdict.description
    assert verdict.metadata["newest_jumps"] == 1


def test_a_week_of_days_at_fifty_times_one_products_level_is_warned_of_as_a_run():
    """A unit slip of one product's feed for its newest week (×50, in a store of many products) passed the
    newest-jump rule, whose largest value before was the slip's own first days: trained on, promoted and served.
    Named now as a run, with its length and level, and kept (a warning). A promotion of five days at four times
    the usual level, one newest day at ×50 (the newest-jump rule's) and a slip that ended are not runs."""
    from mm_assets.checks.data_quality import values_plausible
    from mm_assets.ingest.datasets import cut_partition

    rng = np.random.default_rng(7)
    days = 120
    ds = pd.date_range("2025-01-01", periods=days, freq="D")
    items = ["slip", "promo", "oneday", "ended", "plain", "other"]
    raw = pd.DataFrame({"date": np.tile(ds, len(items)), "store": "S1", "item": np.repeat(items, days),
                        "sales": rng.uniform(40, 80, days * len(items)), "price": 2.0, "promo": 0.0})
    raw.loc[days - 7 : days - 1, "sales"] *= 50  # slip: its newest week
    raw.loc[2 * days - 5 : 2 * days - 1, "sales"] *= 4  # promo: five days at four times
    raw.loc[3 * days - 1, "sales"] *= 50  # oneday: its newest day alone
    raw.loc[4 * days - 20 : 4 * days - 10, "sales"] *= 50  # ended: ten days that ended before the newest
    raw["_partition"] = "S1"
    part, quality = cut_partition(raw, Settings(), "S1")
    assert quality.loc["S1", "lifted_runs"] == 1
    (example,) = quality.loc["S1", "lifted_run_examples"]
    assert example.startswith("S1/slip: the newest 7 periods to 2025-04-30 at ") and "× its usual level" in example
    assert quality.loc["S1", "newest_jump_examples"] == [f"S1/oneday 2025-04-30: {raw.loc[3 * days - 1, 'sales']:.6g}"]
    assert part["y"].max() > 1000  # kept: it may be real
    verdict = values_plausible(quality)
    assert not verdict.passed and "1 series' newest periods are a run at more than 30 times" in verdict.description
    assert verdict.metadata["lifted_runs"] == 1


def test_a_store_whose_every_series_is_ten_times_its_usual_level_in_the_newest_period_is_warned_of():
    """A unit slip of a whole store's feed (×10 in the newest week) stays below the series' own newest-jump rule
    (promotion weeks are many times an ordinary one) but lifts every product at once: named, with the store, its
    date and the median ratio. A promotion of two of five products, or a store of two series, is not."""
    from mm_assets.checks.data_quality import values_plausible
    from mm_assets.ingest.datasets import cut_partition

    weekly = Settings(frequency="W-MON")
    rng = np.random.default_rng(7)
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")

    def store(key: str, items: int, lifted: list[int], by: float) -> pd.DataFrame:
        raw = pd.DataFrame({"date": np.tile(ds, items), "store": key, "item": np.repeat(range(items), 40).astype(str),
                            "sales": rng.uniform(40, 60, 40 * items), "price": 2.0, "promo": 0.0})
        raw.loc[0, "sales"] = 400.0  # a promotion long ago: the newest jump rule then passes ×10
        newest = raw.index[raw["date"] == ds[-1]]
        raw.loc[newest[lifted], "sales"] *= by
        return raw.assign(_partition=key)

    reopened = store("reopened", 5, [], 1.0)  # rows of zeros for half a year, then its usual sales again
    reopened.loc[reopened["date"].between(ds[-27], ds[-2]), "sales"] = 0.0
    cuts = {key: cut_partition(raw, weekly, key)[1] for key, raw in (
        ("slip", store("slip", 5, [0, 1, 2, 3, 4], 10.0)), ("promo", store("promo", 5, [1, 2], 10.0)),
        ("pair", store("pair", 2, [0, 1], 10.0)), ("reopened", reopened))}
    quality = pd.concat(cuts.values())
    assert np.isnan(quality.loc["reopened", "store_newest_level"])
    assert quality.loc["slip", "store_newest_level"] > 8 and quality.loc["slip", "store_newest_level_series"] == 5
    assert quality.loc["slip", "newest_jumps"] == 0  # below 20 times the largest week before
    assert quality.loc["promo", "store_newest_level"] < 2 and np.isnan(quality.loc["pair", "store_newest_level"])
    verdict = values_plausible(quality)
    assert not verdict.passed and verdict.metadata["stores_lifted_at_newest"] == 1
    assert "in 1 store partitions the newest period's sales are a median of more than 6 times" in verdict.description
    assert re.search(r"slip 2025-10-06: \d+(\.\d+)?× over 5 series", verdict.description), verdict.description
    assert values_plausible(quality.drop(index="slip")).passed


def test_a_store_whose_feed_changed_units_for_good_has_every_lifted_period_held_and_none_filled_with_zeros():
    """A store's feed read cases as units from three weeks ago on: the three weeks are held, not only the newest
    (each earlier one came into the dataset once a later one was newest, and the models followed the slip week by
    week). Lifted weeks that are not a run up to the newest are not held. With ``absent_periods: zero`` a held
    week is not filled as a week without sales, for the store nor for a held series beside others."""
    from mm_assets.checks.data_quality import values_plausible

    weekly = Settings(frequency="W-MON")
    zero = Settings(frequency="W-MON", ingest={"absent_periods": "zero"})
    rng = np.random.default_rng(13)
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")

    def store(key: str, items: int, lifted: list[int], by: float = 10.0) -> pd.DataFrame:
        raw = pd.DataFrame({"date": np.tile(ds, items), "store": key, "item": np.repeat(range(items), 40).astype(str),
                            "sales": rng.uniform(40, 60, 40 * items), "price": 2.0, "promo": 0.0})
        raw.loc[raw["date"].isin(ds[lifted]), "sales"] *= by
        return raw.assign(_partition=key)

    for settings in (weekly, zero):
        part, quality = cut_partition(store("units", 5, [-3, -2, -1]), settings, "units")
        assert part["ds"].max() == ds[-4] and quality.loc["units", "store_held_periods"] == 3
        assert part["y"].max() < 100  # nothing of the slip, and no zero week in its place
        assert part.groupby("item")["ds"].max().eq(ds[-4]).all() and (part["y"] > 0).all()
        verdict = values_plausible(quality)
        assert re.search(r"units 2025-10-06: \d+(\.\d+)?× over 5 series, 3 lifted periods up to it held",
                         verdict.description), verdict.description
        part, quality = cut_partition(store("apart", 5, [-3, -1]), settings, "apart")
        assert part["ds"].max() == ds[-2] and quality.loc["apart", "store_held_periods"] == 1
    # a store of two series, one of them at ×100 in the newest week: its week is held, not filled with a zero
    pair = store("pair", 2, [])
    pair.loc[pair.index[(pair["date"] == ds[-1]) & (pair["item"] == "0")], "sales"] *= 100
    part, quality = cut_partition(pair, zero, "pair")
    assert quality.loc["pair", "series_slips_held"] == 1
    assert part.groupby("item")["ds"].max().to_dict() == {"0": ds[-2], "1": ds[-1]} and (part["y"] > 0).all()


def test_a_hash_bucket_of_stores_is_judged_store_by_store():
    """With partition.buckets a partition holds many stores, each its own feed: a one-series retailer's ×100 slip
    is held though the bucket's other retailers are at their usual level (judged as one store, the median hid it),
    and a five-series store whose feed is ×10 has its newest week held while the bucket's other stores keep it."""
    bucketed = Settings(frequency="W-MON", partition={"buckets": 8})
    rng = np.random.default_rng(11)
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")

    def store(key: str, items: int, by: float = 1.0) -> pd.DataFrame:
        raw = pd.DataFrame({"date": np.tile(ds, items), "store": key, "item": np.repeat(range(items), 40).astype(str),
                            "sales": rng.uniform(40, 60, 40 * items), "price": 2.0, "promo": 0.0})
        raw.loc[raw["date"] == ds[-1], "sales"] *= by
        return raw

    retailers = pd.concat([store("R0", 1, by=100.0), *(store(f"R{i}", 1) for i in range(1, 10))])
    part, quality = cut_partition(retailers.assign(_partition="b3"), bucketed, "b3")
    assert quality.loc["b3", "series_slips_held"] == 1
    newest = part.groupby("store")["ds"].max()
    assert newest["R0"] == ds[-2] and (newest.drop("R0") == ds[-1]).all() and part["y"].max() < 100
    mixed = pd.concat([store("units", 5, by=10.0), store("A", 5), store("B", 5)])
    part, quality = cut_partition(mixed.assign(_partition="b5"), bucketed, "b5")
    assert quality.loc["b5", "store_newest_level"] > 8 and quality.loc["b5", "store_newest_level_series"] == 5
    newest = part.groupby("store")["ds"].max()
    assert newest.to_dict() == {"A": ds[-1], "B": ds[-1], "units": ds[-2]}


def test_a_slip_in_the_newest_week_of_a_one_series_store_is_held_and_a_promotion_is_not():
    """A retailer's account as one series: ×100 in its newest week is far above its usual level and its largest
    week before, so it is left out of the dataset (forecast from the week before) and named; a promotion week at
    25 times the usual level, and ×10 (which a promotion can be), stay. A store of five series is judged as a store,
    not series by series."""
    from mm_assets.checks.data_quality import values_plausible
    from mm_assets.ingest.datasets import cut_partition

    weekly = Settings(frequency="W-MON")
    rng = np.random.default_rng(11)
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")

    def store(key: str, items: int, newest_by: float) -> pd.DataFrame:
        raw = pd.DataFrame({"date": np.tile(ds, items), "store": key, "item": np.repeat(range(items), 40).astype(str),
                            "sales": rng.uniform(900, 1100, 40 * items), "price": 2.0, "promo": 0.0})
        raw.loc[5, "sales"] = 8000.0  # a promotion long ago: its largest week before
        raw.loc[raw.index[raw["date"] == ds[-1]][0], "sales"] *= newest_by
        return raw.assign(_partition=key)

    cuts = {key: cut_partition(raw, weekly, key) for key, raw in (
        ("slip", store("slip", 1, 100.0)), ("promo", store("promo", 1, 25.0)), ("ten", store("ten", 1, 10.0)),
        ("big", store("big", 5, 100.0)))}
    quality = pd.concat(q for _, q in cuts.values())
    slipped = cuts["slip"][0]
    assert slipped["ds"].max() == ds[-2] and quality.loc["slip", "series_slips_held"] == 1
    assert quality.loc["slip", "store_newest_held_rows"] == 1  # the next cut reads the files again
    assert re.fullmatch(r"slip/0 2025-10-06: \d+, \d+(\.\d+)?× its usual level",
                        quality.loc["slip", "series_slips_held_examples"][0])
    for key in ("promo", "ten", "big"):
        assert cuts[key][0]["ds"].max() == ds[-1] and quality.loc[key, "series_slips_held"] == 0, key
    verdict = values_plausible(quality)
    assert not verdict.passed and verdict.metadata["series_slips_held"] == 1
    assert "1 target value in stores of fewer than 4 series is more than 30 times their usual level" in (
        verdict.description)
    assert values_plausible(quality.drop(index="slip")).metadata["series_slips_held"] == 0


def test_a_newest_period_of_zeros_for_a_whole_store_or_all_small_stores_is_held_and_a_second_is_real():
    """A feed that sent 0 for every series of a store at once (an extract that wrote 0 for sales not in yet) took
    every newest forecast to about 0 without a word. Held as a slip when the series sold in the period before;
    one series at 0 (a product that stopped), a slow mover at 0, and a second zero period are left as they are."""
    from mm_assets.checks.data_quality import values_plausible
    from mm_assets.ingest.datasets import cut_partition

    bucketed = Settings(frequency="W-MON", partition={"buckets": 8})
    rng = np.random.default_rng(3)
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")

    def store(key: str, items: int, zero_weeks: int = 0, level: float = 50.0) -> pd.DataFrame:
        raw = pd.DataFrame({"date": np.tile(ds, items), "store": key, "item": np.repeat(range(items), 40).astype(str),
                            "sales": rng.uniform(0.8, 1.2, 40 * items) * level, "price": 2.0, "promo": 0.0})
        raw.loc[raw["date"].isin(ds[len(ds) - zero_weeks:]), "sales"] = 0.0
        return raw

    def cut(raw: pd.DataFrame, key: str):
        part, quality = cut_partition(raw.assign(_partition=key), bucketed, key)
        return part.groupby("store")["ds"].max().to_dict(), quality.loc[key]

    # a store of five series, all 0 in the newest week: held, the others of its partition not
    newest, quality = cut(pd.concat([store("Z", 5, zero_weeks=1), store("A", 5)]), "b1")
    assert newest == {"Z": ds[-2], "A": ds[-1]} and quality["zeroed_newest_series"] == 5
    assert quality["store_newest_held_rows"] == 5 and quality["zeroed_newest_examples"] == ["Z 2025-10-06"]
    # one-series stores (retailer accounts) all at 0 together: a feed-wide zero week, held
    newest, quality = cut(pd.concat([store(f"R{i}", 1, zero_weeks=1) for i in range(4)]), "b2")
    assert set(newest.values()) == {ds[-2]} and quality["zeroed_newest_series"] == 4
    # one of them at 0 alone (an account that stopped), a second zero week, slow movers: kept
    for raw in (pd.concat([store("R0", 1, zero_weeks=1), *(store(f"R{i}", 1) for i in range(1, 4))]),
                store("Z", 5, zero_weeks=2), store("slow", 5, zero_weeks=1, level=3.0)):
        newest, quality = cut(raw, "b3")
        assert set(newest.values()) == {ds[-1]} and quality["zeroed_newest_series"] == 0, newest
    # daily: a store whose source writes 0 for its closed Sundays is not a slip on a Sunday; a zero Wednesday is
    days = pd.date_range("2025-01-06", periods=70, freq="D")  # Monday .. Sunday 2025-03-16
    daily = Settings(frequency="D", partition={"buckets": 8})
    shop = pd.DataFrame({"date": np.tile(days, 5), "store": "S", "item": np.repeat(range(5), 70).astype(str),
                         "sales": np.where(np.tile(days.day_of_week, 5) == 6, 0.0, rng.uniform(40, 60, 350)),
                         "price": 2.0, "promo": 0.0}).assign(_partition="d1")
    for raw, held in ((shop, False), (shop[shop["date"] < days[-4]].assign(  # up to Wednesday, its sales 0
            sales=lambda f: f["sales"].where(f["date"] != days[-5], 0.0)), True)):
        part, quality = cut_partition(raw, daily, "d1")
        assert quality.loc["d1", "zeroed_newest_series"] == (5 if held else 0)
        assert part["ds"].max() == raw["date"].max() - pd.Timedelta(days=int(held))
    verdict = values_plausible(pd.concat([cut_partition(store("Z", 5, zero_weeks=1).assign(_partition="b4"),
                                                        bucketed, "b4")[1]]))
    assert not verdict.passed and verdict.metadata["zeroed_newest_series"] == 5
    assert "5 series that sell at least 10 a period sold 0 in their newest period" in verdict.description


def test_a_source_whose_newest_period_came_as_zeros_is_found_over_every_store_and_held_in_each(tmp_path):
    """Retailer accounts as one-series stores, each its own partition: no partition's cut can see that every store
    sold 0 in the newest week. Judged over every store's period files, the week is a zero feed and each store's
    row of 0 there is held; 3 of 4 stores at 0, or a week of zeros after a week of zeros, are not."""
    from mm_assets.ingest.datasets import cut_partition_apart, zeroed_source_period
    from mm_assets.ingest.periods import RAW_FOLDER
    from mm_assets.lake import Lake

    weekly = Settings(frequency="W-MON")
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")
    rng = np.random.default_rng(2)
    raw = pd.DataFrame({"date": np.tile(ds, 4), "store": np.repeat([f"R{i}" for i in range(4)], 40), "item": "cheese",
                        "sales": rng.uniform(40, 60, 160), "price": 2.0, "promo": 0.0})

    def found(frame: pd.DataFrame, folder: str):
        lake = Lake(str(tmp_path / folder))
        for day, rows in frame.groupby("date"):
            lake.write_parquet(rows, *RAW_FOLDER, f"{day.date()}.parquet")
        return zeroed_source_period(lake, lake.list(*RAW_FOLDER, suffix=".parquet"), weekly)

    zero = raw.assign(sales=raw["sales"].where(raw["date"] != ds[-1], 0.0))
    assert found(zero, "all") == ds[-1]
    assert found(zero.assign(sales=zero["sales"].where((zero["store"] != "R0") | (zero["date"] != ds[-1]), 50.0)),
                 "three") is None
    assert found(zero.assign(sales=zero["sales"].where(zero["date"] < ds[-2], 0.0)), "twice") is None
    assert found(raw, "none") is None
    # daily: every store writing 0 for its closed Sundays is no zero feed on a Sunday; a Wednesday of zeros is
    days = pd.date_range("2025-01-06", periods=35, freq="D")  # up to Sunday 2025-02-09
    shops = pd.DataFrame({"date": np.tile(days, 4), "store": np.repeat([f"R{i}" for i in range(4)], 35), "item": "x",
                          "sales": np.where(np.tile(days.day_of_week, 4) == 6, 0.0, 50.0), "price": 2.0, "promo": 0.0})

    def found_daily(frame: pd.DataFrame, folder: str):
        lake = Lake(str(tmp_path / folder))
        for day, rows in frame.groupby("date"):
            lake.write_parquet(rows, *RAW_FOLDER, f"{day.date()}.parquet")
        return zeroed_source_period(lake, lake.list(*RAW_FOLDER, suffix=".parquet"), Settings(frequency="D"))

    assert found_daily(shops, "sundays") is None
    wednesday = shops[shops["date"] <= days[-5]].assign(sales=lambda f: f["sales"].where(f["date"] != days[-5], 0.0))
    assert found_daily(wednesday, "wednesday") == days[-5]
    mine = zero[zero["store"] == "R1"].assign(_partition="R1")
    part, _, quality = cut_partition_apart(mine, weekly, "R1", zeroed_at=ds[-1])
    assert part["ds"].max() == ds[-2] and quality.loc["R1", "zeroed_newest_series"] == 1
    assert quality.loc["R1", "store_newest_held_rows"] == 1  # the next cut reads it again
    part, _, quality = cut_partition_apart(mine, weekly, "R1")
    assert part["ds"].max() == ds[-1] and quality.loc["R1", "zeroed_newest_series"] == 0


def test_a_one_series_stores_slip_stays_out_once_later_weeks_arrive_and_a_lasting_level_is_taken():
    """Judged only while newest, a ×100 week was trained on from the next week, with no warning. It stays out of
    the dataset as later weeks arrive (and when the history is cut whole); a promotion week does not, and a new
    level that lasts half of the 26 weeks of the usual level is taken as real from then on."""
    from mm_assets.checks.data_quality import values_plausible
    from mm_assets.ingest.datasets import cut_partition

    weekly = Settings(frequency="W-MON")
    rng = np.random.default_rng(5)
    ds = pd.date_range("2024-01-01", periods=80, freq="W-MON")

    def store(key: str, scale: dict[int, float]) -> pd.DataFrame:
        raw = pd.DataFrame({"date": ds, "store": key, "item": "cheese", "sales": rng.uniform(900, 1100, len(ds)),
                            "price": 2.0, "promo": 0.0})
        raw.loc[10, "sales"] = 8000.0  # a promotion long ago
        for at, by in scale.items():
            raw.loc[at, "sales"] *= by
        return raw.assign(_partition=key)

    cases = {"old": store("old", {60: 100.0}),  # a slip 20 weeks back
             "week": store("week", {78: 100.0}),  # a slip a week old
             "promo": store("promo", {70: 25.0}),  # a real promotion week
             "lasting": store("lasting", {t: 100.0 for t in range(50, 80)})}  # a feed in new units since week 50
    cuts = {key: cut_partition(raw, weekly, key) for key, raw in cases.items()}
    quality = pd.concat(q for _, q in cuts.values())
    for key, at in (("old", 60), ("week", 78)):
        part = cuts[key][0]
        assert ds[at] not in set(part["ds"]) and len(part) == len(ds) - 1 and part["y"].max() < 9000, key
        assert quality.loc[key, "series_slips_held"] == 1 and quality.loc[key, "store_newest_held_rows"] == 0, key
    assert len(cuts["promo"][0]) == len(ds) and quality.loc["promo", "series_slips_held"] == 0
    lasting = cuts["lasting"][0]
    held = sorted(set(ds[50:]) - set(lasting["ds"]))
    assert held == list(ds[50:63]) and quality.loc["lasting", "series_slips_held"] == 13  # from the 14th week: real
    verdict = values_plausible(quality)
    assert "15 target values in stores of fewer than 4 series are more than 30 times" in verdict.description
    # appended to, a dataset keeps the slip out: the next week's cut of the same rows plus one
    more = pd.concat([cases["week"], cases["week"].tail(1).assign(date=ds[-1] + pd.Timedelta(weeks=1))])
    part, again = cut_partition(more, weekly, "week")
    assert ds[78] not in set(part["ds"]) and again.loc["week", "series_slips_held"] == 1


def test_a_price_of_zero_or_below_in_a_price_column_is_named_by_the_check():
    """A slip in an otherwise positive column (the models read it as missing) is counted and named; a share that
    is 0 most periods, or a plain signed column, is not a slip."""
    from mm_assets.checks.data_quality import values_plausible
    from mm_assets.ingest.datasets import cut_partition

    settings = Settings()
    ds = pd.date_range("2025-01-01", periods=30, freq="D")
    raw = pd.DataFrame({"date": np.tile(ds, 2), "store": "S1", "item": np.repeat(["I1", "I2"], 30),
                        "sales": 5.0, "price": 2.0, "promo": np.tile([0.0, 1.0], 30)})
    raw["_partition"] = "S1"
    _, clean = cut_partition(raw, settings, "S1")
    assert clean.loc["S1", "regressor_slips"] == {}
    raw.loc[45, "price"] = 0.0
    _, quality = cut_partition(raw, settings, "S1")
    assert quality.loc["S1", "regressor_slips"] == {"price": 1}
    assert quality.loc["S1", "regressor_slip_examples"] == {"price": ["S1/I2 2025-01-16: price = 0"]}
    assert quality.loc["S1", "regressor_values"] == {"price": [60, 1], "promo": [60, 30]}
    result = values_plausible(quality)
    assert not result.passed and "S1/I2 2025-01-16: price = 0" in result.description
    assert "read them as missing" in result.description and result.metadata["regressor_slips"] == 1
    raw["price"] = np.where(np.arange(60) % 3 == 0, -1.0, 2.0)  # a signed column: no slips
    _, signed = cut_partition(raw, settings, "S1")
    assert signed.loc["S1", "regressor_slips"] == {}


def test_a_share_with_a_rare_zero_in_one_store_is_no_price_slip_when_the_run_reads_it_as_a_share():
    """A display share above 0 in one store but for one week looks like a price there; over the run's stores it
    is a share (0 in a third of the weeks), as the global model reads it: its 0 is a value, not a slip."""
    from mm_assets.checks.data_quality import quality_verdicts
    from mm_assets.ingest.datasets import cut_partition

    settings = Settings.model_validate({"columns": {"regressors": ["disp"]}})
    ds = pd.date_range("2025-01-01", periods=30)
    stores = []
    for store, disp in (("S1", np.r_[0.0, np.full(29, 0.4)]), ("S2", np.tile([0.0, 0.0, 0.5], 10))):
        raw = pd.DataFrame({"date": ds, "store": store, "item": "I1", "sales": 5.0, "disp": disp})
        raw["_partition"] = store
        stores.append(cut_partition(raw, settings, store)[1])
    quality = pd.concat(stores)
    assert quality.loc["S1", "regressor_slips"] == {"disp": 1}  # alone, S1's column looks like a price
    verdicts = quality_verdicts(quality, [], 3, pd.Timedelta(days=1))["values_plausible"]
    assert verdicts["S1"].passed and verdicts["S2"].passed
    assert not quality_verdicts(quality.loc[["S1"]], [], 3, pd.Timedelta(days=1))["values_plausible"]["S1"].passed


def test_prices_of_zero_in_a_short_store_are_named_when_the_run_reads_the_column_as_a_price():
    """A store of one series over 60 periods with 3 prices typed 0 (its column alone is signed: more than 2 % of
    it) among stores whose prices are all above 0: the column is a price over the run, as the global model reads
    it, and the three are named (the more zeros a price had, the less it was named)."""
    from mm_assets.checks.data_quality import quality_verdicts
    from mm_assets.ingest.datasets import cut_partition

    settings = Settings()
    ds = pd.date_range("2025-01-01", periods=60, freq="D")
    stores = []
    for store, zeros in (("S1", [10, 20, 30]), ("S2", []), ("S3", []), ("S4", []), ("S5", [])):
        raw = pd.DataFrame({"date": ds, "store": store, "item": "I1", "sales": 5.0, "price": 2.0, "promo": 0.0})
        raw.loc[zeros, "price"] = 0.0
        raw["_partition"] = store
        stores.append(cut_partition(raw, settings, store)[1])
    quality = pd.concat(stores)
    assert quality.loc["S1", "regressor_slips"] == {"price": 3}
    verdict = quality_verdicts(quality, [], 3, pd.Timedelta(days=1))["values_plausible"]["S1"]
    assert not verdict.passed and "3 regressor values of 0 or below" in verdict.description


def test_the_values_plausible_check_warns_with_examples_and_partitions():
    from mm_assets.checks.data_quality import WARNING_CHECKS, values_plausible

    clean = pd.DataFrame({"extreme_target": [0, 0], "extreme_target_examples": [[], []],
                          "empty_regressors": [[], []]}, index=["S1", "S2"])
    assert values_plausible(clean).passed
    bad = pd.DataFrame({"extreme_target": [1, 0], "extreme_target_examples": [["S1/I2 2025-01-11: 1e+09"], []],
                        "empty_regressors": [[], ["promo"]]}, index=["S1", "S2"])
    result = values_plausible(bad)
    assert not result.passed and "values_plausible" in WARNING_CHECKS
    assert "S1/I2 2025-01-11: 1e+09" in result.description and "S2: promo" in result.description
    assert result.metadata["extreme_target_rows"] == 1


def _zero_filled_reference(part: pd.DataFrame, newest: pd.Timestamp, step: str, flags: list[str]) -> pd.DataFrame:
    """Series by series with pandas: reindex the history to every period up to ``newest``, target 0 and flags 0
    where a row was absent, other regressors carried forward; planned rows after it kept as they are."""
    out = []
    for _, g in part.groupby(["store", "item"], sort=True):
        hist, planned = g[g["ds"] <= newest], g[g["ds"] > newest]
        grid = pd.date_range(hist["ds"].iloc[0], newest, freq=step)
        dense = hist.set_index("ds").reindex(grid)
        absent = dense["y"].isna() & ~dense.index.isin(hist["ds"])
        dense.loc[absent, "y"] = 0.0
        for col in flags:
            dense.loc[absent, col] = 0.0
        dense = dense.ffill()  # ids and the other regressors of absent rows: the row before
        out += [dense.rename_axis("ds").reset_index()[part.columns], planned]
    return pd.concat(out, ignore_index=True)


@pytest.mark.parametrize("freq", ["D", "W-MON"])
def test_absent_periods_zero_fills_every_series_up_to_the_newest_period(freq):
    from mm_assets.ingest.datasets import cut_partition

    settings = Settings.model_validate({"frequency": freq, "ingest": {"absent_periods": "zero"}})
    rng = np.random.default_rng(3)
    ds = pd.date_range("2025-01-06", periods=40, freq=freq)
    parts = []
    for item, (lo, hi) in enumerate([(0, 40), (5, 31), (12, 13), (0, 38)]):  # one stops early, one has one row
        keep = np.sort(rng.choice(np.arange(lo, hi), size=max(1, (hi - lo) // 2), replace=False))
        keep[-1] = hi - 1
        parts.append(pd.DataFrame({"date": ds[keep], "store": "S1", "item": f"I{item}",
                                   "sales": rng.poisson(4, len(keep)) + 1.0, "price": rng.uniform(1, 3, len(keep)),
                                   "promo": rng.integers(0, 2, len(keep)).astype(float)}))
    planned = pd.DataFrame({"date": ds[-1] + np.arange(1, 4) * settings.step, "store": "S1", "item": "I1",
                            "sales": np.nan, "price": 9.0, "promo": 1.0})
    raw = pd.concat([*parts, planned], ignore_index=True).sample(frac=1.0, random_state=2)
    part, quality = cut_partition(raw, settings, "S1")

    # read as missing, with every series kept (none dormant)
    rows, _ = cut_partition(raw, Settings.model_validate({"frequency": freq, "ingest": {"dormant_after": 1000}}), "S1")
    expected = _zero_filled_reference(rows, ds[-1], freq, ["promo"])
    pd.testing.assert_frame_equal(part, expected, check_dtype=False)
    history = part[part["ds"] <= ds[-1]]
    assert (history.groupby("item")["ds"].max() == ds[-1]).all()  # every series runs up to the newest period
    assert quality.loc["S1", "zero_filled_periods"] == len(history) - rows["y"].notna().sum()
    assert quality.loc["S1", "series_ending_early"] == 0 and quality.loc["S1", "series_with_long_gaps"] == 0
    assert part.loc[part["ds"] > ds[-1], "price"].eq(9.0).all()  # the plan stays as it is


def test_flags_are_told_from_prices_by_their_values_and_type():
    from mm_assets.ingest.absent_periods import flag_columns

    part = pd.DataFrame({"promo": [0.0, 1.0, np.nan], "always_on": np.array([1, 1, 1]), "unit_price": [1.0, 1.0, 1.0],
                         "share": [0.0, 0.5, 1.0], "price": [2.5, 2.0, 2.5], "deal": [True, True, True]})
    assert flag_columns(part, list(part.columns)) == ["promo", "always_on", "deal"]


def test_series_whose_rows_stop_early_are_counted_and_named():
    from mm_assets.ingest.datasets import cut_partition

    raw = pd.concat([series("S1", "I1", 60), series("S1", "I2", 50), series("S1", "I3", 57)])
    raw = raw.rename(columns={"ds": "date", "y": "sales"})
    _, quality = cut_partition(raw, SETTINGS, "S1")  # tolerance: 3 periods, daily
    assert quality.loc["S1", "series_ending_early"] == 1
    assert quality.loc["S1", "series_ending_early_examples"] == ["S1/I2 last 2025-02-19"]
    assert quality.loc["S1", "last_observed_ds"] == quality.loc["S1", "data_end"] == START + pd.Timedelta(days=59)
    _, later = cut_partition(raw, SETTINGS, "S1", data_end=START + pd.Timedelta(days=70))  # other stores go on
    assert later.loc["S1", "data_end"] == START + pd.Timedelta(days=70)
    assert later.loc["S1", "series_ending_early"] == 1  # the series are compared with their own store's newest


def test_the_series_reach_data_end_check_names_series_and_partitions_that_stop_early():
    from mm_assets.checks.data_quality import series_reach_data_end

    day = pd.Timedelta(days=1)
    ends = pd.to_datetime(["2025-03-01", "2025-03-01", "2025-02-20"])
    quality = pd.DataFrame({"series_ending_early": [0, 2, 0], "series_ending_early_examples": [[], ["S2/I1 last "
                            "2025-02-01", "S2/I7 last 2025-02-11"], []], "last_observed_ds": ends,
                            "zero_filled_periods": 0}, index=["S1", "S2", "S3"])
    result = series_reach_data_end(quality, 3, day)
    assert not result.passed and "S2/I7 last 2025-02-11" in result.description
    assert "S3 (last 2025-02-20)" in result.description and "absent_periods: zero" in result.description
    assert result.metadata["partitions_ending_early"] == 1
    zero = series_reach_data_end(quality, 3, day, zero_filled=True)  # no advice to set what is set
    assert not zero.passed and "absent_periods" not in zero.description and "retire-partition" in zero.description
    sleeping = quality.assign(series_dormant=[1, 0, 0], series_dormant_examples=[["S1/I9"], [], []])
    assert "(`mm-assets retire-partition <key>`). 1 dormant series (no row" in series_reach_data_end(
        sleeping, 3, day).description  # two sentences, not one run together
    fine = quality.assign(series_ending_early=0, last_observed_ds=pd.to_datetime(["2025-03-01"] * 2 + ["2025-02-26"]))
    assert series_reach_data_end(fine, 3, day).passed  # three periods behind is within the tolerance
    # one store's row dated years after the rest (a typo): the newest period is named as the odd one, not the others
    typo = quality.assign(series_ending_early=0, last_observed_ds=pd.to_datetime(["2025-03-01", "2025-03-01",
                                                                                  "2033-03-01"]))
    result = series_reach_data_end(typo, 3, day)
    assert "newest period 2033-03-01 is the odd one: only S3 reaches it" in result.description
    assert "2,922 periods after the newest of the others (2025-03-01)" in result.description
    assert "odd one" not in series_reach_data_end(quality, 3, day).description  # one store of three behind
    ahead = series_reach_data_end(typo.loc[["S3"]], 3, day, run=typo)  # the store that reaches it: only that
    assert ahead.description.endswith("correct them in the source.") and "forecast from its own" not in (
        ahead.description)
    # stores of real data end at different times: a quarter of them reaching the newest week is no typo
    ragged = pd.DataFrame({"series_ending_early": 0, "series_ending_early_examples": [[]] * 12,
                           "last_observed_ds": pd.to_datetime(["2016-04-18"] * 3 + ["2016-02-29"] * 9),
                           "zero_filled_periods": 0}, index=[f"S{i}" for i in range(12)])
    week = pd.Timedelta(days=7)
    assert "odd one" not in series_reach_data_end(ragged, 2, week).description
    assert series_reach_data_end(ragged.iloc[:1], 2, week, run=ragged).passed  # one that reaches it passes
    many = pd.DataFrame({"series_ending_early": 0, "series_ending_early_examples": [[]] * 70,
                         "last_observed_ds": pd.to_datetime(["2016-04-18"] * 7 + ["2016-02-29"] * 63),
                         "zero_filled_periods": 0}, index=[f"S{i:02d}" for i in range(70)])
    assert "only S00, S01, S02, S03, S04 and 2 more reach it" in series_reach_data_end(many, 2, week).description
    # a store alone in its run is compared with the source's newest period, not only with its run's stores
    alone = pd.DataFrame({"series_ending_early": [0], "series_ending_early_examples": [[]],
                          "last_observed_ds": pd.to_datetime(["2025-02-01"]), "data_end": pd.to_datetime(["2025-03-01"]),
                          "zero_filled_periods": 0}, index=["S9"])
    assert "S9 (last 2025-02-01)" in series_reach_data_end(alone, 3, day).description


def test_a_zero_filled_dataset_is_cut_again_not_appended():
    from mm_assets.ingest.cut_state import CutState

    signatures = {"2025-01-01": "a", "2025-01-02": "b"}
    zero = Settings.model_validate({"ingest": {"absent_periods": "zero"}})
    for settings, appends in ((Settings(), True), (zero, False)):
        state = CutState.of_cut(settings, signatures, pd.Timestamp("2025-01-02"), 0)
        got = state.appendable(settings, {**signatures, "2025-01-03": "c"})
        assert (got == ["2025-01-03"]) if appends else got is None


@pytest.mark.parametrize("absent", ["missing", "zero"])
def test_a_series_with_planned_rows_only_waits_for_its_first_sale(absent):
    from mm_assets.ingest.datasets import cut_partition

    settings = Settings.model_validate({"ingest": {"absent_periods": absent}})
    sold = series("S1", "I1", 40, planned=7)
    launch = series("S1", "I9", 0, planned=7, start=START + pd.Timedelta(days=40))  # a product not sold yet
    raw = pd.concat([sold, launch], ignore_index=True).rename(columns={"ds": "date", "y": "sales"})
    part, quality = cut_partition(raw, settings, "S1")
    assert set(part["item"]) == {"I1"} and len(part) == 47  # the sold series and its plan are kept whole
    assert quality.loc["S1", "series_without_sales"] == 1
    assert quality.loc["S1", "series_without_sales_examples"] == ["S1/I9"]


def test_the_newest_observed_period_skips_period_files_of_planned_rows_only(tmp_path):
    from mm_assets.ingest.datasets import newest_period
    from mm_assets.lake import Lake

    lake = Lake(str(tmp_path / "lake"))
    for day, sales in (("2026-11-21", 3.0), ("2026-11-22", 4.0), ("2026-11-23", None), ("2026-11-24", None)):
        frame = pd.DataFrame({"date": [pd.Timestamp(day)] * 2, "store": ["S1", "S2"], "sales": [sales, sales],
                              "price": [1.0, 1.1]})  # after the 22nd: the plan's prices, no sales yet
        lake.write_parquet(frame, "raw", "sales", f"{day}.parquet")
    names = [f"{d}.parquet" for d in ("2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24")]
    assert newest_period(lake, names, "date", "sales") == pd.Timestamp("2026-11-22")
    assert newest_period(lake, names[2:], "date", "sales") is None


def test_a_series_that_stopped_selling_is_counted_and_a_slow_movers_quiet_spell_is_not():
    """Zero sales over the newest periods where the earlier rate expects 10 or more units: a closure or a feed
    sending zeros, not noise."""
    from mm_assets.checks.data_quality import sales_continue

    stopped = np.r_[np.full(50, 5.0), np.zeros(4)]  # 5 a day, then 4 days without: 20 expected
    slow = np.r_[np.tile([0.0, 0.0, 0.0, 1.0], 12), np.zeros(6)]  # 0.25 a day: 6 quiet days expect 1.5
    short = np.r_[np.full(50, 5.0), np.zeros(1)]  # one day without: too short to say
    from mm_assets.ingest.datasets import cut_partition

    def quality(*frames: pd.DataFrame) -> pd.DataFrame:
        raw = pd.concat(frames, ignore_index=True).rename(columns={"ds": "date", "y": "sales"})
        return pd.concat([cut_partition(part.drop(columns=PARTITION_COLUMN), SETTINGS, key)[1]
                          for key, part in raw.groupby(PARTITION_COLUMN)])

    q = quality(series("S1", "I1", 54, y=stopped), series("S1", "I2", 54, y=slow), series("S1", "I3", 51, y=short),
                series("S2", "I1", 54))
    assert q.loc["S1", "series_stopped_selling"] == 1 and q.loc["S2", "series_stopped_selling"] == 0
    assert q.loc["S1", "series_stopped_selling_examples"] == [
        "S1/I1: no sale in its newest 4 periods (about 20 expected at its earlier mean of 5)"]
    check = sales_continue(q)
    assert not check.passed and "1 series stopped selling" in check.description and "S1 (1)" in check.description
    assert sales_continue(quality(series("S2", "I1", 54))).passed


def test_the_gaps_check_names_where_each_series_misses_the_most_periods():
    """An outage, or one row dated years after its series' others (a mistyped year), is named with its series and
    the periods it leaves out, not only counted."""
    from mm_assets.checks.data_quality import quality_checks
    from mm_assets.ingest.datasets import cut_partition

    outage = series("S1", "I1", 60, drop=tuple(range(20, 30)))  # ten days missing, 2025-01-21 .. 2025-01-30
    typo = pd.concat([series("S1", "I2", 60), series("S1", "I2", 1, start=pd.Timestamp("2035-01-01"))])
    fine = series("S1", "I3", 60, drop=(5, 6))  # a closed weekend: within max_normal_gap (3)
    raw = pd.concat([outage, typo, fine]).rename(columns={"ds": "date", "y": "sales"})
    _, quality = cut_partition(raw, SETTINGS, "S1")
    # the mistyped year ends the store's data: the outage, ten years before it, is history beside it
    assert quality.loc["S1", "series_with_long_gaps"] == 2 and quality.loc["S1", "series_with_recent_long_gaps"] == 1
    assert quality.loc["S1", "long_gap_examples"] == ["S1/I2: 3,592 periods missing, 2025-03-02 to 2034-12-31"]
    assert quality.loc["S1", "older_long_gap_examples"] == ["S1/I1: 10 periods missing, 2025-01-21 to 2025-01-30"]
    gaps = quality_checks(quality, [], 3, pd.Timedelta(days=1))["gaps_within_series"]
    assert not gaps.passed and "S1/I2: 3,592 periods missing, 2025-03-02 to 2034-12-31" in gaps.description
    assert gaps.metadata["long_gap_examples"] == quality.loc["S1", "long_gap_examples"]
    # without it, the outage is within the newest year: warned of
    _, recent = cut_partition(pd.concat([outage, fine]).rename(columns={"ds": "date", "y": "sales"}), SETTINGS, "S1")
    gaps = quality_checks(recent, [], 3, pd.Timedelta(days=1))["gaps_within_series"]
    assert not gaps.passed and "S1/I1: 10 periods missing, 2025-01-21 to 2025-01-30" in gaps.description
    # two years on, the same outage is history: the check passes, and its note and metadata still name it
    later = pd.concat([outage, series("S1", "I1", 400, start=pd.Timestamp("2025-03-02")), fine])
    _, old = cut_partition(later.rename(columns={"ds": "date", "y": "sales"}), SETTINGS, "S1")
    gaps = quality_checks(old, [], 3, pd.Timedelta(days=1))["gaps_within_series"]
    assert gaps.passed and gaps.metadata["series_with_long_gaps"] == 1
    assert gaps.metadata["series_with_recent_long_gaps"] == 0
    assert "S1/I1: 10 periods missing, 2025-01-21 to 2025-01-30" in gaps.note and "history" in gaps.note
    # a quality row of before (every long gap counted as recent) is judged as before
    legacy = quality.drop(columns=["series_with_recent_long_gaps", "older_long_gap_examples"])
    assert not quality_checks(legacy, [], 3, pd.Timedelta(days=1))["gaps_within_series"].passed
    zero = Settings.model_validate({**SETTINGS.model_dump(), "ingest": {"absent_periods": "zero"}})
    assert cut_partition(raw, zero, "S1")[1].loc["S1", "long_gap_examples"] == []  # absent periods are no sales


def test_the_duplicate_keys_and_target_checks_say_where_and_what_to_do():
    """They failed with "no description": an operator saw a red check and nothing else."""
    from mm_assets.checks.data_quality import quality_checks
    from mm_assets.ingest.datasets import cut_partition

    raw = series("S1", "I1", 30).rename(columns={"ds": "date", "y": "sales"})
    _, quality = cut_partition(pd.concat([raw, raw.iloc[:3]]), SETTINGS, "S1")  # three rows filed twice
    checks = quality_checks(quality, [], 3, pd.Timedelta(days=1))
    assert not checks["no_duplicate_keys"].passed
    assert checks["no_duplicate_keys"].description.startswith("6 rows share their ids and date with another row, "
                                                              "in S1: ")
    assert "Re-ingest the periods" in checks["no_duplicate_keys"].description
    assert checks["target_valid"].passed and checks["target_valid"].description is None


def test_an_absurd_target_is_left_out_of_the_dataset_so_no_forecast_starts_from_it():
    """One typo of 100,000 among sales of about 20: the check names it, and the dataset has no row of that period,
    so the baseline (a moving average would have made it 3,590 a day) and the envelope never see it."""
    from mm_assets.forecasting.baseline import Baseline
    from mm_assets.forecasting.series import SeriesConfig
    from mm_assets.ingest.datasets import cut_partition

    rng = np.random.default_rng(5)
    ds = pd.date_range("2025-01-01", periods=200, freq="D")
    raw = pd.DataFrame({"date": ds, "store": "S9", "item": "spike", "sales": rng.poisson(20, 200).astype(float),
                        "price": 2.0, "promo": 0.0})
    raw.loc[190, "sales"] = 100_000.0
    raw["_partition"] = "S9"
    part, quality = cut_partition(raw, Settings(), "S9")
    assert quality.loc["S9", "extreme_target"] == 1 and quality.loc["S9", "rows"] == 200
    assert len(part) == 199 and ds[190] not in set(part["ds"]) and part["y"].max() < 100
    history = part.set_index("ds")[["y"]]
    model = Baseline(SeriesConfig(frequency="D", horizon=14, season=7)).fit(history)
    future = pd.DataFrame(index=pd.date_range(ds[-1] + pd.Timedelta(days=1), periods=14, freq="D", name="ds"))
    assert (model.predict(future) < 40).all()


def test_a_price_slip_at_the_newest_period_is_named_and_a_promotion_price_is_not():
    """A series' newest price ×100 (cents read as dollars) or /100 passes every other check, and a forecast period
    without a plan takes it as the price to come: values_plausible names it. A promotion at half price, and a
    price that has always been high, are no slips; nor is a display share that is above 0 in every week of this
    store (positive here, a share over the run: cheese's displays reach 6 times their usual share)."""
    from mm_assets.checks.data_quality import values_plausible

    weekly = Settings(frequency="W-MON")
    rng = np.random.default_rng(5)
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")
    raw = pd.DataFrame({"date": np.tile(ds, 4), "store": "S1", "item": np.repeat(["up", "down", "promo", "dear"], 40),
                        "sales": rng.uniform(40, 60, 160), "price": rng.uniform(1.9, 2.1, 160), "promo": 0.0,
                        "display": rng.uniform(0.05, 0.15, 160)})
    raw.loc[raw["item"] == "dear", "price"] *= 300.0
    newest = raw["date"] == ds[-1]
    raw.loc[newest & (raw["item"] == "up"), "price"] *= 100.0
    raw.loc[newest & (raw["item"] == "down"), "price"] /= 100.0
    raw.loc[newest & (raw["item"] == "promo"), "price"] *= 0.5
    raw.loc[newest & (raw["item"] == "promo"), "display"] = 0.9
    with_display = weekly.model_copy(update={"columns": weekly.columns.model_copy(
        update={"regressors": ["price", "promo", "display"]})})
    _, quality = cut_partition(raw.assign(_partition="S1"), with_display, "S1")
    assert quality.loc["S1", "newest_price_slips"] == {"price": 2, "display": 1}  # positive in this store
    examples = quality.loc["S1", "newest_price_slip_examples"]["price"]
    assert any(re.fullmatch(r"S1/up 2025-10-06: price = \d+(\.\d+)?, \d+(\.\d+)?× its usual \d+(\.\d+)?", e)
               for e in examples), examples
    assert any(e.startswith("S1/down 2025-10-06: price = 0.0") for e in examples), examples
    verdict = values_plausible(quality, positive={"price"})  # the run's other stores: display has zeros
    assert not verdict.passed and verdict.metadata["newest_price_slips"] == 2
    assert "2 series have a value of a price-like regressor in their newest quarter more than 5 times" in (
        verdict.description)
    assert "e.g. S1/" in verdict.description and verdict.metadata["newest_price_slip_examples"] == examples
    assert "display" not in verdict.description
    clean = raw[raw["date"] < ds[-1]].assign(_partition="S1")
    assert cut_partition(clean, with_display, "S1")[1].loc["S1", "newest_price_slips"] == {}
    # a slip weeks before the newest period is still the quarter's highest: named while it is in the quarter, once
    for weeks_back, named in ((3, 1), (20, 0)):
        earlier = clean.copy()
        earlier.loc[(earlier["item"] == "up") & (earlier["date"] == ds[-2 - weeks_back]), "price"] *= 100.0
        found = cut_partition(earlier, with_display, "S1")[1].loc["S1"]
        assert found["newest_price_slips"] == ({"price": named} if named else {}), (weeks_back, found)
        if named:
            assert found["newest_price_slip_examples"]["price"][0].startswith(f"S1/up {ds[-2 - weeks_back].date()}")


def test_a_price_slip_in_the_plan_is_named_once_per_series_and_a_planned_promotion_is_not():
    """Batch scoring forecasts with the source's plan as given: a planned price of 99 for a product sold at 2
    makes a forecast near zero that no envelope stops. values_plausible names each series whose plan has such a
    price once (its first slipped period), not a planned promotion at half price nor a plan at the usual price."""
    from mm_assets.checks.data_quality import values_plausible

    weekly = Settings(frequency="W-MON")
    rng = np.random.default_rng(7)
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")
    items = ["cents", "promo", "usual"]
    raw = pd.DataFrame({"date": np.tile(ds, 3), "store": "S1", "item": np.repeat(items, 40),
                        "sales": rng.uniform(40, 60, 120), "price": rng.uniform(1.9, 2.1, 120), "promo": 0.0})
    planned = raw["date"] > ds[-4]  # the newest three weeks are the plan: no sales yet
    raw.loc[planned, "sales"] = np.nan
    raw.loc[planned & (raw["item"] == "cents"), "price"] = 199.0  # cents read as dollars, every planned week
    raw.loc[planned & (raw["item"] == "promo"), "price"] = 1.0
    _, quality = cut_partition(raw.assign(_partition="S1"), weekly, "S1")
    assert quality.loc["S1", "planned_price_slips"] == {"price": 1}
    assert quality.loc["S1", "newest_price_slips"] == {}  # the newest sale's price is fine
    examples = quality.loc["S1", "planned_price_slip_examples"]["price"]
    assert len(examples) == 1 and examples[0].startswith(f"S1/cents {ds[-3].date()}: price = 199, "), examples
    verdict = values_plausible(quality, positive={"price"})
    assert not verdict.passed and verdict.metadata["planned_price_slips"] == 1
    assert "1 series plan a price-like regressor more than 5 times its usual value" in verdict.description
    assert "S1/promo" not in verdict.description and "S1/usual" not in verdict.description
    fine = raw.copy()
    fine.loc[planned & (fine["item"] == "cents"), "price"] = 2.0
    _, quality = cut_partition(fine.assign(_partition="S1"), weekly, "S1")
    assert quality.loc["S1", "planned_price_slips"] == {} and values_plausible(quality, positive={"price"}).passed


def test_a_regressor_missing_from_the_newest_period_and_a_share_without_zeros_are_named():
    """A whole period without a regressor (a feed not in yet) is carried forward from the period before, and a
    share whose 0 is stored as NULL (a LEFT JOIN) is carried forward and read as a price: values_plausible names
    both. A column missing only in some of the newest period's rows, and a share with its zeros, are not."""
    from mm_assets.checks.data_quality import values_plausible

    weekly = Settings(frequency="W-MON")
    weekly = weekly.model_copy(update={"columns": weekly.columns.model_copy(
        update={"regressors": ["price", "promo", "display"]})})
    rng = np.random.default_rng(3)
    ds = pd.date_range("2025-01-06", periods=30, freq="W-MON")
    raw = pd.DataFrame({"date": np.tile(ds, 3), "store": "S1", "item": np.repeat(["a", "b", "c"], 30),
                        "sales": rng.uniform(40, 60, 90), "price": rng.uniform(1.9, 2.1, 90),
                        "promo": rng.integers(0, 2, 90).astype(float),
                        "display": np.where(rng.uniform(size=90) < 0.6, 0.0, rng.choice([0.5, 1.0], 90))})
    _, quality = cut_partition(raw.assign(_partition="S1"), weekly, "S1")
    assert quality.loc["S1", "regressors_empty_at_newest"] == [] and quality.loc["S1", "shares_without_zero"] == {}
    assert values_plausible(quality, positive={"price"}).passed

    late = raw.copy()
    late.loc[late["date"] == ds[-1], "promo"] = np.nan  # the newest week's promotions not in yet
    late.loc[(late["date"] == ds[-1]) & (late["item"] == "a"), "price"] = np.nan  # one series' price only: no
    late.loc[late["date"] == ds[-1], "display"] = 0.0  # no display that week: empty below, as a share (not late)
    late["display"] = late["display"].replace(0.0, np.nan)  # no display stored as NULL
    _, quality = cut_partition(late.assign(_partition="S1"), weekly, "S1")
    assert quality.loc["S1", "regressors_empty_at_newest"] == ["promo"]
    assert quality.loc["S1", "regressors_empty_at_newest_series"] == 3
    share = quality.loc["S1", "shares_without_zero"]
    small = late.copy()
    small.loc[(small["date"] == ds[-1]) & (small["item"] == "a"), "display"] = 0.05  # positive as read: no price slip
    assert cut_partition(small.assign(_partition="S1"), weekly, "S1")[1].loc["S1", "newest_price_slips"] == {}
    assert list(share) == ["display"] and share["display"] == pytest.approx(late["display"].isna().mean(), abs=1e-3)
    verdict = values_plausible(quality, positive={"price"})
    assert not verdict.passed
    assert "in 1 partition (S1 2025-07-28: promo (3 series))" in verdict.description, verdict.description
    assert f"S1: display {share['display']:.0%} empty" in verdict.description
    assert "COALESCE(display, 0) AS display" in verdict.description
    assert verdict.metadata["partitions_with_regressors_empty_at_newest"] == 1
    assert verdict.metadata["partitions_with_shares_without_zero"] == 1


def test_dormant_series_are_judged_against_their_own_store_and_only_when_absent_rows_are_missing():
    """A discontinued item (no row for a quarter before its store's newest week) is kept apart from the dataset;
    one that stopped a few weeks ago stays in and is warned of as ending early; in a hash bucket, a store whose
    whole feed stopped a quarter ago is a late store, not a store of dormant series; and under absent_periods:
    zero every series runs to the newest week, so none is dormant."""
    from mm_assets.checks.data_quality import series_reach_data_end
    from mm_assets.ingest.datasets import cut_partition_apart

    bucketed = Settings(frequency="W-MON", partition={"buckets": 8})
    ds = pd.date_range("2025-01-06", periods=40, freq="W-MON")

    def series(store: str, item: str, weeks: int) -> pd.DataFrame:
        return pd.DataFrame({"date": ds[:weeks], "store": store, "item": item, "sales": 50.0, "price": 2.0,
                             "promo": 0.0})

    raw = pd.concat([series("A", "live", 40), series("A", "gone", 40 - 13), series("A", "late", 40 - 5),
                     series("A", "nearly", 40 - 12), series("B", "x", 40 - 20), series("B", "y", 40 - 21)])
    part, asleep, quality = cut_partition_apart(raw.assign(_partition="b1"), bucketed, "b1")
    q = quality.loc["b1"]
    assert asleep["item"].unique().tolist() == ["gone"] and len(asleep) == 27
    assert sorted(part["item"].unique()) == ["late", "live", "nearly", "x", "y"]
    assert q["series_dormant"] == 1 and q["series_dormant_examples"] == ["A/gone last 2025-07-07"]
    assert q["series_ending_early"] == 4  # late, nearly, and the late store B's two: warned of, not dormant
    verdict = series_reach_data_end(quality, bucketed.max_normal_gap, bucketed.step)
    assert not verdict.passed and "1 dormant series (no row for ingest.dormant_after" in verdict.description
    assert verdict.metadata["series_dormant"] == 1

    alone = raw[raw["store"] == "A"][lambda r: r["item"].isin(["live", "gone"])]
    verdict = series_reach_data_end(cut_partition_apart(alone.assign(_partition="A"), bucketed, "A")[2],
                                    bucketed.max_normal_gap, bucketed.step)
    assert verdict.passed and verdict.description.startswith("1 dormant series")  # expected: passes, and says so

    later = Settings(frequency="W-MON", ingest={"dormant_after": 14})
    assert len(cut_partition_apart(alone.assign(_partition="A"), later, "A")[1]) == 0
    zero = Settings(frequency="W-MON", ingest={"absent_periods": "zero"})
    part, asleep, quality = cut_partition_apart(alone.assign(_partition="A"), zero, "A")
    assert len(asleep) == 0 and quality.loc["A", "series_dormant"] == 0 and part["ds"].max() == ds[-1]


def test_a_share_entered_as_a_percent_in_one_store_is_named_over_the_run():
    """A display share of 45 for 0.45 in one week of one store, and a whole store's shares entered as percents:
    the models decide the column's kind on the run's rows (one such value made the display share of 88 stores a
    plain number), so each is named with the fix. A price, never 0, and a column above 1 throughout are not."""
    from mm_assets.checks.data_quality import quality_verdicts

    settings = Settings.model_validate({"columns": {"regressors": ["disp", "price"]}})
    ds = pd.date_range("2025-01-01", periods=60, freq="D")
    rng = np.random.default_rng(3)

    def run(percent_store: bool) -> dict:
        stores = []
        for n in range(8):
            disp = np.where(np.arange(60) % 3 == 0, 0.0, rng.uniform(0.1, 0.9, 60))
            if n == 1:
                disp[40] = 45.0  # one week entered as a percent
            if n == 2 and percent_store:
                disp = disp * 100
            raw = pd.DataFrame({"date": ds, "store": f"S{n}", "item": "I1", "sales": 5.0, "disp": disp,
                                "price": rng.uniform(0.8, 1.3, 60)})  # a price above and below 1, never 0
            raw["_partition"] = f"S{n}"
            stores.append(cut_partition(raw, settings, f"S{n}")[1])
        return quality_verdicts(pd.concat(stores), [], 3, pd.Timedelta(days=1))["values_plausible"]

    from mm_assets.ingest.datasets import cut_partition

    one = run(percent_store=False)
    assert not one["S1"].passed and "S1/I1 2025-02-10: disp = 45" in one["S1"].description
    assert "a percent entered as a number" in one["S1"].description and one["S1"].metadata["share_slips"] == 1
    assert one["S0"].passed and one["S2"].passed  # the price above 1 is no share
    both = run(percent_store=True)
    assert not both["S2"].passed and both["S2"].metadata["share_slips"] == 40  # its values above 1
