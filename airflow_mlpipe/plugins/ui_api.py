"""The JSON routes behind the Airflow UI's airflow-mlpipe views (issue 14), under ``/mlpipe/api/v1/ui/``.

The plugin's React views (the Pipeline and Step tabs of a DAG run, the Experiment tab of a DAG, the ML Pipelines
page and the dashboard) read these; the response models below are their contract. Every route needs Airflow's
authentication (app-wide); reads need the DAG read permission of the DAG concerned and actions the DAG edit
permission, asked of Airflow's auth manager on the server. An Airflow DAG run is our pipeline run with that
``(dag_id, airflow_run_id)``; step statuses follow :mod:`airflow_mlpipe.contract.status` with Airflow's task
instances (asked with the caller's token; the store alone when Airflow does not answer). A preview reads only
files of the step's recorded port, inside its datastore; an image only from the workspace's run folders.
"""

# no ``from __future__ import annotations``: FastAPI must see the route annotations as objects
import posixpath
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from airflow_mlpipe.contract import schedule_rules as rules
from airflow_mlpipe.contract.conf import PLANNER_TASK_ID
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.paths import relative_path
from airflow_mlpipe.contract.status import TERMINAL, pipeline_status
from airflow_mlpipe.data.dataset_files import FORMAT_EXTENSIONS, FileMatch, list_files
from airflow_mlpipe.data.datastore_location import DatastoreLocation
from airflow_mlpipe.plugins import ui_views as views
from airflow_mlpipe.plugins.api import API, ID_PATTERN, RUN_ID_PATTERN, _client, _ws
from airflow_mlpipe.plugins.api_models import AirflowId
from airflow_mlpipe.plugins.permissions import authorize_dag
from airflow_mlpipe.store import published_queries as q

UI = f"{API}/ui"
ACTIVE, DISABLED = "Active", "Disabled"
#: formats a preview reads
TABLE_FORMATS = ("parquet", "delimited")
#: a preview answers at most this many rows
MAX_PREVIEW_ROWS = 100
#: Parquet files whose footers a preview reads to count the rows (more: TotalRows is null)
MAX_COUNTED_FILES = 100
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


# ---------------------------------------------------------------------------------------------- the contract
class UiDataRef(BaseModel):
    Name: str
    Uri: str | None
    Size: int | None
    Files: int | None
    ContentHash: str | None
    Tabular: bool


class UiReusedFrom(BaseModel):
    PipelineRunId: str
    DagId: str
    DagRunId: str
    TaskId: str
    StepRunId: str


class UiWaitingFor(BaseModel):
    StepRunId: str | None
    DagId: str | None
    DagRunId: str | None
    TaskId: str | None
    Since: str | None
    Description: str | None


class UiStepSummary(BaseModel):
    Name: str
    TaskId: str
    Kind: str | None
    Status: str
    StartTime: str | None
    EndTime: str | None
    DurationSeconds: float | None
    Reused: bool
    ReusedFrom: UiReusedFrom | None
    CacheReason: str | None
    MissReasons: list[str]
    WaitingFor: UiWaitingFor | None = None
    Inputs: list[UiDataRef]
    Outputs: list[UiDataRef]
    Metrics: dict[str, Any]


class UiCache(BaseModel):
    Decision: Literal["reused", "computed", "no-reuse", "pending"]
    Key: str | None
    Components: dict[str, Any] | None
    Reasons: list[str]


class UiTable(BaseModel):
    Name: str
    Columns: list[str]
    Rows: list[list[Any]]


class UiImage(BaseModel):
    Name: str
    Url: str


class UiLeaderboardRow(BaseModel):
    Iteration: int
    Model: str
    Score: float | None
    TrainingSeconds: float | None


class UiLeaderboard(BaseModel):
    PrimaryMetric: str
    BestIteration: int | None
    Rows: list[UiLeaderboardRow]


class UiStepView(UiStepSummary):
    Cache: UiCache
    Tables: list[UiTable]
    Images: list[UiImage]
    Leaderboard: UiLeaderboard | None


class UiRunRef(BaseModel):
    Id: str
    DagId: str
    DagRunId: str
    Experiment: str
    Status: str
    CreationTime: str | None


class UiRun(UiRunRef):
    EndTime: str | None
    Parameters: dict[str, Any]


class UiPipelineView(BaseModel):
    Run: UiRun
    Steps: list[UiStepSummary]
    Metrics: dict[str, Any]


class UiPreview(BaseModel):
    Columns: list[str]
    Rows: list[list[Any]]
    TotalRows: int | None


class UiExperimentRun(BaseModel):
    Id: str
    DagRunId: str
    Status: str
    CreationTime: str | None
    Parameters: dict[str, Any]
    Metrics: dict[str, float]


class UiCurvePoint(BaseModel):
    Iteration: int
    Score: float


class UiCurve(BaseModel):
    RunId: str
    Step: str
    Metric: str
    Points: list[UiCurvePoint]


class UiExperimentView(BaseModel):
    Runs: list[UiExperimentRun]
    Curves: list[UiCurve]


class UiParameter(BaseModel):
    Name: str
    Type: str
    Default: Any


class UiPublishedPipeline(BaseModel):
    Id: str
    Name: str
    Version: str | None
    Status: str
    DagId: str
    Description: str | None
    TotalRunSteps: int | None
    Parameters: list[UiParameter]
    CanSubmit: bool
    CanManage: bool


class UiEndpointVersion(BaseModel):
    Version: str
    PipelineId: str
    PipelineName: str | None
    DagId: str | None


class UiEndpoint(BaseModel):
    Id: str
    Name: str
    Status: str
    DefaultVersion: str
    Versions: list[UiEndpointVersion]
    CanSubmit: bool
    CanManage: bool


class UiSchedule(BaseModel):
    Id: str
    Name: str
    Status: str
    PipelineId: str | None
    EndpointId: str | None
    DagId: str | None
    Recurrence: str | None
    NextRun: str | None
    CanManage: bool


class UiPublishedView(BaseModel):
    Pipelines: list[UiPublishedPipeline]
    Endpoints: list[UiEndpoint]
    Schedules: list[UiSchedule]


class UiDefaultVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    Version: StrictStr = Field(..., min_length=1, max_length=20, examples=["1"])


class UiSummaryRun(UiRunRef):
    Steps: int
    ReusedSteps: int


class UiSummaryView(BaseModel):
    Runs: list[UiSummaryRun]
    StepsTotal: int
    StepsReused: int
    ReusedShare: float | None


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
            try:
                authorize_dag(self.user, method, dag_id, run=run)
                self._known[key] = True
            except HTTPException:
                self._known[key] = False
        return self._known[key]


# ---------------------------------------------------------------------------------------------- Airflow
def _task_instances(client: Any, dag_id: str, dag_run_id: str) -> list[dict[str, Any]]:
    try:
        return client.task_instances(dag_id, dag_run_id)
    except Exception:  # noqa: BLE001 - Airflow not answering: the store's records decide
        return []


def _dag_run(client: Any, run: dict[str, Any]) -> dict[str, Any] | None:
    if run.get("status") in TERMINAL:
        return None
    try:
        return client.get_dag_run(run["dag_id"], run["airflow_run_id"])
    except Exception:  # noqa: BLE001 - Airflow not answering: the store's records decide
        return None


def _next_run(client: Any, row: dict[str, Any], dag_id: str | None) -> Any:
    """When Airflow runs the DAG of an active time-based schedule next (None when it does not say)."""
    if row["status"] != ACTIVE or not row.get("recurrence") or dag_id is None:
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


def _gather(ws: Any, facts: views.StepFacts, components: bool = False) -> views.StepFacts:
    """Fill in what a step reports: its producer when reused, metrics, inputs and outputs (and key parts)."""
    store, row = ws.store, facts.row
    if row is None:
        return facts
    _with_producer(store, facts)
    facts.metric_rows = store.list_metric_rows([row.get("reused_run_id") or row["step_run_id"]])
    facts.outputs = [_ref(ws, name, _output_port(rec)) for name, rec in (row.get("outputs") or {}).items()]
    facts.inputs = [_ref(ws, name, _input_port(ws, rec)) for name, rec in (facts.reported.get("inputs") or {}).items()]
    if components:
        facts.components = _key_components(store, (row.get("details") or {}).get("cache_key"))
    return facts


def _key_components(store: Any, key: str | None) -> dict[str, Any] | None:
    """What went into a cache key, from its cache entry (None when the entry is gone)."""
    from sqlalchemy import select

    from airflow_mlpipe.store.tables_cache import cache_entries

    if not key:
        return None
    with store.begin() as conn:
        value = conn.execute(select(cache_entries.c.components).where(cache_entries.c.key == key)).scalar()
    return value if isinstance(value, dict) else None


def _reported_details(store: Any, row: dict[str, Any]) -> dict[str, Any]:
    """A step run's details, or its producer's when it was reused (where an AutoML leaderboard is)."""
    if row.get("reused_run_id"):
        row = store.get_step_run(row["reused_run_id"]) or {}
    return row.get("details") or {}


# ---------------------------------------------------------------------------------------------- ports
@dataclass
class _Port:
    """One recorded input or output of a step: what the view shows and where its data is, if readable here."""

    record: dict[str, Any]
    #: a dataset-definition source over datastore paths (``format``, ``options``, ``paths``); None: not readable
    source: dict[str, Any] | None
    uri: str | None = None


def _files(datastore: str, path: Any, fmt: str | None) -> dict[str, Any]:
    return {"format": fmt or "files", "options": {}, "paths": [{"datastore": datastore, "path": path or ""}]}


def _datastore_uri(ws: Any, datastore: str, path: Any) -> str | None:
    try:
        return DatastoreLocation.get(ws, datastore).uri(str(path or ""))
    except UserErrorException:  # a datastore no longer registered: the view shows no URI
        return None


def _output_port(record: Any) -> _Port:
    if not isinstance(record, dict) or not record.get("datastore") or record.get("format") == "sql_table":
        return _Port(record if isinstance(record, dict) else {}, None)
    return _Port(record, _files(record["datastore"], record.get("path"), record.get("format")), record.get("uri"))


def _input_port(ws: Any, record: Any) -> _Port:
    """An input as recorded when its step ran: the producer's output, a datastore path or a dataset."""
    if not isinstance(record, dict):
        return _Port({}, None)
    kind = record.get("kind")
    if kind == "pipeline_data":
        producer = ws.store.get_step_run(str(record.get("producer_run_id") or "")) or {}
        output = next((o for o in (producer.get("outputs") or {}).values()
                       if isinstance(o, dict) and o.get("uri") == record.get("uri")), None)
        if output is None:
            return _Port(record, None, record.get("uri"))
        return _Port({**output, **record}, _output_port(output).source, record.get("uri"))
    if kind in ("data_reference", "datapath_parameter") and record.get("datastore"):
        return _Port(record, _files(record["datastore"], record.get("path"), "files"),
                     _datastore_uri(ws, record["datastore"], record.get("path")))
    if kind == "dataset" and record.get("dataset_id"):
        definition = (ws.store.get_dataset_by_id(str(record["dataset_id"])) or {}).get("definition") or {}
        source = definition.get("source") or {}
        paths = source.get("paths") or []
        first = paths[0] if paths else {}
        uri = first.get("uri") or (_datastore_uri(ws, first["datastore"], first.get("path"))
                                   if first.get("datastore") else None)
        readable = (definition.get("type") == "tabular" and source.get("format") in TABLE_FORMATS and paths
                    and all(p.get("datastore") for p in paths))
        return _Port(record, source if readable else None, uri)
    return _Port(record, None)


def _table_source(ws: Any, source: dict[str, Any] | None) -> dict[str, Any] | None:
    """``source`` as the table a preview reads (Parquet or delimited files), or None when it holds none: a plain
    output or folder is a table when all its data files are Parquet, or all CSV, or all TSV (a delimited output
    of TSV files is read with tabs)."""
    if source is None or source["format"] not in ("files", *TABLE_FORMATS):
        return None
    if source["format"] == "parquet" or "separator" in (source.get("options") or {}):
        return source
    names = [posixpath.basename(m.path).lower() for m in list_files(ws, source, ignore_not_found=True).matches]
    names = [n for n in names if not n.startswith((".", "_"))]
    kinds = (("parquet", FORMAT_EXTENSIONS["parquet"], {}), ("delimited", (".csv",), {}),
             ("delimited", (".tsv",), {"separator": "\t"}))
    for fmt, extensions, options in kinds:
        if names and source["format"] in ("files", fmt) and all(n.endswith(extensions) for n in names):
            return {**source, "format": fmt, "options": {**options, "file_extension": list(extensions)}}
    return source if source["format"] == "delimited" else None


def _is_table(ws: Any, source: dict[str, Any] | None) -> bool:
    try:
        return _table_source(ws, source) is not None
    except Exception:  # noqa: BLE001 - a port that cannot be listed now is not previewable; the view still loads
        return False


def _ref(ws: Any, name: str, port: _Port) -> dict[str, Any]:
    return views.data_ref(name, port.record, _is_table(ws, port.source), port.uri)


def _port(ws: Any, facts: views.StepFacts, side: str, name: str) -> _Port:
    """The step's recorded ``side`` port ``name`` (a reused step's inputs are its producer's); 404 otherwise."""
    if facts.row is None:
        raise HTTPException(404, f"Step {facts.task_id!r} has not run: it has no recorded {side}s")
    recorded = (facts.row if side == "output" else facts.reported).get(f"{side}s") or {}
    if name not in recorded:
        raise HTTPException(404, f"Step {facts.task_id!r} has no {side} {name!r} (its {side}s: {sorted(recorded)})")
    return _output_port(recorded[name]) if side == "output" else _input_port(ws, recorded[name])


def _inside(store: Any, root: str, path: str) -> bool:
    """Whether ``path`` is ``root`` or in it, and ``root`` in the datastore (local paths with symlinks resolved)."""
    if store.is_local:
        base, target = FilePath(root).resolve(), FilePath(path).resolve()
        return base.is_relative_to(FilePath(store.root).resolve()) and (target == base or target.is_relative_to(base))
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def _checked_files(ws: Any, source: dict[str, Any], port: str) -> list[FileMatch]:
    """The files a preview of ``source`` reads, each checked to lie inside one of its recorded paths."""
    roots = []
    for entry in source["paths"]:
        rel = relative_path(entry.get("path") or "", f"port {port!r}: the recorded path", allow_empty=True)
        store = DatastoreLocation.get(ws, entry["datastore"])
        roots.append((store, store.full_path(rel)))
    matches = list_files(ws, source, ignore_not_found=True).matches
    for m in matches:
        if not any(_inside(store, root, m.path) for store, root in roots):
            raise UserErrorException(f"port {port!r}: {posixpath.basename(m.path)} leads outside the port's folder "
                                     "(a symbolic link); it is not read")
    return matches


#: what a reader gives: the columns, the rows (values in column order) and the row count when it is known
Rows = tuple[list[str], list[list[Any]], int | None]


def _batch_rows(columns: list[str], names: list[str], batch: Any, limit: int) -> list[list[Any]]:
    """A record batch's first ``limit`` rows in ``columns`` order (a later file's columns matched by name)."""
    rows = [list(values) for values in zip(*(c.to_pylist() for c in batch.columns), strict=True)][:limit]
    if names == columns:
        return rows
    index = {n: i for i, n in enumerate(names)}
    return [[row[index[c]] if c in index else None for c in columns] for row in rows]


def _parquet_rows(files: list[FileMatch], limit: int) -> Rows:
    import pyarrow.parquet as pq

    columns: list[str] | None = None
    rows: list[list[Any]] = []
    total, count = 0, len(files) <= MAX_COUNTED_FILES
    for m in files:
        if len(rows) >= limit and not count:
            break
        with m.fs.open(m.path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            total += parquet.metadata.num_rows
            names = parquet.schema_arrow.names
            columns = columns if columns is not None else names
            for batch in parquet.iter_batches(batch_size=limit) if len(rows) < limit else ():
                rows += _batch_rows(columns, names, batch, limit - len(rows))
                if len(rows) >= limit:
                    break
    return columns or [], rows, total if count else None


def _delimited_rows(files: list[FileMatch], options: dict[str, Any], limit: int) -> Rows:
    import pyarrow.csv as pacsv

    from airflow_mlpipe.data.dataset_definition import header_mode

    header = header_mode(options.get("header", True)) != "none"
    parse = pacsv.ParseOptions(delimiter=options.get("separator", ","))
    columns: list[str] | None = None
    rows: list[list[Any]] = []
    for m in files:
        if len(rows) >= limit:
            break
        with m.fs.open(m.path, "rb") as handle:
            reader = pacsv.open_csv(handle, parse_options=parse, read_options=pacsv.ReadOptions(
                block_size=1 << 20, autogenerate_column_names=not header))
            names = reader.schema.names if header else [f"Column{i + 1}" for i in range(len(reader.schema))]
            columns = columns if columns is not None else names
            for batch in reader:
                rows += _batch_rows(columns, names, batch, limit - len(rows))
                if len(rows) >= limit:
                    break
    return columns or [], rows, None


def _preview(ws: Any, source: dict[str, Any], port: str, limit: int) -> dict[str, Any]:
    import pyarrow as pa

    files = _checked_files(ws, source, port)
    try:
        if source["format"] == "parquet":
            columns, rows, total = _parquet_rows(files, limit)
        else:
            columns, rows, total = _delimited_rows(files, source.get("options") or {}, limit)
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise UserErrorException(f"port {port!r} could not be read as {source['format']} files: {exc}") from exc
    return {"Columns": [str(c) for c in columns], "Rows": [[views.json_value(v) for v in row] for row in rows],
            "TotalRows": total}


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
            tis, dag_run = _task_instances(client, dag_id, dag_run_id), _dag_run(client, run)
        steps = [views.step_summary(_gather(ws, f)) for f in _steps(ws, run, tis).values()]
        return views.pipeline_view(run, pipeline_status(run, dag_run), steps,
                                   ws.store.list_metric_rows([run["run_id"]]))

    @app.get(f"{UI}/dags/{{dag_id}}/runs/{{dag_run_id}}/steps/{{task_id}}", response_model=UiStepView, tags=["ui"])
    def ui_step(request: Request, user: User, dag_id: DagIdPath, dag_run_id: DagRunIdPath, task_id: TaskIdPath):
        """One step: the cache decision and key parts, inputs and outputs, metrics, tables, images, leaderboard."""
        authorize_dag(user, "GET", dag_id, run=True)
        ws = _ws()
        run = _pipeline_run(ws, dag_id, dag_run_id)
        with _client(request) as client:
            tis = _task_instances(client, dag_id, dag_run_id)
        return views.step_view(_gather(ws, _step(ws, run, tis, task_id), components=True))

    @app.get(f"{UI}/dags/{{dag_id}}/runs/{{dag_run_id}}/steps/{{task_id}}/preview", response_model=UiPreview,
             tags=["ui"])
    def ui_preview(user: User, dag_id: DagIdPath, dag_run_id: DagRunIdPath, task_id: TaskIdPath,
                   port: Annotated[str, Query(min_length=1, max_length=255)],
                   side: Literal["output", "input"] = "output",
                   rows: Annotated[int, Query(ge=1, le=MAX_PREVIEW_ROWS)] = 20):
        """The first rows of a tabular input or output (Parquet, CSV or TSV files, or a tabular dataset)."""
        authorize_dag(user, "GET", dag_id, run=True)
        ws = _ws()
        run = _pipeline_run(ws, dag_id, dag_run_id)
        found = _port(ws, _with_producer(ws.store, _step(ws, run, [], task_id)), side, port)
        source = _table_source(ws, found.source)
        if source is None:
            raise UserErrorException(f"{side} {port!r} of step {task_id!r} is not tabular (Parquet, CSV or TSV "
                                     "files, or a tabular dataset on a datastore): it has no preview")
        return _preview(ws, source, port, rows)

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
        runs, curves = [], []
        for run in store.list_pipeline_runs(dag_id=dag_id, limit=limit):
            steps = store.list_step_runs(run["run_id"])
            sources = {s["step_name"] or s["task_id"]: s.get("reused_run_id") or s["step_run_id"] for s in steps}
            by_run: dict[str, list[dict[str, Any]]] = {}
            for row in store.list_metric_rows([run["run_id"], *sources.values()]):
                by_run.setdefault(row["run_id"], []).append(row)
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
        return _pipeline_action(user, pipeline_id, ACTIVE)

    @app.post(f"{UI}/pipelines/{{pipeline_id}}/disable", response_model=UiPublishedPipeline, tags=["ui"])
    def ui_disable_pipeline(user: User, pipeline_id: EntityIdPath):
        return _pipeline_action(user, pipeline_id, DISABLED)

    def _endpoint_action(user: Any, endpoint_id: str, **fields: Any) -> dict[str, Any]:
        """Change an endpoint; needs the edit permission on its default version's DAG (and on the new one's)."""
        store = _ws().store
        catalog = _Catalog(store)
        row = _found(catalog.endpoints.get(endpoint_id), "Pipeline endpoint", endpoint_id)
        dags = [catalog.endpoint_dag(row)]
        if "default_version" in fields:
            version = fields["default_version"]
            if catalog.version_dag(endpoint_id, version) is None:
                versions = [v["version"] for v in catalog.versions.get(endpoint_id, [])]
                raise HTTPException(404, f"Pipeline endpoint {row['name']!r} has no version {version!r} "
                                         f"(versions: {versions})")
            dags.append(catalog.version_dag(endpoint_id, version))
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
        return _endpoint_action(user, endpoint_id, status=ACTIVE)

    @app.post(f"{UI}/endpoints/{{endpoint_id}}/disable", response_model=UiEndpoint, tags=["ui"])
    def ui_disable_endpoint(user: User, endpoint_id: EntityIdPath):
        return _endpoint_action(user, endpoint_id, status=DISABLED)

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
        if status == ACTIVE and row.get("pipeline_id"):  # the DAG's timetable must stay buildable
            others = [s for s in q.list_schedules(store, pipeline_id=row["pipeline_id"]) if s["id"] != schedule_id]
            rules.check_combinable(rules.time_triggers([*others, row]))
        q.update_schedule(store, schedule_id, status=status)
        with _client(request) as client:
            return catalog.schedule_entry(_Access(user), client, q.get_schedule(store, schedule_id))

    @app.post(f"{UI}/schedules/{{schedule_id}}/enable", response_model=UiSchedule, tags=["ui"])
    def ui_enable_schedule(request: Request, user: User, schedule_id: EntityIdPath):
        return _schedule_action(request, user, schedule_id, ACTIVE)

    @app.post(f"{UI}/schedules/{{schedule_id}}/disable", response_model=UiSchedule, tags=["ui"])
    def ui_disable_schedule(request: Request, user: User, schedule_id: EntityIdPath):
        return _schedule_action(request, user, schedule_id, DISABLED)

    @app.get(f"{UI}/summary", response_model=UiSummaryView, tags=["ui"])
    def ui_summary(user: User, limit: Annotated[int, Query(ge=1, le=100)] = 10):
        """The newest runs the caller may read, with how many of their steps were reused."""
        store = _ws().store
        runs = _readable_runs(store, _Access(user), limit)
        return views.summary_view([(r, pipeline_status(r, None), store.list_step_runs(r["run_id"])) for r in runs])
