"""The Titanic pipeline (dags/titanic_pipeline.py) end to end through Airflow in-process, on a small budget.

Trained on part1 of the Titanic data (registered as ``titanic_ds`` before the DAG file runs, so the DAG file
uses it); part2 is the held-out set the model output must predict.
"""

from __future__ import annotations

import json
import pickle
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "titanic_pipeline.py"
DATAPREP = REPO / "dags" / "titanic" / "dataprep.py"

pytestmark = pytest.mark.timeout(600)


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """The walkthrough's data preparation (the functions of dags/titanic/dataprep.py) on a local frame."""
    source = DATAPREP.read_text().split("parser = argparse")[0].replace("from azureml.core import Run", "")
    ns: dict = {}
    exec(compile(source, str(DATAPREP), "exec"), ns)
    df = df.drop(["PassengerId", "Name", "Ticket", "Cabin"], axis=1)
    return ns["prepare_embarked"](ns["prepare_genders"](ns["prepare_fare"](ns["prepare_age"](df))))


def _output_dir(ws, value: dict) -> Path:
    from airflow_mlpipe import Datastore

    return Path(Datastore.get(ws, value["datastore"]).full_path(value["path"]))


@pytest.fixture
def titanic(workspace, test_data, monkeypatch):
    from airflow_mlpipe import Dataset

    monkeypatch.setenv("MLPIPE_TITANIC_TIMEOUT_MINUTES", "0.25")  # 15 s of search
    store = workspace.get_default_datastore()
    store.upload_files([str(test_data / "titanic" / "part1.csv")], target_path="titanic", overwrite=True,
                       show_progress=False)
    Dataset.Tabular.from_delimited_files([(store, "titanic/part1.csv")]).register(workspace, "titanic_ds")
    module = runpy.run_path(str(DAG_FILE))
    return workspace, module


def test_titanic_pipeline_end_to_end(run_dag, titanic, test_data):
    from airflow_mlpipe import AutoMLStepRun, Model

    ws, module = titanic
    assert module["dag"].dag_id == "titanic_pipeline"
    meta = {"__mlpipe": {"run_id": "titanic-1", "experiment": "titanic_automl"}}
    dr = run_dag(module["pipeline"], "titanic_test", meta)
    assert dr.state == "success"
    steps = {r["step_name"]: r for r in ws.store.list_step_runs("titanic-1")}
    assert {s: r["status"] for s, r in steps.items()} == {
        "dataprep": "Finished", "AutoML_Classification": "Finished", "register_model": "Finished"}
    automl = steps["AutoML_Classification"]
    info = automl["details"]["automl"]
    assert info["primary_metric"] == "AUC_weighted" and 0.75 < info["best_score"] <= 1

    # step metrics in the store: the best model, its metric, the number of iterations
    metrics = ws.store.get_metrics("titanic-1.AutoML_Classification")
    assert metrics["best_model"] == info["best_model"]
    assert metrics["AUC_weighted"] == pytest.approx(info["best_score"])

    # the metrics output: JSON that loads into a DataFrame, one row per model tried
    metrics_file = _output_dir(ws, automl["outputs"]["metrics_data"])  # the output IS the file, as in v1
    df = pd.DataFrame(json.loads(metrics_file.read_text()))
    assert len(df) == metrics["iterations"] >= 2
    assert {"iteration", "model", "AUC_weighted", "accuracy", "norm_macro_recall",
            "average_precision_score_weighted", "precision_score_weighted", "training_time_s"} <= set(df.columns)
    assert df["AUC_weighted"].max() == pytest.approx(info["best_score"])

    # the model output: unpickles in a fresh Python (project installed only) and predicts held-out rows
    model_file = _output_dir(ws, automl["outputs"]["best_model_data"])
    held_out = _prepare(pd.read_csv(test_data / "titanic" / "part2.csv"))
    features = held_out.drop(columns=["Survived"])
    features_file = ws.home / "held_out.parquet"
    features.to_parquet(features_file)
    code = ("import pickle, sys, json, pandas as pd\n"
            "m = pickle.load(open(sys.argv[1], 'rb'))\n"
            "X = pd.read_parquet(sys.argv[2])\n"
            "print(json.dumps({'pred': [int(v) for v in m.predict(X)], "
            "'proba': [float(p[1]) for p in m.predict_proba(X)], 'flaml': 'flaml' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(model_file), str(features_file)], capture_output=True,
                         text=True, timeout=120, cwd=str(ws.home))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    from sklearn.metrics import roc_auc_score

    truth = held_out["Survived"].to_numpy()
    assert len(result["pred"]) == len(held_out)
    assert roc_auc_score(truth, result["proba"]) > 0.75  # ranks held-out passengers well
    majority = max(truth.mean(), 1 - truth.mean())
    assert (result["pred"] == truth).mean() >= majority - 0.02  # and its labels are no worse than the base rate
    model = pickle.loads(model_file.read_bytes())
    assert model.columns == list(features.columns)

    # the registered model: version 1, loadable through Model.get_model_path
    registered = Model(ws, "TitanicSurvivalInitial")
    assert registered.version == 1 and registered.id == "TitanicSurvivalInitial:1"
    assert registered.run_id == "titanic-1.register_model"
    path = Path(Model.get_model_path("TitanicSurvivalInitial", _workspace=ws))
    assert pickle.loads(path.read_bytes()).predict(features).shape == (len(features),)  # the model file

    # AutoMLStepRun: the best model and the iteration metrics from the run
    step_run = ws.get_run("titanic-1").find_step_run("AutoML_Classification")[0]
    automl_run = AutoMLStepRun(step_run)
    assert automl_run.best_model_name == info["best_model"]
    assert len(automl_run.get_iteration_metrics()) == len(df)
    _, fitted = automl_run.get_output()
    assert fitted.predict(features).shape == (len(features),)

    # a second run: data prep and AutoML are reused, the model is registered again as version 2
    dr2 = run_dag(module["pipeline"], "titanic_test",
                  {"__mlpipe": {"run_id": "titanic-2", "experiment": "titanic_automl"}})
    assert dr2.state == "success"
    steps2 = {r["step_name"]: r for r in ws.store.list_step_runs("titanic-2")}
    assert steps2["AutoML_Classification"]["reused_run_id"] == "titanic-1.AutoML_Classification"
    assert steps2["dataprep"]["reused_run_id"] == "titanic-1.dataprep"
    assert steps2["register_model"]["status"] == "Finished" and not steps2["register_model"]["reused_run_id"]
    assert [m.version for m in Model.list(ws, name="TitanicSurvivalInitial")] == [2, 1]
    assert Model(ws, "TitanicSurvivalInitial").version == 2
    assert Model(ws, "TitanicSurvivalInitial", version=1).version == 1


def test_model_register_versions(workspace, tmp_path):
    from airflow_mlpipe import Model
    from airflow_mlpipe.contract.exceptions import ModelNotFoundException

    f = tmp_path / "m.pkl"
    f.write_bytes(b"v1")
    first = Model.register(workspace, str(f), "demo", tags={"stage": "dev"}, description="first")
    f.write_bytes(b"v2")
    second = Model.register(workspace, model_path=str(f), model_name="demo")
    assert (first.version, second.version) == (1, 2)
    assert Path(Model.get_model_path("demo", version=1, _workspace=workspace)).read_bytes() == b"v1"
    assert Path(Model.get_model_path("demo", _workspace=workspace)).read_bytes() == b"v2"
    assert Model(workspace, id="demo:1").description == "first"
    assert [m.id for m in Model.list(workspace, tags=[["stage", "dev"]])] == ["demo:1"]
    with pytest.raises(ModelNotFoundException):
        Model(workspace, "demo", version=3)
    with pytest.raises(ModelNotFoundException):
        Model(workspace, "nope")
