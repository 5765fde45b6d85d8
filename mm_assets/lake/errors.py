"""Lake errors in one line: what a person reads when the lake cannot be reached (no Dagster)."""

from __future__ import annotations

from mm_assets.sql import redact_secrets


def lake_problem(exc: BaseException) -> str:
    """One line of a lake error: its type, Azure's error code when it has one, and its first line (Azure's
    errors go on with the request id, the time and the response's XML body)."""
    first = redact_secrets(str(exc)).strip().splitlines()
    code = getattr(exc, "error_code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}: {first[0] if first else ''}"


def lake_fix(exc: BaseException) -> str:
    """What to do about it: a missing container is created once; anything else is the path, its permissions
    or the credentials (for Azure: docs/azure.md lists the variables read)."""
    if str(getattr(exc, "error_code", "") or "") == "ContainerNotFound" or "container does not exist" in str(exc):
        return ("create the container first (az storage container create --name <container> --account-name "
                "<account>), or fix the container's name in the URL")
    if type(exc).__name__ == "ClientAuthenticationError" or "DefaultAzureCredential failed" in str(exc):
        return ("give the lake credentials: AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY or "
                "AZURE_STORAGE_SAS_TOKEN, a service principal (AZURE_STORAGE_CLIENT_ID, _SECRET, _TENANT_ID), or a "
                "signed-in identity (az login, a managed or workload identity) for DefaultAzureCredential")
    return "fix the path, its permissions or the credentials"
