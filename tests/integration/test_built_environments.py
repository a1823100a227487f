"""Steps run in environments built with uv from their pip/conda dependencies, cached by content hash.

Real uv, real PyPI: the worker has tabulate 0.10.0, so a step that sees 0.9.0 runs in its own environment.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_mlpipe import (
    CondaDependencies,
    Dataset,
    Datastore,
    Environment,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    RunConfiguration,
)
from airflow_mlpipe.runtime import environments as envs

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)

TABLE = """
import argparse, os, sys
import tabulate
from azureml.core import Run
p = argparse.ArgumentParser(); p.add_argument("--out")
a = p.parse_args()
run = Run.get_context()
df = run.input_datasets["raw"].to_pandas_dataframe()
print("tabulate version", tabulate.__version__, "python", sys.executable)
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "table.txt"), "w").write(tabulate.tabulate(df.values.tolist(), headers=list(df.columns)))
run.log("rows", len(df))
try:
    import airflow
    print("airflow is importable")
except ImportError:
    print("airflow is not importable")
"""


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "table.py").write_text(TABLE)
    store = Datastore(workspace, "workspaceblobstore")
    path = Path(store.full_path("raw/data.csv"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x,y\n1,a\n2,b\n")
    return workspace, src, store


def _table_pipeline(ws, src, store, pip, name="tabulate-env", conda=None):
    raw = Dataset.Tabular.from_delimited_files([(store, "raw/data.csv")])
    rc = RunConfiguration()
    rc.environment = Environment(name)
    rc.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=pip, conda_packages=conda)
    out = PipelineData("table")
    step = PythonScriptStep("table.py", name="table", arguments=["--out", out], inputs=[raw.as_named_input("raw")],
                            outputs=[out], source_directory=str(src), runconfig=rc, allow_reuse=False)
    return Pipeline(ws, [step])


@pytest.fixture
def step_log(capfd):
    """Everything the task logs so far (``dag.test()`` writes the task log to stdout)."""
    seen: list[str] = []

    def read() -> str:
        out, err = capfd.readouterr()
        seen.extend([out, err])
        return "".join(seen)

    return read


def test_step_runs_in_its_built_environment_and_the_next_run_reuses_it(run_dag, project, step_log):
    ws, src, store = project
    assert md.version("tabulate") != "0.9.0"  # the worker's own tabulate differs: the step must not see it
    pipeline = _table_pipeline(ws, src, store, ["tabulate==0.9.0", "azureml-defaults"])
    dr = run_dag(pipeline, "envtab", {"__mlpipe": {"run_id": "env-1"}})
    assert dr.state == "success"
    log = step_log()
    assert "tabulate version 0.9.0" in log
    assert "airflow is not importable" in log  # exactly the step's packages, not the worker's
    assert "Environment 'tabulate-env' (hash " in log and ") built in " in log
    assert "not installing azureml-defaults" in log
    built = [p for p in envs.environments_root(ws.home).iterdir() if p.is_dir()]
    assert len(built) == 1 and f"python {built[0]}/bin/python" in log
    assert ws.store.get_metrics("env-1.table") == {"rows": 2}
    out = ws.store.get_step_run("env-1.table")["outputs"]["table"]
    assert "a" in (Path(store.full_path(out["path"])) / "table.txt").read_text()

    dr = run_dag(pipeline, "envtab", {"__mlpipe": {"run_id": "env-2"}})
    assert dr.state == "success"
    second = step_log()[len(log):]
    assert f"Environment 'tabulate-env' (hash {built[0].name}) reused" in second
    assert "built in" not in second and "tabulate version 0.9.0" in second


def test_same_content_under_another_name_shares_the_environment(project):
    ws, _, _ = project
    spec = {"name": "one", "python": {"conda": {"pip": ["tabulate==0.9.0"], "conda": []}}}
    first = envs.plan_environment(spec, ws.store_url)
    second = envs.plan_environment({**spec, "name": "two"}, ws.store_url)
    assert first.content_hash == second.content_hash


def test_unknown_package_fails_the_step_with_uvs_message(run_dag, project, step_log):
    ws, src, store = project
    pipeline = _table_pipeline(ws, src, store, ["mlpipe-no-such-package-xyz==1.0"], name="broken-env")
    dr = run_dag(pipeline, "envbad", {"__mlpipe": {"run_id": "bad-1"}})
    assert dr.state == "failed"
    error = ws.store.get_step_run("bad-1.table")["error"]
    assert "environment 'broken-env'" in error and "uv pip install" in error
    assert "mlpipe-no-such-package-xyz" in error and "not found in the package registry" in error
    assert "not found in the package registry" in step_log()
    assert not [p for p in envs.environments_root(ws.home).iterdir() if p.is_dir()]  # nothing half-built stays


def test_conda_packages_map_to_pypi_and_install(run_dag, project, step_log):
    ws, src, store = project
    pipeline = _table_pipeline(ws, src, store, ["tabulate==0.9.0"], name="conda-env", conda=["py-xgboost"])
    assert run_dag(pipeline, "envconda", {"__mlpipe": {"run_id": "conda-1"}}).state == "success"
    folder = next(p for p in envs.environments_root(ws.home).iterdir() if p.is_dir())
    shown = subprocess.run([str(folder / "bin" / "python"), "-c", "import xgboost; print(xgboost.__version__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert shown == md.version("xgboost")  # unpinned: the worker's version


def test_python_version_not_on_the_worker_is_a_clear_error(project):
    ws, _, _ = project
    spec = {"name": "old-python", "python": {"conda": {"pip": ["tabulate"], "python": "3.7"}}}
    with pytest.raises(envs.EnvironmentBuildError, match=r"environment 'old-python'.*Python 3.7 is not installed"):
        envs.plan_environment(spec, ws.store_url, "Step 'train'")


CONCURRENT = """
import logging, sys
from airflow_mlpipe.runtime import environments as envs
plan = envs.plan_environment({"name": "shared", "python": {"conda": {"pip": ["tabulate==0.9.0"]}}})
python, built = envs.ensure_environment(sys.argv[1], plan, logging.getLogger())
print("BUILT" if built else "REUSED", python)
"""


def test_concurrent_builds_of_one_environment_build_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(r[0] for r in results) == ["BUILT", "REUSED", "REUSED"]
    assert len({r[1] for r in results}) == 1


HOLD_LOCK = """
import fcntl, sys, time
fh = open(sys.argv[1], "a"); fcntl.flock(fh, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(300)
"""


def test_garbage_collection_removes_environments_unused_for_max_age(tmp_path):
    log = logging.getLogger("test")
    old = envs.plan_environment({"name": "old", "python": {"conda": {"pip": ["tabulate==0.9.0"]}}})
    fresh = envs.plan_environment({"name": "fresh", "python": {"conda": {"pip": ["tabulate==0.8.10"]}}})
    old_python, _ = envs.ensure_environment(tmp_path, old, log)
    envs.ensure_environment(tmp_path, fresh, log)
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old_python.parents[1] / envs.LAST_USED, (ten_days_ago, ten_days_ago))
    assert envs.collect_garbage(tmp_path, 30) == []
    lock = envs.environments_root(tmp_path) / f"{old.content_hash}.lock"
    held = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "locked"
        assert envs.collect_garbage(tmp_path, 7) == [], "an environment being built (its lock held) was removed"
    finally:
        held.kill()
        held.wait()
    assert envs.collect_garbage(tmp_path, 7) == [old.content_hash]
    remaining = [p.name for p in envs.environments_root(tmp_path).iterdir() if p.is_dir()]
    assert remaining == [fresh.content_hash]
    _, built = envs.ensure_environment(tmp_path, old, log)  # asked for again: rebuilt
    assert built


SEED_REGISTER_INPUT = """
import argparse, os, pickle
p = argparse.ArgumentParser(); p.add_argument("--out"); a = p.parse_args()
os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
pickle.dump({"model": "stand-in"}, open(a.out, "wb"))
"""


def _seed004_steps(ws, test_data, tmp_path, runconfig):
    """The walkthrough's dataprep.py and register_model.py, unchanged, with the given runconfig."""
    from airflow_mlpipe import PipelineParameter

    store = ws.get_default_datastore()
    store.upload_files([str(REPO / "dags" / "titanic" / "data" / "Titanic.csv")], target_path="titanic",
                       overwrite=True, show_progress=False)
    titanic_ds = Dataset.Tabular.from_delimited_files(path=[(store, "titanic/Titanic.csv")])
    prepped = PipelineData("titanic_train", store).as_dataset()
    dataprep = PythonScriptStep(name="dataprep", script_name="dataprep.py",
                                source_directory=str(REPO / "dags" / "titanic"), runconfig=runconfig,
                                arguments=["--output_path", prepped], inputs=[titanic_ds.as_named_input("titanic_ds")],
                                outputs=[prepped])
    model_src = tmp_path / "model_src"
    model_src.mkdir()
    (model_src / "model.py").write_text(SEED_REGISTER_INPUT)
    model_data = PipelineData("best_model_data", store)
    make_model = PythonScriptStep("model.py", name="model", arguments=["--out", model_data], outputs=[model_data],
                                  source_directory=str(model_src))
    register = PythonScriptStep(script_name="register_model.py", name="register_model",
                                source_directory=str(REPO / "dags" / "titanic"), allow_reuse=False,
                                arguments=["--model_name", PipelineParameter("model_name", default_value="Titanic"),
                                           "--model_path", model_data],
                                inputs=[model_data], runconfig=runconfig)
    return Pipeline(ws, [dataprep, make_model, register])


@pytest.mark.parametrize("use_curated_env", [False, True])
def test_seed004_scripts_run_in_built_environments(run_dag, workspace, test_data, tmp_path, step_log, use_curated_env):
    ws = workspace
    aml_run_config = RunConfiguration()
    # the walkthrough's own branches, verbatim
    USE_CURATED_ENV = use_curated_env  # noqa: N806
    if USE_CURATED_ENV:
        curated_environment = Environment.get(workspace=ws, name="AzureML-Tutorial")
        aml_run_config.environment = curated_environment
    else:
        aml_run_config.environment.python.user_managed_dependencies = False

        # Add some packages relied on by data prep step
        aml_run_config.environment.python.conda_dependencies = CondaDependencies.create(
            conda_packages=['pandas', 'scikit-learn'],
            pip_packages=['azureml-sdk[automl,explain]', 'azureml-dataprep[fuse,pandas]'],
            pin_sdk_version=False)
    pipeline = _seed004_steps(ws, test_data, tmp_path, aml_run_config)
    dr = run_dag(pipeline, "seed004env", {"__mlpipe": {"run_id": f"seed-{use_curated_env}"}})
    assert dr.state == "success", step_log()[-3000:]
    log = step_log()
    name = "AzureML-Tutorial" if use_curated_env else "default"
    assert f"Environment {name!r} (hash " in log
    if not use_curated_env:
        assert "not installing azureml-dataprep[fuse,pandas], azureml-sdk[automl,explain]" in log
    assert "Registered version 1 of model Titanic" in log
    rows = {r["step_name"]: r["status"] for r in ws.store.list_step_runs(f"seed-{use_curated_env}")}
    assert rows == {"dataprep": "Finished", "model": "Finished", "register_model": "Finished"}
