"""Lake errors in one line: what a person reads when the lake cannot be reached (no Dagster)."""

from __future__ import annotations

from mm_assets.sql import redact_secrets


def lake_problem(exc: BaseException) -> str:
    """One line of a lake error: its type, Azure's error code when it has one, and its first line (Azure's
    errors go on with the request id, the time and the response's XML body)."""
    first = redact_secrets(str(exc)).strip().splitlines()
    code = getattr(exc, "error_code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}: {first[0] if first else ''}"


# Azure's codes (and azure-core's error types) for credentials refused, and for an endpoint that does not answer
REFUSED = ("AuthorizationFailure", "AuthenticationFailed", "AUTHORIZATION_FAILURE", "AUTHENTICATION_FAILED",
           "AuthorizationPermissionMismatch")
class EndpointUnreachable(ConnectionError):
    """The lake's storage endpoint took no connection (refused, no such host, or no answer in time)."""


UNREACHABLE = ("EndpointUnreachable", "ServiceRequestError", "ConnectionRefusedError", "ClientConnectorError", "Cannot connect to host")


def lake_fix(exc: BaseException, uri: str | None = None) -> str:
    """What to do about it: a missing container is created once (named from ``uri`` when it says); credentials
    refused or an endpoint that does not answer are said as such; anything else is the path, its permissions or
    the credentials (for Azure: docs/azure.md lists the variables read)."""
    code, text, kind = str(getattr(exc, "error_code", "") or ""), str(exc), type(exc).__name__
    if code == "ContainerNotFound" or "container does not exist" in text:
        container, account = _names(uri)
        return (f"create the container first (az storage container create --name {container} --account-name "
                f"{account}), or fix the container's name in the URL")
    if any(c in code or c in text for c in REFUSED):
        return ("the account refused the credentials: check the key or SAS token (AZURE_STORAGE_CONNECTION_STRING, "
                "AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN) and that the identity may read and write blobs "
                "there (the Storage Blob Data Contributor role)")
    if kind in UNREACHABLE or any(u in text for u in UNREACHABLE):
        return ("the storage endpoint does not answer: check the account's address (the account in the URL, or "
                "BlobEndpoint in AZURE_STORAGE_CONNECTION_STRING), the network and firewall, and for the Azurite "
                "emulator that it is running on that port")
    if "Connection string is either blank or malformed" in text:
        return ("AZURE_STORAGE_CONNECTION_STRING is not a connection string: copy it whole from the account's "
                "access keys (DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=...), or "
                "unset it to use another credential")
    if kind == "ClientAuthenticationError" or "DefaultAzureCredential failed" in text:
        return ("give the lake credentials: AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY or "
                "AZURE_STORAGE_SAS_TOKEN, a service principal (AZURE_STORAGE_CLIENT_ID, _SECRET, _TENANT_ID), or a "
                "signed-in identity (az login, a managed or workload identity) for DefaultAzureCredential")
    return "fix the path, its permissions or the credentials"


def _names(uri: str | None) -> tuple[str, str]:
    """(container, account) of an Azure lake URI for a command line; placeholders where it does not say."""
    from mm_assets.lake.lake import azure_location

    try:
        container, account, _ = azure_location(uri) if uri else ("<container>", None, None)
    except ValueError:
        return "<container>", "<account>"
    return container or "<container>", account or "<account>"
