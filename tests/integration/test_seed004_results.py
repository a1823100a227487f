"""Seed 004 (the Titanic AutoML walkthrough): its result-examination code, run against a finished run.

The pipeline is the repo's port (dags/titanic_pipeline.py, its data in dags/titanic/data) on the walkthrough's own
small budget (2 iterations) and, as the walkthrough says to do when using ``AutoMLStepRun``, with the default
metrics/model outputs enabled. It runs once for the module, through Airflow in-process (``dag.test()``). The
result code below is the walkthrough's, copied verbatim but for imports; each other change is marked NOTE.

What v1 gives and these tests hold: a ``TrainingOutput`` metrics or model output is a FILE at the output path
(JSON; a pickle), so ``open(port._path_on_datastore)`` after ``port.download('.')`` opens it, ``Model.register``
of it registers that file and ``Model.get_model_path`` returns the file; a script that wrote one file at its
output path (dataprep writes one Parquet file) gives a file the same way.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "titanic_pipeline.py"
RUN_ID = "seed004-1"

pytestmark = pytest.mark.timeout(600)


def _seed_pipeline_source() -> str:
    """The repo's port of the walkthrough's pipeline, with the default outputs on (for ``AutoMLStepRun``)."""
    source = DAG_FILE.read_text()
    for flag in ("enable_default_model_output", "enable_default_metrics_output"):
        assert source.count(f"{flag}=False") == 1, f"{DAG_FILE} no longer sets {flag}=False once"
        source = source.replace(f"{flag}=False", f"{flag}=True")
    return source


@pytest.fixture(scope="module")
def finished(tmp_path_factory, airflow_db):
    """(workspace, DAG module namespace, PipelineRun) of one finished run; cwd is the project folder."""
    from airflow_mlpipe.clients.bundle_stubs import SPECS_DIRNAME, write_stub
    from airflow_mlpipe.compiler.dag_builder import build_dag
    from airflow_mlpipe.workspace import Workspace

    project = tmp_path_factory.mktemp("seed004")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        mp.setenv("MLPIPE_TITANIC_TIMEOUT_MINUTES", "0.25")  # 15 s at most
        mp.setenv("MLPIPE_TITANIC_ITERATIONS", "2")  # the walkthrough's own value
        ws = Workspace.from_config()
        ns: dict = {"__file__": str(DAG_FILE), "__name__": "seed004_titanic_pipeline"}
        exec(compile(_seed_pipeline_source(), str(DAG_FILE), "exec"), ns)
        folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        write_stub(folder)
        spec = ns["pipeline"].to_spec("seed004_titanic")
        (folder / SPECS_DIRNAME / "seed004_titanic.json").write_text(json.dumps(spec))
        dr = build_dag(spec).test(run_conf={"__mlpipe": {"run_id": RUN_ID, "experiment": "titanic_automl"}})
        assert dr.state == "success"
        yield ws, ns, ws.get_run(RUN_ID)


def _features(ws, run) -> pd.DataFrame:
    """The prepared training rows (dataprep's output) without the label."""
    port = run.find_step_run("dataprep")[0].get_output_data("titanic_train")
    return pd.read_parquet(port.datastore.full_path(port.path_on_datastore)).drop(columns=["Survived"])


def test_examine_pipeline_results(finished):
    """The walkthrough's "Examine pipeline results" code, verbatim."""
    ws, _, run = finished
    metrics_output_port = run.get_pipeline_output('metrics_output')
    model_output_port = run.get_pipeline_output('model_output')

    metrics_output_port.download('.', show_progress=True)
    model_output_port.download('.', show_progress=True)

    # NOTE: the walkthrough's next snippets use these two names without binding them (its source notebook does)
    metrics_output, model_output = metrics_output_port, model_output_port

    metrics_filename = metrics_output._path_on_datastore
    # metrics_filename = path to downloaded file
    with open(metrics_filename) as f:
       metrics_output_result = f.read()

    deserialized_metrics_output = json.loads(metrics_output_result)
    df = pd.DataFrame(deserialized_metrics_output)

    model_filename = model_output._path_on_datastore
    # model_filename = path to downloaded file

    with open(model_filename, "rb" ) as f:
        best_model = pickle.load(f)

    # what a user then sees: the downloaded files sit at the output paths, one metrics row per model tried
    assert Path(metrics_filename).is_file() and Path(model_filename).is_file()
    assert metrics_filename == metrics_output.path_on_datastore.rstrip("/")
    assert Path(metrics_filename).parts[0] == "azureml" and Path(metrics_filename).name == "metrics_data"
    step = run.find_step_run("AutoML_Classification")[0]
    assert len(df) == step.get_metrics()["iterations"] >= 1
    assert {"iteration", "model", "AUC_weighted", "accuracy"} <= set(df.columns)
    features = _features(ws, run)
    assert best_model.predict(features).shape == (len(features),)


def test_download_results_of_automl_run(finished):
    """The walkthrough's "Download the results of an automated ML run" code, verbatim."""
    ws, _, _ = finished
    # Retrieved from Azure Machine Learning web UI
    run_id = RUN_ID  # NOTE: the walkthrough has a placeholder id here
    experiment = ws.experiments['titanic_automl']
    ex = experiment  # NOTE: the walkthrough's next line uses `ex` without binding it
    run = next(run for run in ex.get_runs() if run.id == run_id)

    automl_run = next(r for r in run.get_children() if r.name == 'AutoML_Classification')
    outputs = automl_run.get_outputs()
    metrics = outputs['default_metrics_AutoML_Classification']
    model = outputs['default_model_AutoML_Classification']

    metrics.get_port_data_reference().download('.')
    model.get_port_data_reference().download('.')

    metrics_file = Path(metrics.get_port_data_reference()._path_on_datastore)
    model_file = Path(model.get_port_data_reference()._path_on_datastore)
    assert metrics_file.is_file() and model_file.is_file()
    assert len(json.loads(metrics_file.read_text())) >= 1
    features = _features(ws, run)
    assert pickle.loads(model_file.read_bytes()).predict(features).shape == (len(features),)


def test_registered_model_is_the_file(finished):
    """register_model.py (the walkthrough's) registered the model FILE; get_model_path returns it."""
    from airflow_mlpipe import Model, UserErrorException

    ws, _, run = finished
    path = Path(Model.get_model_path("TitanicSurvivalInitial"))
    assert path.is_file(), f"{path} is not a file"
    assert path.name == "best_model_data"
    features = _features(ws, run)
    with open(path, "rb") as f:
        assert pickle.load(f).predict(features).shape == (len(features),)

    # and a downloaded output registers as that file too
    port = run.get_pipeline_output("model_output")
    port.download("local", overwrite=True, show_progress=False)
    local = Model.register(workspace=ws, model_path=os.path.join("local", port._path_on_datastore),
                           model_name="TitanicLocal")
    assert local.version == 1
    again = Path(Model.get_model_path("TitanicLocal"))
    assert again.is_file() and again.read_bytes() == path.read_bytes()
    # the port itself is not a local path: a clear error says what to do
    with pytest.raises(UserErrorException, match="download it first"):
        Model.register(workspace=ws, model_path=port, model_name="TitanicPort")


def test_script_output_written_as_one_file_is_a_file(finished):
    """dataprep.py writes one Parquet file at its output path: its port data reference is that file."""
    ws, _, run = finished
    port = run.find_step_run("dataprep")[0].get_output_data("titanic_train")
    assert port.download("dl", show_progress=False) == 1
    local = Path("dl") / port._path_on_datastore
    assert local.is_file()
    assert "Survived" in pd.read_parquet(local).columns


def test_automl_step_run_best_child(finished):
    """v1 AutoMLStepRun / AutoMLRun: get_best_child(), get_output(), and the default outputs."""
    from airflow_mlpipe import AutoMLStepRun

    ws, _, run = finished
    step_run = run.find_step_run("AutoML_Classification")[0]
    automl_run = AutoMLStepRun(step_run)
    info = step_run.get_metrics()

    best = automl_run.get_best_child()
    assert best.get_metrics()["AUC_weighted"] == pytest.approx(info["AUC_weighted"])
    assert best.properties["run_algorithm"] == info["best_model"]
    assert best.id.startswith(step_run.id + "_")
    assert best.parent.id == step_run.id
    assert "outputs/model.pkl" in best.get_file_names()
    downloaded = best.download_file("outputs/model.pkl", "best.pkl")
    features = _features(ws, run)
    assert pickle.loads(Path(downloaded).read_bytes()).predict(features).shape == (len(features),)
    registered = best.register_model(model_name="TitanicBestChild", model_path="outputs/model.pkl")
    assert Path(registered.get_model_path("TitanicBestChild", _workspace=ws)).is_file()

    children = automl_run.get_children()
    assert len(children) == info["iterations"] and sum(c.id == best.id for c in children) == 1

    best_run, fitted_model = automl_run.get_output()
    assert best_run.id == best.id
    assert fitted_model.predict(features).shape == (len(features),)

    default_metrics = automl_run.get_default_metrics_output().get_port_data_reference()
    assert default_metrics.datastore.fs.isfile(default_metrics.datastore.full_path(default_metrics.path_on_datastore))

    # the v1 import path of AutoMLRun (the step's `azureml` compatibility package)
    compat = importlib.import_module("airflow_mlpipe.compat.azureml.train.automl.run")
    assert isinstance(automl_run, compat.AutoMLRun)
    by_id = compat.AutoMLRun(step_run.experiment, step_run.id)
    assert by_id.get_best_child().id == best.id
