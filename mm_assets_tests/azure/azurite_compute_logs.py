"""dagster-azure's AzureBlobComputeLogManager, talking to Azurite instead of https://<account>.blob.<suffix>.

The manager builds its client from the account name and always uses the https endpoint of Azure, which a local
emulator cannot serve. This subclass takes the same configuration as the production ``compute_logs`` block of
deploy/dagster/dagster.yaml, lets the parent build everything, then points both clients at the emulator found in
``AZURE_STORAGE_CONNECTION_STRING``. Uploads, partial uploads, reads and deletes are the parent's own code.
"""

from __future__ import annotations

import os

from azure.storage.blob import BlobServiceClient
from dagster_azure.blob.compute_log_manager import AzureBlobComputeLogManager


class AzuriteBlobComputeLogManager(AzureBlobComputeLogManager):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._blob_client = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
        self._container_client = self._blob_client.get_container_client(self._container)
