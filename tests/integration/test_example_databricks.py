"""The compare-models example with its DatabricksStep, run the way a user runs it: ``mlpipe run
dags/compare_models_databricks.py`` in a project holding a copy of the repo's dags/ folder, nothing started
before. The embedded Airflow starts, the v1 attach starts the local Databricks emulator, the notebook is imported
into it, and the notebook's Spark aggregates feed the models. Both are stopped with the CLI afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlpipe import Datastore, Experiment, Workspace
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from airflow_mlpipe.clients.databricks_connection import emulator_home, emulator_status
from tests.helpers.embedded import working_directory

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "compare_models_databricks"
pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(600)]


def _mlpipe(root: Path, *args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    """``mlpipe ...`` from a user's shell: no Airflow settings, no Databricks host or v1 variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "AML_DATABRICKS_", "MLPIPE_DATABRICKS_"))}
    return subprocess.run([sys.executable, "-m", "airflow_mlpipe.cli", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The project after one ``mlpipe run`` of the example: (root, workspace, the run's output, task log)."""
    root = tmp_path_factory.mktemp("dbexample")
    shutil.copytree(REPO / "dags", root / "dags")
    with working_directory(root):
        ws = Workspace.from_config()
        try:
            proc = _mlpipe(root, "run", "dags/compare_models_databricks.py")
            run = next(iter(Experiment(ws, DAG_ID).get_runs()), None)
            log = ""
            info = local_airflow.status(ws)
            if run is not None and info is not None:
                with AirflowClient(info.url, info.username, info.password) as client:
                    log = client.task_log(DAG_ID, run.id, "databricksmodule", try_number=1)
            yield root, ws, proc, run, log
        finally:
            stopped = [_mlpipe(root, "databricks", "stop", timeout=120), _mlpipe(root, "airflow", "stop", timeout=180)]
            assert all(p.returncode == 0 for p in stopped), [p.stdout + p.stderr for p in stopped]
            assert not emulator_status(ws)["running"] and local_airflow.status(ws) is None


def _split() -> tuple[pd.DataFrame, pd.DataFrame]:
    iris = pd.read_csv(REPO / "dags" / "data" / "iris.csv")
    test = iris.sample(frac=0.3, random_state=7)
    return iris.drop(test.index), test


def _output_dir(ws: Workspace, run, task_id: str, name: str) -> Path:
    out = ws.store.get_step_run(f"{run.id}.{task_id}")["outputs"][name]
    return Path(Datastore.get(ws, out["datastore"]).full_path(out["path"]))


def test_run_finishes_with_every_step(ran):
    _, _, proc, run, _ = ran
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "PipelineRun Status: Finished" in proc.stdout
    assert run is not None and run.get_status() == "Finished"
    for step in ("extract.py", "databricksmodule", "train.py", "compare.py"):
        assert run.find_step_run(step)[0].get_status() == "Finished", step


def test_notebook_aggregates_the_extracted_rows_with_spark(ran):
    root, ws, _, run, log = ran
    got = pd.read_csv(_output_dir(ws, run, "databricksmodule", "aggregated") / "species_means.csv")
    train, _ = _split()
    features = [c for c in train.columns if c != "species"]
    expected = train.groupby("species")[features].mean()
    assert list(got["species"]) == list(expected.index)
    assert list(got["count"]) == list(train.groupby("species").size())
    assert np.allclose(got.set_index("species")[features].to_numpy(), expected.to_numpy())

    # the notebook got its widgets (notebook_params and the input folder) and ran as the seed's named run
    assert "(myparam=testparam)" in log and "extract.py/extracted" in log
    assert f"the notebook exited with '3 species from {len(train)} rows'" in log
    with sqlite3.connect(emulator_home(ws) / "state.sqlite") as db:
        runs = db.execute("SELECT result_state FROM runs WHERE parent_run_id IS NULL AND run_name = ?",
                          ("demo run name",)).fetchall()
    assert runs == [("SUCCESS",)]


def _accuracies() -> dict[str, float]:
    train, test = _split()
    features = [c for c in train.columns if c != "species"]
    centroids = train.groupby("species")[features].mean()
    dist = np.stack([((test[features] - centroids.loc[sp]) ** 2).sum(axis=1) for sp in centroids.index], axis=1)
    centroid = centroids.index.to_numpy()[dist.argmin(axis=1)]
    tr = train[features].to_numpy()
    nn = [train["species"].iloc[((tr - row) ** 2).sum(axis=1).argmin()] for row in test[features].to_numpy()]
    truth = test["species"].to_numpy()
    return {"nearest_centroid": float((centroid == truth).mean()), "one_nn": float((np.array(nn) == truth).mean())}


def test_compare_step_picks_the_better_model(ran):
    root, _, _, run, _ = ran
    expected = _accuracies()
    target = root / "comparison"
    assert run.get_pipeline_output("comparison").download(str(target)) == 1
    result = json.loads(next(target.rglob("comparison.json")).read_text())
    assert {c["model"]: c["accuracy"] for c in result["candidates"]} == pytest.approx(expected)
    best = max(expected, key=expected.get)
    assert result["best"]["model"] == best and result["pipeline_arg"] == 10
    assert run.find_step_run("compare.py")[0].get_metrics()["best_accuracy"] == pytest.approx(expected[best])
