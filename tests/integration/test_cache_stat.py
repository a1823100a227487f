"""Stat trust through the real pipeline (issue 9.5): a same-size rewrite with the mtime put back is still seen,
both for input data (the step reruns) and for step code under regenerate_outputs (the NEW code runs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_mlpipe import Dataset, Datastore, Pipeline, PipelineData, PythonScriptStep

PREP = """
import argparse, os
from azureml.core import Run
p = argparse.ArgumentParser(); p.add_argument("--out")
a = p.parse_args()
df = Run.get_context().input_datasets["raw"].to_pandas_dataframe()
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "prepared.txt"), "w").write("v1:" + ",".join(str(v * 2) for v in df["x"]))
"""
TRAIN = """
import os, sys
inp, out = sys.argv[2], sys.argv[4]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "model.txt"), "w").write(open(os.path.join(inp, "prepared.txt")).read()[::-1])
"""
ALL = {"prep", "train"}


def _rewrite_keeping_size_and_mtime(path: Path, text: str) -> None:
    before = os.stat(path)
    assert len(text.encode()) == before.st_size
    with open(path, "r+b") as fh:
        fh.write(text.encode())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


class Project:
    """Two steps (prep reads a dataset, train reads prep's output), run through Airflow (``dag.test``)."""

    def __init__(self, ws, root: Path, run_dag) -> None:
        self.ws, self.root, self._run_dag = ws, root, run_dag
        self.count = 0
        for name, text in {"prep": PREP, "train": TRAIN}.items():
            (root / name).mkdir(parents=True)
            (root / name / f"{name}.py").write_text(text)
        self.store = Datastore(ws, "workspaceblobstore")
        self.data = Path(self.store.full_path("raw/data.csv"))
        self.data.parent.mkdir(parents=True, exist_ok=True)
        self.data.write_text("x\n1\n2\n3\n")

    def pipeline(self) -> Pipeline:
        raw = Dataset.Tabular.from_delimited_files([(self.store, "raw/data.csv")])
        prepared, model = PipelineData("prepared"), PipelineData("model")
        PythonScriptStep("prep.py", name="prep", arguments=["--out", prepared], inputs=[raw.as_named_input("raw")],
                         outputs=[prepared], source_directory=str(self.root / "prep"))
        last = PythonScriptStep("train.py", name="train", arguments=["--in", prepared, "--out", model],
                                inputs=[prepared], outputs=[model], source_directory=str(self.root / "train"))
        return Pipeline(self.ws, [last])

    def run(self, regenerate: bool = False) -> set[str]:
        """Run and return the names of the steps that executed (not reused)."""
        self.count += 1
        run_id = f"run{self.count}"
        dr = self._run_dag(self.pipeline(), "stat_cached",
                           {"__mlpipe": {"run_id": run_id, "regenerate_outputs": regenerate}})
        assert dr.state == "success"
        rows = self.ws.store.list_step_runs(run_id)
        assert {r["step_name"] for r in rows} == ALL and all(r["status"] == "Finished" for r in rows)
        return {r["step_name"] for r in rows if not r["reused_run_id"]}

    def prepared(self) -> str:
        out = self.ws.store.get_step_run(f"run{self.count}.prep")["outputs"]["prepared"]
        return (Path(self.store.full_path(out["path"])) / "prepared.txt").read_text()


@pytest.fixture
def project(run_dag, workspace, tmp_path):
    p = Project(workspace, tmp_path / "src", run_dag)
    assert p.run() == ALL
    assert p.prepared() == "v1:2,4,6"
    return p


def test_input_rewritten_in_place_with_same_size_and_mtime_reruns(project):
    _rewrite_keeping_size_and_mtime(project.data, "x\n1\n2\n4\n")
    assert project.run() == ALL
    assert project.prepared() == "v1:2,4,8"


def test_forced_rerun_after_same_size_same_mtime_script_edit_runs_the_new_code(project):
    script = project.root / "prep" / "prep.py"
    _rewrite_keeping_size_and_mtime(script, script.read_text().replace('"v1:"', '"v2:"'))
    assert project.run(regenerate=True) == ALL
    assert project.prepared() == "v2:2,4,6"
    assert project.run() == set()  # and the cache now holds the new code's results under the new key
    assert project.prepared() == "v2:2,4,6"
