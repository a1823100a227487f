"""The step cache never reuses wrongly and never misses needlessly: each mutation asserts the exact steps that ran."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_mlpipe import (
    Dataset,
    Datastore,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    RunConfiguration,
)
from tests.helpers.waiting import wait_for_file

PREP = """
import argparse, os
from azureml.core import Run
from helpers import scale
p = argparse.ArgumentParser(); p.add_argument("--out"); p.add_argument("--mode"); p.add_argument("--factor", type=float)
a = p.parse_args()
df = Run.get_context().input_datasets["raw"].to_pandas_dataframe()
os.makedirs(a.out, exist_ok=True)
vals = [scale(v, a.factor) for v in df["x"]]
open(os.path.join(a.out, "prepared.txt"), "w").write(a.mode + ":" + ",".join(str(v) for v in vals))
"""
HELPERS = "def scale(v, f):\n    return v * f\n"
TRAIN = """
import os, sys
inp, out = sys.argv[2], sys.argv[4]
os.makedirs(out, exist_ok=True)
text = open(os.path.join(inp, "prepared.txt")).read()
open(os.path.join(out, "model.txt"), "w").write(str(len(text)) + ":" + text[::-1])
"""
REPORT = """
import os, sys
inp, out = sys.argv[2], sys.argv[4]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "report.txt"), "w").write("model " + open(os.path.join(inp, "model.txt")).read())
"""


class Project:
    def __init__(self, ws, root: Path, run_dag) -> None:
        self.ws, self.root, self._run_dag = ws, root, run_dag
        self.count = 0
        for name, files in {"prep": {"prep.py": PREP, "helpers.py": HELPERS, ".amlignore": "notes/\n"},
                            "train": {"train.py": TRAIN}, "report": {"report.py": REPORT}}.items():
            folder = root / name
            folder.mkdir(parents=True)
            for fname, text in files.items():
                (folder / fname).write_text(text)
        (root / "prep" / "notes").mkdir()
        (root / "prep" / "notes" / "todo.txt").write_text("ideas")
        self.store = Datastore(ws, "workspaceblobstore")
        self.write_data("x\n1\n2\n3\n")

    def write_data(self, text: str) -> None:
        path = self.store.full_path("raw/data.csv")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_text(text)

    def pipeline(self, mode="fast", train_env=None, report_reuse=True, train_version=None):
        raw = Dataset.Tabular.from_delimited_files([(self.store, "raw/data.csv")])
        factor = PipelineParameter("factor", default_value=2.0)
        prepared, model, report = PipelineData("prepared"), PipelineData("model"), PipelineData("report")
        rc = RunConfiguration()
        rc.environment_variables = train_env or {}
        PythonScriptStep("prep.py", name="prep", arguments=["--out", prepared, "--mode", mode, "--factor", factor],
                         inputs=[raw.as_named_input("raw")], outputs=[prepared],
                         source_directory=str(self.root / "prep"))
        PythonScriptStep("train.py", name="train", arguments=["--in", prepared, "--out", model],
                         inputs=[prepared], outputs=[model], source_directory=str(self.root / "train"), runconfig=rc,
                         version=train_version)
        last = PythonScriptStep("report.py", name="report", arguments=["--in", model, "--out", report],
                                inputs=[model], outputs=[report], source_directory=str(self.root / "report"),
                                allow_reuse=report_reuse)
        return Pipeline(self.ws, [last])

    def run(self, pipeline=None, params=None, regenerate=False) -> set[str]:
        """Run and return the names of the steps that executed (not reused)."""
        self.count += 1
        run_id = f"run{self.count}"
        conf = {**(params or {}), "__mlpipe": {"run_id": run_id, "regenerate_outputs": regenerate}}
        dr = self._run_dag(pipeline or self.pipeline(), "cached", conf)
        assert dr.state == "success"
        rows = self.ws.store.list_step_runs(run_id)
        assert {r["step_name"] for r in rows} == {"prep", "train", "report"}
        assert all(r["status"] == "Finished" for r in rows)
        return {r["step_name"] for r in rows if not r["reused_run_id"]}

    def report_text(self) -> str:
        row = self.ws.store.get_step_run(f"run{self.count}.report")
        out = row["outputs"]["report"]
        return (Path(self.store.full_path(out["path"])) / "report.txt").read_text()


@pytest.fixture
def project(run_dag, workspace, tmp_path):
    p = Project(workspace, tmp_path / "src", run_dag)
    assert p.run() == {"prep", "train", "report"}
    return p


ALL = {"prep", "train", "report"}


def test_identical_rerun_reuses_everything(project):
    assert project.run() == set()
    row = project.ws.store.get_step_run("run2.prep")
    assert row["reused_run_id"] == "run1.prep"
    assert "model" in project.report_text()


def test_step_script_edit_runs_that_step_and_cuts_off_early(project):
    script = project.root / "prep" / "prep.py"
    script.write_text(script.read_text() + "\n# a comment that changes nothing\n")
    assert project.run() == {"prep"}  # its output is byte-identical, so train and report are reused


def test_imported_helper_edit_is_seen(project):
    (project.root / "prep" / "helpers.py").write_text("def scale(v, f):\n    return v * f + 1\n")
    assert project.run() == ALL


def test_file_excluded_by_amlignore_still_hits(project):
    (project.root / "prep" / "notes" / "todo.txt").write_text("more ideas")
    (project.root / "prep" / "notes" / "new.txt").write_text("x")
    assert project.run() == set()


def test_argument_change(project):
    assert project.run(project.pipeline(mode="slow")) == ALL


def test_parameter_value_change(project):
    assert project.run(params={"factor": 3.0}) == ALL
    assert project.run(params={"factor": 3.0}) == set()
    assert project.run() == set()  # the default's results are still in the cache


def test_environment_change_runs_only_that_step(project):
    assert project.run(project.pipeline(train_env={"OMP_NUM_THREADS": "1"})) == {"train"}


def test_version_change(project):
    assert project.run(project.pipeline(train_version="2")) == {"train"}


def test_input_data_content_at_same_path(project):
    project.write_data("x\n1\n2\n4\n")
    assert project.run() == ALL
    project.write_data("x\n1\n2\n4\n")  # rewritten with the same bytes: new mtime, same content
    assert project.run() == set()


def test_deleted_cached_output_is_evicted(project):
    row = project.ws.store.get_step_run("run1.train")
    shutil.rmtree(project.store.full_path(row["outputs"]["model"]["path"]))
    assert project.run() == {"train"}  # re-created with the same content: report is reused
    assert "model" in project.report_text()


def test_modified_cached_output_is_evicted(project):
    row = project.ws.store.get_step_run("run1.prep")
    path = Path(project.store.full_path(row["outputs"]["prepared"]["path"])) / "prepared.txt"
    path.write_text(path.read_text().replace("2", "9"))  # same size, different bytes
    assert project.run() == {"prep"}


def test_allow_reuse_false_and_regenerate_outputs(project):
    assert project.run(project.pipeline(report_reuse=False)) == {"report"}
    assert project.run(regenerate=True) == ALL


def test_miss_is_explained_in_the_plan(project):
    from airflow_mlpipe.runtime.planner import plan_steps

    (project.root / "prep" / "helpers.py").write_text("def scale(v, f):\n    return v * f + 1\n")
    spec = project.pipeline().to_spec("cached")
    decisions, timings = plan_steps(project.ws, spec["steps"], {"factor": 2.0})
    by = {d.step: d for d in decisions}
    assert by["prep"].action == "run" and "source file helpers.py changed" in by["prep"].reason
    assert by["train"].action == "pending" and by["report"].action == "pending"
    decisions, _ = plan_steps(project.ws, spec["steps"], {"factor": 5.0})
    assert "parameter 'factor' 2.0 -> 5.0" in {d.step: d for d in decisions}["prep"].reason


# ---------------------------------------------------------------------------------------------- concurrency
DRIVER = """
import json, sys, logging
from airflow_mlpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
from airflow_mlpipe.runtime.step_runner import StepExecution, run_python_step
logging.basicConfig(level=logging.INFO)
home, src, run_id = sys.argv[1:4]
ws = Workspace(home=home)
out = PipelineData("out")
spec = Pipeline(ws, [PythonScriptStep("slow.py", name="slow", arguments=["--out", out], outputs=[out],
                                      source_directory=src)]).to_spec("p")
ex = StepExecution(ws, run_id, "exp", "p", spec["steps"][0], {"parameters": {}, "default_datastore": None}, {},
                   lambda t, o: None)
result = run_python_step(ex)
print("RESULT", json.dumps({"reused_from": result.reused_from, "uri": result.outputs["out"]["uri"]}))
"""
SLOW = """
import os, sys, time
marker = os.environ["MARKER"]
open(marker, "a").write("started\\n")
time.sleep(float(os.environ.get("SLEEP", "3")))
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "o.txt"), "w").write("done")
"""


def _driver(tmp_path: Path, ws, src: Path, run_id: str, sleep: str) -> subprocess.Popen:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "MARKER": str(tmp_path / "marker.txt"), "SLEEP": sleep}
    return subprocess.Popen([sys.executable, str(driver), str(ws.home), str(src), run_id], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _slow_src(tmp_path: Path) -> Path:
    src = tmp_path / "slow"
    src.mkdir()
    (src / "slow.py").write_text(textwrap.dedent(SLOW))
    return src


def test_concurrent_identical_steps_compute_once(workspace, tmp_path):
    src = _slow_src(tmp_path)
    first = _driver(tmp_path, workspace, src, "c1", "3")
    wait_for_file(tmp_path / "marker.txt", "the first step to start computing", timeout=60)  # it holds the lock
    second = _driver(tmp_path, workspace, src, "c2", "3")
    outs = [p.communicate(timeout=120)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    results = [json.loads(o.split("RESULT ", 1)[1]) for o in outs]
    assert (tmp_path / "marker.txt").read_text().count("started") == 1
    assert results[0]["reused_from"] is None and results[1]["reused_from"] == "c1.slow"
    assert results[0]["uri"] == results[1]["uri"]


def test_killed_step_leaves_no_entry_and_next_run_computes(workspace, tmp_path):
    from sqlalchemy import func, select

    from airflow_mlpipe.store.tables_cache import cache_entries

    src = _slow_src(tmp_path)
    victim = _driver(tmp_path, workspace, src, "k1", "30")
    marker = tmp_path / "marker.txt"
    wait_for_file(marker, "the step to start computing", timeout=60)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    with workspace.store.begin() as conn:
        assert conn.scalar(select(func.count()).select_from(cache_entries)) == 0
    step_dir = Path(Datastore.get(workspace).full_path("azureml/k1/slow"))
    assert not (step_dir / "out").exists()  # only an uncommitted staging folder may remain
    again = _driver(tmp_path, workspace, src, "k2", "0")
    out = again.communicate(timeout=120)[0]
    assert again.returncode == 0, out
    assert json.loads(out.split("RESULT ", 1)[1])["reused_from"] is None
    assert marker.read_text().count("started") == 2
