"""The v1 REST entities of published pipelines and endpoints, and the URLs they are submitted at.

One definition serves the SDK (``PublishedPipeline.to_entity``, ``.endpoint``) and the REST API (``GET
/mlpipe/api/v1/pipelines``), so both describe a pipeline the same way. Rows are those of
:mod:`airflow_mlpipe.store.published_queries`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from airflow_mlpipe.contract.timestamps import iso_utc

#: where the REST routes of the plugin live under the api-server's URL
ENDPOINT_PREFIX = "/mlpipe/api/v1"


def rest_base_url(ws: Any) -> str:
    """Where our REST routes are served (the Airflow api-server of ``ws``)."""
    url = ws.airflow_config.get("url")
    if url:
        return url.rstrip("/")
    if os.environ.get("AIRFLOW__API__BASE_URL"):  # inside an Airflow component
        return os.environ["AIRFLOW__API__BASE_URL"].rstrip("/")
    from airflow_mlpipe.clients.local_airflow import last_url

    return last_url(ws) or "http://127.0.0.1:8080"  # the URL is what matters here, not whether it answers


def pipeline_submit_url(base_url: str, pipeline_id: str) -> str:
    return f"{base_url}{ENDPOINT_PREFIX}/PipelineRuns/PipelineSubmit/{pipeline_id}"


def endpoint_submit_url(base_url: str, endpoint_id: str) -> str:
    return f"{base_url}{ENDPOINT_PREFIX}/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}"


def swagger_url(base_url: str) -> str:
    return f"{base_url}/mlpipe/openapi.json"


def pipeline_entity(row: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A published pipeline as v1's REST API shows it (PascalCase keys)."""
    parameters = row["spec"].get("parameters") or {}
    return {
        "Id": row["id"], "Name": row["name"], "Description": row.get("description"),
        "Version": row.get("version"), "GraphId": row["spec_hash"], "DagId": row["dag_id"],
        "TotalRunSteps": row.get("total_run_steps"),
        "ParameterAssignments": {n: p.get("default") for n, p in parameters.items()},
        "ParameterTypes": {n: p.get("type") for n, p in parameters.items()},
        "Url": pipeline_submit_url(base_url, row["id"]), "EntityStatus": row["status"],
        "ContinueRunOnStepFailure": bool(row.get("continue_on_step_failure")),
        "CreatedDate": iso_utc(row.get("created_at")), "LastModifiedDate": iso_utc(row.get("modified_at")),
        "Etag": row["spec_hash"][:16],
    }


def endpoint_entity(row: dict[str, Any], versions: Iterable[dict[str, Any]], base_url: str) -> dict[str, Any]:
    """A pipeline endpoint as v1's REST API shows it; ``versions`` are its version rows."""
    return {
        "Id": row["id"], "Name": row["name"], "Description": row.get("description"),
        "DefaultVersion": row["default_version"], "EntityStatus": row["status"],
        "PipelineVersionList": [{"Version": v["version"], "PipelineId": v["pipeline_id"]} for v in versions],
        "Url": endpoint_submit_url(base_url, row["id"]), "SwaggerUrl": swagger_url(base_url),
        "CreatedDate": iso_utc(row.get("created_at")), "LastModifiedDate": iso_utc(row.get("modified_at")),
    }
