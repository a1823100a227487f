"""The JSON views of the Airflow UI's airflow-mlpipe tabs and pages, shaped from store rows (issue 14).

Pure functions: rows of our store (pipeline runs, step runs, metrics, published pipelines, endpoints,
schedules) and what the routes of :mod:`airflow_mlpipe.plugins.ui_api` found out (Airflow's task instances,
which ports are tabular, the caller's permissions) go in; the contract's JSON comes out (PascalCase keys, ISO
UTC times, durations in seconds, no NaN). No FastAPI and no I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from airflow_mlpipe.contract import schedule_rules as rules
from airflow_mlpipe.contract.status import TERMINAL, step_status
from airflow_mlpipe.contract.timestamps import iso_utc

#: rows of one logged table a step view carries at most
MAX_TABLE_ROWS = 1000
#: metric kinds that are values (tables and images have their own parts of the step view)
VALUE_KINDS = ("scalar", "list")
#: where an image metric is served, relative to the Airflow base URL
IMAGE_URL = "mlpipe/api/v1/ui/images/{id}"


# ---------------------------------------------------------------------------------------------- values
def json_value(value: Any) -> Any:
    """``value`` as strict JSON: non-finite floats become null, times ISO strings, bytes text, anything else
    unknown its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return json_value(float(value))
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _as_datetime(value: Any) -> datetime | None:
    """A store datetime (naive UTC) or an ISO string from Airflow, as an aware datetime."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def duration_seconds(start: Any, end: Any) -> float | None:
    began, ended = _as_datetime(start), _as_datetime(end)
    return None if began is None or ended is None else max(0.0, (ended - began).total_seconds())


def short_key(key: str | None) -> str:
    """``blake3:3f2a9c…`` as people read it: the first 8 hex digits."""
    return f"{key.rpartition(':')[2][:8]}…" if key else "?"


# ---------------------------------------------------------------------------------------------- metrics
def value_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Scalars by their last value, ``log_list`` lists as logged (``rows`` in logged order)."""
    return {r["name"]: json_value(r["value"]) for r in rows if r["kind"] in VALUE_KINDS}


def numeric_metrics(rows: list[dict[str, Any]], prefix: str = "") -> dict[str, float]:
    """The numeric scalars of :func:`value_metrics`, their names prefixed."""
    return {prefix + name: v for name, v in value_metrics(rows).items() if is_number(v)}


def logged_tables(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``run.log_table`` (the last one of a name) and ``run.log_row`` (all rows of a name) as tables."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        value = row["value"]
        if row["kind"] == "table" and isinstance(value, dict):
            length = max((len(v) for v in value.values() if isinstance(v, list)), default=0)
            found[row["name"]] = [{c: _item(v, i) for c, v in value.items()} for i in range(length)]
        elif row["kind"] == "row" and isinstance(value, dict):
            found.setdefault(row["name"], []).append(value)
    return [_table(name, items) for name, items in found.items()]


def _item(values: Any, index: int) -> Any:
    return values[index] if isinstance(values, list) and index < len(values) else None


def _table(name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(dict.fromkeys(str(c) for item in items for c in item))
    return {"Name": name, "Columns": columns,
            "Rows": [[json_value(item.get(c)) for c in columns] for item in items[:MAX_TABLE_ROWS]]}


def logged_images(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Name": r["name"], "Url": IMAGE_URL.format(id=r["id"])} for r in rows if r["kind"] == "image"]


# ---------------------------------------------------------------------------------------------- AutoML
def _board(details: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    automl = (details or {}).get("automl") or {}
    return automl, automl.get("leaderboard")


def leaderboard(details: dict[str, Any] | None) -> dict[str, Any] | None:
    """An AutoML step's trials (its details' ``automl.leaderboard``); None for other steps."""
    automl, board = _board(details)
    if not board:
        return None
    rows = [{"Iteration": int(r["iteration"]), "Model": str(r.get("model") or ""),
             "Score": r["score"] if is_number(r.get("score")) else None,
             "TrainingSeconds": r["seconds"] if is_number(r.get("seconds")) else None} for r in board["rows"]]
    best = automl.get("best_iteration")
    return {"PrimaryMetric": board["primary_metric"], "BestIteration": best if isinstance(best, int) else None,
            "Rows": rows}


def best_so_far(details: dict[str, Any] | None) -> tuple[str, list[dict[str, Any]]] | None:
    """``(primary metric, the best score by iteration)`` of an AutoML step; None for other steps."""
    _, board = _board(details)
    if not board:
        return None
    lower = bool(board.get("lower_is_better"))
    best: float | None = None
    points = []
    for row in sorted(board["rows"], key=lambda r: r["iteration"]):
        score = row.get("score")
        if not is_number(score):
            continue
        if best is None or (score < best if lower else score > best):
            best = score
        points.append({"Iteration": int(row["iteration"]), "Score": best})
    return board["primary_metric"], points


# ---------------------------------------------------------------------------------------------- steps
@dataclass
class StepFacts:
    """What the routes gathered about one step of a pipeline run."""

    task_id: str
    #: our step-run row (None: the step has not started)
    row: dict[str, Any] | None
    #: Airflow's task instance (None: Airflow has none or did not answer)
    ti: dict[str, Any] | None = None
    #: the step as the run's spec names it (``name``, ``kind``), for a step without a row yet
    spec: dict[str, Any] = field(default_factory=dict)
    #: a reused step: the step run whose outputs it took, and that run's pipeline run
    producer_step: dict[str, Any] | None = None
    producer_run: dict[str, Any] | None = None
    #: DataRefs (:func:`data_ref`) of its inputs and outputs
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    #: metric rows of the run whose metrics the step reports (the producer's when reused, as in v1)
    metric_rows: list[dict[str, Any]] = field(default_factory=list)
    #: what went into its cache key (the cache entry's ``components``), when known
    components: dict[str, Any] | None = None

    @property
    def reported(self) -> dict[str, Any]:
        """The row whose inputs and details the step reports: the producer's when reused."""
        return self.producer_step or self.row or {}


def data_ref(name: str, record: dict[str, Any], tabular: bool, uri: str | None = None) -> dict[str, Any]:
    """One input or output of a step from its recorded value (an output as committed, an input as resolved)."""
    return {"Name": name, "Uri": uri or record.get("uri"), "Size": _count(record.get("size")),
            "Files": _count(record.get("files")), "ContentHash": record.get("content_hash"), "Tabular": tabular}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reused_from(facts: StepFacts) -> dict[str, Any] | None:
    row, run = facts.row or {}, facts.producer_run
    if not row.get("reused_run_id") or run is None:
        return None
    return {"PipelineRunId": run["run_id"], "DagId": run["dag_id"], "DagRunId": run["airflow_run_id"],
            "TaskId": (facts.producer_step or {}).get("task_id") or facts.task_id, "StepRunId": row["reused_run_id"]}


def waiting_for(facts: StepFacts) -> dict[str, Any] | None:
    """A step deferred while another run computes its cache key: that run (the note next to Airflow's
    "deferred" state); None once the step has ended."""
    row = facts.row or {}
    waiting = (row.get("details") or {}).get("waiting_for")
    if not waiting or row.get("status") in TERMINAL:
        return None
    task = waiting.get("task") or {}
    return {"StepRunId": waiting.get("step_run"), "DagId": task.get("dag_id"), "DagRunId": task.get("run_id"),
            "TaskId": task.get("task_id"), "Since": waiting.get("since"), "Description": waiting.get("description")}


def cache_view(facts: StepFacts) -> dict[str, Any]:
    """How the step cache decided: reused, computed (with what changed), no-reuse, or pending (not yet known)."""
    row = facts.row or {}
    details = row.get("details") or {}
    noted = details.get("cache") or {}
    if row.get("reused_run_id"):
        decision, reasons = "reused", [f"same inputs, code and settings as step run {row['reused_run_id']}"]
    elif noted.get("decision") in ("computed", "no-reuse"):
        decision, reasons = noted["decision"], [str(r) for r in noted.get("reasons") or []]
    elif row.get("status") in TERMINAL:
        decision, reasons = "computed", []
    else:
        decision, reasons = "pending", []
    return {"Decision": decision, "Key": details.get("cache_key"), "Components": json_value(facts.components),
            "Reasons": reasons}


def cache_reason(cache: dict[str, Any], origin: dict[str, Any] | None) -> str | None:
    """One sentence: why the step was reused, or why it computed."""
    decision, reasons = cache["Decision"], "; ".join(cache["Reasons"])
    if decision == "reused":
        where = f"run {origin['PipelineRunId']}" if origin else "an earlier run"
        return f"cache key {short_key(cache['Key'])} matched the outputs of {where}"
    if decision == "no-reuse":
        return f"computed without reuse ({reasons})"
    if decision == "computed":
        return f"computed: {reasons}" if reasons else "computed"
    return None


def step_summary(facts: StepFacts) -> dict[str, Any]:
    row = facts.row or {}
    ti = facts.ti or {}
    start = iso_utc(row.get("start_time")) or ti.get("start_date")
    end = iso_utc(row.get("end_time")) or ti.get("end_date")
    cache = cache_view(facts)
    origin = reused_from(facts)
    return {
        "Name": row.get("step_name") or facts.spec.get("name") or facts.task_id, "TaskId": facts.task_id,
        "Kind": row.get("kind") or facts.spec.get("kind"), "Status": step_status(facts.row, facts.ti),
        "StartTime": start, "EndTime": end, "DurationSeconds": duration_seconds(start, end),
        "Reused": bool(row.get("reused_run_id")), "ReusedFrom": origin, "CacheReason": cache_reason(cache, origin),
        "MissReasons": cache["Reasons"] if cache["Decision"] in ("computed", "no-reuse") else [],
        "WaitingFor": waiting_for(facts), "Inputs": facts.inputs, "Outputs": facts.outputs, "Metrics": value_metrics(facts.metric_rows),
    }


def step_view(facts: StepFacts) -> dict[str, Any]:
    """:func:`step_summary` with the cache decision, logged tables and images, and an AutoML leaderboard."""
    return {**step_summary(facts), "Cache": cache_view(facts), "Tables": logged_tables(facts.metric_rows),
            "Images": logged_images(facts.metric_rows), "Leaderboard": leaderboard(facts.reported.get("details"))}


# ---------------------------------------------------------------------------------------------- runs
def run_ref(run: dict[str, Any], status: str) -> dict[str, Any]:
    """A pipeline run as every view names it (``UiRunRef``)."""
    return {"Id": run["run_id"], "DagId": run["dag_id"], "DagRunId": run["airflow_run_id"],
            "Experiment": run["experiment"], "Status": status, "CreationTime": iso_utc(run.get("created_at"))}


def pipeline_view(run: dict[str, Any], status: str, steps: list[dict[str, Any]],
                  run_metric_rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Run": {**run_ref(run, status), "EndTime": iso_utc(run.get("end_time")),
                "Parameters": json_value(run.get("parameters") or {})},
        "Steps": steps, "Metrics": value_metrics(run_metric_rows),
    }


def experiment_run(run: dict[str, Any], status: str, run_metric_rows: list[dict[str, Any]],
                   step_metric_rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One run of an experiment's comparison: its parameters and numeric metrics (steps' as ``step/metric``)."""
    metrics = numeric_metrics(run_metric_rows)
    for step, rows in step_metric_rows.items():
        metrics.update(numeric_metrics(rows, f"{step}/"))
    return {"Id": run["run_id"], "DagRunId": run["airflow_run_id"], "Status": status,
            "CreationTime": iso_utc(run.get("created_at")), "Parameters": json_value(run.get("parameters") or {}),
            "Metrics": metrics}


def experiment_curves(run_id: str, automl_details: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The best-so-far curves of a run's AutoML steps (``automl_details``: step name → details)."""
    curves = []
    for step, details in automl_details.items():
        curve = best_so_far(details)
        if curve is not None:
            curves.append({"RunId": run_id, "Step": step, "Metric": curve[0], "Points": curve[1]})
    return curves


def summary_view(runs: list[tuple[dict[str, Any], str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Recent runs with their step counts and the share of reused steps (``runs``: row, status, step rows)."""
    entries = []
    for run, status, steps in runs:
        entries.append({**run_ref(run, status), "Steps": len(steps),
                        "ReusedSteps": sum(1 for s in steps if s.get("reused_run_id"))})
    total = sum(e["Steps"] for e in entries)
    reused = sum(e["ReusedSteps"] for e in entries)
    return {"Runs": entries, "StepsTotal": total, "StepsReused": reused,
            "ReusedShare": reused / total if total else None}


# ---------------------------------------------------------------------------------------------- published
def pipeline_entry(row: dict[str, Any], can_submit: bool, can_manage: bool) -> dict[str, Any]:
    parameters = (row.get("spec") or {}).get("parameters") or {}
    return {"Id": row["id"], "Name": row["name"], "Version": row.get("version"), "Status": row["status"],
            "DagId": row["dag_id"], "Description": row.get("description"), "TotalRunSteps": row.get("total_run_steps"),
            "Parameters": [{"Name": n, "Type": str(p.get("type")), "Default": json_value(p.get("default"))}
                           for n, p in parameters.items()],
            "CanSubmit": can_submit, "CanManage": can_manage}


def endpoint_entry(row: dict[str, Any], versions: list[dict[str, Any]], pipelines: dict[str, dict[str, Any]],
                   can_submit: bool, can_manage: bool) -> dict[str, Any]:
    """An endpoint with its versions (``pipelines``: published pipeline rows by id)."""
    listed = []
    for v in versions:
        pipeline = pipelines.get(v["pipeline_id"]) or {}
        listed.append({"Version": v["version"], "PipelineId": v["pipeline_id"], "PipelineName": pipeline.get("name"),
                       "DagId": pipeline.get("dag_id")})
    return {"Id": row["id"], "Name": row["name"], "Status": row["status"], "DefaultVersion": row["default_version"],
            "Versions": listed, "CanSubmit": can_submit, "CanManage": can_manage}


def recurrence_text(row: dict[str, Any]) -> str | None:
    """A schedule's trigger for people: ``every 1 Day at 06:00 (UTC)``, or the datastore folder it watches."""
    rec = row.get("recurrence")
    if not rec:
        if not row.get("datastore_name"):
            return None
        path = (row.get("path_on_datastore") or "").strip("/")
        return (f"when files under {row['datastore_name']}:/{path} change (checked every "
                f"{row.get('polling_interval') or 5:g} min)")
    return rules.recurrence_text(rec)


def schedule_entry(row: dict[str, Any], dag_id: str | None, next_run: Any, can_manage: bool) -> dict[str, Any]:
    return {"Id": row["id"], "Name": row["name"], "Status": row["status"], "PipelineId": row.get("pipeline_id"),
            "EndpointId": row.get("pipeline_endpoint_id"), "DagId": dag_id, "Recurrence": recurrence_text(row),
            "NextRun": iso_utc(next_run) if next_run else None, "CanManage": can_manage}
