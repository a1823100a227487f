"""The embedded Airflow keeps its home private: home 0700, airflow.cfg / airflow.db / secrets 0600, logs 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from airflow_mlpipe.workspace import Workspace

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(300)]

DAG_ID = "mlpipe_it_private_files"
DAG_FILE = f'''
from airflow.sdk import dag, task


@dag(dag_id="{DAG_ID}", schedule=None, catchup=False)
def private_files():
    @task
    def hello():
        print("hello")

    hello()


private_files()
'''


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    old_umask = os.umask(0o022)  # as on most desktops: only our code can make the files private
    root = tmp_path_factory.mktemp("private_files")
    dags = root / "dags"
    dags.mkdir()
    (dags / "private_files.py").write_text(DAG_FILE)
    ws = Workspace(home=root / ".mlpipe")
    try:
        info = local_airflow.start(ws, dags_folder=dags, port=local_airflow._free_port(), timeout=150)
        client = AirflowClient(info.url, info.username, info.password)
        yield ws, client
        client.close()
    finally:
        local_airflow.stop(ws, timeout=20)
        os.umask(old_umask)


def test_home_config_db_secrets_and_logs_are_private(embedded):
    ws, client = embedded
    client.wait_for_dag(DAG_ID, predicate=lambda d: not d.get("is_paused"), timeout=60)
    run = client.trigger(DAG_ID, {}, dag_run_id="private_files_1")
    assert client.wait_for_dag_run(DAG_ID, run["dag_run_id"], timeout=90, interval=0.2)["state"] == "success"

    home = ws.airflow_home
    assert _mode(ws.home) == 0o700 and _mode(home) == 0o700
    for name in ("airflow.cfg", "airflow.db", local_airflow.SECRETS_FILE, local_airflow.PASSWORDS_FILE):
        assert (home / name).is_file(), name
        assert _mode(home / name) == 0o600, name
    for companion in ("airflow.db-wal", "airflow.db-shm", "airflow.db-journal"):
        if (home / companion).exists():
            assert _mode(home / companion) & 0o077 == 0, companion
    logs = home / "logs"
    folders = [logs, *(p for p in logs.rglob("*") if p.is_dir())]
    assert any(p.name.startswith("dag_id=") for p in folders), "the task wrote no log folder"
    assert {str(p): oct(_mode(p)) for p in folders if _mode(p) != 0o700} == {}
    task_logs = [p for p in logs.rglob("*") if p.is_file() and "dag_id=" in str(p)]
    assert task_logs and {str(p): oct(_mode(p)) for p in task_logs if _mode(p) & 0o077} == {}
