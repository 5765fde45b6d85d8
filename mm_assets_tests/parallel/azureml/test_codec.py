"""Result rows through Azure ML's append-row file (space-joined columns, no header, no types) and back."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mm_assets.parallel.azureml.codec import (
    RESULT_COLUMN,
    ROW_MARKER,
    decode_lines,
    encode_failure,
    encode_rows,
    read_append_row_output,
    result_frame,
)


def _rows() -> pd.DataFrame:
    return pd.DataFrame({
        "store": ["S1", "S1"],
        "series_key": ["S1/I1", "S1/I1"],
        "ds": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        "yhat": [1.5, np.nan],
        "version": np.array([3, 3], dtype="int64"),
        "reason": ["too short: 12 rows < 30", None],
        "metrics": ['{"wape": 0.1, "mase": 0.8}', "{}"],
        "flag": [True, False],
    })


def _prs_lines(frame: pd.DataFrame) -> list[str]:
    """What Azure ML writes for the returned frame: each row's columns joined by a space."""
    return [" ".join(str(v) for v in row) for row in frame.itertuples(index=False)]


def test_tokens_have_no_whitespace_or_quotes_so_the_file_format_cannot_split_them():
    tokens = encode_rows(_rows(), "S1/I1")
    assert len(tokens) == 2
    for token in tokens:
        assert token.startswith(ROW_MARKER)
        assert not any(c.isspace() for c in token) and '"' not in token and "," not in token


def test_rows_come_back_with_values_and_types():
    original = _rows()
    out = decode_lines(_prs_lines(result_frame(encode_rows(original, "S1/I1"))))
    frame = out.rows
    assert out.reported == {"S1/I1"} and out.foreign == 0 and out.failed == {}
    assert list(frame.columns) == list(original.columns)
    assert pd.api.types.is_datetime64_any_dtype(frame["ds"])
    assert list(frame["ds"]) == list(original["ds"])
    assert frame["yhat"].iloc[0] == 1.5 and math.isnan(frame["yhat"].iloc[1])
    assert list(frame["version"]) == [3, 3] and frame["version"].dtype == "int64"
    assert frame["reason"].iloc[0] == "too short: 12 rows < 30" and pd.isna(frame["reason"].iloc[1])
    assert list(frame["metrics"]) == list(original["metrics"]) and list(frame["flag"]) == [True, False]


def test_an_empty_return_is_reported_without_rows():
    out = decode_lines(_prs_lines(result_frame(encode_rows(pd.DataFrame(), "S1/I9"))))
    assert out.reported == {"S1/I9"} and out.rows.empty
    assert decode_lines(encode_rows(None, "S1/I8")).reported == {"S1/I8"}


def test_a_series_that_failed_inside_a_chunk_comes_back_as_its_failure():
    tokens = [*encode_rows(_rows().iloc[:1], "S1/I1"),
              encode_failure("S1/I2", "ValueError", "boom, with spaces", "Traceback ...", 3)]
    out = decode_lines(_prs_lines(result_frame(tokens)))
    assert out.reported == {"S1/I1"} and len(out.rows) == 1
    assert out.failed == {"S1/I2": {"error_type": "ValueError", "error_message": "boom, with spaces",
                                    "traceback": "Traceback ...", "attempts": 3}}


def test_output_folder_with_several_files_and_foreign_lines(tmp_path):
    folder = tmp_path / "named-outputs" / "results"
    (folder / "sub").mkdir(parents=True)
    a = encode_rows(_rows().iloc[:1], "S1/I1")
    b = encode_rows(_rows().iloc[1:].assign(series_key="S2/I1"), "S2/I1")
    (folder / "parallel_run_step.txt").write_text("\n".join(a) + "\nsome other line\n\n")
    (folder / "sub" / "parallel_run_step.txt").write_text(f"0 {b[0]}\n")  # a leading index column is tolerated
    out, files = read_append_row_output(folder)
    assert out.reported == {"S1/I1", "S2/I1"} and len(out.rows) == 2 and len(files) == 2 and out.foreign == 1
    assert RESULT_COLUMN not in out.rows.columns


def test_missing_output_folder_reads_as_nothing(tmp_path):
    out, files = read_append_row_output(tmp_path / "absent")
    assert out.rows.empty and out.reported == set() and files == [] and out.foreign == 0
