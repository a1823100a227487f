"""Build an Airflow DAG from a PipelineSpec."""

from __future__ import annotations

from typing import Any

from airflow_mlpipe.contract.parameters import PARAM_TYPES
from airflow_mlpipe.contract.spec import check_spec, spec_hash
from airflow_mlpipe.contract.step_kinds import load, step_kind

DEFAULT_TAGS = ["mlpipe"]


def _operator_class(kind: str, step: dict[str, Any] | None = None):
    """The operator the step-kind registry names for ``kind``; a PythonScriptStep with a Docker image (or on a
    Docker compute target) runs through the Docker provider instead."""
    if step is not None and kind == "PythonScriptStep":
        from airflow_mlpipe.runtime.docker_runner import uses_docker

        if uses_docker(step):
            from airflow_mlpipe.operators.docker_step import DockerStepOperator

            return DockerStepOperator
    return load(step_kind(kind).operator)


def experiment_tags(spec: dict[str, Any]) -> list[str]:
    """``experiment:<name>``: the Airflow UI's tag filter lists every DAG (graph) an experiment ran."""
    name = spec.get("experiment")
    return [f"experiment:{name}"[:100]] if isinstance(name, str) and name else []


def dag_params(spec: dict[str, Any]) -> dict[str, Any]:
    """Pipeline parameters as typed Airflow Params: the trigger form shows them with defaults and types."""
    from airflow.sdk import Param

    params = {}
    for name, p in spec.get("parameters", {}).items():
        schema_type = PARAM_TYPES.get(p["type"], "object")
        params[name] = Param(p["default"], type=schema_type, description=f"PipelineParameter {name} ({p['type']})")
    return params


def doc_md(spec: dict[str, Any], digest: str) -> str:
    lines = [f"### airflow-mlpipe pipeline `{spec['name']}`", ""]
    if spec.get("description"):
        lines += [spec["description"], ""]
    lines += ["| step | kind | depends on |", "|---|---|---|"]
    for step in spec["steps"]:
        lines.append(f"| {step['name']} | {step['kind']} | {', '.join(step['depends_on']) or '-'} |")
    lines += ["", f"spec: `{digest}`"]
    return "\n".join(lines)


def plannable(spec: dict[str, Any]) -> bool:
    """Whether a cache planner can decide anything up front: some step may be reused and needs no other step's
    output. Otherwise (e.g. every step ``allow_reuse=False``) the planner would cost a scheduling round for nothing.
    """
    return any(step.get("allow_reuse", True) and step_kind(step["kind"]).plannable
               and not any(i["kind"] == "pipeline_data" for i in step["inputs"]) for step in spec["steps"])


def build_dag(spec: dict[str, Any], schedule: Any = None, run_defaults: dict[str, Any] | None = None,
              **dag_kwargs: Any):
    """The DAG for ``spec``; step tasks use ``trigger_rule="none_failed"`` so reused (skipped) steps still feed
    their consumers. ``run_defaults`` (``{"experiment": ..., "parameters": {...}}``) apply to runs whose
    ``conf`` does not say otherwise, e.g. the runs of a Schedule."""
    from airflow.sdk import DAG

    check_spec(spec, f"pipeline {spec.get('name')!r}")
    digest = spec_hash(spec)
    pipeline_ctx = {
        "name": spec["name"],
        "workspace": spec.get("workspace"),
        "default_datastore": spec.get("default_datastore"),
        "parameters": spec.get("parameters", {}),
        "spec_hash": digest,
        "run_defaults": dict(run_defaults or {}),
        "spec": spec,  # the whole spec: the first task of a run records it (run_spec.pin_run_spec)
    }
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("tags", DEFAULT_TAGS + experiment_tags(spec))
    if spec.get("experiment"):  # one DAG per graph of an experiment: show the experiment's name
        dag_kwargs.setdefault("dag_display_name", f"{spec['experiment']} · {spec['name'].rsplit('__', 1)[-1]}")
    dag_kwargs.setdefault("doc_md", doc_md(spec, digest))
    dag_kwargs.setdefault("description", spec.get("description") or f"airflow-mlpipe pipeline {spec['name']}")
    from airflow_mlpipe.contract.conf import PLANNER_TASK_ID
    from airflow_mlpipe.operators.planner import CachePlanOperator

    with DAG(dag_id=spec["name"], schedule=schedule, params=dag_params(spec), **dag_kwargs) as dag:
        planner = (CachePlanOperator(task_id=PLANNER_TASK_ID, steps=spec["steps"], pipeline=pipeline_ctx)
                   if plannable(spec) else None)
        tasks = {}
        for step in spec["steps"]:
            queue = (step.get("compute") or {}).get("queue")
            extra = {"queue": queue} if queue else {}
            op = _operator_class(step["kind"], step)(
                task_id=step["task_id"], step=step, pipeline=pipeline_ctx, trigger_rule="none_failed", **extra
            )
            for dep in step["depends_on"]:
                tasks[dep] >> op
            if not step["depends_on"] and planner is not None:
                planner >> op
            tasks[step["name"]] = op
    return dag
