"""What a DatabricksStep submits and how it reads a run's state, from the spec the SDK writes (no Databricks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlpipe import Pipeline, PipelineData, PipelineParameter
from airflow_mlpipe.data.workspace_location import WorkspaceLocation
from airflow_mlpipe.runtime import databricks_runner as dbr
from airflow_mlpipe.runtime.step_runner import StepExecution
from airflow_mlpipe.sdk.compute import ComputeTarget
from airflow_mlpipe.sdk.steps.databricks_step import DatabricksStep


@pytest.fixture
def compute(workspace):
    workspace.store.set_setting("compute:dbc", json.dumps({"type": "Databricks", "conn_id": "mlpipe_databricks_dbc",
                                                           "emulator": True}))
    return ComputeTarget(workspace, "dbc")


def _execution(workspace, step: DatabricksStep, values: dict | None = None, clear_number: int = 0) -> StepExecution:
    spec = Pipeline(workspace, [step]).to_spec("dbr")
    return StepExecution(workspace=WorkspaceLocation.from_ref(spec.get("workspace")), pipeline_run_id="run-1",
                         experiment="exp", dag_id="dbr", step=spec["steps"][0], pipeline=spec,
                         parameter_values=values or {}, upstream=lambda t, o: None, clear_number=clear_number)


def test_notebook_request_has_widgets_for_params_and_outputs(workspace, compute):
    out = PipelineData("agg")
    step = DatabricksStep(name="aggregate", outputs=[out], notebook_path="/Shared/agg",
                          notebook_params={"min_age": PipelineParameter("min_age", default_value=30), "label": "x"},
                          existing_cluster_id="warm", timeout_seconds=60, run_name="agg run", compute_target=compute)
    ex = _execution(workspace, step, {"min_age": 40})
    outputs = dbr.staged_outputs(ex, attempt=0, fresh=True)
    staging = outputs.staging_uris()["agg"]
    assert Path(staging).is_dir() and ".partial-" in staging and staging.endswith("-c0-a0")
    body = dbr.submit_request(ex, {}, outputs.staging_uris(), "tok")
    (task,) = body["tasks"]
    assert task["notebook_task"] == {"notebook_path": "/Shared/agg",
                                     "base_parameters": {"min_age": "40", "label": "x", "agg": staging}}
    assert task["existing_cluster_id"] == "warm" and task["timeout_seconds"] == 60
    assert (body["run_name"], body["idempotency_token"], body["timeout_seconds"]) == ("agg run", "tok", 60)


def test_script_request_gets_argument_pairs_and_a_new_cluster_the_run_environment(workspace, compute, tmp_path):
    (tmp_path / "count.py").write_text("print(1)\n")
    out = PipelineData("counted")
    step = DatabricksStep(name="count", outputs=[out], python_script_name="count.py", source_directory=str(tmp_path),
                          python_script_params=["--label", PipelineParameter("label", default_value="a")],
                          num_workers=2, compute_target=compute)
    ex = _execution(workspace, step, {"label": "b"})
    body = dbr.submit_request(ex, {"rows": "/data/rows.csv"}, {"counted": "/out/x"}, "tok", "dbfs:/mlpipe/s/abc")
    (task,) = body["tasks"]
    assert task["spark_python_task"] == {"python_file": "dbfs:/mlpipe/s/abc/count.py", "parameters": [
        "--label", "b", "--AZUREML_SCRIPT_DIRECTORY_NAME", "dbfs:/mlpipe/s/abc", "--rows", "/data/rows.csv",
        "--counted", "/out/x"]}
    cluster = task["new_cluster"]
    assert cluster["num_workers"] == 2 and cluster["spark_version"] == "10.4.x-scala2.12"
    assert cluster["spark_env_vars"]["AZUREML_RUN_ID"] == "run-1.count"
    assert cluster["spark_env_vars"]["PYSPARK_PYTHON"] == "/databricks/python3/bin/python3"


def test_idempotency_token_is_stable_per_attempt_and_round(workspace, compute):
    step = DatabricksStep(name="s", notebook_path="/n", existing_cluster_id="c", compute_target=compute)
    ex = _execution(workspace, step)
    token = dbr.idempotency_token(ex, 0)
    assert token == dbr.idempotency_token(_execution(workspace, step), 0)
    assert token != dbr.idempotency_token(ex, 1)
    assert token != dbr.idempotency_token(_execution(workspace, step, clear_number=1), 0)
    assert len(token) <= 64


@pytest.mark.parametrize("state,terminal,succeeded,unknown", [
    ({"life_cycle_state": "RUNNING"}, False, False, False),
    ({"life_cycle_state": "SOMETHING_NEW"}, False, False, True),
    ({"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}, True, True, False),
    ({"life_cycle_state": "TERMINATED", "result_state": "FAILED"}, True, False, False),
    ({"life_cycle_state": "INTERNAL_ERROR", "result_state": "FAILED"}, True, False, False),
    ({"life_cycle_state": "SKIPPED"}, True, False, False),
])
def test_run_phase(state, terminal, succeeded, unknown):
    phase = dbr.run_phase({"state": state})
    assert (phase.terminal, phase.succeeded, phase.unknown) == (terminal, succeeded, unknown)


def test_failure_message_names_step_error_and_run_page(workspace, compute):
    step = DatabricksStep(name="check", notebook_path="/n", existing_cluster_id="c", compute_target=compute)
    ex = _execution(workspace, step)
    phase = dbr.RunPhase("TERMINATED", "FAILED", "Workload failed")
    message = dbr.failure_message(ex, phase, {"error": "ValueError: bad rows",
                                              "error_trace": "Traceback...\nValueError: bad rows"}, "http://page")
    assert message == ("Step 'check' failed on Databricks (TERMINATED/FAILED: Workload failed): ValueError: bad rows. "
                       "Run page: http://page")
