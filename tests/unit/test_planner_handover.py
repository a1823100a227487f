"""The cache planner's "run" decisions reach the step: the step uses the planner's key and reasons instead of
hashing its sources and inputs a second time, and records exactly that key."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_mlpipe import Pipeline, PythonScriptStep
from airflow_mlpipe.runtime import cache, snapshot
from airflow_mlpipe.runtime.planner import plan_steps
from airflow_mlpipe.runtime.step_runner import StagedOutputs, StepExecution, StepWork, execute_step


def _spec(workspace: Any, tmp_path: Path) -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('train')\n")
    step = PythonScriptStep("train.py", name="train", source_directory=str(src))
    return Pipeline(workspace, steps=[step]).to_spec("handover")


def _execution(workspace: Any, spec: dict[str, Any], planned: dict[str, Any] | None, run: str) -> StepExecution:
    return StepExecution(workspace=workspace, pipeline_run_id=run, experiment="exp", dag_id="handover",
                         step=spec["steps"][0], pipeline={}, parameter_values={},
                         upstream=lambda task, output: None, log=logging.getLogger("test"), planned=planned)


def _body(ex: StepExecution, workdir: Path, upstream: dict, manifest: dict[str, str], work: StepWork) -> None:
    assert "train.py" in manifest  # the body still gets the source manifest, from the plan
    work.outputs = StagedOutputs(ex, workdir)


@pytest.fixture
def hashing_calls(monkeypatch) -> list[str]:
    """Records every hash of a step's sources and inputs (the real functions still run)."""
    calls: list[str] = []
    real_manifest, real_key = snapshot.source_manifest, cache.compute_key

    def manifest(*args: Any, **kwargs: Any):
        calls.append("source_manifest")
        return real_manifest(*args, **kwargs)

    def key(*args: Any, **kwargs: Any):
        calls.append("compute_key")
        return real_key(*args, **kwargs)

    monkeypatch.setattr(snapshot, "source_manifest", manifest)
    monkeypatch.setattr(cache, "compute_key", key)
    return calls


def test_a_planned_step_runs_on_the_planners_key_without_hashing_again(workspace, tmp_path, hashing_calls):
    spec = _spec(workspace, tmp_path)
    decisions, _ = plan_steps(workspace, spec["steps"], {})
    (decision,) = decisions
    assert decision.action == "run"
    planned = json.loads(json.dumps(decision.handover()))  # as it travels through XCom
    hashing_calls.clear()

    result = execute_step(_execution(workspace, spec, planned, "run-1"), _body)

    assert hashing_calls == []
    assert result.key == decision.key
    row = workspace.store.get_step_run("run-1.train")
    assert row["status"] == "Finished" and row["details"]["cache_key"] == decision.key
    # the entry it recorded is the one the next plan finds: the step is reused
    again, _ = plan_steps(workspace, spec["steps"], {})
    assert again[0].action == "reuse" and again[0].key == decision.key


def test_without_a_plan_the_step_hashes_for_itself_to_the_same_key(workspace, tmp_path, hashing_calls):
    spec = _spec(workspace, tmp_path)
    decisions, _ = plan_steps(workspace, spec["steps"], {})
    hashing_calls.clear()
    result = execute_step(_execution(workspace, spec, None, "run-2"), _body)
    assert "compute_key" in hashing_calls and "source_manifest" in hashing_calls
    assert result.key == decisions[0].key


def test_only_run_decisions_with_a_key_are_handed_over(workspace, tmp_path):
    spec = _spec(workspace, tmp_path)
    spec["steps"][0]["allow_reuse"] = False
    (decision,) = plan_steps(workspace, spec["steps"], {})[0]
    assert decision.action == "run" and decision.handover() is None
