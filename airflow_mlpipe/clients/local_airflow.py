"""The embedded Airflow of a workspace: SQLite + LocalExecutor, every component on 127.0.0.1.

Distributed mode: the workspace config may carry Airflow settings that replace the defaults, e.g. PostgreSQL
as the metadata database and the CeleryExecutor with a Redis broker::

    "airflow": {"settings": {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                             "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://…/airflow",
                             "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0"},
                "celery_queues": ["default", "cpu-cluster"], "celery_concurrency": 2}

With the CeleryExecutor, :func:`start` also runs ``airflow celery worker --skip-serve-logs -q <queues>`` (no
log server: every component shares the home's log folder). A non-SQLite metadata database is migrated on
every start (the marker file only stands for the home's own SQLite file).

We do not use ``airflow standalone`` (its log servers bind to all interfaces and its shutdown hangs); we start
``api-server``, ``scheduler --skip-serve-logs``, ``dag-processor`` and ``triggerer --skip-serve-logs`` ourselves
as detached processes (each in its own session / process group), with an environment built by
:func:`airflow_env`. Everything lives under ``ws.airflow_home``:

- ``airflow.db``                         the SQLite metadata database
- ``mlpipe-airflow.json``                the state file (url, port, pids, dags folder)
- ``mlpipe-secrets.json``                fernet key, api secret key and JWT secret (generated once, mode 0600)
- ``simple_auth_manager_passwords.json.generated``  the admin password (generated once)
- ``submitted/``                         where generated DAG files of submitted/published pipelines go
- ``logs/components/<name>.log``         stdout/stderr of each component; ``run/<name>.pid`` pid files

The launcher is split by job: :mod:`~airflow_mlpipe.clients.local_airflow_home` (the files above),
:mod:`~airflow_mlpipe.clients.local_airflow_env` (environment and command line of each component),
:mod:`~airflow_mlpipe.clients.local_airflow_processes` (starting and signalling processes),
:mod:`~airflow_mlpipe.clients.local_airflow_health` (health and readiness) and
:mod:`~airflow_mlpipe.clients.local_airflow_shutdown` (stopping the whole process tree). This module starts,
stops and finds the running Airflow, and is where callers import all of it from.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

from airflow_mlpipe.clients.local_airflow_env import (
    BUNDLE_CLASS,
    CELERY_WORKER,
    COMPONENTS,
    DEFAULT_CELERY_CONCURRENCY,
    DEFAULT_CELERY_QUEUE,
    SUBMITTED_BUNDLE,
    airflow_cmd,
    airflow_env,
    airflow_settings,
    celery_concurrency,
    celery_queues,
    celery_worker_args,
    celery_workers,
    is_celery,
    process_env,
)
from airflow_mlpipe.clients.local_airflow_health import fetch_health, wait_healthy
from airflow_mlpipe.clients.local_airflow_home import (
    DB_MARKER,
    DEFAULT_PORT,
    HOST,
    PASSWORDS_FILE,
    SECRETS_FILE,
    STATE_FILE,
    USERNAME,
    AirflowInfo,
    LocalAirflowError,
    admin_password,
    components_log_dir,
    default_dags_folder,
    ensure_password,
    home_lock,
    info_from_state,
    log_tail,
    private_opener,
    read_state,
    state_path,
    submitted_dags_folder,
    tighten_private_files,
)
from airflow_mlpipe.clients.local_airflow_processes import (
    COMPONENT_UMASK,
    airflow_process_options,
    free_port,
    group_alive,
    kill_pids,
    pid_is_ours,
    port_free,
    process_alive,
    spawn,
)
from airflow_mlpipe.clients.local_airflow_shutdown import StopReport, stop_processes
from airflow_mlpipe.data.workspace_location import ENV_STORE_URL, WorkspaceLocation

log = logging.getLogger(__name__)

# the names these had before the launcher was split (tests and scripts use them)
_free_port = free_port
_pid_alive = process_alive
_group_alive = group_alive
_airflow_cmd = airflow_cmd
_process_env = process_env


def status(ws: WorkspaceLocation, check_health: bool = True) -> AirflowInfo | None:
    """The running embedded Airflow of ``ws``, or None (not started, a component died, or api not answering).

    ``check_health=False`` skips the health request, for callers whose own requests tell (run polling).
    """
    state = read_state(ws)
    if not state or not state.get("pids"):
        return None
    if not all(process_alive(int(p)) and pid_is_ours(int(p), ws) for p in state["pids"].values()):
        return None
    if check_health and fetch_health(state["url"]) is None:
        return None
    return info_from_state(ws, state)


def _migrate(ws: WorkspaceLocation, env: dict[str, str]) -> None:
    from importlib.metadata import version

    airflow_version = version("apache-airflow")
    marker = ws.airflow_home / DB_MARKER
    db = ws.airflow_home / "airflow.db"
    sqlite_here = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") == f"sqlite:///{db}"
    tighten_private_files(ws)  # a home made before files were private is tightened on its next start
    if sqlite_here and db.is_file() and marker.is_file() and marker.read_text().strip() == airflow_version:
        return
    logfile = components_log_dir(ws) / "db-migrate.log"
    with open(logfile, "wb", opener=private_opener) as out:
        proc = subprocess.run(
            [*airflow_cmd(), "db", "migrate"], **airflow_process_options(ws, env, out), check=False
        )
    tighten_private_files(ws)  # airflow.cfg and airflow.db were just created by the migration
    if proc.returncode != 0:
        raise LocalAirflowError(f"'airflow db migrate' failed (exit {proc.returncode}):\n{log_tail(logfile)}")
    if sqlite_here:
        marker.write_text(airflow_version)


def start(
    ws: WorkspaceLocation,
    dags_folder: str | Path | None = None,
    port: int | None = None,
    wait: bool = True,
    timeout: float = 120,
) -> AirflowInfo:
    """Start the embedded Airflow of ``ws`` (idempotent: a healthy running one is returned as is)."""
    with home_lock(ws):
        current = status(ws)
        if current is not None:
            want_dags = str(Path(dags_folder).resolve()) if dags_folder else None
            if (want_dags is None or want_dags == current.dags_folder) and (port is None or port == current.port):
                return current
            log.info("restarting the embedded Airflow of %s with new settings", ws.home)
            stop_processes(ws, timeout=30)
        else:
            stop_processes(ws, timeout=15)  # leftovers of a half-dead instance

        if port is None:
            port = DEFAULT_PORT if port_free(DEFAULT_PORT) else free_port()
        elif not port_free(port):
            raise LocalAirflowError(f"port {port} on {HOST} is already in use")
        dags = Path(dags_folder).resolve() if dags_folder else default_dags_folder(ws)
        dags.mkdir(parents=True, exist_ok=True)
        password = ensure_password(ws)
        env = airflow_env(ws, dags_folder=dags, port=port)
        from airflow_mlpipe.clients.bundle_stubs import write_stub

        write_stub(submitted_dags_folder(ws))  # submitted and published pipelines, wherever the project is
        _migrate(ws, env)

        since = time.time()
        pids: dict[str, int] = {}
        try:
            pids["api-server"] = spawn(
                ws, "api-server", ["api-server", "--host", HOST, "--port", str(port), "--workers", "1"], env
            )
            pids["scheduler"] = spawn(ws, "scheduler", ["scheduler", "--skip-serve-logs"], env)
            pids["dag-processor"] = spawn(ws, "dag-processor", ["dag-processor"], env)
            pids["triggerer"] = spawn(ws, "triggerer", ["triggerer", "--skip-serve-logs"], env)
            if is_celery(env):
                for index in range(1, celery_workers(ws) + 1):
                    name = CELERY_WORKER if index == 1 else f"{CELERY_WORKER}-{index}"
                    pids[name] = spawn(ws, name, celery_worker_args(ws, env, index), env)
        except OSError as exc:
            kill_pids(list(pids.values()), timeout=10)
            raise LocalAirflowError(f"could not start Airflow: {exc}") from exc
        url = f"http://{HOST}:{port}"
        state = {
            "url": url,
            "port": port,
            "pids": pids,
            "dags_folder": str(dags),
            "submitted_folder": str(submitted_dags_folder(ws)),
            "started_at": since,
            "workspace_home": str(ws.home),
        }
        state_path(ws).write_text(json.dumps(state, indent=2))
        info = AirflowInfo(
            url=url, port=port, pids=pids, home=str(ws.airflow_home), dags_folder=str(dags),
            username=USERNAME, password=password,
        )
        if wait:
            try:
                wait_healthy(ws, info, timeout=timeout, since=since)
            except LocalAirflowError:
                stop_processes(ws, timeout=10)
                raise
        return info


def shutdown(ws: WorkspaceLocation, timeout: float = 30) -> StopReport:
    """Stop the embedded Airflow of ``ws`` and every process it started; returns what ended and how."""
    with home_lock(ws):
        return stop_processes(ws, timeout)


def stop(ws: WorkspaceLocation, timeout: float = 30) -> bool:
    """Stop the embedded Airflow of ``ws``; True if something was running."""
    return bool(shutdown(ws, timeout))


def last_url(ws: WorkspaceLocation) -> str | None:
    """The URL of the embedded Airflow as last started (it may not be running)."""
    state = read_state(ws) or {}
    return state.get("url")


#: how long a running embedded Airflow whose api-server is slow to answer (a busy machine) is waited for before
#: it is restarted
SLOW_HEALTH_GRACE = 60.0


def ensure_running(ws: WorkspaceLocation) -> AirflowInfo:
    """The running embedded Airflow, started if needed. Components that are all alive but whose api-server does
    not answer its health check in time are waited for, not restarted (a restart would cost every run going)."""
    info = status(ws)
    if info is not None:
        return info
    alive = status(ws, check_health=False)
    if alive is not None:
        deadline = time.monotonic() + SLOW_HEALTH_GRACE
        while time.monotonic() < deadline:
            if fetch_health(alive.url) is not None:
                return alive
            time.sleep(1.0)
    return start(ws)


__all__ = [
    "BUNDLE_CLASS", "CELERY_WORKER", "COMPONENTS", "COMPONENT_UMASK", "DB_MARKER", "DEFAULT_CELERY_CONCURRENCY",
    "DEFAULT_CELERY_QUEUE", "DEFAULT_PORT", "ENV_STORE_URL", "HOST", "PASSWORDS_FILE", "SECRETS_FILE",
    "SLOW_HEALTH_GRACE", "STATE_FILE", "SUBMITTED_BUNDLE", "USERNAME", "AirflowInfo", "LocalAirflowError",
    "StopReport", "admin_password", "airflow_env", "airflow_settings", "celery_concurrency", "celery_queues",
    "celery_worker_args", "celery_workers", "ensure_running", "is_celery", "last_url", "shutdown", "start",
    "status", "stop", "submitted_dags_folder", "wait_healthy",
]
