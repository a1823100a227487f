"""The emulator's HTTP server on 127.0.0.1: routes, parameters, authentication and error bodies.

Requests look as they do against a workspace: ``/api/<version>/<endpoint>`` with a bearer token (or basic
auth). GET parameters are read from the query string and, as the provider's async client sends them, from a
JSON body. Errors are ``{"error_code": ..., "message": ...}`` with Databricks' status codes. When the server
was started with a token, every request must carry it (403 otherwise); without one any token is accepted.
``GET /`` is a small page of recent runs (the target of ``run_page_url``); ``GET /health`` needs no token.
"""

from __future__ import annotations

import base64
import html
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_mlpipe.emulators.databricks.api_files import DbfsApi, WorkspaceApi
from airflow_mlpipe.emulators.databricks.api_jobs import JobsApi
from airflow_mlpipe.emulators.databricks.clusters import ClusterPool
from airflow_mlpipe.emulators.databricks.dbfs_paths import DbfsRoot
from airflow_mlpipe.emulators.databricks.runs import RunManager
from airflow_mlpipe.emulators.databricks.state_db import StateDb
from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceError, WorkspaceStore

JOBS_VERSIONS = ("2.0", "2.1", "2.2")
FILE_VERSIONS = ("2.0",)
CLUSTER_VERSIONS = ("2.0", "2.1")


class Emulator:
    """Everything behind the HTTP server: state, clusters, runs and the API handlers."""

    def __init__(self, home: Path, token: str | None, base_url: str) -> None:
        self.home = Path(home).resolve()
        self.token = token
        self.db = StateDb(self.home / "state.sqlite")
        self.lost_runs = self.db.mark_in_flight_lost()
        self.pool = ClusterPool(self.home)
        self.runs = RunManager(self.db, self.pool, self.home)
        self.jobs = JobsApi(self.db, self.runs, self.pool, self.home, base_url)
        self.dbfs = DbfsApi(DbfsRoot(self.home / "dbfs"), self.home / "dbfs-staging")
        self.workspace = WorkspaceApi(WorkspaceStore(self.home / "workspace"))
        jobs, dbfs, ws = self.jobs, self.dbfs, self.workspace
        # (method, endpoint) -> (versions, handler(params, version))
        self.routes: dict[tuple[str, str], tuple[tuple[str, ...], Any]] = {
            ("POST", "jobs/runs/submit"): (JOBS_VERSIONS, lambda p, v: jobs.submit(p)),
            ("GET", "jobs/runs/get"): (JOBS_VERSIONS, jobs.get),
            ("GET", "jobs/runs/get-output"): (JOBS_VERSIONS, jobs.get_output),
            ("POST", "jobs/runs/cancel"): (JOBS_VERSIONS, lambda p, v: jobs.cancel(p)),
            ("GET", "clusters/get"): (CLUSTER_VERSIONS, lambda p, v: jobs.cluster_get(p)),
            ("POST", "clusters/start"): (CLUSTER_VERSIONS, lambda p, v: jobs.cluster_start(p)),
            ("GET", "clusters/list"): (CLUSTER_VERSIONS, lambda p, v: jobs.cluster_list()),
            ("POST", "dbfs/put"): (FILE_VERSIONS, lambda p, v: dbfs.put(p)),
            ("POST", "dbfs/create"): (FILE_VERSIONS, lambda p, v: dbfs.create(p)),
            ("POST", "dbfs/add-block"): (FILE_VERSIONS, lambda p, v: dbfs.add_block(p)),
            ("POST", "dbfs/close"): (FILE_VERSIONS, lambda p, v: dbfs.close(p)),
            ("GET", "dbfs/get-status"): (FILE_VERSIONS, lambda p, v: dbfs.get_status(p)),
            ("GET", "dbfs/read"): (FILE_VERSIONS, lambda p, v: dbfs.read(p)),
            ("GET", "dbfs/list"): (FILE_VERSIONS, lambda p, v: dbfs.list(p)),
            ("POST", "dbfs/delete"): (FILE_VERSIONS, lambda p, v: dbfs.delete(p)),
            ("POST", "dbfs/mkdirs"): (FILE_VERSIONS, lambda p, v: dbfs.mkdirs(p)),
            ("POST", "dbfs/move"): (FILE_VERSIONS, lambda p, v: dbfs.move(p)),
            ("POST", "workspace/import"): (FILE_VERSIONS, lambda p, v: ws.import_(p)),
            ("GET", "workspace/export"): (FILE_VERSIONS, lambda p, v: ws.export(p)),
            ("GET", "workspace/get-status"): (FILE_VERSIONS, lambda p, v: ws.get_status(p)),
            ("GET", "workspace/list"): (FILE_VERSIONS, lambda p, v: ws.list(p)),
            ("POST", "workspace/mkdirs"): (FILE_VERSIONS, lambda p, v: ws.mkdirs(p)),
            ("POST", "workspace/delete"): (FILE_VERSIONS, lambda p, v: ws.delete(p)),
        }

    def authorized(self, header: str | None) -> int | None:
        """None when the request may proceed, else the HTTP status to answer with."""
        if not header:
            return 401
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            supplied = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                supplied = base64.b64decode(credentials.strip()).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return 401
        else:
            return 401
        if not supplied:
            return 401
        if self.token and supplied != self.token:
            return 403
        return None

    def runs_page(self) -> str:
        rows = []
        for run in self.db.recent_runs():
            anchor = f"job/{run['job_id']}/run/{run['run_id']}"
            rows.append(f"<tr id='{anchor}'><td>{run['run_id']}</td><td>{html.escape(run['run_name'] or '')}</td>"
                        f"<td>{run['life_cycle_state']}</td><td>{run['result_state'] or ''}</td>"
                        f"<td>{html.escape(run['state_message'] or '')}</td></tr>")
        return ("<!doctype html><title>Databricks emulator</title><h1>Databricks emulator: runs</h1>"
                "<table border=1><tr><th>run</th><th>name</th><th>life cycle</th><th>result</th><th>message</th>"
                "</tr>" + "".join(rows) + "</table>")


class _Handler(BaseHTTPRequestHandler):
    server_version = "DatabricksEmulator/1.0"
    emulator: Emulator

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data).encode())

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error_code": code, "message": message})

    def _params(self, query: str) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            raw = self.rfile.read(length)
            if raw.strip():
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("the JSON body must be an object")
                params.update(body)
        return params

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        if method == "GET" and url.path in ("/", "/index.html"):
            return self._send(200, self.emulator.runs_page().encode(), "text/html; charset=utf-8")
        if method == "GET" and url.path == "/health":
            return self._json(200, {"status": "ok"})
        denied = self.emulator.authorized(self.headers.get("Authorization"))
        if denied:
            return self._error(denied, "UNAUTHENTICATED" if denied == 401 else "PERMISSION_DENIED",
                               "Invalid access token." if denied == 403 else "No access token was given.")
        parts = url.path.strip("/").split("/", 2)
        if len(parts) < 3 or parts[0] != "api":
            return self._error(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {url.path}'")
        version, endpoint = parts[1], parts[2]
        route = self.emulator.routes.get((method, endpoint))
        if route is None or version not in route[0]:
            return self._error(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {url.path}'")
        try:
            params = self._params(url.query)
        except (ValueError, UnicodeDecodeError) as err:
            return self._error(400, "MALFORMED_REQUEST", f"Invalid JSON given in the body of the request: {err}")
        try:
            result = route[1](params, version)
        except WorkspaceError as err:
            return self._error(err.status, err.error_code, err.message)
        except Exception as err:  # noqa: BLE001 - reported like Databricks' own internal errors
            return self._error(500, "INTERNAL_ERROR", f"{type(err).__name__}: {err}")
        if isinstance(result, tuple):  # workspace/export: (json, raw bytes for direct_download)
            data, raw = result
            if raw is not None:
                return self._send(200, raw, "application/octet-stream")
            result = data
        self._json(200, result)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


class EmulatorHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(home: Path, host: str = "127.0.0.1", port: int = 0,
                token: str | None = None) -> tuple[EmulatorHttpServer, Emulator]:
    """A bound server (port 0 picks a free port) and its emulator; call ``serve_forever`` to serve."""
    handler = type("EmulatorHandler", (_Handler,), {})
    server = EmulatorHttpServer((host, port), handler)
    emulator = Emulator(home, token, f"http://{host}:{server.server_address[1]}")
    handler.emulator = emulator
    return server, emulator

