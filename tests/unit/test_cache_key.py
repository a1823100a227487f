"""Step cache key and cache plan: what changes a key, what must not, and what the planner says up front."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_mlpipe import Pipeline, PipelineData, PipelineParameter, PythonScriptStep, RunConfiguration
from airflow_mlpipe.runtime.cache import compute_key, record
from airflow_mlpipe.runtime.planner import plan_steps
from airflow_mlpipe.runtime.snapshot import source_manifest


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "prep.py").write_text("print('prep')\n")
    (folder / "train.py").write_text("print('train')\n")
    (folder / "report.py").write_text("print('report')\n")
    return folder


def _pipeline(ws: Any, src: Path, n_default: int = 3, env_var: str = "1", version: str | None = None,
              extra_arg: str = "--fast", train_reuse: bool = True) -> Pipeline:
    n = PipelineParameter("n", default_value=n_default)
    lr = PipelineParameter("lr", default_value=0.1)  # used by train only
    raw = PipelineData("raw")
    rc = RunConfiguration()
    rc.environment.environment_variables = {"MODE": env_var}
    prep = PythonScriptStep("prep.py", name="prep", arguments=["--out", raw, "--n", n, extra_arg], outputs=[raw],
                            source_directory=str(src), runconfig=rc, version=version)
    train = PythonScriptStep("train.py", name="train", arguments=["--in", raw, "--lr", lr], inputs=[raw],
                             source_directory=str(src), allow_reuse=train_reuse)
    report = PythonScriptStep("report.py", name="report", source_directory=str(src))
    return Pipeline(ws, steps=[prep, train, report])


def _step(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in spec["steps"] if s["name"] == name)


def _key(ws: Any, step: dict[str, Any], values: dict[str, Any], upstream: dict[str, Any] | None = None) -> str:
    manifest, _ = source_manifest(ws, step)
    return compute_key(ws, step, manifest, upstream or {}, values).key


VALUES = {"n": 3, "lr": 0.1}


def test_key_is_stable_and_covers_script_content(workspace, src):
    prep = _step(_pipeline(workspace, src).to_spec("p"), "prep")
    first = _key(workspace, prep, VALUES)
    assert first.startswith("blake3:")
    assert _key(workspace, copy.deepcopy(prep), dict(VALUES)) == first
    assert _key(workspace, _step(_pipeline(workspace, src).to_spec("other_dag"), "prep"), VALUES) == first
    (src / "prep.py").write_text("print('prep v2')\n")
    assert _key(workspace, prep, VALUES) != first


def test_key_changes_with_arguments_environment_and_version(workspace, src):
    base = _key(workspace, _step(_pipeline(workspace, src).to_spec("p"), "prep"), VALUES)
    variants = {
        "argument": _pipeline(workspace, src, extra_arg="--slow"),
        "environment": _pipeline(workspace, src, env_var="2"),
        "version": _pipeline(workspace, src, version="2"),
    }
    keys = {what: _key(workspace, _step(p.to_spec("p"), "prep"), VALUES) for what, p in variants.items()}
    assert all(k != base for k in keys.values()), keys
    assert len(set(keys.values())) == 3


def test_key_follows_used_parameter_values_only(workspace, src):
    spec = _pipeline(workspace, src).to_spec("p")
    prep = _step(spec, "prep")
    assert prep["parameters"] == ["n"]
    base = _key(workspace, prep, VALUES)
    assert _key(workspace, prep, {"n": 4, "lr": 0.1}) != base
    assert _key(workspace, prep, {"n": 3, "lr": 0.9}) == base  # lr is train's parameter
    assert _key(workspace, prep, {**VALUES, "unrelated": "x"}) == base
    # the parameter's default is not in the key, only the value the run uses
    other_default = _step(_pipeline(workspace, src, n_default=7).to_spec("p"), "prep")
    assert _key(workspace, other_default, VALUES) == base


def test_key_follows_upstream_output_content_hash(workspace, src):
    train = _step(_pipeline(workspace, src).to_spec("p"), "train")
    up_a = {"raw": {"content_hash": "blake3:" + "a" * 64, "uri": "file:///one"}}
    up_a_moved = {"raw": {"content_hash": "blake3:" + "a" * 64, "uri": "file:///elsewhere"}}
    up_b = {"raw": {"content_hash": "blake3:" + "b" * 64, "uri": "file:///one"}}
    key_a = _key(workspace, train, VALUES, up_a)
    assert _key(workspace, train, VALUES, up_a_moved) == key_a
    assert _key(workspace, train, VALUES, up_b) != key_a
    assert _key(workspace, train, {"n": 3, "lr": 0.2}, up_a) != key_a


def test_key_ignores_names_and_locations(workspace, src, tmp_path):
    prep = _step(_pipeline(workspace, src).to_spec("p"), "prep")
    base = _key(workspace, prep, VALUES)
    moved_src = tmp_path / "copy_of_src"
    shutil.copytree(src, moved_src)
    renamed = {**copy.deepcopy(prep), "name": "prepare_data", "task_id": "prepare_data", "depends_on": ["x"],
               "source_directory": str(moved_src), "allow_reuse": False}
    assert _key(workspace, renamed, VALUES) == base
    train = _step(_pipeline(workspace, src).to_spec("p"), "train")
    up = {"raw": {"content_hash": "blake3:" + "c" * 64}}
    other_producer = copy.deepcopy(train)
    other_producer["inputs"][0]["source"] = {"step": "another", "task_id": "another", "output": "raw"}
    assert _key(workspace, other_producer, VALUES, up) == _key(workspace, train, VALUES, up)
    renamed_output = copy.deepcopy(train)
    renamed_output["inputs"][0]["source"]["output"] = "raw2"
    assert _key(workspace, renamed_output, VALUES, up) != _key(workspace, train, VALUES, up)


def test_key_ignores_amlignored_files_only(workspace, src):
    prep = _step(_pipeline(workspace, src).to_spec("p"), "prep")
    base = _key(workspace, prep, VALUES)
    (src / ".amlignore").write_text("notes/\n*.log\n")
    with_ignore_file = _key(workspace, prep, VALUES)
    assert with_ignore_file != base  # the ignore file itself is part of the snapshot
    (src / "notes").mkdir()
    (src / "notes" / "todo.md").write_text("later\n")
    (src / "run.log").write_text("noise\n")
    assert _key(workspace, prep, VALUES) == with_ignore_file
    (src / "helper.py").write_text("X = 1\n")
    assert _key(workspace, prep, VALUES) != with_ignore_file


def test_plan_on_fresh_workspace(workspace, src):
    spec = _pipeline(workspace, src).to_spec("p")
    decisions, timings = plan_steps(workspace, spec["steps"], VALUES)
    got = {d.step: d.action for d in decisions}
    assert got == {"prep": "run", "train": "pending", "report": "run"}
    by_name = {d.step: d for d in decisions}
    assert by_name["prep"].reason == "no earlier successful run of this step"
    assert by_name["prep"].key == _key(workspace, _step(spec, "prep"), VALUES)
    assert "'prep'" in by_name["train"].reason and by_name["train"].key is None
    assert set(timings) == {"prep", "train", "report"}
    assert [d.step for d in decisions] == [s["name"] for s in spec["steps"]]


def test_plan_allow_reuse_false_and_regenerate(workspace, src):
    spec = _pipeline(workspace, src).to_spec("p")
    _step(spec, "report")["allow_reuse"] = False
    decisions = {d.step: d for d in plan_steps(workspace, spec["steps"], VALUES)[0]}
    assert (decisions["report"].action, decisions["report"].reason) == ("run", "allow_reuse=False")
    regen = plan_steps(workspace, spec["steps"], VALUES, regenerate_outputs=True)[0]
    assert [(d.action, d.reason) for d in regen] == [("run", "regenerate_outputs=True")] * 3


def test_plan_reuses_recorded_step_and_explains_a_change(workspace, src):
    spec = _pipeline(workspace, src).to_spec("p")
    report = _step(spec, "report")
    manifest, _ = source_manifest(workspace, report)
    record(workspace, report, compute_key(workspace, report, manifest, {}, VALUES), {}, "sr-1", "run-1")
    decision = {d.step: d for d in plan_steps(workspace, spec["steps"], VALUES)[0]}["report"]
    assert decision.action == "reuse" and "sr-1" in decision.reason
    (src / "report.py").write_text("print('report v2')\n")
    decision = {d.step: d for d in plan_steps(workspace, spec["steps"], VALUES)[0]}["report"]
    assert decision.action == "run"
    assert decision.changes == ["source file report.py changed"]
