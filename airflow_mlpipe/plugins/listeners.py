"""Keep our store's pipeline-run status in step with Airflow, whoever triggered the run (UI, REST, schedule).

Runs in the scheduler process; it writes only rows that airflow-mlpipe operators or submissions created.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


def _record(dag_run: Any, status: str, error: str | None = None) -> None:
    if not (os.environ.get("MLPIPE_WORKSPACE_HOME") or os.environ.get("MLPIPE_WORKSPACE_CONFIG")):
        return
    try:
        from airflow_mlpipe.operators.base import CONF_KEY
        from airflow_mlpipe.store.db import utcnow
        from airflow_mlpipe.workspace import Workspace

        conf = getattr(dag_run, "conf", None) or {}
        run_id = (conf.get(CONF_KEY) or {}).get("run_id") or dag_run.run_id
        store = Workspace.from_config().store
        if store.get_pipeline_run(run_id) is None:
            return
        fields: dict[str, Any] = {"status": status, "end_time": utcnow()}
        if error:
            fields["error"] = error
        store.upsert_pipeline_run(run_id, **fields)
        rows = store.list_step_runs(run_id)
        # the scheduler may still hold its own transaction on Airflow's DB (SQLite: one writer): write later
        threading.Thread(target=_note_reused_steps_safely, args=(dag_run.dag_id, dag_run.run_id, rows),
                         daemon=True).start()
    except Exception:  # noqa: BLE001 - a listener must never break the scheduler
        log.exception("airflow-mlpipe: could not record the end of DAG run %s", getattr(dag_run, "run_id", "?"))


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


pipeline_run_listener = PipelineRunListener()
