"""``mlpipe pipelines|endpoints|schedules``: what the studio does with published pipelines, from a shell.

Every command prints a readable table or summary; with ``--json`` it prints exactly one JSON document on stdout
(an array for lists) and nothing else, so scripts can pipe it (progress goes to stderr then).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import sys
from collections.abc import Callable
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.timestamps import iso_utc as _iso

SUBMIT_PATH = "/PipelineRuns/PipelineSubmit/"
ENDPOINT_SUBMIT_PATH = "/PipelineRuns/PipelineEndpointSubmit/Id/"


def _workspace() -> Any:
    from airflow_mlpipe.cli import _workspace as cli_workspace

    return cli_workspace()


def _base_url(ws: Any) -> str:
    """Once per command: each ``.endpoint`` property would ask the api-server's health again."""
    from airflow_mlpipe.sdk.published import ENDPOINT_PREFIX
    from airflow_mlpipe.sdk.published import _base_url as published_base_url

    return published_base_url(ws) + ENDPOINT_PREFIX


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], empty: str) -> str:
    """A left-aligned text table of ``rows`` (``columns`` = (key, header)); ``empty`` when there are none."""
    if not rows:
        return empty
    cells = [[("-" if r.get(k) is None else str(r.get(k))) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- records
def _pipeline_record(p: Any, base: str, detail: bool = False) -> dict[str, Any]:
    row = p._row
    rec: dict[str, Any] = {
        "id": row["id"], "name": row["name"], "version": row.get("version"), "status": row["status"],
        "dag_id": row["dag_id"], "endpoint": f"{base}{SUBMIT_PATH}{row['id']}",
        "created": _iso(row.get("created_at")),
    }
    if detail:
        spec = row["spec"]
        rec.update({
            "description": row.get("description"), "graph_id": row["spec_hash"],
            "continue_on_step_failure": bool(row.get("continue_on_step_failure")),
            "modified": _iso(row.get("modified_at")), "source_run_id": row.get("source_run_id"),
            "parameters": [{"name": n, "type": par.get("type"), "default": par.get("default")}
                           for n, par in sorted((spec.get("parameters") or {}).items())],
            "steps": [{"name": s["name"], "kind": s.get("kind"), "script": s.get("script_name"),
                       "compute": (s.get("compute") or {}).get("name"), "depends_on": list(s.get("depends_on", [])),
                       "parameters": list(s.get("parameters", []))} for s in spec["steps"]],
        })
    return rec


def _endpoint_record(ep: Any, base: str, detail: bool = False) -> dict[str, Any]:
    row = ep._refresh()
    versions = ep.list_versions()
    rec: dict[str, Any] = {
        "id": row["id"], "name": row["name"], "status": row["status"], "default_version": row["default_version"],
        "versions": len(versions), "endpoint": f"{base}{ENDPOINT_SUBMIT_PATH}{row['id']}",
        "created": _iso(row.get("created_at")),
    }
    if detail:
        from airflow_mlpipe.store import published_queries as q

        listed = []
        for v in versions:
            prow = q.get_pipeline(ep._workspace.store, v.pipeline_id) or {}
            listed.append({"version": v.version, "default": v.version == row["default_version"],
                           "pipeline_id": v.pipeline_id, "pipeline_name": prow.get("name"),
                           "pipeline_version": prow.get("version"), "pipeline_status": prow.get("status"),
                           "dag_id": prow.get("dag_id")})
        rec.update({"description": row.get("description"), "modified": _iso(row.get("modified_at")),
                    "versions": listed})
    return rec


def _trigger_text(row: dict[str, Any]) -> str:
    if row.get("datastore_name"):
        path = row.get("path_on_datastore") or "/"
        return f"on change of {row['datastore_name']}:{path} (polled every {row.get('polling_interval') or 5:g} min)"
    from airflow_mlpipe.contract.schedule_rules import recurrence_text

    return recurrence_text(row.get("recurrence") or {})


def _schedule_record(s: Any) -> dict[str, Any]:
    row = s._row
    return {
        "id": row["id"], "name": row["name"], "status": row["status"], "pipeline_id": row.get("pipeline_id"),
        "pipeline_endpoint_id": row.get("pipeline_endpoint_id"), "experiment": row.get("experiment_name"),
        "trigger": _trigger_text(row), "recurrence": row.get("recurrence"),
        "datastore": row.get("datastore_name"), "path_on_datastore": row.get("path_on_datastore"),
        "pipeline_parameters": row.get("pipeline_parameters") or {}, "created": _iso(row.get("created_at")),
    }


# ---------------------------------------------------------------------------------------------- pipelines
def _cmd_pipelines_list(args: argparse.Namespace) -> int:
    from airflow_mlpipe.sdk.published import PublishedPipeline

    ws = _workspace()
    pipelines = PublishedPipeline.list(ws, active_only=not args.all)
    base = _base_url(ws) if pipelines else ""
    records = [_pipeline_record(p, base) for p in pipelines]
    if args.json:
        _emit_json(records)
        return 0
    print(_table(records, [("id", "id"), ("name", "name"), ("version", "version"), ("status", "status"),
                           ("dag_id", "DAG id"), ("endpoint", "endpoint")],
                 "no published pipelines" + ("" if args.all else " (active ones; --all lists disabled ones too)")))
    return 0


def _format_pipeline(rec: dict[str, Any]) -> str:
    lines = [f"Published pipeline {rec['id']}"]
    for key, label in (("name", "name"), ("version", "version"), ("description", "description"),
                       ("status", "status"), ("dag_id", "DAG id"), ("endpoint", "endpoint"),
                       ("graph_id", "graph id"), ("continue_on_step_failure", "continue on failure"),
                       ("created", "created"), ("source_run_id", "from run")):
        if rec.get(key) is not None:
            lines.append(f"  {label:<20}: {rec[key]}")
    lines.append("  parameters:" + ("" if rec["parameters"] else " none"))
    for par in rec["parameters"]:
        lines.append(f"    - {par['name']} ({par['type']}, default {json.dumps(par['default'])})")
    lines.append("  steps:")
    for s in rec["steps"]:
        after = f"  after {', '.join(s['depends_on'])}" if s["depends_on"] else ""
        lines.append(f"    - {s['name']} ({s['kind']}: {s['script'] or '-'}, compute {s['compute']}){after}")
    return "\n".join(lines)


def _cmd_pipelines_show(args: argparse.Namespace) -> int:
    ws = _workspace()
    rec = _pipeline_record(_get_pipeline(ws, args.pipeline_id), _base_url(ws), detail=True)
    if args.json:
        _emit_json(rec)
    else:
        print(_format_pipeline(rec))
    return 0


def _get_pipeline(ws: Any, pipeline_id: str) -> Any:
    from airflow_mlpipe.sdk.published import PublishedPipeline

    return PublishedPipeline.get(ws, pipeline_id)


# ---------------------------------------------------------------------------------------------- endpoints
def _get_endpoint(ws: Any, name_or_id: str) -> Any:
    """By id first (ids are what ``list`` prints), then by name, as the studio's search does."""
    from airflow_mlpipe.sdk.published import PipelineEndpoint
    from airflow_mlpipe.store import published_queries as q

    row = q.get_endpoint(ws.store, endpoint_id=name_or_id) or q.get_endpoint(ws.store, name=name_or_id)
    if row is None:
        raise UserErrorException(f"PipelineEndpoint {name_or_id!r} was not found (by id or name) in workspace "
                                 f"{ws.name!r}; `mlpipe endpoints list --all` lists them")
    return PipelineEndpoint(ws, row)


def _cmd_endpoints_list(args: argparse.Namespace) -> int:
    from airflow_mlpipe.sdk.published import PipelineEndpoint

    ws = _workspace()
    endpoints = PipelineEndpoint.list(ws, active_only=not args.all, max_results=10**9)
    base = _base_url(ws) if endpoints else ""
    records = [_endpoint_record(ep, base) for ep in endpoints]
    if args.json:
        _emit_json(records)
        return 0
    print(_table(records, [("id", "id"), ("name", "name"), ("status", "status"),
                           ("default_version", "default"), ("versions", "versions"), ("endpoint", "endpoint")],
                 "no pipeline endpoints" + ("" if args.all else " (active ones; --all lists disabled ones too)")))
    return 0


def _cmd_endpoints_show(args: argparse.Namespace) -> int:
    ws = _workspace()
    rec = _endpoint_record(_get_endpoint(ws, args.endpoint), _base_url(ws), detail=True)
    if args.json:
        _emit_json(rec)
        return 0
    lines = [f"Pipeline endpoint {rec['id']}"]
    for key, label in (("name", "name"), ("description", "description"), ("status", "status"),
                       ("default_version", "default version"), ("endpoint", "endpoint"), ("created", "created")):
        if rec.get(key) is not None:
            lines.append(f"  {label:<16}: {rec[key]}")
    lines.append("  versions:")
    lines.append("\n".join("    " + line for line in _table(
        [{**v, "default": "*" if v["default"] else ""} for v in rec["versions"]],
        [("version", "version"), ("default", "default"), ("pipeline_id", "pipeline id"),
         ("pipeline_name", "name"), ("pipeline_status", "status"), ("dag_id", "DAG id")], "none").splitlines()))
    print("\n".join(lines))
    return 0


def _cmd_endpoints_set_default(args: argparse.Namespace) -> int:
    ep = _get_endpoint(_workspace(), args.endpoint)
    ep.set_default_version(args.version)
    print(f"Pipeline endpoint {ep.name!r} ({ep.id}): default version is now {ep.default_version}")
    return 0


# ---------------------------------------------------------------------------------------------- submission
def _ensure_airflow(ws: Any) -> None:
    """As ``mlpipe run``: the embedded Airflow is started when needed, saying so (it takes about 30 s)."""
    if not ws.is_embedded:
        return
    from airflow_mlpipe.clients import local_airflow

    if local_airflow.status(ws) is None:
        print("Starting the embedded Airflow (about 30 s)...", flush=True)
        info = local_airflow.ensure_running(ws)
        print(f"Airflow is up at {info.url}", flush=True)


def _submit(args: argparse.Namespace, ws: Any, spec: dict[str, Any], what: str,
            submit: Callable[[dict[str, str]], Any]) -> int:
    """Submit and report; with ``--json`` whatever else prints (progress, Airflow's import-time logging) goes to
    stderr, so stdout carries only the document."""
    if not args.json:
        return _submit_and_report(args, ws, spec, what, submit)[0]
    with contextlib.redirect_stdout(sys.stderr):
        rc, rec = _submit_and_report(args, ws, spec, what, submit)
    _emit_json(rec)
    return rc


def _submit_and_report(args: argparse.Namespace, ws: Any, spec: dict[str, Any], what: str,
                       submit: Callable[[dict[str, str]], Any]) -> tuple[int, dict[str, Any]]:
    """Check the parameters against the pipeline's types before starting anything, submit, maybe wait."""
    from airflow_mlpipe.cli import _parse_params
    from airflow_mlpipe.runner import prepare_airflow_env

    raw = _parse_params(args.param)
    prepare_airflow_env(ws)  # before anything imports Airflow: its config is the workspace's
    from airflow_mlpipe.contract.parameters import check_parameters

    check_parameters(spec, raw)  # typed by the pipeline's parameter types; the SDK coerces the same way
    _ensure_airflow(ws)
    with contextlib.redirect_stdout(io.StringIO()):  # the SDK's own "Submitted PipelineRun" line
        run = submit(raw)
    row = ws.store.get_pipeline_run(run.id) or {}
    rec: dict[str, Any] = {"run_id": run.id, "experiment": args.experiment, "submitted": what,
                           "dag_id": run.dag_id, "parameters": row.get("parameters") or {},
                           "ui_url": run.ui_url, "status": row.get("status") or "NotStarted"}
    print(f"Submitted run {run.id} of {what} in experiment {args.experiment}")
    if rec["parameters"]:
        print(f"  parameters : {json.dumps(rec['parameters'], sort_keys=True)}")
    print(f"  Airflow UI : {rec['ui_url'] or '-'}")
    print(f"  follow it  : mlpipe runs show {run.id}")
    if not args.wait:
        return 0, rec
    rec["status"] = run.wait_for_completion(show_output=True, raise_on_error=False)
    from airflow_mlpipe.runner import format_run

    print()
    print(format_run(run))
    print(f"Final status: {rec['status']}")
    return (0 if rec["status"] == "Finished" else 1), rec


def _cmd_pipelines_submit(args: argparse.Namespace) -> int:
    from airflow_mlpipe.sdk.published import ACTIVE, PublishedPipeline

    ws = _workspace()
    p = PublishedPipeline.get(ws, args.pipeline_id)
    if p.status != ACTIVE:  # before starting Airflow; the SDK checks it again
        raise UserErrorException(f"Published pipeline {p.id!r} ({p.name}) is {p.status}: enable it first "
                                 f"(mlpipe pipelines enable {p.id})")
    return _submit(args, ws, p.to_spec(), f"published pipeline {p.name} ({p.id})",
                   lambda params: p.submit(ws, args.experiment, pipeline_parameters=params))


def _cmd_endpoints_submit(args: argparse.Namespace) -> int:
    from airflow_mlpipe.sdk.published import ACTIVE

    ws = _workspace()
    ep = _get_endpoint(ws, args.endpoint)
    if ep.status != ACTIVE:
        raise UserErrorException(f"PipelineEndpoint {ep.name!r} is {ep.status}: Status must be Active to submit")
    version = ep.default_version if args.version is None else str(args.version)
    target = ep.get_pipeline(version)  # an unknown version fails here, naming the versions there are
    return _submit(args, ws, target.to_spec(), f"pipeline endpoint {ep.name} version {version} ({target.name})",
                   lambda params: ep.submit(args.experiment, pipeline_parameters=params, pipeline_version=version))


# ---------------------------------------------------------------------------------------------- schedules
def _cmd_schedules_list(args: argparse.Namespace) -> int:
    from airflow_mlpipe.sdk.schedule import Schedule

    records = [_schedule_record(s) for s in Schedule.list(_workspace(), active_only=not args.all)]
    if args.json:
        _emit_json(records)
        return 0
    for rec in records:
        rec["target"] = (f"endpoint {rec['pipeline_endpoint_id']}" if rec["pipeline_endpoint_id"]
                         else f"pipeline {rec['pipeline_id']}")
    print(_table(records, [("id", "id"), ("name", "name"), ("status", "status"), ("target", "runs"),
                           ("experiment", "experiment"), ("trigger", "trigger")],
                 "no schedules" + ("" if args.all else " (active ones; --all lists disabled ones too)")))
    return 0


def _get_schedule(ws: Any, schedule_id: str) -> Any:
    from airflow_mlpipe.sdk.schedule import Schedule

    return Schedule.get(ws, schedule_id)


# ---------------------------------------------------------------------------------------------- enable, disable
def _cmd_set_status(args: argparse.Namespace, what: str, id_arg: str, get: Callable[[Any, str], Any],
                    action: str) -> int:
    """``enable``/``disable`` of any group: look the object up, call its v1 method, print its new status."""
    obj = get(_workspace(), getattr(args, id_arg))
    getattr(obj, action)()
    print(f"{what} {obj.id} ({obj.name}) is {obj.status}")
    return 0


def _enable_disable_parsers(actions: Any, what: str, id_arg: str, get: Callable[[Any, str], Any]) -> None:
    """The ``enable`` and ``disable`` actions of a group whose objects ``get(ws, id)`` finds."""
    for action in ("enable", "disable"):
        p = actions.add_parser(action, help=f"{action} a {what[0].lower()}{what[1:]}")
        p.add_argument(id_arg, metavar="ID")
        p.set_defaults(func=functools.partial(_cmd_set_status, what=what, id_arg=id_arg, get=get, action=action))


# ---------------------------------------------------------------------------------------------- parser
def _group(sub: Any, name: str, help_text: str) -> Any:
    parser = sub.add_parser(name, help=help_text)
    actions = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")
    actions.required = True
    return actions


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document (nothing else) on stdout")


def _submit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, metavar="NAME", help="experiment the run is recorded in")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", default=[],
                   help="pipeline parameter value, typed by the pipeline's parameter types (repeatable)")
    p.add_argument("--wait", action="store_true", help="wait for the run; exit 1 unless it finished")
    _json_flag(p)


def add_parsers(sub: Any) -> None:
    """Register ``pipelines``, ``endpoints`` and ``schedules`` on the ``mlpipe`` sub-command parser."""
    pl = _group(sub, "pipelines", "list, show, submit, enable or disable published pipelines")
    p = pl.add_parser("list", help="list published pipelines (active ones unless --all)")
    p.add_argument("--all", action="store_true", help="include disabled pipelines")
    _json_flag(p)
    p.set_defaults(func=_cmd_pipelines_list)
    p = pl.add_parser("show", help="show one published pipeline with its parameters and steps")
    p.add_argument("pipeline_id", metavar="ID")
    _json_flag(p)
    p.set_defaults(func=_cmd_pipelines_show)
    p = pl.add_parser("submit", help="run a published pipeline")
    p.add_argument("pipeline_id", metavar="ID")
    _submit_flags(p)
    p.set_defaults(func=_cmd_pipelines_submit)
    _enable_disable_parsers(pl, "Published pipeline", "pipeline_id", _get_pipeline)

    ep = _group(sub, "endpoints", "list, show, submit pipeline endpoints or set their default version")
    p = ep.add_parser("list", help="list pipeline endpoints (active ones unless --all)")
    p.add_argument("--all", action="store_true", help="include disabled endpoints")
    _json_flag(p)
    p.set_defaults(func=_cmd_endpoints_list)
    p = ep.add_parser("show", help="show one pipeline endpoint with its versions")
    p.add_argument("endpoint", metavar="NAME_OR_ID")
    _json_flag(p)
    p.set_defaults(func=_cmd_endpoints_show)
    p = ep.add_parser("submit", help="run an endpoint's default version (or --version)")
    p.add_argument("endpoint", metavar="NAME_OR_ID")
    p.add_argument("--version", metavar="V", help="the endpoint version to run (default: its default version)")
    _submit_flags(p)
    p.set_defaults(func=_cmd_endpoints_submit)
    p = ep.add_parser("set-default", help="make VERSION the endpoint's default version")
    p.add_argument("endpoint", metavar="NAME_OR_ID")
    p.add_argument("version", metavar="VERSION")
    p.set_defaults(func=_cmd_endpoints_set_default)

    sc = _group(sub, "schedules", "list, enable or disable schedules of published pipelines")
    p = sc.add_parser("list", help="list schedules (active ones unless --all)")
    p.add_argument("--all", action="store_true", help="include disabled schedules")
    _json_flag(p)
    p.set_defaults(func=_cmd_schedules_list)
    _enable_disable_parsers(sc, "Schedule", "schedule_id", _get_schedule)
