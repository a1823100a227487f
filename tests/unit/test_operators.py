"""Operator helpers that need no running Airflow: a task context becomes run metadata, parameter values and an
experiment name; run isolation pins each run to one spec in a real store."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlpipe import Pipeline, PipelineParameter, PipelineValidationError, PythonScriptStep
from airflow_mlpipe.compiler.dag_builder import build_dag
from airflow_mlpipe.contract.paths import UnsafePathError
from airflow_mlpipe.contract.spec import spec_hash
from airflow_mlpipe.operators.base import CONF_KEY, experiment_name, parameter_values, run_meta
from airflow_mlpipe.runtime.run_spec import SpecMismatchError, pin_run_spec
from airflow_mlpipe.store.tables_specs import get_spec


def _ctx(conf: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parts of an Airflow task context these helpers read."""
    return {"dag_run": SimpleNamespace(conf=conf), "params": params or {}, "run_id": "manual__r1"}


def _spec(ws: Any, tmp_path: Path, script: str = "print('hi')\n", dag_id: str = "pinned") -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(script)
    n = PipelineParameter("n", default_value=3)
    mode = PipelineParameter("mode", default_value="fast")
    flag = PipelineParameter("flag", default_value=False)
    step = PythonScriptStep("train.py", name="train", arguments=["--n", n, "--mode", mode, "--flag", flag],
                            source_directory=str(src))
    return Pipeline(ws, steps=[step]).to_spec(dag_id)


def _pipeline_ctx(spec: dict[str, Any], run_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pipeline context the compiler gives every step task."""
    return build_dag(spec, run_defaults=run_defaults).task_dict["train"].pipeline


# ---------------------------------------------------------------------------------------------- run_meta
def test_run_meta_reads_the_submission_block():
    meta = {"run_id": "manual__2026-01-01T00:00:00+00:00", "experiment": "e1", "regenerate_outputs": True}
    assert run_meta(_ctx({CONF_KEY: meta, "n": 4})) == meta
    assert run_meta(_ctx(None)) == {}
    assert run_meta(_ctx({"n": 4})) == {}


@pytest.mark.parametrize("bad", ["a string", ["run_id", "x"], 42])
def test_run_meta_rejects_a_non_object(bad):
    with pytest.raises(ValueError, match=r"dag_run\.conf\['__mlpipe'\] must be an object"):
        run_meta(_ctx({CONF_KEY: bad}))


@pytest.mark.parametrize("run_id", ["../../etc", "a/b", "..", "x\\y", "", 7])
def test_run_meta_rejects_a_run_id_with_a_path_in_it(run_id):
    with pytest.raises(UnsafePathError, match=r"dag_run\.conf\['__mlpipe'\]\.run_id") as info:
        run_meta(_ctx({CONF_KEY: {"run_id": run_id}}))
    assert isinstance(info.value, PipelineValidationError)


# ---------------------------------------------------------------------------------------------- parameters
def test_parameter_values_params_then_spec_defaults(workspace, tmp_path):
    pipeline = _pipeline_ctx(_spec(workspace, tmp_path))
    assert parameter_values(pipeline, _ctx({}, {"n": 3, "mode": "fast", "flag": False})) == \
        {"n": 3, "mode": "fast", "flag": False}
    # a missing Param falls back to the spec default; a Param the pipeline does not define is dropped
    assert parameter_values(pipeline, _ctx({}, {"n": 9, "other": 1})) == {"n": 9, "mode": "fast", "flag": False}


def test_parameter_values_conf_over_run_defaults_over_params(workspace, tmp_path):
    pipeline = _pipeline_ctx(_spec(workspace, tmp_path), {"parameters": {"n": 7, "mode": "slow"}})
    params = {"n": 3, "mode": "fast", "flag": False}
    # no conf: the run defaults (a Schedule's pipeline_parameters) beat the Params' defaults
    assert parameter_values(pipeline, _ctx({}, params)) == {"n": 7, "mode": "slow", "flag": False}
    # conf given (Airflow merges it into params): conf wins over the run defaults, per parameter
    assert parameter_values(pipeline, _ctx({"n": 5}, {**params, "n": 5})) == {"n": 5, "mode": "slow", "flag": False}


def test_parameter_values_are_coerced_and_checked(workspace, tmp_path):
    pipeline = _pipeline_ctx(_spec(workspace, tmp_path))
    got = parameter_values(pipeline, _ctx({"n": "20", "flag": "true"}, {"n": "20", "mode": "m", "flag": "true"}))
    assert got == {"n": 20, "mode": "m", "flag": True}
    assert type(got["n"]) is int
    with pytest.raises(Exception, match="'n'"):
        parameter_values(pipeline, _ctx({"n": "twenty"}, {"n": "twenty"}))


def test_experiment_name_precedence(workspace, tmp_path):
    spec = _spec(workspace, tmp_path)
    plain, scheduled = _pipeline_ctx(spec), _pipeline_ctx(spec, {"experiment": "nightly"})
    submitted = _ctx({CONF_KEY: {"experiment": "exp_submitted"}})
    assert experiment_name(plain, _ctx({}), "the_dag") == "the_dag"
    assert experiment_name(scheduled, _ctx({}), "the_dag") == "nightly"
    assert experiment_name(scheduled, submitted, "the_dag") == "exp_submitted"
    assert experiment_name(plain, submitted, "the_dag") == "exp_submitted"


# ---------------------------------------------------------------------------------------------- pin_run_spec
def test_first_pin_records_hash_and_spec_then_same_hash_passes(workspace, tmp_path):
    store = workspace.store
    spec = _spec(workspace, tmp_path)
    pipeline = _pipeline_ctx(spec)
    digest = spec_hash(spec)
    assert pipeline["spec_hash"] == digest
    store.upsert_pipeline_run("run1", dag_id="pinned", experiment="e", status="Running")
    assert get_spec(store, digest) is None

    assert pin_run_spec(store, "run1", "pinned", pipeline, None) == digest
    assert store.get_pipeline_run("run1")["spec_hash"] == digest
    assert get_spec(store, digest) == spec
    # a second task of the same run, compiled from the same spec
    assert pin_run_spec(store, "run1", "pinned", _pipeline_ctx(spec), None) == digest
    row = store.get_pipeline_run("run1")
    assert (row["spec_hash"], row["status"], row["error"]) == (digest, "Running", None)


def test_pin_without_a_run_row_creates_it(workspace, tmp_path):
    spec = _spec(workspace, tmp_path)
    assert workspace.store.get_pipeline_run("fresh") is None
    digest = pin_run_spec(workspace.store, "fresh", "pinned", _pipeline_ctx(spec), None)
    row = workspace.store.get_pipeline_run("fresh")
    assert (row["spec_hash"], row["dag_id"]) == (digest, "pinned") and digest == spec_hash(spec)


def test_dag_changed_during_the_run_fails_it(workspace, tmp_path):
    store = workspace.store
    old = _spec(workspace, tmp_path)
    new = _spec(workspace, tmp_path, script="print('edited')\n")
    new["steps"][0]["version"] = "2"
    old_hash, new_hash = spec_hash(old), spec_hash(new)
    assert old_hash != new_hash
    store.upsert_pipeline_run("run2", dag_id="pinned", experiment="e", status="Running")
    pin_run_spec(store, "run2", "pinned", _pipeline_ctx(old), None)

    with pytest.raises(SpecMismatchError) as info:
        pin_run_spec(store, "run2", "pinned", _pipeline_ctx(new), None)
    message = str(info.value)
    assert old_hash[:12] in message and new_hash[:12] in message and "run2" in message
    row = store.get_pipeline_run("run2")
    assert (row["status"], row["error"], row["spec_hash"]) == ("Failed", message, old_hash)
    assert get_spec(store, new_hash) is None  # the other pipeline's spec is not recorded as this run's


def test_submitted_hash_must_match_the_dag(workspace, tmp_path):
    store = workspace.store
    spec = _spec(workspace, tmp_path)
    pipeline = _pipeline_ctx(spec)
    digest = spec_hash(spec)
    store.upsert_pipeline_run("run3", dag_id="pinned", experiment="e", status="Running")
    with pytest.raises(SpecMismatchError, match="ffffffffffff"):
        pin_run_spec(store, "run3", "pinned", pipeline, "f" * 64)
    assert store.get_pipeline_run("run3")["status"] == "Failed"

    store.upsert_pipeline_run("run4", dag_id="pinned", experiment="e", status="Running", spec_hash=digest)
    assert pin_run_spec(store, "run4", "pinned", pipeline, digest) == digest
    assert store.get_pipeline_run("run4")["status"] == "Running"
    assert get_spec(store, digest) == spec


def test_dag_compiled_before_run_isolation_is_not_checked(workspace):
    assert pin_run_spec(workspace.store, "old", "d", {"name": "d"}, None) == ""
    assert pin_run_spec(workspace.store, "old", "d", {"name": "d"}, "abc") == "abc"
    assert workspace.store.get_pipeline_run("old") is None
