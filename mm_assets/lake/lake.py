"""A thin, safe layer over an fsspec filesystem rooted at the lake URI.

Why a class of our own over raw fsspec: every path is built from validated segments under one root (no id
can escape it), writes of whole files are atomic where the filesystem allows it (a crash mid-write never
leaves a half file where a good one was), and the same calls work on a laptop folder and on ADLS Gen2.

Layout (relative to the root):
  raw/<table>/<period>.parquet              one file per ingested day/week (raw_sales partitions)
  datasets/<partition>.parquet              every series of one partition, sorted by ids and ds
  models/<partition>/<run>/<worker>.bin     model bundles: many pickled models per file, read by byte range
  predictions/<partition>.parquet           the latest batch forecast of one partition

On Azure (``abfs://<container>@<account>.dfs.<suffix>/<path>``, adlfs over the Blob endpoint) the URI is all the
configuration there is: credentials are never part of it nor of any file. ``azure_storage_options`` derives the
account and its blob host from the URI and turns adlfs's listing cache off (workers and other runs write the
lake concurrently); adlfs then authenticates, in its order, with ``AZURE_STORAGE_CONNECTION_STRING``, an account
key or SAS token (``AZURE_STORAGE_ACCOUNT_KEY`` / ``AZURE_STORAGE_SAS_TOKEN``), a service principal
(``AZURE_STORAGE_CLIENT_ID`` / ``_SECRET`` / ``TENANT_ID``), else ``DefaultAzureCredential`` (AKS workload
identity, a managed identity, ``az login``). Worker processes build their ``Lake`` from the URI alone and inherit
these variables. ``LakeResource`` can take dagster-azure's ``ADLS2Resource`` instead.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import posixpath
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mm_assets.ids import id_problem


def file_stamp(info: dict) -> str:
    """A file's ``size:stamp`` from its listing: the ETag on Azure, the modification time on a local disk. A
    rewritten file gets another one, an untouched one keeps it, and so does a copy that keeps its times (``cp -a``,
    a restore): the inode is left out, or every file of a restored lake read as rewritten."""
    stamp = [str(info[k]) for k in ("etag", "mtime", "last_modified") if info.get(k) is not None]
    return ":".join([str(info.get("size")), *stamp])


def same_stamp(recorded: str, now: str) -> bool:
    """Whether a ``file_stamp`` recorded earlier names the file of stamp ``now``: equal, or in the form of
    versions before the inode was left out (``size:mtime:inode`` on a local disk), so files published by such a
    version are still known as made from the files they were made from."""
    return recorded == now or recorded.count(":") == now.count(":") + 1 and recorded.rsplit(":", 1)[0] == now


class LakePathError(ValueError):
    """A path segment that would escape the lake root or is not a plain name."""


# what a write or move "unless same" did to its target: not there before, there with other bytes, or left as it was
WRITTEN = ("new", "rewritten", "unchanged")
# rows per Parquet row group (``write_parquet``): one series of a 2.4M-row partition read in 4 ms instead of 27 ms
ROW_GROUP_ROWS = 65_536
AZURE_PROTOCOLS = ("abfs", "abfss", "az")
_AZURE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")  # Azure's rule for storage account names
_AZURE_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")  # ... and for container names
_AZURE_HOST = re.compile(r"^(?P<account>[^.]+)\.(?:dfs|blob)\.(?P<suffix>[a-z0-9.-]+)$")


def azure_location(uri: str) -> tuple[str, str | None, str | None]:
    """(container, account, endpoint suffix) of an Azure lake URI; account and suffix are None for the short form
    ``abfs://<container>/<path>`` (account then from the connection string or ``AZURE_STORAGE_ACCOUNT_NAME``).
    Names are validated before they reach a request: a malformed URI stops here, naming the part."""
    parts = urlsplit(uri)
    if parts.scheme not in AZURE_PROTOCOLS:
        raise LakePathError(f"{uri!r} is not an Azure lake URI ({', '.join(AZURE_PROTOCOLS)})")
    if parts.password is not None or parts.query or parts.fragment:
        raise LakePathError("an Azure lake URI carries no password, query or fragment: credentials come from the "
                            "environment or the ADLS2 resource, never from the URI")
    container, account, suffix = parts.netloc, None, None
    if "@" in parts.netloc:
        container, host = parts.netloc.split("@", 1)
        match = _AZURE_HOST.match(host.lower())
        if not match:
            raise LakePathError(f"lake URI host {host!r}: expected <account>.dfs.<suffix> (e.g. "
                                "myaccount.dfs.core.windows.net)")
        account, suffix = match["account"], match["suffix"]
        if not _AZURE_ACCOUNT.match(account):
            raise LakePathError(f"storage account {account!r} in the lake URI: 3-24 lowercase letters and digits")
    if not _AZURE_CONTAINER.match(container):
        raise LakePathError(f"container {container!r} in the lake URI: 3-63 lowercase letters, digits and single "
                            "hyphens")
    return container, account, suffix


def connection_string_account(connection_string: str) -> str | None:
    """The ``AccountName`` of an Azure Storage connection string (the only part of it ever repeated)."""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "accountname":
            return value.strip() or None
    return None


def blob_endpoint(uri: str, environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """(host, port) the blob client of an Azure lake URI connects to: the connection string's ``BlobEndpoint`` (or
    its account and endpoint suffix), else the URI's account; None when neither says."""
    environ = os.environ if environ is None else environ
    parts = {}
    for part in environ.get("AZURE_STORAGE_CONNECTION_STRING", "").split(";"):
        key, _, value = part.partition("=")
        parts[key.strip().lower()] = value.strip()
    if parts.get("blobendpoint"):
        url = urlsplit(parts["blobendpoint"])
        return (url.hostname, url.port or (443 if url.scheme == "https" else 80)) if url.hostname else None
    if parts.get("accountname"):
        https = parts.get("defaultendpointsprotocol", "https") == "https"
        suffix = parts.get("endpointsuffix", "core.windows.net")
        return f"{parts['accountname']}.blob.{suffix}", 443 if https else 80
    _, account, suffix = azure_location(uri)
    return (f"{account}.blob.{suffix}", 443) if account else None


def azure_storage_options(uri: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """adlfs options for an Azure lake URI: the account and its blob host (any cloud's endpoint suffix; adlfs by
    itself only recognises core.windows.net), no listing cache. No credential comes from here: adlfs reads them
    from the environment (see the module docstring). A connection string for another account than the URI's is
    refused rather than silently writing elsewhere."""
    environ = os.environ if environ is None else environ
    _, account, suffix = azure_location(uri)
    options: dict[str, Any] = {"use_listings_cache": False}
    connection_string = environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string is not None and not connection_string.strip():
        others = [k for k in ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN") if environ.get(k)]
        raise LakePathError(
            "AZURE_STORAGE_CONNECTION_STRING is set but empty (a CI secret that was not set?), and adlfs reads it "
            "before any other credential" + (f", so {' and '.join(others)} would not be used" if others else "")
            + ": unset it, or give it the account's connection string")
    if account:
        if connection_string:
            other = connection_string_account(connection_string)
            if other and other != account:
                raise LakePathError(
                    f"the lake URI names storage account {account!r} but AZURE_STORAGE_CONNECTION_STRING is for "
                    f"account {other!r}: point both at the same account, or unset the connection string"
                )
        else:
            options.update(account_name=account, account_host=f"{account}.blob.{suffix}")
    return options


def _arrow(frame: pd.DataFrame | pa.Table) -> pa.Table:
    return frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)


class Lake:
    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None):
        self.uri = uri.rstrip("/") or uri
        self.scheme = urlsplit(self.uri).scheme if "://" in self.uri else ""
        derived = azure_storage_options(self.uri) if self.scheme in AZURE_PROTOCOLS else {}
        self.storage_options = {**derived, **(storage_options or {})}  # may hold a key: never logged or shown
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
        if self.is_local:
            return path
        if self.scheme in AZURE_PROTOCOLS and "@" in urlsplit(self.uri).netloc:
            # keep the account: abfs://<container>@<account>.dfs.<suffix>/<path> names the blob on its own (what
            # Synapse COPY INTO and a reader in another process need)
            container, _, rest = path.partition("/")
            return f"{self.scheme}://{container}@{urlsplit(self.uri).netloc.split('@', 1)[1]}/{rest}"
        return f"{self.protocol}://{path}"

    def relative(self, uri: str) -> str:
        """Inverse of ``full_uri``: the path of a stored URI inside this lake (no filesystem is opened for it)."""
        if "://" in uri:
            scheme = urlsplit(uri).scheme
            protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else tuple(self.fs.protocol)
            if scheme not in protocols and not (self.is_local and scheme in ("file", "local")):
                raise LakePathError(f"{uri!r} is not inside the lake {self.uri!r}")
            if (scheme in AZURE_PROTOCOLS and "@" in urlsplit(uri).netloc and "@" in urlsplit(self.uri).netloc
                    and urlsplit(uri).netloc.split("@", 1)[1].lower() != urlsplit(self.uri).netloc.split("@", 1)[1].lower()):
                raise LakePathError(f"{uri!r} is in another storage account than the lake {self.uri!r}")
            path = type(self.fs)._strip_protocol(uri)
        else:
            path = uri
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

    def signatures(self, *parts: str, suffix: str = "") -> dict[str, str]:
        """Name → ``file_stamp`` of the files directly under a folder (one listing call), sorted by name."""
        folder = self.path(*parts)
        if not self.fs.exists(folder):
            return {}
        out = {}
        for info in self.fs.ls(folder, detail=True):
            name = posixpath.basename(info["name"].rstrip("/"))
            if info.get("type") == "directory" or not name.endswith(suffix) or name.startswith("."):
                continue
            out[name] = file_stamp(info)
        return dict(sorted(out.items()))

    def files_written_before(self, when: dt.datetime, *parts: str) -> list[str]:
        """Lake-relative paths of the files anywhere under a folder last written before ``when`` (naive UTC), in one
        recursive listing; empty if the folder does not exist. A store that gives no time for a file keeps it out."""
        folder = self.path(*parts)
        if not self.fs.exists(folder):
            return []
        out = []
        for path, info in self.fs.find(folder, detail=True).items():
            if info.get("type") == "directory" or posixpath.basename(path).startswith("."):
                continue
            written = info.get("last_modified") or info.get("mtime")  # Azure: a datetime; a local disk: seconds
            if isinstance(written, int | float):
                written = dt.datetime.fromtimestamp(written, dt.UTC)
            if isinstance(written, dt.datetime):
                if written.tzinfo is not None:
                    written = written.astimezone(dt.UTC).replace(tzinfo=None)
                if written < when:
                    out.append(self.relative(path))
        return sorted(out)

    def write_bytes(self, data: bytes, *parts: str) -> str:
        path = self.path(*parts)
        self._atomic(path, lambda tmp: self.fs.pipe_file(tmp, data))
        return path

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.path(*parts))

    def move(self, source: str, target: str) -> None:
        """Move a lake-relative file to another lake-relative path (replacing it): a rename on a local disk
        and on ADLS Gen2 with a hierarchical namespace."""
        dst = self.path(target)
        if self.is_local:
            self.fs.makedirs(posixpath.dirname(dst), exist_ok=True)
        self.fs.mv(self.path(source), dst)

    def _size_or_none(self, *parts: str) -> int | None:
        """The file's size in bytes, None when it is not there."""
        try:
            return self.fs.size(self.path(*parts))
        except FileNotFoundError:
            return None

    def move_unless_same(self, source: str, target: str) -> str:
        """``move``, unless ``target`` already holds the same bytes: then ``source`` is deleted and the target
        keeps its file (and its signature). Returns what became of ``target`` (``WRITTEN``: ``new``,
        ``rewritten`` or ``unchanged``). ``source`` is read only when the sizes match."""
        size = self._size_or_none(target)
        src = self.path(source)
        if size is not None and self.fs.size(src) == size and self.fs.cat_file(src) == self.read_bytes(target):
            self.delete(source)
            return "unchanged"
        self.move(source, target)
        return "new" if size is None else "rewritten"

    def delete(self, *parts: str, recursive: bool = False) -> None:
        path = self.path(*parts)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=recursive)

    def delete_file(self, relative: str) -> None:
        """Delete a file and, when that empties it, its folder (a run's ``models/<run>/``): retention deleting a
        run's bundles one by one left the empty folders of every run behind. The folder is tidied at best: one that
        cannot be listed or removed stays, the file is gone either way."""
        self.delete(relative)
        parent = posixpath.dirname(relative.rstrip("/"))
        if posixpath.dirname(parent) in ("", "."):  # a top folder of the lake (models/) stays
            return
        try:
            folder = self.path(parent)
            if self.fs.exists(folder) and not self.fs.ls(folder, detail=False):
                self.fs.rmdir(folder)
        except OSError:
            pass

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
    def write_parquet(self, frame: pd.DataFrame | pa.Table, *parts: str, metadata: dict[str, str] | None = None
                      ) -> str:
        """Write one Parquet file (atomically on a local disk); ``metadata`` goes into its footer (key: text).

        Row groups of at most ``ROW_GROUP_ROWS`` rows: a file sorted by series (a partition's dataset) then lets a
        filtered read of one series (the online endpoint's) skip the groups whose statistics exclude it."""
        table = _arrow(frame)
        if metadata:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   **{k.encode(): v.encode() for k, v in metadata.items()}})
        path = self.path(*parts)
        self._atomic(path, lambda tmp: pq.write_table(table, tmp, filesystem=self.fs, compression="zstd",
                                                      row_group_size=ROW_GROUP_ROWS))
        return path

    def read_parquet(
        self, *parts: str, columns: Sequence[str] | None = None, filters: Any = None
    ) -> pd.DataFrame:
        return self.read_table(*parts, columns=columns, filters=filters).to_pandas()

    def write_parquet_unless_same(self, frame: pd.DataFrame | pa.Table, *parts: str) -> str:
        """``write_parquet``, unless the file there already holds the same bytes: rewriting it would change its
        signature (``signatures``) and make the datasets cut start over. Returns what became of the file
        (``WRITTEN``: ``new``, ``rewritten`` or ``unchanged``)."""
        buffer = io.BytesIO()
        pq.write_table(_arrow(frame), buffer, compression="zstd")
        data = buffer.getvalue()
        size = self._size_or_none(*parts)
        if size == len(data) and self.fs.cat_file(self.path(*parts)) == data:
            return "unchanged"
        self.write_bytes(data, *parts)
        return "new" if size is None else "rewritten"

    def footer_metadata(self, *parts: str) -> dict[str, str]:
        """The key-value metadata of one Parquet file's footer (``write_parquet(..., metadata=)``), without its
        data; empty when the file is missing or unreadable."""
        try:
            raw = pq.read_schema(self.path(*parts), filesystem=self.fs).metadata or {}
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            return {}
        return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}

    def footer_values(self, column: str, *parts: str) -> int | None:
        """The values (not null) of ``column`` in the Parquet file there, from its footer's statistics alone; None
        when it is missing, unreadable, lacks the column or its statistics."""
        return values_in(self.footer(*parts), column)

    def footer(self, *parts: str) -> pq.FileMetaData | None:
        """The footer of the Parquet file there (schema, row groups, statistics; no data); None when it is
        missing, cut short or not Parquet."""
        try:
            return pq.read_metadata(self.path(*parts), filesystem=self.fs)
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            return None

    def footer_rows(self, *parts: str) -> int | None:
        """The rows of the Parquet file there, from its footer alone; None when it is missing, cut short or not
        Parquet."""
        try:
            return pq.read_metadata(self.path(*parts), filesystem=self.fs).num_rows
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            return None

    def footer_columns(self, *parts: str) -> list[str] | None:
        """The column names of the Parquet file there, from its footer alone; None when it is missing, cut short or
        not Parquet."""
        try:
            return list(pq.read_schema(self.path(*parts), filesystem=self.fs).names)
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            return None

    def readable(self, *parts: str) -> bool:
        """Whether the Parquet file there has a footer that can be read: a period or dataset file damaged in the
        lake is written again rather than read."""
        return self.footer_rows(*parts) is not None

    def read_table(self, *parts: str, columns: Sequence[str] | None = None, filters: Any = None) -> pa.Table:
        """One Parquet file, or every Parquet file under a folder, as one Arrow table."""
        expr = pq.filters_to_expression(filters) if filters is not None else None
        return self.dataset(*parts).to_table(columns=list(columns) if columns else None, filter=expr)

    def files_dataset(self, folder: Sequence[str], names: Sequence[str]) -> pads.Dataset:
        """The Parquet files ``names`` of one folder as a pyarrow dataset, in that order."""
        return pads.dataset([self.path(*folder, n) for n in names], filesystem=self.fs, format="parquet")

    def dataset(self, *parts: str) -> pads.Dataset:
        """One Parquet file, or every Parquet file under a folder, as a pyarrow dataset (scanned lazily, in
        batches, with every file read into the first file's schema)."""
        path = self.path(*parts)
        if self.fs.isdir(path):
            files = [p for p in self.fs.find(path) if p.endswith(".parquet") and "/." not in p]
            if not files:
                raise FileNotFoundError(f"no Parquet files under {path}")
            return pads.dataset(sorted(files), filesystem=self.fs, format="parquet")
        return pads.dataset(path, filesystem=self.fs, format="parquet")


def values_in(meta: pq.FileMetaData | None, column: str) -> int | None:
    """The values (not null) of ``column`` in a Parquet footer's statistics; None without the footer, the column
    or its statistics."""
    if meta is None or column not in meta.schema.names:
        return None
    index = meta.schema.names.index(column)
    total = 0
    for group in range(meta.num_row_groups):
        chunk = meta.row_group(group).column(index)
        stats = chunk.statistics
        if stats is None or not stats.has_null_count:
            return None
        total += chunk.num_values - stats.null_count
    return total
