"""The Jobs API bodies (``/api/2.1`` and ``/api/2.2``): ``runs/submit``, ``runs/get``, ``runs/get-output``,
``runs/cancel``, and ``clusters/get``/``clusters/start``, shaped as Databricks answers them.

``runs/get`` of a submitted run lists its task runs in ``tasks[]`` (each with its own ``run_id``); API 2.2 adds
``status`` (``state`` and ``termination_details``) next to the classic ``state`` and pages ``tasks[]`` by 100 with
``next_page_token``. ``runs/get-output`` answers for a task run (and, as a convenience, for a run with a single
task); it carries ``notebook_output.result`` (the ``dbutils.notebook.exit`` value), ``logs`` (the task's
stdout and stderr), and ``error``/``error_trace`` when it failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_mlpipe.emulators.databricks.clusters import ClusterPool
from airflow_mlpipe.emulators.databricks.runs import RunManager
from airflow_mlpipe.emulators.databricks.state_db import TERMINAL_LIFE_CYCLE_STATES, StateDb, run_log_path
from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceError

TASKS_PAGE_SIZE = 100
LOGS_LIMIT = 5 * 1024 * 1024
TERMINATION_TYPES = {"SUCCESS": "SUCCESS", "RUN_EXECUTION_ERROR": "CLIENT_ERROR", "USER_CANCELED": "SUCCESS",
                     "INTERNAL_ERROR": "INTERNAL_ERROR", "DRIVER_ERROR": "CLOUD_FAILURE"}


def _run_id(params: dict[str, Any]) -> int:
    try:
        return int(params["run_id"])
    except (KeyError, TypeError, ValueError):
        raise WorkspaceError("INVALID_PARAMETER_VALUE", "run_id is required and must be an integer") from None


class JobsApi:
    def __init__(self, db: StateDb, runs: RunManager, pool: ClusterPool, home: Path, base_url: str) -> None:
        self.db = db
        self.runs = runs
        self.pool = pool
        self.home = home
        self.base_url = base_url

    def run_page_url(self, job_id: int, run_id: int) -> str:
        return f"{self.base_url}/?o=0#job/{job_id}/run/{run_id}"

    def _row(self, run_id: int) -> dict[str, Any]:
        row = self.db.get(run_id)
        if row is None:
            raise WorkspaceError("INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.", 400)
        return row

    # --- shapes -----------------------------------------------------------------------------------------

    def state(self, row: dict[str, Any]) -> dict[str, Any]:
        state = {"life_cycle_state": row["life_cycle_state"], "state_message": row["state_message"] or "",
                 "user_cancelled_or_timedout": bool(row["user_cancelled_or_timedout"])}
        if row["result_state"]:
            state["result_state"] = row["result_state"]
        return state

    def status(self, row: dict[str, Any]) -> dict[str, Any]:
        life_cycle = row["life_cycle_state"]
        if life_cycle in TERMINAL_LIFE_CYCLE_STATES:
            code = row["termination_code"] or ("SKIPPED" if life_cycle == "SKIPPED" else "SUCCESS")
            if row["result_state"] == "UPSTREAM_FAILED":
                code = "SKIPPED"
            return {"state": "TERMINATED", "termination_details": {
                "code": code, "type": TERMINATION_TYPES.get(code, "SUCCESS"), "message": row["state_message"] or ""}}
        return {"state": life_cycle if life_cycle in ("PENDING", "RUNNING", "TERMINATING") else "PENDING"}

    def _timing(self, row: dict[str, Any]) -> dict[str, Any]:
        start = row["start_ms"] or 0
        exec_start = row["exec_start_ms"] or 0
        end = row["end_ms"] or 0
        setup = (exec_start - start) if exec_start and start else 0
        execution = (end - exec_start) if end and exec_start else 0
        return {"start_time": start or row["submitted_ms"], "end_time": end, "setup_duration": max(setup, 0),
                "execution_duration": max(execution, 0), "cleanup_duration": 0,
                "run_duration": (end - (start or row["submitted_ms"])) if end else 0, "queue_duration": 0}

    def task_shape(self, row: dict[str, Any], version: str) -> dict[str, Any]:
        spec = row["spec"]
        shape = {key: spec[key] for key in ("notebook_task", "spark_python_task", "spark_jar_task",
                                            "existing_cluster_id", "new_cluster", "libraries", "depends_on",
                                            "timeout_seconds", "job_cluster_key") if key in spec}
        shape.update({"run_id": row["run_id"], "task_key": row["task_key"], "state": self.state(row),
                      "attempt_number": 0, "run_page_url": self.run_page_url(row["job_id"], row["run_id"]),
                      **self._timing(row)})
        if row["cluster_id"]:
            shape["cluster_instance"] = {"cluster_id": row["cluster_id"], "spark_context_id": str(row["run_id"])}
        if version == "2.2":
            shape["status"] = self.status(row)
        return shape

    def run_shape(self, row: dict[str, Any], version: str, page_token: str | None = None) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "job_id": row["job_id"], "run_id": row["run_id"], "number_in_job": row["run_id"],
            "original_attempt_run_id": row["run_id"], "creator_user_name": "emulator@localhost",
            "run_name": row["run_name"], "state": self.state(row), "run_type": "SUBMIT_RUN",
            "trigger": "ONE_TIME", "format": "MULTI_TASK", "attempt_number": 0,
            "run_page_url": self.run_page_url(row["job_id"], row["run_id"]), **self._timing(row)}
        if version == "2.2":
            shape["status"] = self.status(row)
        if row["parent_run_id"] is None:
            tasks = [self.task_shape(task, version) for task in self.db.tasks(row["run_id"])]
            if version == "2.2":
                start = int(page_token) if page_token and str(page_token).isdigit() else 0
                page = tasks[start:start + TASKS_PAGE_SIZE]
                if start + TASKS_PAGE_SIZE < len(tasks):
                    shape["next_page_token"] = str(start + TASKS_PAGE_SIZE)
                    shape["has_more"] = True
                tasks = page
            shape["tasks"] = tasks
            if row["spec"].get("timeout_seconds"):
                shape["timeout_seconds"] = row["spec"]["timeout_seconds"]
            clusters = {t.get("cluster_instance", {}).get("cluster_id") for t in tasks} - {None}
            if len(clusters) == 1:
                shape["cluster_instance"] = {"cluster_id": clusters.pop(), "spark_context_id": str(row["run_id"])}
        else:
            shape.update({k: v for k, v in self.task_shape(row, version).items()
                          if k not in ("run_page_url", "state", "status")})
            shape["parent_run_id"] = row["parent_run_id"]
        return shape

    # --- endpoints ----------------------------------------------------------------------------------------

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"run_id": self.runs.submit(body)}

    def get(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        return self.run_shape(self._row(_run_id(params)), version, params.get("page_token"))

    def get_output(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        row = self._row(_run_id(params))
        if row["parent_run_id"] is None:
            tasks = self.db.tasks(row["run_id"])
            if len(tasks) != 1:
                raise WorkspaceError("INVALID_PARAMETER_VALUE",
                                     "Retrieving the output of runs with multiple tasks is not supported. Please "
                                     "retrieve the output of each individual task run instead.")
            row = tasks[0]
        output: dict[str, Any] = {"metadata": self.run_shape(row, version)}
        if "notebook_task" in row["spec"] and row["notebook_result"] is not None:
            output["notebook_output"] = {"result": row["notebook_result"],
                                         "truncated": bool(row["notebook_truncated"])}
        log_path = run_log_path(self.home, row["run_id"])
        if log_path.is_file():
            data = log_path.read_bytes()
            output["logs"] = data[-LOGS_LIMIT:].decode("utf-8", "replace")
            output["logs_truncated"] = len(data) > LOGS_LIMIT
        if row["result_state"] in ("FAILED", "TIMEDOUT") or row["life_cycle_state"] == "INTERNAL_ERROR":
            output["error"] = row["error"] or row["state_message"] or row["result_state"]
            if row["error_trace"]:
                output["error_trace"] = row["error_trace"]
        return output

    def cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        self.runs.cancel(_run_id(body))
        return {}

    def cluster_get(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster_id = params.get("cluster_id")
        if not cluster_id:
            raise WorkspaceError("INVALID_PARAMETER_VALUE", "cluster_id is required")
        cluster = self.pool.get(str(cluster_id))
        if cluster is None:
            known = self.db.cluster(str(cluster_id))
            cluster = self.pool.existing(str(cluster_id), known["spec"] if known else {})
        return cluster.as_api()

    def cluster_start(self, body: dict[str, Any]) -> dict[str, Any]:
        cluster_id = body.get("cluster_id")
        if not cluster_id:
            raise WorkspaceError("INVALID_PARAMETER_VALUE", "cluster_id is required")
        cluster = self.pool.existing(str(cluster_id))
        if cluster.one_time:
            raise WorkspaceError("INVALID_STATE", f"Cluster {cluster_id} is a job cluster and cannot be started")
        self.db.remember_cluster(cluster.cluster_id, cluster.spec, one_time=False)
        cluster.ensure_started()
        return {}

    def cluster_list(self) -> dict[str, Any]:
        return {"clusters": [c.as_api() for c in self.pool.all()]}
