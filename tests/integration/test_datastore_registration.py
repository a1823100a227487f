"""v1 datastore registrations against real servers (Azurite, moto S3, PostgreSQL, MariaDB) and a real embedded
Airflow: the secret lands in the Airflow connection ``mlpipe_ds_<name>`` and nowhere else (store rows, files of
the workspace home, repr, error messages); bytes round-trip exactly; bad credentials name the datastore and the
container / bucket / server; the SQL stores connect through ``sql_url()``."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlpipe import Workspace
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.sdk.datastore import Datastore
from tests.helpers.embedded import embedded_airflow, working_directory
from tests.helpers.secrets import files_holding
from tests.helpers.storage_servers import new_bucket, new_container

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(300)]

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    root = tmp_path_factory.mktemp("datastore_registration")
    (root / "dags").mkdir()
    with working_directory(root):
        ws = Workspace.from_config()
    with embedded_airflow(ws, root / "dags") as info, AirflowClient(info.url, info.username,
                                                                     info.password) as client:
        yield ws, client


@pytest.fixture
def ws(embedded):
    """The shared embedded workspace; every datastore a test registers is unregistered after it."""
    workspace, _ = embedded
    before = {r["name"] for r in workspace.store.list_datastores()}
    yield workspace
    for row in workspace.store.list_datastores():
        if row["name"] not in before:
            with contextlib.suppress(UserErrorException):
                Datastore.get(workspace, row["name"]).unregister()


def _airflow_connection(ws: Workspace, conn_id: str) -> dict | None:
    """The connection as ``airflow connections get`` prints it (password included), None when missing."""
    env = local_airflow.process_env(local_airflow.airflow_env(ws))
    proc = subprocess.run([*local_airflow.airflow_cmd(), "connections", "get", conn_id, "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout[proc.stdout.index("["):])[0]


def _extra(conn: dict) -> dict:
    extra = conn["extra_dejson"]
    return json.loads(extra) if isinstance(extra, str) else extra


def _assert_secret_only_in_airflow(ws: Workspace, store: Datastore, secret: str) -> None:
    rows = ws.store.list_datastores()
    assert rows and secret not in json.dumps(rows, default=str)
    assert secret not in repr(store) and secret not in str(store) and secret not in json.dumps(store.to_ref())
    assert files_holding(ws.home, secret) == []


def _tree(root: Path) -> dict[str, bytes]:
    files = {"a.bin": os.urandom(70_000), "sub/b.txt": b"two\n", "sub/deeper/c.bin": os.urandom(1234)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _round_trip(store: Datastore, tmp_path: Path) -> None:
    files = _tree(tmp_path / "src")
    store.upload(str(tmp_path / "src"), target_path="run1", show_progress=False)
    fresh = Datastore.get(store.workspace, store.name)  # reads the connection back from Airflow
    assert fresh.download(str(tmp_path / "dst"), prefix="run1", show_progress=False) == len(files)
    for rel, data in files.items():
        assert (tmp_path / "dst" / "run1" / rel).read_bytes() == data


# ---------------------------------------------------------------------------------------------- Blob
def test_blob_with_account_key_round_trips_and_keeps_the_key_in_airflow(ws, azurite, tmp_path):
    container = new_container(azurite)
    try:
        store = Datastore.register_azure_blob_container(ws, "BlobKey", container, azurite.account_name,
                                                        account_key=azurite.account_key, protocol="http",
                                                        endpoint=azurite.host)
        assert (store.datastore_type, store.container_name, store.account_name) == (
            "AzureBlob", container, azurite.account_name)
        assert (store.protocol, store.endpoint, store.credential_type) == ("http", azurite.host, "AccountKey")
        assert store.account_key is None and store.sas_token is None and store.conn_id == "mlpipe_ds_blobkey"
        _round_trip(store, tmp_path)
        conn = _airflow_connection(ws, "mlpipe_ds_blobkey")
        assert conn["conn_type"] == "wasb" and conn["password"] == azurite.account_key
        assert conn["host"] == azurite.blob_endpoint
        _assert_secret_only_in_airflow(ws, store, azurite.account_key)
        assert "BlobKey" in Datastore.list(ws)

        Datastore.get(ws, "blobkey").unregister()
        with pytest.raises(UserErrorException, match="not registered"):
            Datastore.get(ws, "BlobKey")
        assert _airflow_connection(ws, "mlpipe_ds_blobkey") is None  # its secret went with it
    finally:
        azurite.filesystem().rm(container, recursive=True)


def test_blob_with_sas_round_trips(ws, azurite, tmp_path):
    container = new_container(azurite)
    sas = azurite.sas_token(container)
    try:
        store = Datastore.register_azure_blob_container(ws, "blob_sas", container, azurite.account_name,
                                                        sas_token=sas, protocol="http", endpoint=azurite.host)
        assert store.credential_type == "Sas"
        _round_trip(store, tmp_path)
        conn = _airflow_connection(ws, "mlpipe_ds_blob_sas")
        assert _extra(conn)["sas_token"] == sas and not conn["password"]
        signature = [p for p in sas.split("&") if p.startswith("sig=")][0][4:]
        _assert_secret_only_in_airflow(ws, store, signature)
    finally:
        azurite.filesystem().rm(container, recursive=True)


def test_blob_create_if_not_exists_and_missing_container(ws, azurite):
    name = f"new{uuid.uuid4().hex[:10]}"
    try:
        with pytest.raises(UserErrorException) as err:
            Datastore.register_azure_blob_container(ws, "blob_missing", name, azurite.account_name,
                                                    account_key=azurite.account_key, protocol="http",
                                                    endpoint=azurite.host)
        assert "'blob_missing'" in str(err.value) and f"container {name!r}" in str(err.value)
        assert azurite.account_key not in str(err.value)
        assert _airflow_connection(ws, "mlpipe_ds_blob_missing") is None  # nothing written on failure
        Datastore.register_azure_blob_container(ws, "blob_missing", name, azurite.account_name,
                                                account_key=azurite.account_key, protocol="http",
                                                endpoint=azurite.host, create_if_not_exists=True)
        assert azurite.filesystem().exists(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            azurite.filesystem().rm(name, recursive=True)


def test_wrong_key_names_the_datastore_and_container(ws, azurite):
    container = new_container(azurite)
    wrong = "A" * 86 + "=="
    try:
        with pytest.raises(UserErrorException) as err:
            Datastore.register_azure_blob_container(ws, "blob_bad", container, azurite.account_name,
                                                    account_key=wrong, protocol="http", endpoint=azurite.host)
        message = str(err.value)
        assert "'blob_bad'" in message and f"container {container!r}" in message and wrong not in message
        with pytest.raises(UserErrorException, match="not registered"):
            Datastore.get(ws, "blob_bad")
        # skip_validation records it anyway; reading then fails
        store = Datastore.register_azure_blob_container(ws, "blob_bad", container, azurite.account_name,
                                                        account_key=wrong, protocol="http",
                                                        endpoint=azurite.host, skip_validation=True)
        assert store.conn_id == "mlpipe_ds_blob_bad"
    finally:
        azurite.filesystem().rm(container, recursive=True)


def test_overwrite_rules_and_secret_with_conn_id(ws, azurite):
    container, other = new_container(azurite), new_container(azurite)
    try:
        kw = {"account_key": azurite.account_key, "protocol": "http", "endpoint": azurite.host}
        Datastore.register_azure_blob_container(ws, "blob_ow", container, azurite.account_name, **kw)
        same = Datastore.register_azure_blob_container(ws, "blob_ow", container, azurite.account_name, **kw)
        assert same.container_name == container
        with pytest.raises(UserErrorException, match="already registered.*overwrite=True"):
            Datastore.register_azure_blob_container(ws, "blob_ow", other, azurite.account_name, **kw)
        moved = Datastore.register_azure_blob_container(ws, "blob_ow", other, azurite.account_name,
                                                        overwrite=True, **kw)
        assert moved.container_name == other
        with pytest.raises(UserErrorException, match="either account_key or conn_id"):
            Datastore.register_azure_blob_container(ws, "blob_ow2", container, azurite.account_name,
                                                    conn_id="mlpipe_ds_blob_ow", **kw)
        # the caller's own connection, used as is
        mine = Datastore.register_azure_blob_container(ws, "blob_mine", other, azurite.account_name,
                                                       conn_id="mlpipe_ds_blob_ow")
        assert mine.conn_id == "mlpipe_ds_blob_ow" and mine.credential_type == "AirflowConnection"
        assert mine.fs.exists(other)
        mine.unregister()
        assert _airflow_connection(ws, "mlpipe_ds_blob_ow") is not None  # not ours to delete
    finally:
        for name in (container, other):
            azurite.filesystem().rm(name, recursive=True)


# ---------------------------------------------------------------------------------------------- S3
def test_s3_round_trips_and_wrong_secret_names_the_bucket(ws, moto_s3, tmp_path):
    bucket = new_bucket(moto_s3)
    try:
        store = Datastore.register_s3_bucket(ws, "s3store", bucket, access_key_id=moto_s3.access_key_id,
                                             secret_access_key=moto_s3.secret_access_key,
                                             endpoint_url=moto_s3.endpoint_url, region_name=moto_s3.region)
        assert (store.datastore_type, store.url, store.credential_type) == ("S3", f"s3://{bucket}", "AccessKey")
        _round_trip(store, tmp_path)
        conn = _airflow_connection(ws, "mlpipe_ds_s3store")
        assert conn["conn_type"] == "aws" and conn["password"] == moto_s3.secret_access_key
        assert _extra(conn)["endpoint_url"] == moto_s3.endpoint_url
        _assert_secret_only_in_airflow(ws, store, moto_s3.secret_access_key)

        with pytest.raises(UserErrorException) as err:
            Datastore.register_s3_bucket(ws, "s3missing", f"nobucket{uuid.uuid4().hex[:8]}",
                                         access_key_id=moto_s3.access_key_id,
                                         secret_access_key="wrong-secret-12345", endpoint_url=moto_s3.endpoint_url)
        assert "'s3missing'" in str(err.value) and "bucket 'nobucket" in str(err.value)
        assert "wrong-secret-12345" not in str(err.value)
    finally:
        moto_s3.filesystem().rm(bucket, recursive=True)


# ---------------------------------------------------------------------------------------------- SQL
@pytest.fixture
def mariadb_user():
    """A MariaDB user with a password (root has none), dropped afterwards."""
    user, password = f"mlpipe_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    engine = sa.create_engine(MARIADB_URL)
    with engine.begin() as db:
        db.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
        db.execute(sa.text(f"GRANT SELECT ON test.* TO '{user}'@'%'"))
    yield user, password
    with engine.begin() as db:
        db.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
    engine.dispose()


def _select_one(store: Datastore) -> int:
    engine = sa.create_engine(store.sql_url())
    try:
        with engine.connect() as db:
            return db.execute(sa.text("SELECT 1")).scalar()
    finally:
        engine.dispose()


def test_postgres_and_mysql_connect_through_sql_url(ws, mariadb_user):
    pg = Datastore.register_azure_postgre_sql(ws, "pgstore", "127.0.0.1", "test", "postgres", "pg-pass-4711",
                                              port_number=5432)
    assert pg.is_sql and (pg.server_name, pg.database_name, pg.user_id) == ("127.0.0.1", "test", "postgres")
    assert pg.url == "postgresql+psycopg2://postgres@127.0.0.1:5432/test"  # local host: no sslmode=require
    assert _select_one(Datastore.get(ws, "pgstore")) == 1
    assert "pg-pass-4711" in pg.sql_url()
    assert _airflow_connection(ws, "mlpipe_ds_pgstore")["password"] == "pg-pass-4711"
    _assert_secret_only_in_airflow(ws, pg, "pg-pass-4711")
    with pytest.raises(UserErrorException, match="SQL datastore.*SqlDataReference"):
        pg.fs  # noqa: B018

    user, password = mariadb_user
    my = Datastore.register_azure_my_sql(ws, "mystore", "127.0.0.1", "test", user, password, port_number=3306)
    assert my.datastore_type == "AzureMySql" and _select_one(Datastore.get(ws, "mystore")) == 1
    _assert_secret_only_in_airflow(ws, my, password)
    assert {"pgstore", "mystore"} <= set(Datastore.list(ws))

    with pytest.raises(UserErrorException) as err:
        Datastore.register_azure_my_sql(ws, "mybad", "127.0.0.1", "test", user, "not-the-password-99",
                                        port_number=3306)
    message = str(err.value)
    assert "'mybad'" in message and "server '127.0.0.1'" in message and "not-the-password-99" not in message
    assert _airflow_connection(ws, "mlpipe_ds_mybad") is None


def test_sql_database_url_password_moves_into_the_connection(ws, mariadb_user):
    user, password = mariadb_user
    store = Datastore.register_sql_database(ws, "anysql", f"mysql+pymysql://{user}:{password}@127.0.0.1:3306/test")
    assert store.url == f"mysql+pymysql://{user}@127.0.0.1:3306/test" and store.credential_type == "SqlAuthentication"
    assert _select_one(Datastore.get(ws, "anysql")) == 1
    _assert_secret_only_in_airflow(ws, store, password)
    plain = Datastore.register_sql_database(ws, "pgplain", PG_URL)  # no password: no connection
    assert plain.conn_id is None and _select_one(plain) == 1


# ---------------------------------------------------------------------------------------------- configuration only
def test_azure_sql_file_share_and_adls_are_recorded(ws):
    sql = Datastore.register_azure_sql_database(ws, "azsql", "myserver", "db", username="admin",
                                                password="sql-pass-31337", skip_validation=True)
    assert sql.url == "mssql+pymssql://admin@myserver.database.windows.net:1433/db"
    assert sql.credential_type == "SqlAuthentication"
    assert _airflow_connection(ws, "mlpipe_ds_azsql")["password"] == "sql-pass-31337"
    sp = Datastore.register_azure_sql_database(ws, "azsql_sp", "myserver", "db", tenant_id="t-1", client_id="c-1",
                                               client_secret="sp-secret-777")
    assert sp.credential_type == "ServicePrincipal" and sp.user_id == "c-1"
    with pytest.raises(UserErrorException, match="service principal"):
        sp.sql_url()

    share = Datastore.register_azure_file_share(ws, "share", "myshare", "acct", account_key="share-key-0042")
    assert (share.datastore_type, share.container_name, share.credential_type) == ("AzureFile", "myshare",
                                                                                   "AccountKey")
    assert _airflow_connection(ws, "mlpipe_ds_share")["password"] == "share-key-0042"
    with pytest.raises(UserErrorException, match="no fsspec backend"):
        share.fs  # noqa: B018

    lake = Datastore.register_azure_data_lake_gen2(ws, "lake", "fs1", "acct", tenant_id="t-1", client_id="c-1",
                                                   client_secret="lake-secret-9")
    assert lake.credential_type == "ServicePrincipal" and lake.url == "abfs://fs1@acct.dfs.core.windows.net"
    conn = _airflow_connection(ws, "mlpipe_ds_lake")
    assert (conn["conn_type"], conn["login"], conn["password"]) == ("adls", "c-1", "lake-secret-9")
    assert _extra(conn)["tenant_id"] == "t-1"
    for store, secret in ((sql, "sql-pass-31337"), (sp, "sp-secret-777"), (share, "share-key-0042"),
                          (lake, "lake-secret-9")):
        _assert_secret_only_in_airflow(ws, store, secret)


# ---------------------------------------------------------------------------------------------- inside a task
STEP = """import argparse, os, shutil
parser = argparse.ArgumentParser()
parser.add_argument("--src")
parser.add_argument("--out")
args = parser.parse_args()
found = [os.path.join(d, f) for d, _, names in os.walk(args.src) for f in names if f == "data.bin"]
os.makedirs(args.out, exist_ok=True)
shutil.copy(found[0], os.path.join(args.out, "copy.bin"))
"""


def test_a_step_reads_blob_and_writes_s3_in_the_worker(ws, azurite, moto_s3, tmp_path):
    from airflow_mlpipe import Experiment, Pipeline, PipelineData, PythonScriptStep
    from airflow_mlpipe.sdk.data_reference import DataReference

    container, bucket = new_container(azurite), new_bucket(moto_s3)
    payload = os.urandom(50_000)
    try:
        blob = Datastore.register_azure_blob_container(ws, "task_blob", container, azurite.account_name,
                                                       account_key=azurite.account_key, protocol="http",
                                                       endpoint=azurite.host)
        s3 = Datastore.register_s3_bucket(ws, "task_s3", bucket, access_key_id=moto_s3.access_key_id,
                                          secret_access_key=moto_s3.secret_access_key,
                                          endpoint_url=moto_s3.endpoint_url, region_name=moto_s3.region)
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "data.bin").write_bytes(payload)
        blob.upload(str(tmp_path / "in"), target_path="in", show_progress=False)
        src = tmp_path / "steps"
        src.mkdir()
        (src / "copy.py").write_text(STEP)
        data = DataReference(blob, data_reference_name="raw", path_on_datastore="in", mode="download")
        out = PipelineData("copied", datastore=s3)
        step = PythonScriptStep("copy.py", name="copy", arguments=["--src", data, "--out", out], inputs=[data],
                                outputs=[out], source_directory=str(src), allow_reuse=False)
        run = Experiment(ws, "datastore-task").submit(Pipeline(ws, [step]))
        assert run.wait_for_completion(show_output=False) == "Finished"
        written = [p for p in moto_s3.filesystem().find(bucket) if p.endswith("/copy.bin")]
        assert len(written) == 1 and moto_s3.filesystem().cat_file(written[0]) == payload
    finally:
        azurite.filesystem().rm(container, recursive=True)
        moto_s3.filesystem().rm(bucket, recursive=True)
