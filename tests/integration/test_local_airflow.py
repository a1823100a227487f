"""The embedded Airflow with real processes: start, REST client, trigger, XCom, auth, loopback only, stop."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowAPIError, AirflowClient
from airflow_mlpipe.workspace import ENV_WORKSPACE_HOME, Workspace

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(300)]

DAG_ID = "mlpipe_it_two_task"
DAG_FILE = f'''
from airflow.sdk import dag, task


@dag(dag_id="{DAG_ID}", schedule=None, catchup=False, tags=["mlpipe-test"])
def two_task():
    @task
    def first(**context):
        return {{"x": context["dag_run"].conf.get("x", 0)}}

    @task
    def second(value):
        return value["x"] * 2

    second(first())


two_task()
'''

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    root = tmp_path_factory.mktemp("local_airflow")
    dags = root / "dags"
    dags.mkdir()
    (dags / "mlpipe_it_two_task.py").write_text(DAG_FILE)
    ws = Workspace(home=root / ".mlpipe")
    port = local_airflow._free_port()
    t0 = time.monotonic()
    try:
        info = local_airflow.start(ws, dags_folder=dags, port=port, timeout=150)
    except Exception:
        local_airflow.stop(ws, timeout=10)
        raise
    TIMINGS["start_to_healthy_s"] = time.monotonic() - t0
    client = AirflowClient(info.url, info.username, info.password)
    yield ws, info, client
    client.close()
    local_airflow.stop(ws, timeout=20)


def test_healthy_and_idempotent(embedded):
    ws, info, client = embedded
    health = client.health()
    assert health["scheduler"]["status"] == "healthy"
    assert health["dag_processor"]["status"] == "healthy"
    assert health["metadatabase"]["status"] == "healthy"
    assert info.url == f"http://127.0.0.1:{info.port}"
    assert info.password and info.password == local_airflow.admin_password(ws)
    assert set(info.pids) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    assert (ws.airflow_home / local_airflow.STATE_FILE).is_file()
    assert local_airflow.submitted_dags_folder(ws).is_dir()
    t0 = time.monotonic()
    again = local_airflow.start(ws)
    assert again.pids == info.pids and again.port == info.port
    assert time.monotonic() - t0 < 5
    assert local_airflow.status(ws).pids == info.pids
    print(f"\nstart-to-healthy: {TIMINGS['start_to_healthy_s']:.1f} s")


def test_env_is_loopback_and_workspace_bound(embedded):
    ws, info, _ = embedded
    env = local_airflow.airflow_env(ws, dags_folder=info.dags_folder, port=info.port)
    assert env["AIRFLOW_HOME"] == str(ws.airflow_home)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{info.port}/execution/"
    assert env[ENV_WORKSPACE_HOME] == str(ws.home)
    assert "mlpipe-submitted" in env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]


def test_unauthenticated_is_rejected(embedded):
    _, info, _ = embedded
    resp = httpx.get(f"{info.url}/api/v2/dags", timeout=10)
    assert resp.status_code == 401
    bad = AirflowClient(info.url, username="admin", password="wrong")
    with pytest.raises(AirflowAPIError) as err:
        bad.get_dag(DAG_ID)
    assert err.value.status == 401


def test_trigger_poll_xcom_logs(embedded):
    _, _, client = embedded
    details = client.wait_for_dag(DAG_ID, predicate=lambda d: not d.get("is_paused"), timeout=60)
    assert details["dag_id"] == DAG_ID and details["file_token"]
    assert client.get_dag("no_such_dag_xyz") is None

    durations = []
    for i, x in enumerate((21, 5)):
        t0 = time.monotonic()
        run = client.trigger(DAG_ID, {"x": x}, dag_run_id=f"it_run_{i}+a:b", note="from test")
        assert run["state"] == "queued" and run["conf"] == {"x": x}
        final = client.wait_for_dag_run(DAG_ID, run["dag_run_id"], timeout=90, interval=0.1)
        durations.append(time.monotonic() - t0)
        assert final["state"] == "success", final
        assert client.xcom(DAG_ID, run["dag_run_id"], "second", "return_value") == 2 * x
    TIMINGS["trigger_to_success_s"] = durations
    print(f"\n2-task DAG trigger-to-success: {', '.join(f'{d:.2f}' for d in durations)} s")

    tis = client.task_instances(DAG_ID, "it_run_1+a:b")
    assert {t["task_id"]: t["state"] for t in tis} == {"first": "success", "second": "success"}
    runs = client.list_dag_runs(DAG_ID, limit=10, order_by="-run_after")
    assert [r["dag_run_id"] for r in runs][:2] == ["it_run_1+a:b", "it_run_0+a:b"]
    log_text = client.task_log(DAG_ID, "it_run_1+a:b", "second", 1)
    assert "Returned value was: 10" in log_text
    assert isinstance(client.import_errors(), list)

    with pytest.raises(AirflowAPIError) as err:
        client.trigger(DAG_ID, {"x": 1}, dag_run_id="it_run_0+a:b")  # duplicate run id
    assert err.value.status == 409 and "dagRuns" in err.value.path

    # cancel: a queued run on a paused DAG can be marked failed
    client.pause(DAG_ID)
    try:
        run = client.trigger(DAG_ID, {"x": 1}, dag_run_id="it_cancel")
        assert client.set_dag_run_state(DAG_ID, run["dag_run_id"], "failed")["state"] == "failed"
        assert client.get_dag_run(DAG_ID, "it_cancel")["state"] == "failed"
    finally:
        client.unpause(DAG_ID)


def test_cli_status(embedded, monkeypatch, capsys):
    ws, info, _ = embedded
    from airflow_mlpipe import cli

    monkeypatch.setenv(ENV_WORKSPACE_HOME, str(ws.home))
    assert cli.main(["airflow", "status"]) == 0
    out = capsys.readouterr().out
    assert info.url in out and info.password in out


def _group_pids(pgids: set[int]) -> set[int]:
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) in pgids:
                    pids.add(int(proc.name))
            except OSError:
                pass
    return pids


def test_listens_on_loopback_only(embedded):
    _, info, _ = embedded
    assert shutil.which("ss"), "iproute2's ss is required to check listening sockets (apt-get install iproute2)"
    ours = _group_pids(set(info.pids.values()))
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    listening = []
    for line in out.splitlines():
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if pids & ours:
            local = line.split()[3]
            listening.append(local)
    assert f"127.0.0.1:{info.port}" in listening, (listening, out)
    exposed = [a for a in listening if not (a.startswith("127.") or a.startswith("[::1]"))]
    assert not exposed, f"components listen outside loopback: {exposed}"


def test_zz_stop_kills_everything(embedded):
    ws, info, _ = embedded
    pgids = set(info.pids.values())
    assert _group_pids(pgids)
    t0 = time.monotonic()
    assert local_airflow.stop(ws, timeout=20) is True
    print(f"\nstop: {time.monotonic() - t0:.1f} s")
    for pid in info.pids.values():
        assert not local_airflow._pid_alive(pid), pid
    left = [p for p in _group_pids(pgids) if local_airflow._pid_alive(p)]
    assert not left, f"stragglers: {left}"
    assert local_airflow.status(ws) is None
    assert not (ws.airflow_home / local_airflow.STATE_FILE).exists()
    assert local_airflow.stop(ws) is False
