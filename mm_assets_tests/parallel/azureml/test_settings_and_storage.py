"""The azureml settings section, and the lake as Azure ML sees it."""

from __future__ import annotations

import pytest

from mm_assets.parallel.azureml.storage import AzureMLConfigError, azure_lake
from mm_assets.settings import SettingsError, load_settings


def test_defaults_and_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no mm_assets.yaml here: defaults + environment
    s = load_settings(environ={
        "MM_ASSETS__AZUREML__WORKSPACE": "mlws",
        "MM_ASSETS__AZUREML__INSTANCE_COUNT": "8",
        "MM_ASSETS__AZUREML__ENVIRONMENT_VARIABLES": "{AZURE_CLIENT_ID: 0000-1111}",
        "MM_ASSETS__RUNNER__KIND": "azureml",
    })
    assert s.runner.kind == "azureml" and s.azureml.workspace == "mlws" and s.azureml.instance_count == 8
    assert s.azureml.environment_variables == {"AZURE_CLIENT_ID": "0000-1111"}
    assert s.azureml.compute == "mm-cpu-cluster" and s.azureml.identity == "managed"


def test_invalid_values_name_the_field():
    with pytest.raises(SettingsError, match="azureml.instance_count"):
        load_settings(environ={"MM_ASSETS__AZUREML__INSTANCE_COUNT": "0"})
    with pytest.raises(SettingsError, match="max_poll_interval_s must be >= azureml.poll_interval_s"):
        load_settings(environ={"MM_ASSETS__AZUREML__POLL_INTERVAL_S": "30",
                               "MM_ASSETS__AZUREML__MAX_POLL_INTERVAL_S": "5"})
    with pytest.raises(SettingsError, match="azureml.identity"):
        load_settings(environ={"MM_ASSETS__AZUREML__IDENTITY": "root"})


def test_adls_lake_urls():
    lake = azure_lake("abfs://lake@mmacct.dfs.core.windows.net/mm/prod")
    assert (lake.account, lake.container, lake.root) == ("mmacct", "lake", "mm/prod")
    assert lake.blob_account_url == "https://mmacct.blob.core.windows.net"
    assert lake.https_url("azureml/b1/input") == "https://mmacct.blob.core.windows.net/lake/mm/prod/azureml/b1/input"
    assert lake.blob_name("azureml/b1/pipes") == "mm/prod/azureml/b1/pipes"
    china = azure_lake("abfss://lake@acct.dfs.core.chinacloudapi.cn")
    assert china.https_url("x") == "https://acct.blob.core.chinacloudapi.cn/lake/x"


@pytest.mark.parametrize("uri", ["data/lake", "/srv/lake", "s3://bucket/lake", "memory://x"])
def test_lakes_azure_ml_cannot_reach_are_refused_naming_storage_lake(uri):
    with pytest.raises(AzureMLConfigError, match=r"storage.lake is .*MM_ASSETS__STORAGE__LAKE"):
        azure_lake(uri)


def test_short_form_takes_the_account_from_the_environment():
    with pytest.raises(AzureMLConfigError, match="names no storage account"):
        azure_lake("abfs://lake/mm", environ={})
    lake = azure_lake("abfs://lake/mm", environ={"AZURE_STORAGE_ACCOUNT_NAME": "mmacct"})
    assert lake.https_url("x") == "https://mmacct.blob.core.windows.net/lake/mm/x"
    with pytest.raises(AzureMLConfigError, match="storage.lake: .*container"):
        azure_lake("abfs://Bad_Container@mmacct.dfs.core.windows.net/mm", environ={})
