"""Compiled DAGs run through Airflow in-process (``dag.test()``): XCom handoff, atomic outputs, params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlpipe import (
    Datastore,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
)

PRODUCE = """
import argparse, os
from azureml.core import Run
p = argparse.ArgumentParser(); p.add_argument("--out"); p.add_argument("--n", type=int)
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "numbers.txt"), "w").write("\\n".join(str(i) for i in range(a.n)))
Run.get_context().log("produced", a.n)
Run.get_context().tag("stage", "produce")
Run.get_context().add_properties({"rows": a.n})
print("produced", a.n, "numbers; AML_PARAMETER_n =", os.environ.get("AML_PARAMETER_n"))
"""
CONSUME = """
import argparse, os, sys
from azureml.core import Run
p = argparse.ArgumentParser(); p.add_argument("--inp"); p.add_argument("--out")
a = p.parse_args()
nums = [int(x) for x in open(os.path.join(a.inp, "numbers.txt")).read().split()]
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "sum.txt"), "w").write(str(sum(nums)))
run = Run.get_context()
run.log("total", sum(nums))
if os.environ.get("FAIL_AFTER_WRITE"):
    raise ZeroDivisionError("boom after writing half an output")
"""


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "steps"
    src.mkdir()
    (src / "produce.py").write_text(PRODUCE)
    (src / "consume.py").write_text(CONSUME)
    return workspace, src


def _pipeline(ws, src, env=None):
    from airflow_mlpipe import RunConfiguration

    numbers = PipelineData("numbers")
    total = PipelineData("total", pipeline_output_name="the_total")
    n = PipelineParameter("n", default_value=5)
    PythonScriptStep("produce.py", name="produce", arguments=["--out", numbers, "--n", n],
                               outputs=[numbers], source_directory=str(src))
    rc = RunConfiguration()
    rc.environment_variables = env or {}
    consume = PythonScriptStep("consume.py", name="consume", arguments=["--inp", numbers, "--out", total],
                               inputs=[numbers], outputs=[total], source_directory=str(src), runconfig=rc)
    return Pipeline(ws, steps=[consume])


def test_two_steps_hand_over_through_xcom(run_dag, project):
    ws, src = project
    dr = run_dag(_pipeline(ws, src), "handoff", {"n": 7, "__mlpipe": {"run_id": "run-handoff", "experiment": "exp1"}})
    assert dr.state == "success"
    produced = dr.get_task_instance("produce").xcom_pull(task_ids="produce")["numbers"]
    assert produced["content_hash"].startswith("blake3:") and produced["files"] == 1
    assert produced["path"] == "azureml/run-handoff/produce/numbers"
    steps = {r["step_name"]: r for r in ws.store.list_step_runs("run-handoff")}
    assert {s: r["status"] for s, r in steps.items()} == {"produce": "Finished", "consume": "Finished"}
    total = steps["consume"]["outputs"]["total"]
    local = Path(Datastore.get(ws, total["datastore"]).full_path(total["path"]))
    assert (local / "sum.txt").read_text() == str(sum(range(7)))
    assert ws.store.get_metrics("run-handoff.produce") == {"produced": 7}
    details = steps["produce"]["details"]  # the script's tags and properties outlive the step's commit
    assert details["tags"] == {"stage": "produce"} and details["properties"] == {"rows": 7}
    assert details["cache_key"].startswith("blake3:")
    assert ws.store.get_metrics("run-handoff.consume") == {"total": 21}
    assert steps["consume"]["inputs"]["numbers"]["content_hash"] == produced["content_hash"]
    assert ws.store.get_pipeline_run("run-handoff")["experiment"] == "exp1"


def test_failing_step_leaves_no_visible_output(run_dag, project):
    ws, src = project
    dr = run_dag(_pipeline(ws, src, env={"FAIL_AFTER_WRITE": "1"}), "failing", {"__mlpipe": {"run_id": "run-fail", "experiment": "exp1"}})
    assert dr.state == "failed"
    steps = {r["step_name"]: r for r in ws.store.list_step_runs("run-fail")}
    assert steps["consume"]["status"] == "Failed"
    assert "exited with code 1" in steps["consume"]["error"] and "ZeroDivisionError" in steps["consume"]["error"]
    step_dir = Path(Datastore.get(ws).full_path("azureml/run-fail/consume"))
    assert not step_dir.exists() or list(step_dir.iterdir()) == []  # neither the output nor a partial one
    assert steps["produce"]["status"] == "Finished"
    # metrics logged before the failure are kept
    assert ws.store.get_metrics("run-fail.consume") == {"total": 10}


def test_parameter_default_and_override(run_dag, project):
    ws, src = project
    pipeline = _pipeline(ws, src)
    assert pipeline.to_dag("params").params["n"] == 5
    dr = run_dag(pipeline, "params", {"__mlpipe": {"run_id": "run-default"}})
    assert dr.state == "success"
    assert ws.store.get_metrics("run-default.produce") == {"produced": 5}


def test_tabular_dataset_reaches_script_through_input_datasets(run_dag, workspace, tmp_path, test_data):
    from airflow_mlpipe import Dataset

    src = tmp_path / "s"
    src.mkdir()
    (src / "read.py").write_text(
        "import os, json\nfrom azureml.core import Run\nrun = Run.get_context()\n"
        "df = run.input_datasets['titanic'].to_pandas_dataframe()\n"
        "out = os.environ['AZUREML_DATAREFERENCE_stats']\nos.makedirs(out, exist_ok=True)\n"
        "json.dump({'rows': len(df), 'cols': list(df.columns)}, open(os.path.join(out, 's.json'), 'w'))\n"
        "run.log('rows', len(df))\n"
    )
    store = Datastore(workspace, "workspaceblobstore")
    store.upload(str(test_data / "titanic"), target_path="titanic", overwrite=True, show_progress=False)
    ds = Dataset.Tabular.from_delimited_files([(store, "titanic/*.csv")])
    stats = PipelineData("stats")
    step = PythonScriptStep("read.py", name="read", inputs=[ds.as_named_input("titanic")], outputs=[stats],
                            source_directory=str(src))
    dr = run_dag(Pipeline(workspace, [step]), "tab", {"__mlpipe": {"run_id": "run-tab"}})
    assert dr.state == "success"
    out = ws_output(workspace, "run-tab", "read", "stats")
    data = json.loads((out / "s.json").read_text())
    import pandas as pd

    assert data["rows"] == len(pd.read_csv(test_data / "titanic.csv"))


def ws_output(ws, run_id, task_id, name) -> Path:
    row = ws.store.get_step_run(f"{run_id}.{task_id}")
    out = row["outputs"][name]
    return Path(Datastore.get(ws, out["datastore"]).full_path(out["path"]))


WRITE_CSV = """
import os, sys
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out, exist_ok=True)
ref = os.environ["AZUREML_DATAREFERENCE_lookup"]
rows = open(os.path.join(ref, "values.txt")).read().split()
open(os.path.join(out, "part.csv"), "w").write("v\\n" + "\\n".join(rows) + "\\n")
"""
READ_CSV = """
import os, sys
from azureml.core import Run
run = Run.get_context()
df = run.input_datasets["table"].to_pandas_dataframe()
files = run.input_datasets["files"]
assert os.path.isdir(files), files
run.log("total", int(df["v"].sum()))
run.log("n_files", len(os.listdir(files)))
"""


def test_data_reference_output_file_dataset_and_parsed_views(run_dag, workspace, tmp_path):
    from airflow_mlpipe import DataReference, Dataset, OutputFileDatasetConfig

    src = tmp_path / "s"
    src.mkdir()
    (src / "write.py").write_text(WRITE_CSV)
    (src / "read.py").write_text(READ_CSV)
    store = Datastore(workspace, "workspaceblobstore")
    lookup_dir = Path(store.full_path("lookup"))
    lookup_dir.mkdir(parents=True)
    (lookup_dir / "values.txt").write_text("1 2 3 4")
    ref = DataReference(store, data_reference_name="lookup", path_on_datastore="lookup")
    table = OutputFileDatasetConfig(name="table").register_on_complete("written_table")
    write = PythonScriptStep("write.py", name="write", arguments=["--out", table], inputs=[ref],
                             source_directory=str(src))
    read = PythonScriptStep("read.py", name="read",
                            inputs=[table.read_delimited_files().as_named_input("table"),
                                    table.as_input("files")],
                            source_directory=str(src))
    dr = run_dag(Pipeline(workspace, [read, write]), "views", {"__mlpipe": {"run_id": "run-views"}})
    assert dr.state == "success"
    assert workspace.store.get_metrics("run-views.read") == {"total": 10, "n_files": 1}
    registered = Dataset.get_by_name(workspace, "written_table")
    assert registered.version == 1
    assert [p.rsplit("/", 1)[-1] for p in registered.to_path()] == ["part.csv"]
