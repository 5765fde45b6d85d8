"""Credentials for the lake (dagster-azure's ADLS2 resource, DefaultAzureCredential, connection string) and the
redaction of secrets in anything logged. No network: adlfs builds its clients without calling Azure."""

from __future__ import annotations

import os

import dagster as dg
import pytest
from dagster_azure.adls2 import ADLS2DefaultAzureCredential, ADLS2Key, ADLS2Resource, ADLS2SASToken

from mm_assets.lake import Lake
from mm_assets.resources import LakeResource
from mm_assets.sql import redact, redact_connection_string, redact_secrets

KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3ODkwYWJjZGVm"  # made up: base64 of a phrase
URI = "abfs://lake@contosolake.dfs.core.windows.net/mm"
STORAGE_VARS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY",
                "AZURE_STORAGE_SAS_TOKEN")


@pytest.fixture
def clean_storage_env(monkeypatch):
    for name in STORAGE_VARS:  # set then delete: monkeypatch restores the original state afterwards
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    yield


# ---- redaction ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, shown, hidden", [
    ("postgresql+psycopg2://app:s3cr3t-pw@db.example.com:5432/reg?sslmode=require",
     "postgresql+psycopg2://app:***@db.example.com:5432/reg?sslmode=require", "s3cr3t-pw"),
    ("mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC+Driver+18%7D%3BSERVER%3Dsyn.sql.azuresynapse.net%3BUID%3Du"
     "%3BPWD%3Dpa55%3Bword", "SERVER=syn.sql.azuresynapse.net;UID=u;PWD=***", "pa55"),
    ("mssql+pyodbc://u@syn/db?driver=ODBC+Driver+18&password=pa55word", "password=***", "pa55word"),
    ("sqlite:///data/registry.db", "sqlite:///data/registry.db", None),
])
def test_redact_hides_passwords_anywhere_in_a_database_url(url, shown, hidden):
    out = redact(url)
    assert shown in out
    if hidden:
        assert hidden not in out


def test_redact_secrets_in_connection_strings_sas_and_text():
    connection = (f"DefaultEndpointsProtocol=https;AccountName=contosolake;AccountKey={KEY};"
                  "EndpointSuffix=core.windows.net")
    assert redact_connection_string(connection) == ("DefaultEndpointsProtocol=https;AccountName=contosolake;"
                                                    "AccountKey=***;EndpointSuffix=core.windows.net")
    sas = "https://contosolake.blob.core.windows.net/lake/x?sv=2022-11-02&sp=r&sig=AbCd%2Fef%3D"
    assert redact_secrets(sas).endswith("sp=r&sig=***")
    text = 'failed with {"client_secret": "abc123", "password": "p"} and SharedAccessSignature=sv=1&sig=zz'
    out = redact_secrets(text)
    assert "abc123" not in out and '"p"' not in out and "sig=zz" not in out
    assert redact_secrets("https://user:pw123@host/path") == "https://user:***@host/path"
    assert redact_secrets("nothing sensitive here: keyvault name kv-mm, signature count 3") == \
        "nothing sensitive here: keyvault name kv-mm, signature count 3"


# ---- the lake's credentials -----------------------------------------------------------------------------------
def test_default_is_adlfs_own_resolution_ending_in_default_azure_credential(clean_storage_env):
    lake = Lake(URI)  # no key, no connection string: adlfs signs in with DefaultAzureCredential
    assert lake.fs.account_name == "contosolake"
    assert lake.fs.account_url == "https://contosolake.blob.core.windows.net"
    assert type(lake.fs.credential).__name__ == "DefaultAzureCredential"
    assert lake.fs.account_key is None and lake.fs.connection_string is None
    assert KEY not in repr(lake)


def test_connection_string_from_the_environment(clean_storage_env, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       f"DefaultEndpointsProtocol=https;AccountName=contosolake;AccountKey={KEY};"
                       "EndpointSuffix=core.windows.net")
    lake = Lake(URI)
    assert lake.fs.connection_string is not None and lake.fs.credential is None
    assert KEY not in repr(lake) and KEY not in str(lake.storage_options)


@pytest.mark.parametrize("credential, option, variable", [
    (ADLS2Key(key=KEY), "account_key", "AZURE_STORAGE_ACCOUNT_KEY"),
    (ADLS2SASToken(token="sv=2022-11-02&sig=" + KEY), "sas_token", "AZURE_STORAGE_SAS_TOKEN"),
])
def test_adls2_resource_credentials_reach_the_lake_and_the_workers(clean_storage_env, credential, option,
                                                                   variable):
    resource = LakeResource(uri=URI, adls2=ADLS2Resource(storage_account="contosolake", credential=credential))
    seen = {}

    @dg.asset
    def probe(lake: LakeResource):
        the_lake = lake.get()
        seen["fs"] = the_lake.fs
        seen["env"] = {name: os.environ.get(name) for name in STORAGE_VARS}

    assert dg.materialize([probe], resources={"lake": resource}).success
    fs = seen["fs"]
    assert fs.account_name == "contosolake" and fs.account_url == "https://contosolake.blob.core.windows.net"
    assert getattr(fs, option).lstrip("?") == (credential.key if option == "account_key" else credential.token)
    # the runner's worker processes build Lake(uri) alone: they find the same credential in the environment
    assert seen["env"][variable] and seen["env"]["AZURE_STORAGE_ACCOUNT_NAME"] == "contosolake"
    worker_fs = Lake(URI, storage_options={"skip_instance_cache": True}).fs  # as in a fresh worker process
    assert getattr(worker_fs, option).lstrip("?") == getattr(fs, option).lstrip("?")


def test_adls2_default_azure_credential_and_sovereign_clouds(clean_storage_env):
    resource = LakeResource(
        uri="abfs://lake@contosolake.dfs.core.chinacloudapi.cn/mm",
        adls2=ADLS2Resource(storage_account="contosolake", endpoint_suffix="core.chinacloudapi.cn",
                            credential=ADLS2DefaultAzureCredential(kwargs={})),
    )
    fs = resource.get().fs
    assert fs.account_url == "https://contosolake.blob.core.chinacloudapi.cn"
    assert type(fs.credential).__name__ == "DefaultAzureCredential"


def test_adls2_resource_must_match_the_lake_and_not_compete_with_a_connection_string(clean_storage_env,
                                                                                     monkeypatch):
    other = LakeResource(uri=URI, adls2=ADLS2Resource(storage_account="otheraccount", credential=ADLS2Key(key=KEY)))
    with pytest.raises(dg.Failure) as err:
        other.get()
    assert "otheraccount" in str(err.value) and KEY not in str(err.value)
    local = LakeResource(uri="data/lake", adls2=ADLS2Resource(storage_account="contosolake",
                                                               credential=ADLS2Key(key=KEY)))
    with pytest.raises(dg.Failure):
        local.get()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", f"AccountName=contosolake;AccountKey={KEY}")
    both = LakeResource(uri=URI, adls2=ADLS2Resource(storage_account="contosolake", credential=ADLS2Key(key=KEY)))
    with pytest.raises(dg.Failure) as err:
        both.get()
    assert KEY not in str(err.value)
