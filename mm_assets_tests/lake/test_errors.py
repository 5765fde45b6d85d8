"""Lake errors in one line, with what to do: Azure's own run over a dozen lines and end in the response's XML."""

from __future__ import annotations

from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError

from mm_assets.lake.errors import lake_fix, lake_problem


def test_azures_error_is_its_code_and_first_line_without_secrets():
    exc = ResourceNotFoundError("The specified container does not exist.\nRequestId:1\nTime:now\n"
                                "ErrorCode:ContainerNotFound\n<?xml version='1.0'?><Error/>")
    exc.error_code = "ContainerNotFound"
    assert lake_problem(exc) == "ResourceNotFoundError ContainerNotFound: The specified container does not exist."
    assert lake_fix(exc).startswith("create the container first")
    assert lake_fix(exc, "abfs://mmlake@acme.dfs.core.windows.net/oj").startswith(
        "create the container first (az storage container create --name mmlake --account-name acme)")
    keyed = OSError("cannot connect with AccountKey=c2VjcmV0; check the account\nmore")
    assert lake_problem(keyed) == "OSError: cannot connect with AccountKey=***; check the account"


def test_missing_credentials_name_what_is_read():
    exc = ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token from the included credentials.")
    fix = lake_fix(exc)
    assert "AZURE_STORAGE_CONNECTION_STRING" in fix and "az login" in fix
    assert lake_fix(OSError("permission denied")) == "fix the path, its permissions or the credentials"


def test_refused_credentials_and_an_endpoint_that_does_not_answer_are_told_apart():
    """Both were "fix the path, its permissions or the credentials", the second after 90 s of retries."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    refused = HttpResponseError("Server failed to authenticate the request.\nErrorCode:AuthorizationFailure")
    refused.error_code = "AuthorizationFailure"
    assert lake_fix(refused).startswith("the account refused the credentials")
    down = ServiceRequestError("Cannot connect to host 127.0.0.1:58106 ssl:default [Connect call failed]")
    fix = lake_fix(down)
    assert fix.startswith("the storage endpoint does not answer") and "BlobEndpoint" in fix
