"""``mlpipe pipelines submit`` and ``mlpipe endpoints submit --wait`` against a real embedded Airflow: the run
id, the UI link, parameters typed by the pipeline, the final status and the exit code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_mlpipe import (
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)
from airflow_mlpipe.cli import main
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.sdk.runs import get_run

pytestmark = pytest.mark.scheduler

EMIT = (
    "import os, sys\nfrom azureml.core import Run\nargs = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
    "os.makedirs(args['--out'], exist_ok=True)\nopen(os.path.join(args['--out'], 'v.txt'), 'w').write(args['--value'])\n"
    "Run.get_context().log('value', int(args['--value']))\nsys.exit(int(args['--code']))\n"
)


def _pipeline(ws: Workspace, root: Path) -> Pipeline:
    src = root / "steps"
    src.mkdir(exist_ok=True)
    (src / "emit.py").write_text(EMIT)
    out = PipelineData("out")
    value = PipelineParameter("value", default_value=1)
    code = PipelineParameter("code", default_value=0)  # the step's exit code: 3 makes the run fail
    step = PythonScriptStep("emit.py", name="emit", arguments=["--out", out, "--value", value, "--code", code],
                            outputs=[out], source_directory=str(src))
    return Pipeline(ws, [step])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with a published pipeline and an endpoint of it, served by its own embedded Airflow."""
    root = tmp_path_factory.mktemp("project")
    (root / "dags").mkdir()
    (root / ".mlpipe").mkdir()
    (root / ".mlpipe" / "config.json").write_text(json.dumps({"airflow": {"settings": {}}}))
    ws = Workspace.from_config(path=root)
    published = _pipeline(ws, root).publish("cli_submit", version="1.0")
    PipelineEndpoint.publish(ws, "cli_submit_endpoint", "endpoint under test", published)
    info = local_airflow.start(ws, dags_folder=root / "dags", port=local_airflow._free_port())
    try:
        yield root, ws, info, published
    finally:
        local_airflow.stop(ws)


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
