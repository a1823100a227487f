"""End to end through a real scheduler: the embedded Airflow (SQLite, LocalExecutor) started for a project.

Covers the README main job (``mlpipe run dags/iris_pipeline.py``), ``Experiment.submit`` of a pipeline that
is not in the DAGs folder, Airflow-native triggering with ``conf``, and a failing run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlpipe import (
    ActivityFailedException,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)
from airflow_mlpipe.clients.airflow_rest import AirflowAPIError, AirflowClient
from tests.helpers.embedded import embedded_airflow, working_directory

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.scheduler


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder whose embedded Airflow parses the repo's dags/ folder."""
    root = tmp_path_factory.mktemp("project")
    with working_directory(root):
        ws = Workspace.from_config()
        with embedded_airflow(ws, REPO / "dags") as info:
            yield root, ws, info


def _mlpipe(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # a user's shell
    return subprocess.run([sys.executable, "-m", "airflow_mlpipe.cli", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_main_job_runs_iris_pipeline(project):
    root, ws, info = project
    proc = _mlpipe(root, "run", str(REPO / "dags" / "iris_pipeline.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "PipelineRun Status: Finished" in out
    assert "prepare" in out and "train" in out and "accuracy" in out
    assert f"{info.url}/dags/iris_pipeline/runs/" in out
    runs = list(Experiment(ws, "iris_pipeline").get_runs())
    assert runs and runs[0].get_status() == "Finished"
    run = runs[0]
    train = run.find_step_run("train")[0]
    assert train.get_metrics()["accuracy"] > 0.8
    assert train.get_status() == "Finished"
    target = root / "downloaded"
    count = run.get_pipeline_output("iris_model").download(str(target))
    assert count == 1
    model = json.loads(next(target.rglob("model.json")).read_text())
    assert set(model["centroids"]) == {"setosa", "versicolor", "virginica"}
    assert set(run.get_outputs()) == {"prepared", "model"}
    # the summary is also available later
    shown = _mlpipe(root, "runs", "show", run.id)
    assert shown.returncode == 0 and "Finished" in shown.stdout


def _steps_folder(root: Path) -> Path:
    src = root / "steps"
    src.mkdir(exist_ok=True)
    (src / "emit.py").write_text(
        "import os, sys\nfrom azureml.core import Run\nout = sys.argv[2]\nos.makedirs(out, exist_ok=True)\n"
        "open(os.path.join(out, 'v.txt'), 'w').write(sys.argv[4])\nRun.get_context().log('value', int(sys.argv[4]))\n"
    )
    (src / "crash.py").write_text("import sys\nprint('about to fail')\nraise ValueError('bad input row 42')\n")
    return src


def test_submit_pipeline_from_python_with_parameter(project):
    root, ws, _ = project
    src = _steps_folder(root)
    out = PipelineData("out")
    value = PipelineParameter("value", default_value=1)
    step = PythonScriptStep("emit.py", name="emit", arguments=["--out", out, "--value", value], outputs=[out],
                            source_directory=str(src))
    run = Experiment(ws, "submitted-exp").submit(Pipeline(ws, [step]), pipeline_parameters={"value": 41})
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert run.find_step_run("emit")[0].get_metrics() == {"value": 41}
    assert run.get_details()["parameters"] == {"value": 41}


def test_failing_run_reports_the_step(project):
    root, ws, _ = project
    src = _steps_folder(root)
    step = PythonScriptStep("crash.py", name="crasher", source_directory=str(src))
    run = Experiment(ws, "failing-exp").submit(Pipeline(ws, [step]))
    with pytest.raises(ActivityFailedException, match="crasher.*bad input row 42"):
        run.wait_for_completion(show_output=False)
    assert run.get_status() == "Failed"
    step_run = run.find_step_run("crasher")[0]
    assert step_run.get_status() == "Failed"
    assert "ValueError: bad input row 42" in step_run.get_job_log()


def test_airflow_native_trigger_with_conf(project):
    root, ws, info = project
    client = AirflowClient(info.url, info.username, info.password)
    client.wait_for_dag("compare_models", timeout=120)
    details = client.get_dag_details("compare_models")
    assert details["params"]["pipeline_arg"]["value"] == 10
    assert details["params"]["pipeline_arg"]["schema"]["type"] == "integer"
    with pytest.raises(AirflowAPIError) as bad:  # Params are validated at trigger time
        client.trigger("compare_models", conf={"pipeline_arg": "abc"})
    assert bad.value.status == 400 and "pipeline_arg" in str(bad.value)
    run = client.trigger("compare_models", conf={"pipeline_arg": 20})
    final = client.wait_for_dag_run("compare_models", run["dag_run_id"], timeout=300)
    assert final["state"] == "success"
    metrics = ws.store.get_metrics(f"{run['dag_run_id']}.compare.py")
    assert metrics["pipeline_arg"] == 20
    row = ws.store.get_pipeline_run(run["dag_run_id"])
    assert row["experiment"] == "compare_models"


def test_second_run_reuses_steps_and_shows_it(project):
    root, ws, info = project
    proc = _mlpipe(root, "run", str(REPO / "dags" / "iris_pipeline.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("(reused from") == 2  # prepare and train: nothing changed since the first test
    plan = _mlpipe(root, "plan", str(REPO / "dags" / "iris_pipeline.py"))
    assert plan.returncode == 0 and plan.stdout.count("REUSE") == 2, plan.stdout + plan.stderr
    run = next(iter(Experiment(ws, "iris_pipeline").get_runs()))
    train = run.find_step_run("train")[0]
    assert train.type == "azureml.ReusedStepRun" and train.get_status() == "Finished"
    assert train.get_metrics()["accuracy"] > 0.8  # metrics come from the run that produced the outputs
    client = AirflowClient(info.url, info.username, info.password)
    tis = {t["task_id"]: t for t in client.task_instances("iris_pipeline", run.airflow_run_id)}
    assert tis["train"]["state"] == "skipped"
    assert tis["train"]["note"].startswith("Reused (cache hit): outputs of step run ")
    assert "2 of 2 steps reused" in client.get_dag_run("iris_pipeline", run.airflow_run_id)["note"]


def test_main_job_titanic_automl_pipeline(project):
    """The README's main job: prep → AutoML → register, then a second run reuses prep and AutoML."""
    root, ws, _ = project
    first = _mlpipe(root, "run", str(REPO / "dags" / "titanic_pipeline.py"))
    second = _mlpipe(root, "run", str(REPO / "dags" / "titanic_pipeline.py"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "PipelineRun Status: Finished" in first.stdout
    assert "'best_model':" in first.stdout and "'AUC_weighted':" in first.stdout
    assert "registered model: TitanicSurvivalInitial version 1" in first.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("(reused from") == 2  # dataprep and AutoML; register_model has allow_reuse=False
    assert "registered model: TitanicSurvivalInitial version 2" in second.stdout
    from airflow_mlpipe import Model

    assert Model(ws, "TitanicSurvivalInitial").version == 2
