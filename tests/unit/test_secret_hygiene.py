"""Secret hygiene: step scripts see no worker secrets unless they ask, datastores refuse credentials, and the
workspace's files are private."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.sdk.datastore import Datastore

# --------------------------------------------------------------------------------------- step environment
WITHHELD = {
    "AIRFLOW_CONN_MY_DB": "s3cr3t-01",
    "AIRFLOW_VAR_API_CONFIG": "s3cr3t-02",
    "AIRFLOW__CORE__FERNET_KEY": "s3cr3t-03",
    "AIRFLOW__API_AUTH__JWT_SECRET": "s3cr3t-04",
    "AIRFLOW__API__SECRET_KEY": "s3cr3t-05",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "s3cr3t-06",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "s3cr3t-07",
    "AIRFLOW__CELERY__BROKER_URL": "s3cr3t-08",
    "AIRFLOW__CELERY__BROKER_URL_SECRET": "s3cr3t-09",
    "AIRFLOW__CELERY__RESULT_BACKEND": "s3cr3t-10",
    "AIRFLOW__SECRETS__BACKEND_KWARGS": "s3cr3t-kw",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t-11",
    "AWS_ACCESS_KEY_ID": "s3cr3t-12",
    "AWS_SESSION_TOKEN": "s3cr3t-13",
    "AZURE_STORAGE_KEY": "s3cr3t-14",
    "AZURE_STORAGE_CONNECTION_STRING": "s3cr3t-15",
    "AZURE_STORAGE_SAS_TOKEN": "s3cr3t-16",
    "AZURE_CLIENT_SECRET": "s3cr3t-17",
    "DATABRICKS_TOKEN": "s3cr3t-18",
    "GITHUB_TOKEN": "s3cr3t-19",
    "OPENAI_API_KEY": "s3cr3t-20",
    "SSH_PRIVATE_KEY": "s3cr3t-21",
    "DB_PASSWORD": "s3cr3t-22",
    "PGPASSWORD": "s3cr3t-23",
    "MYSQL_PWD": "s3cr3t-24",
    "LDAP_PASSWD": "s3cr3t-25",
    "GOOGLE_APPLICATION_CREDENTIALS": "s3cr3t-26",
    "MLPIPE_AIRFLOW_PASSWORD": "s3cr3t-27",
}
KEPT = {
    "PATH": "/usr/bin", "HOME": "/home/u", "PWD": "/work", "OLDPWD": "/tmp", "LANG": "C.UTF-8",
    "TOKENIZERS_PARALLELISM": "false", "AIRFLOW_HOME": "/af", "AIRFLOW__CORE__DAGS_FOLDER": "/dags",
    "AIRFLOW__API__BASE_URL": "http://127.0.0.1:8080", "MLPIPE_WORKSPACE_HOME": "/ws/.mlpipe",
    "MLPIPE_STORE_URL": "sqlite:////ws/.mlpipe/mlpipe.db", "KEYBOARD": "us", "SSH_AUTH_SOCK": "/tmp/agent",
}


def _step(variables: dict[str, str] | None = None) -> dict:
    return {"name": "train", "runconfig": {"environment": {"environment_variables": variables or {}}}}


def test_env_builder_withholds_secrets_and_keeps_the_rest(caplog):
    from airflow_mlpipe.runtime.step_env import step_environment

    with caplog.at_level(logging.INFO, logger="t"):
        env = step_environment(_step(), logging.getLogger("t"), worker={**WITHHELD, **KEPT})
    assert env == KEPT
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records and len(caplog.records) == 1
    for name, value in WITHHELD.items():
        assert name in logged and value not in logged


def test_env_builder_passes_what_the_step_asks_for(caplog):
    from airflow_mlpipe.runtime.step_env import step_environment
    from airflow_mlpipe.runtime.step_runner import StepFailed

    asked = {"AIRFLOW_CONN_MY_DB": "$AIRFLOW_CONN_MY_DB", "TOKEN_FOR_S3": "${AWS_SESSION_TOKEN}",
             "DB_PASSWORD": "explicit", "MODE": "fast"}
    with caplog.at_level(logging.INFO, logger="t"):
        env = step_environment(_step(asked), logging.getLogger("t"), fixed={"PYTHONUNBUFFERED": "1"},
                               worker={**WITHHELD, **KEPT})
    assert env["AIRFLOW_CONN_MY_DB"] == WITHHELD["AIRFLOW_CONN_MY_DB"]
    assert env["TOKEN_FOR_S3"] == WITHHELD["AWS_SESSION_TOKEN"]
    assert env["DB_PASSWORD"] == "explicit" and env["MODE"] == "fast" and env["PYTHONUNBUFFERED"] == "1"
    assert "AWS_SESSION_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    logged = caplog.records[0].getMessage()
    assert "AIRFLOW_CONN_MY_DB" not in logged and "DB_PASSWORD" not in logged and "AWS_SESSION_TOKEN" in logged
    with pytest.raises(StepFailed, match=r"'train'.*NOT_ON_WORKER=\$NOT_ON_WORKER"):
        step_environment(_step({"NOT_ON_WORKER": "$NOT_ON_WORKER"}), logging.getLogger("t"), worker=KEPT)


DUMP_ENV = """
import json, os, sys
os.makedirs(sys.argv[1], exist_ok=True)
json.dump(dict(os.environ), open(os.path.join(sys.argv[1], "env.json"), "w"))
"""


def test_step_script_sees_only_what_it_asked_for(run_dag, workspace, tmp_path, monkeypatch):
    from airflow_mlpipe import Pipeline, PipelineData, PythonScriptStep, RunConfiguration

    monkeypatch.setenv("AIRFLOW_CONN_MLPIPE_HYGIENE", "postgres://u:conn-secret@h/db")
    monkeypatch.setenv("AIRFLOW_VAR_MLPIPE_HYGIENE", "var-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("MLPIPE_HYGIENE_TOKEN", "asked-for-token")
    src = tmp_path / "steps"
    src.mkdir()
    (src / "dump_env.py").write_text(DUMP_ENV)
    out = PipelineData("env_dump")
    rc = RunConfiguration()
    rc.environment_variables = {"MLPIPE_HYGIENE_TOKEN": "$MLPIPE_HYGIENE_TOKEN", "EXPLICIT_SETTING": "on"}
    step = PythonScriptStep("dump_env.py", name="dump", arguments=[out], outputs=[out], source_directory=str(src),
                            runconfig=rc, allow_reuse=False)
    dr = run_dag(Pipeline(workspace, steps=[step]), "secret_hygiene",
                 {"__mlpipe": {"run_id": "run-hygiene", "experiment": "hygiene"}})
    assert dr.state == "success"
    value = workspace.store.get_step_run("run-hygiene.dump")["outputs"]["env_dump"]
    seen = json.loads((Path(Datastore.get(workspace, value["datastore"]).full_path(value["path"])) / "env.json")
                      .read_text())
    assert "AIRFLOW_CONN_MLPIPE_HYGIENE" not in seen
    assert "AIRFLOW_VAR_MLPIPE_HYGIENE" not in seen
    assert "AWS_SECRET_ACCESS_KEY" not in seen
    assert not any(k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")) for k in seen)
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in seen  # set by the test session for Airflow
    assert seen["MLPIPE_HYGIENE_TOKEN"] == "asked-for-token" and seen["EXPLICIT_SETTING"] == "on"
    assert seen["PATH"] == os.environ["PATH"]
    assert "conn-secret" not in json.dumps(seen) and "aws-secret" not in json.dumps(seen)


# --------------------------------------------------------------------------------------- datastore registration
REFUSED_URLS = [
    ("s3://bucket/x?X-Amz-Signature=abc123", "X-Amz-Signature"),
    ("s3://bucket/x?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F2024", "X-Amz-Credential"),
    ("s3://bucket/x?x-amz-security-token=tok123", "x-amz-security-token"),
    ("s3://bucket/x?AWSAccessKeyId=AKIA&Expires=1&Signature=abc123", "AWSAccessKeyId"),
    ("abfs://c@acct.dfs.core.windows.net/p?sv=2022-11-02&se=2030-01-01&sp=r&sig=abc123", "sig"),
    ("s3://bucket/x?access_key=abc123", "access_key"),
    ("s3://bucket/x?SECRET_KEY=abc123", "SECRET_KEY"),
    ("gs://bucket/x?key=abc123", "key"),
    ("sftp://host/data?pwd=abc123", "pwd"),
    ("sftp://host/data?Password=abc123", "Password"),
    ("gs://bucket/x?token=abc123", "token"),
    ("abfs://c@acct.dfs.core.windows.net/p?AccountKey=abc123", "AccountKey"),
    ("abfs://c@acct.dfs.core.windows.net/p?SharedAccessSignature=abc123", "SharedAccessSignature"),
    ("abfs://c@acct.dfs.core.windows.net/p?client_secret=abc123", "client_secret"),
    ("abfs://c@acct.dfs.core.windows.net/p;AccountName=acct;AccountKey=abc123", "AccountKey"),
    ("s3://bucket/x#sig=abc123", "sig"),
    ("s3://user:abc123@bucket/x", "user:password@host"),
    ("sftp://me:abc123@host/data", "user:password@host"),
]


@pytest.mark.parametrize(("url", "named"), REFUSED_URLS)
def test_register_refuses_credentials_in_urls(workspace, url, named):
    with pytest.raises(UserErrorException) as err:
        Datastore.register(workspace, "lake", url, conn_id="aws_default")
    message = str(err.value)
    assert "'lake'" in message and named in message and "Airflow Connection" in message and "conn_id" in message
    assert "abc123" not in message
    assert "lake" not in {n.lower() for n in Datastore.list(workspace)}


REFUSED_OPTIONS = [
    ({"key": "AKIA"}, "key"),
    ({"secret": "abc123"}, "secret"),
    ({"token": "abc123"}, "token"),
    ({"password": "abc123"}, "password"),
    ({"aws_secret_access_key": "abc123"}, "aws_secret_access_key"),
    ({"account_key": "abc123"}, "account_key"),
    ({"sas_token": "abc123"}, "sas_token"),
    ({"connection_string": "AccountKey=abc123"}, "connection_string"),
    ({"credential": "abc123"}, "credential"),
    ({"client_secret": "abc123"}, "client_secret"),
    ({"client_kwargs": {"region_name": "eu", "aws_secret_access_key": "abc123"}},
     "client_kwargs.aws_secret_access_key"),
    ({"config_kwargs": {"s3": {"session_token": "abc123"}}}, "config_kwargs.s3.session_token"),
    ({"storage_options": {"account_key": "abc123"}}, "storage_options.account_key"),
    ({"s3_additional_kwargs": {"SSECustomerKey": "abc123"}}, "s3_additional_kwargs.SSECustomerKey"),
    ({"client_kwargs": {"endpoint_url": "http://minio:abc123@127.0.0.1:9000"}}, "client_kwargs.endpoint_url"),
    ({"headers": [{"Authorization-Token": "abc123"}]}, "headers[0].Authorization-Token"),
]


@pytest.mark.parametrize(("options", "path"), REFUSED_OPTIONS)
def test_register_refuses_credentials_in_nested_storage_options(workspace, options, path):
    with pytest.raises(UserErrorException) as err:
        Datastore.register(workspace, "lake", "memory://lake", storage_options=options)
    message = str(err.value)
    assert "'lake'" in message and f"'{path}" in message
    assert "Airflow Connection" in message and "conn_id" in message and "abc123" not in message


def test_register_keeps_non_secret_urls_and_options(workspace):
    options = {"anon": True, "token": "anon", "sse_kms_key_id": "alias/k", "key_file_hint": None,
               "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}}
    store = Datastore.register(workspace, "lake", "memory://lake/t/key=5?versionId=3", storage_options=options)
    assert store.url == "memory://lake/t/key=5?versionId=3" and store._options == options


# --------------------------------------------------------------------------------------- private files
@pytest.fixture
def open_umask():
    """A permissive umask, as on most desktops, so that only our code can make files private."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fresh_workspace_and_store_are_private(tmp_path, open_umask, monkeypatch):
    from airflow_mlpipe.workspace import Workspace

    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    assert ws.home == tmp_path / ".mlpipe" and _mode(ws.home) == 0o700
    ws.store.upsert_pipeline_run("r1", experiment="e", dag_id="d", status="Running")
    db = ws.home / "mlpipe.db"
    assert _mode(db) == 0o600
    for companion in (ws.home / "mlpipe.db-wal", ws.home / "mlpipe.db-shm"):
        if companion.exists():
            assert _mode(companion) == 0o600, companion
    assert _mode(Path(ws.write_config(tmp_path / "other")).parent) == 0o700


def test_existing_workspace_is_tightened_when_opened(tmp_path, open_umask):
    from airflow_mlpipe.store.db import Store
    from airflow_mlpipe.workspace import Workspace

    home = tmp_path / "old" / ".mlpipe"
    home.mkdir(parents=True, mode=0o755)
    db = home / "mlpipe.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    ws = Workspace(home=home)
    Store(ws.store_url)
    assert _mode(home) == 0o700 and _mode(db) == 0o600
