"""What an ingest run tells the operator: its log lines (with their level) and its metadata, from its result."""

import datetime as dt

from mm_assets.ingest.periods import IngestResult
from mm_assets.reporting.ingest_summary import INFO, WARNING, ingest_log, ingest_metadata
from mm_assets.reporting.markdown import LakePath, Markdown

HELD = {"series": "S2/I7", "store": "S2", "bad_rows": 3, "first_date": "2026-03-02", "kind": "'price' not a number",
        "problem": "'price' is not a number in 3 rows"}


def test_a_quiet_run_says_nothing_and_its_metadata_names_no_held_series():
    result = IngestResult(rows=10, periods=[], stores=["S1"])
    assert ingest_log(result) == []
    meta = ingest_metadata(result, 2, 0, 1, None, dt.datetime(2026, 3, 1), dt.datetime(2026, 3, 3), "/lake/raw")
    assert meta["series_held_back"] == 0 and "held_back" not in meta and "partitions_note" not in meta
    assert meta["read_window"] == "2026-03-01 .. 2026-03-03 (exclusive)" and isinstance(meta["lake_folder"], LakePath)


def test_each_finding_is_one_line_at_its_level_and_held_series_are_a_table():
    result = IngestResult(rows=10, periods=[], stores=["S1"], rewritten=["2026-03-01", "2026-03-02"],
                          resized=["2026-03-02"], late_sales=["2026-02-20"], rebuilt=["2026-02-01"],
                          reshaped=["2026-01-05"], held=[HELD])
    lines = ingest_log(result)
    assert [level for level, _ in lines] == [WARNING, INFO, WARNING, INFO, WARNING]
    assert "2 periods already ingested were rewritten" in lines[0][1] and "1 of them with rows removed" in lines[0][1]
    assert "S2/I7" in lines[-1][1]
    meta = ingest_metadata(result, 2, 1, 2, "use partition.buckets", dt.datetime(2026, 3, 1),
                           dt.datetime(2026, 3, 3), "/lake/raw")
    assert isinstance(meta["held_back"], Markdown) and "| S2/I7 | S2 | 3 |" in meta["held_back"]
    assert meta["held_back_series"] == ["S2/I7"] and meta["periods_resized"] == 1
    assert meta["partitions_note"] == "use partition.buckets"
