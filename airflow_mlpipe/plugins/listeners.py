"""Keep our store's pipeline-run status in step with Airflow, whoever triggered the run (UI, REST, schedule).

Runs in the scheduler process; it writes only rows that airflow-mlpipe operators or submissions created.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


def _record(dag_run: Any, status: str, error: str | None = None) -> None:
    if not (os.environ.get("MLPIPE_WORKSPACE_HOME") or os.environ.get("MLPIPE_WORKSPACE_CONFIG")):
        return
    try:
        from airflow_mlpipe.contract.conf import CONF_KEY
        from airflow_mlpipe.data.workspace_location import WorkspaceLocation
        from airflow_mlpipe.store.db import utcnow

        conf = getattr(dag_run, "conf", None) or {}
        run_id = (conf.get(CONF_KEY) or {}).get("run_id") or dag_run.run_id
        store = WorkspaceLocation.from_config().store
        row = store.get_pipeline_run(run_id)
        if row is None:
            return
        fields: dict[str, Any] = {"status": status, "end_time": utcnow()}
        if error and not row.get("error"):  # keep a step's own explanation (e.g. a spec mismatch)
            fields["error"] = error
        store.upsert_pipeline_run(run_id, **fields)
        threading.Thread(target=_reconcile_safely, args=(store, run_id, dag_run.dag_id, dag_run.run_id, True),
                         daemon=True).start()
        rows = store.list_step_runs(run_id)
        # the scheduler may still hold its own transaction on Airflow's DB (SQLite: one writer): write later
        threading.Thread(target=_note_reused_steps_safely, args=(dag_run.dag_id, dag_run.run_id, rows),
                         daemon=True).start()
    except Exception:  # noqa: BLE001 - a listener must never break the scheduler
        log.exception("airflow-mlpipe: could not record the end of DAG run %s", getattr(dag_run, "run_id", "?"))


def _reconcile_safely(store: Any, pipeline_run_id: str, dag_id: str, airflow_run_id: str, run_ended: bool,
                      only_task: str | None = None) -> None:
    """End step-run rows left ``Running`` by tasks Airflow no longer runs (their process was killed, their
    worker lost, their run failed) and remove their staging folders."""
    try:
        from airflow_mlpipe.runtime import liveness

        states = liveness.orm_states(dag_id, airflow_run_id)
        liveness.reconcile_step_runs(
            store, pipeline_run_id,
            lambda task_id: states.get(task_id, liveness.MISSING) if only_task in (None, task_id) else None,
            run_ended=run_ended)
    except Exception:  # noqa: BLE001 - a listener must never disturb the scheduler
        log.exception("airflow-mlpipe: could not reconcile the step runs of %s", pipeline_run_id)


def _task_failed(task_instance: Any) -> None:
    """A task instance failed or awaits a retry, seen by whichever component handled it (scheduler, DAG
    processor, task process): its step run, if still ``Running``, ends now."""
    if not (os.environ.get("MLPIPE_WORKSPACE_HOME") or os.environ.get("MLPIPE_WORKSPACE_CONFIG")):
        return
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if getattr(runner, "SUPERVISOR_COMMS", None) is not None:
        return  # in the task process: the step recorded its own end (and Airflow's DB is not reachable here)
    try:
        from airflow_mlpipe.contract.conf import CONF_KEY
        from airflow_mlpipe.data.workspace_location import WorkspaceLocation

        dag_run = getattr(task_instance, "dag_run", None)
        conf = getattr(dag_run, "conf", None) or {}
        meta = conf.get(CONF_KEY) if isinstance(conf, dict) else None
        run_id = (meta.get("run_id") if isinstance(meta, dict) else None) or task_instance.run_id
        store = WorkspaceLocation.from_config().store
        threading.Thread(target=_reconcile_safely,
                         args=(store, run_id, task_instance.dag_id, task_instance.run_id, False,
                               task_instance.task_id), daemon=True).start()
    except Exception:  # noqa: BLE001 - a listener must never break its host
        log.exception("airflow-mlpipe: could not reconcile the step run of %s", task_instance)


def _note_reused_steps_safely(dag_id: str, run_id: str, step_rows: list[dict[str, Any]]) -> None:
    try:
        _note_reused_steps(dag_id, run_id, step_rows)
    except Exception:  # noqa: BLE001 - notes are a courtesy; never disturb the scheduler
        log.exception("airflow-mlpipe: could not write reuse notes for %s/%s", dag_id, run_id)


def _note_reused_steps(dag_id: str, run_id: str, step_rows: list[dict[str, Any]]) -> None:
    """Show reuse in the Airflow UI: a note on each reused (skipped) task and on the DAG run."""
    reused = {r["task_id"]: r for r in step_rows if r.get("reused_run_id")}
    if not reused:
        return
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                         TaskInstance.run_id == run_id,
                                                         TaskInstance.task_id.in_(list(reused))))
        for ti in tis:
            row = reused[ti.task_id]
            ti.note = (f"Reused (cache hit): outputs of step run {row['reused_run_id']}"
                       f" of pipeline run {(row.get('details') or {}).get('reused_pipeline_run_id', '?')}")
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        message = f"{len(reused)} of {len(step_rows)} steps reused: {', '.join(sorted(reused))}"
        if dr is not None and message not in (dr.note or ""):
            dr.note = f"{dr.note}; {message}" if dr.note else message


class PipelineRunListener:
    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        _record(dag_run, "Finished")

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        _record(dag_run, "Failed", msg or None)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        _task_failed(task_instance)


pipeline_run_listener = PipelineRunListener()
