"""The JSON routes behind the Airflow UI's airflow-mlpipe views (issue 14), under ``/mlpipe/api/v1/ui/``.

The plugin's React views (the Pipeline and Step tabs of a DAG run, the Experiment tab of a DAG, the ML Pipelines
page and the dashboard) read these; the response models (:mod:`~airflow_mlpipe.plugins.ui_models`) are their
contract. Every route needs Airflow's authentication (app-wide); reads need the DAG read permission of the DAG
concerned and actions the DAG edit permission, asked of Airflow's auth manager on the server. An Airflow DAG run is
our pipeline run with that ``(dag_id, airflow_run_id)``; step statuses follow :mod:`airflow_mlpipe.contract.status`
with Airflow's task instances (asked with the caller's token; the store alone when Airflow does not answer). A
preview reads only files of the step's recorded port, inside its datastore; an image only from the workspace's run
folders.
"""

# no ``from __future__ import annotations``: FastAPI must see the route annotations as objects
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import Response

from airflow_mlpipe.contract.conf import PLANNER_TASK_ID
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.status import pipeline_status
from airflow_mlpipe.plugins import ui_ports as ports
from airflow_mlpipe.plugins import ui_views as views
from airflow_mlpipe.plugins.api import (
    API,
    ID_PATTERN,
    RUN_ID_PATTERN,
    _client,
    _ws,
    live_dag_run,
    live_task_instances,
)
from airflow_mlpipe.plugins.api_models import AirflowId
from airflow_mlpipe.plugins.permissions import authorize_dag, may_dag
from airflow_mlpipe.plugins.ui_models import (
    UiDefaultVersion,
    UiEndpoint,
    UiExperimentView,
    UiPipelineView,
    UiPreview,
    UiPublishedPipeline,
    UiPublishedView,
    UiSchedule,
    UiStepView,
    UiSummaryView,
)
from airflow_mlpipe.store import published_queries as q

UI = f"{API}/ui"
#: runs the summary looks through at most to find those the caller may read
MAX_SCANNED_RUNS = 5000
MAX_IMAGE_BYTES = 32 * 1024 * 1024
#: the image types served, by their first bytes (SVG never: it can hold scripts)
IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
               b"GIF89a": "image/gif"}
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

DagIdPath = Annotated[AirflowId, Path()]
TaskIdPath = Annotated[AirflowId, Path()]
DagRunIdPath = Annotated[str, Path(pattern=RUN_ID_PATTERN)]
EntityIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


# ---------------------------------------------------------------------------------------------- permissions
class _Access:
    """The caller's DAG permissions, asked of Airflow's auth manager once per (method, DAG, run) in a request."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self._known: dict[tuple[str, str, bool], bool] = {}

    def may(self, method: str, dag_id: str | None, run: bool = False) -> bool:
        if dag_id is None:  # an entry whose DAG is unknown is nobody's to read or change
            return False
        key = (method, dag_id, run)
        if key not in self._known:
            self._known[key] = may_dag(self.user, method, dag_id, run)
        return self._known[key]


# ---------------------------------------------------------------------------------------------- Airflow
def _next_run(client: Any, row: dict[str, Any], dag_id: str | None) -> Any:
    """When Airflow runs the DAG of an active time-based schedule next (None when it does not say)."""
    if row["status"] != q.ACTIVE or not row.get("recurrence") or dag_id is None:
        return None
    try:
        return (client.get_dag(dag_id) or {}).get("next_dagrun_run_after")
    except Exception:  # noqa: BLE001 - Airflow not answering: unknown
        return None


# ---------------------------------------------------------------------------------------------- runs and steps
def _pipeline_run(ws: Any, dag_id: str, dag_run_id: str) -> dict[str, Any]:
    run = ws.store.get_pipeline_run_by_dag_run(dag_id, dag_run_id)
    if run is None:
        raise HTTPException(404, f"DAG run {dag_run_id!r} of DAG {dag_id!r} is not an airflow-mlpipe pipeline run")
    return run


def _steps(ws: Any, run: dict[str, Any], tis: list[dict[str, Any]]) -> dict[str, views.StepFacts]:
    """Every step of the run by task id, in the spec's order: its row, task instance and spec name and kind."""
    from airflow_mlpipe.store.tables_specs import get_spec

    rows = {r["task_id"]: r for r in ws.store.list_step_runs(run["run_id"])}
    by_ti = {ti["task_id"]: ti for ti in tis if ti.get("task_id") and ti["task_id"] != PLANNER_TASK_ID}
    specs = {s["task_id"]: {"name": s.get("name"), "kind": s.get("kind")}
             for s in (get_spec(ws.store, run.get("spec_hash")) or {}).get("steps", [])}
    return {tid: views.StepFacts(tid, rows.get(tid), by_ti.get(tid), specs.get(tid, {}))
            for tid in dict.fromkeys([*specs, *by_ti, *rows])}


def _step(ws: Any, run: dict[str, Any], tis: list[dict[str, Any]], task_id: str) -> views.StepFacts:
    facts = _steps(ws, run, tis).get(task_id)
    if facts is None:
        raise HTTPException(404, f"Task {task_id!r} is not a step of pipeline run {run['run_id']!r}")
    return facts


def _with_producer(store: Any, facts: views.StepFacts) -> views.StepFacts:
    """A reused step with the step run whose outputs it took and that run's pipeline run."""
    row = facts.row or {}
    if row.get("reused_run_id"):
        facts.producer_step = store.get_step_run(row["reused_run_id"])
        run_id = ((row.get("details") or {}).get("reused_pipeline_run_id")
                  or (facts.producer_step or {}).get("pipeline_run_id"))
        facts.producer_run = store.get_pipeline_run(run_id) if run_id else None
    return facts


def _gather(ws: Any, facts: views.StepFacts, components: bool = False,
            tables: dict[str, bool] | None = None) -> views.StepFacts:
    """Fill in what a step reports: its producer when reused, metrics, inputs and outputs (and key parts);
    ``tables``: which port sources are tables, shared by the steps of one view."""
    store, row = ws.store, facts.row
    if row is None:
        return facts
    _with_producer(store, facts)
    facts.metric_rows = store.list_metric_rows([row.get("reused_run_id") or row["step_run_id"]])
    facts.outputs = [ports.port_ref(ws, name, ports.output_port(rec), tables)
                     for name, rec in (row.get("outputs") or {}).items()]
    facts.inputs = [ports.port_ref(ws, name, ports.input_port(ws, rec), tables)
                    for name, rec in (facts.reported.get("inputs") or {}).items()]
    if components:
        from airflow_mlpipe.runtime.cache import entry_components

        facts.components = entry_components(ws, (row.get("details") or {}).get("cache_key"))
    return facts


def _reported_details(store: Any, row: dict[str, Any]) -> dict[str, Any]:
    """A step run's details, or its producer's when it was reused (where an AutoML leaderboard is)."""
    if row.get("reused_run_id"):
        row = store.get_step_run(row["reused_run_id"]) or {}
    return row.get("details") or {}


# ---------------------------------------------------------------------------------------------- images
def _image_type(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((media for magic, media in IMAGE_MAGIC.items() if head.startswith(magic)), None)


def _metric_dag(store: Any, row: dict[str, Any]) -> str | None:
    """The DAG of the pipeline run a metric was logged in (None: not a pipeline run's)."""
    run_id = (row.get("pipeline_run_id") or (store.get_step_run(row["run_id"]) or {}).get("pipeline_run_id")
              or row["run_id"])
    run = store.get_pipeline_run(run_id)
    return run["dag_id"] if run else None


def _image_file(ws: Any, row: dict[str, Any]) -> FilePath:
    """The logged image's file, which must be in the workspace's run folders (where ``Run.log_image`` keeps it)."""
    value = row.get("value")
    path = FilePath(value).resolve() if isinstance(value, str) and value and "\x00" not in value else None
    if path is None or not path.is_relative_to((FilePath(ws.home) / "runs").resolve()) or not path.is_file():
        raise HTTPException(404, f"Image {row['id']}: its file is not in the workspace's run folders (any more)")
    return path


# ---------------------------------------------------------------------------------------------- published
class _Catalog:
    """The published pipelines, endpoints and endpoint versions, read once per request."""

    def __init__(self, store: Any) -> None:
        self.pipelines = {r["id"]: r for r in q.list_pipelines(store, active_only=False)}
        self.endpoints = {r["id"]: r for r in q.list_endpoints(store, active_only=False)}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        for v in q.list_versions(store):
            self.versions.setdefault(v["endpoint_id"], []).append(v)

    def version_dag(self, endpoint_id: str, version: str) -> str | None:
        found = next((v for v in self.versions.get(endpoint_id, []) if v["version"] == version), None)
        return (self.pipelines.get(found["pipeline_id"]) or {}).get("dag_id") if found else None

    def endpoint_dag(self, row: dict[str, Any]) -> str | None:
        """The DAG an endpoint runs: its default version's."""
        return self.version_dag(row["id"], row["default_version"])

    def schedule_dag(self, row: dict[str, Any]) -> str | None:
        if row.get("pipeline_endpoint_id"):
            endpoint = self.endpoints.get(row["pipeline_endpoint_id"])
            return self.endpoint_dag(endpoint) if endpoint else None
        return (self.pipelines.get(row.get("pipeline_id") or "") or {}).get("dag_id")

    def pipeline_entry(self, access: _Access, row: dict[str, Any]) -> dict[str, Any]:
        return views.pipeline_entry(row, access.may("POST", row["dag_id"], run=True), access.may("PUT", row["dag_id"]))

    def endpoint_entry(self, access: _Access, row: dict[str, Any]) -> dict[str, Any]:
        dag_id = self.endpoint_dag(row)
        return views.endpoint_entry(row, self.versions.get(row["id"], []), self.pipelines,
                                    access.may("POST", dag_id, run=True), access.may("PUT", dag_id))

    def schedule_entry(self, access: _Access, client: Any, row: dict[str, Any]) -> dict[str, Any]:
        dag_id = self.schedule_dag(row)
        return views.schedule_entry(row, dag_id, _next_run(client, row, dag_id), access.may("PUT", dag_id))


def _found(row: dict[str, Any] | None, what: str, key: str) -> dict[str, Any]:
    if row is None:
        raise HTTPException(404, f"{what} {key!r} was not found")
    return row


def _readable_runs(store: Any, access: _Access, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` pipeline runs of DAGs the caller may read (looking at most at MAX_SCANNED_RUNS)."""
    found: list[dict[str, Any]] = []
    page = max(limit * 4, 100)
    for offset in range(0, MAX_SCANNED_RUNS, page):
        batch = store.list_pipeline_runs(limit=page, offset=offset)
        found += [r for r in batch if access.may("GET", r["dag_id"], run=True)]
        if len(found) >= limit or len(batch) < page:
            break
    return found[:limit]


# ---------------------------------------------------------------------------------------------- routes
def register_ui_api(app: FastAPI, User: Any) -> None:  # noqa: N803 - the route annotation type, as in create_app
    """Add the UI's routes to the plugin's app; ``User`` is the route annotation giving the caller."""

    @app.get(f"{UI}/dags/{{dag_id}}/runs/{{dag_run_id}}/pipeline", response_model=UiPipelineView, tags=["ui"])
    def ui_pipeline_run(request: Request, user: User, dag_id: DagIdPath, dag_run_id: DagRunIdPath):
        """A DAG run as a pipeline run: its parameters, status, metrics and every step with its cache story."""
        authorize_dag(user, "GET", dag_id, run=True)
        ws = _ws()
        run = _pipeline_run(ws, dag_id, dag_run_id)
        with _client(request) as client:
            tis, dag_run = live_task_instances(client, dag_id, dag_run_id), live_dag_run(client, run)
        tables: dict[str, bool] = {}
        steps = [views.step_summary(_gather(ws, f, tables=tables)) for f in _steps(ws, run, tis).values()]
        return views.pipeline_view(run, pipeline_status(run, dag_run), steps,
                                   ws.store.list_metric_rows([run["run_id"]]))

    @app.get(f"{UI}/dags/{{dag_id}}/runs/{{dag_run_id}}/steps/{{task_id}}", response_model=UiStepView, tags=["ui"])
    def ui_step(request: Request, user: User, dag_id: DagIdPath, dag_run_id: DagRunIdPath, task_id: TaskIdPath):
        """One step: the cache decision and key parts, inputs and outputs, metrics, tables, images, leaderboard."""
        authorize_dag(user, "GET", dag_id, run=True)
        ws = _ws()
        run = _pipeline_run(ws, dag_id, dag_run_id)
        with _client(request) as client:
            tis = live_task_instances(client, dag_id, dag_run_id)
        return views.step_view(_gather(ws, _step(ws, run, tis, task_id), components=True))

    @app.get(f"{UI}/dags/{{dag_id}}/runs/{{dag_run_id}}/steps/{{task_id}}/preview", response_model=UiPreview,
             tags=["ui"])
    def ui_preview(user: User, dag_id: DagIdPath, dag_run_id: DagRunIdPath, task_id: TaskIdPath,
                   port: Annotated[str, Query(min_length=1, max_length=255)],
                   side: Literal["output", "input"] = "output",
                   rows: Annotated[int, Query(ge=1, le=ports.MAX_PREVIEW_ROWS)] = 20):
        """The first rows of a tabular input or output (Parquet, CSV or TSV files, or a tabular dataset)."""
        authorize_dag(user, "GET", dag_id, run=True)
        ws = _ws()
        run = _pipeline_run(ws, dag_id, dag_run_id)
        found = ports.find_port(ws, _with_producer(ws.store, _step(ws, run, [], task_id)), side, port)
        source = ports.table_source(ws, found.source)
        if source is None:
            raise UserErrorException(f"{side} {port!r} of step {task_id!r} is not tabular (Parquet, CSV or TSV "
                                     "files, or a tabular dataset on a datastore): it has no preview")
        return ports.preview(ws, source, port, rows)

    @app.get(f"{UI}/images/{{image_id}}", response_class=Response, tags=["ui"],
             responses={200: {"description": "the image (PNG, JPEG, GIF or WebP)",
                              "content": {media: {} for media in IMAGE_MEDIA_TYPES}}})
    def ui_image(user: User, image_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
        """An image a run logged (``Run.log_image``), for whoever may read the DAG of that run. SVG is refused."""
        ws = _ws()
        row = ws.store.get_metric_row(image_id)
        if row is None or row["kind"] != "image":
            raise HTTPException(404, f"Image {image_id} was not found")
        dag_id = _metric_dag(ws.store, row)
        if dag_id is None:
            raise HTTPException(404, f"Image {image_id} was not logged by a pipeline run")
        authorize_dag(user, "GET", dag_id, run=True)
        path = _image_file(ws, row)
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise UserErrorException(f"Image {image_id} is over {MAX_IMAGE_BYTES} bytes: it is not served")
        data = path.read_bytes()
        media = _image_type(data[:16])
        if media is None:
            raise UserErrorException(f"Image {image_id} ({path.suffix or 'no extension'}) is not a PNG, JPEG, GIF "
                                     "or WebP image: only those are served (SVG is refused: it can hold scripts)")
        return Response(data, media_type=media, headers={"X-Content-Type-Options": "nosniff",
                                                         "Content-Security-Policy": "default-src 'none'",
                                                         "Cache-Control": "private, max-age=3600"})

    @app.get(f"{UI}/dags/{{dag_id}}/experiment", response_model=UiExperimentView, tags=["ui"])
    def ui_experiment(user: User, dag_id: DagIdPath, limit: Annotated[int, Query(ge=1, le=500)] = 50):
        """The DAG's runs, newest first, with parameters and numeric metrics, and AutoML best-so-far curves."""
        authorize_dag(user, "GET", dag_id, run=True)
        store = _ws().store
        listed = store.list_pipeline_runs(dag_id=dag_id, limit=limit)
        steps_of = store.step_runs_by_pipeline_run([r["run_id"] for r in listed])
        sources_of = {run_id: {s["step_name"] or s["task_id"]: s.get("reused_run_id") or s["step_run_id"]
                               for s in steps} for run_id, steps in steps_of.items()}
        by_run: dict[str, list[dict[str, Any]]] = {}
        for row in store.list_metric_rows({*(r["run_id"] for r in listed),
                                           *(src for sources in sources_of.values() for src in sources.values())}):
            by_run.setdefault(row["run_id"], []).append(row)
        runs, curves = [], []
        for run in listed:
            steps, sources = steps_of.get(run["run_id"], []), sources_of.get(run["run_id"], {})
            runs.append(views.experiment_run(run, pipeline_status(run, None), by_run.get(run["run_id"], []),
                                             {step: by_run.get(src, []) for step, src in sources.items()}))
            automl = {s["step_name"] or s["task_id"]: _reported_details(store, s) for s in steps
                      if s["kind"] == "AutoMLStep"}
            curves += views.experiment_curves(run["run_id"], automl)
        return {"Runs": runs, "Curves": curves}

    @app.get(f"{UI}/published", response_model=UiPublishedView, tags=["ui"])
    def ui_published(request: Request, user: User):
        """Published pipelines, endpoints and schedules of the DAGs the caller may read, with what they may do."""
        store, access = _ws().store, _Access(user)
        catalog = _Catalog(store)
        with _client(request) as client:
            schedules = [catalog.schedule_entry(access, client, r)
                         for r in q.list_schedules(store, active_only=False)
                         if access.may("GET", catalog.schedule_dag(r))]
        return {"Pipelines": [catalog.pipeline_entry(access, r) for r in catalog.pipelines.values()
                              if access.may("GET", r["dag_id"])],
                "Endpoints": [catalog.endpoint_entry(access, r) for r in catalog.endpoints.values()
                              if access.may("GET", catalog.endpoint_dag(r))],
                "Schedules": schedules}

    def _pipeline_action(user: Any, pipeline_id: str, status: str) -> dict[str, Any]:
        store = _ws().store
        row = _found(q.get_pipeline(store, pipeline_id), "Published pipeline", pipeline_id)
        authorize_dag(user, "PUT", row["dag_id"])
        q.set_pipeline_status(store, pipeline_id, status)
        return _Catalog(store).pipeline_entry(_Access(user), q.get_pipeline(store, pipeline_id))

    @app.post(f"{UI}/pipelines/{{pipeline_id}}/enable", response_model=UiPublishedPipeline, tags=["ui"])
    def ui_enable_pipeline(user: User, pipeline_id: EntityIdPath):
        return _pipeline_action(user, pipeline_id, q.ACTIVE)

    @app.post(f"{UI}/pipelines/{{pipeline_id}}/disable", response_model=UiPublishedPipeline, tags=["ui"])
    def ui_disable_pipeline(user: User, pipeline_id: EntityIdPath):
        return _pipeline_action(user, pipeline_id, q.DISABLED)

    def _endpoint_action(user: Any, endpoint_id: str, **fields: Any) -> dict[str, Any]:
        """Change an endpoint; needs the edit permission on its default version's DAG (and on the new one's)."""
        store = _ws().store
        catalog = _Catalog(store)
        row = _found(catalog.endpoints.get(endpoint_id), "Pipeline endpoint", endpoint_id)
        dags = [catalog.endpoint_dag(row)]
        if "default_version" in fields:
            version = fields["default_version"]
            target = catalog.version_dag(endpoint_id, version)
            if target is None:
                versions = [v["version"] for v in catalog.versions.get(endpoint_id, [])]
                raise HTTPException(404, f"Pipeline endpoint {row['name']!r} has no version {version!r} "
                                         f"(versions: {versions})")
            dags.append(target)
        for dag_id in dict.fromkeys(dags):
            if dag_id is None:
                raise HTTPException(404, f"Pipeline endpoint {row['name']!r}: its default version's pipeline was "
                                         "not found")
            authorize_dag(user, "PUT", dag_id)
        q.update_endpoint(store, endpoint_id, **fields)
        catalog = _Catalog(store)
        return catalog.endpoint_entry(_Access(user), catalog.endpoints[endpoint_id])

    @app.post(f"{UI}/endpoints/{{endpoint_id}}/enable", response_model=UiEndpoint, tags=["ui"])
    def ui_enable_endpoint(user: User, endpoint_id: EntityIdPath):
        return _endpoint_action(user, endpoint_id, status=q.ACTIVE)

    @app.post(f"{UI}/endpoints/{{endpoint_id}}/disable", response_model=UiEndpoint, tags=["ui"])
    def ui_disable_endpoint(user: User, endpoint_id: EntityIdPath):
        return _endpoint_action(user, endpoint_id, status=q.DISABLED)

    @app.put(f"{UI}/endpoints/{{endpoint_id}}/default-version", response_model=UiEndpoint, tags=["ui"])
    def ui_set_default_version(user: User, endpoint_id: EntityIdPath, body: UiDefaultVersion):
        return _endpoint_action(user, endpoint_id, default_version=body.Version)

    def _schedule_action(request: Request, user: Any, schedule_id: str, status: str) -> dict[str, Any]:
        store = _ws().store
        catalog = _Catalog(store)
        row = _found(q.get_schedule(store, schedule_id), "Schedule", schedule_id)
        dag_id = catalog.schedule_dag(row)
        if dag_id is None:
            raise HTTPException(404, f"Schedule {row['name']!r}: the pipeline it runs was not found")
        authorize_dag(user, "PUT", dag_id)
        q.set_schedule_status(store, row, status)
        with _client(request) as client:
            return catalog.schedule_entry(_Access(user), client, q.get_schedule(store, schedule_id))

    @app.post(f"{UI}/schedules/{{schedule_id}}/enable", response_model=UiSchedule, tags=["ui"])
    def ui_enable_schedule(request: Request, user: User, schedule_id: EntityIdPath):
        return _schedule_action(request, user, schedule_id, q.ACTIVE)

    @app.post(f"{UI}/schedules/{{schedule_id}}/disable", response_model=UiSchedule, tags=["ui"])
    def ui_disable_schedule(request: Request, user: User, schedule_id: EntityIdPath):
        return _schedule_action(request, user, schedule_id, q.DISABLED)

    @app.get(f"{UI}/summary", response_model=UiSummaryView, tags=["ui"])
    def ui_summary(user: User, limit: Annotated[int, Query(ge=1, le=100)] = 10):
        """The newest runs the caller may read, with how many of their steps were reused."""
        store = _ws().store
        runs = _readable_runs(store, _Access(user), limit)
        steps_of = store.step_runs_by_pipeline_run([r["run_id"] for r in runs])
        return views.summary_view([(r, pipeline_status(r, None), steps_of.get(r["run_id"], [])) for r in runs])
