"""The submission service: every way of starting a pipeline run goes through here.

``Experiment.submit`` (:func:`submit_spec`), ``PublishedPipeline.submit``, ``PipelineEndpoint.submit`` and the
REST routes (:func:`submit_published`) run the same steps: check the experiment name, the tags and the parameter
values against the spec; make sure Airflow serves the DAG with the spec's hash (writing or uploading the spec
first for an experiment's pipeline); make a run id; record the run in the store; trigger the DAG run with
``conf = {values, "__mlpipe": meta}`` (the client retries a transient failure with the same run id, so a run is
never doubled). Schedules check their parameters with :func:`check_parameters`; Airflow triggers their runs.

The service returns a :class:`SubmittedRun`; the SDK wraps it in its ``PipelineRun``, the REST API in its entity.
The same path serves the embedded default (an Airflow we start on 127.0.0.1) and a remote api-server.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlpipe.clients.bundle_stubs import SPECS_DIRNAME, write_if_changed, write_stub
from airflow_mlpipe.contract.conf import CONF_KEY
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.parameters import check_parameters, resolve_parameters  # noqa: F401 - re-exported
from airflow_mlpipe.contract.spec import canonical_json, spec_hash
from airflow_mlpipe.contract.status import TERMINAL

#: v1's rule for experiment names
EXPERIMENT_NAME = re.compile(r"^[a-zA-Z0-9][\w\-]{0,254}$")
#: seconds to wait for Airflow to serve the DAG with the submitted spec
DEFAULT_DAG_WAIT = 120


@dataclass(frozen=True)
class SubmittedRun:
    """A run the service recorded and triggered (not waited for)."""

    run_id: str
    experiment: str
    dag_id: str
    spec_hash: str


# ---------------------------------------------------------------------------------------------- checks
def check_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not EXPERIMENT_NAME.match(name):
        raise UserErrorException(
            f"Experiment name {name!r} is invalid: 1-255 characters, starting with a letter or digit, "
            "then letters, digits, '_' or '-'"
        )
    return name


def check_tags(tags: Any) -> dict[str, str]:
    """v1 tags: string keys and values (``None`` becomes ``""``, as ``Run.set_tags`` does)."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise UserErrorException("tags must be an object of string keys and values")
    return {str(k): "" if v is None else str(v) for k, v in tags.items()}


# ---------------------------------------------------------------------------------------------- serving a spec
def dag_id_for_experiment(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def publish_spec(ws: Any, spec: dict[str, Any]) -> tuple[Path, str]:
    """Write ``spec`` into the submitted-pipelines bundle (atomically, only when it changed)."""
    from airflow_mlpipe.clients.local_airflow import submitted_dags_folder

    folder = submitted_dags_folder(ws)
    write_stub(folder)
    path = folder / SPECS_DIRNAME / f"{spec['name']}.json"
    write_if_changed(path, json.dumps(spec, indent=1, sort_keys=True))
    return path, spec_hash(spec)


def upload_spec(ws: Any, client: Any, spec: dict[str, Any]) -> str:
    """Remote submission: upload each step's source snapshot (only the files the server lacks), then the spec
    with ``source_directory`` pointing at the uploaded snapshot. Returns the spec hash the server serves."""
    import copy

    import blake3

    from airflow_mlpipe.runtime.fingerprints import tree_manifest
    from airflow_mlpipe.runtime.snapshot import SNAPSHOT_PREFIX, git_info

    spec = copy.deepcopy(spec)
    documents: dict[str, bytes] = {}
    files: dict[str, str] = {}
    for step in spec["steps"]:
        folder = step.get("source_directory")
        if not folder or folder.startswith(SNAPSHOT_PREFIX):
            continue
        manifest = tree_manifest(ws.store, folder, step.get("hash_paths"))
        files.update({digest: str(Path(folder) / rel) for rel, digest in manifest.items()})
        doc = canonical_json({"files": manifest, "git": git_info(folder), "source_directory": folder}).encode()
        doc_digest = blake3.blake3(doc).hexdigest()
        documents[doc_digest] = doc
        step["source_directory"] = SNAPSHOT_PREFIX + doc_digest
    wanted = sorted(set(files) | set(documents))
    missing = client.request("POST", "/mlpipe/api/v1/snapshots/missing", json={"hashes": wanted}).json()["hashes"]
    for digest in missing:
        data = documents[digest] if digest in documents else Path(files[digest]).read_bytes()
        client.request("PUT", f"/mlpipe/api/v1/snapshots/objects/{digest}", content=data,
                       headers={"Content-Type": "application/octet-stream"})
    accepted = client.request("PUT", f"/mlpipe/api/v1/specs/{spec['name']}", json=spec).json()
    return accepted["spec_hash"]


#: DAG ids of submitted graphs per experiment that are kept (besides any with unfinished runs)
KEEP_GRAPHS_PER_EXPERIMENT = 3
_DOC_DIGEST = re.compile(r"spec: `([0-9a-f]{64})`")


def experiment_dag_id(experiment: str, spec: dict[str, Any]) -> str:
    """One DAG per distinct graph of an experiment: ``<experiment>__<graph hash>``. Two different pipelines
    submitted to one experiment never share a DAG, and resubmitting the same graph reuses its DAG."""
    graph = spec_hash({**spec, "name": ""})[:10]
    return f"{dag_id_for_experiment(experiment)}__{graph}"


def _retire_old_graphs(ws: Any, experiment: str, keep: str) -> list[str]:
    """Remove the spec files of this experiment's older graphs whose runs have all ended (the newest
    ``KEEP_GRAPHS_PER_EXPERIMENT`` stay); Airflow then marks those DAGs stale, their runs stay visible."""
    from airflow_mlpipe.clients.local_airflow import submitted_dags_folder

    folder = submitted_dags_folder(ws) / SPECS_DIRNAME
    prefix = f"{dag_id_for_experiment(experiment)}__"
    files = sorted((p for p in folder.glob(f"{prefix}*.json") if p.stem != keep and
                    re.fullmatch(r"[0-9a-f]{10}", p.stem[len(prefix):])),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    retired = []
    for path in files[KEEP_GRAPHS_PER_EXPERIMENT - 1:]:
        runs = ws.store.list_pipeline_runs_of_dag(path.stem)
        if all(r.get("status") in TERMINAL for r in runs):
            path.unlink(missing_ok=True)
            retired.append(path.stem)
    return retired


def dag_spec_digest(details: dict[str, Any]) -> str | None:
    """The spec hash a compiled DAG announces in its documentation (``spec: `<hash>` ``)."""
    match = _DOC_DIGEST.search(details.get("doc_md") or "")
    return match.group(1) if match else None


def _wait_for_spec(client: Any, dag_id: str, digest: str | None, timeout: float, hint: str = "") -> dict[str, Any]:
    """Wait until Airflow serves ``dag_id`` (announcing spec ``digest`` when given); its details."""
    predicate = None if digest is None else (lambda d: dag_spec_digest(d) == digest)
    try:
        return client.wait_for_dag(dag_id, predicate=predicate, timeout=timeout)
    except TimeoutError as exc:
        if not hint:
            raise
        raise TimeoutError(f"{exc}. {hint}") from exc


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class _RunRequest:
    """Everything one run needs once the DAG serves its spec."""

    dag_id: str
    spec_hash: str
    experiment: str
    values: dict[str, Any]
    tags: dict[str, str]
    pipeline_name: str
    note: str
    regenerate_outputs: bool = False
    continue_on_step_failure: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


def _record_and_trigger(ws: Any, client: Any, req: _RunRequest, paused: bool) -> SubmittedRun:
    """Make the run id, record the run, trigger it (the client's retries reuse the run id: never doubled)."""
    if paused:
        client.unpause(req.dag_id)
    run_id = str(uuid.uuid4())
    meta = {"run_id": run_id, "experiment": req.experiment, "regenerate_outputs": req.regenerate_outputs,
            "continue_on_step_failure": req.continue_on_step_failure, "tags": dict(req.tags),
            "spec_hash": req.spec_hash, **req.meta}
    conf = json.loads(canonical_json({**req.values, CONF_KEY: meta}))
    ws.store.upsert_pipeline_run(
        run_id, experiment=req.experiment, dag_id=req.dag_id, airflow_run_id=run_id, status="NotStarted",
        pipeline_name=req.pipeline_name, spec_hash=req.spec_hash, parameters=req.values, tags=req.tags,
        regenerate_outputs=req.regenerate_outputs, properties=req.properties,
    )
    client.trigger(req.dag_id, conf=conf, dag_run_id=run_id, note=req.note)
    return SubmittedRun(run_id=run_id, experiment=req.experiment, dag_id=req.dag_id, spec_hash=req.spec_hash)


def _parent_properties(parent_run_id: str | None) -> dict[str, str]:
    """v1 links a run to its parent with the run property ``azureml.parentrunid``."""
    return {"azureml.parentrunid": str(parent_run_id)} if parent_run_id else {}


def submit_spec(ws: Any, spec: dict[str, Any], experiment: str, pipeline_parameters: dict | None = None, *,
                dag_id: str | None = None, regenerate_outputs: bool = False,
                continue_on_step_failure: bool = False, tags: dict | None = None,
                parent_run_id: str | None = None, client: Any = None) -> SubmittedRun:
    """Run a pipeline's spec in ``experiment`` (``Experiment.submit``).

    Without ``dag_id`` the spec becomes the DAG ``<experiment>__<graph hash>``: written into the embedded
    Airflow's bundle, or uploaded (with its source snapshots) to a remote one. With ``dag_id`` a DAG file
    already defines the pipeline (``pipeline.to_dag(dag_id)``) and the run is pinned to the spec that DAG
    serves when it is triggered.
    """
    from airflow_mlpipe.store.tables_specs import save_spec

    check_experiment_name(experiment)
    tags = check_tags(tags)
    if client is None:
        from airflow_mlpipe.clients.airflow_rest import client_for

        client = client_for(ws)
    values = check_parameters(spec, pipeline_parameters)
    if dag_id is None:
        spec = {**spec, "experiment": experiment}
        dag_id = spec["name"] = experiment_dag_id(experiment, spec)
        if ws.is_embedded:  # the DAG processor reads our folder
            _, digest = publish_spec(ws, spec)
            save_spec(ws.store, spec, digest)
            _retire_old_graphs(ws, experiment, keep=dag_id)
        else:  # another machine: snapshots and spec go through the plugin's API
            digest = upload_spec(ws, client, spec)
        details = _wait_for_spec(client, dag_id, digest, DEFAULT_DAG_WAIT)
    else:
        details = _wait_for_spec(client, dag_id, None, DEFAULT_DAG_WAIT)
        digest = dag_spec_digest(details) or spec_hash(spec)
    return _record_and_trigger(ws, client, _RunRequest(
        dag_id=dag_id, spec_hash=digest, experiment=experiment, values=values, tags=tags,
        pipeline_name=spec.get("experiment") or dag_id, note=f"experiment {experiment}",
        regenerate_outputs=bool(regenerate_outputs), continue_on_step_failure=bool(continue_on_step_failure),
        properties=_parent_properties(parent_run_id),
    ), paused=details.get("is_paused") is not False)


def submit_published(ws: Any, row: dict[str, Any], experiment: str, pipeline_parameters: dict | None = None, *,
                     tags: dict | None = None, description: str | None = None, run_source: str = "SDK",
                     continue_on_step_failure: bool | None = None, endpoint: dict | None = None,
                     client: Any = None, wait_for_dag: float = DEFAULT_DAG_WAIT,
                     parent_run_id: str | None = None) -> SubmittedRun:
    """Run the published pipeline ``row`` (a :mod:`~airflow_mlpipe.store.published_queries` row) in
    ``experiment``; ``endpoint`` = ``{"id", "version"}`` when submitted through a pipeline endpoint (which
    may serve a disabled pipeline as one of its versions).

    Raises UserErrorException (bad experiment name, unknown parameter, wrong type, disabled pipeline).
    ``client`` is an AirflowClient (the REST API passes one carrying the caller's own token).
    """
    from airflow_mlpipe.store.published_queries import ACTIVE
    from airflow_mlpipe.store.tables_specs import save_spec

    if row["status"] != ACTIVE and endpoint is None:
        raise UserErrorException(
            f"Published pipeline {row['id']!r} ({row['name']}) is {row['status']}: Status must be Active to submit; "
            "enable it first"
        )
    check_experiment_name(experiment)
    tags = check_tags(tags)
    spec, digest, dag_id = row["spec"], row["spec_hash"], row["dag_id"]
    values = check_parameters(spec, pipeline_parameters)
    if client is None:
        from airflow_mlpipe.clients.airflow_rest import client_for

        client = client_for(ws)
    details = _wait_for_spec(
        client, dag_id, digest, wait_for_dag,
        hint="Published pipelines are served by the 'mlpipe-submitted' DAG bundle of the workspace's Airflow "
             "(mlpipe_published_dags.py, written by `mlpipe airflow start`); check that bundle in Airflow's "
             "dag_bundle_config_list and the DAG processor's log")
    meta: dict[str, Any] = {"published_pipeline_id": row["id"]}
    properties: dict[str, Any] = {"azureml.pipelineid": row["id"], "azureml.runsource": run_source or "SDK"}
    if endpoint is not None:
        meta["pipeline_endpoint_id"] = endpoint["id"]
        properties["azureml.pipelineendpointid"] = endpoint["id"]
        properties["azureml.pipelineendpointversion"] = endpoint.get("version")
    if description:
        properties["description"] = str(description)
    properties.update(_parent_properties(parent_run_id))
    cosf = row.get("continue_on_step_failure") if continue_on_step_failure is None else continue_on_step_failure
    save_spec(ws.store, spec, digest)
    return _record_and_trigger(ws, client, _RunRequest(
        dag_id=dag_id, spec_hash=digest, experiment=experiment, values=values, tags=tags,
        pipeline_name=row["name"], note=f"experiment {experiment} ({run_source})",
        continue_on_step_failure=bool(cosf), meta=meta, properties=properties,
    ), paused=details.get("is_paused") is not False)
