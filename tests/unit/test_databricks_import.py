"""DatabricksCompute.import_notebook: a pipeline file ships its notebook into the emulator's workspace; a real
Databricks workspace is refused with the tools that do it there."""

from __future__ import annotations

import json

import pytest

from airflow_mlpipe.clients.databricks_connection import EmulatorError, emulator_home
from airflow_mlpipe.contract.exceptions import ComputeTargetException
from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceStore
from airflow_mlpipe.sdk.compute import ComputeTarget, DatabricksCompute

NOTEBOOK = "# Databricks notebook source\nprint('first')\n\n# COMMAND ----------\nprint('second')\n"


def _target(ws, name: str, emulator: bool) -> DatabricksCompute:
    record = {"type": "Databricks", "conn_id": f"mlpipe_databricks_{name}", "resource_group": "rg",
              "workspace_name": "dbw", "resource_id": None, "emulator": emulator,
              "host": None if emulator else "https://adb-1.azuredatabricks.net"}
    ws.store.set_setting(f"compute:{name}", json.dumps(record))
    target = ComputeTarget(ws, name)
    assert isinstance(target, DatabricksCompute)
    return target


def _exported(ws, path: str) -> str:
    """The notebook's source as the emulator exports it (read from its folder, no server needed)."""
    _, content = WorkspaceStore(emulator_home(ws) / "workspace").export(path, "SOURCE")
    return content.decode()


def test_real_workspace_is_refused_with_the_databricks_cli(workspace, tmp_path):
    nb = tmp_path / "aggregate.py"
    nb.write_text(NOTEBOOK)
    target = _target(workspace, "real", emulator=False)
    with pytest.raises(ComputeTargetException) as err:
        target.import_notebook(str(nb), "/Shared/aggregate")
    message = str(err.value)
    assert "'real'" in message and "https://adb-1.azuredatabricks.net" in message
    assert "databricks workspace import /Shared/aggregate" in message and "workspace UI" in message
    assert not emulator_home(workspace).exists(), "nothing is written for a real workspace"


def test_emulator_notebook_is_imported_and_replaced(workspace, tmp_path):
    nb = tmp_path / "aggregate.py"
    nb.write_text(NOTEBOOK)
    target = _target(workspace, "emu", emulator=True)
    target.import_notebook(str(nb), "/Shared/demo/aggregate")
    assert "print('second')" in _exported(workspace, "/Shared/demo/aggregate")

    nb.write_text(NOTEBOOK.replace("second", "changed"))
    target.import_notebook(str(nb), "/Shared/demo/aggregate")  # overwrite=True by default
    assert "print('changed')" in _exported(workspace, "/Shared/demo/aggregate")
    assert "print('second')" not in _exported(workspace, "/Shared/demo/aggregate")

    with pytest.raises(EmulatorError, match="/Shared/demo/aggregate"):
        target.import_notebook(str(nb), "/Shared/demo/aggregate", overwrite=False)


def test_emulator_import_names_a_missing_file_and_a_relative_path(workspace, tmp_path):
    target = _target(workspace, "emu", emulator=True)
    with pytest.raises(FileNotFoundError, match="nowhere.py"):
        target.import_notebook(str(tmp_path / "nowhere.py"), "/Shared/x")
    nb = tmp_path / "nb.py"
    nb.write_text(NOTEBOOK)
    with pytest.raises(ComputeTargetException, match="absolute workspace path"):
        target.import_notebook(str(nb), "Shared/x")


def test_emulator_takes_a_jupyter_notebook(workspace, tmp_path):
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
              "source": ["print('from jupyter')"]}]
    nb = tmp_path / "explore.ipynb"
    nb.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    _target(workspace, "emu", emulator=True).import_notebook(str(nb), "/Users/me/explore")
    assert "print('from jupyter')" in _exported(workspace, "/Users/me/explore")
