"""Keep our store's pipeline-run status in step with Airflow, whoever triggered the run (UI, REST, schedule).

Runs in the scheduler process; it writes only rows that airflow-mlpipe operators or submissions created.
"""

from __future__ import annotations

import logging
import os
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
    except Exception:  # noqa: BLE001 - a listener must never break the scheduler
        log.exception("airflow-mlpipe: could not record the end of DAG run %s", getattr(dag_run, "run_id", "?"))


class PipelineRunListener:
    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        _record(dag_run, "Finished")

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        _record(dag_run, "Failed", msg or None)


pipeline_run_listener = PipelineRunListener()
