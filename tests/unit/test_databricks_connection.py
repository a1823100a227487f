"""How a Databricks target finds its host and token, and the emulator's stable port (no Airflow needed)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from airflow_mlpipe.clients import databricks_connection as dbc
from airflow_mlpipe.contract.exceptions import ComputeTargetException
from airflow_mlpipe.data.workspace_location import WorkspaceLocation

ADB = "https://adb-123.azuredatabricks.net"


@pytest.fixture(autouse=True)
def _no_host_override(monkeypatch):
    monkeypatch.delenv(dbc.ENV_DATABRICKS_HOST, raising=False)


def _ws(tmp_path, **config) -> WorkspaceLocation:
    return WorkspaceLocation(home=tmp_path / ".mlpipe", config=config)


def test_default_conn_id_is_a_valid_lower_case_airflow_id():
    assert dbc.default_conn_id("dbcompute") == "mlpipe_databricks_dbcompute"
    assert dbc.default_conn_id("My-Cluster.01 x") == "mlpipe_databricks_my_cluster_01_x"


def test_emulator_home_is_under_the_workspace_home(tmp_path):
    ws = _ws(tmp_path)
    assert dbc.emulator_home(ws) == (tmp_path / ".mlpipe" / "databricks-emulator").resolve()


@pytest.mark.parametrize("token", [None, "", "   ", "<databricks_access_token>", "<your token>"])
def test_placeholders_are_no_token(token):
    assert dbc.is_placeholder_token(token)


def test_a_real_token_is_a_token():
    assert not dbc.is_placeholder_token("dapi-secret-123")


# ---------------------------------------------------------------------------------------------- host order
def test_an_existing_connection_with_a_host_wins_over_the_config(tmp_path):
    ws = _ws(tmp_path, databricks_hosts={"dbws": ADB})
    existing = {"connection_id": "c", "conn_type": "databricks", "host": "127.0.0.1", "schema": "http",
                "port": 4567, "password": "***"}
    assert dbc.resolve_host(ws, "dbws", existing) == ("connection", "http://127.0.0.1:4567")
    assert dbc.resolve_host(ws, "dbws", {**existing, "host": "adb-9.azuredatabricks.net", "schema": None,
                                         "port": None}) == ("connection", "https://adb-9.azuredatabricks.net")


def test_the_config_mapping_names_the_host_of_a_databricks_workspace(tmp_path):
    ws = _ws(tmp_path, databricks_hosts={"dbws": ADB + "/", "other": "adb-7.azuredatabricks.net"})
    without_host = {"connection_id": "c", "conn_type": "databricks", "host": None}
    assert dbc.resolve_host(ws, "dbws", without_host) == ("config", ADB)
    assert dbc.resolve_host(ws, "other", None) == ("config", "https://adb-7.azuredatabricks.net")
    assert dbc.resolve_host(ws, "unknown", None) == ("emulator", None)
    assert dbc.resolve_host(ws, None, None) == ("emulator", None)


def test_the_environment_overrides_the_config_mapping(tmp_path, monkeypatch):
    ws = _ws(tmp_path, databricks_hosts={"dbws": ADB})
    monkeypatch.setenv(dbc.ENV_DATABRICKS_HOST, "http://127.0.0.1:9999")
    assert dbc.resolve_host(ws, "dbws", None) == ("config", "http://127.0.0.1:9999")
    assert dbc.resolve_host(ws, "anything", None) == ("config", "http://127.0.0.1:9999")


def test_no_connection_and_no_config_means_the_emulator(tmp_path):
    assert dbc.resolve_host(_ws(tmp_path), "dbws", None) == ("emulator", None)


def test_a_config_mapping_read_from_config_json(tmp_path):
    cfg = tmp_path / ".mlpipe" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"databricks_hosts": {"dbws": ADB}}))
    ws = WorkspaceLocation.from_config(tmp_path)
    assert dbc.configured_host(ws, "dbws") == ADB


@pytest.mark.parametrize(("hosts", "expected"), [
    (["https://x"], "must map Databricks workspace names to URLs"),
    ({"dbws": 42}, "must be a URL string"),
    ({"dbws": "ftp://adb-1.net"}, "expected a Databricks workspace URL"),
])
def test_a_bad_config_mapping_says_what_was_expected(tmp_path, hosts, expected):
    ws = _ws(tmp_path, databricks_hosts=hosts)
    with pytest.raises(ComputeTargetException, match=expected) as err:
        dbc.configured_host(ws, "dbws")
    assert "databricks_hosts" in str(err.value)


# ---------------------------------------------------------------------------------------------- token
def test_the_emulator_gets_a_generated_token_for_a_placeholder():
    password = dbc.choose_password("emulator", "<databricks_access_token>", None, target="db", conn_id="c")
    assert password and not dbc.is_placeholder_token(password)
    assert dbc.choose_password("emulator", "", None, target="db", conn_id="c") != password  # fresh each time


def test_a_given_token_is_the_password():
    for source in ("emulator", "config", "connection"):
        assert dbc.choose_password(source, "dapi-secret-123", None, target="db", conn_id="c") == "dapi-secret-123"


def test_without_a_token_an_existing_password_is_kept():
    existing = {"connection_id": "c", "password": "***"}
    assert dbc.choose_password("config", "", existing, target="db", conn_id="c", url=ADB) is None
    assert dbc.choose_password("emulator", None, existing, target="db", conn_id="c") is None
    assert dbc.choose_password("connection", "<token>", {"password": None}, target="db", conn_id="c") is None


def test_a_real_workspace_needs_a_token():
    with pytest.raises(ComputeTargetException) as err:
        dbc.choose_password("config", "<databricks_access_token>", None, target="dbcompute",
                            conn_id="mlpipe_databricks_dbcompute", url=ADB)
    message = str(err.value)
    assert "'dbcompute'" in message and "access_token" in message and ADB in message
    assert "mlpipe_databricks_dbcompute" in message


# ---------------------------------------------------------------------------------------------- bodies, record
def test_the_emulator_connection_body():
    body = dbc.connection_body("c1", "http://127.0.0.1:4567", "tok", "/h/databricks-emulator")
    assert body["conn_type"] == "databricks"
    assert (body["host"], body["schema"], body["port"], body["password"]) == ("127.0.0.1", "http", 4567, "tok")
    assert json.loads(body["extra"]) == {"mlpipe_emulator_home": "/h/databricks-emulator"}


def test_a_real_host_body_and_one_that_keeps_the_password():
    body = dbc.connection_body("c2", ADB, None)
    assert (body["host"], body["schema"], body["port"]) == ("adb-123.azuredatabricks.net", "https", None)
    assert "password" not in body and "extra" not in body


def test_the_store_record_has_no_token():
    config = {"type": "Databricks", "conn_id": None, "resource_group": "rg", "workspace_name": "dbws",
              "resource_id": None, "access_token": "dapi-secret-123"}
    record = dbc.store_record(config, "mlpipe_databricks_db", "http://127.0.0.1:1", True)
    assert set(record) == {"type", "conn_id", "resource_group", "workspace_name", "resource_id", "host",
                           "emulator", "created"}
    assert "dapi-secret-123" not in json.dumps(record)
    assert record["emulator"] is True and record["workspace_name"] == "dbws"


# ---------------------------------------------------------------------------------------------- emulator
def test_the_emulator_comes_back_on_the_same_port(tmp_path):
    ws = _ws(tmp_path)
    try:
        first = dbc.ensure_emulator(ws)
        home = dbc.emulator_home(ws)
        assert (home / "port").read_text() == str(first["port"])
        assert first["url"] == f"http://127.0.0.1:{first['port']}" and first["home"] == str(home)
        assert httpx.get(first["url"] + "/health").status_code == 200
        assert dbc.ensure_emulator(ws)["port"] == first["port"]  # running: nothing started
        assert dbc.stop_emulator(ws) is True
        assert dbc.emulator_status(ws)["running"] is False
        again = dbc.ensure_emulator(ws)
        assert again["port"] == first["port"]
        assert dbc.emulator_status(ws)["running"] is True
    finally:
        dbc.stop_emulator(ws)
    assert dbc.stop_emulator(ws) is False


def test_a_saved_port_held_by_another_program_is_a_clear_error(tmp_path):
    ws = _ws(tmp_path)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        home = dbc.emulator_home(ws)
        home.mkdir(parents=True)
        (home / "port").write_text(str(port))
        try:
            with pytest.raises(dbc.EmulatorError) as err:
                dbc.ensure_emulator(ws)
        finally:
            dbc.stop_emulator(ws)
    assert str(port) in str(err.value) and str(home / "port") in str(err.value)
