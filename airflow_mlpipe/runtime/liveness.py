"""Whether a step is alive follows Airflow's task state, not a process on this host.

A deferred task is alive although no process of it runs; a task whose process was killed is dead once Airflow
says so (failed, up_for_retry, removed, its run failed). Used by the single-flight lock of the cache (is the
lock owner alive?) and by the reconciliation of step-run rows left ``Running`` by a dead task.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from airflow_mlpipe.contract.run_context import ENV_RUN_ID
from airflow_mlpipe.runtime.processes import kill_leftovers

log = logging.getLogger(__name__)

#: task states in which a task instance (or its next try) will still run, or runs without a process (deferred)
ALIVE_STATES = frozenset({"running", "deferred", "queued", "scheduled", "up_for_retry", "up_for_reschedule",
                          "restarting"})
#: a task instance that does not exist (any more)
MISSING = "removed"
#: a task instance without a state (cleared, or not scheduled yet)
NO_STATE = "none"


@dataclass(frozen=True)
class TaskRef:
    """One Airflow task instance (and the try that runs)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1

    def same_task(self, other: TaskRef) -> bool:
        return (self.dag_id, self.run_id, self.task_id, self.map_index) == (
            other.dag_id, other.run_id, other.task_id, other.map_index)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TaskRef | None:
        try:
            return cls(str(data["dag_id"]), str(data["run_id"]), str(data["task_id"]),
                       int(data.get("map_index", -1)), int(data.get("try_number", 1)))
        except (TypeError, KeyError, ValueError):
            return None


#: the state of a task instance (a value of ``TaskInstanceState``, MISSING or NO_STATE), None when unknown
StateProbe = Callable[[TaskRef], str | None]

_CURRENT: ContextVar[tuple[TaskRef, StateProbe] | None] = ContextVar("mlpipe_current_task", default=None)


@contextlib.contextmanager
def bind_task(task: TaskRef, probe: StateProbe) -> Iterator[None]:
    """The Airflow task instance the code inside runs for, and how to ask Airflow about others."""
    token = _CURRENT.set((task, probe))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_task() -> tuple[TaskRef, StateProbe] | None:
    return _CURRENT.get()


def state_name(state: Any) -> str:
    if state is None:
        return NO_STATE
    return str(getattr(state, "value", state))


def task_sdk_probe(task: TaskRef) -> str | None:
    """Ask through the Task SDK (inside a running task: the supervisor forwards it to the API server)."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id=task.dag_id, task_ids=[task.task_id],
                                                     run_ids=[task.run_id],
                                                     map_index=None if task.map_index < 0 else task.map_index)
    except Exception:  # noqa: BLE001 - unknown: the caller falls back to heartbeats and pids
        log.debug("could not read the state of %s", task, exc_info=True)
        return None
    by_task = (states or {}).get(task.run_id) or {}
    key = task.task_id if task.map_index < 0 else f"{task.task_id}_{task.map_index}"
    if key not in by_task:
        return MISSING
    return state_name(by_task[key])


def orm_states(dag_id: str, run_id: str) -> dict[str, str]:
    """Task id → state of every task instance of a DAG run, from Airflow's database (scheduler side)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.state)
                               .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
    return {task_id: state_name(state) for task_id, state in rows}


def dead_status(state: str, run_ended: bool) -> str | None:
    """What a step-run row left ``Running`` becomes given its task's state; None while the task is alive."""
    if state == "success":
        return None  # the step wrote its own result (or is about to)
    if state in ALIVE_STATES and not run_ended:
        return None
    if state in ("failed", "up_for_retry") or state in ALIVE_STATES:
        return "Failed"
    return "Canceled"  # skipped, upstream_failed, removed, cleared


def _why(state: str, run_ended: bool, try_number: int | None) -> str:
    attempt = f"try {try_number}" if try_number else "its try"
    if state in ("failed", "up_for_retry"):
        return (f"the task's process ended without finishing the step ({attempt}; Airflow task state {state}: "
                "killed, or its worker was lost)")
    if run_ended:
        return f"the pipeline run ended while the step was running (Airflow task state {state})"
    return f"the task is no longer running (Airflow task state {state})"


def remove_partials(paths: list[str]) -> list[str]:
    """Remove uncommitted staging folders/files (never anything else: the name must say it is partial)."""
    from airflow_mlpipe.runtime.step_runner import PARTIAL_MARK, StagedOutputs

    removed = []
    for path in paths:
        if PARTIAL_MARK in os.path.basename(str(path)) and os.path.lexists(path):
            StagedOutputs.discard_one(str(path))
            removed.append(str(path))
    return removed


def reconcile_step_runs(store: Any, pipeline_run_id: str, state_of: Callable[[str], str | None],
                        run_ended: bool = False, skip_task: str | None = None) -> list[str]:
    """End step-run rows of a pipeline run left ``Running`` by a task Airflow no longer runs, and remove their
    staging folders; returns the ids of the rows ended. ``state_of(task_id)`` is None when unknown."""
    ended = []
    for row in store.list_step_runs(pipeline_run_id):
        if row.get("status") != "Running" or row.get("task_id") == skip_task:
            continue
        state = state_of(row["task_id"])
        if state is None:
            continue
        status = dead_status(state, run_ended)
        if status is None:
            continue
        why = _why(state, run_ended, row.get("try_number"))
        if store.end_running_step_run(row["step_run_id"], row.get("try_number"), status, why):
            kill_leftovers(ENV_RUN_ID, row["step_run_id"])
            removed = remove_partials(list((row.get("details") or {}).get("staging") or []))
            log.warning("airflow-mlpipe: step run %s ended %s: %s%s", row["step_run_id"], status, why,
                        f"; removed {removed}" if removed else "")
            ended.append(row["step_run_id"])
    return ended
