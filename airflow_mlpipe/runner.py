"""What ``mlpipe run`` and ``mlpipe runs`` do: load a pipeline file, submit it, wait, and summarise runs."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

from airflow_mlpipe.sdk.workspace import Workspace


def prepare_airflow_env(ws: Workspace) -> None:
    """Point this process's Airflow config at the workspace's embedded Airflow before anything imports it."""
    if ws.is_embedded:
        from airflow_mlpipe.clients.local_airflow import airflow_env

        for key, value in airflow_env(ws).items():
            os.environ.setdefault(key, value)


def load_pipeline_file(path: str | Path) -> tuple[Any, Any]:
    """Import a pipeline file; returns (module, Pipeline). The file defines ``pipeline`` or one Pipeline."""
    from airflow_mlpipe.contract.exceptions import UserErrorException
    from airflow_mlpipe.sdk.pipeline import Pipeline

    path = Path(path).resolve()
    if not path.is_file():
        raise UserErrorException(f"mlpipe run: no such file {str(path)!r}")
    spec = importlib.util.spec_from_file_location(f"mlpipe_user_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    candidate = getattr(module, "pipeline", None)
    if not isinstance(candidate, Pipeline):
        found = [v for v in vars(module).values() if isinstance(v, Pipeline)]
        if len({id(v) for v in found}) != 1:
            raise UserErrorException(
                f"{path}: define exactly one Pipeline, or name the one to run `pipeline` (found {len(found)})"
            )
        candidate = found[0]
    return module, candidate


def _in_dags_folder(ws: Workspace, path: Path) -> bool:
    from airflow_mlpipe.clients.local_airflow import status

    if not ws.is_embedded:
        return False
    info = status(ws)
    return bool(info and info.dags_folder and Path(info.dags_folder).resolve() in path.resolve().parents)


def run_pipeline_file(path: str, experiment: str | None, parameters: dict[str, str],
                      regenerate_outputs: bool, wait: bool, unreachable_timeout: float | None = None) -> int:
    from airflow_mlpipe.clients.local_airflow import ensure_running
    from airflow_mlpipe.contract.exceptions import ActivityFailedException
    from airflow_mlpipe.sdk.experiment import Experiment

    ws = Workspace.from_config()
    prepare_airflow_env(ws)
    if ws.is_embedded:
        started = time.monotonic()
        info = ensure_running(ws)
        print(f"Airflow is up at {info.url} ({time.monotonic() - started:.1f} s)")
    _, pipeline = load_pipeline_file(path)
    dag_id = pipeline._dag_id if pipeline._dag_id and _in_dags_folder(ws, Path(path)) else None
    exp = Experiment(ws, experiment or pipeline._dag_id or Path(path).stem)
    started = time.monotonic()
    run = exp.submit(pipeline, pipeline_parameters=parameters or None, regenerate_outputs=regenerate_outputs,
                     dag_id=dag_id)
    if not wait:
        return 0
    try:
        status = run.wait_for_completion(show_output=True, unreachable_timeout=unreachable_timeout)
    except ActivityFailedException as exc:
        print(f"\n{exc}")
        status = "Failed"
    print()
    print(format_run(run, wall=time.monotonic() - started))
    return 0 if status == "Finished" else 1


def plan_pipeline_file(path: str, parameters: dict[str, str], regenerate_outputs: bool = False) -> str:
    """``mlpipe plan``: the cache's prediction for a pipeline file, without submitting anything."""
    from airflow_mlpipe.runtime.planner import format_plan

    ws = Workspace.from_config()
    prepare_airflow_env(ws)
    _, pipeline = load_pipeline_file(path)
    decisions = pipeline.plan(pipeline_parameters=parameters or None, regenerate_outputs=regenerate_outputs)
    return format_plan(decisions)


def _duration(start: Any, end: Any) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.1f} s"


def format_run(run: Any, wall: float | None = None) -> str:
    """A readable summary: steps, status, durations, where the outputs are, metrics, the Airflow UI URL."""
    row = run.experiment.workspace.store.get_pipeline_run(run.id) or {}
    lines = [
        f"Pipeline run {run.id}",
        f"  experiment : {run.experiment.name}",
        f"  DAG        : {run.dag_id}   (Airflow run id {run.airflow_run_id})",
        f"  status     : {run.get_status()}" + (f"   wall time {wall:.1f} s" if wall is not None else ""),
    ]
    if row.get("parameters"):
        lines.append(f"  parameters : {row['parameters']}")
    if run.ui_url:
        lines.append(f"  Airflow UI : {run.ui_url}")
    lines.append("  steps:")
    for step in run.get_steps():
        srow = step._row or {}
        reused = f" (reused from {srow['reused_run_id']})" if srow.get("reused_run_id") else ""
        lines.append(f"    - {step.name:<24} {step.get_status():<10} {_duration(srow.get('start_time'), srow.get('end_time')):>8}{reused}")
        for name, out in (srow.get("outputs") or {}).items():
            lines.append(f"        output {name}: {out['uri']}  ({out['files']} files, {out['size']} bytes)")
        metrics = step.get_metrics()
        if metrics:
            shown = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
            lines.append(f"        metrics: {shown if shown else sorted(metrics)}")
        if srow.get("error"):
            lines.append(f"        error: {srow['error']}")
    lines.extend(_registered_models(run))
    return "\n".join(lines)


def _registered_models(run: Any) -> list[str]:
    """Models registered by the steps of this run (or by the runs its reused steps came from)."""
    from airflow_mlpipe.sdk.model import Model

    ws = run.experiment.workspace
    lines = []
    for step in run.get_steps():
        for row in Model._rows(ws, run_id=step.id):
            lines.append(f"  registered model: {row['name']} version {row['version']} (step {step.name})")
    return lines


def list_runs(ws: Workspace, experiment: str | None, limit: int) -> str:
    rows = ws.store.list_pipeline_runs(experiment, limit)
    if not rows:
        return "no runs"
    out = [f"{'run id':<38} {'experiment':<24} {'status':<10} created"]
    for r in rows:
        out.append(f"{r['run_id']:<38} {r['experiment']:<24} {r['status']:<10} {r['created_at']:%Y-%m-%d %H:%M:%S}")
    return "\n".join(out)


def show_run(ws: Workspace, run_id: str) -> str:
    from airflow_mlpipe.sdk.runs import get_run

    return format_run(get_run(ws, run_id))
