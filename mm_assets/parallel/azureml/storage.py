"""Where the lake is, seen from Azure ML: the storage account, container and root folder of an ADLS Gen2 lake.

The azureml runner stages each batch in the lake and the job's workers read and write the lake directly (model
bundles, manifests), so the lake must be reachable from the compute cluster: an ``abfs://`` URI. Azure ML job
YAML accepts ``https://`` blob URLs for inputs (the SDK's schema turns an ``abfss://`` string into an asset
reference), so inputs and registered model paths use the blob endpoint of the same account, which ADLS Gen2
serves for every container.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse


class AzureMLConfigError(ValueError):
    """A setting the azureml runner cannot work with; the message names the setting and the fix."""


@dataclass(frozen=True)
class AzureLake:
    """An ADLS Gen2 lake root: ``abfs://<container>@<account>.dfs.<suffix>/<root>``."""

    account: str
    container: str
    root: str = ""
    endpoint_suffix: str = "core.windows.net"

    @property
    def blob_account_url(self) -> str:
        return f"https://{self.account}.blob.{self.endpoint_suffix}"

    def blob_name(self, relative: str) -> str:
        """Container-relative blob name of a lake-relative path."""
        relative = relative.strip("/")
        return "/".join(part for part in (self.root, relative) if part)

    def https_url(self, relative: str) -> str:
        """Blob-endpoint URL of a lake-relative path (what Azure ML inputs and model paths accept)."""
        return f"{self.blob_account_url}/{self.container}/{self.blob_name(relative)}"


def azure_lake(uri: str, environ: dict[str, str] | None = None) -> AzureLake:
    """Parse ``storage.lake``; a local folder or another filesystem stops with what to set instead.

    The long form names the account (``abfs://<container>@<account>.dfs.<suffix>/<path>``); the short form
    ``abfs://<container>/<path>`` takes it from ``AZURE_STORAGE_ACCOUNT_NAME`` or the connection string, as adlfs
    does (the runner then hands the job ``AZURE_STORAGE_ACCOUNT_NAME``, never a key)."""
    from mm_assets.lake.lake import AZURE_PROTOCOLS, LakePathError, azure_location, connection_string_account

    environ = dict(os.environ) if environ is None else environ
    parsed = urlparse(uri)
    if parsed.scheme not in AZURE_PROTOCOLS:
        raise AzureMLConfigError(
            f"runner.kind=azureml: storage.lake is {uri!r}, which an Azure ML compute cluster cannot reach. The "
            "job reads its input from the lake and writes model bundles into it, so storage.lake must be an ADLS "
            "Gen2 URI abfs://<container>@<account>.dfs.core.windows.net/<path> (set it in mm_assets.yaml or as "
            "MM_ASSETS__STORAGE__LAKE), or use runner.kind=local."
        )
    try:
        container, account, suffix = azure_location(uri)
    except LakePathError as exc:
        raise AzureMLConfigError(f"storage.lake: {exc}") from None
    if account is None:
        account = environ.get("AZURE_STORAGE_ACCOUNT_NAME") or connection_string_account(
            environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
        )
        suffix = "core.windows.net"
    if not account:
        raise AzureMLConfigError(
            f"storage.lake {uri!r} names no storage account: write abfs://<container>@<account>.dfs.core.windows.net/"
            "<path> (or set AZURE_STORAGE_ACCOUNT_NAME)"
        )
    return AzureLake(account=account, container=container, root=parsed.path.strip("/"),
                     endpoint_suffix=suffix or "core.windows.net")
