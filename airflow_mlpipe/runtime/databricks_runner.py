"""DatabricksStep without Airflow: the Jobs API request a step submits, where its outputs are staged, the
idempotency token, the cache key's parts, and the record that lets a retry or a deferred completion pick its run
up again.

The operator (``operators/databricks.py``) does the remote calls through the provider's hook and hands their
answers here; nothing in this module talks to Databricks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from airflow_mlpipe.contract import run_context as c
from airflow_mlpipe.runtime.staged_outputs import StagedOutputs, run_uri
from airflow_mlpipe.runtime.step_runner import StepExecution, StepFailed, as_arg

#: the step run's ``details`` entry that records its Databricks run (see :func:`new_record`)
RECORD = "databricks"
#: life-cycle states after which a run changes no more (Databricks Jobs API)
TERMINAL_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
#: life-cycle states Databricks documents for a run that is still under way
KNOWN_ACTIVE_STATES = frozenset({"PENDING", "QUEUED", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY"})
#: the file a ``python_script_name`` step's folder is uploaded under, and the argument naming it (v1)
SCRIPT_DIRECTORY_ARGUMENT = "--AZUREML_SCRIPT_DIRECTORY_NAME"


@dataclass(frozen=True)
class RunPhase:
    """Where a Databricks run stands, read from its ``runs/get`` answer."""

    life_cycle_state: str
    result_state: str
    state_message: str

    @property
    def terminal(self) -> bool:
        return self.life_cycle_state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.life_cycle_state == "TERMINATED" and self.result_state == "SUCCESS"

    @property
    def unknown(self) -> bool:
        """A state this version does not know: the run is treated as still going (never as failed)."""
        return not self.terminal and self.life_cycle_state not in KNOWN_ACTIVE_STATES

    def describe(self) -> str:
        parts = [self.life_cycle_state, self.result_state]
        text = "/".join(p for p in parts if p)
        return f"{text}: {self.state_message}" if self.state_message else text


def next_interval(current: float, backoff: float, maximum: float) -> float:
    """The wait before the next poll: growing by ``backoff`` up to ``maximum`` (trigger and worker alike)."""
    return min(maximum, current * backoff)


def run_phase(run: dict[str, Any]) -> RunPhase:
    state = run.get("state") or {}
    return RunPhase(str(state.get("life_cycle_state") or ""), str(state.get("result_state") or ""),
                    str(state.get("state_message") or ""))


def idempotency_token(ex: StepExecution, attempt: int) -> str:
    """The same for every try of one attempt of a step run (so a worker that died after submitting does not
    start a second run), new for a new attempt or a cleared DAG run. Databricks allows 64 characters."""
    seed = f"{ex.pipeline_run_id}|{ex.step['task_id']}|{ex.clear_number}|{attempt}"
    return "mlpipe-" + hashlib.sha256(seed.encode()).hexdigest()[:40]


def staged_outputs(ex: StepExecution, attempt: int, fresh: bool = False) -> StagedOutputs:
    """Outputs staged where the Databricks run writes them, at names fixed by the attempt: a retry that
    reattaches to the run commits what that run wrote. ``fresh`` (a new submission) first removes what earlier
    attempts of this step run staged: their runs have ended."""
    return StagedOutputs(ex, None, remote_tag=f"c{ex.clear_number}-a{attempt}", fresh=fresh)


def _data_uri(workspace: Any, datastore: str, path: str) -> str:
    from airflow_mlpipe.data.datastore_location import DatastoreLocation

    store = DatastoreLocation.get(workspace, datastore)
    return run_uri(store, store.full_path(path))


def input_uris(ex: StepExecution, upstream: dict[str, dict[str, Any]]) -> tuple[dict[str, str], dict[str, Any]]:
    """``({input name: URI the run reads}, {input name: what to record})``: a local folder for the emulator, the
    store's URI (``abfss://``, ``s3://``, ...) for a real workspace."""
    uris: dict[str, str] = {}
    record: dict[str, Any] = {}
    default = ex.workspace._default_datastore_name
    for inp in ex.step["inputs"]:
        name, kind = inp["name"], inp["kind"]
        if kind == "pipeline_data":
            value = upstream[name]
            uris[name] = _data_uri(ex.workspace, value["datastore"], value["path"])
            record[name] = {"kind": kind, "content_hash": value.get("content_hash"), "uri": value.get("uri"),
                            "producer_run_id": value.get("producer_run_id")}
        elif kind in ("data_reference", "datapath_parameter"):
            ref = inp if kind == "data_reference" else ex.parameter_values[inp["parameter"]]
            datastore, path = ref.get("datastore") or default, ref.get("path") or ""
            uris[name] = _data_uri(ex.workspace, datastore, path)
            record[name] = {"kind": kind, "datastore": datastore, "path": path}
        elif kind in ("dataset", "dataset_parameter"):
            definition = inp.get("dataset") if kind == "dataset" else ex.parameter_values[inp["parameter"]]
            paths = ((definition or {}).get("source") or {}).get("paths") or []
            if len(paths) != 1 or "datastore" not in paths[0]:
                raise StepFailed(f"Step {ex.step['name']!r}: input {name!r} is a dataset of {len(paths)} "
                                 "locations; a DatabricksStep reads a dataset that names one datastore path")
            uris[name] = _data_uri(ex.workspace, paths[0]["datastore"], paths[0].get("path") or "")
            record[name] = {"kind": "dataset", "dataset_id": definition.get("id"), "name": definition.get("name"),
                            "version": definition.get("version")}
        else:
            raise StepFailed(f"Step {ex.step['name']!r}: input {name!r} has unknown kind {kind!r}")
    return uris, record


def token_value(ex: StepExecution, token: dict[str, Any]) -> str:
    """A literal, or a pipeline parameter's value of this run."""
    if "literal" in token:
        return str(token["literal"])
    if "parameter" in token:
        return as_arg(ex.parameter_values[token["parameter"]])
    raise StepFailed(f"Step {ex.step['name']!r}: unknown parameter token {token!r}")


def _run_env(ex: StepExecution) -> dict[str, str]:
    """The v1 environment variables a Databricks script run gets (set on a new cluster)."""
    return {c.ENV_RUN_ID: ex.step_run_id, c.ENV_PIPELINE_RUN_ID: ex.pipeline_run_id,
            c.ENV_EXPERIMENT: ex.experiment, c.ENV_WORKSPACE_NAME: ex.workspace.name,
            c.ENV_SUBSCRIPTION: ex.workspace.subscription_id, c.ENV_RESOURCE_GROUP: ex.workspace.resource_group,
            c.ENV_SERVICE_ENDPOINT: "mlpipe://local", c.ENV_RUN_TOKEN: "local", c.ENV_RUN_TOKEN_EXPIRY: "0"}


def submit_request(ex: StepExecution, inputs: dict[str, str], outputs: dict[str, str], token: str,
                   script_directory: str | None = None) -> dict[str, Any]:
    """The ``jobs/runs/submit`` body (Jobs API 2.1/2.2, one task). Inputs and outputs reach a notebook as widgets
    and a script or JAR as ``--<name> <uri>`` pairs, after its own parameters, as in v1."""
    db = ex.step["databricks"]
    pairs = [x for name, uri in {**inputs, **outputs}.items() for x in (f"--{name}", uri)]
    kind = db["task"]
    if kind == "notebook":
        params = {k: token_value(ex, t) for k, t in (db.get("notebook_params") or {}).items()}
        task: dict[str, Any] = {"notebook_task": {"notebook_path": db["notebook_path"],
                                                  "base_parameters": {**params, **inputs, **outputs}}}
    elif kind in ("python_script_path", "python_script_name"):
        params = [token_value(ex, t) for t in db.get("python_script_params") or []]
        if kind == "python_script_name":
            assert script_directory is not None, "a python_script_name step uploads its folder first"
            python_file = f"{script_directory.rstrip('/')}/{ex.step['script_name']}"
            params += [SCRIPT_DIRECTORY_ARGUMENT, script_directory]
        else:
            python_file = db["python_script_path"]
        task = {"spark_python_task": {"python_file": python_file, "parameters": params + pairs}}
    elif kind == "jar":
        params = [token_value(ex, t) for t in db.get("jar_params") or []]
        task = {"spark_jar_task": {"main_class_name": db["main_class_name"], "parameters": params + pairs}}
    else:
        raise StepFailed(f"Step {ex.step['name']!r}: unknown Databricks task kind {kind!r}")
    cluster = dict(db.get("cluster") or {})
    if "new_cluster" in cluster:
        new_cluster = dict(cluster["new_cluster"])
        new_cluster["spark_env_vars"] = {**_run_env(ex), **(new_cluster.get("spark_env_vars") or {})}
        cluster["new_cluster"] = new_cluster
    task.update(task_key=ex.step["task_id"][:100], **cluster)
    if db.get("libraries"):
        task["libraries"] = list(db["libraries"])
    body: dict[str, Any] = {"run_name": db.get("run_name") or f"{ex.experiment}: {ex.step['name']}",
                            "tasks": [task], "idempotency_token": token}
    if db.get("timeout_seconds"):
        body["timeout_seconds"] = int(db["timeout_seconds"])
        task["timeout_seconds"] = int(db["timeout_seconds"])
    return body


def remote_sources(step: dict[str, Any]) -> dict[str, list[str]]:
    """What of the step's code lives in Databricks and is hashed there for the cache key: its workspace notebook
    and the DBFS files (script, JAR libraries)."""
    db = step["databricks"]
    notebooks = [db["notebook_path"]] if db["task"] == "notebook" else []
    files = [db["python_script_path"]] if db["task"] == "python_script_path" else []
    files += [lib["jar"] for lib in db.get("libraries") or [] if isinstance(lib.get("jar"), str)
              and lib["jar"].startswith(("dbfs:", "/"))]
    return {"notebooks": notebooks, "files": files}


def new_record(ex: StepExecution, attempt: int, token: str, key: Any, inputs_record: dict[str, Any],
               flight_owner: str | None) -> dict[str, Any]:
    """What a later try or the deferred completion needs, kept in the step run's details before submitting (so
    a worker lost right after the submission still knows the token it used)."""
    return {"attempt": attempt, "clear_number": ex.clear_number, "token": token, "run_id": None,
            "run_page_url": None, "key": key.key, "components": key.components,
            "inputs": inputs_record, "flight_owner": flight_owner}


def current_record(ex: StepExecution) -> dict[str, Any] | None:
    """This step run's Databricks record, if an earlier try of the same DAG-run round submitted."""
    row = ex.workspace.store.get_step_run(ex.step_run_id) or {}
    record = (row.get("details") or {}).get(RECORD)
    if not isinstance(record, dict) or record.get("clear_number") != ex.clear_number or ex.regenerate_outputs:
        return None
    return record


def save_record(ex: StepExecution, record: dict[str, Any]) -> None:
    ex.workspace.store.merge_step_run_details(ex.step_run_id, **{RECORD: record})


def failure_message(ex: StepExecution, phase: RunPhase, output: dict[str, Any], run_page_url: str | None) -> str:
    """The error of a failed run as the task's failure: the notebook's error (and the end of its trace) and the
    run page."""
    error = str(output.get("error") or phase.state_message or phase.result_state or phase.life_cycle_state)
    trace = str(output.get("error_trace") or "").strip()
    last = trace.splitlines()[-1] if trace else ""
    text = f"Step {ex.step['name']!r} failed on Databricks ({phase.describe()}): {error}"
    if last and last not in error:
        text += f" — {last}"
    return f"{text}. Run page: {run_page_url}" if run_page_url else text
