"""Tests of validate_raw: every rejection names the column and the fix; accepted rows come out typed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_assets.ids import InvalidIdError, bucket_of
from mm_assets.ingest.validation import PARTITION_COLUMN, DataValidationError, validate_raw
from mm_assets.settings import Settings

NOW = pd.Timestamp("2025-01-10")


def raw(n_days: int = 5, stores=("S1", "S2"), items=("I1", "I2")) -> pd.DataFrame:
    """Source rows in the default column names (date, store, item, sales, price, promo), shuffled."""
    rows = [
        {"date": d, "store": s, "item": i, "sales": float(k), "price": 2.5, "promo": k % 2}
        for k, (d, s, i) in enumerate(
            (d, s, i) for d in pd.date_range("2025-01-01", periods=n_days) for s in stores for i in items
        )
    ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def settings(**kw) -> Settings:
    return Settings.model_validate(kw)


def test_valid_rows_come_out_typed_and_sorted():
    frame = raw()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")  # text dates are parsed
    out = validate_raw(frame, settings(), now=NOW)
    assert len(out) == len(frame)
    assert str(out["date"].dtype) == "datetime64[ns]"
    assert out["sales"].dtype == float and out["price"].dtype == float and out["promo"].dtype == float
    assert list(out.columns) == ["date", "sales", "store", "item", "price", "promo", PARTITION_COLUMN]
    keys = list(zip(out[PARTITION_COLUMN], out["store"], out["item"], out["date"]))
    assert keys == sorted(keys)


def test_ids_are_cast_to_str_and_partition_is_the_store():
    frame = raw(stores=(1, 2), items=(10, 20))
    out = validate_raw(frame, settings(), now=NOW)
    assert set(map(type, out["store"])) == {str} and set(map(type, out["item"])) == {str}
    assert set(out["store"]) == {"1", "2"} and set(out["item"]) == {"10", "20"}
    assert (out[PARTITION_COLUMN] == out["store"]).all()


def test_whole_number_ids_read_as_floats_beside_a_null_keep_the_names_they_have_in_every_other_read():
    """An INTEGER id column with a NULL comes as floats: store 2 must stay "2", not become "2.0" (a second store
    with the same series), and the NULL row's series is held back alone."""
    frame = raw(stores=(1, 2), items=(10, 20))
    frame.loc[0, "store"] = None
    assert frame["store"].dtype == float
    held: list[dict] = []
    out = validate_raw(frame, settings(), now=NOW, held=held)
    assert set(out["store"]) == {"1", "2"} and set(out["item"]) == {"10", "20"}
    assert set(out[PARTITION_COLUMN]) == {"1", "2"}
    (record,) = held
    assert record["series"] == f"<NULL>/{frame.loc[0, 'item']}" and record["store"] is None
    # floats that are not whole numbers stay as they are
    frame = raw(stores=(1.5, 2.0), items=(10, 20))
    assert set(validate_raw(frame, settings(), now=NOW)["store"]) == {"1.5", "2.0"}


def test_partition_is_a_stable_hash_bucket_when_buckets_are_set():
    frame = raw(stores=tuple(f"S{i}" for i in range(20)))
    out = validate_raw(frame, settings(partition={"column": "store", "buckets": 3}), now=NOW)
    assert out[PARTITION_COLUMN].str.fullmatch(r"b\d{4}").all()
    assert out[PARTITION_COLUMN].nunique() <= 3
    assert (out.groupby("store")[PARTITION_COLUMN].nunique() == 1).all()  # one bucket per store
    assert (out[PARTITION_COLUMN] == bucket_of(out["store"], 3)).all()
    again = validate_raw(frame.iloc[::-1], settings(partition={"column": "store", "buckets": 3}), now=NOW)
    assert dict(zip(again["store"], again[PARTITION_COLUMN])) == dict(zip(out["store"], out[PARTITION_COLUMN]))


def test_partition_by_another_id_column():
    out = validate_raw(raw(), settings(partition={"column": "item"}), now=NOW)
    assert (out[PARTITION_COLUMN] == out["item"]).all()


def _set(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    return frame


# (case id, how the rows are broken, column the message must name, the fix it must name)
ERRORS = [
    ("missing column", lambda f: f.drop(columns=["price"]), "'price' (columns.regressors)",
     "Map the columns.* settings"),
    ("unparseable timestamp", lambda f: _set(f, "date", "not a date"), "'date' (columns.timestamp)",
     "convert them in source.query"),
    ("slashed text date", lambda f: _set(f, "date", "2025/01/03"), "date='2025/01/03'", "store ISO dates"),
    ("day-first text date", lambda f: _set(f, "date", "03/01/2025"), "date='03/01/2025'", "store ISO dates"),
    ("non-numeric target", lambda f: _set(f, "sales", "twelve"), "'sales' (columns.target)", "source"),
    ("NaN target in the past", lambda f: _set(f, "sales", np.nan), "'sales' (columns.target)",
     "Drop those rows in the source"),
    ("negative target", lambda f: _set(f, "sales", -3.0), "'sales' (columns.target)", "clip in source.query"),
    ("infinite target", lambda f: _set(f, "sales", np.inf), "'sales' (columns.target)", "filter it in source.query"),
    ("absurd target", lambda f: _set(f, "sales", 1e300), "'sales' (columns.target)", "unit or export error"),
    ("infinite regressor", lambda f: _set(f, "price", -np.inf), "'price' (columns.regressors)", "fix them in the source"),
    ("duplicate key", lambda f: pd.concat([f, f.iloc[[2]]], ignore_index=True), "(date, store, item)",
     "set ingest.on_duplicates to 'sum' or 'last'"),
]


@pytest.mark.parametrize("name, breaks, column, fix", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_column_and_the_fix(name, breaks, column, fix):
    with pytest.raises(DataValidationError) as info:
        validate_raw(breaks(raw()), settings(), now=NOW)
    message = str(info.value)
    print(message)
    assert column in message
    assert fix in message


def test_bad_values_are_quoted_as_examples():
    with pytest.raises(DataValidationError, match=r"1 values are not numbers, e\.g\. .*sales='twelve'"):
        validate_raw(_set(raw(), "sales", "twelve"), settings(), now=NOW)
    with pytest.raises(DataValidationError, match=r"1 rows are negative, e\.g\. .*sales=-3\.0"):
        validate_raw(_set(raw(), "sales", -3.0), settings(), now=NOW)


def test_nan_target_on_a_future_date_is_accepted():
    frame = raw()
    future = frame.iloc[[0]].assign(date=NOW + pd.Timedelta(days=3), sales=np.nan, promo=1)
    out = validate_raw(pd.concat([frame, future], ignore_index=True), settings(), now=NOW)
    planned = out[out["date"] == NOW + pd.Timedelta(days=3)]
    assert len(planned) == 1 and planned["sales"].isna().all()
    # the same row on today's date is a past row: rejected
    today = future.assign(date=NOW)
    with pytest.raises(DataValidationError, match="past rows have no value"):
        validate_raw(pd.concat([frame, today], ignore_index=True), settings(), now=NOW)


def test_a_store_that_has_not_reported_the_newest_day_yet_keeps_its_plan_rows():
    """S1 reported the 6th, S2 not yet: S2's rows of the 6th are its plan (no target), not missing data. One item of
    S1 without a value on a day S1 reported is missing data; so is a store's empty day long after its last sale."""
    frame = raw()
    day = pd.Timestamp("2025-01-06")
    newest = raw(1).assign(date=day)
    newest.loc[newest["store"] == "S2", "sales"] = np.nan
    out = validate_raw(pd.concat([frame, newest], ignore_index=True), settings(), now=day)
    late = out[(out["date"] == day) & (out["store"] == "S2")]
    assert len(late) == 2 and late["sales"].isna().all()
    assert out.loc[(out["date"] == day) & (out["store"] == "S1"), "sales"].notna().all()
    one_item = newest.copy()
    one_item.loc[(one_item["store"] == "S1") & (one_item["item"] == "I1"), "sales"] = np.nan
    with pytest.raises(DataValidationError, match=r"past rows have no value.*store='S1', item='I1'"):
        validate_raw(pd.concat([frame, one_item], ignore_index=True), settings(), now=day)
    long_after = newest.assign(date=day + pd.Timedelta(days=4))
    with pytest.raises(DataValidationError, match=r"past rows have no value.*store='S2'"):
        validate_raw(pd.concat([frame, long_after], ignore_index=True), settings(), now=day + pd.Timedelta(days=4))
    # a read without any sale of S2 (its history is in earlier reads): its empty days within 3 of the source's
    # newest sale are its plan, the ones before are missing data, and so is an empty store far back in history
    s1 = raw(6, stores=("S1",)).assign(date=lambda f: f["date"] + pd.Timedelta(days=5))  # the 6th .. the 11th
    s2 = s1.assign(store="S2", sales=np.nan)
    with pytest.raises(DataValidationError, match=r"past rows have no value.*store='S2'.*date=2025-01-0[67]"):
        validate_raw(pd.concat([s1, s2], ignore_index=True), settings(), now=pd.Timestamp("2025-01-11"))
    recent = pd.concat([s1, s2[s2["date"] >= "2025-01-08"]], ignore_index=True)
    kept = validate_raw(recent, settings(), now=pd.Timestamp("2025-01-11"))
    assert kept.loc[kept["store"] == "S2", "sales"].isna().all() and (kept["store"] == "S2").sum() == 8
    with pytest.raises(DataValidationError, match=r"past rows have no value.*store='S2'"):
        validate_raw(recent, settings(), now=pd.Timestamp("2025-03-01"))


def test_non_numeric_regressor_is_rejected_naming_it():
    with pytest.raises(DataValidationError, match=r"regressor column 'promo' \(columns\.regressors\)"):
        validate_raw(_set(raw(), "promo", "yes"), settings(), now=NOW)


@pytest.mark.parametrize("bad", ["S1/x", "..", "a..b"])
def test_id_that_could_escape_a_path_is_rejected_naming_the_column(bad):
    with pytest.raises(InvalidIdError) as info:
        validate_raw(_set(raw(), "item", bad), settings(), now=NOW)
    message = str(info.value)
    assert "id column 'item'" in message
    assert repr(bad) in message
    assert "source.query" in message  # the fix


def test_empty_id_is_rejected_naming_the_column_a_row_and_the_fix():
    with pytest.raises(DataValidationError, match=r"id column 'store' \(columns\.ids\) has 1 empty") as info:
        validate_raw(_set(raw(), "store", None), settings(), now=NOW)
    assert "date=" in str(info.value) and "item=" in str(info.value) and "WHERE store IS NOT NULL" in str(info.value)


def test_stores_that_differ_only_in_case_are_refused():
    """'S1' and 's1' are one file on a case-insensitive disk: refused, naming both; items may differ in case, and
    full-width letters are other characters."""
    with pytest.raises(DataValidationError, match=r"'S1' and 's1' differ only in case.*UPPER\(store\)"):
        validate_raw(_set(raw(), "store", "s1"), settings(), now=NOW)
    assert len(validate_raw(_set(raw(), "item", "i1"), settings(), now=NOW)) == len(raw())
    assert len(validate_raw(_set(raw(), "store", "Ｓ1"), settings(), now=NOW)) == len(raw())


def test_stores_that_differ_only_in_how_an_accent_is_encoded_are_refused():
    frame = raw()
    frame["store"] = np.where(frame["store"] == "S1", "Caf\u00e9", "Cafe\u0301")
    with pytest.raises(DataValidationError, match="differ only in case or in how an accent is encoded") as info:
        validate_raw(frame, settings(), now=NOW)
    assert "NORMALIZE(store, NFC)" in str(info.value)  # UPPER() would not make them one


def test_a_store_ending_in_a_dot_is_refused_unless_files_are_named_by_bucket():
    """'S1.' would name its files 'S1..parquet': refused at ingest, before its partition is registered; an item
    may end in a dot (no file is named by it), and so may a store when partitions are hash buckets."""
    with pytest.raises(DataValidationError, match=r"partition column 'store'.*'S1\.' ends with '\.'.*RTRIM"):
        validate_raw(_set(raw(), "store", "S1."), settings(), now=NOW)
    assert (validate_raw(_set(raw(), "item", "I1."), settings(), now=NOW)["item"] == "I1.").any()
    bucketed = validate_raw(_set(raw(), "store", "S1."), settings(partition={"buckets": 4}), now=NOW)
    assert (bucketed["store"] == "S1.").any()


def _with_duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """Row 0 repeated with sales 100 and price 9 (appended last)."""
    return pd.concat([frame, frame.iloc[[0]].assign(sales=100.0, price=9.0)], ignore_index=True)


def test_duplicates_policy_sum_adds_targets_and_keeps_the_last_regressors():
    frame = raw()
    first = frame.iloc[0]
    out = validate_raw(_with_duplicate(frame), settings(ingest={"on_duplicates": "sum"}), now=NOW)
    assert len(out) == len(frame)
    row = out[(out["date"] == first["date"]) & (out["store"] == first["store"]) & (out["item"] == first["item"])]
    assert len(row) == 1
    assert row["sales"].iloc[0] == first["sales"] + 100.0
    assert row["price"].iloc[0] == 9.0
    assert out["sales"].sum() == frame["sales"].sum() + 100.0  # other rows unchanged


def test_duplicates_policy_last_keeps_the_last_row():
    frame = raw()
    first = frame.iloc[0]
    out = validate_raw(_with_duplicate(frame), settings(ingest={"on_duplicates": "last"}), now=NOW)
    assert len(out) == len(frame)
    row = out[(out["date"] == first["date"]) & (out["store"] == first["store"]) & (out["item"] == first["item"])]
    assert list(row["sales"]) == [100.0] and list(row["price"]) == [9.0]


def test_duplicates_policy_sum_keeps_a_planned_future_target_empty():
    frame = raw()
    future = frame.iloc[[0]].assign(date=NOW + pd.Timedelta(days=3), sales=np.nan, promo=1)
    data = pd.concat([frame, future, future], ignore_index=True)  # the plan listed twice
    out = validate_raw(data, settings(ingest={"on_duplicates": "sum"}), now=NOW)
    planned = out[out["date"] == NOW + pd.Timedelta(days=3)]
    assert len(planned) == 1
    # a sum of unknown future demand is still unknown, not an observed 0
    assert planned["sales"].isna().all(), planned


# ---- dates: a time of day, numbers, and the grid of the configured frequency --------------------------------------


def test_a_time_of_day_is_read_as_its_calendar_day():
    frame = raw()
    frame["date"] = (frame["date"] + pd.Timedelta(hours=12)).dt.strftime("%Y-%m-%d %H:%M:%S")
    out = validate_raw(frame, settings(), now=NOW)
    assert (out["date"] == out["date"].dt.normalize()).all()
    assert sorted(out["date"].unique()) == list(pd.date_range("2025-01-01", periods=5))


def test_two_rows_of_one_day_at_different_times_are_duplicates_that_say_why():
    frame = raw()
    later = frame.iloc[[0]].assign(date=frame["date"].iloc[0] + pd.Timedelta(hours=15))
    with pytest.raises(DataValidationError, match=r"times of day are dropped.*ingest\.on_duplicates"):
        validate_raw(pd.concat([frame, later], ignore_index=True), settings(), now=NOW)
    summed = validate_raw(pd.concat([frame, later], ignore_index=True), settings(ingest={"on_duplicates": "sum"}),
                          now=NOW)
    assert summed["sales"].sum() == frame["sales"].sum() + later["sales"].iloc[0]


@pytest.mark.parametrize("dtype", ["int64", "float64"])
def test_numbers_in_the_timestamp_column_are_refused_not_read_as_1970(dtype):
    frame = raw()
    frame["date"] = frame["date"].dt.strftime("%Y%m%d").astype(dtype)
    with pytest.raises(DataValidationError) as info:
        validate_raw(frame, settings(), now=NOW)
    message = str(info.value)
    assert "'date' (columns.timestamp) holds numbers, not dates" in message
    assert "date=2025010" in message and "substr(date, 1, 4)" in message


@pytest.mark.parametrize("bad", ["2025-13-45", "2025-02-30"])
def test_an_iso_shaped_text_that_is_no_calendar_day_is_refused_by_name(bad):
    # the example names its series: with ingest.on_bad_rows: hold it is the series held back
    with pytest.raises(DataValidationError, match=rf"'date' \(columns\.timestamp\): 1 values are not timestamps, "
                                                  rf"e\.g\. store='S1', item='I2', date='{bad}'"):
        validate_raw(_set(raw(), "date", bad), settings(), now=NOW)


def weekly(anchor: str, weeks: int = 6) -> pd.DataFrame:
    """Rows of two series dated every week by ``anchor`` (a pandas W-<day> frequency)."""
    days = pd.date_range("2024-11-01", periods=weeks, freq=anchor)
    return pd.DataFrame([{"date": d, "store": "S1", "item": i, "sales": 1.0, "price": 2.0, "promo": 0}
                         for d in days for i in ("I1", "I2")])


def test_daily_rows_under_a_weekly_frequency_are_refused_naming_the_step_and_the_fix():
    with pytest.raises(DataValidationError) as info:
        validate_raw(raw(n_days=9), settings(frequency="W-SUN"), now=NOW)
    message = str(info.value)
    assert message.startswith("frequency W-SUN dates every week by its Sunday")
    assert "columns.timestamp 'date'" in message
    assert "the source's dates are daily (consecutive days such as 2025-01-01 and 2025-01-02)" in message
    assert "Set frequency: D, or sum the days into weeks dated by their Sunday in source.query" in message


def test_weekly_rows_on_another_weekday_are_refused_naming_the_frequency_that_fits():
    with pytest.raises(DataValidationError) as info:
        validate_raw(weekly("W-SUN"), settings(frequency="W-MON"), now=NOW)
    message = str(info.value)
    assert "frequency W-MON dates every week by its Monday" in message
    assert "weekly, every one a Sunday" in message and "Set frequency: W-SUN (weeks dated by Sunday)" in message


def test_a_few_rows_off_the_weekday_hold_back_their_series_the_rest_go_on():
    """A slip of a few dates (a Tuesday among Mondays) is a problem of its series, not a wrong frequency."""
    frame = pd.concat([weekly("W-MON"), weekly("W-MON").assign(store="S2")], ignore_index=True)
    slipped = (frame["store"] == "S2") & (frame["item"] == "I1") & (frame["date"] < pd.Timestamp("2024-11-20"))
    frame.loc[slipped, "date"] += pd.Timedelta(days=1)
    held: list[dict] = []
    out = validate_raw(frame, settings(frequency="W-MON"), now=NOW, held=held)
    assert [h["series"] for h in held] == ["S2/I1"]
    assert "3 rows are not dated by a Monday, e.g. store='S2', item='I1', date=" in held[0]["problem"]
    assert "date every row by the Monday of its week in source.query" in held[0]["problem"]
    assert len(out) == 18 and not ((out["store"] == "S2") & (out["item"] == "I1")).any()
    # most rows off the weekday is the frequency mistaken for the source: refused, naming the one that fits
    with pytest.raises(DataValidationError) as info:
        validate_raw(weekly("W-SUN"), settings(frequency="W-MON"), now=NOW, held=[])
    message = str(info.value)
    assert "fall on other weekdays, none on a Monday" in message and "Set frequency: W-SUN" in message


def test_weekly_rows_under_daily_settings_are_refused():
    with pytest.raises(DataValidationError) as info:
        validate_raw(weekly("W-MON"), settings(), now=NOW)
    message = str(info.value)
    assert "frequency D (daily), but the 6 dates of columns.timestamp 'date'" in message
    assert "are weekly, every one a Monday" in message and "Set frequency: W-MON" in message


@pytest.mark.parametrize("frequency, rows", [("W-SUN", lambda: weekly("W-SUN")), ("W", lambda: weekly("W-SUN")),
                                             ("W-MON", lambda: weekly("W-MON")), ("D", lambda: raw(n_days=9)),
                                             ("D", lambda: weekly("W-MON", weeks=3))])  # 3 Mondays prove nothing
def test_rows_on_the_grid_of_their_frequency_pass(frequency, rows):
    frame = rows()
    assert len(validate_raw(frame, settings(frequency=frequency), now=NOW)) == len(frame)


def test_rows_on_two_weekdays_are_refused_with_the_rows_to_redate():
    days = pd.date_range("2024-11-04", periods=4, freq="W-MON").append(
        pd.date_range("2024-11-07", periods=4, freq="W-THU"))
    frame = pd.DataFrame({"date": days, "store": "S1", "item": "I1", "sales": 1.0, "price": 2.0, "promo": 0})
    with pytest.raises(DataValidationError) as info:
        validate_raw(frame, settings(frequency="W-MON"), now=NOW)
    message = str(info.value)
    assert "weekly, dated by 2 different weekdays (dates per weekday: Monday 4, Thursday 4)" in message
    assert "Date every row by the Monday of its week in source.query" in message
    assert "rows off the weekday: store='S1', item='I1', date=2024-11-07" in message


def _stores_weekly(anchors: dict[str, str], weeks: int = 30) -> pd.DataFrame:
    """Two items per store, weekly, each store's weeks dated by its own weekday (``anchors``: store -> W-<day>)."""
    return pd.DataFrame([{"date": d, "store": store, "item": item, "sales": 5.0, "price": 2.0, "promo": 0}
                         for store, freq in anchors.items() for item in ("I1", "I2")
                         for d in pd.date_range("2024-01-01", periods=weeks, freq=freq)])


def test_weeks_dated_by_another_weekday_in_one_store_are_named_not_called_daily():
    """One store dates its weeks by Sunday, the rest by Monday: the dates together hold consecutive days, but the
    data are weekly. Weekly settings name the store's rows to re-date (not "set frequency: D", which would
    publish weekly totals as days); daily settings refuse them too, and so does a single mistyped date."""
    frame = _stores_weekly({"S1": "W-MON", "S2": "W-MON", "S3": "W-SUN"})
    message = _refusal(frame, "W-MON")
    assert "weekly, dated by 2 different weekdays" in message and "frequency: D" not in message
    assert "Date every row by the Monday of its week" in message and "store='S3', item='I1'" in message
    message = _refusal(frame, "D")
    assert "each series' dates in columns.timestamp 'date' are a week apart on one weekday" in message
    assert "series dated 4 by Monday, 2 by Sunday" in message and "Set frequency: W-MON" in message
    one_typo = _stores_weekly({"S1": "W-MON"}, weeks=62)
    one_typo.loc[40, "date"] -= pd.Timedelta(days=1)  # a Sunday
    message = _refusal(one_typo, "W-MON")
    assert "frequency: D" not in message and "rows off the weekday: store='S1', item='I1', date=2024-10-06" in message


def test_a_shop_open_on_two_weekdays_is_daily_data():
    """Every series sells on Saturdays and Sundays: two weekdays, but each series has both, so daily settings
    take them (weekly series are each on one weekday)."""
    days = pd.date_range("2024-01-06", periods=140, freq="D")
    weekend = days[days.day_of_week >= 5]
    frame = pd.concat([dated(weekend).assign(store=store) for store in ("S1", "S2")], ignore_index=True)
    assert len(validate_raw(frame, settings(frequency="D"), now=pd.Timestamp("2025-01-10"))) == len(frame)


def dated(days) -> pd.DataFrame:
    """Rows of two series on ``days``."""
    return pd.DataFrame([{"date": d, "store": "S1", "item": i, "sales": 1.0, "price": 2.0, "promo": 0}
                         for d in days for i in ("I1", "I2")])


def _refusal(frame: pd.DataFrame, frequency: str = "D") -> str:
    with pytest.raises(DataValidationError) as info:
        validate_raw(frame, settings(frequency=frequency), now=NOW)
    return str(info.value)


MONTHLY = pd.date_range("2022-09-01", "2024-12-01", freq="MS")  # 28 dates on the 1st
FOUR_FOUR_FIVE = pd.DatetimeIndex(pd.Timestamp("2023-01-28") + pd.to_timedelta(
    np.cumsum([0] + [28, 28, 35] * 6), unit="D"))  # periods of 4, 4 and 5 weeks, all ending on a Saturday


@pytest.mark.parametrize("days, step", [
    (MONTHLY, "they are about a month apart (median gap 31 days)"),
    (MONTHLY[:3], "they are about a month apart (median gap 30 days)"),  # the 3 dates of a read of 92 days
    (pd.date_range("2024-01-01", periods=30, freq="10D"), "they are about 10 days apart (median gap 10 days)"),
    (FOUR_FOUR_FIVE, "they are about a month apart (median gap 28 days)"),
])
def test_dates_further_apart_than_days_are_refused_under_daily_settings(days, step):
    message = _refusal(dated(days))
    assert message.startswith(f"frequency D (daily), but the {len(days)} distinct dates of columns.timestamp 'date'")
    assert f"are not daily: {step}" in message
    assert "Only daily (D) and weekly (W-<day>) series are supported" in message
    assert "aggregate the source to days or weeks in source.query" in message
    assert "W-<day>) and date every row" not in message  # not weekly: no weekly advice


def test_weekly_dates_on_several_weekdays_under_daily_settings_are_called_weekly():
    days = pd.date_range("2024-01-01", periods=20, freq="W-MON").append(pd.DatetimeIndex(["2024-05-21"]))
    message = _refusal(dated(days))
    assert "they are about a week apart (median gap 7 days)" in message
    assert "the data look weekly: set frequency: W-<day>" in message


def test_weekly_dates_under_daily_settings_keep_their_own_message():
    message = _refusal(dated(pd.date_range("2024-01-01", periods=20, freq="W-MON")))
    assert "are weekly, every one a Monday" in message and "Set frequency: W-MON" in message


DAYS = pd.date_range("2024-01-01", "2024-12-31")


@pytest.mark.parametrize("days", [
    DAYS[DAYS.day_of_week != 6],  # closed on Sundays
    DAYS[DAYS.day_of_week < 5],  # closed at weekends
    DAYS.delete([10, 11, 12, 40, 41, 100, 200, 201, 202, 203, 300]),  # a few days missing, an outage of 4 days
    DAYS[DAYS.day_of_week.isin([0, 2, 4])],  # open three days a week: daily data with closed days
    DAYS[::3],  # every third day: not far enough apart to be sure
    DAYS[:2].append(DAYS[40:41]),  # two dates and one far away prove nothing
])
def test_daily_dates_with_closed_or_missing_days_pass(days):
    frame = dated(days)
    assert len(validate_raw(frame, settings(), now=pd.Timestamp("2025-01-10"))) == len(frame)


def test_a_sparse_plan_after_daily_sales_is_not_judged_for_its_step():
    sales = dated(pd.date_range("2024-12-01", "2024-12-31"))
    plan = dated(pd.DatetimeIndex(["2025-01-20", "2025-02-14", "2025-03-17", "2025-04-20"])).assign(sales=np.nan)
    frame = pd.concat([sales, plan], ignore_index=True)
    assert len(validate_raw(frame, settings(), now=pd.Timestamp("2025-01-01"))) == len(frame)
    assert len(validate_raw(plan, settings(), now=pd.Timestamp("2025-01-01"))) == len(plan)  # the plan alone


def test_monthly_dates_under_a_weekly_frequency_are_called_monthly_not_redated():
    message = _refusal(dated(MONTHLY), "W-MON")
    assert "frequency W-MON dates every week by its Monday" in message
    assert "the source's dates are about a month apart (median gap 31 days)" in message
    assert "Only daily (D) and weekly (W-<day>) series are supported" in message
    assert "Date every row by the Monday of its week" not in message


def test_four_week_periods_on_the_weekday_of_a_weekly_frequency_are_refused():
    message = _refusal(dated(FOUR_FOUR_FIVE), "W-SAT")
    assert message.startswith("frequency W-SAT (weekly), but the 19 distinct dates")
    assert "are not weekly: they are about a month apart (median gap 28 days)" in message
    assert "Only daily (D) and weekly (W-<day>) series are supported" in message


@pytest.mark.parametrize("days", [pd.date_range("2024-01-08", periods=40, freq="14D"),  # two-weekly periods
                                  pd.date_range("2024-01-08", periods=80, freq="W-MON")[::2]])  # every second week lost
def test_dates_two_weeks_apart_under_a_weekly_frequency_are_refused(days):
    message = _refusal(dated(days), "W-MON")
    assert message.startswith("frequency W-MON (weekly), but the 40 distinct dates")
    assert "are about two weeks apart (median gap 14 days): two-weekly periods" in message
    assert "each row's two weeks of sales forecast as one week's" in message
    assert "one row per series and week dated by its Monday" in message


@pytest.mark.parametrize("days", [pd.date_range("2024-01-07", periods=30, freq="W-SUN"),
                                  pd.date_range("2024-01-07", periods=30, freq="W-SUN").delete([3, 4, 10]),
                                  # a third of the weeks missing, in holes of one and two weeks: still weekly
                                  pd.date_range("2024-01-07", periods=60, freq="W-SUN").delete(
                                      [*range(1, 60, 6), *range(3, 60, 6)])])
def test_weekly_dates_with_a_few_missing_weeks_pass(days):
    frame = dated(days)
    assert len(validate_raw(frame, settings(frequency="W-SUN"), now=NOW)) == len(frame)


def test_duplicate_rows_are_shown_with_plain_dates():
    frame = raw()
    message = _refusal(pd.concat([frame, frame.iloc[[2]]], ignore_index=True))
    date = frame.iloc[2]["date"].date().isoformat()
    assert f"date={date}, store='{frame.iloc[2]['store']}'" in message
    assert "Timestamp(" not in message and "np.float64" not in message


@pytest.mark.parametrize("column, role", [("price", "regressor column 'price' (columns.regressors)"),
                                          ("sales", "column 'sales' (columns.target)")])
def test_a_text_nan_says_to_store_null(column, role):
    message = _refusal(_set(raw(), column, "NaN"))
    assert f"{role}: 1 values are not numbers, e.g. " in message
    assert f"{column}='NaN'" in message and "date=2025-01-0" in message and "Timestamp(" not in message
    assert "a missing value is stored as NULL, not as the text 'NaN': store NULL in the source" in message
    assert f"NULLIF({column}, 'NaN')" in message


def test_a_word_in_a_numeric_column_says_to_cast():
    message = _refusal(_set(raw(), "price", "cheap"))
    assert "price='cheap'" in message and "CAST(price AS REAL)" in message


@pytest.mark.parametrize("words", [("Y", "N"), ("true", "false"), ("N",)])
def test_a_flag_written_as_words_says_to_turn_them_into_1_and_0(words):
    """CAST('Y' AS REAL) is 0.0 in SQLite: a cast would silently turn every deal off; the advice maps the words."""
    frame = raw()
    frame["promo"] = [words[k % len(words)] for k in range(len(frame))]
    message = _refusal(frame)
    on = [w for w in words if w in ("Y", "true")] or ["Y"]  # none on: the on word of the off one seen
    assert f"CASE WHEN promo IN ({', '.join(repr(w) for w in on)}) THEN 1 ELSE 0 END" in message, message
    assert "CAST(promo AS REAL)" not in message and "the words of a flag" in message


def test_a_flag_whose_0_is_stored_as_null_is_refused_with_coalesce():
    """A LEFT JOIN of a promotions table writes NULL where there was no promotion: carried forward, every row would
    read 1. Refused as a problem of the source, even where bad rows are held back; a flag with some NULLs beside its
    0s and 1s, and a column of 1s without NULLs, are not."""
    frame = raw()
    frame["promo"] = frame["promo"].where(frame["promo"] == 1)  # 0 -> NULL
    for held in (None, []):
        with pytest.raises(DataValidationError) as info:
            validate_raw(frame, settings(), now=NOW, held=held)
        message = str(info.value)
        assert "column 'promo' (columns.regressors) holds only the value 1 and is empty (NULL) in 10 of 20 rows" in message
        assert "COALESCE(promo, 0) AS promo" in message and "date=2025-01-0" in message
    some_missing = raw()
    some_missing.loc[[0, 3], "promo"] = np.nan
    assert validate_raw(some_missing, settings(), now=NOW)["promo"].isna().sum() == 2
    always_on = raw().assign(promo=1)
    assert (validate_raw(always_on, settings(), now=NOW)["promo"] == 1).all()


@pytest.mark.parametrize("column", ["sales", "price"])
def test_thousands_separators_say_to_remove_them_before_a_cast(column):
    """CAST('1,585' AS REAL) is 1.0 in SQLite: the advice removes the separators first."""
    message = _refusal(_set(raw(), column, "1,585"))
    assert f"{column}='1,585'" in message and f"CAST(REPLACE({column}, ',', '') AS REAL)" in message
    assert f"CAST({column} AS REAL))" not in message


def test_a_missing_past_target_of_weekly_data_speaks_of_weeks():
    frame = weekly("W-MON")
    frame.loc[3, "sales"] = np.nan
    message = _refusal(frame, "W-MON")
    assert "a missing week is fine" in message and "missing day" not in message


def test_plain_values():
    from mm_assets.ingest.validation import plain

    assert plain(pd.Timestamp("2026-11-21")) == "2026-11-21"
    assert plain(pd.Timestamp("2026-11-21 08:30")) == "2026-11-21 08:30:00"
    assert plain(np.float64(2.5)) == "2.5" and plain(np.int64(3)) == "3"
    assert plain("S01") == "'S01'" and plain(None) == "NULL" and plain(np.nan) == "NULL" and plain(pd.NaT) == "NULL"


def test_an_id_of_hundreds_of_characters_is_quoted_cut_with_its_length():
    """Refused for its length, it was printed whole in every line that named it (three times in a summary)."""
    long_store = "Z" * 300
    held: list[dict] = []
    validate_raw(raw(stores=("S1", long_store)), settings(), now=NOW, held=held)
    (record,) = {h["problem"] for h in held}
    assert "…(300 characters)" in record and long_store not in record and len(record) < 400


@pytest.mark.parametrize("column", ["sales", "price"])
def test_a_decimal_comma_says_to_make_it_a_point_before_a_cast(column):
    """CAST('0,0434' AS REAL) is 0.0 in SQLite: a plain cast would zero every price, so the advice replaces the
    comma with a point first."""
    message = _refusal(_set(raw(), column, "0,0434"))
    assert f"{column}='0,0434'" in message and f"CAST(REPLACE({column}, ',', '.') AS REAL)" in message
    assert f"CAST({column} AS REAL))" not in message and "decimal comma" in message


def _spans(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Spans of (store, item, first, last) rows."""
    frame = pd.DataFrame(rows, columns=["store", "item", "first", "last"])
    frame[["first", "last"]] = frame[["first", "last"]].apply(pd.to_datetime)
    return frame.set_index(["store", "item"])


def test_a_series_written_another_way_from_a_date_on_is_a_rewrite_of_the_stored_one():
    from mm_assets.ingest.id_formats import canonical, rewritten

    ids = ["store", "item"]
    stored = pd.DataFrame({"store": ["S1", "S1", "S1", "S1", "S1"], "item": ["2", "10", "Store A", "Café", "7"]})
    decomposed = "CAFE\u0301"  # É as E and a combining accent
    read = _spans([("S1", "002", "2025-03-07", "2025-03-08"), ("S1", "10", "2025-03-07", "2025-03-08"),
                   ("S1", "STORE A", "2025-03-07", "2025-03-08"), ("S1", decomposed, "2025-03-07", "2025-03-08"),
                   ("S1", "7.0", "2025-03-07", "2025-03-08")])
    assert sorted(rewritten(read, stored, None, ids)) == [
        (("S1", "002"), ("S1", "2")), (("S1", "7.0"), ("S1", "7")), (("S1", decomposed), ("S1", "Café")),
        (("S1", "STORE A"), ("S1", "Store A"))]
    assert canonical("0123") == canonical("123.00") == "123" and canonical("1.5") == "1.5"
    # the stored form sells on beside the new one: two series
    both = _spans([("S1", "2", "2025-03-01", "2025-03-08"), ("S1", "002", "2025-03-07", "2025-03-08")])
    assert rewritten(both, stored, None, ids) == []
    # both in one read, the old form up to the day before the new one's first: a rewrite
    switched = _spans([("S1", "2", "2025-03-01", "2025-03-06"), ("S1", "002", "2025-03-07", "2025-03-08")])
    assert rewritten(switched, stored, None, ids) == [(("S1", "002"), ("S1", "2"))]
    # the newest stored period is not read again: its rows of the old form stay and go on past the new one's first
    assert rewritten(_spans([("S1", "002", "2025-03-01", "2025-03-02")]), stored, pd.Timestamp("2025-03-08"),
                     ids) == []
    assert rewritten(_spans([("S1", "002", "2025-03-09", "2025-03-09")]), stored, pd.Timestamp("2025-03-08"),
                     ids) == [(("S1", "002"), ("S1", "2"))]
    # a new product whose code is an old, discontinued one's with a leading zero: the old one is not stored now
    assert rewritten(_spans([("S1", "0123", "2025-03-07", "2025-03-08"), ("S1", "123", "2023-01-02", "2023-06-30")]),
                     stored, None, ids) == []
    assert rewritten(_spans([("S2", "10", "2025-03-07", "2025-03-08")]), stored, None, ids) == []  # another store


def test_a_rewrite_of_both_id_columns_names_both_with_their_fixes():
    """Store and item both written another way: the message named only the store column, and its fix mended
    only half of the ids."""
    from mm_assets.ingest.id_formats import refuse_rewritten

    stored = pd.DataFrame({"store": ["s1"], "item": ["7"]})
    read = _spans([("S1", "007", "2025-03-07", "2025-03-08")])
    with pytest.raises(DataValidationError) as err:
        refuse_rewritten(read, stored, None, ["store", "item"])
    message = str(err.value)
    assert message.startswith("id columns 'store' and 'item' (columns.ids): the source now writes S1/007 (stored "
                              "as s1/7)"), message
    assert "LOWER(store); CAST(item AS INTEGER)" in message
    with pytest.raises(DataValidationError, match=r"^id column 'item' \(columns.ids\)"):
        refuse_rewritten(_spans([("s1", "007", "2025-03-07", "2025-03-08")]), stored, None, ["store", "item"])
