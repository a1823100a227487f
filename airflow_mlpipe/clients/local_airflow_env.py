"""What each embedded Airflow component runs with: its environment, its command line, Celery settings.

:func:`airflow_env` is the ``AIRFLOW_HOME``/``AIRFLOW__*`` environment of a workspace's Airflow (SQLite and
the LocalExecutor by default; ``airflow.settings`` of the workspace config replaces any of it, e.g. PostgreSQL
and the CeleryExecutor). :func:`process_env` is what a component process gets: the caller's environment
without any inherited Airflow settings, plus that.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from airflow_mlpipe.clients.local_airflow_home import (
    DEFAULT_PORT,
    HOST,
    USERNAME,
    LocalAirflowError,
    airflow_secrets,
    default_dags_folder,
    passwords_path,
    private_airflow_home,
    submitted_dags_folder,
)
from airflow_mlpipe.data.workspace_location import (
    ENV_STORE_URL,
    ENV_WORKSPACE_CONFIG,
    ENV_WORKSPACE_HOME,
    WorkspaceLocation,
)

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CELERY_WORKER = "celery-worker"
DEFAULT_CELERY_QUEUE = "default"
DEFAULT_CELERY_CONCURRENCY = 2
BUNDLE_CLASS = "airflow.dag_processing.bundles.local.LocalDagBundle"
SUBMITTED_BUNDLE = "mlpipe-submitted"


def airflow_env(
    ws: WorkspaceLocation, dags_folder: str | Path | None = None, port: int | None = None
) -> dict[str, str]:
    """The ``AIRFLOW_HOME``/``AIRFLOW__*`` environment of the embedded Airflow of ``ws`` (only our keys)."""
    home = private_airflow_home(ws)
    port = int(port or DEFAULT_PORT)
    dags = Path(dags_folder).resolve() if dags_folder else default_dags_folder(ws)
    base_url = f"http://{HOST}:{port}"
    keys = airflow_secrets(ws)
    bundles = [
        {"name": "dags-folder", "classpath": BUNDLE_CLASS, "kwargs": {"path": str(dags)}},
        {
            "name": SUBMITTED_BUNDLE,
            "classpath": BUNDLE_CLASS,
            "kwargs": {"path": str(submitted_dags_folder(ws)), "refresh_interval": 2},
        },
    ]
    (home / "plugins").mkdir(exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        # --- core
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # LocalExecutor forks one worker per slot at scheduler start (~150 MB each): keep it small
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_path(ws)),
        # --- scheduler latency (default 1 s idle sleep costs ~1 s per sequential task)
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1",
        # --- dag processor: fast pickup of new/changed DAG files
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
        # --- api server, loopback only
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        # --- logging
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(home / "logs" / "dag_processor"),
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
        # --- DAG files and tasks reopen the same workspace
        ENV_WORKSPACE_HOME: str(ws.home),
    }
    if ws.config_path and ws.config_path.is_file():
        env[ENV_WORKSPACE_CONFIG] = str(ws.config_path)
    if ws.store_url != _default_store_url(ws):
        env[ENV_STORE_URL] = ws.store_url
    env.update(airflow_settings(ws))
    if is_celery(env):
        env.setdefault("AIRFLOW__CELERY__WORKER_CONCURRENCY", str(celery_concurrency(ws)))
    return env


def _default_store_url(ws: WorkspaceLocation) -> str:
    return f"sqlite:///{ws.home / 'mlpipe.db'}"


def _launcher_config(ws: WorkspaceLocation) -> dict[str, Any]:
    cfg = ws.config.get("airflow") or {}
    return cfg if isinstance(cfg, dict) else {}


def airflow_settings(ws: WorkspaceLocation) -> dict[str, str]:
    """``airflow.settings`` of the workspace config: ``AIRFLOW__*`` variables that replace our defaults."""
    settings = _launcher_config(ws).get("settings") or {}
    if not isinstance(settings, dict):
        raise LocalAirflowError(
            f"workspace config {ws.config_path or ws.home}: 'airflow.settings' must be an object of AIRFLOW__* variables, "
            f"got {type(settings).__name__}"
        )
    out: dict[str, str] = {}
    for key, value in settings.items():
        if not isinstance(key, str) or not (key.startswith("AIRFLOW__") or key == "AIRFLOW_CONFIG"):
            raise LocalAirflowError(
                f"workspace config {ws.config_path or ws.home}: 'airflow.settings' key {key!r} is not an AIRFLOW__* variable"
            )
        if value is None:
            continue
        out[key] = str(value) if not isinstance(value, (dict, list)) else json.dumps(value)
    return out


def is_celery(env: dict[str, str]) -> bool:
    """True if the executor setting names the CeleryExecutor (alone, by class path, or in a list)."""
    executors = env.get("AIRFLOW__CORE__EXECUTOR", "")
    return any(e.strip().split(".")[-1].split(":")[-1] == "CeleryExecutor" for e in executors.split(","))


def celery_queues(ws: WorkspaceLocation, env: dict[str, str] | None = None) -> list[str]:
    """The queues the worker consumes: ``airflow.celery_queues`` (plus the default queue, always)."""
    default = (env or {}).get("AIRFLOW__OPERATORS__DEFAULT_QUEUE") or DEFAULT_CELERY_QUEUE
    raw = _launcher_config(ws).get("celery_queues") or [default]
    if isinstance(raw, str):
        raw = raw.split(",")
    queues = [str(q).strip() for q in raw if str(q).strip()]
    if default not in queues:  # steps without a compute target go to the default queue
        queues.insert(0, default)
    return list(dict.fromkeys(queues))


def celery_concurrency(ws: WorkspaceLocation) -> int:
    value = _launcher_config(ws).get("celery_concurrency") or DEFAULT_CELERY_CONCURRENCY
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise LocalAirflowError(
            f"workspace config: 'airflow.celery_concurrency' must be a positive integer, got {value!r}"
        )
    return number


def celery_workers(ws: WorkspaceLocation) -> int:
    """``airflow.celery_workers``: how many Celery workers to run on this host (default 1)."""
    value = _launcher_config(ws).get("celery_workers", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LocalAirflowError(
            f"workspace config: 'airflow.celery_workers' must be a positive integer, got {value!r}"
        )
    return value


def celery_worker_args(ws: WorkspaceLocation, env: dict[str, str], index: int = 1) -> list[str]:
    """``celery worker`` arguments: our queues and concurrency, no log server, a name unique to this home
    (and to the worker's ``index`` when ``airflow.celery_workers`` asks for several on this host).

    Without mingle and gossip: Redis pub/sub spans all its databases, so workers of other workspaces on the
    same Redis server would otherwise sync state with ours (and mingle costs a second at start).
    """
    digest = hashlib.sha256(str(ws.airflow_home.resolve()).encode()).hexdigest()[:8]
    name = f"mlpipe-{digest}" if index == 1 else f"mlpipe-{digest}-{index}"
    return [
        "celery", "worker", "--skip-serve-logs", "--without-mingle", "--without-gossip",
        "-q", ",".join(celery_queues(ws, env)),
        "-c", env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY") or str(celery_concurrency(ws)),
        "-H", f"{name}@{socket.gethostname()}",
    ]


def process_env(env: dict[str, str]) -> dict[str, str]:
    """os.environ without any inherited Airflow settings (e.g. a test's AIRFLOW_HOME), plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not (k == "AIRFLOW_HOME" or k.startswith("AIRFLOW__") or k == "AIRFLOW_CONFIG")
        and k not in (ENV_WORKSPACE_HOME, ENV_WORKSPACE_CONFIG, ENV_STORE_URL)
    }
    base.update(env)
    base.setdefault("PYTHONUNBUFFERED", "1")
    if base.get("PYTHONDONTWRITEBYTECODE") and not base.get("PYTHONPYCACHEPREFIX"):
        # Without .pyc files every component compiles Airflow and its deps at start (6.5 s vs 2.8 s of
        # imports per process, measured). Keep the bytecode in a user cache, not in the environment.
        base.pop("PYTHONDONTWRITEBYTECODE")
        base["PYTHONPYCACHEPREFIX"] = str(_pycache_dir())
    return base


def _pycache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "airflow-mlpipe" / "pycache"


def airflow_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "airflow"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("airflow")
    return [found] if found else [sys.executable, "-m", "airflow"]
