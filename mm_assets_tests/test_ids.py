"""Tests of mm_assets.ids: id validation, series keys and stable partition buckets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mm_assets.ids import (
    MAX_ID_LENGTH,
    InvalidIdError,
    bad_id_values,
    bucket_of,
    id_problem,
    invalid_ids_message,
    partition_keys_for,
    series_key,
    series_keys,
    visible_form,
)

# ---- id_problem ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("a/b", "'/'"),
        ("/", "'/'"),
        ("..", "'..'"),
        (".", "relative path name"),
        ("a..b", "'..'"),
        ("../etc", "'..'"),
        ("a\\b", "'\\\\'"),
        ("a\x00b", "'\\x00'"),
        ("a\nb", "'\\n'"),
        ("a\tb", "'\\t'"),
        ("a\x1fb", "'\\x1f'"),
        ("a\x7fb", "'\\x7f'"),
        ("a,b", "','"),
        ("a[0]", "'['"),
        ("x]", "']'"),
        ("", "is empty"),
        ("   ", "is empty"),
        (" a", "leading or trailing spaces"),
        ("a ", "leading or trailing spaces"),
        ("x" * (MAX_ID_LENGTH + 1), f"longer than {MAX_ID_LENGTH}"),
        ("é" * 150, f"longer than {MAX_ID_LENGTH} bytes"),  # 150 characters, 300 bytes: too long for a file name
        ("S1\u200b", "U+200B (ZERO WIDTH SPACE)"),  # looks like S1
        ("\ufeffS1", "U+FEFF"),  # a byte-order mark a CSV export left in
        ("S\u00a01", "U+00A0 (NO-BREAK SPACE)"),  # looks like 'S 1'
        ("A\u2060B", "U+2060 (WORD JOINER)"),
    ],
)
def test_id_problem_rejects(value, expected):
    problem = id_problem(value)
    assert problem is not None
    assert expected in problem


@pytest.mark.parametrize(
    "value",
    [
        "S01",
        "store 12",  # spaces inside are fine
        "a b  c",
        "Café-Zürich",
        "店舗7",
        "a.b",
        "v1.2.3",
        "x" * MAX_ID_LENGTH,
        "0",
        "item_003-A",
        "SACRAMENTO: west",  # an item id may hold what a file name may not (only the store's values name files)
        "50% off?",
    ],
)
def test_id_problem_accepts(value):
    assert id_problem(value) is None


@pytest.mark.parametrize("value", ["SACRAMENTO?", "A:B", "a<b", "a>b", 'a"b', "a|b", "a*", "#1", "100%"])
def test_a_store_value_must_also_name_a_file_everywhere(value):
    from mm_assets.ids import file_name_problem

    assert id_problem(value) is None
    assert "partition.column value" in file_name_problem(value)
    assert bad_id_values([value, "S01"], file_name=True) == {value: file_name_problem(value)}
    assert file_name_problem("S01") is None and "'/'" in file_name_problem("a/b")


# ---- bad_id_values / invalid_ids_message ---------------------------------------------------------------


def test_bad_id_values_accepts_clean_values():
    assert bad_id_values(["S01", "S02", "a.b", "S01"]) == {}


def test_the_message_names_column_and_value():
    msg = invalid_ids_message(bad_id_values(["S01", "S02", "../x"]), "store")
    assert "'store'" in msg
    assert "'../x'" in msg
    assert "'S01'" not in msg  # good values are not reported


def test_bad_id_values_checks_every_value_not_just_the_first():
    values = [f"S{i:03d}" for i in range(1000)] + ["bad,id"]
    assert list(bad_id_values(values)) == ["bad,id"]


def test_the_message_reports_at_most_five():
    msg = invalid_ids_message(bad_id_values([f"bad/{i}" for i in range(20)]), "item")
    assert "'bad/4'" in msg
    assert "'bad/5'" not in msg


def test_invalid_id_error_is_a_value_error():
    assert issubclass(InvalidIdError, ValueError)


def test_numbers_are_checked_as_their_text():
    assert bad_id_values([1, 2, 3]) == {} and list(bad_id_values([1, -1.5, ".5"])) == [".5"]


# ---- series keys ---------------------------------------------------------------------------------------


def test_series_key():
    assert series_key(["S01", "I003"]) == "S01/I003"
    assert series_key(["S01"]) == "S01"
    assert series_key([1, 2, 3]) == "1/2/3"


def test_series_keys_vectorised_matches_series_key():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "store": rng.choice(["S1", "S2", "Café"], size=50),
            "item": rng.integers(0, 100, size=50),
            "sku": rng.choice(["a.b", "c d"], size=50),
        }
    )
    ids = ["store", "item", "sku"]
    got = series_keys(frame, ids)
    expected = [series_key(row) for row in frame[ids].itertuples(index=False)]
    assert got.tolist() == expected
    assert got.index.equals(frame.index)


def test_series_keys_single_column():
    frame = pd.DataFrame({"store": [3, 1]})
    assert series_keys(frame, ["store"]).tolist() == ["3", "1"]


# ---- buckets and partition keys ------------------------------------------------------------------------


def test_bucket_of_is_stable_golden_values():
    # Partition keys are persisted (Dagster partitions, lake paths): they must never change between
    # processes or releases. These values are crc32-based and independent of PYTHONHASHSEED.
    values = pd.Series(["S01", "S02", "store-42", "Café"])
    assert bucket_of(values, 16).tolist() == ["b0002", "b0008", "b0007", "b0001"]
    assert bucket_of(pd.Series(["S01"]), 100_000).tolist() == ["b20018"]


def test_bucket_of_same_input_same_bucket_across_calls():
    rng = np.random.default_rng(1)
    values = pd.Series([f"S{i}" for i in rng.integers(0, 5000, size=2000)])
    first = bucket_of(values, 37)
    second = bucket_of(values.sample(frac=1.0, random_state=3), 37).reindex(values.index)
    assert first.tolist() == second.tolist()
    # equal values always share a bucket
    assert (pd.DataFrame({"v": values, "b": first}).groupby("v")["b"].nunique() == 1).all()


@pytest.mark.parametrize("buckets", [1, 7, 10, 64, 10_000, 100_000])
def test_bucket_of_in_range_and_formatted(buckets):
    values = pd.Series([f"store-{i}" for i in range(3000)])
    keys = bucket_of(values, buckets)
    width = max(4, len(str(buckets - 1)))
    assert keys.str.fullmatch(rf"b\d{{{width}}}").all()
    numbers = keys.str[1:].astype(int)
    assert numbers.min() >= 0
    assert numbers.max() < buckets
    if buckets <= 64:
        assert numbers.nunique() == buckets  # 3000 values spread over every bucket


def test_bucket_of_treats_numbers_as_their_string():
    assert bucket_of(pd.Series([42]), 16).tolist() == bucket_of(pd.Series(["42"]), 16).tolist()


def test_partition_keys_for_without_buckets_is_the_value():
    frame = pd.DataFrame({"store": [1, 2, 1], "item": ["a", "b", "c"]})
    keys = partition_keys_for(frame, "store", 0)
    assert keys.tolist() == ["1", "2", "1"]


def test_partition_keys_for_with_buckets():
    frame = pd.DataFrame({"store": ["S01", "S02", "S01"], "item": ["a", "b", "c"]})
    keys = partition_keys_for(frame, "store", 16)
    assert keys.tolist() == ["b0002", "b0008", "b0002"]


@pytest.mark.parametrize("written, reads", [
    ("S01 ", "S01"), ("  S01", "S01"), ("I1\u200b", "I1"), ("\ufeffI1", "I1"), ("A\u00a0B", "A B"),
    ("\u3000S01", "S01"), ("S01", "S01"), ("a b", "a b"),
])
def test_an_id_with_spaces_or_invisible_characters_reads_as_its_visible_form(written, reads):
    """What an operator sees on screen: the series the lake stores under that id."""
    assert visible_form(written) == reads and id_problem(visible_form(written)) is None
