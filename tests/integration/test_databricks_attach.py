"""Attaching a Databricks target against a real embedded Airflow: the Airflow connection points at the
workspace's emulator with the token as password, the provider's hook reaches it, and the token is nowhere in
the workspace store; ``mlpipe databricks start|status|import|stop`` from a shell."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from airflow_mlpipe import ComputeTarget, DatabricksCompute, Workspace
from airflow_mlpipe.cli import main
from airflow_mlpipe.clients import databricks_connection as dbc
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowAPIError, AirflowClient
from tests.helpers.embedded import embedded_airflow, working_directory
from tests.helpers.secrets import files_holding

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(300)]

TOKEN = "dapi-secret-123"
CONN_ID = "mlpipe_databricks_dbcompute"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    root = tmp_path_factory.mktemp("databricks_attach")
    (root / "dags").mkdir()
    with working_directory(root):
        ws = Workspace.from_config()  # what `mlpipe` finds from this folder
    try:
        with embedded_airflow(ws, root / "dags") as info, AirflowClient(info.url, info.username,
                                                                         info.password) as client:
            yield root, ws, client
    finally:
        dbc.stop_emulator(ws)


def _stored_connection(ws: Workspace, conn_id: str) -> dict:
    """The connection as Airflow itself resolves it, password included (the REST API masks it)."""
    env = local_airflow.process_env(local_airflow.airflow_env(ws))
    proc = subprocess.run([*local_airflow.airflow_cmd(), "connections", "get", conn_id, "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout[proc.stdout.index("["):])[0]
    return {**row, "port": int(row["port"]) if row.get("port") else None}  # the CLI prints it as a string


def _provider_dbfs_root(monkeypatch, conn: dict) -> dict:
    """The Airflow Databricks provider's own hook, with the connection Airflow holds (as its URI)."""
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    monkeypatch.setenv("AIRFLOW_CONN_MLPIPE_PROBE", conn["get_uri"])
    return DatabricksHook("mlpipe_probe", retry_limit=1)._do_api_call(("GET", "2.0/dbfs/get-status"), {"path": "/"})


def _cli(root: Path, capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with working_directory(root):
        code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_attach_writes_a_connection_to_the_emulator(embedded, monkeypatch, capsys):
    root, ws, client = embedded
    config = DatabricksCompute.attach_configuration(resource_group="rg", workspace_name="dbws",
                                                    access_token=TOKEN)
    target = ComputeTarget.attach(ws, "dbcompute", config)
    assert isinstance(target, DatabricksCompute)

    port = dbc.saved_port(dbc.emulator_home(ws))
    shown = client.get_connection(CONN_ID)
    assert (shown["conn_type"], shown["host"], shown["schema"], shown["port"]) == (
        "databricks", "127.0.0.1", "http", port)
    assert json.loads(shown["extra"]) == {"mlpipe_emulator_home": str(dbc.emulator_home(ws))}
    stored = _stored_connection(ws, CONN_ID)
    assert stored["password"] == TOKEN

    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    assert _provider_dbfs_root(monkeypatch, stored)["is_dir"] is True

    record = json.loads(ws.store.get_setting("compute:dbcompute"))
    assert record["conn_id"] == CONN_ID and record["emulator"] is True
    assert record["host"] == f"http://127.0.0.1:{port}" and record["workspace_name"] == "dbws"
    every_setting = ws.store.settings_with_prefix("")
    assert every_setting and not [k for k, v in every_setting.items() if TOKEN in k or TOKEN in v]
    # the store, the emulator's files, and Airflow's own (its database encrypts passwords)
    assert files_holding(ws.home, TOKEN) == []

    code, out, _ = _cli(root, capsys, "databricks", "status")
    assert code == 0 and str(port) in out


def test_attach_again_keeps_the_host_and_replaces_the_token(embedded):
    _, ws, client = embedded
    port = dbc.saved_port(dbc.emulator_home(ws))
    ComputeTarget.attach(ws, "dbcompute", DatabricksCompute.attach_configuration(
        resource_group="rg", workspace_name="dbws", access_token="dapi-rotated-456"))
    stored = _stored_connection(ws, CONN_ID)
    assert (stored["host"], stored["port"], stored["password"]) == ("127.0.0.1", port, "dapi-rotated-456")
    record = json.loads(ws.store.get_setting("compute:dbcompute"))
    assert record["emulator"] is True and record["host"] == f"http://127.0.0.1:{port}"

    # a v1 sample's placeholder: the emulator still gets a connection, with a generated token
    ComputeTarget.attach(ws, "sample", DatabricksCompute.attach_configuration(
        workspace_name="dbws", access_token="<databricks_access_token>"))
    sample = _stored_connection(ws, "mlpipe_databricks_sample")
    assert sample["port"] == port and sample["password"]
    assert not dbc.is_placeholder_token(sample["password"])


def test_a_rejected_connection_never_shows_its_password(embedded):
    _, _, client = embedded
    with pytest.raises(AirflowAPIError) as err:
        client.put_connection({"connection_id": "not a valid id!", "conn_type": "databricks",
                               "password": "leak-me-42", "port": "leak-me-42"})
    assert err.value.status == 422
    assert "leak-me-42" not in str(err.value) and "leak-me-42" not in repr(err.value.detail)


def test_cli_start_status_import_stop(embedded, capsys, tmp_path):
    root, ws, client = embedded
    code, out, err = _cli(root, capsys, "databricks", "start", "--conn-id", "my_emulator")
    assert code == 0, err
    port = dbc.saved_port(dbc.emulator_home(ws))
    assert f"port:       {port}" in out and "my_emulator" in out
    shown = client.get_connection("my_emulator")
    assert (shown["host"], shown["schema"], shown["port"]) == ("127.0.0.1", "http", port)

    notebook = tmp_path / "aggregate.py"
    notebook.write_text("# Databricks notebook source\nprint('hello')\n")
    code, out, err = _cli(root, capsys, "databricks", "import", str(notebook), "/Users/me/aggregate")
    assert code == 0, err
    status = httpx.get(f"http://127.0.0.1:{port}/api/2.0/workspace/get-status",
                       params={"path": "/Users/me/aggregate"}, headers={"Authorization": "Bearer any"}).json()
    assert status["object_type"] == "NOTEBOOK" and status["path"] == "/Users/me/aggregate"
    code, _, err = _cli(root, capsys, "databricks", "import", str(notebook), "/Users/me/aggregate",
                        "--no-overwrite")
    assert code == 1 and "/Users/me/aggregate" in err

    code, out, _ = _cli(root, capsys, "databricks", "stop")
    assert code == 0 and "Stopped" in out
    code, out, _ = _cli(root, capsys, "databricks", "status")
    assert code == 3 and "not running" in out

    code, out, err = _cli(root, capsys, "databricks", "start")  # back on the port connections point at
    assert code == 0, err
    assert f"port:       {port}" in out and dbc.EMULATOR_CONN_ID in out
    assert client.get_connection(dbc.EMULATOR_CONN_ID)["port"] == port
