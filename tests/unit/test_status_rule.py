"""One status rule: the SDK's ``StepRun.get_status`` and the REST API's ``GET runs/{id}/steps`` show the same
status for the same Airflow task instance and store record, and each v1 status comes out for its Airflow state.
"""

from __future__ import annotations

import uuid

import pytest

from airflow_mlpipe.contract.status import TERMINAL, pipeline_status, step_status
from airflow_mlpipe.plugins.api import step_entity
from airflow_mlpipe.sdk.experiment import Experiment
from airflow_mlpipe.sdk.runs import StepRun


def _sdk_and_rest(workspace, record_status: str | None, ti: dict | None) -> tuple[str, str]:
    """The status the SDK and the REST API show for one step whose store record says ``record_status``."""
    run_id = f"run{uuid.uuid4().hex[:8]}"
    row = None
    if record_status is not None:
        row = workspace.store.upsert_step_run(f"{run_id}.train", pipeline_run_id=run_id, step_name="train",
                                              task_id="train", status=record_status)
    sdk = StepRun(Experiment(workspace, "exp"), f"{run_id}.train", run_id, "train", row, ti).get_status()
    rest = step_entity(run_id, "train", row, ti)["Status"]
    return sdk, rest


@pytest.mark.parametrize(("airflow_state", "expected"), [("failed", "Failed"), ("success", "Finished")])
def test_a_task_that_ended_while_its_record_says_running_shows_the_same_status_everywhere(
        workspace, airflow_state, expected):
    """A task killed (or ended) before its step recorded the end: the SDK used to say Running where the REST
    API (and the UI page reading it) said Failed / Finished."""
    sdk, rest = _sdk_and_rest(workspace, "Running", {"task_id": "train", "state": airflow_state})
    assert sdk == rest == expected


@pytest.mark.parametrize(("record_status", "airflow_state"), [
    ("Finished", "skipped"),  # reused by the cache planner: the task is skipped, the step Finished
    ("Canceled", "failed"),   # cancelled by the user: the record knows more than Airflow
    ("Failed", "up_for_retry"),
])
def test_an_ended_record_wins_in_the_sdk_and_the_rest_api(workspace, record_status, airflow_state):
    sdk, rest = _sdk_and_rest(workspace, record_status, {"task_id": "train", "state": airflow_state})
    assert sdk == rest == record_status


def test_without_a_task_instance_the_record_stands(workspace):
    assert _sdk_and_rest(workspace, "Running", None) == ("Running", "Running")
    assert _sdk_and_rest(workspace, None, None) == ("NotStarted", "NotStarted")


@pytest.mark.parametrize(("airflow_state", "v1_status"), [
    (None, "NotStarted"), ("upstream_failed", "NotStarted"),
    ("scheduled", "Queued"), ("queued", "Queued"),
    ("running", "Running"), ("up_for_retry", "Running"), ("deferred", "Running"), ("restarting", "Running"),
    ("success", "Finished"),
    ("failed", "Failed"),
    ("removed", "Canceled"),
    ("skipped", "Bypassed"),
    ("a_state_of_a_newer_airflow", "Running"),
])
def test_each_v1_step_status_comes_out_for_its_airflow_state(workspace, airflow_state, v1_status):
    ti = {"task_id": "train", "state": airflow_state}
    assert step_status(None, ti) == step_status({"status": "NotStarted"}, ti) == v1_status
    assert _sdk_and_rest(workspace, "NotStarted", ti) == (v1_status, v1_status)


@pytest.mark.parametrize(("record_status", "dag_run_state", "v1_status"), [
    ("NotStarted", "queued", "NotStarted"),
    ("NotStarted", "running", "Running"),
    ("Running", "success", "Finished"),
    ("Running", "failed", "Failed"),
    ("Canceled", "failed", "Canceled"),  # cancel() marks the DAG run failed and records Canceled
    ("Finished", "running", "Finished"),  # an ended record is final
])
def test_pipeline_status(record_status, dag_run_state, v1_status):
    assert pipeline_status({"status": record_status}, {"state": dag_run_state}) == v1_status


def test_pipeline_status_without_an_answer_from_airflow_is_the_last_recorded_one():
    assert pipeline_status({"status": "Running"}, None) == "Running"
    assert pipeline_status(None, None) == "NotStarted"
    assert TERMINAL == {"Finished", "Failed", "Canceled"}
