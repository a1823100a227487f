"""What a v1 registration puts into its Airflow connection and its store row, the host rules, the filesystems
built from a connection held in memory (real Azurite and moto), and the progress bars of upload/download."""

from __future__ import annotations

import json

import pytest

from airflow_mlpipe.clients import datastore_connections as dsconn
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.datastore_location import DatastoreLocation
from airflow_mlpipe.data.datastore_urls import split_sql_url
from airflow_mlpipe.sdk.datastore import Datastore
from tests.helpers.storage_servers import new_bucket, new_container


def _location(workspace, reg: dsconn.Registration, conn_id: str | None = None) -> DatastoreLocation:
    """The location ``reg`` would register, with its connection in memory (or the caller's ``conn_id``)."""
    conn_id = conn_id or (reg.body["connection_id"] if reg.body else None)
    loc = DatastoreLocation(workspace, _rec={"name": reg.name, "url": reg.url, "kind": reg.kind,
                                             "conn_id": conn_id, "settings": reg.settings})
    if reg.body:
        loc._connection = dsconn.in_memory(reg.body)
    return loc


def test_blob_registration_key_and_sas():
    reg = dsconn.blob_registration("Raw", "cont", "acct", None, "a-key", None, None, None)
    assert reg.url == "abfs://cont@acct.dfs.core.windows.net" and reg.kind == "AzureBlob"
    body = reg.body
    assert (body["connection_id"], body["conn_type"], body["host"], body["login"], body["password"]) == (
        "mlpipe_ds_raw", "wasb", "https://acct.blob.core.windows.net", "acct", "a-key")
    assert json.loads(body["extra"]) == {"account_name": "acct"}
    assert reg.settings["auth"] == "AccountKey" and "a-key" not in json.dumps(reg.settings)
    assert reg.secrets == ["a-key"] and "a-key" not in repr(reg)

    sas = dsconn.blob_registration("raw", "cont", "devstoreaccount1", "?sv=1&sig=abc%2Bdef", None, "http",
                                   "127.0.0.1:10000", None)
    assert sas.body["host"] == "http://127.0.0.1:10000/devstoreaccount1" and sas.body["password"] is None
    assert json.loads(sas.body["extra"])["sas_token"] == "?sv=1&sig=abc%2Bdef"
    assert sas.settings["auth"] == "Sas" and sas.secrets == ["?sv=1&sig=abc%2Bdef"]


def test_conn_id_with_secrets_is_refused_and_own_connection_has_no_body():
    with pytest.raises(UserErrorException, match="'raw'.*either account_key or conn_id='mine'"):
        dsconn.blob_registration("raw", "cont", "acct", None, "a-key", None, None, "mine")
    reg = dsconn.blob_registration("raw", "cont", "acct", None, None, None, None, "mine")
    assert reg.body is None and reg.settings["auth"] == "AirflowConnection"
    with pytest.raises(UserErrorException, match="protocol must be 'https' or 'http'"):
        dsconn.blob_registration("raw", "cont", "acct", None, "k", "ftp", None, None)
    with pytest.raises(UserErrorException, match="'container_name' must be a non-empty string"):
        dsconn.blob_registration("raw", "", "acct", None, "k", None, None, None)


def test_sql_host_rule_and_urls():
    assert dsconn.sql_host("myserver", None, "postgres.database.azure.com") == "myserver.postgres.database.azure.com"
    assert dsconn.sql_host("myserver", "postgres.example.cn", "x") == "myserver.postgres.example.cn"
    for literal in ("127.0.0.1", "localhost", "db.internal.example.org", "::1"):
        assert dsconn.sql_host(literal, None, "postgres.database.azure.com") == literal
    pg = dsconn.azure_sql_registration("pg", "AzurePostgreSql", "srv", "db", user="u", password="p1", port=None,
                                       endpoint=None, conn_id=None, enforce_ssl=True)
    assert pg.url == "postgresql+psycopg2://u@srv.postgres.database.azure.com:5432/db?sslmode=require"
    assert (pg.body["conn_type"], pg.body["schema"], pg.body["password"]) == ("postgres", "db", "p1")
    local = dsconn.azure_sql_registration("pg", "AzurePostgreSql", "127.0.0.1", "db", user="u", password="p1",
                                          port=5433, endpoint=None, conn_id=None, enforce_ssl=True)
    assert local.url == "postgresql+psycopg2://u@127.0.0.1:5433/db"
    my = dsconn.azure_sql_registration("my", "AzureMySql", "srv", "db", user="u", password="p", port="3307",
                                       endpoint=None, conn_id=None)
    assert my.url == "mysql+pymysql://u@srv.mysql.database.azure.com:3307/db" and my.body["port"] == 3307
    with pytest.raises(UserErrorException, match="port_number must be a number"):
        dsconn.azure_sql_registration("my", "AzureMySql", "srv", "db", user="u", password="p", port="x",
                                      endpoint=None, conn_id=None)
    sp = dsconn.azure_sql_registration("az", "AzureSqlDatabase", "srv", "db", user=None, password=None, port=None,
                                       endpoint=None, conn_id=None, tenant_id="t", client_id="c", client_secret="s")
    assert sp.url == "mssql+pymssql://c@srv.database.windows.net:1433/db" and sp.settings["auth"] == "ServicePrincipal"
    with pytest.raises(UserErrorException, match="tenant_id, client_id and client_secret together"):
        dsconn.azure_sql_registration("az", "AzureSqlDatabase", "srv", "db", user=None, password=None, port=None,
                                      endpoint=None, conn_id=None, client_secret="s")


def test_sql_url_password_moves_out():
    assert split_sql_url("mysql+pymysql://u:p%40ss@h:3306/db?charset=utf8", "x") == (
        "mysql+pymysql://u@h:3306/db?charset=utf8", "p@ss")
    reg = dsconn.sql_url_registration("anysql", "postgresql+psycopg2://u:secret-1@h/db", None)
    assert reg.url == "postgresql+psycopg2://u@h/db" and reg.body["password"] == "secret-1"
    assert reg.body["conn_type"] == "postgres" and reg.settings["user_id"] == "u"
    assert dsconn.sql_url_registration("lite", "sqlite:////tmp/x.db", None).body is None
    with pytest.raises(UserErrorException, match="'bad': url is not a SQLAlchemy URL") as err:
        dsconn.sql_url_registration("bad", "no url with pw:hunter2", None)
    assert "hunter2" not in str(err.value)


def test_scrub_hides_plain_and_url_encoded_secrets():
    assert dsconn.scrub("a sig=ab+c/d= and ab%2Bc%2Fd%3D", ["ab+c/d="]) == "a sig=*** and ***"


def test_fs_from_connections_in_memory(workspace, azurite, moto_s3):
    container = new_container(azurite)
    bucket = new_bucket(moto_s3)
    try:
        for reg in (
            dsconn.blob_registration("k", container, azurite.account_name, None, azurite.account_key, "http",
                                     azurite.host, None),
            dsconn.blob_registration("s", container, azurite.account_name, azurite.sas_token(container), None,
                                     "http", azurite.host, None),
            dsconn.s3_registration("b", bucket, moto_s3.access_key_id, moto_s3.secret_access_key,
                                   moto_s3.endpoint_url, moto_s3.region, None),
        ):
            loc = _location(workspace, reg)
            loc.fs.pipe_file(loc.full_path(f"{reg.name}/x.bin"), b"\x00bytes\xff")
            assert loc.fs.cat_file(loc.full_path(f"{reg.name}/x.bin")) == b"\x00bytes\xff"
        assert azurite.filesystem().cat_file(f"{container}/k/x.bin") == b"\x00bytes\xff"
        assert moto_s3.filesystem().cat_file(f"{bucket}/b/x.bin") == b"\x00bytes\xff"
    finally:
        azurite.filesystem().rm(container, recursive=True)
        moto_s3.filesystem().rm(bucket, recursive=True)


def test_sql_store_has_no_fs_and_file_store_no_sql_url(workspace):
    sql = _location(workspace, dsconn.sql_url_registration("lite", "sqlite:///:memory:", None))
    assert sql.is_sql and sql.sql_url() == "sqlite:///:memory:"
    with pytest.raises(UserErrorException, match="'lite' is a SQL datastore.*SqlDataReference"):
        sql.fs  # noqa: B018
    with pytest.raises(UserErrorException, match="not a SQL one"):
        Datastore.get_default(workspace).sql_url()


def test_missing_connection_names_datastore_and_connection(workspace):
    reg = dsconn.blob_registration("lake", "cont", "acct", None, None, None, None, "no_such_conn")
    with pytest.raises(UserErrorException, match="'lake': the Airflow connection 'no_such_conn' cannot be read"):
        _location(workspace, reg, "no_such_conn").fs  # noqa: B018


def test_progress_bars_only_when_asked(workspace, tmp_path, capsys):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(b"a" * 5000)
    (src / "sub" / "b.bin").write_bytes(b"b" * 3000)
    store = Datastore.get_default(workspace)
    capsys.readouterr()
    store.upload(str(src), target_path="quiet", show_progress=False)
    assert store.download(str(tmp_path / "q"), prefix="quiet", show_progress=False) == 2
    assert capsys.readouterr() == ("", "")

    store.upload(str(src), target_path="shown", show_progress=True)
    err = capsys.readouterr().err
    assert "Uploading to workspaceblobstore" in err and "2/2 files" in err and "7.81k" in err
    assert store.download(str(tmp_path / "s"), prefix="shown", show_progress=True) == 2
    err = capsys.readouterr().err
    assert "Downloading from workspaceblobstore" in err and "2/2 files" in err
    assert (tmp_path / "s" / "shown" / "sub" / "b.bin").read_bytes() == b"b" * 3000
