"""Running one PythonScriptStep: inputs resolved, script run in a snapshot, outputs committed atomically.

Independent of Airflow: the operator passes an :class:`StepExecution` with a function that pulls upstream
outputs (XCom in a DAG run), so tests can drive it directly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract import run_context as c
from airflow_mlpipe.contract.parameters import env_name, resolve_parameters  # noqa: F401 - re-exported
from airflow_mlpipe.contract.paths import relative_path, safe_join
from airflow_mlpipe.data.workspace_location import WorkspaceLocation
from airflow_mlpipe.runtime.run_spec import pin_run_spec
from airflow_mlpipe.runtime.staged_outputs import (  # noqa: F401 - re-exported
    PARTIAL_MARK,
    StagedOutputs,
    output_location,
    path_segment,
    remove_stale_partials,
)
from airflow_mlpipe.runtime.step_env import step_environment
from airflow_mlpipe.store.db import utcnow

COMPAT_PATH = str(Path(__file__).resolve().parents[1] / "compat")
OUTPUT_FORMAT_BY_KIND = {"parquet": "parquet", "delimited": "delimited"}


class StepFailed(RuntimeError):
    """The step's script failed; the message names the step and the exit code."""


@dataclass
class StepExecution:
    workspace: WorkspaceLocation
    pipeline_run_id: str
    experiment: str
    dag_id: str
    step: dict[str, Any]
    pipeline: dict[str, Any]
    parameter_values: dict[str, Any]
    upstream: Callable[[str, str], dict[str, Any] | None]
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("airflow_mlpipe.step"))
    try_number: int = 1
    regenerate_outputs: bool = False
    #: the spec hash the submission pinned this run to (``conf``), if any; see :mod:`runtime.run_spec`
    submitted_spec_hash: str | None = None
    #: the cache planner's "run" decision for this step (key, key parts, why it missed), so nothing is hashed twice
    planned: dict[str, Any] | None = None
    #: v1 ``continue_on_step_failure``: False stops the run's other steps when this one fails (runtime.fail_fast)
    continue_on_step_failure: bool = False
    #: no retry follows if this try fails: only then does its failure stop the run's other steps
    last_try: bool = True
    #: how often the DAG run was cleared (Airflow's ``clear_number``): failures of earlier rounds do not count
    clear_number: int = 0

    @property
    def step_run_id(self) -> str:
        return f"{self.pipeline_run_id}.{self.step['task_id']}"


def _dataset_definition(location: dict[str, Any], read: dict[str, Any] | None) -> dict[str, Any]:
    paths = [{"datastore": location["datastore"], "path": location["path"]}]
    if not read or read.get("type") == "file":
        return {"type": "file", "source": {"format": "files", "paths": paths, "options": {}}, "transforms": []}
    return {"type": "tabular",
            "source": {"format": read["format"], "paths": paths, "options": dict(read.get("options") or {})},
            "transforms": list(read.get("transforms") or [])}


class _Inputs:
    """Local paths, env vars and run-context entries for each input."""

    def __init__(self, ex: StepExecution, workdir: Path, upstream: dict[str, dict[str, Any]]) -> None:
        self.ex = ex
        self.workdir = workdir
        self.upstream = upstream
        self.arg_values: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.context: dict[str, Any] = {}
        self.record: dict[str, Any] = {}
        dataset_vars: list[str] = []
        for inp in ex.step["inputs"]:
            kind = inp["kind"]
            name = inp["name"]
            if kind == "pipeline_data":
                self._pipeline_data(inp, dataset_vars)
            elif kind in ("dataset", "dataset_parameter"):
                definition = inp.get("dataset")
                if kind == "dataset_parameter":
                    definition = ex.parameter_values[inp["parameter"]]
                self._dataset(name, inp["mode"], definition, dataset_vars)
            elif kind in ("data_reference", "datapath_parameter"):
                ref = inp if kind == "data_reference" else ex.parameter_values[inp["parameter"]]
                loc = {"datastore": ref.get("datastore") or ex.workspace._default_datastore_name,
                       "path": ref.get("path") or ""}
                path = self._localize(name, loc, inp.get("mode", "mount"))
                self.env[c.DATAREFERENCE_PREFIX + name] = path
                self.arg_values[name] = path
                self.record[name] = {"kind": kind, **loc}
            else:
                raise StepFailed(f"Step {ex.step['name']!r}: input {name!r} has unknown kind {kind!r}")
        if dataset_vars:
            self.env[c.ENV_DATASET_VARS] = ",".join(dataset_vars)

    def _localize(self, name: str, loc: dict[str, Any], mode: str, single_file: bool = False) -> str:
        from airflow_mlpipe.data.datastore_location import DatastoreLocation

        store = DatastoreLocation.get(self.ex.workspace, loc["datastore"])
        full = store.full_path(loc["path"])
        if store.is_local and mode != "download":
            return full
        target = self.workdir / "inputs" / name
        fs = store.fs
        if fs.isfile(full):
            target.mkdir(parents=True, exist_ok=True)
            dest = target / Path(full).name
            fs.get_file(full, str(dest))
            return str(dest)
        if store.is_local:
            shutil.copytree(full, target, dirs_exist_ok=True)
        else:  # streamed, in parallel, only the files a transfer's manifest publishes
            from fsspec.implementations.local import LocalFileSystem

            from airflow_mlpipe.data.file_copy import copy

            copy(fs, full, LocalFileSystem(), str(target), reference_type="directory")
        return str(target)

    def _pipeline_data(self, inp: dict[str, Any], dataset_vars: list[str]) -> None:
        name = inp["name"]
        value = self.upstream[name]
        loc = {"datastore": value["datastore"], "path": value["path"]}
        self.record[name] = {"kind": "pipeline_data", "content_hash": value.get("content_hash"),
                             "uri": value.get("uri"), "producer_run_id": value.get("producer_run_id")}
        read = inp.get("read")
        mode = inp.get("mode", "mount")
        if read is not None and mode == "direct":
            definition = _dataset_definition(loc, read)
            self.context[name] = {"mode": "direct", "dataset": definition}
            self.env[name] = name
            self.arg_values[name] = name
            dataset_vars.append(f"{name}:direct")
            return
        path = self._localize(name, loc, mode)
        self.env[c.DATAREFERENCE_PREFIX + name] = path
        self.arg_values[name] = path
        if read is not None:
            self.context[name] = {"mode": mode, "path": path}
            self.env[name] = path
            dataset_vars.append(f"{name}:{mode}")

    def _dataset(self, name: str, mode: str, definition: dict[str, Any], dataset_vars: list[str]) -> None:
        if mode == "direct":
            self.context[name] = {"mode": "direct", "dataset": definition}
            value = definition.get("id") or name
        else:
            from airflow_mlpipe.data.materialize import materialize

            target = self.workdir / "inputs" / name
            target.mkdir(parents=True, exist_ok=True)
            value = materialize(self.ex.workspace, definition, mode, str(target))
            self.context[name] = {"mode": mode, "path": value}
        self.env[name] = value
        self.arg_values[name] = value
        dataset_vars.append(f"{name}:{mode}")
        self.record[name] = {"kind": "dataset", "mode": mode, "dataset_id": definition.get("id"),
                             "name": definition.get("name"), "version": definition.get("version")}


def _script_env(ex: StepExecution, inputs: _Inputs, outputs: StagedOutputs, context_file: Path,
                metrics_file: Path, snapshot: Path) -> dict[str, str]:
    env = step_environment(ex.step, ex.log)
    pythonpath = [COMPAT_PATH, str(snapshot)]
    if env.get("PYTHONPATH"):
        pythonpath.append(env["PYTHONPATH"])
    env.update({
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "PYTHONUNBUFFERED": "1",
        c.ENV_RUN_CONTEXT: str(context_file),
        c.ENV_METRICS_FILE: str(metrics_file),
        c.ENV_PIPELINE_RUN_ID: ex.pipeline_run_id,
        c.ENV_STEP_NAME: ex.step["name"],
        c.ENV_RUN_ID: ex.step_run_id,
        c.ENV_EXPERIMENT: ex.experiment,
        c.ENV_WORKSPACE_NAME: ex.workspace.name,
        c.ENV_SUBSCRIPTION: ex.workspace.subscription_id,
        c.ENV_RESOURCE_GROUP: ex.workspace.resource_group,
        c.ENV_SERVICE_ENDPOINT: "mlpipe://local",
        c.ENV_RUN_TOKEN: "local",
        c.ENV_RUN_TOKEN_EXPIRY: "0",
        "MLPIPE_WORKSPACE_HOME": str(ex.workspace.home),
    })
    env.update(inputs.env)
    for name, path in outputs.local_paths().items():
        env[c.DATAREFERENCE_PREFIX + name] = path
        env[name] = path
    file_outputs = [o["name"] for o in ex.step["outputs"] if o["kind"] == "output_file_dataset"]
    if file_outputs:
        env[c.ENV_DATASET_FILE_OUTPUTS] = ";".join(file_outputs)
    for pname, value in ex.parameter_values.items():
        if pname in ex.step.get("parameters", []):
            env[c.PARAMETER_PREFIX + env_name(pname)] = as_arg(value)
    for key, token in (ex.step.get("params") or {}).items():
        env[c.PARAMETER_PREFIX + key] = _token_value(ex, token, inputs, outputs)
    return env


def as_arg(value: Any) -> str:
    """A parameter value on a command line or in a widget: JSON for lists and dicts, else ``str``."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _token_value(ex: StepExecution, token: dict[str, Any], inputs: _Inputs, outputs: StagedOutputs) -> str:
    if "literal" in token:
        return token["literal"]
    if "parameter" in token:
        return as_arg(ex.parameter_values[token["parameter"]])
    if "input" in token:
        return inputs.arg_values[token["input"]]
    if "output" in token:
        return outputs.local_paths()[token["output"]]
    raise StepFailed(f"Step {ex.step['name']!r}: unknown argument token {token!r}")


def _run_script(ex: StepExecution, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, list[str]]:
    """Run the script, streaming its output line by line into the task log; returns (exit code, last lines)."""
    from airflow_mlpipe.runtime import processes

    tail: deque[str] = deque(maxlen=40)
    timeout = (ex.step.get("runconfig") or {}).get("max_run_duration_seconds")
    if env.get(c.ENV_RUN_ID):  # an earlier try of this step run was killed: its script's children may live on
        leftovers = processes.kill_leftovers(c.ENV_RUN_ID, env[c.ENV_RUN_ID])
        if leftovers:
            ex.log.warning("killed %d process(es) left behind by an earlier try of this step", leftovers)
    proc = processes.launch(argv, cwd, env)  # own process group, dies with this process
    start = time.monotonic()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            ex.log.info("%s", line)
            if timeout and time.monotonic() - start > timeout:
                processes.kill_group(proc, grace=0)
                tail.append(f"killed: the step ran longer than max_run_duration_seconds={timeout}")
                break
        code = proc.wait()
    except BaseException:
        processes.kill_group(proc, grace=0)
        proc.wait()
        raise
    finally:
        processes.finished(proc)
    return code, list(tail)


#: the keys of a step run's ``details`` written before it commits and kept then: what its script set
#: (``run.tag``, ``add_properties``) and the cache decision a step that ran in two halves noted (DatabricksStep)
KEPT_DETAILS = ("tags", "properties", "cache")


def _ingest_run_records(ex: StepExecution, metrics_file: Path) -> str | None:
    """Load what the script logged into the store; returns the script's own ``run.fail()`` error, if any."""
    from airflow_mlpipe.contract.metrics_io import read_records, split_records

    records = split_records(read_records(metrics_file))
    if records.metrics:
        ex.workspace.store.add_metrics(ex.step_run_id, ex.pipeline_run_id, records.metrics)
    if records.tags or records.properties:
        row = ex.workspace.store.get_step_run(ex.step_run_id) or {}
        details = dict(row.get("details") or {})
        details["tags"] = {**details.get("tags", {}), **records.tags}
        details["properties"] = {**details.get("properties", {}), **records.properties}
        ex.workspace.store.upsert_step_run(ex.step_run_id, details=details)
    if records.status == "Failed":
        return str(records.error or "the script called run.fail()")
    return None


def collect_upstream(ex: StepExecution) -> dict[str, dict[str, Any]]:
    """The producer's committed output for every PipelineData input (by input name)."""
    found: dict[str, dict[str, Any]] = {}
    for inp in ex.step["inputs"]:
        if inp["kind"] != "pipeline_data":
            continue
        src = inp["source"]
        value = ex.upstream(src["task_id"], src["output"])
        if not value:
            raise StepFailed(
                f"Step {ex.step['name']!r}: input {inp['name']!r} expects output {src['output']!r} of step "
                f"{src['step']!r}, but that step handed over no output (did it run?)"
            )
        found[inp["name"]] = value
    return found


@dataclass
class StepResult:
    outputs: dict[str, dict[str, Any]]
    key: str
    reused_from: str | None = None  # the step run whose outputs were reused


def _reuse(ex: StepExecution, entry: dict[str, Any], key: str) -> StepResult:
    from airflow_mlpipe.runtime.cache import record_reuse

    outputs = record_reuse(ex.workspace, ex.step_run_id, key, entry)
    ex.log.info("Step %r reused the outputs of step run %s (pipeline run %s); cache key %s", ex.step["name"],
                entry["step_run_id"], entry["pipeline_run_id"], key)
    for name, out in outputs.items():
        ex.log.info("Output %r: %s (%s)", name, out["uri"], out["content_hash"])
    return StepResult(outputs, key, entry["step_run_id"])


@dataclass
class StepWork:
    """What a step kind's body leaves for the shared lifecycle (staged outputs and what to record), and the
    step's cache key it is handed (its components hold the inputs' content hashes, already computed)."""

    outputs: StagedOutputs | None = None
    inputs: _Inputs | None = None
    details: dict[str, Any] = field(default_factory=dict)
    key: Any = None


#: a step kind's body: runs the step in ``workdir`` with its upstream outputs and source manifest
StepBody = Callable[[StepExecution, Path, dict[str, dict[str, Any]], dict[str, str], StepWork], None]


def begin_step(ex: StepExecution) -> Any:
    """Record that the step starts (its run and the pipeline run) and pin the run to its spec; returns the start
    time. Refuses to start when another step failed and the run does not continue on failure."""
    from airflow_mlpipe.runtime import fail_fast

    step = ex.step
    store = ex.workspace.store
    fail_fast.refuse_if_stopped(ex)  # another step failed and the run does not continue on failure
    started = utcnow()
    store.upsert_pipeline_run(ex.pipeline_run_id, experiment=ex.experiment, dag_id=ex.dag_id,
                              status="Running")
    run_row = store.get_pipeline_run(ex.pipeline_run_id)
    if run_row and run_row.get("start_time") is None:
        store.upsert_pipeline_run(ex.pipeline_run_id, start_time=started)
    store.upsert_step_run(ex.step_run_id, pipeline_run_id=ex.pipeline_run_id, step_name=step["name"],
                          task_id=step["task_id"], kind=step["kind"], status="Running", start_time=started,
                          end_time=None, error=None, try_number=ex.try_number, reused_run_id=None)
    try:
        pin_run_spec(store, ex.pipeline_run_id, ex.dag_id, ex.pipeline, ex.submitted_spec_hash)
    except Exception as exc:
        store.upsert_step_run(ex.step_run_id, status="Failed", end_time=utcnow(), error=str(exc)[:4000])
        raise
    return started


def reuse_or_explain(ex: StepExecution, key: Any, planned: dict[str, Any] | None,
                     details: dict[str, Any] | None = None) -> tuple[StepResult | None, Any]:
    """A verified cache entry's outputs as this step's result (None on a miss, with the reasons logged), and the
    :class:`~runtime.cache.SingleFlight` this step now holds for the key (release it when done), if any.

    When the step computes, why goes into ``details["cache"]`` (``{"decision": "computed" | "no-reuse",
    "reasons": [...]}``), which :func:`commit_step` records with the step's success (the UI's step view)."""
    from airflow_mlpipe.runtime import cache

    step = ex.step
    if not step.get("allow_reuse", True) or ex.regenerate_outputs:
        why = "regenerate_outputs=True" if ex.regenerate_outputs else "allow_reuse=False"
        ex.log.info("Step %r runs without reuse: %s", step["name"], why)
        _note_cache(details, "no-reuse", [why])
        return None, None
    entry, why = cache.lookup(ex.workspace, key.key)
    flight = None
    if entry is None:
        flight = cache.SingleFlight(ex.workspace, key.key, ex.step_run_id)
        entry = flight.acquire(ex.log)  # may raise cache.WaitForFlight: the operator then waits in the triggerer
    if entry is not None:  # a flight that finds an entry holds no lock
        return _reuse(ex, entry, key.key), None
    known = list(planned["changes"]) if planned else cache.explain_miss(ex.workspace, step, key)
    reasons = ([why] if why and why not in known else []) + known
    ex.log.info("Step %r: cache miss (key %s): %s", step["name"], key.key, "; ".join(reasons))
    _note_cache(details, "computed", reasons)
    return None, flight


def _note_cache(details: dict[str, Any] | None, decision: str, reasons: list[str]) -> None:
    if details is not None:
        details["cache"] = {"decision": decision, "reasons": reasons}


def commit_step(ex: StepExecution, key: Any, outputs: StagedOutputs, inputs_record: dict[str, Any],
                details: dict[str, Any]) -> StepResult:
    """Make the staged outputs visible atomically, register them, and only then record the cache entry and the
    step's success."""
    from airflow_mlpipe.runtime import cache

    committed = outputs.commit()
    _register_outputs(ex, committed)
    cache.record(ex.workspace, ex.step, key, committed, ex.step_run_id, ex.pipeline_run_id)
    ex.workspace.store.upsert_step_run(ex.step_run_id, keep_details=KEPT_DETAILS, status="Finished",
                                       end_time=utcnow(), outputs=committed, inputs=inputs_record,
                                       details={"cache_key": key.key, **details})
    for name, out in committed.items():
        ex.log.info("Output %r committed: %s (%d files, %d bytes, %s)", name, out["uri"], out["files"],
                    out["size"], out["content_hash"])
    return StepResult(committed, key.key)


def execute_step(ex: StepExecution, body: StepBody) -> StepResult:
    """The lifecycle every step kind shares: record the start, compute the cache key, reuse a verified entry
    (single flight) or run ``body``, commit its outputs atomically, record the entry only on success."""
    from airflow_mlpipe.runtime import cache, fail_fast
    from airflow_mlpipe.runtime.snapshot import source_manifest

    step = ex.step
    begin_step(ex)
    flight: cache.SingleFlight | None = None
    work = StepWork()
    watch = fail_fast.SiblingWatch(ex)
    workdir = Path(tempfile.mkdtemp(prefix=f"mlpipe-{step['task_id']}-"))
    try:
        upstream = collect_upstream(ex)
        planned = None if ex.regenerate_outputs else ex.planned
        if planned:  # the planner hashed the sources and inputs moments ago: use its key and its reasons
            key = cache.StepKey(planned["key"], planned["components"])
            manifest = key.components["source"]
        else:
            manifest, _ = source_manifest(ex.workspace, step)
            key = cache.compute_key(ex.workspace, step, manifest, upstream, ex.parameter_values)
        reused, flight = reuse_or_explain(ex, key, planned, work.details)
        if reused is not None:
            return reused
        work.key = key
        with watch:  # stops the body's scripts if another step fails (continue_on_step_failure=False)
            body(ex, workdir, upstream, manifest, work)
        assert work.outputs is not None, "a step body must stage its outputs"
        outputs, work.outputs = work.outputs, None
        return commit_step(ex, key, outputs, work.inputs.record if work.inputs else {}, work.details)
    except cache.WaitForFlight:  # not a failure: the step resumes when the key's owner ends
        raise
    except BaseException as exc:
        if work.outputs is not None:
            work.outputs.discard()
        stopped = fail_fast.record_failure(ex, exc, watch)
        if stopped is not None:
            raise stopped from exc
        raise
    finally:
        if flight is not None:
            flight.release()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class ScriptStage:
    """A script step made ready to run in ``workdir``: its snapshot, inputs, staged outputs and run-context files."""

    snapshot: Path
    inputs: _Inputs
    outputs: StagedOutputs
    context_file: Path
    metrics_file: Path
    script: str

    def argv(self, ex: StepExecution, python: str) -> list[str]:
        return [python, self.script] + [_token_value(ex, t, self.inputs, self.outputs) for t in ex.step["arguments"]]

    def env(self, ex: StepExecution) -> dict[str, str]:
        return _script_env(ex, self.inputs, self.outputs, self.context_file, self.metrics_file, self.snapshot)


def stage_script(ex: StepExecution, workdir: Path, upstream: dict[str, dict[str, Any]], manifest: dict[str, str],
                 work: StepWork) -> ScriptStage:
    """Store and materialise the step's source snapshot, resolve its inputs, stage its outputs and write its run
    context: what a script step needs wherever its process runs (the worker, a container)."""
    from airflow_mlpipe.runtime.snapshot import SNAPSHOT_PREFIX, SnapshotStore, git_info, source_manifest

    step = ex.step
    snapshots = SnapshotStore(ex.workspace.home)
    snapshot = workdir / "snapshot"
    if step["source_directory"].startswith(SNAPSHOT_PREFIX):
        git = source_manifest(ex.workspace, step)[1]
    else:
        git = git_info(step["source_directory"])
    snapshots.save(step["source_directory"], manifest, ex.step_run_id, git)
    snapshots.materialize(manifest, snapshot)
    work.details["git"] = git
    inputs = work.inputs = _Inputs(ex, workdir, upstream)
    outputs = work.outputs = StagedOutputs(ex, workdir)
    context_file = workdir / "run_context.json"
    metrics_file = workdir / "metrics.jsonl"
    metrics_file.touch()
    context_file.write_text(json.dumps({
        "run_id": ex.step_run_id, "pipeline_run_id": ex.pipeline_run_id, "step_name": step["name"],
        "experiment": ex.experiment, "workspace": ex.workspace.to_ref(),
        "input_datasets": inputs.context, "output_datasets": outputs.local_paths(),
        "parameters": {k: ex.parameter_values[k] for k in step.get("parameters", [])},
    }, default=str))
    script = relative_path(step["script_name"], f"Step {step['name']!r}: script_name")
    if script not in manifest:
        raise StepFailed(f"Step {step['name']!r}: script_name {script!r} is not in its source snapshot "
                         f"({step['source_directory']})")
    safe_join(snapshot, script, f"Step {step['name']!r}: script_name")
    return ScriptStage(snapshot, inputs, outputs, context_file, metrics_file, script)


def _python_body(ex: StepExecution, workdir: Path, upstream: dict[str, dict[str, Any]], manifest: dict[str, str],
                 work: StepWork) -> None:
    """PythonScriptStep: the script runs as a subprocess in a stored snapshot of its source folder."""
    from airflow_mlpipe.runtime.environments import python_for_step

    step = ex.step
    stage = stage_script(ex, workdir, upstream, manifest, work)
    python = python_for_step(ex)  # the step's built environment (uv, cached by content hash) or the worker's
    argv = stage.argv(ex, python)
    ex.log.info("Step %r: running %s in a snapshot of %s", step["name"], " ".join(argv[1:]),
                step["source_directory"])
    code, tail = _run_script(ex, argv, stage.env(ex), stage.snapshot)
    script_failed(ex, code, tail, _ingest_run_records(ex, stage.metrics_file))


def script_failed(ex: StepExecution, code: int, tail: list[str], script_error: str | None, where: str = "") -> None:
    """Raise the step's failure: its own ``run.fail()`` error, or its exit code with the last line it printed."""
    step = ex.step
    if code == 0 and script_error:
        raise StepFailed(f"Step {step['name']!r} failed: {script_error}")
    if code != 0:
        message = f"Step {step['name']!r} failed: script {step['script_name']} exited with code {code}{where}"
        last = next((ln for ln in reversed(tail) if ln.strip()), "")
        raise StepFailed(f"{message}: {last}" if last else message)


def run_python_step(ex: StepExecution) -> StepResult:
    """Run a PythonScriptStep, or reuse a verified earlier result. Raises :class:`StepFailed` on failure."""
    return execute_step(ex, _python_body)


def _register_outputs(ex: StepExecution, committed: dict[str, dict[str, Any]]) -> None:
    """``as_dataset().register(...)`` / ``register_on_complete(...)``: a new dataset version per success."""
    for out in ex.step["outputs"]:
        reg = out.get("register")
        if not reg:
            continue
        value = committed[out["name"]]
        definition = _dataset_definition(value, None)
        ex.workspace.store.register_dataset(reg["name"], definition, reg.get("description"), reg.get("tags"),
                                            create_new_version=True)
