"""Compiler: a PipelineSpec becomes an Airflow DAG (tasks, dependencies, Params, tags) without a scheduler."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_mlpipe import (
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineValidationError,
    PythonScriptStep,
)
from airflow_mlpipe.compiler import factory
from airflow_mlpipe.compiler.dag_builder import build_dag
from airflow_mlpipe.contract.spec import spec_hash
from airflow_mlpipe.operators.base import PLANNER_TASK_ID


@pytest.fixture
def src(tmp_path: Path) -> str:
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("a.py", "b.py", "c.py", "d.py"):
        (folder / name).write_text(f"print({name!r})\n")
    return str(folder)


def _diamond(ws: Any, src: str, reuse: bool = True) -> Pipeline:
    """prep -> (left, right) by data; report runs after left by ``run_after`` only; typed parameters."""
    n = PipelineParameter("n", default_value=3)
    rate = PipelineParameter("rate", default_value=0.5)
    label = PipelineParameter("label", default_value="x")
    flag = PipelineParameter("flag", default_value=True)
    raw = PipelineData("raw")
    left_out, right_out = PipelineData("left_out"), PipelineData("right_out")
    prep = PythonScriptStep("a.py", name="prep", arguments=["--out", raw, "--n", n], outputs=[raw],
                            source_directory=src, allow_reuse=reuse)
    left = PythonScriptStep("b.py", name="left", arguments=["--in", raw, "--out", left_out, "--r", rate],
                            inputs=[raw], outputs=[left_out], source_directory=src, allow_reuse=reuse)
    right = PythonScriptStep("c.py", name="right", arguments=["--in", raw, "--out", right_out, "--l", label,
                                                              "--f", flag],
                             inputs=[raw], outputs=[right_out], source_directory=src, allow_reuse=reuse,
                             compute_target=("gpu-queue", "AmlCompute"))
    report = PythonScriptStep("d.py", name="report", source_directory=src, allow_reuse=reuse)
    report.run_after(left)
    return Pipeline(ws, steps=[prep, left, right, report])


def test_one_task_per_step_plus_planner_and_dependencies(workspace, src):
    spec = _diamond(workspace, src).to_spec("diamond")
    dag = build_dag(spec)
    assert dag.dag_id == "diamond"
    assert set(dag.task_dict) == {"prep", "left", "right", "report", PLANNER_TASK_ID}
    ups = {tid: set(t.upstream_task_ids) for tid, t in dag.task_dict.items()}
    assert ups == {PLANNER_TASK_ID: set(), "prep": {PLANNER_TASK_ID}, "left": {"prep"}, "right": {"prep"},
                   "report": {"left"}}


def test_step_tasks_trigger_rule_queue_and_operator(workspace, src):
    from airflow_mlpipe.operators.python_script import PythonScriptStepOperator

    dag = build_dag(_diamond(workspace, src).to_spec("diamond"))
    for tid in ("prep", "left", "right", "report"):
        task = dag.task_dict[tid]
        assert isinstance(task, PythonScriptStepOperator)
        assert task.trigger_rule == "none_failed", tid
        assert task.step["name"] == tid
    assert dag.task_dict["right"].queue == "gpu-queue"
    default_queue = dag.task_dict["prep"].queue
    assert default_queue != "gpu-queue"
    assert dag.task_dict["left"].queue == default_queue


def test_no_planner_when_nothing_can_be_decided_up_front(workspace, src):
    spec = _diamond(workspace, src, reuse=False).to_spec("noreuse")
    dag = build_dag(spec)
    assert PLANNER_TASK_ID not in dag.task_dict
    assert set(dag.task_dict) == {"prep", "left", "right", "report"}
    assert dag.task_dict["prep"].upstream_task_ids == set()
    assert dag.task_dict["report"].upstream_task_ids == {"left"}
    # the only reusable step reads another step's output: still nothing to plan before anything runs
    spec["steps"][1]["allow_reuse"] = True
    assert PLANNER_TASK_ID not in build_dag(spec).task_dict
    spec["steps"][0]["allow_reuse"] = True
    assert PLANNER_TASK_ID in build_dag(spec).task_dict


def test_parameters_become_typed_params_with_defaults(workspace, src):
    dag = build_dag(_diamond(workspace, src).to_spec("diamond"))
    got = {name: (dag.params.get_param(name).value, dag.params.get_param(name).schema.get("type"))
           for name in dag.params}
    assert got == {"n": (3, "integer"), "rate": (0.5, "number"), "label": ("x", "string"),
                   "flag": (True, "boolean")}
    assert "PipelineParameter n (int)" in dag.params.get_param("n").description


def test_tags_display_name_and_doc_carry_experiment_and_spec_hash(workspace, src):
    spec = _diamond(workspace, src).to_spec("exp1__graph")
    plain = build_dag(spec)
    assert set(plain.tags) == {"mlpipe"}
    assert re.search(r"spec: `([0-9a-f]{64})`", plain.doc_md).group(1) == spec_hash(spec)

    spec["experiment"] = "exp1"
    dag = build_dag(spec)
    assert set(dag.tags) == {"mlpipe", "experiment:exp1"}
    assert dag.dag_display_name == "exp1 · graph"
    digest = re.search(r"spec: `([0-9a-f]{64})`", dag.doc_md).group(1)
    assert digest == spec_hash(spec) != spec_hash({k: v for k, v in spec.items() if k != "experiment"})
    assert "| report | PythonScriptStep | left |" in dag.doc_md
    assert dag.task_dict["prep"].pipeline["spec_hash"] == digest


def test_same_spec_gives_same_dag(workspace, src):
    spec = _diamond(workspace, src).to_spec("diamond")
    a, b = build_dag(spec), build_dag(json.loads(json.dumps(spec)))
    assert a.doc_md == b.doc_md
    assert {t: set(x.upstream_task_ids) for t, x in a.task_dict.items()} == \
        {t: set(x.upstream_task_ids) for t, x in b.task_dict.items()}


def test_bad_path_in_spec_names_the_step(workspace, src):
    spec = _diamond(workspace, src).to_spec("diamond")
    spec["steps"][2]["script_name"] = "../../etc/passwd"
    with pytest.raises(PipelineValidationError, match=r"step 'right'.*script_name"):
        build_dag(spec)


def test_unknown_kind_names_the_step(workspace, src):
    spec = _diamond(workspace, src).to_spec("diamond")
    spec["steps"][1]["kind"] = "HyperDriveStep"
    with pytest.raises(Exception, match="left"):
        build_dag(spec)


def test_unknown_kind_is_rejected(workspace, src):
    spec = _diamond(workspace, src).to_spec("diamond")
    spec["steps"][1]["kind"] = "HyperDriveStep"
    with pytest.raises(ValueError, match="HyperDriveStep"):
        build_dag(spec)


def test_factory_keeps_good_specs_and_records_the_bad_one(workspace, src, tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    good = _diamond(workspace, src)
    (folder / "a_good.json").write_text(json.dumps(good.to_spec("a_good")))
    bad = good.to_spec("b_bad")
    bad["steps"][0]["script_name"] = "/abs/path.py"
    (folder / "b_bad.json").write_text(json.dumps(bad))
    (folder / "c_good.json").write_text(json.dumps(good.to_spec("c_good")))
    (folder / "d_notjson.json").write_text("{not json")
    (folder / "ignored.txt").write_text("not a spec")

    dags = factory.build_dags_from_folder(folder)
    assert sorted(dags) == ["a_good", "c_good"]
    assert PLANNER_TASK_ID in dags["c_good"].task_dict
    errors = factory.FACTORY_ERRORS["submitted"]
    assert sorted(errors) == [str(folder / "b_bad.json"), str(folder / "d_notjson.json")]
    assert "step 'prep'" in errors[str(folder / "b_bad.json")]
    assert "d_notjson.json: PipelineValidationError" in errors[str(folder / "d_notjson.json")]

    (folder / "b_bad.json").unlink()  # the errors are of the latest load only
    factory.build_dags_from_folder(folder)
    assert list(factory.FACTORY_ERRORS["submitted"]) == [str(folder / "d_notjson.json")]
