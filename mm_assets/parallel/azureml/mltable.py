"""A batch of series as a partitioned MLTable folder, and a local reader of that folder.

Azure ML forms one mini-batch per distinct partition-key combination and takes the key values from the folder
names, so they arrive as *strings*. Two layouts (the one of Azure/azureml-examples
jobs/parallel/1a_oj_sales_prediction, with Parquet instead of CSV):

    <folder>/MLTable                          read_parquet + extract_columns_from_partition_format
    <folder>/<store>/<item>/part.parquet      one series per mini-batch: its rows, without the id columns
    <folder>/<mm_chunk>/part.parquet          chunks: the rows of many series, id columns as strings

One series per mini-batch (``partition_keys`` = the id columns) is Azure ML's textbook many-models layout, and
what an entry script that takes one series needs. Chunks (``partition_keys`` = [``CHUNK_KEY``], a stable hash
bucket of the series key) are for the entry scripts that take many series at once (training, promotion,
scoring): a chunk runs their vectorised path, and a job over 10,000 series schedules a few hundred mini-batches,
not 10,000, each with its own scheduling and reading overhead. ``read_mltable`` applies the same MLTable steps
here, so the local runner can run the entry scripts on exactly the folder the Azure job reads.

This module does not import Dagster.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mm_assets.ids import bucket_of, series_key, stable_hash
from mm_assets.lake import Lake
from mm_assets.runs import key_boundaries, runs_are_distinct

MLTABLE_FILE = "MLTable"
PART_FILE = "part.parquet"
PATH_COLUMN = "Path"
CHUNK_KEY = "mm_chunk"  # the partition column of a chunked layout
# Characters the id checks allow but an Azure ML partition path cannot carry faithfully (URL escapes, globbing,
# partition-format braces): such ids stop the staging with the series named.
_MLTABLE_UNSAFE = re.compile(r"[%#?*{}]")


class StagingError(ValueError):
    """The batch cannot be laid out as an MLTable partitioned by the id columns."""


@dataclass(frozen=True)
class StagedInput:
    folder: str  # lake-relative folder holding the MLTable file
    series: pd.DataFrame  # one row per series: the id columns (strings), series_key (and CHUNK_KEY), input order
    rows: int
    partition_keys: tuple[str, ...] = ()  # what the job partitions on: the id columns, or (CHUNK_KEY,)
    mini_batches: int = 0

    @property
    def total(self) -> int:
        return len(self.series)

    @property
    def largest_mini_batch(self) -> int:
        """Series in the largest mini-batch: a chunk's count in a chunked layout, else 1."""
        if CHUNK_KEY not in self.series or self.series.empty:
            return 1
        return int(self.series[CHUNK_KEY].value_counts().max())


def mltable_document(partition_keys: Sequence[str]) -> dict:
    """The MLTable file: every ``<k1>/<k2>/…/<file>.parquet``, key columns taken from the folder names."""
    keys = list(partition_keys)
    partition_format = "".join("{" + k + "}/" for k in keys) + "{file_name}.{extension}"
    return {
        "$schema": "https://azuremlschemas.azureedge.net/latest/MLTable.schema.json",
        "type": "mltable",
        "paths": [{"pattern": "./" + "*/" * len(keys) + "*.parquet"}],
        "transformations": [
            {"read_parquet": {"include_path_column": True}},
            {"extract_columns_from_partition_format": {"partition_format": partition_format}},
            {"drop_columns": [PATH_COLUMN, "file_name", "extension"]},
        ],
    }


def _check_ids(values: Sequence[str], keys: Sequence[str]) -> None:
    for key, value in zip(keys, values):
        match = _MLTABLE_UNSAFE.search(value)
        if match:
            raise StagingError(
                f"series {series_key(values)}: id {key}={value!r} contains {match.group(0)!r}, which an Azure ML "
                "partition path cannot carry; map columns.ids to clean values or use runner.kind=local"
            )


def chunk_size(series: int, series_per_minibatch: int, max_mini_batches: int) -> int:
    """Series per chunk: at least ``series_per_minibatch``, and large enough for at most about
    ``max_mini_batches`` chunks (hash buckets are not all equally full)."""
    return max(1, series_per_minibatch, -(-series // max(1, max_mini_batches)))


def stage_mltable(
    lake: Lake, input_files: Sequence[str], partition_keys: Sequence[str], folder: str, threads: int = 16,
    series_per_chunk: int = 1, max_mini_batches: int = 0, group_column: str | None = None,
) -> StagedInput:
    """Write the series of ``input_files`` (each sorted by the keys) as an MLTable folder under ``folder``: one
    folder per series, or (``series_per_chunk`` > 1 or ``max_mini_batches`` > 0) one per hash bucket of about
    ``chunk_size(...)`` series: buckets of the series key, or of ``group_column`` (an id column) so that a group's
    series share a chunk (``JobSpec.group_column``)."""
    chunked = series_per_chunk > 1 or max_mini_batches > 0
    keys = list(partition_keys)
    slices: list[tuple[pa.Table, tuple[str, ...]]] = []
    series: list[list[str]] = []
    rows = 0
    for file in input_files:
        table = lake.read_table(file)
        missing = [k for k in keys if k not in table.column_names]
        if missing:
            raise StagingError(f"{file}: id columns {missing} are missing")
        ids = table.select(keys).to_pandas()
        if ids.empty:
            continue
        starts, stops = key_boundaries(table, keys)  # compared column by column: no key string per row
        if not runs_are_distinct(table, keys, starts):
            raise StagingError(f"{file}: rows are not grouped by {keys}; sort the input by the keys")
        data = _string_ids(table, keys) if chunked else table.drop_columns(keys)
        for lo, hi in zip(starts, stops):
            values = [str(ids[k].iloc[lo]) for k in keys]
            if not chunked:
                _check_ids(values, keys)
            series.append(values)
            slices.append((data.slice(int(lo), int(hi - lo)), tuple(values)))
            rows += int(hi - lo)
    frame = pd.DataFrame(series, columns=keys, dtype=object)
    frame["series_key"] = [series_key(v) for v in series]
    duplicated = frame["series_key"][frame["series_key"].duplicated()]
    if len(duplicated):
        raise StagingError(f"series {duplicated.iloc[0]} appears in more than one input file")
    lake.delete(folder, recursive=True)  # a re-staged batch never mixes with an earlier attempt's files
    if not chunked:
        writes = [(part, values) for part, values in slices]
        layout = keys
    else:
        per_chunk = chunk_size(len(frame), series_per_chunk, max_mini_batches or len(frame))
        chunks = max(1, -(-len(frame) // per_chunk))
        by = _group_pieces(frame, group_column, per_chunk) if group_column else frame["series_key"]
        frame[CHUNK_KEY] = bucket_of(by, chunks).to_numpy() if len(frame) else []
        members: dict[str, list[pa.Table]] = {}
        for (part, _), chunk in zip(slices, frame[CHUNK_KEY]):
            members.setdefault(chunk, []).append(part)
        writes = [(pa.concat_tables(parts), (chunk,)) for chunk, parts in sorted(members.items())]
        layout = [CHUNK_KEY]

    def write(item: tuple[pa.Table, tuple[str, ...]]) -> None:
        part, values = item
        lake.write_parquet(part, folder, *values, PART_FILE)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(write, writes))
    text = yaml.safe_dump(mltable_document(layout), sort_keys=False)
    lake.write_bytes(text.encode(), folder, MLTABLE_FILE)
    return StagedInput(folder=folder, series=frame, rows=rows, partition_keys=tuple(layout), mini_batches=len(writes))


def _group_pieces(frame: pd.DataFrame, group_column: str, per_chunk: int) -> pd.Series:
    """What each series' chunk is a hash bucket of: its group (``group_column``), or for a group of more than
    twice ``per_chunk`` series, a piece of the group of about ``per_chunk`` series (a stable hash of the series
    key), as the local runner cuts such a group (``runs.group_slices``): a mini-batch stays within what a node's
    memory holds, and its context is still hundreds of the group's series."""
    group = frame[group_column].astype(str)
    size = group.map(group.value_counts())
    big = size > 2 * per_chunk
    if not big.any():
        return group
    pieces = -(-size[big] // per_chunk)
    piece = stable_hash(frame.loc[big, "series_key"]) % pieces
    return group.where(~big, group[big] + "#" + piece.astype(str))


def _string_ids(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The id columns as strings, as a one-series layout hands them over (from the folder names)."""
    for key in keys:
        i = table.column_names.index(key)
        table = table.set_column(i, key, pa.array(table.column(key).to_pandas().astype(str), pa.string()))
    return table


# ---- the local side: read the folder the way Azure ML does ---------------------------------------------------
def _format_regex(partition_format: str) -> re.Pattern:
    pattern, pos = "", 0
    for match in re.finditer(r"\{([^{}:]+)\}", partition_format):
        pattern += re.escape(partition_format[pos : match.start()]) + f"(?P<{match.group(1)}>[^/]+?)"
        pos = match.end()
    pattern += re.escape(partition_format[pos:])
    return re.compile(r"(?:^|/)" + pattern + "$")


def read_mltable(lake: Lake, folder: str) -> pd.DataFrame:
    """Materialize an MLTable folder written by ``stage_mltable`` (the transformations it uses, in order)."""
    spec = yaml.safe_load(lake.read_bytes(folder, MLTABLE_FILE))
    if spec.get("type") != "mltable":
        raise StagingError(f"{folder}/{MLTABLE_FILE}: not an MLTable file")
    base = lake.path(folder)
    files: list[str] = []
    for entry in spec["paths"]:
        (kind, value), = entry.items()
        if kind != "pattern" or not value.startswith("./"):
            raise StagingError(f"{folder}/{MLTABLE_FILE}: unsupported path entry {entry}")
        files.extend(sorted(lake.fs.glob(posixpath.join(base, value[2:]))))
    frames: list[pd.DataFrame] = []
    for path in files:
        frame = pq.read_table(path, filesystem=lake.fs).to_pandas()
        relative = posixpath.relpath(path, base)
        for step in spec["transformations"]:
            (name, options), = step.items()
            if name == "read_parquet":
                if options.get("include_path_column"):
                    frame[PATH_COLUMN] = relative
            elif name == "extract_columns_from_partition_format":
                match = _format_regex(options["partition_format"]).search(relative)
                if match is None:
                    raise StagingError(f"{relative} does not match {options['partition_format']!r}")
                for column, value in match.groupdict().items():
                    frame[column] = pd.Series([value] * len(frame), dtype=object, index=frame.index)
            elif name == "drop_columns":
                frame = frame.drop(columns=[c for c in options if c in frame.columns])
            else:
                raise StagingError(f"{folder}/{MLTABLE_FILE}: transformation {name!r} is not supported here")
        frames.append(frame)
    if not frames:
        raise StagingError(f"{folder}: the MLTable matches no Parquet file")
    return pd.concat(frames, ignore_index=True)


def mltable_as_local_input(lake: Lake, folder: str, partition_keys: Sequence[str], out_file: str) -> str:
    """The MLTable's rows as one Parquet file grouped by the keys (the local runner's input); returns its path."""
    frame = read_mltable(lake, folder)
    keys = list(partition_keys)
    frame = frame.sort_values(keys, kind="stable", ignore_index=True)
    lake.write_parquet(frame, out_file)
    return out_file
