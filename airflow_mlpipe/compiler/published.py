"""DAG factory over the store's published pipelines: one DAG per served pipeline (Active, or a version of an Active
PipelineEndpoint), with the schedules (cron timetables, datastore Assets and their watcher DAGs) of its active
Schedules.

It reads the store through :mod:`airflow_mlpipe.store.published_queries` only. A pipeline that cannot be built is
skipped and recorded in the one error registry (:mod:`airflow_mlpipe.compiler.load_errors`); every other pipeline
keeps its DAG.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow_mlpipe.compiler.load_errors import FACTORY_ERRORS, FactoryRun
from airflow_mlpipe.compiler.schedules import dag_schedule_for
from airflow_mlpipe.contract.bundle_files import BUNDLE_DIRNAME, PUBLISHED_STUB_NAME
from airflow_mlpipe.contract.schedule_rules import watcher_dag_id
from airflow_mlpipe.contract.spec import check_spec
from airflow_mlpipe.store import published_queries as q

__all__ = ["FACTORY_ERRORS", "build_published_dags"]

log = logging.getLogger(__name__)
FACTORY = "published"


def _schedules_by_pipeline(store: Any, schedules: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Active schedules per published pipeline id; an endpoint's schedule applies to its default version."""
    endpoint_defaults: dict[str, str] = {}
    if any(s.get("pipeline_endpoint_id") for s in schedules):
        versions = {(v["endpoint_id"], v["version"]): v["pipeline_id"] for v in q.list_versions(store)}
        for ep in q.list_endpoints(store, active_only=True):
            pid = versions.get((ep["id"], ep["default_version"]))
            if pid:
                endpoint_defaults[ep["id"]] = pid
    by_pipeline: dict[str, list[dict[str, Any]]] = {}
    for s in schedules:
        pid = s.get("pipeline_id") or endpoint_defaults.get(s.get("pipeline_endpoint_id") or "")
        if pid:
            by_pipeline.setdefault(pid, []).append(s)
    return by_pipeline


def _bundle_serves(workspace: Any) -> bool:
    return (workspace.airflow_home / BUNDLE_DIRNAME / PUBLISHED_STUB_NAME).is_file()


def build_published_dags(workspace: Any, served_by_bundle: bool = False) -> dict[str, Any]:
    """One DAG per served published pipeline, each isolated; returns dag_id → DAG (watcher DAGs included).

    Pipelines that cannot be built are in ``FACTORY_ERRORS["published"]`` (pipeline id → message naming it).

    ``served_by_bundle``: called from the generated ``mlpipe_published_dags.py`` of the workspace's
    submitted-pipelines bundle. A hand-copied factory file (older set-ups copied ``published_pipelines.py``
    into the DAGs folder) defines nothing once that file exists, so no DAG is defined twice.
    """
    if not served_by_bundle and _bundle_serves(workspace):
        log.info("airflow-mlpipe: published pipelines are served by the workspace's %s; this copy of the "
                 "factory defines no DAGs (it can be deleted)", PUBLISHED_STUB_NAME)
        return {}
    from airflow_mlpipe.compiler.dag_builder import build_dag

    run = FactoryRun(FACTORY)
    pipelines, schedules = q.factory_rows(workspace.store)
    by_pipeline = _schedules_by_pipeline(workspace.store, schedules)
    dags: dict[str, Any] = {}
    for row in pipelines:
        label = f"published pipeline {row.get('name')!r} (id {row.get('id')}, DAG {row.get('dag_id')})"
        mine = by_pipeline.get(row["id"], [])
        half_built = [row.get("dag_id"), *(watcher_dag_id(s) for s in mine if s.get("datastore_name"))]
        with run.pipeline(row["id"], label, dag_ids=half_built):
            spec = json.loads(row["spec"]) if isinstance(row["spec"], str) else row["spec"]
            check_spec(spec, f"published pipeline {row['name']!r} ({row['id']})")
            schedule, extra_dags = dag_schedule_for(workspace, mine)
            first = mine[0] if mine else None
            run_defaults = ({"experiment": first.get("experiment_name"),
                             "parameters": first.get("pipeline_parameters") or {},
                             "continue_on_step_failure": first.get("continue_on_step_failure")}
                            if first else None)
            dags[row["dag_id"]] = build_dag(
                spec, schedule=schedule, run_defaults=run_defaults, tags=["mlpipe", "published"],
                description=f"Published pipeline {row['name']} v{row.get('version') or '-'} ({row['id']})",
            )
            dags.update(extra_dags)
    return dags
