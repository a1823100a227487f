"""The one rule for v1 run statuses: Airflow's state plus our store's record → a v1 status name.

The SDK (``PipelineRun.get_status``, ``StepRun.get_status``), the REST API (which the UI page reads) and the
submission service all ask this module, so a run or step shows the same status everywhere. Airflow is the source
of truth for scheduling; the store's record is the source of truth once it says the run or step ended (it knows
about reuse, cancelling and errors Airflow does not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Airflow DAG-run state → v1 pipeline-service status
PIPELINE_STATUS = {"queued": "NotStarted", "running": "Running", "success": "Finished", "failed": "Failed"}
#: Airflow task-instance state → v1 step (node) status
STEP_STATUS = {
    None: "NotStarted", "none": "NotStarted", "scheduled": "Queued", "queued": "Queued", "running": "Running",
    "up_for_retry": "Running", "up_for_reschedule": "Running", "restarting": "Running", "deferred": "Running",
    "success": "Finished", "failed": "Failed", "upstream_failed": "NotStarted", "skipped": "Bypassed",
    "removed": "Canceled",
}
#: v1 statuses after which a run or step never changes again
TERMINAL = frozenset({"Finished", "Failed", "Canceled"})
#: the status of a run or step that nothing has reported on yet
NOT_STARTED = "NotStarted"
#: an Airflow state this module does not know (a newer Airflow) still means "not ended"
UNKNOWN_STATE_STATUS = "Running"


def pipeline_status(record: Mapping[str, Any] | None, dag_run: Mapping[str, Any] | None) -> str:
    """The v1 status of a pipeline run.

    ``record``: our store's pipeline-run row (or None); ``dag_run``: Airflow's DAG run as its REST API returns
    it, or None when Airflow was not asked or did not answer. An ended record wins (a cancelled run's DAG run
    is merely "failed"); otherwise Airflow's state decides; without an answer, the record's last status stands.
    """
    recorded = (record or {}).get("status")
    if recorded in TERMINAL or dag_run is None:
        return recorded or NOT_STARTED
    return PIPELINE_STATUS.get(dag_run.get("state"), UNKNOWN_STATE_STATUS)


def step_status(record: Mapping[str, Any] | None, task_instance: Mapping[str, Any] | None) -> str:
    """The v1 status of one step of a run.

    ``record``: our store's step-run row (or None); ``task_instance``: Airflow's task instance as its REST API
    returns it, or None when Airflow has none (or was not reachable). A record that ended (Finished, Failed,
    Canceled; a reused step is recorded Finished) wins; otherwise Airflow's task state decides, including a
    task that ended while our record still says Running (a killed task: Failed); without a task instance the
    record's status stands.
    """
    recorded = (record or {}).get("status")
    if recorded in TERMINAL:
        return recorded
    if task_instance is not None:
        state = task_instance.get("state")
        return STEP_STATUS.get(state, UNKNOWN_STATE_STATUS)
    return recorded or NOT_STARTED

