"""``mlpipe pipelines submit`` and ``mlpipe endpoints submit --wait`` against a real embedded Airflow: the run
id, the UI link, parameters typed by the pipeline, the final status and the exit code."""

from __future__ import annotations

import json
import os

import pytest

from airflow_mlpipe import PipelineEndpoint
from airflow_mlpipe.cli import main
from airflow_mlpipe.sdk.runs import get_run
from tests.helpers.published import emit_pipeline, published_project

pytestmark = pytest.mark.scheduler


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with a published pipeline and an endpoint of it, served by its own embedded Airflow."""
    def publish(ws, root):
        # the step's exit code is the pipeline parameter ``code``: 3 makes the run fail
        published = emit_pipeline(ws, root, code=True).publish("cli_submit", version="1.0")
        PipelineEndpoint.publish(ws, "cli_submit_endpoint", "endpoint under test", published)
        return published

    with published_project(tmp_path_factory, publish, users={}) as (root, ws, info, published):
        yield root, ws, info, published


@pytest.fixture(autouse=True)
def _in_project(project, monkeypatch):
    """Commands run in the project folder; ``submit`` points the process's environment at its Airflow (as
    ``mlpipe run`` does), so each test gets the environment back."""
    saved = dict(os.environ)
    monkeypatch.chdir(project[0])
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_pipelines_submit_wait_json(project, capsys):
    _, ws, info, published = project
    rc = main(["pipelines", "submit", published.id, "--experiment", "cli-exp", "--param", "value=20", "--wait",
               "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)  # the only thing on stdout
    assert doc["status"] == "Finished" and doc["experiment"] == "cli-exp" and doc["dag_id"] == published.dag_id
    assert doc["parameters"] == {"value": 20}  # typed by the pipeline: an int, not the string "20"
    assert doc["ui_url"] == f"{info.url}/dags/{published.dag_id}/runs/{doc['run_id']}"
    assert "StepRun(emit) Status: Finished" in captured.err  # progress went to stderr
    run = get_run(ws, doc["run_id"])
    assert run.get_status() == "Finished" and run.find_step_run("emit")[0].get_metrics()["value"] == 20


def test_endpoints_submit_wait_failed_exit_1(project, capsys):
    _, ws, info, published = project
    rc = main(["endpoints", "submit", "cli_submit_endpoint", "--experiment", "cli-exp", "--param", "code=3",
               "--wait"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "of pipeline endpoint cli_submit_endpoint version 0 (cli_submit)" in out
    assert f"Airflow UI : {info.url}/dags/{published.dag_id}/runs/" in out
    assert out.rstrip().endswith("Final status: Failed")
    run_id = out.split("Submitted run ", 1)[1].split()[0]
    row = ws.store.get_pipeline_run(run_id)
    assert row["status"] == "Failed" and row["parameters"] == {"code": 3}
    assert row["properties"]["azureml.pipelineendpointid"] == PipelineEndpoint.get(ws, name="cli_submit_endpoint").id
