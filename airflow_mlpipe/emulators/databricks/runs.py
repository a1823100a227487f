"""Submitted runs from PENDING to TERMINATED: tasks in dependency order on their clusters.

``runs/submit`` accepts the multi-task shape (``tasks[]``) and the single-task shape of API 2.0 (a
``notebook_task``/``spark_python_task``/``spark_jar_task`` at the top level, which becomes one task). Each
submission runs in its own thread: a task waits (PENDING) for its cluster's SparkSession and for the cluster
to be free, runs (RUNNING), and ends TERMINATED with SUCCESS, FAILED, TIMEDOUT or CANCELED; a task whose
dependency did not succeed is SKIPPED (UPSTREAM_FAILED). ``timeout_seconds`` (of the run or of the task)
cancels the task's code and ends it TIMEDOUT; ``runs/cancel`` ends it CANCELED. JAR tasks run through
``spark-submit`` in a process of their own.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

from airflow_mlpipe.emulators.databricks import jar_tasks
from airflow_mlpipe.emulators.databricks.clusters import ClusterPool, ClusterProcess
from airflow_mlpipe.emulators.databricks.state_db import (
    TERMINAL_LIFE_CYCLE_STATES,
    StateDb,
    now_ms,
    run_log_path,
)
from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceError

TASK_KINDS = ("notebook_task", "spark_python_task", "spark_jar_task")
UNSUPPORTED_KINDS = ("python_wheel_task", "spark_submit_task", "pipeline_task", "sql_task", "dbt_task",
                     "run_job_task", "condition_task", "for_each_task", "clean_rooms_notebook_task")
CLUSTER_START_TIMEOUT = 300.0
CANCEL_GRACE_SECONDS = 15.0
MESSAGES = {"CANCELED": "Run cancelled.", "TIMEDOUT": "Run timed out.", "SUCCESS": "",
            "FAILED": "Workload failed, see run output for details"}
TERMINATION_CODES = {"SUCCESS": "SUCCESS", "FAILED": "RUN_EXECUTION_ERROR", "CANCELED": "USER_CANCELED",
                     "TIMEDOUT": "RUN_EXECUTION_ERROR", "UPSTREAM_FAILED": "RUN_EXECUTION_ERROR"}


def invalid(message: str) -> WorkspaceError:
    return WorkspaceError("INVALID_PARAMETER_VALUE", message)


def normalize_submission(request: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """``(run_name, tasks)`` of a ``runs/submit`` body; raises :class:`WorkspaceError` (400) when invalid."""
    if not isinstance(request, dict):
        raise invalid("The request body must be a JSON object")
    run_name = str(request.get("run_name") or "Untitled")
    if request.get("git_source"):
        raise invalid("git_source is not supported by the Databricks emulator: import the notebooks into its "
                      "workspace (workspace/import) or put the files on DBFS")
    job_clusters = {c.get("job_cluster_key"): c.get("new_cluster") or {} for c in request.get("job_clusters") or []}
    if "tasks" in request and request["tasks"]:
        tasks = [dict(task) for task in request["tasks"]]
    else:
        single = {key: request[key] for key in (*TASK_KINDS, *UNSUPPORTED_KINDS, "existing_cluster_id",
                                                 "new_cluster", "libraries", "timeout_seconds") if key in request}
        single["task_key"] = run_name
        tasks = [single]
    keys = set()
    for task in tasks:
        key = task.get("task_key")
        if not key or key in keys:
            raise invalid(f"Every task needs a unique task_key (got {key!r})")
        keys.add(key)
        kinds = [kind for kind in (*TASK_KINDS, *UNSUPPORTED_KINDS) if kind in task]
        if len(kinds) != 1:
            raise invalid(f"Task {key} must have exactly one task type, got {kinds or 'none'}")
        if kinds[0] in UNSUPPORTED_KINDS:
            raise invalid(f"Task {key}: {kinds[0]} is not supported by the Databricks emulator "
                          f"(supported: {', '.join(TASK_KINDS)})")
        if kinds[0] == "notebook_task" and not (task["notebook_task"] or {}).get("notebook_path"):
            raise invalid(f"Task {key}: notebook_task.notebook_path is required")
        if str((task.get(kinds[0]) or {}).get("source", "WORKSPACE")).upper() == "GIT":
            raise invalid(f"Task {key}: source GIT is not supported by the Databricks emulator")
        if kinds[0] == "spark_python_task" and not (task["spark_python_task"] or {}).get("python_file"):
            raise invalid(f"Task {key}: spark_python_task.python_file is required")
        if kinds[0] == "spark_jar_task" and not (task["spark_jar_task"] or {}).get("main_class_name"):
            raise invalid(f"Task {key}: spark_jar_task.main_class_name is required")
        if task.get("job_cluster_key"):
            if task["job_cluster_key"] not in job_clusters:
                raise invalid(f"Task {key}: unknown job_cluster_key {task['job_cluster_key']}")
            task["new_cluster"] = job_clusters[task["job_cluster_key"]]
        clusters = [c for c in ("existing_cluster_id", "new_cluster") if task.get(c)]
        if len(clusters) != 1:
            raise invalid(f"Task {key}: exactly one of existing_cluster_id, new_cluster or job_cluster_key "
                          "is required")
        for dependency in task.get("depends_on") or []:
            if dependency.get("task_key") not in {t.get("task_key") for t in tasks}:
                raise invalid(f"Task {key} depends on unknown task {dependency.get('task_key')}")
    _ordered([{"task_key": task["task_key"], "spec": task} for task in tasks])
    return run_name, tasks


def _ordered(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {t["task_key"]: t for t in tasks}
    done: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in done:
            return
        if key in visiting:
            raise invalid(f"Task dependencies form a cycle at {key}")
        visiting.add(key)
        for dependency in by_key[key]["spec"].get("depends_on") or []:
            visit(dependency["task_key"])
        done.append(key)

    for key in by_key:
        visit(key)
    return [by_key[key] for key in done]


class RunManager:
    def __init__(self, db: StateDb, pool: ClusterPool, home: Path) -> None:
        self.db = db
        self.pool = pool
        self.home = home
        self._cancels: dict[int, threading.Event] = {}
        self._inboxes: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()

    def submit(self, request: dict[str, Any]) -> int:
        run_name, tasks = normalize_submission(request)
        token = request.get("idempotency_token")
        if token is not None and (not isinstance(token, str) or len(token) > 64):
            raise invalid("idempotency_token must be a string of at most 64 characters")
        spec = {k: v for k, v in request.items() if k != "idempotency_token"}
        run_id, created = self.db.create_submission(run_name, spec, tasks, token)
        if created:
            cancel = threading.Event()
            with self._lock:
                self._cancels[run_id] = cancel
            threading.Thread(target=self._run, args=(run_id, cancel), daemon=True, name=f"run-{run_id}").start()
        return run_id

    def cancel(self, run_id: int) -> None:
        run = self.db.get(run_id)
        if run is None:
            raise WorkspaceError("RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.", 400)
        parent = run["parent_run_id"] or run_id
        task_run_ids = {task["run_id"] for task in self.db.tasks(parent)}
        with self._lock:
            event = self._cancels.get(parent)
            inboxes = [(rid, inbox) for rid, inbox in self._inboxes.items() if rid in task_run_ids]
        if event is not None:
            event.set()
        for task_run_id, inbox in inboxes:
            inbox.put({"event": "cancel_requested", "run_id": task_run_id})

    def _run(self, run_id: int, cancel: threading.Event) -> None:
        parent = self.db.get(run_id)
        deadline = _deadline(parent["spec"].get("timeout_seconds"), time.monotonic())
        results: dict[str, str] = {}
        self.db.update_open(run_id, start_ms=now_ms())
        try:
            pending = _ordered(self.db.tasks(run_id))
            while pending:  # every task whose dependencies have ended starts at once, as on Databricks
                wave = [t for t in pending if all(d["task_key"] in results
                                                  for d in t["spec"].get("depends_on") or [])]
                if not wave:
                    raise RuntimeError("task dependencies cannot be satisfied")
                pending = [t for t in pending if t not in wave]
                threads = [threading.Thread(target=self._start_task, args=(run_id, task, cancel, deadline, results),
                                            daemon=True) for task in wave]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        except Exception as error:  # noqa: BLE001 - the emulator's own failure ends the run, never loses it
            self._finish(run_id, "INTERNAL_ERROR", "FAILED", f"Emulator error: {error}")
            for task in self.db.tasks(run_id):
                if task["life_cycle_state"] not in TERMINAL_LIFE_CYCLE_STATES:
                    self._finish(task["run_id"], "INTERNAL_ERROR", "FAILED", f"Emulator error: {error}")
            return
        finally:
            with self._lock:
                self._cancels.pop(run_id, None)
        outcome = _combine(list(results.values()))
        self.db.update_open(run_id, life_cycle_state="TERMINATING")
        message = MESSAGES.get(outcome, "")
        if outcome == "FAILED":
            failed = [key for key, state in results.items() if state in ("FAILED", "TIMEDOUT")]
            message = f"Task {', '.join(failed)} failed with message: " + (self._first_error(run_id) or "error")
        self._finish(run_id, "TERMINATED", outcome, message, cancelled=outcome in ("CANCELED", "TIMEDOUT"))

    def _start_task(self, run_id: int, task: dict[str, Any], cancel: threading.Event, deadline: float | None,
                    results: dict[str, str]) -> None:
        upstream = [d["task_key"] for d in task["spec"].get("depends_on") or []]
        try:
            if cancel.is_set():
                self._finish(task["run_id"], "TERMINATED", "CANCELED", "Run cancelled.", cancelled=True)
                results[task["task_key"]] = "CANCELED"
            elif any(results.get(key) != "SUCCESS" for key in upstream):
                self._finish(task["run_id"], "SKIPPED", "UPSTREAM_FAILED",
                             "Upstream task(s) failed: " + ", ".join(upstream))
                results[task["task_key"]] = "UPSTREAM_FAILED"
            else:
                self.db.update_open(run_id, life_cycle_state="RUNNING")
                results[task["task_key"]] = self._run_task(task, cancel, deadline)
        except Exception as error:  # noqa: BLE001 - the emulator's own failure ends the task, never loses it
            self._finish(task["run_id"], "INTERNAL_ERROR", "FAILED", f"Emulator error: {error}")
            results[task["task_key"]] = "FAILED"

    def _first_error(self, run_id: int) -> str | None:
        for task in self.db.tasks(run_id):
            if task["error"]:
                return task["error"]
        return None

    def _finish(self, run_id: int, life_cycle: str, result: str, message: str, cancelled: bool = False,
                **fields: Any) -> None:
        code = "INTERNAL_ERROR" if life_cycle == "INTERNAL_ERROR" else TERMINATION_CODES.get(result, "SUCCESS")
        self.db.update_open(run_id, life_cycle_state=life_cycle, result_state=result, state_message=message,
                            termination_code=code, user_cancelled_or_timedout=int(cancelled), end_ms=now_ms(),
                            **fields)

    def _run_task(self, task: dict[str, Any], cancel: threading.Event, run_deadline: float | None) -> str:
        spec, task_run_id = task["spec"], task["run_id"]
        deadline = _earliest(run_deadline, _deadline(spec.get("timeout_seconds"), time.monotonic()))
        inbox: queue.Queue = queue.Queue()
        with self._lock:
            self._inboxes[task_run_id] = inbox
        try:
            if "spark_jar_task" in spec:
                self.db.update_open(task_run_id, life_cycle_state="RUNNING", start_ms=now_ms(),
                                    exec_start_ms=now_ms(),
                                    cluster_id=spec.get("existing_cluster_id") or f"jar-job{task_run_id}")
                outcome = jar_tasks.run_jar_task(self.home, task_run_id, spec, inbox, deadline)
                return self._record(task_run_id, outcome)
            cluster = self._cluster_for(task_run_id, spec)
            self.db.update_open(task_run_id, start_ms=now_ms(), cluster_id=cluster.cluster_id,
                                state_message="Waiting for cluster")
            try:
                return self._run_on_cluster(task_run_id, spec, cluster, inbox, cancel, deadline)
            finally:
                if cluster.one_time:
                    threading.Thread(target=cluster.terminate, args=("Job run finished",), daemon=True).start()
        finally:
            with self._lock:
                self._inboxes.pop(task_run_id, None)

    def _cluster_for(self, run_id: int, spec: dict[str, Any]) -> ClusterProcess:
        if spec.get("existing_cluster_id"):
            cluster = self.pool.existing(str(spec["existing_cluster_id"]))
            self.db.remember_cluster(cluster.cluster_id, cluster.spec, one_time=False)
            return cluster
        cluster = self.pool.one_time(run_id, dict(spec.get("new_cluster") or {}))
        self.db.remember_cluster(cluster.cluster_id, cluster.spec, one_time=True)
        return cluster

    def _run_on_cluster(self, run_id: int, spec: dict[str, Any], cluster: ClusterProcess, inbox: queue.Queue,
                        cancel: threading.Event, deadline: float | None) -> str:
        cluster.ensure_started()
        start_limit = time.monotonic() + CLUSTER_START_TIMEOUT
        while not cluster.wait_ready(0.2):
            if cluster.state in ("ERROR", "TERMINATED"):
                return self._record(run_id, {"result_state": "FAILED", "life_cycle": "INTERNAL_ERROR",
                                             "error": cluster.state_message or "The cluster did not start"})
            stop = _stopped(cancel, deadline)
            if stop or time.monotonic() > start_limit:
                return self._record(run_id, {"result_state": stop or "FAILED",
                                             "error": None if stop else "The cluster did not start in time"})
        while not cluster.busy.acquire(timeout=0.2):
            stop = _stopped(cancel, deadline)
            if stop:
                return self._record(run_id, {"result_state": stop})
        try:
            if (stop := _stopped(cancel, deadline)) is not None:
                return self._record(run_id, {"result_state": stop})
            cluster.listen(run_id, inbox)
            log_path = run_log_path(self.home, run_id)
            self.db.update_open(run_id, life_cycle_state="RUNNING", exec_start_ms=now_ms(), state_message="")
            cluster.send({"cmd": "run", "run_id": run_id, "task": spec, "log_path": str(log_path)})
            return self._record(run_id, self._await_finish(run_id, cluster, inbox, cancel, deadline))
        finally:
            cluster.unlisten(run_id)
            cluster.busy.release()

    def _await_finish(self, run_id: int, cluster: ClusterProcess, inbox: queue.Queue, cancel: threading.Event,
                      deadline: float | None) -> dict[str, Any]:
        stop_sent_at: float | None = None
        reason: str | None = None
        while True:
            if reason is None and (reason := _stopped(cancel, deadline)) is not None:
                self.db.update_open(run_id, life_cycle_state="TERMINATING")
                cluster.send({"cmd": "cancel", "run_id": run_id, "reason": reason})
                stop_sent_at = time.monotonic()
            waits = [1.0]
            if deadline is not None and reason is None:
                waits.append(max(0.0, deadline - time.monotonic()))
            if stop_sent_at is not None:
                if time.monotonic() - stop_sent_at > CANCEL_GRACE_SECONDS:
                    cluster.kill(f"Driver killed: the run {run_id} did not stop after its {reason}")
                    return {"result_state": reason}
                waits.append(CANCEL_GRACE_SECONDS)
            try:
                event = inbox.get(timeout=min(waits))
            except queue.Empty:
                continue
            if event.get("event") == "finished" and int(event["run_id"]) == run_id:
                return event
            if event.get("event") == "driver_lost":
                if reason:
                    return {"result_state": reason}
                return {"result_state": "FAILED", "life_cycle": "INTERNAL_ERROR",
                        "error": f"The Spark driver stopped unexpectedly (exit code {event.get('code')})"}

    def _record(self, run_id: int, outcome: dict[str, Any]) -> str:
        result = outcome.get("result_state") or "FAILED"
        life_cycle = outcome.get("life_cycle") or "TERMINATED"
        message = outcome.get("error") if result == "FAILED" and outcome.get("error") else MESSAGES.get(result, "")
        fields = {"error": outcome.get("error"), "error_trace": outcome.get("error_trace"),
                  "notebook_result": outcome.get("notebook_result"),
                  "notebook_truncated": int(bool(outcome.get("notebook_truncated")))}
        if result == "TIMEDOUT" and not fields["error"]:
            fields["error"] = "Run timed out."
        self._finish(run_id, life_cycle, result, message or "", cancelled=result in ("CANCELED", "TIMEDOUT"),
                     **fields)
        return result


def _deadline(seconds: Any, start: float) -> float | None:
    try:
        value = float(seconds or 0)
    except (TypeError, ValueError):
        return None
    return start + value if value > 0 else None


def _earliest(*deadlines: float | None) -> float | None:
    values = [d for d in deadlines if d is not None]
    return min(values) if values else None


def _stopped(cancel: threading.Event, deadline: float | None) -> str | None:
    if cancel.is_set():
        return "CANCELED"
    if deadline is not None and time.monotonic() >= deadline:
        return "TIMEDOUT"
    return None


def _combine(states: list[str]) -> str:
    for state in ("CANCELED", "TIMEDOUT", "FAILED"):
        if state in states:
            return state
    return "FAILED" if "UPSTREAM_FAILED" in states else "SUCCESS"
