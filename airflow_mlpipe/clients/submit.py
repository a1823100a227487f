"""Submitting a Pipeline: its spec goes where the Airflow DAG processor reads it, then a DAG run is triggered.

The same path serves the embedded default (an Airflow we start on 127.0.0.1) and a remote api-server.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from airflow_mlpipe.compiler.factory import SPECS_DIRNAME, write_stub
from airflow_mlpipe.operators.base import CONF_KEY
from airflow_mlpipe.runtime.step_runner import resolve_parameters
from airflow_mlpipe.spec import canonical_json, spec_hash


def dag_id_for_experiment(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def check_parameters(spec: dict[str, Any], values: dict[str, Any] | None) -> dict[str, Any]:
    """Unknown names and wrong types fail before anything is submitted."""
    from airflow_mlpipe.exceptions import UserErrorException

    values = dict(values or {})
    unknown = sorted(set(values) - set(spec.get("parameters", {})))
    if unknown:
        raise UserErrorException(
            f"Pipeline parameter with name {unknown[0]!r} does not exist "
            f"(parameters: {sorted(spec.get('parameters', {}))})"
        )
    resolved = resolve_parameters(spec.get("parameters", {}), values)
    return {k: resolved[k] for k in values}


def publish_spec(ws: Any, spec: dict[str, Any]) -> tuple[Path, str]:
    """Write ``spec`` into the submitted-pipelines bundle (atomically, only when it changed)."""
    from airflow_mlpipe.clients.local_airflow import submitted_dags_folder

    folder = submitted_dags_folder(ws)
    write_stub(folder)
    path = folder / SPECS_DIRNAME / f"{spec['name']}.json"
    text = json.dumps(spec, indent=1, sort_keys=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(path)
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
    from airflow_mlpipe.sdk.runs import TERMINAL

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


def submit_pipeline(experiment: Any, pipeline: Any, pipeline_parameters: dict | None = None,
                    regenerate_outputs: bool = False, continue_on_step_failure: bool = False,
                    tags: dict | None = None, dag_id: str | None = None, parent_run_id: str | None = None):
    """Trigger a run of ``pipeline``; returns the PipelineRun (not waiting for it).

    The run is pinned to the spec it was submitted with (its hash is in the run's conf; see
    :mod:`airflow_mlpipe.runtime.run_spec`). ``dag_id`` names a DAG file's DAG (``pipeline.to_dag(dag_id)``):
    the run is pinned to the spec that DAG defines when it is triggered. ``parent_run_id`` links the run to
    its parent as v1 does (run property ``azureml.parentrunid``).
    """
    from airflow_mlpipe.clients.airflow_rest import client_for
    from airflow_mlpipe.sdk.runs import PipelineRun
    from airflow_mlpipe.store.tables_specs import save_spec

    ws = experiment.workspace
    client = client_for(ws)
    if dag_id is None:
        spec = pipeline.to_spec("")
        spec["experiment"] = experiment.name
        dag_id = spec["name"] = experiment_dag_id(experiment.name, spec)
        values = check_parameters(spec, pipeline_parameters)
        if ws.is_embedded:  # the DAG processor reads our folder
            _, digest = publish_spec(ws, spec)
            save_spec(ws.store, spec, digest)
            _retire_old_graphs(ws, experiment.name, keep=dag_id)
        else:  # another machine: snapshots and spec go through the plugin's API
            digest = upload_spec(ws, client, spec)
        client.wait_for_dag(dag_id, predicate=lambda d: dag_spec_digest(d) == digest, timeout=120)
    else:  # a DAG file in the dags folder already defines this pipeline (``pipeline.to_dag(dag_id)``)
        spec = pipeline.to_spec(dag_id)
        values = check_parameters(spec, pipeline_parameters)
        details = client.wait_for_dag(dag_id, timeout=120)
        digest = dag_spec_digest(details) or spec_hash(spec)
    client.unpause(dag_id)
    run_id = str(uuid.uuid4())
    meta = {"run_id": run_id, "experiment": experiment.name, "regenerate_outputs": bool(regenerate_outputs),
            "continue_on_step_failure": bool(continue_on_step_failure), "tags": dict(tags or {}),
            "spec_hash": digest}
    conf = json.loads(canonical_json({**values, CONF_KEY: meta}))
    ws.store.upsert_pipeline_run(
        run_id, experiment=experiment.name, dag_id=dag_id, airflow_run_id=run_id, status="NotStarted",
        pipeline_name=spec.get("experiment") or dag_id, spec_hash=digest, parameters=values, tags=dict(tags or {}),
        regenerate_outputs=bool(regenerate_outputs),
        properties={"azureml.parentrunid": str(parent_run_id)} if parent_run_id else {},
    )
    client.trigger(dag_id, conf=conf, dag_run_id=run_id, note=f"experiment {experiment.name}")
    run = PipelineRun(experiment, run_id)
    print(f"Submitted PipelineRun {run_id}")
    if run.ui_url:
        print(f"Link to Airflow UI: {run.ui_url}")
    return run
