"""PipelineRun and StepRun: views over an Airflow DAG run and our store, with v1 names and statuses.

Status comes from Airflow (the source of truth for scheduling) and our store's record, combined by the one
rule in :mod:`airflow_mlpipe.contract.status` that the REST API uses too; outputs, metrics and reuse come from
our store. When no Airflow is reachable (it was stopped), the last status recorded in the store is used.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from airflow_mlpipe.contract.exceptions import ActivityFailedException, UserErrorException
from airflow_mlpipe.contract.status import (  # noqa: F401 - PIPELINE_STATUS, STEP_STATUS: their old import path
    PIPELINE_STATUS,
    STEP_STATUS,
    TERMINAL,
    pipeline_status,
    step_status,
)
from airflow_mlpipe.contract.timestamps import iso_utc as _iso
from airflow_mlpipe.sdk.run import Run
from airflow_mlpipe.store.db import utcnow

log = logging.getLogger(__name__)

#: seconds between polls while Airflow answers; the longest pause between retries while it does not
POLL_INTERVAL = 0.5
MAX_RETRY_INTERVAL = 5.0
#: a poll request that takes longer than this counts as "not answering"
POLL_REQUEST_TIMEOUT = 10.0


#: one logged-in client per workspace, so that polling a run does not log in and health-check on every poll
_CLIENTS: dict[Any, Any] = {}
#: the URL Airflow last answered at, per workspace (to name it once it stops answering)
_URLS: dict[Any, str] = {}


def _client(workspace: Any):
    """An Airflow REST client if one is reachable without starting anything, else None."""
    from airflow_mlpipe.clients.airflow_rest import AirflowClient, client_for
    from airflow_mlpipe.clients.local_airflow import status

    client = _CLIENTS.get(workspace.home)
    if client is not None:
        return client
    if workspace.is_embedded:
        info = status(workspace, check_health=False)  # the first request tells whether it answers
        if info is None:
            return None
        client = AirflowClient(info.url, info.username, info.password, timeout=POLL_REQUEST_TIMEOUT)
    else:
        client = client_for(workspace)
    _CLIENTS[workspace.home] = client
    _URLS[workspace.home] = client.base_url
    return client


def _forget_client(workspace: Any) -> None:
    """After a failed request: the next call checks again whether (and where) Airflow runs, and logs in anew
    (a restarted Airflow may live on another port or no longer accept the old token)."""
    _CLIENTS.pop(workspace.home, None)  # not closed: another caller may still be using it


def _airflow_url(workspace: Any) -> str:
    """Where Airflow answered last (or should answer), for messages."""
    url = _URLS.get(workspace.home) or workspace.airflow_config.get("url")
    if not url:
        from airflow_mlpipe.clients.local_airflow import last_url

        url = last_url(workspace)
    return url or f"(the embedded Airflow of {workspace.home})"


class _Outage:
    """Polling through an Airflow that stopped answering: say so once (at the second failed poll in a row, a
    second or so in: a single slow answer is no outage), retry with backoff, give up after ``limit`` seconds
    from the first failed poll, and say so again when it answers."""

    def __init__(self, run: PipelineRun, limit: float, show_output: bool) -> None:
        self.run = run
        self.limit = limit
        self.show_output = show_output
        self.since: float | None = None
        self.retries = 0
        self.announced = False

    def _say(self, message: str) -> None:
        if self.show_output:
            print(message, flush=True)
        else:
            log.warning("%s", message)

    def next_pause(self, status: str) -> float:
        """Called after each poll: the seconds to wait before the next one; raises once the limit is passed."""
        reason = self.run._unanswered
        url = _airflow_url(self.run.experiment.workspace)
        if reason is None:
            if self.announced:
                self._say(f"Airflow at {url} is answering again")
            self.since, self.retries, self.announced = None, 0, False
            return POLL_INTERVAL
        now = time.monotonic()
        if self.since is None:
            self.since = now
        elif not self.announced:
            self.announced = True
            self._say(f"Airflow at {url} is not answering; retrying for up to {self.limit:.0f} s ({reason})")
        waited = now - self.since
        if waited >= self.limit:
            from airflow_mlpipe.clients.airflow_rest import ENV_UNREACHABLE_TIMEOUT, AirflowUnreachableError

            raise AirflowUnreachableError(
                f"Airflow at {url} did not answer for {waited:.0f} s (limit {self.limit:.0f} s, set "
                f"{ENV_UNREACHABLE_TIMEOUT} to wait longer); pipeline run {self.run.id} was last seen {status}. "
                f"Last error: {reason}. The run is not cancelled: once Airflow is back, `mlpipe runs show "
                f"{self.run.id}` or wait_for_completion() reports it."
            )
        self.retries += 1
        return max(0.1, min(POLL_INTERVAL * 2**self.retries, MAX_RETRY_INTERVAL, self.limit - waited))

    def settle(self) -> None:
        """The run ended during an outage (its end was recorded in our store): say whether Airflow is back."""
        if self.announced:
            self.run._fetched = None
            self.run._airflow()
            if self.run._unanswered is None:
                self._say(f"Airflow at {_airflow_url(self.run.experiment.workspace)} is answering again")


class PortDataReference:
    """An output of a finished step (v1 ``PortDataReference``)."""

    def __init__(self, workspace: Any, name: str, value: dict[str, Any]) -> None:
        self._workspace = workspace
        self.name = name
        self.datastore_name = value["datastore"]
        self.path_on_datastore = value["path"]
        self.content_hash = value.get("content_hash")
        self.uri = value.get("uri")

    @property
    def _path_on_datastore(self) -> str:
        """v1's private alias the walkthroughs use: ``open(port._path_on_datastore)`` after ``download('.')``
        opens the output when it is one file (an AutoML metrics or model output, or a script's single file)."""
        return self.path_on_datastore

    @property
    def datastore(self):
        from airflow_mlpipe.sdk.datastore import Datastore

        return Datastore.get(self._workspace, self.datastore_name)

    def download(self, local_path: str, overwrite: bool | None = None, show_progress: bool | None = True) -> int:
        """Files land under ``local_path/<path on datastore>/…`` like v1 (an output that is one file lands at
        ``local_path/<path on datastore>`` itself); returns the file count."""
        return self.datastore.download(target_path=local_path, prefix=self.path_on_datastore,
                                       overwrite=bool(overwrite), show_progress=show_progress is not False)

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.name}"

    def __repr__(self) -> str:
        return f"PortDataReference(name={self.name!r}, datastore={self.datastore_name!r}, path={self.path_on_datastore!r})"


class StepRunOutput:
    def __init__(self, port: PortDataReference) -> None:
        self._port = port
        self.name = port.name

    def get_port_data_reference(self) -> PortDataReference:
        return self._port


class StepRun(Run):
    """One step of a pipeline run: an Airflow task instance plus our record of outputs and metrics."""

    def __init__(self, experiment: Any, step_run_id: str, pipeline_run_id: str, node_id: str,
                 _row: dict | None = None, _ti: dict | None = None, **kwargs: Any) -> None:
        super().__init__(experiment, step_run_id)
        self._pipeline_run_id = pipeline_run_id
        self._node_id = node_id
        self._row = _row
        self._ti = _ti

    @property
    def pipeline_run_id(self) -> str:
        return self._pipeline_run_id

    @property
    def name(self) -> str:
        return (self._row or {}).get("step_name") or self._node_id

    @property
    def type(self) -> str:
        return "azureml.ReusedStepRun" if (self._row or {}).get("reused_run_id") else "azureml.StepRun"

    def _refresh_row(self) -> dict[str, Any]:
        self._row = self.experiment.workspace.store.get_step_run(self.id) or self._row or {}
        return self._row

    def get_status(self) -> str:
        return step_status(self._refresh_row(), self._ti)

    @property
    def status(self) -> str:
        return self.get_status()

    @property
    def reused_run_id(self) -> str | None:
        return (self._row or {}).get("reused_run_id")

    def get_metrics(self, name: str | None = None, recursive: bool = False, **kwargs: Any) -> dict[str, Any]:
        """A reused step reports the metrics of the run that produced its outputs, as in v1."""
        row = self._refresh_row()
        return self.experiment.workspace.store.get_metrics(row.get("reused_run_id") or self.id, name)

    def get_outputs(self) -> dict[str, StepRunOutput]:
        row = self._refresh_row()
        ws = self.experiment.workspace
        return {n: StepRunOutput(PortDataReference(ws, n, v)) for n, v in (row.get("outputs") or {}).items()}

    def get_output(self, name: str) -> StepRunOutput:
        outputs = self.get_outputs()
        if name not in outputs:
            raise UserErrorException(f"Step {self.name!r} has no output {name!r} (outputs: {sorted(outputs)})")
        return outputs[name]

    def get_output_data(self, name: str) -> PortDataReference:
        return self.get_output(name).get_port_data_reference()

    def get_details(self) -> dict[str, Any]:
        row = self._refresh_row()
        return {
            "runId": self.id, "target": "local", "status": self.get_status(), "name": self.name,
            "startTimeUtc": _iso(row.get("start_time")), "endTimeUtc": _iso(row.get("end_time")),
            "properties": {"azureml.nodeid": self._node_id, "azureml.pipelinerunid": self._pipeline_run_id,
                           **({"azureml.reusedrunid": row["reused_run_id"]} if row.get("reused_run_id") else {})},
            "inputDatasets": row.get("inputs") or {}, "outputDatasets": row.get("outputs") or {},
            **({"error": {"message": row["error"]}} if row.get("error") else {}),
        }

    def get_job_log(self) -> str:
        client = _client(self.experiment.workspace)
        if client is None:
            return ""
        pr = self.experiment.workspace.store.get_pipeline_run(self._pipeline_run_id) or {}
        return client.task_log(pr.get("dag_id"), pr.get("airflow_run_id", self._pipeline_run_id), self._node_id,
                               (self._row or {}).get("try_number") or 1)

    get_stdout_log = get_job_log

    def wait_for_completion(self, show_output: bool = True, timeout_seconds: int = sys.maxsize,
                            raise_on_error: bool = True) -> str:
        deadline = time.monotonic() + timeout_seconds
        status = self.get_status()
        while status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            status = self.get_status()
        if status == "Failed" and raise_on_error:
            raise ActivityFailedException(f"Step {self.name!r} failed: {(self._row or {}).get('error')}")
        return status

    def __repr__(self) -> str:
        return f"StepRun(Name: {self.name}, Id: {self.id}, Status: {self.get_status()})"


class PipelineRun(Run):
    """A submitted pipeline = an Airflow DAG run (v1 ``PipelineRun``)."""

    def __init__(self, experiment: Any, run_id: str, _service_endpoint: Any = None, **kwargs: Any) -> None:
        super().__init__(experiment, run_id)
        row = experiment.workspace.store.get_pipeline_run(run_id)
        if row is None:
            raise UserErrorException(f"No pipeline run with id {run_id!r} in experiment {experiment.name!r}")
        self._row = row
        #: why the last poll got no answer from Airflow (None: it answered)
        self._unanswered: str | None = None

    def _metrics_pipeline_run_id(self) -> str | None:
        return self.id

    # ------------------------------------------------------------------ Airflow views
    @property
    def dag_id(self) -> str:
        return self._row["dag_id"]

    @property
    def airflow_run_id(self) -> str:
        return self._row["airflow_run_id"]

    @property
    def type(self) -> str:
        return "azureml.PipelineRun"

    @property
    def ui_url(self) -> str | None:
        ws = self.experiment.workspace
        base = ws.airflow_config.get("url")
        if not base:
            from airflow_mlpipe.clients.local_airflow import status

            info = status(ws)
            base = info.url if info else None
        if not base:
            return None
        from urllib.parse import quote

        return f"{base.rstrip('/')}/dags/{self.dag_id}/runs/{quote(self.airflow_run_id, safe='')}"

    def _airflow(self) -> tuple[dict | None, list[dict]]:
        """The DAG run and its task instances; one fetch serves the calls of one poll (``get_status`` then
        ``get_steps``)."""
        cached = getattr(self, "_fetched", None)
        if cached is not None and time.monotonic() - cached[0] < 0.25:
            return cached[1], cached[2]
        workspace = self.experiment.workspace
        client = _client(workspace)
        if client is None:
            self._unanswered = f"the embedded Airflow of {workspace.home} is not running"
            return None, []
        try:
            dag_run = client.get_dag_run(self.dag_id, self.airflow_run_id)
            tis = client.task_instances(self.dag_id, self.airflow_run_id)
        except Exception as exc:  # noqa: BLE001 - an unreachable server falls back to the store
            _forget_client(workspace)
            self._unanswered = str(exc)
            return None, []
        self._unanswered = None
        self._fetched = (time.monotonic(), dag_run, tis)
        return dag_run, tis

    def get_status(self) -> str:
        store = self.experiment.workspace.store
        self._row = store.get_pipeline_run(self.id) or self._row
        if self._row.get("status") in TERMINAL:
            return self._row["status"]
        dag_run, _ = self._airflow()
        status = pipeline_status(self._row, dag_run)
        if dag_run is not None and status != self._row.get("status"):
            fields: dict[str, Any] = {"status": status}
            if status in TERMINAL:
                fields["end_time"] = utcnow()
            self._row = store.upsert_pipeline_run(self.id, **fields)
        return status

    @property
    def status(self) -> str:
        return self.get_status()

    def get_steps(self) -> list[StepRun]:
        store = self.experiment.workspace.store
        rows = {r["task_id"]: r for r in store.list_step_runs(self.id)}
        _, tis = self._airflow()
        runs: list[StepRun] = []
        seen = set()
        from airflow_mlpipe.contract.conf import PLANNER_TASK_ID

        for ti in sorted(tis, key=lambda t: (t.get("start_date") or "~", t["task_id"])):
            task_id = ti["task_id"]
            if task_id == PLANNER_TASK_ID:  # the cache planner is not a step
                continue
            seen.add(task_id)
            runs.append(StepRun(self.experiment, f"{self.id}.{task_id}", self.id, task_id, rows.get(task_id), ti))
        for task_id, row in rows.items():
            if task_id not in seen:
                runs.append(StepRun(self.experiment, row["step_run_id"], self.id, task_id, row))

        def started(step: StepRun) -> str:
            when = (step._row or {}).get("start_time")
            return when.isoformat() if when else ((step._ti or {}).get("start_date") or "~")

        return sorted(runs, key=lambda step: (started(step), step.name))

    def get_children(self, recursive: bool = False, **_: Any) -> list[StepRun]:
        return self.get_steps()

    def find_step_run(self, name: str) -> list[StepRun]:
        return [s for s in self.get_steps() if s.name == name]

    def get_pipeline_output(self, pipeline_output_name: str) -> PortDataReference:
        for row in self.experiment.workspace.store.list_step_runs(self.id):
            for name, value in (row.get("outputs") or {}).items():
                if value.get("pipeline_output_name") == pipeline_output_name:
                    return PortDataReference(self.experiment.workspace, name, value)
        raise UserErrorException(f"Pipeline run {self.id!r} has no pipeline output {pipeline_output_name!r}")

    def get_outputs(self) -> dict[str, StepRunOutput]:
        """Every step's outputs, by output name (``step/output`` where two steps use the same name)."""
        found: dict[str, list[tuple[str, StepRunOutput]]] = {}
        for step in self.get_steps():
            for name, out in step.get_outputs().items():
                found.setdefault(name, []).append((step.name, out))
        result: dict[str, StepRunOutput] = {}
        for name, items in found.items():
            for step_name, out in items:
                result[name if len(items) == 1 else f"{step_name}/{name}"] = out
        return result

    def get_metrics(self, name: str | None = None, recursive: bool = False, **kwargs: Any) -> dict[str, Any]:
        store = self.experiment.workspace.store
        own = store.get_metrics(self.id, name)
        if not recursive:
            return own
        out = {self.id: own}
        for row in store.list_step_runs(self.id):
            out[row["step_run_id"]] = store.get_metrics(row["step_run_id"], name)
        return out

    def get_details(self) -> dict[str, Any]:
        status = self.get_status()
        row = self._row
        details: dict[str, Any] = {
            "runId": self.id, "target": "airflow", "status": status,
            "startTimeUtc": _iso(row.get("start_time") or row.get("created_at")), "endTimeUtc": _iso(row.get("end_time")),
            "properties": {**(row.get("properties") or {}), "azureml.runsource": "azureml.PipelineRun",
                           "dag_id": self.dag_id,
                           "airflow_run_id": self.airflow_run_id, "spec_hash": row.get("spec_hash")},
            "tags": row.get("tags") or {}, "parameters": row.get("parameters") or {},
        }
        failed = [s for s in self.get_steps() if s.get_status() == "Failed"]
        if status == "Failed":
            message = "; ".join(f"step {s.name!r}: {(s._row or {}).get('error') or 'failed'}" for s in failed)
            details["error"] = {"error": {"message": message or row.get("error") or "pipeline run failed"}}
        return details

    def wait_for_completion(self, show_output: bool = True, timeout_seconds: int = sys.maxsize,
                            raise_on_error: bool = True, unreachable_timeout: float | None = None) -> str:
        """Poll until the run ends; with ``show_output`` print each step's status changes.

        When Airflow stops answering, say so once, keep retrying, and raise ``AirflowUnreachableError`` after
        ``unreachable_timeout`` seconds (default ``$MLPIPE_AIRFLOW_UNREACHABLE_TIMEOUT``, else 300 s).
        """
        from airflow_mlpipe.clients.airflow_rest import unreachable_timeout as _unreachable_limit

        outage = _Outage(self, _unreachable_limit(unreachable_timeout), show_output)
        deadline = time.monotonic() + timeout_seconds
        if show_output:
            print(f"PipelineRunId: {self.id}")
            if self.ui_url:
                print(f"Link to Airflow UI: {self.ui_url}")
        shown: dict[str, str] = {}
        status = self.get_status()
        while True:
            if show_output:
                for step in self.get_steps():
                    st = step.get_status()
                    if shown.get(step.name) != st:
                        shown[step.name] = st
                        print(f"StepRun({step.name}) Status: {st}")
            if status in TERMINAL:
                outage.settle()
                break
            if time.monotonic() > deadline:
                if show_output:
                    print(f"Timed out after {timeout_seconds} s; the run is still {status}")
                return status
            time.sleep(min(outage.next_pause(status), max(deadline - time.monotonic(), 0.0)))
            status = self.get_status()
        if show_output:
            print(f"PipelineRun Execution Summary\n==============================\nPipelineRun Status: {status}")
        if status in ("Failed", "Canceled") and raise_on_error:
            details = self.get_details()
            message = (details.get("error") or {}).get("error", {}).get("message", status)
            raise ActivityFailedException(f"Pipeline run {self.id} {status.lower()}: {message}", details)
        return status

    def publish_pipeline(self, name: str, description: str | None = None, version: str | None = None,
                         continue_on_step_failure: bool | None = None, **kwargs: Any):
        """Publish the pipeline this run ran (v1 ``PipelineRun.publish_pipeline``)."""
        from airflow_mlpipe.sdk.published import PublishedPipeline

        return PublishedPipeline._from_run(self, name=name, description=description, version=version,
                                           continue_on_step_failure=continue_on_step_failure)

    def cancel(self) -> None:
        client = _client(self.experiment.workspace)
        if client is not None and self.get_status() not in TERMINAL:
            client.set_dag_run_state(self.dag_id, self.airflow_run_id, "failed")
        self._row = self.experiment.workspace.store.upsert_pipeline_run(self.id, status="Canceled", end_time=utcnow())

    def __repr__(self) -> str:
        return f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Type: azureml.PipelineRun, Status: {self.get_status()})"


def get_run(workspace: Any, run_id: str) -> Run:
    """``Workspace.get_run`` / ``Run.get``: a pipeline run or a step run by id."""
    from airflow_mlpipe.sdk.experiment import Experiment

    store = workspace.store
    row = store.get_pipeline_run(run_id)
    if row is not None:
        return PipelineRun(Experiment(workspace, row["experiment"], _skip_name_validation=True), run_id)
    step = store.get_step_run(run_id)
    if step is not None:
        parent = store.get_pipeline_run(step["pipeline_run_id"]) or {}
        exp = Experiment(workspace, parent.get("experiment", "default"), _skip_name_validation=True)
        return StepRun(exp, run_id, step["pipeline_run_id"], step["task_id"], step)
    raise UserErrorException(f"No run with id {run_id!r} in workspace {workspace.name!r}")
