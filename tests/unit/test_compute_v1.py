"""The seeds' compute setup runs unchanged: what v1 code prints and reads (issue 8, item 6), and targets that
only a dedicated step kind can use fail at definition time (item 8)."""

from __future__ import annotations

import importlib
import json
import warnings

import pytest

from airflow_mlpipe import (
    AmlCompute,
    ComputeTarget,
    ComputeTargetException,
    DatabricksCompute,
    Pipeline,
    PipelineValidationError,
    PythonScriptStep,
)
from airflow_mlpipe.sdk.no_effect import NoEffectWarning

V1_STATUS_KEYS = {"currentNodeCount", "targetNodeCount", "nodeStateCounts", "allocationState",
                  "allocationStateTransitionTime", "errors", "creationTime", "modifiedTime", "provisioningState",
                  "provisioningStateTransitionTime", "scaleSettings", "vmPriority", "vmSize"}


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text("print('hi')\n")
    return str(folder)


def _seed_aml_compute(ws):
    """The seed's 'Azure Machine Learning compute' snippet (seeds 000-003), unchanged."""
    compute_name = "aml-compute"
    vm_size = "STANDARD_NC6"
    if compute_name in ws.compute_targets:
        compute_target = ws.compute_targets[compute_name]
        if compute_target and type(compute_target) is AmlCompute:
            print('Found compute target: ' + compute_name)
    else:
        print('Creating a new compute target...')
        provisioning_config = AmlCompute.provisioning_configuration(vm_size=vm_size,  # STANDARD_NC6 is GPU-enabled
                                                                    min_nodes=0,
                                                                    max_nodes=4)
        # create the compute target
        compute_target = ComputeTarget.create(
            ws, compute_name, provisioning_config)

        # Can poll for a minimum number of nodes and for a specific timeout.
        # If no min node count is provided it will use the scale settings for the cluster
        compute_target.wait_for_completion(
            show_output=True, min_node_count=None, timeout_in_minutes=20)

        # For a more detailed view of current cluster status, use the 'status' property
        print(compute_target.status.serialize())
    return compute_target


def test_seed_aml_compute_prints_and_returns_what_v1_does(workspace, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoEffectWarning)
        target = _seed_aml_compute(workspace)
    out = capsys.readouterr().out
    assert out.startswith('Creating a new compute target...\nCreating\nSucceededProvisioning operation finished, '
                          'operation "Succeeded"\nSucceeded\nAmlCompute wait for completion finished\n\n'
                          'Minimum number of nodes requested have been provisioned\n{')
    assert target.provisioning_state == "Succeeded" and type(target) is AmlCompute
    status = target.status.serialize()
    assert set(status) == V1_STATUS_KEYS
    assert status["provisioningState"] == "Succeeded" and status["allocationState"] == "Steady"
    assert status["vmSize"] == "STANDARD_NC6" and status["errors"] is None
    assert status["scaleSettings"] == {"minNodeCount": 0, "maxNodeCount": 4, "nodeIdleTimeBeforeScaleDown": "PT1800S"}
    assert status["nodeStateCounts"]["idleNodeCount"] == 0 and status["currentNodeCount"] == 0
    assert json.loads(json.dumps(status)) == status  # plain JSON, as printed by v1 code
    # the second run of the seed finds it (ws.compute_targets keeps AmlCompute's class)
    _seed_aml_compute(workspace)
    assert capsys.readouterr().out == "Found compute target: aml-compute\n"


def test_seed_titanic_compute_get_status(workspace, capsys, src):
    """Seed 004: ``compute_target.get_status().serialize()`` and ``ws.compute_targets[name]``."""
    compute_name = 'cpu-cluster'
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoEffectWarning)
        if compute_name not in workspace.compute_targets:
            provisioning_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2', min_nodes=0,
                                                                        max_nodes=1)
            compute_target = ComputeTarget.create(workspace, compute_name, provisioning_config)
            compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)
            print(compute_target.get_status().serialize())
    compute_target = workspace.compute_targets[compute_name]
    out = capsys.readouterr().out
    assert "'provisioningState': 'Succeeded'" in out and "'maxNodeCount': 1" in out
    assert compute_target.get_status().serialize()["vmSize"] == "STANDARD_D2_V2"
    step = PythonScriptStep("train.py", name="t", compute_target=compute_target, source_directory=src)
    assert step.compute == {"name": "cpu-cluster", "type": "amlcompute", "queue": "cpu-cluster"}


def test_missing_target_raises_compute_target_exception(workspace, capsys):
    """The seed pattern ``try: ComputeTarget(workspace=ws, name=name) except ComputeTargetException: create``."""
    try:
        ComputeTarget(workspace=workspace, name="gpu-cluster")
        found = True
    except ComputeTargetException as exc:
        found = False
        assert "gpu-cluster" in str(exc) and "not found" in str(exc)
    assert not found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoEffectWarning)
        ComputeTarget.create(workspace, "gpu-cluster", AmlCompute.provisioning_configuration(max_nodes=2))
    assert type(ComputeTarget(workspace=workspace, name="gpu-cluster")) is AmlCompute
    ComputeTarget(workspace=workspace, name="gpu-cluster").delete()
    with pytest.raises(ComputeTargetException, match="not found"):
        ComputeTarget(workspace=workspace, name="gpu-cluster")
    assert "gpu-cluster" not in workspace.compute_targets


@pytest.fixture
def attached(monkeypatch):
    """``attach_databricks`` recorded instead of reaching an Airflow (tests/integration/test_databricks_attach.py
    covers the real one): what it receives, and a record without the token."""
    from airflow_mlpipe.clients import databricks_connection

    calls: list[dict] = []

    def fake(workspace, name, config):
        calls.append({"name": name, **config})
        return {"type": "Databricks", "conn_id": f"mlpipe_databricks_{name}", "host": "127.0.0.1",
                "emulator": True, "workspace_name": config.get("workspace_name")}

    monkeypatch.setattr(databricks_connection, "attach_databricks", fake)
    return calls


def test_databricks_access_token_goes_to_the_connection_and_is_never_stored(workspace, attached):
    token = "dapi-secret-token-123"
    config = DatabricksCompute.attach_configuration(resource_group="rg", workspace_name="dbw", access_token=token)
    assert token not in repr(config) and token not in str(config)
    target = ComputeTarget.attach(workspace, "databricks", config)
    assert type(target) is DatabricksCompute
    assert attached[0]["access_token"] == token and attached[0]["workspace_name"] == "dbw"
    assert all(token not in raw for raw in workspace.store.settings_with_prefix("").values())


def test_databricks_target_on_python_script_step_fails_at_definition(workspace, src, attached):
    config = DatabricksCompute.attach_configuration(resource_group="rg", workspace_name="dbw",
                                                    conn_id="databricks_default")
    target = ComputeTarget.attach(workspace, "databricks", config)
    target.wait_for_completion(True)
    assert type(target) is DatabricksCompute
    for given in (target, ("databricks", "Databricks")):
        with pytest.raises(PipelineValidationError) as info:
            PythonScriptStep("train.py", name="prep", compute_target=given, source_directory=src)
        message = str(info.value)
        assert "'prep'" in message and "'compute_target'" in message and "DatabricksStep" in message
    # given by name only: resolved against the workspace when the pipeline is built
    step = PythonScriptStep("train.py", name="prep", compute_target="databricks", source_directory=src)
    with pytest.raises(PipelineValidationError, match="Step 'prep', argument 'compute_target'.*DatabricksStep"):
        Pipeline(workspace=workspace, steps=[step])


def test_unsupported_v1_compute_types_fail_with_reason():
    """Seed: ``from azureml.core.compute import ComputeTarget, AdlaCompute`` imports; attaching says why not."""
    compat = importlib.import_module("airflow_mlpipe.compat.azureml.core.compute")
    AdlaCompute, HDInsightCompute = compat.AdlaCompute, compat.HDInsightCompute  # noqa: N806

    with pytest.raises(ComputeTargetException, match="AdlaCompute is not supported.*Data Lake Analytics"):
        AdlaCompute.attach_configuration(resource_group="rg", account_name="adla")
    with pytest.raises(ComputeTargetException, match="HDInsightCompute is not supported"):
        HDInsightCompute.attach_configuration(address="x", ssh_port=22, username="u", password="p")
