"""Running one AutoMLStep: the PythonScriptStep lifecycle (run records, cache, staged outputs committed
atomically) around the AutoML engine, which runs in a subprocess so that a crash or a memory blow-up fails the
task, not the worker.

Independent of Airflow, like ``step_runner.run_python_step``: the operator passes a ``StepExecution``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.automl_data import DATA_ARGUMENTS
from airflow_mlpipe.runtime.step_env import step_environment
from airflow_mlpipe.runtime.step_runner import (
    StagedOutputs,
    StepExecution,
    StepFailed,
    StepResult,
    StepWork,
    _Inputs,
    _run_script,
    execute_step,
)


def _training_outputs(ex: StepExecution, outputs: StagedOutputs) -> dict[str, list[str]]:
    """Staged path of every output (the engine writes one file there), grouped by TrainingOutput type."""
    paths = outputs.local_paths()
    grouped: dict[str, list[str]] = {"Metrics": [], "Model": []}
    for out in ex.step["outputs"]:
        kind = (out.get("training_output") or {}).get("type")
        if kind in grouped:
            grouped[kind].append(paths[out["name"]])
    return grouped


def _data_definitions(ex: StepExecution, inputs: _Inputs) -> dict[str, dict[str, Any]]:
    data = {}
    for name in DATA_ARGUMENTS:
        entry = inputs.context.get(name)
        if entry is None:
            continue
        if "dataset" not in entry:
            raise StepFailed(f"Step {ex.step['name']!r}: input {name!r} is not a tabular dataset")
        data[name] = entry["dataset"]
    if "training_data" not in data:
        raise StepFailed(f"Step {ex.step['name']!r}: no training_data input")
    return data


def _metric_records(summary: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for name, value in (summary.get("best_metrics") or {}).items():
        records.append({"name": name, "kind": "scalar", "value": value})
    if summary["primary_metric"] not in (summary.get("best_metrics") or {}):
        records.append({"name": summary["primary_metric"], "kind": "scalar", "value": summary["best_score"]})
    records.append({"name": "best_model", "kind": "scalar", "value": summary["best_model"]})
    records.append({"name": "iterations", "kind": "scalar", "value": summary["iterations"]})
    for name, value in (summary.get("test_metrics") or {}).items():
        records.append({"name": f"test_{name}", "kind": "scalar", "value": value})
    return records


def _automl_body(ex: StepExecution, workdir: Path, upstream: dict[str, dict[str, Any]], manifest: dict[str, str],
                 work: StepWork) -> None:
    """AutoMLStep: FLAML runs in a subprocess of the worker (a crash fails the task, not the worker)."""
    step = ex.step
    store = ex.workspace.store
    inputs = work.inputs = _Inputs(ex, workdir, upstream)
    outputs = work.outputs = StagedOutputs(ex, workdir)
    summary_file = workdir / "summary.json"
    job = {
        "workspace": ex.workspace.to_ref(), "settings": step["automl"],
        "data": _data_definitions(ex, inputs), "outputs": _training_outputs(ex, outputs),
        "workdir": str(workdir), "summary": str(summary_file),
    }
    job_file = workdir / "job.json"
    job["launched_at"] = time.time()
    job_file.write_text(json.dumps(job, default=str))
    env = step_environment(step, ex.log, fixed={"PYTHONUNBUFFERED": "1"})
    settings = step["automl"]
    ex.log.info("Step %r: AutoML %s, primary metric %s, budget %s min, %s iteration(s) (engine: FLAML, in a "
                "subprocess; debug log %s is this task log)", step["name"], settings["task"],
                settings["primary_metric"], settings.get("experiment_timeout_minutes"),
                settings.get("iterations"), settings.get("debug_log"))
    if settings.get("no_effect"):
        ex.log.info("Step %r: settings accepted without effect here: %s", step["name"], settings["no_effect"])
    argv = [sys.executable, "-m", "airflow_mlpipe.runtime.automl_engine", str(job_file)]
    code, tail = _run_script(ex, argv, env, workdir)
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if code != 0 or "error" in summary or not summary:
        detail = summary.get("error") or next((ln for ln in reversed(tail) if ln.strip()), "")
        raise StepFailed(f"Step {step['name']!r} failed: AutoML exited with code {code}"
                         + (f": {detail}" if detail else ""))
    store.add_metrics(ex.step_run_id, ex.pipeline_run_id, _metric_records(summary))
    kinds = {k: [o["name"] for o in step["outputs"] if (o.get("training_output") or {}).get("type") == k]
             for k in ("Metrics", "Model")}
    automl = {k: summary.get(k) for k in ("best_model", "best_iteration", "best_score", "primary_metric",
                                          "best_metrics", "best_config", "iterations", "timings", "rows",
                                          "leaderboard")}
    automl["outputs"] = kinds
    work.details["automl"] = automl
    ex.log.info("Step %r: best model %s, %s = %.6f (%d iterations)", step["name"], summary["best_model"],
                summary["primary_metric"], summary["best_score"], summary["iterations"])


def run_automl_step(ex: StepExecution) -> StepResult:
    """Run the AutoML step, or reuse a verified earlier result. Raises :class:`StepFailed` on failure."""
    return execute_step(ex, _automl_body)
