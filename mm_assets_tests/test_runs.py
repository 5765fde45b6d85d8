"""``mm_assets.runs.runs_are_distinct``: grouped rows are told from rows whose series come back, whichever way
the rows are ordered, and sorted rows are answered without counting the keys."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mm_assets import runs
from mm_assets.runs import key_boundaries, runs_are_distinct


def _table(pairs: list[tuple[str | None, str | None]]) -> pa.Table:
    return pa.table({"store": [p[0] for p in pairs], "item": [p[1] for p in pairs]})


@pytest.mark.parametrize("pairs, grouped", [
    ([("S1", "I1"), ("S1", "I1"), ("S1", "I2"), ("S2", "I1")], True),  # sorted
    ([("S2", "I1"), ("S1", "I2"), ("S1", "I2"), ("S1", "I1")], True),  # grouped, not sorted
    ([("S1", "I1"), ("S1", "I2"), ("S1", "I1")], False),  # a series comes back
    ([("S1", "I1"), ("S2", "I1"), ("S1", "I1")], False),  # across stores
    ([("S1", "I2"), ("S2", "I1"), ("S2", "I2"), ("S1", "I2")], False),  # sorted by item only, then back
    ([("S2", "I1"), ("S1", "I2"), ("S2", "I1")], False),  # the item increases where the store decreases
    # a missing id: its run cannot be told from its neighbour's, so the keys are counted and the rows refused
    ([("S1", None), ("S1", "I1"), ("S1", None)], False),
    ([("S1", None), ("S1", None), ("S1", "I1")], False),
    ([("S1", "I1")], True),
])
def test_runs_are_distinct_exactly_when_the_rows_are_grouped(pairs, grouped):
    table = _table(pairs)
    starts, _ = key_boundaries(table, ["store", "item"])
    assert runs_are_distinct(table, ["store", "item"], starts) is grouped


def test_sorted_rows_are_answered_without_counting_the_keys(monkeypatch):
    table = _table([(f"S{s}", f"I{i:03d}") for s in range(3) for i in range(50) for _ in range(4)])
    starts, _ = key_boundaries(table, ["store", "item"])
    monkeypatch.setattr(runs, "_distinct_keys", lambda *a: pytest.fail("counted the keys of sorted rows"))
    assert runs.runs_are_distinct(table, ["store", "item"], starts)


def test_ids_read_as_dictionaries_give_the_runs_and_verdicts_of_strings(tmp_path):
    """The local runner reads a file's ids as dictionaries (``read_dictionary``): the runs and the grouping
    verdict equal those of the same ids read as strings, across row groups whose dictionaries differ."""
    import pyarrow.parquet as pq

    pairs = [(f"S{s}", f"I{i}") for s in (2, 0, 1) for i in (5, 1, 9) for _ in range(3)]
    pairs[4] = ("S2", None)
    for name, rows in (("grouped", pairs), ("back", [*pairs, ("S2", "I5")])):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(_table(rows), path, row_group_size=5)  # several row groups, each its own dictionary
        strings = pq.read_table(path)
        codes = pq.read_table(path, read_dictionary=["store", "item"])
        assert pa.types.is_dictionary(codes.schema.field("item").type) and codes.column("item").num_chunks > 1
        want, got = key_boundaries(strings, ["store", "item"]), key_boundaries(codes, ["store", "item"])
        assert [list(a) for a in got] == [list(a) for a in want]
        assert runs_are_distinct(codes, ["store", "item"], got[0]) == runs_are_distinct(strings, ["store", "item"],
                                                                                          want[0])
    clean = tmp_path / "clean.parquet"
    pq.write_table(_table(sorted(p for p in pairs if p[1] is not None)), clean, row_group_size=4)
    codes = pq.read_table(clean, read_dictionary=["store", "item"])
    assert runs_are_distinct(codes, ["store", "item"], key_boundaries(codes, ["store", "item"])[0])
