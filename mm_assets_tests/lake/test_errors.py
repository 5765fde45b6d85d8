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


def test_the_blob_endpoint_is_read_from_the_connection_string_or_the_uri():
    from mm_assets.lake.lake import blob_endpoint

    azurite = {"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
               "AccountKey=k;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"}
    assert blob_endpoint("abfs://lake/mm", azurite) == ("127.0.0.1", 10000)
    named = {"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=k;"
             "EndpointSuffix=core.chinacloudapi.cn"}
    assert blob_endpoint("abfs://lake/mm", named) == ("acme.blob.core.chinacloudapi.cn", 443)
    assert blob_endpoint("abfs://lake@acme.dfs.core.windows.net/mm", {}) == ("acme.blob.core.windows.net", 443)
    assert blob_endpoint("abfs://lake/mm", {}) is None  # nothing says: the SDK's own error will


def test_a_lake_whose_endpoint_takes_no_connection_is_refused_in_seconds_not_after_the_sdks_retries(
        tmp_path, monkeypatch):
    """A stopped emulator or a mistyped account: the storage SDK retried for ~90 s before it said so."""
    import socket
    import time

    import pytest

    from mm_assets.preflight import StorageError, check_stores
    from mm_assets_tests.conftest import tiny_settings

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                       f"AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    settings = tiny_settings(tmp_path, storage={"lake": "abfs://lake/mm"})
    started = time.monotonic()
    with pytest.raises(StorageError, match=f"no connection to 127.0.0.1:{port}.*the storage endpoint does not answer"):
        check_stores(settings)
    assert time.monotonic() - started < 30


def test_an_empty_or_malformed_connection_string_is_named():
    """A CI job that exports an unset secret: adlfs's "blank or malformed" named no variable, and hid the account
    key set beside it."""
    import pytest

    from mm_assets.lake.lake import LakePathError, azure_storage_options

    uri = "abfs://lake@acct01.dfs.core.windows.net/mm"
    with pytest.raises(LakePathError) as err:
        azure_storage_options(uri, {"AZURE_STORAGE_CONNECTION_STRING": " ", "AZURE_STORAGE_ACCOUNT_KEY": "k"})
    message = str(err.value)
    assert message.startswith("AZURE_STORAGE_CONNECTION_STRING is set but empty")
    assert "AZURE_STORAGE_ACCOUNT_KEY would not be used" in message and "unset it" in message
    assert azure_storage_options(uri, {"AZURE_STORAGE_ACCOUNT_KEY": "k"})["account_name"] == "acct01"  # unset: fine
    malformed = ValueError("unable to connect to account for Connection string is either blank or malformed.")
    assert lake_fix(malformed).startswith("AZURE_STORAGE_CONNECTION_STRING is not a connection string")
