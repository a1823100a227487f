"""The step-kind registry: one line maps a kind to its SDK class, operator and runtime, and the spec check,
the compiler, the planner, the cache key and the REST models all go through it."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from airflow_mlpipe import Pipeline, PythonScriptStep
from airflow_mlpipe.compiler.dag_builder import build_dag, plannable
from airflow_mlpipe.contract import step_kinds
from airflow_mlpipe.contract.exceptions import PipelineValidationError
from airflow_mlpipe.contract.spec import check_spec
from airflow_mlpipe.contract.step_kinds import STEP_KINDS, StepKind, load
from airflow_mlpipe.operators.base import MlpipeStepOperator
from airflow_mlpipe.runtime.cache import step_config
from airflow_mlpipe.runtime.planner import plan_steps


@pytest.mark.parametrize("name", sorted(STEP_KINDS))
def test_every_registered_kind_resolves_to_its_three_parts(name):
    kind = STEP_KINDS[name]
    assert load(kind.sdk_class).kind == name
    assert issubclass(load(kind.operator), MlpipeStepOperator)
    assert callable(load(kind.runtime))


def _spec(workspace: Any, tmp_path: Path, kind: str | None = None) -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "s.py").write_text("print('hi')\n")
    spec = Pipeline(workspace, steps=[PythonScriptStep("s.py", name="only", source_directory=str(src))]).to_spec("p")
    if kind:
        spec["steps"][0]["kind"] = kind
    return spec


def test_an_unregistered_kind_fails_naming_the_step(workspace, tmp_path):
    with pytest.raises(PipelineValidationError, match=r"step 'only': kind 'NoSuchStep' is not a step kind.*PythonScriptStep"):
        check_spec(_spec(workspace, tmp_path, "NoSuchStep"))


@pytest.fixture
def remote_kind(monkeypatch):
    """A new kind added the way the recipe says: an operator, a runtime body and one registry line."""
    module = types.ModuleType("mlpipe_test_remote_kind")

    class RemoteOperator(MlpipeStepOperator):
        ui_color = "#abcdef"

    module.RemoteOperator = RemoteOperator
    module.run_remote = lambda execution: None
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(STEP_KINDS, "RemoteStep", StepKind(
        "RemoteStep", sdk_class="airflow_mlpipe.sdk.steps.python_script_step:PythonScriptStep",
        operator=f"{module.__name__}:RemoteOperator", runtime=f"{module.__name__}:run_remote",
        plannable=False, not_in_key=("run_name",)))
    return RemoteOperator


def test_one_registry_line_reaches_spec_check_compiler_planner_and_cache_key(workspace, tmp_path, remote_kind):
    spec = _spec(workspace, tmp_path, "RemoteStep")
    check_spec(spec)  # accepted once registered
    dag = build_dag(spec)
    assert type(dag.task_dict["only"]) is remote_kind
    # not plannable: no planner task, and a planner asked anyway leaves it to the step's own task
    assert not plannable(spec)
    decisions, _ = plan_steps(workspace, spec["steps"], {})
    assert decisions[0].action == "pending" and "RemoteStep" in decisions[0].reason
    # a field the kind declares result-neutral does not change the cache key's configuration
    step = dict(spec["steps"][0])
    assert step_config({**step, "run_name": "a"}) == step_config({**step, "run_name": "b"})
    python_step = dict(step, kind="PythonScriptStep")
    assert step_config({**python_step, "run_name": "a"}) != step_config({**python_step, "run_name": "b"})


def test_rest_model_accepts_exactly_the_registered_kinds():
    from pydantic import ValidationError

    from airflow_mlpipe.plugins.api_models import StepSpecBody

    assert StepSpecBody.model_json_schema()["properties"]["kind"]["enum"] == list(STEP_KINDS)
    with pytest.raises(ValidationError):
        StepSpecBody(name="a", task_id="a", kind="HyperDriveStep")


def test_step_kind_error_names_where(workspace):
    with pytest.raises(PipelineValidationError, match="Step 'x': kind 5 is not a step kind"):
        step_kinds.step_kind(5, "Step 'x'")
