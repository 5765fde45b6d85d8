"""The lake on Azure Blob storage (Azurite), through adlfs, read back with the official azure-storage-blob client."""

from __future__ import annotations

import io
import pickle

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mm_assets.lake import Lake, LakePathError
from mm_assets.lake.lake import azure_location, azure_storage_options
from mm_assets.parallel.train_entry import BundleWriter

pytestmark = pytest.mark.azurite


def _blob(azurite, container: str, name: str, offset: int | None = None, length: int | None = None) -> bytes:
    client = azurite.service().get_blob_client(container, name)
    return client.download_blob(offset=offset, length=length).readall()


def _names(azurite, container: str, prefix: str = "") -> list[str]:
    return sorted(b.name for b in azurite.service().get_container_client(container).list_blobs(name_starts_with=prefix))


def test_lake_round_trip_on_azurite(azure_env, azure_container, azure_lake_uri):
    lake = Lake(azure_lake_uri)
    assert not lake.is_local and lake.protocol == "abfs" and lake.root == f"{azure_container}/mm"
    frame = pd.DataFrame({"store": ["S01"] * 3, "item": ["I1", "I2", "I3"], "y": [1.0, 2.0, 3.0]})
    lake.write_parquet(frame, "datasets", "S01.parquet")
    lake.write_bytes(b"0123456789", "models", "S01", "bundle.bin")

    # the official client sees exactly these blobs, under the URI's path
    assert _names(azure_env, azure_container) == ["mm/datasets/S01.parquet", "mm/models/S01/bundle.bin"]
    back = pq.read_table(io.BytesIO(_blob(azure_env, azure_container, "mm/datasets/S01.parquet"))).to_pandas()
    pd.testing.assert_frame_equal(back, frame)
    assert lake.read_parquet("datasets", "S01.parquet").equals(frame)
    assert lake.fs.cat_file(lake.path("models", "S01", "bundle.bin"), start=3, end=6) == b"345"
    assert lake.list("datasets", suffix=".parquet") == ["S01.parquet"]
    assert lake.read_table("datasets").num_rows == 3

    # the stored URI keeps the account, so another process (or Synapse) finds the blob from it alone
    uri = lake.full_uri("models", "S01", "bundle.bin")
    assert uri == f"abfs://{azure_container}@devstoreaccount1.dfs.core.windows.net/mm/models/S01/bundle.bin"
    assert lake.relative(uri) == "models/S01/bundle.bin"
    assert lake.relative(f"abfs://{azure_container}/mm/models/S01/bundle.bin") == "models/S01/bundle.bin"
    with pytest.raises(LakePathError):
        lake.relative(f"abfs://{azure_container}@otheraccount.dfs.core.windows.net/mm/models/x.bin")
    with pytest.raises(LakePathError):
        lake.relative(f"memory://{azure_container}/mm/models/x.bin")

    lake.delete("models", recursive=True)
    assert _names(azure_env, azure_container) == ["mm/datasets/S01.parquet"]


def test_the_endpoint_sees_the_signature_a_listing_gives(azure_env, azure_container, azure_lake_uri):
    """Batch scoring records the listed signature of the dataset it scored from; the online endpoint asks one
    file's: both must name the same version of the file (else a published forecast would never be answered)."""
    from mm_assets.lake.lake import file_stamp

    lake = Lake(azure_lake_uri)
    lake.write_parquet(pd.DataFrame({"y": [1.0]}), "datasets", "S01.parquet")
    listed = lake.signatures("datasets", suffix=".parquet")["S01.parquet"]
    assert file_stamp(lake.fs.info(lake.path("datasets", "S01.parquet"))) == listed
    lake.write_parquet(pd.DataFrame({"y": [2.0]}), "datasets", "S01.parquet")
    assert lake.signatures("datasets", suffix=".parquet")["S01.parquet"] != listed


def test_listings_are_never_stale(azure_env, azure_container, azure_lake_uri):
    """Workers and other runs write the lake: what another client wrote is listed at once."""
    lake = Lake(azure_lake_uri)
    lake.write_bytes(b"1", "predictions", "S01.parquet")
    assert lake.list("predictions") == ["S01.parquet"]
    azure_env.service().get_blob_client(azure_container, "mm/predictions/S02.parquet").upload_blob(b"2")
    assert lake.list("predictions") == ["S01.parquet", "S02.parquet"]
    assert lake.exists("predictions", "S02.parquet")
    assert Lake(azure_lake_uri).list("predictions") == ["S01.parquet", "S02.parquet"]


def test_bundle_writer_makes_each_model_durable_before_returning(azure_env, azure_container, azure_lake_uri,
                                                                  monkeypatch):
    lake = Lake(azure_lake_uri)
    monkeypatch.setattr(BundleWriter, "MAX_APPENDS", 4)  # roll over after 4 appends (Azure allows 50,000)
    writer = BundleWriter(lake, "models/run-1")
    rows = []
    for i in range(10):
        model = {"series": f"S01/I{i}", "coef": list(range(i * 50))}
        uri, offset, size = writer.write(pickle.dumps(model))
        # before anything else happens, the bytes the row points at are readable by any client
        name = lake.relative(uri)
        assert pickle.loads(_blob(azure_env, azure_container, f"mm/{name}", offset, size)) == model
        rows.append((uri, offset, size, model))
    writer.close()
    files = sorted({uri for uri, *_ in rows})
    assert len(files) == 3  # 4 + 4 + 2 models
    for uri in files:
        assert [offset for u, offset, *_ in rows if u == uri][0] == 0
    for uri, offset, size, model in rows:  # and through the lake, by byte range, as the registry reads them
        assert pickle.loads(lake.fs.cat_file(lake.path(lake.relative(uri)), start=offset, end=offset + size)) == model
    from azure.storage.blob import BlobType

    properties = azure_env.service().get_blob_client(azure_container, f"mm/{lake.relative(files[0])}") \
        .get_blob_properties()
    assert properties.blob_type == BlobType.APPENDBLOB


def test_orphan_bundles_are_found_by_the_time_azure_gives_and_named_as_the_registry_names_them(
        azure_env, azure_container, azure_lake_uri, tmp_path):
    """The sweep of bundle files no version points at reads each blob's ``last_modified`` (a datetime with its
    zone, not a local disk's seconds) and compares the ``abfs://`` URIs the registry stores."""
    import datetime as dt

    from mm_assets.registry.model_registry import ModelRegistry
    from mm_assets_tests.registry.test_model_registry import model_rows

    lake = Lake(azure_lake_uri)
    lake.write_bytes(b"1", "models", "r1", "w1.bin")
    lake.write_bytes(b"2", "models", "r2", "w1.bin")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert lake.files_written_before(now - dt.timedelta(hours=1), "models") == []
    assert lake.files_written_before(now + dt.timedelta(hours=1), "models") == ["models/r1/w1.bin",
                                                                                 "models/r2/w1.bin"]
    reg = ModelRegistry(f"sqlite:///{tmp_path}/registry.db", lake)
    reg.register(model_rows([("S1", "I1")], uri=lake.full_uri("models", "r1", "w1.bin")), "r1")
    assert reg.prune_orphan_bundles(now + dt.timedelta(hours=1)) == 1
    assert lake.exists("models", "r1", "w1.bin") and not lake.exists("models", "r2", "w1.bin")


def test_ids_never_become_paths_outside_the_lake(azure_env, azure_container, azure_lake_uri):
    lake = Lake(azure_lake_uri)
    for bad in ("..", "../other", "S01/../../x", "a\\b", ".hidden", ""):
        with pytest.raises(LakePathError):
            lake.write_bytes(b"x", "datasets", bad)
    assert _names(azure_env, azure_container) == []


@pytest.mark.parametrize("uri", [
    "abfs://lake@devstoreaccount1.dfs.core.windows.net/mm?sig=abc",  # credentials never ride in the URI
    "abfs://lake@user:pw@devstoreaccount1.dfs.core.windows.net/mm",
    "abfs://Lake@devstoreaccount1.dfs.core.windows.net/mm",  # container names are lowercase
    "abfs://lake@dev-store.dfs.core.windows.net/mm",  # account names are letters and digits
    "abfs://lake@devstoreaccount1.example.com/mm",
    "abfs://a/mm",
])
def test_malformed_azure_uris_are_refused_before_any_request(uri):
    with pytest.raises(LakePathError):
        azure_location(uri)


def test_a_connection_string_for_another_account_is_refused_without_showing_it(azure_env):
    environ = {"AZURE_STORAGE_CONNECTION_STRING": azure_env.connection_string}
    uri = "abfs://lake@prodaccount.dfs.core.windows.net/mm"
    with pytest.raises(LakePathError) as err:
        azure_storage_options(uri, environ)
    assert "devstoreaccount1" in str(err.value) and "prodaccount" in str(err.value)
    assert azure_env.key not in str(err.value) and "AccountKey" not in str(err.value)


def test_storage_options_derive_the_account_and_sovereign_endpoints():
    assert azure_storage_options("abfs://lake@acct01.dfs.core.windows.net/mm", {}) == {
        "use_listings_cache": False, "account_name": "acct01", "account_host": "acct01.blob.core.windows.net"}
    assert azure_storage_options("abfss://lake@acct01.dfs.core.chinacloudapi.cn/mm", {})["account_host"] == \
        "acct01.blob.core.chinacloudapi.cn"
    # the short form leaves the account to the connection string or AZURE_STORAGE_ACCOUNT_NAME
    assert azure_storage_options("abfs://lake/mm", {}) == {"use_listings_cache": False}


def test_a_lake_whose_container_does_not_exist_is_one_line_saying_to_create_it(azure_env, tmp_path):
    """Azure's error goes on with the request id, the time and the response's XML: none of it says what to do."""
    from mm_assets.preflight import StorageError, check_stores
    from mm_assets_tests.conftest import tiny_settings

    settings = tiny_settings(tmp_path, storage={"lake": azure_env.lake_uri("no-such-container")})
    with pytest.raises(StorageError) as info:
        check_stores(settings)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "<?xml" not in message
    assert message.startswith("storage.lake abfs://no-such-container@") and "ContainerNotFound" in message
    assert "create the container first (az storage container create --name no-such-container --account-name " \
        "devstoreaccount1)" in message
