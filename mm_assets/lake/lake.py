"""A thin, safe layer over an fsspec filesystem rooted at the lake URI.

Why a class of our own over raw fsspec: every path is built from validated segments under one root (no id
can escape it), writes of whole files are atomic where the filesystem allows it (a crash mid-write never
leaves a half file where a good one was), and the same calls work on a laptop folder and on ADLS Gen2.

Layout (relative to the root):
  raw/<table>/<period>.parquet              one file per ingested day/week (raw_sales partitions)
  datasets/<partition>.parquet              every series of one partition, sorted by ids and ds
  models/<partition>/<run>/<worker>.bin     model bundles: many pickled models per file, read by byte range
  predictions/<partition>.parquet           the latest batch forecast of one partition
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Sequence
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mm_assets.ids import id_problem


class LakePathError(ValueError):
    """A path segment that would escape the lake root or is not a plain name."""


class Lake:
    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None):
        self.uri = uri.rstrip("/") or uri
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.uri, **self.storage_options)
        self.root = self.root.rstrip("/")
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.is_local = self.protocol in ("file", "local")
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"Lake({self.uri!r})"

    # ---- paths ---------------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """Filesystem path of ``root/part/part…``; each part is one validated segment (or a/b relative path)."""
        segments: list[str] = []
        for part in parts:
            for seg in str(part).split("/"):
                problem = id_problem(seg)
                if problem:
                    raise LakePathError(f"lake path segment {seg!r} {problem}")
                segments.append(seg)
        return posixpath.join(self.root, *segments)

    def full_uri(self, *parts: str) -> str:
        """Protocol-qualified URI (what the registry stores as ``artifact_uri``)."""
        path = self.path(*parts)
        return path if self.is_local else f"{self.protocol}://{path}"

    def relative(self, uri: str) -> str:
        """Inverse of ``full_uri``: the path of a stored URI inside this lake."""
        _, path = fsspec.core.url_to_fs(uri, **self.storage_options) if "://" in uri else (None, uri)
        path = path.rstrip("/")
        if not (path == self.root or path.startswith(self.root + "/")):
            raise LakePathError(f"{uri!r} is not inside the lake {self.uri!r}")
        return path[len(self.root) + 1 :]

    # ---- files ---------------------------------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def list(self, *parts: str, suffix: str = "") -> list[str]:
        """Names (not paths) directly under a folder, sorted; empty if the folder does not exist."""
        folder = self.path(*parts)
        if not self.fs.exists(folder):
            return []
        names = [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(folder, detail=False)]
        return sorted(n for n in names if n.endswith(suffix) and not n.startswith("."))

    def write_bytes(self, data: bytes, *parts: str) -> str:
        path = self.path(*parts)
        self._atomic(path, lambda tmp: self.fs.pipe_file(tmp, data))
        return path

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.path(*parts))

    def read_range(self, path: str, start: int, end: int) -> bytes:
        return self.fs.cat_file(path, start=start, end=end)

    def delete(self, *parts: str, recursive: bool = False) -> None:
        path = self.path(*parts)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=recursive)

    def _atomic(self, path: str, write) -> None:
        parent = posixpath.dirname(path)
        if self.is_local:
            self.fs.makedirs(parent, exist_ok=True)
            tmp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
            try:
                write(tmp)
                self.fs.mv(tmp, path)
            finally:
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
        else:  # object stores publish a blob only when its upload completes
            write(path)

    # ---- parquet -------------------------------------------------------------------------------------
    def write_parquet(self, frame: pd.DataFrame | pa.Table, *parts: str) -> str:
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        path = self.path(*parts)
        self._atomic(path, lambda tmp: pq.write_table(table, tmp, filesystem=self.fs, compression="zstd"))
        return path

    def read_parquet(
        self, *parts: str, columns: Sequence[str] | None = None, filters: Any = None
    ) -> pd.DataFrame:
        return self.read_table(*parts, columns=columns, filters=filters).to_pandas()

    def read_table(self, *parts: str, columns: Sequence[str] | None = None, filters: Any = None) -> pa.Table:
        """One Parquet file, or every Parquet file under a folder, as one Arrow table."""
        path = self.path(*parts)
        if self.fs.isdir(path):
            files = [p for p in self.fs.find(path) if p.endswith(".parquet") and "/." not in p]
            if not files:
                raise FileNotFoundError(f"no Parquet files under {path}")
            dataset = pads.dataset(sorted(files), filesystem=self.fs, format="parquet")
        else:
            dataset = pads.dataset(path, filesystem=self.fs, format="parquet")
        expr = pq.filters_to_expression(filters) if filters is not None else None
        return dataset.to_table(columns=list(columns) if columns else None, filter=expr)
