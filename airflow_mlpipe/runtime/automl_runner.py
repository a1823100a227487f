"""Running one AutoMLStep: the PythonScriptStep lifecycle (run records, cache, staged outputs committed
atomically) around the AutoML engine, which runs in a subprocess so that a crash or a memory blow-up fails the
task, not the worker.

Independent of Airflow, like ``step_runner.run_python_step``: the operator passes a ``StepExecution``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_mlpipe.runtime.step_runner import (
    _SECRET_ENV,
    StepExecution,
    StepFailed,
    StepResult,
    _Inputs,
    _Outputs,
    _register_outputs,
    _reuse,
    _run_script,
    collect_upstream,
)
from airflow_mlpipe.sdk.automl import DATA_ARGUMENTS
from airflow_mlpipe.store.db import utcnow


def _training_outputs(ex: StepExecution, outputs: _Outputs) -> dict[str, list[str]]:
    """Staged folder of every output, grouped by TrainingOutput type ("Metrics" / "Model")."""
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


def run_automl_step(ex: StepExecution) -> StepResult:
    """Run the AutoML step, or reuse a verified earlier result. Raises :class:`StepFailed` on failure."""
    from airflow_mlpipe.runtime import cache

    step = ex.step
    store = ex.workspace.store
    started = utcnow()
    store.upsert_pipeline_run(ex.pipeline_run_id, experiment=ex.experiment, dag_id=ex.dag_id, status="Running")
    run_row = store.get_pipeline_run(ex.pipeline_run_id)
    if run_row and run_row.get("start_time") is None:
        store.upsert_pipeline_run(ex.pipeline_run_id, start_time=started)
    store.upsert_step_run(ex.step_run_id, pipeline_run_id=ex.pipeline_run_id, step_name=step["name"],
                          task_id=step["task_id"], kind=step["kind"], status="Running", start_time=started,
                          end_time=None, error=None, try_number=ex.try_number, reused_run_id=None)
    flight: Any = None
    outputs: _Outputs | None = None
    workdir = Path(tempfile.mkdtemp(prefix=f"mlpipe-{step['task_id']}-"))
    try:
        upstream = collect_upstream(ex)
        key = cache.compute_key(ex.workspace, step, {}, upstream, ex.parameter_values)  # no source snapshot
        if step.get("allow_reuse", True) and not ex.regenerate_outputs:
            entry, why = cache.lookup(ex.workspace, key.key)
            if entry is None:
                flight = cache.SingleFlight(ex.workspace, key.key)
                entry = flight.acquire(ex.log)
            if entry is not None:
                flight = None
                return _reuse(ex, entry, key.key, started)
            reasons = ([why] if why else []) + cache.explain_miss(ex.workspace, step, key)
            ex.log.info("Step %r: cache miss (key %s): %s", step["name"], key.key, "; ".join(reasons))
        inputs = _Inputs(ex, workdir, upstream)
        outputs = _Outputs(ex, workdir)
        summary_file = workdir / "summary.json"
        job = {
            "workspace": ex.workspace.to_ref(), "settings": step["automl"],
            "data": _data_definitions(ex, inputs), "outputs": _training_outputs(ex, outputs),
            "workdir": str(workdir), "summary": str(summary_file),
        }
        job_file = workdir / "job.json"
        job["launched_at"] = time.time()
        job_file.write_text(json.dumps(job, default=str))
        env = {k: v for k, v in os.environ.items() if not _SECRET_ENV.match(k)}
        env["PYTHONUNBUFFERED"] = "1"
        runconfig = step.get("runconfig") or {}
        env.update({str(k): str(v) for k, v in
                    ((runconfig.get("environment") or {}).get("environment_variables") or {}).items()})
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
        committed = outputs.commit()
        outputs = None
        _register_outputs(ex, committed)
        cache.record(ex.workspace, step, key, committed, ex.step_run_id, ex.pipeline_run_id)
        kinds = {k: [o["name"] for o in step["outputs"] if (o.get("training_output") or {}).get("type") == k]
                 for k in ("Metrics", "Model")}
        automl = {k: summary.get(k) for k in ("best_model", "best_iteration", "best_score", "primary_metric",
                                              "best_metrics", "best_config", "iterations", "timings", "rows")}
        automl["outputs"] = kinds
        store.upsert_step_run(ex.step_run_id, status="Finished", end_time=utcnow(), outputs=committed,
                              inputs=inputs.record, details={"cache_key": key.key, "automl": automl})
        ex.log.info("Step %r: best model %s, %s = %.6f (%d iterations)", step["name"], summary["best_model"],
                    summary["primary_metric"], summary["best_score"], summary["iterations"])
        for name, out in committed.items():
            ex.log.info("Output %r committed: %s (%d files, %d bytes, %s)", name, out["uri"], out["files"],
                        out["size"], out["content_hash"])
        return StepResult(committed, key.key)
    except BaseException as exc:
        if outputs is not None:
            outputs.discard()
        store.upsert_step_run(ex.step_run_id, status="Failed", end_time=utcnow(), error=str(exc)[:4000])
        raise
    finally:
        if flight is not None:
            flight.release()
        shutil.rmtree(workdir, ignore_errors=True)
