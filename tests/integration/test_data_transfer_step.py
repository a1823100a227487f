"""DataTransferStep end to end on a real embedded Airflow, against real servers: Azurite (Blob), moto (S3),
PostgreSQL and MariaDB. Datastores are registered with v1 calls (secrets go into Airflow connections), pipelines
are submitted with ``Experiment.submit`` and run by the scheduler; the tests check the bytes and rows at the
destination, reuse of unchanged sources, copies of changed ones, and errors that name the datastore and path."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from airflow_mlpipe import (
    ComputeTarget,
    DataFactoryCompute,
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Datastore,
    DataTransferStep,
    Experiment,
    Pipeline,
    PipelineParameter,
    PythonScriptStep,
    SqlDataReference,
    Workspace,
)
from tests.helpers.embedded import embedded_airflow, working_directory, write_project_config
from tests.helpers.published import admin_token, bearer, http, wait_v1_run
from tests.helpers.storage_servers import new_bucket, new_container

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(600)]
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"

#: counts the files and bytes of its input folder (or file) and writes the count
COUNT = """\
import os, sys
src, out = sys.argv[1], sys.argv[2]
files = [os.path.join(d, f) for d, _, names in os.walk(src) for f in names] if os.path.isdir(src) else [src]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "count.txt"), "w").write(f"{len(files)} {sum(os.path.getsize(f) for f in files)}")
print("counted", len(files), "files")
"""


class Env:
    def __init__(self, root: Path, ws: Workspace, info, adf, azurite, moto_s3) -> None:
        self.root, self.ws, self.info, self.adf = root, ws, info, adf
        self.azurite, self.moto_s3 = azurite, moto_s3
        self.steps = root / "steps"

    def run(self, name: str, steps: list, **kwargs) -> tuple[str, object]:
        run = Experiment(self.ws, name).submit(Pipeline(self.ws, steps), **kwargs)
        status = run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False)
        return status, run

    def step_row(self, run, task_id: str) -> dict:
        return self.ws.store.get_step_run(f"{run.id}.{task_id}") or {}

    def counter(self, data, name: str = "count") -> PythonScriptStep:
        from airflow_mlpipe import PipelineData

        out = PipelineData(f"{name}_out")
        return PythonScriptStep("count.py", name=name, arguments=[data, out], inputs=[data], outputs=[out],
                                source_directory=str(self.steps))


@pytest.fixture(scope="module")
def env(tmp_path_factory, azurite, moto_s3):
    root = tmp_path_factory.mktemp("transfers")
    write_project_config(root, {"AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0"})
    (root / "dags").mkdir()
    (root / "steps").mkdir()
    (root / "steps" / "count.py").write_text(COUNT)
    with working_directory(root):
        ws = Workspace.from_config()
        with embedded_airflow(ws, root / "dags") as info:
            adf = ComputeTarget.create(ws, "adf", DataFactoryCompute.provisioning_configuration())
            yield Env(root, ws, info, adf, azurite, moto_s3)


def _files(base: Path) -> dict[str, bytes]:
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_blob_folder_to_local_is_reused_until_the_source_changes(env):
    container = new_container(env.azurite)
    blob = Datastore.register_azure_blob_container(
        env.ws, "rawblob", container_name=container, account_name=env.azurite.account_name,
        account_key=env.azurite.account_key, protocol="http", endpoint=env.azurite.host)
    azfs = env.azurite.filesystem()
    payload = {f"raw/part-{i}.csv": os.urandom(50_000 + i) for i in range(3)} | {"raw/nested/deep.bin": b"x" * 10}
    for rel, data in payload.items():
        azfs.pipe(f"{container}/{rel}", data)
    local = Datastore.register(env.ws, "landing", str(env.root / "landing"))
    copy = DataTransferStep("blob_to_local", DataReference(blob, "raw", "raw"), DataReference(local, "dst", "raw"),
                            env.adf)
    steps = [copy, env.counter(copy.get_output())]

    status, run1 = env.run("blob-to-local", steps)
    assert status == "Finished", env.step_row(run1, "blob_to_local").get("error")
    landed = _files(env.root / "landing" / "raw")
    assert landed == {rel[len("raw/"):]: data for rel, data in payload.items()}
    first = env.step_row(run1, "blob_to_local")
    assert first["outputs"]["_data_transfer_output"]["files"] == 4

    status, run2 = env.run("blob-to-local", steps)
    assert status == "Finished"
    again = env.step_row(run2, "blob_to_local")
    assert again["reused_run_id"] == first["step_run_id"]  # unchanged blobs (same ETags): no copy
    assert env.step_row(run2, "count")["reused_run_id"]  # same copy: the consumer is reused too

    azfs.pipe(f"{container}/raw/part-1.csv", b"changed")
    status, run3 = env.run("blob-to-local", steps)
    assert status == "Finished"
    assert not env.step_row(run3, "blob_to_local")["reused_run_id"]
    assert (env.root / "landing" / "raw" / "part-1.csv").read_bytes() == b"changed"
    assert not env.step_row(run3, "count")["reused_run_id"]


def test_local_to_s3_then_s3_to_blob_keeps_the_bytes(env):
    src = env.root / "to_ship"
    for i in range(5):
        (src / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 2}" / f"f{i}.bin").write_bytes(os.urandom(100_000 * (i + 1)))
    local = Datastore.register(env.ws, "shipping", str(src))
    bucket = new_bucket(env.moto_s3)
    lake = Datastore.register_s3_bucket(env.ws, "lake", bucket_name=bucket,
                                        access_key_id=env.moto_s3.access_key_id,
                                        secret_access_key=env.moto_s3.secret_access_key,
                                        endpoint_url=env.moto_s3.endpoint_url)
    container = new_container(env.azurite)
    archive = Datastore.register_azure_blob_container(
        env.ws, "archive", container_name=container, account_name=env.azurite.account_name,
        account_key=env.azurite.account_key, protocol="http", endpoint=env.azurite.host)
    to_s3 = DataTransferStep("local_to_s3", DataReference(local, "ship", ""), DataReference(lake, "lk", "in/ship"),
                             env.adf)
    to_blob = DataTransferStep("s3_to_blob", to_s3.get_output(), DataReference(archive, "ar", "copies/ship"), env.adf)
    status, run = env.run("ship", [to_s3, to_blob])
    assert status == "Finished", [env.step_row(run, t).get("error") for t in ("local_to_s3", "s3_to_blob")]
    expected = _files(src)
    s3 = env.moto_s3.filesystem()
    azfs = env.azurite.filesystem()
    for fs, root in ((s3, f"{bucket}/in/ship"), (azfs, f"{container}/copies/ship")):
        for rel, data in expected.items():
            assert fs.cat(f"{root}/{rel}") == data, (root, rel)
    # our readers see exactly the committed files (the manifest, written last, publishes the folder)
    listed = archive.download(str(env.root / "fetched"), prefix="copies/ship", show_progress=False)
    assert listed == len(expected)
    assert _files(env.root / "fetched" / "copies" / "ship") == expected


@pytest.fixture
def pg_table():
    name = f"passengers_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(PG_URL)
    frame = pd.DataFrame({"id": pd.array(range(1, 201), dtype="int64"),
                          "fare": [i * 1.5 for i in range(200)],
                          "name": [f"p{i}" if i % 7 else None for i in range(200)],
                          "survived": [bool(i % 2) for i in range(200)],
                          "boarded": pd.date_range("1912-04-10", periods=200, freq="h")})
    frame.to_sql(name, engine, index=False)
    yield name, frame, engine
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


def test_postgres_to_parquet_to_mariadb(env, pg_table):
    table, frame, pg = pg_table
    warehouse = Datastore.register_azure_postgre_sql(env.ws, "warehouse", server_name="127.0.0.1",
                                                     database_name="test", user_id="postgres",
                                                     user_password="trust-auth-ignores-it", port_number=5432)
    mart = Datastore.register_azure_my_sql(env.ws, "mart", server_name="127.0.0.1", database_name="test",
                                           user_id="root", user_password="", port_number=3306)
    local = Datastore.register(env.ws, "exports", str(env.root / "exports"))
    query = f'SELECT * FROM "{table}" WHERE id <= 150 ORDER BY id'
    export = DataTransferStep("pg_to_parquet", SqlDataReference(warehouse, sql_query=query),
                              DataReference(local, "pq", f"{table}/rows.parquet"), env.adf)
    target = f"loaded_{table}"
    load = DataTransferStep("parquet_to_mariadb", export.get_output(), SqlDataReference(mart, sql_table=target),
                            env.adf, sql_write_mode="replace")
    steps = [export, load]
    try:
        status, run1 = env.run("sql-roundtrip", steps)
        assert status == "Finished", [env.step_row(run1, t).get("error") for t in ("pg_to_parquet",
                                                                                    "parquet_to_mariadb")]
        written = pq.read_table(env.root / "exports" / table / "rows.parquet")
        assert written.num_rows == 150
        assert written.schema.field("id").type == pa.int64() and written.schema.field("survived").type == pa.bool_()
        my = sa.create_engine(MARIADB_URL)
        loaded = pd.read_sql(f"SELECT * FROM `{target}` ORDER BY id", my)
        expected = frame[frame.id <= 150].reset_index(drop=True)
        assert loaded["id"].tolist() == expected["id"].tolist()
        assert loaded["name"].tolist() == expected["name"].tolist()
        assert loaded["fare"].tolist() == pytest.approx(expected["fare"].tolist())
        assert [bool(v) for v in loaded["survived"]] == expected["survived"].tolist()
        assert pd.to_datetime(loaded["boarded"]).tolist() == expected["boarded"].tolist()

        # unchanged query result: the export runs (a query is known only by reading it) but the load is reused
        status, run2 = env.run("sql-roundtrip", steps)
        assert status == "Finished"
        assert not env.step_row(run2, "pg_to_parquet")["reused_run_id"]
        assert env.step_row(run2, "parquet_to_mariadb")["reused_run_id"]
        assert (env.step_row(run2, "pg_to_parquet")["outputs"]["_data_transfer_output"]["content_hash"]
                == env.step_row(run1, "pg_to_parquet")["outputs"]["_data_transfer_output"]["content_hash"])

        with pg.begin() as conn:
            conn.execute(sa.text(f'UPDATE "{table}" SET fare = -1 WHERE id = 3'))
        status, run3 = env.run("sql-roundtrip", steps)
        assert status == "Finished"
        assert not env.step_row(run3, "parquet_to_mariadb")["reused_run_id"]
        assert pd.read_sql(f"SELECT fare FROM `{target}` WHERE id = 3", my)["fare"].tolist() == [-1.0]
    finally:
        with sa.create_engine(MARIADB_URL).begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS `{target}`"))


def test_errors_name_the_datastore_and_the_path(env):
    container = new_container(env.azurite)
    blob = Datastore.register_azure_blob_container(
        env.ws, "errblob", container_name=container, account_name=env.azurite.account_name,
        account_key=env.azurite.account_key, protocol="http", endpoint=env.azurite.host)
    local = Datastore.register(env.ws, "errlocal", str(env.root / "errlocal"))
    missing = DataTransferStep("missing_source", DataReference(blob, "nope", "not/there"),
                               DataReference(local, "d", "x"), env.adf)
    status, run = env.run("errors", [missing])
    assert status == "Failed"
    error = env.step_row(run, "missing_source")["error"]
    assert "not/there" in error and (container in error or "errblob" in error), error

    wrong = Datastore.register_azure_blob_container(
        env.ws, "wrongkey", container_name=container, account_name=env.azurite.account_name,
        account_key="d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=", protocol="http", endpoint=env.azurite.host,
        skip_validation=True)
    denied = DataTransferStep("bad_credentials", DataReference(wrong, "w", "any"), DataReference(local, "d2", "y"),
                              env.adf)
    status, run = env.run("errors-creds", [denied])
    assert status == "Failed"
    error = env.step_row(run, "bad_credentials")["error"]
    assert "wrongkey" in error or container in error, error
    assert "d3Jvbmcta2V5" not in error


def test_datapath_parameters_over_rest(env):
    src = env.root / "param_src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "one.txt").write_text("one")
    (src / "b").mkdir()
    (src / "b" / "two.txt").write_text("two")
    local = Datastore.register(env.ws, "params_src", str(src))
    out = Datastore.register(env.ws, "params_dst", str(env.root / "param_dst"))
    source = (PipelineParameter("source_path", default_value=DataPath(local, "a")), DataPathComputeBinding())
    dest = (PipelineParameter("dest_path", default_value=DataPath(out, "from_a")), DataPathComputeBinding())
    published = Pipeline(env.ws, [DataTransferStep("copy", source, dest, env.adf)]).publish("copy_by_path")
    token = admin_token(env.info)
    r = http.post(published.endpoint, headers=bearer(token), json={
        "ExperimentName": "by-path",
        "DataPathAssignments": {"source_path": {"DataStoreName": "params_src", "RelativePath": "b"},
                                "dest_path": {"DataStoreName": "params_dst", "RelativePath": "from_b"}}})
    assert r.status_code == 200, r.text
    final = wait_v1_run(env.info.url, lambda: bearer(token), r.json()["Id"], timeout=240)
    assert final["Status"]["StatusCode"] == "Finished", final
    assert (env.root / "param_dst" / "from_b" / "two.txt").read_text() == "two"
    assert not (env.root / "param_dst" / "from_a").exists()

    bad = http.post(published.endpoint, headers=bearer(token), json={
        "ExperimentName": "by-path",
        "DataPathAssignments": {"dest_path": {"DataStoreName": "params_dst", "RelativePath": "../../escape"}}})
    assert bad.status_code == 400 and "dest_path" in bad.text, bad.text
    unknown = http.post(published.endpoint, headers=bearer(token), json={
        "ExperimentName": "by-path",
        "DataPathAssignments": {"dest_path": {"DataStoreName": "no_such_store", "RelativePath": "x"}}})
    assert unknown.status_code == 400 and "no_such_store" in unknown.text, unknown.text
