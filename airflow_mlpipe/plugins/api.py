"""The airflow-mlpipe REST API: Azure ML v1-compatible publish/endpoint submission, runs, steps and metrics.

Mounted by the plugin at ``/mlpipe`` inside the Airflow api-server. Every route requires Airflow's
authentication (a JWT in ``Authorization: Bearer`` or the UI's ``_token`` cookie): no credential → 401, an
invalid one → 403, a user without the DAG permission the route needs → 403. Submissions trigger the published
pipeline's DAG through Airflow's own REST API v2 **with the caller's token**, so Airflow's permissions apply.

OpenAPI: ``GET /mlpipe/openapi.json`` (Swagger UI at ``/mlpipe/docs``).
"""

# no ``from __future__ import annotations``: FastAPI must see the route annotations as objects
import logging
import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.status import TERMINAL, pipeline_status, step_status
from airflow_mlpipe.contract.timestamps import iso_utc
from airflow_mlpipe.plugins.api_models import (
    ErrorResponse,
    MissingObjects,
    PipelineEndpointEntity,
    PipelineRunEntity,
    PipelineSpecBody,
    PipelineSubmissionInfo,
    PublishedPipelineEntity,
    RunMetrics,
    SpecAccepted,
    StepRunEntity,
    UploadAuditEntry,
)
from airflow_mlpipe.plugins.permissions import authorize_code_deployment, authorize_dag

log = logging.getLogger(__name__)

API = "/api/v1"
#: what a path segment we serve can hold (a control character never reaches this app: the api-server's
#: mount does not route it)
ID_PATTERN = r"^[A-Za-z0-9_.:+~-]{1,64}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9_.:+~-]{1,250}$"
NAME_PATTERN = r"^[^\x00-\x1f\x7f/]{1,255}$"
# ---------------------------------------------------------------------------------------------- auth
def _user_dep():
    """Airflow's own check (401 without a credential, 403 for an invalid token)."""
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return Depends(requires_authenticated())


def _user_type():
    from airflow.api_fastapi.core_api.security import GetUserDep

    return GetUserDep


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth.split(" ", 1)[1].strip()
    return request.cookies.get("_token")


def _base_url() -> str:
    url = os.environ.get("AIRFLOW__API__BASE_URL")
    if not url:
        from airflow.configuration import conf

        url = conf.get("api", "base_url", fallback="http://127.0.0.1:8080")
    return url.rstrip("/")


def _client_address(request: Request) -> str | None:
    return f"{request.client.host}:{request.client.port}" if request.client else None


def _client(request: Request):
    from airflow_mlpipe.clients.airflow_rest import AirflowClient

    return AirflowClient(_base_url(), token=_token(request), timeout=30)


def live_task_instances(client: Any, dag_id: str, dag_run_id: str) -> list[dict[str, Any]]:
    """Airflow's task instances of a DAG run; none when Airflow does not answer (the store's records decide)."""
    try:
        return client.task_instances(dag_id, dag_run_id)
    except Exception:  # noqa: BLE001 - Airflow not answering
        return []


def live_dag_run(client: Any, run: dict[str, Any]) -> dict[str, Any] | None:
    """Airflow's DAG run of a pipeline run the store does not know to be over; None when over or unanswered."""
    if run.get("status") in TERMINAL:
        return None
    try:
        return client.get_dag_run(run["dag_id"], run["airflow_run_id"])
    except Exception:  # noqa: BLE001 - Airflow not answering
        return None


def _ws():
    from airflow_mlpipe.data.workspace_location import WorkspaceLocation

    return WorkspaceLocation.from_config()


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}, "detail": message})


def _datapath_assignments(ws: Any, assignments: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """v1 ``DataPathAssignments`` as DataPath parameter values; the datastore must exist and the path stay inside
    it (a 400 naming the parameter otherwise)."""
    from airflow_mlpipe.contract.parameters import datapath_value
    from airflow_mlpipe.data.datastore_location import DatastoreLocation

    values: dict[str, dict[str, Any]] = {}
    for name, item in (assignments or {}).items():
        where = f"DataPathAssignments[{name!r}]"
        value = datapath_value(where, {"datastore": item.DataStoreName, "path": item.RelativePath})
        try:
            DatastoreLocation.get(ws, value["datastore"])
        except UserErrorException as exc:
            raise UserErrorException(f"{where}: {exc}") from None
        values[name] = value
    return values


def step_entity(run_id: str, task_id: str, row: dict | None, ti: dict | None) -> dict[str, Any]:
    """One step of a run as ``GET runs/{id}/steps`` shows it: our store's step-run ``row`` and Airflow's task
    instance ``ti`` (either may be None); the status by the rule the SDK uses too."""
    status = step_status(row, ti)
    row = row or {}
    return {"Name": row.get("step_name") or task_id, "TaskId": task_id,
            "StepRunId": row.get("step_run_id") or f"{run_id}.{task_id}", "Status": status,
            "Reused": bool(row.get("reused_run_id")), "ReusedRunId": row.get("reused_run_id"),
            "StartTime": iso_utc(row.get("start_time")) or (ti or {}).get("start_date"),
            "EndTime": iso_utc(row.get("end_time")) or (ti or {}).get("end_date"),
            "Outputs": row.get("outputs") or {}, "Error": row.get("error")}


# ---------------------------------------------------------------------------------------------- the app
def create_app() -> FastAPI:
    from airflow_mlpipe.clients import published_entities as entities
    from airflow_mlpipe.clients.submit import submit_published
    from airflow_mlpipe.contract.conf import PLANNER_TASK_ID
    from airflow_mlpipe.store import published_queries as q

    user_dep = _user_dep()
    User = _user_type()
    errors = {400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
              404: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}
    app = FastAPI(
        title="airflow-mlpipe", version="1.0",
        description="Azure ML SDK v1-compatible REST endpoints of airflow-mlpipe: submit published pipelines and "
                    "pipeline endpoints, read runs, steps and metrics. Authenticate with an Airflow JWT "
                    "(POST /auth/token) as `Authorization: Bearer <token>`.",
        dependencies=[user_dep], responses=errors,
    )
    from airflow_mlpipe.plugins.guard import GuardMiddleware

    app.add_middleware(GuardMiddleware)  # authentication and size limits before any body is parsed

    @app.exception_handler(UserErrorException)
    async def _user_error(request: Request, exc: UserErrorException):
        return _error(400, "UserError", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{loc or 'body'}: {e.get('msg')}")
        return _error(400, "ValidationError", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)  # also routing's 404/405 and FastAPI's body-parsing 400
    async def _http(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, {401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                                        413: "PayloadTooLarge"}.get(exc.status_code, "Error"), str(exc.detail))

    # ------------------------------------------------------------------ helpers
    def _pipeline_row(ws: Any, pipeline_id: str) -> dict[str, Any]:
        row = q.get_pipeline(ws.store, pipeline_id)
        if row is None:
            raise HTTPException(404, f"Published pipeline {pipeline_id!r} was not found")
        return row

    def _endpoint_row(ws: Any, key: str) -> dict[str, Any]:
        row = q.get_endpoint(ws.store, endpoint_id=key) or q.get_endpoint(ws.store, name=key)
        if row is None:
            raise HTTPException(404, f"Pipeline endpoint {key!r} was not found")
        return row

    def _submit(request: Request, user: Any, ws: Any, prow: dict[str, Any], body: PipelineSubmissionInfo,
                endpoint: dict | None, parent_run_id: str | None = None) -> dict[str, Any]:
        from airflow_mlpipe.clients.airflow_rest import AirflowAPIError

        authorize_dag(user, "POST", prow["dag_id"], run=True)
        if body.DataSetDefinitionValueAssignments:
            raise UserErrorException("DataSetDefinitionValueAssignments are not supported by airflow-mlpipe yet; "
                                     "pass DataPath values in DataPathAssignments")
        assignments = {**(body.ParameterAssignments or {}), **_datapath_assignments(ws, body.DataPathAssignments)}
        try:
            submitted = submit_published(
                ws, prow, body.ExperimentName, assignments, tags=body.tags,
                description=body.Description, run_source=body.RunSource or "API",
                continue_on_step_failure=body.ContinueRunOnStepFailure, endpoint=endpoint, client=_client(request),
                wait_for_dag=30, parent_run_id=parent_run_id,
            )
        except AirflowAPIError as exc:
            status = exc.status if 400 <= exc.status < 500 else 502
            raise HTTPException(status, f"Airflow refused the run: {exc}") from exc
        except TimeoutError as exc:
            raise HTTPException(503, str(exc)) from exc
        return _run_entity(request, ws, submitted.run_id, live=False)

    def _run_entity(request: Request, ws: Any, run_id: str, live: bool = True) -> dict[str, Any]:
        row = ws.store.get_pipeline_run(run_id)
        if row is None:
            raise HTTPException(404, f"Pipeline run {run_id!r} was not found")
        dag_run = None
        if live:
            with _client(request) as client:
                dag_run = live_dag_run(client, row)
        status = pipeline_status(row, dag_run)
        props = row.get("properties") or {}
        prow = q.get_pipeline(ws.store, props.get("azureml.pipelineid", "")) if props.get("azureml.pipelineid") \
            else None
        from urllib.parse import quote

        return {
            "Id": run_id,
            "Status": {"StatusCode": status, "StatusDetail": row.get("error"),
                       "CreationTime": iso_utc(row.get("created_at")), "EndTime": iso_utc(row.get("end_time"))},
            "Description": props.get("description"), "GraphId": row.get("spec_hash"), "IsSubmitted": True,
            "HasErrors": status == "Failed", "ParameterAssignments": row.get("parameters") or {},
            "RunHistoryExperimentName": row["experiment"], "PipelineId": props.get("azureml.pipelineid"),
            "PipelineEndpointId": props.get("azureml.pipelineendpointid"),
            "RunSource": props.get("azureml.runsource"), "RunType": "HTTP",
            "TotalRunSteps": prow.get("total_run_steps") if prow else None, "tags": row.get("tags") or {},
            "Properties": props, "DagId": row["dag_id"], "DagRunId": row["airflow_run_id"],
            "AirflowUrl": f"{_base_url()}/dags/{row['dag_id']}/runs/{quote(row['airflow_run_id'], safe='')}",
        }

    # ------------------------------------------------------------------ published pipelines
    @app.get(f"{API}/pipelines", response_model=list[PublishedPipelineEntity], tags=["published pipelines"])
    def list_published_pipelines(user: User, active_only: bool = True):
        authorize_dag(user, "GET", None)
        ws = _ws()
        base = entities.rest_base_url(ws)
        return [entities.pipeline_entity(r, base) for r in q.list_pipelines(ws.store, active_only)]

    @app.get(f"{API}/pipelines/{{pipeline_id}}", response_model=PublishedPipelineEntity,
             tags=["published pipelines"])
    def get_published_pipeline(user: User, pipeline_id: Annotated[str, Path(pattern=ID_PATTERN)]):
        ws = _ws()
        row = _pipeline_row(ws, pipeline_id)
        authorize_dag(user, "GET", row["dag_id"])
        return entities.pipeline_entity(row, entities.rest_base_url(ws))

    @app.post(f"{API}/PipelineRuns/PipelineSubmit/{{pipeline_id}}", response_model=PipelineRunEntity,
              tags=["published pipelines"])
    def submit_published_pipeline(request: Request, user: User, body: PipelineSubmissionInfo,
                                  pipeline_id: Annotated[str, Path(pattern=ID_PATTERN)],
                                  parentRunId: str | None = None):  # noqa: N803 - v1 query name
        ws = _ws()
        return _submit(request, user, ws, _pipeline_row(ws, pipeline_id), body, None, parentRunId)

    # ------------------------------------------------------------------ endpoints
    @app.get(f"{API}/endpoints", response_model=list[PipelineEndpointEntity], tags=["pipeline endpoints"])
    def list_pipeline_endpoints(user: User, active_only: bool = True):
        authorize_dag(user, "GET", None)
        ws = _ws()
        return [_endpoint_entity(ws, r) for r in q.list_endpoints(ws.store, active_only)]

    @app.get(f"{API}/endpoints/{{endpoint}}", response_model=PipelineEndpointEntity, tags=["pipeline endpoints"])
    def get_pipeline_endpoint(user: User, endpoint: Annotated[str, Path(pattern=NAME_PATTERN)]):
        authorize_dag(user, "GET", None)
        ws = _ws()
        return _endpoint_entity(ws, _endpoint_row(ws, endpoint))

    def _endpoint_entity(ws: Any, row: dict[str, Any]) -> dict[str, Any]:
        return entities.endpoint_entity(row, q.list_versions(ws.store, row["id"]), entities.rest_base_url(ws))

    def _endpoint_submit(request: Request, user: Any, key: str, body: PipelineSubmissionInfo,
                         version: str | None, parent_run_id: str | None = None) -> dict[str, Any]:
        ws = _ws()
        erow = _endpoint_row(ws, key)
        if erow["status"] != "Active":
            raise UserErrorException(f"Pipeline endpoint {erow['name']!r} is {erow['status']}: Status must be "
                                     "Active to submit")
        version = erow["default_version"] if version is None else version
        vrow = q.get_version(ws.store, erow["id"], version)
        if vrow is None:
            versions = [v["version"] for v in q.list_versions(ws.store, erow["id"])]
            raise HTTPException(404, f"Pipeline endpoint {erow['name']!r} has no version {version!r} "
                                     f"(versions: {versions})")
        return _submit(request, user, ws, _pipeline_row(ws, vrow["pipeline_id"]), body,
                       {"id": erow["id"], "version": version}, parent_run_id)

    @app.post(f"{API}/PipelineRuns/PipelineEndpointSubmit/Id/{{endpoint_id}}", response_model=PipelineRunEntity,
              tags=["pipeline endpoints"])
    def submit_pipeline_endpoint(request: Request, user: User, body: PipelineSubmissionInfo,
                                 endpoint_id: Annotated[str, Path(pattern=ID_PATTERN)],
                                 pipelineVersion: Annotated[str | None, Query(max_length=20)] = None,  # noqa: N803
                                 parentRunId: str | None = None):  # noqa: N803
        return _endpoint_submit(request, user, endpoint_id, body, pipelineVersion, parentRunId)

    @app.post(f"{API}/PipelineRuns/PipelineEndpointSubmit/Name/{{endpoint_name}}",
              response_model=PipelineRunEntity, tags=["pipeline endpoints"])
    def submit_pipeline_endpoint_by_name(request: Request, user: User, body: PipelineSubmissionInfo,
                                         endpoint_name: Annotated[str, Path(pattern=NAME_PATTERN)],
                                         pipelineVersion: Annotated[str | None, Query(max_length=20)] = None,  # noqa: N803
                                         parentRunId: str | None = None):  # noqa: N803
        return _endpoint_submit(request, user, endpoint_name, body, pipelineVersion, parentRunId)

    # ------------------------------------------------------------------ runs
    @app.get(f"{API}/runs", response_model=list[PipelineRunEntity], tags=["runs"])
    def list_runs(request: Request, user: User, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  experiment: str | None = None):
        authorize_dag(user, "GET", None, run=True)
        ws = _ws()
        rows = ws.store.list_pipeline_runs(experiment, limit=limit)
        return [_run_entity(request, ws, r["run_id"], live=False) for r in rows]

    @app.get(f"{API}/runs/{{run_id}}", response_model=PipelineRunEntity, tags=["runs"])
    def get_run(request: Request, user: User, run_id: Annotated[str, Path(pattern=RUN_ID_PATTERN)]):
        ws = _ws()
        entity = _run_entity(request, ws, run_id, live=False)
        authorize_dag(user, "GET", entity["DagId"], run=True)
        return _run_entity(request, ws, run_id)

    @app.get(f"{API}/runs/{{run_id}}/steps", response_model=list[StepRunEntity], tags=["runs"])
    def get_run_steps(request: Request, user: User, run_id: Annotated[str, Path(pattern=RUN_ID_PATTERN)]):
        ws = _ws()
        row = ws.store.get_pipeline_run(run_id)
        if row is None:
            raise HTTPException(404, f"Pipeline run {run_id!r} was not found")
        authorize_dag(user, "GET", row["dag_id"], run=True)
        stored = {r["task_id"]: r for r in ws.store.list_step_runs(run_id)}
        with _client(request) as client:
            tis = live_task_instances(client, row["dag_id"], row["airflow_run_id"])
        out, seen = [], set()
        for ti in tis:
            if ti["task_id"] == PLANNER_TASK_ID:  # the cache planner is not a step (as in the SDK)
                continue
            seen.add(ti["task_id"])
            out.append(step_entity(run_id, ti["task_id"], stored.get(ti["task_id"]), ti))
        out += [step_entity(run_id, tid, r, None) for tid, r in stored.items() if tid not in seen]
        return out

    @app.get(f"{API}/runs/{{run_id}}/metrics", response_model=RunMetrics, tags=["runs"])
    def get_run_metrics(user: User, run_id: Annotated[str, Path(pattern=RUN_ID_PATTERN)]):
        ws = _ws()
        row = ws.store.get_pipeline_run(run_id)
        if row is None:
            raise HTTPException(404, f"Pipeline run {run_id!r} was not found")
        authorize_dag(user, "GET", row["dag_id"], run=True)
        steps = {r["step_name"] or r["task_id"]: ws.store.get_metrics(r["step_run_id"])
                 for r in ws.store.list_step_runs(run_id)}
        return {"RunId": run_id, "Metrics": ws.store.get_metrics(run_id), "Steps": steps}

    # ------------------------------------------------------------------ remote submission (Experiment.submit)
    @app.post(f"{API}/snapshots/missing", response_model=MissingObjects, tags=["submission"])
    def missing_snapshot_objects(user: User, body: MissingObjects):
        """Which of these content hashes the server does not hold yet (only those are uploaded).
        Needs the code-deployment permission (Admin on the SimpleAuthManager)."""
        from airflow_mlpipe.runtime.snapshot import SnapshotStore

        authorize_code_deployment(user)
        store = SnapshotStore(_ws().home)
        return {"hashes": [h for h in body.hashes if not store.has(h)]}

    @app.put(f"{API}/snapshots/objects/{{digest}}", status_code=204, tags=["submission"])
    async def put_snapshot_object(request: Request, user: User,
                                  digest: Annotated[str, Path(pattern="^[0-9a-f]{64}$")]):
        """One file of a step's source snapshot, named by its blake3 hash (checked). Needs the code-deployment
        permission; every accepted upload is recorded in the audit trail."""
        from airflow_mlpipe.runtime.snapshot import SnapshotStore
        from airflow_mlpipe.store.tables_audit import record_upload

        authorize_code_deployment(user)
        data = await request.body()
        ws = _ws()
        try:
            SnapshotStore(ws.home).put_bytes(digest, data)
        except ValueError as exc:
            raise UserErrorException(str(exc)) from exc
        record_upload(ws.store, user=user.get_name(), kind="snapshot_object", digest=digest, size=len(data),
                      client=_client_address(request))
        log.info("mlpipe audit: user %r uploaded snapshot object %s (%d bytes)", user.get_name(), digest, len(data))

    @app.put(f"{API}/specs/{{dag_id}}", response_model=SpecAccepted, tags=["submission"])
    def put_pipeline_spec(request: Request, user: User,
                          dag_id: Annotated[str, Path(max_length=250, pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$")],
                          body: PipelineSpecBody):
        """Serve a submitted PipelineSpec as a DAG (its snapshots must have been uploaded first). Needs the
        code-deployment permission; every path in the spec and its snapshot manifests is checked; recorded in
        the audit trail."""
        from airflow_mlpipe.clients.submit import publish_spec
        from airflow_mlpipe.contract.paths import relative_path
        from airflow_mlpipe.contract.spec import check_spec
        from airflow_mlpipe.runtime.snapshot import read_uploaded_manifest
        from airflow_mlpipe.store.tables_audit import record_upload

        authorize_code_deployment(user)
        authorize_dag(user, "PUT", dag_id)
        spec = body.model_dump(exclude_unset=True)
        # the server's own workspace, never one named by the client (its paths are the client's)
        spec["workspace"] = _ws().to_ref()
        check_spec(spec, f"pipeline {dag_id!r}", uploaded=True)
        if spec.get("name") != dag_id:
            raise UserErrorException(f"spec name {spec.get('name')!r} does not match the DAG id {dag_id!r}")
        ws = _ws()
        for step in spec["steps"]:
            source = step.get("source_directory")
            if not source:
                continue
            where = f"pipeline {dag_id!r}: step {step['name']!r}"
            files = read_uploaded_manifest(ws.home, source, where)["files"]
            if step.get("script_name") is not None:
                script = relative_path(step["script_name"], f"{where}: script_name")
                if script not in files:
                    raise UserErrorException(f"{where}: script_name {script!r} is not in its uploaded snapshot")
        _, digest = publish_spec(ws, spec)
        record_upload(ws.store, user=user.get_name(), kind="spec", digest=digest, dag_id=dag_id,
                      client=_client_address(request))
        log.info("mlpipe audit: user %r uploaded the spec of DAG %s (%s)", user.get_name(), dag_id, digest)
        return {"dag_id": dag_id, "spec_hash": digest}

    @app.get(f"{API}/audit/uploads", response_model=list[UploadAuditEntry], tags=["submission"])
    def list_upload_audit(user: User, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        """The audit trail of code and spec uploads, newest first (for whoever may deploy code)."""
        from airflow_mlpipe.store.tables_audit import list_uploads

        authorize_code_deployment(user)
        return [{"At": iso_utc(r["at"]), "User": r["user"], "Kind": r["kind"], "Digest": r["digest"],
                 "DagId": r["dag_id"], "Size": r["size"], "Client": r["client"]}
                for r in list_uploads(_ws().store, limit)]

    from airflow_mlpipe.plugins.ui import register_ui
    from airflow_mlpipe.plugins.ui_api import register_ui_api

    register_ui(app)
    register_ui_api(app, User)
    return app
