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
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from airflow_mlpipe.runtime.processes import pid_alive
from airflow_mlpipe.workspace import ENV_WORKSPACE_CONFIG, ENV_WORKSPACE_HOME, Workspace, make_private_dir

ENV_STORE_URL = "MLPIPE_STORE_URL"

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
HOST = "127.0.0.1"
USERNAME = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CELERY_WORKER = "celery-worker"
DEFAULT_CELERY_QUEUE = "default"
DEFAULT_CELERY_CONCURRENCY = 2
STATE_FILE = "mlpipe-airflow.json"
SECRETS_FILE = "mlpipe-secrets.json"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
DB_MARKER = ".mlpipe-db-migrated"
BUNDLE_CLASS = "airflow.dag_processing.bundles.local.LocalDagBundle"
SUBMITTED_BUNDLE = "mlpipe-submitted"
#: components create owner-only files (airflow.db, logs, dag-processor logs), as Airflow's own ``daemon_umask``
COMPONENT_UMASK = 0o077

# Popen objects of the components this process started (kept so they can be reaped, no zombies / warnings)
_CHILDREN: dict[int, subprocess.Popen] = {}


class LocalAirflowError(RuntimeError):
    """The embedded Airflow could not be started or stopped."""


@dataclass
class AirflowInfo:
    url: str
    port: int
    pids: dict[str, int]
    home: str
    dags_folder: str
    username: str = USERNAME
    password: str = field(default="", repr=False)


# ---------------------------------------------------------------------------------------------- paths, secrets
def submitted_dags_folder(ws: Workspace) -> Path:
    folder = ws.airflow_home / "submitted"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _state_path(ws: Workspace) -> Path:
    return ws.airflow_home / STATE_FILE


def _passwords_path(ws: Workspace) -> Path:
    return ws.airflow_home / PASSWORDS_FILE


def _components_log_dir(ws: Workspace) -> Path:
    d = ws.airflow_home / "logs" / "components"
    make_private_dir(d.parent)
    make_private_dir(d)
    return d


def _private_opener(path: str, flags: int) -> int:
    """``open(..., opener=)`` that creates the file owner-only (0600)."""
    return os.open(path, flags, 0o600)


def _private_airflow_home(ws: Workspace) -> Path:
    """The Airflow home, owner-only (0700): it holds airflow.cfg, the DB, the secrets and the logs."""
    make_private_dir(ws.airflow_home)
    return ws.airflow_home


def _tighten_private_files(ws: Workspace) -> None:
    """airflow.cfg, the SQLite DB (and its journal files) and the secrets files: owner-only (0600)."""
    home = ws.airflow_home
    names = ("airflow.cfg", "airflow.db", "airflow.db-wal", "airflow.db-shm", "airflow.db-journal", SECRETS_FILE,
             PASSWORDS_FILE)
    for path in (home / n for n in names):
        with contextlib.suppress(OSError):  # absent, or not ours
            if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
                path.chmod(0o600)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _secrets(ws: Workspace) -> dict[str, str]:
    """Fernet key, api secret key and JWT secret: generated once and kept in the home (tokens survive restarts)."""
    path = ws.airflow_home / SECRETS_FILE
    if path.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            data = json.loads(path.read_text())
            if all(data.get(k) for k in ("fernet_key", "secret_key", "jwt_secret")):
                return data
    _private_airflow_home(ws)
    data = {
        "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "secret_key": secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(48),
    }
    _write_private(path, json.dumps(data))
    return data


def _ensure_password(ws: Workspace) -> str:
    """Pre-generate the admin password so it is known before the api-server prints it."""
    path = _passwords_path(ws)
    data: dict[str, str] = {}
    if path.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            data = json.loads(path.read_text() or "{}")
    if not data.get(USERNAME):
        data[USERNAME] = secrets.token_urlsafe(12)
        _private_airflow_home(ws)
        _write_private(path, json.dumps(data) + "\n")
    return data[USERNAME]


def admin_password(ws: Workspace) -> str:
    """The generated password of the ``admin`` user of the embedded Airflow ("" if never started)."""
    path = _passwords_path(ws)
    try:
        return str(json.loads(path.read_text()).get(USERNAME, ""))
    except (OSError, json.JSONDecodeError):
        return ""


def _default_dags_folder(ws: Workspace) -> Path:
    cwd_dags = Path.cwd() / "dags"
    if cwd_dags.is_dir():
        return cwd_dags.resolve()
    folder = ws.airflow_home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------------------------------------- environment
def airflow_env(ws: Workspace, dags_folder: str | Path | None = None, port: int | None = None) -> dict[str, str]:
    """The ``AIRFLOW_HOME``/``AIRFLOW__*`` environment of the embedded Airflow of ``ws`` (only our keys)."""
    home = _private_airflow_home(ws)
    port = int(port or DEFAULT_PORT)
    dags = Path(dags_folder).resolve() if dags_folder else _default_dags_folder(ws)
    base_url = f"http://{HOST}:{port}"
    keys = _secrets(ws)
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
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(_passwords_path(ws)),
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


def _default_store_url(ws: Workspace) -> str:
    return f"sqlite:///{ws.home / 'mlpipe.db'}"


def _launcher_config(ws: Workspace) -> dict[str, Any]:
    cfg = ws.config.get("airflow") or {}
    return cfg if isinstance(cfg, dict) else {}


def airflow_settings(ws: Workspace) -> dict[str, str]:
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


def celery_queues(ws: Workspace, env: dict[str, str] | None = None) -> list[str]:
    """The queues the worker consumes: ``airflow.celery_queues`` (plus the default queue, always)."""
    default = (env or {}).get("AIRFLOW__OPERATORS__DEFAULT_QUEUE") or DEFAULT_CELERY_QUEUE
    raw = _launcher_config(ws).get("celery_queues") or [default]
    if isinstance(raw, str):
        raw = raw.split(",")
    queues = [str(q).strip() for q in raw if str(q).strip()]
    if default not in queues:  # steps without a compute target go to the default queue
        queues.insert(0, default)
    return list(dict.fromkeys(queues))


def celery_concurrency(ws: Workspace) -> int:
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


def _process_env(env: dict[str, str]) -> dict[str, str]:
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


def _airflow_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "airflow"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("airflow")
    return [found] if found else [sys.executable, "-m", "airflow"]


# ---------------------------------------------------------------------------------------------- processes
def _pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)
            return False
        return True
    return pid_alive(pid)


def _pid_is_ours(pid: int, ws: Workspace) -> bool:
    """True if ``pid`` is an airflow process of this workspace (guards against recycled pids).

    Components run with cwd = the airflow home (their environ may be overwritten by setproctitle). Celery
    retitles its worker ``[celeryd: <name>:MainProcess] …``, without "airflow" in it.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return _pid_alive(pid)
    if b"airflow" not in cmdline and not cmdline.startswith(b"[celeryd: "):
        return False
    if Path(cwd) == ws.airflow_home.resolve():
        return True
    try:
        environ = b"\0" + Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"\0AIRFLOW_HOME={ws.airflow_home}\0".encode() in environ


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # only zombies left?
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal(pid: int, sig: int, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _reap(pids: list[int]) -> None:
    for pid in pids:
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            _CHILDREN.pop(pid, None)


def _wait_gone(pids: list[int], timeout: float, groups: bool = False) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        _reap(pids)
        alive = [p for p in pids if (_group_alive(p) if groups else _pid_alive(p))]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.2)


def _kill_pids(pids: list[int], timeout: float = 30) -> None:
    """SIGTERM, SIGTERM again (the scheduler wants a second one), then SIGKILL the process groups."""
    pids = [p for p in pids if _pid_alive(p)]
    step = max(timeout / 3, 1.0)
    for p in pids:
        _signal(p, signal.SIGTERM)
    alive = _wait_gone(pids, step)
    for p in alive:
        _signal(p, signal.SIGTERM)
    alive = _wait_gone(alive, step)
    for p in alive:
        _signal(p, signal.SIGKILL, group=True)
        _signal(p, signal.SIGKILL)
    _wait_gone(alive, step)
    # stragglers in the process groups (LocalExecutor workers, task supervisors, uvicorn workers)
    for pg in pids:
        if _group_alive(pg):
            _signal(pg, signal.SIGTERM, group=True)
    left = _wait_gone(pids, 3, groups=True)
    for pg in left:
        _signal(pg, signal.SIGKILL, group=True)
    _wait_gone(left, 5, groups=True)


@contextlib.contextmanager
def _lock(ws: Workspace) -> Iterator[None]:
    ws.airflow_home.mkdir(parents=True, exist_ok=True)
    with open(ws.airflow_home / "mlpipe-airflow.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _read_state(ws: Workspace) -> dict[str, Any] | None:
    try:
        data = json.loads(_state_path(ws).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _info_from_state(ws: Workspace, state: dict[str, Any]) -> AirflowInfo:
    return AirflowInfo(
        url=state["url"],
        port=int(state["port"]),
        pids={k: int(v) for k, v in state.get("pids", {}).items()},
        home=str(ws.airflow_home),
        dags_folder=state.get("dags_folder", ""),
        username=USERNAME,
        password=admin_password(ws),
    )


def _health(url: str, timeout: float = 3.0) -> dict[str, Any] | None:
    try:
        resp = httpx.get(f"{url}/api/v2/monitor/health", timeout=timeout)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _component_healthy(health: dict[str, Any], name: str, since: float | None) -> bool:
    part = health.get(name) or {}
    if part.get("status") != "healthy":
        return False
    if since is None:
        return True
    beat = part.get(f"latest_{name}_heartbeat")
    if not beat:
        return False
    try:
        return datetime.fromisoformat(str(beat).replace("Z", "+00:00")).timestamp() >= since - 1
    except ValueError:
        return True


def _is_healthy(health: dict[str, Any] | None, since: float | None = None) -> bool:
    return bool(health) and all(_component_healthy(health, n, since) for n in ("scheduler", "dag_processor"))


def status(ws: Workspace, check_health: bool = True) -> AirflowInfo | None:
    """The running embedded Airflow of ``ws``, or None (not started, a component died, or api not answering).

    ``check_health=False`` skips the health request, for callers whose own requests tell (run polling).
    """
    state = _read_state(ws)
    if not state or not state.get("pids"):
        return None
    if not all(_pid_alive(int(p)) and _pid_is_ours(int(p), ws) for p in state["pids"].values()):
        return None
    if check_health and _health(state["url"]) is None:
        return None
    return _info_from_state(ws, state)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _migrate(ws: Workspace, env: dict[str, str]) -> None:
    from importlib.metadata import version

    airflow_version = version("apache-airflow")
    marker = ws.airflow_home / DB_MARKER
    db = ws.airflow_home / "airflow.db"
    sqlite_here = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") == f"sqlite:///{db}"
    _tighten_private_files(ws)  # a home made before files were private is tightened on its next start
    if sqlite_here and db.is_file() and marker.is_file() and marker.read_text().strip() == airflow_version:
        return
    logfile = _components_log_dir(ws) / "db-migrate.log"
    with open(logfile, "wb", opener=_private_opener) as out:
        proc = subprocess.run(
            [*_airflow_cmd(), "db", "migrate"],
            env=_process_env(env),
            cwd=ws.airflow_home,
            umask=COMPONENT_UMASK,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    _tighten_private_files(ws)  # airflow.cfg and airflow.db were just created by the migration
    if proc.returncode != 0:
        raise LocalAirflowError(f"'airflow db migrate' failed (exit {proc.returncode}):\n{_tail(logfile)}")
    if sqlite_here:
        marker.write_text(airflow_version)


def _spawn(ws: Workspace, name: str, args: list[str], env: dict[str, str]) -> int:
    logdir = _components_log_dir(ws)
    rundir = ws.airflow_home / "run"
    rundir.mkdir(exist_ok=True)
    with open(logdir / f"{name}.log", "ab", opener=_private_opener) as out:
        out.write(f"\n===== {datetime.now().isoformat()} starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [*_airflow_cmd(), *args],
            env=_process_env(env),
            cwd=ws.airflow_home,
            umask=COMPONENT_UMASK,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own session + process group: detached, and killable as a group
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    (rundir / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def celery_worker_args(ws: Workspace, env: dict[str, str], index: int = 1) -> list[str]:
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


def celery_workers(ws: Workspace) -> int:
    """``airflow.celery_workers``: how many Celery workers to run on this host (default 1)."""
    value = _launcher_config(ws).get("celery_workers", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LocalAirflowError(
            f"workspace config: 'airflow.celery_workers' must be a positive integer, got {value!r}"
        )
    return value


def wait_healthy(ws: Workspace, info: AirflowInfo, timeout: float = 120, since: float | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        dead = [n for n, p in info.pids.items() if not _pid_alive(p)]
        if dead:
            logs = "\n".join(
                f"--- {n}:\n{_tail(_components_log_dir(ws) / f'{n}.log')}" for n in dead
            )
            raise LocalAirflowError(f"Airflow component(s) {', '.join(dead)} exited during start-up:\n{logs}")
        last = _health(info.url, timeout=2)
        if _is_healthy(last, since):
            return
        time.sleep(0.5)
    raise LocalAirflowError(
        f"Airflow at {info.url} did not become healthy within {timeout:.0f}s (last health: {last}); "
        f"component logs are in {_components_log_dir(ws)}"
    )


def start(
    ws: Workspace,
    dags_folder: str | Path | None = None,
    port: int | None = None,
    wait: bool = True,
    timeout: float = 120,
) -> AirflowInfo:
    """Start the embedded Airflow of ``ws`` (idempotent: a healthy running one is returned as is)."""
    with _lock(ws):
        current = status(ws)
        if current is not None:
            want_dags = str(Path(dags_folder).resolve()) if dags_folder else None
            if (want_dags is None or want_dags == current.dags_folder) and (port is None or port == current.port):
                return current
            log.info("restarting the embedded Airflow of %s with new settings", ws.home)
            _stop_locked(ws, timeout=30)
        else:
            _stop_locked(ws, timeout=15)  # leftovers of a half-dead instance

        if port is None:
            port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else _free_port()
        elif not _port_free(port):
            raise LocalAirflowError(f"port {port} on {HOST} is already in use")
        dags = Path(dags_folder).resolve() if dags_folder else _default_dags_folder(ws)
        dags.mkdir(parents=True, exist_ok=True)
        password = _ensure_password(ws)
        env = airflow_env(ws, dags_folder=dags, port=port)
        from airflow_mlpipe.compiler.factory import write_stub

        write_stub(submitted_dags_folder(ws))  # submitted and published pipelines, wherever the project is
        _migrate(ws, env)

        since = time.time()
        pids: dict[str, int] = {}
        try:
            pids["api-server"] = _spawn(
                ws, "api-server", ["api-server", "--host", HOST, "--port", str(port), "--workers", "1"], env
            )
            pids["scheduler"] = _spawn(ws, "scheduler", ["scheduler", "--skip-serve-logs"], env)
            pids["dag-processor"] = _spawn(ws, "dag-processor", ["dag-processor"], env)
            pids["triggerer"] = _spawn(ws, "triggerer", ["triggerer", "--skip-serve-logs"], env)
            if is_celery(env):
                for index in range(1, celery_workers(ws) + 1):
                    name = CELERY_WORKER if index == 1 else f"{CELERY_WORKER}-{index}"
                    pids[name] = _spawn(ws, name, celery_worker_args(ws, env, index), env)
        except OSError as exc:
            _kill_pids(list(pids.values()), timeout=10)
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
        _state_path(ws).write_text(json.dumps(state, indent=2))
        info = AirflowInfo(
            url=url, port=port, pids=pids, home=str(ws.airflow_home), dags_folder=str(dags),
            username=USERNAME, password=password,
        )
        if wait:
            try:
                wait_healthy(ws, info, timeout=timeout, since=since)
            except LocalAirflowError:
                _stop_locked(ws, timeout=10)
                raise
        return info


@dataclass
class StopReport:
    """What a stop found and how each process ended (``mlpipe airflow stop`` prints it). Truthy if anything
    of this Airflow was running."""

    components: dict[str, int] = field(default_factory=dict)
    #: pid -> (what it was, how it ended: "exited", "exited after SIGTERM", "killed (SIGKILL)")
    ended: dict[int, tuple[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.components or self.ended)

    def lines(self) -> list[str]:
        return [f"  pid {pid:<8} {what}: {how}" for pid, (what, how) in sorted(self.ended.items())]


def _component_pids(ws: Workspace) -> dict[str, int]:
    """Components named in the state file and the pid files (those still alive and ours)."""
    found: dict[str, int] = {}
    state = _read_state(ws) or {}
    for name, pid in (state.get("pids") or {}).items():
        found[str(name)] = int(pid)
    rundir = ws.airflow_home / "run"
    if rundir.is_dir():
        for f in rundir.glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                found.setdefault(f.stem, int(f.read_text().strip()))
            f.unlink(missing_ok=True)
    return {n: p for n, p in found.items() if _pid_alive(p) and _pid_is_ours(p, ws)}


def _own_lineage() -> set[int]:
    """This process and its ancestors: never signalled, whatever their environment says."""
    pids = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids.update(p.pid for p in psutil.Process().parents())
    return pids


def _marked_as_ours(proc: psutil.Process, ws: Workspace, groups: set[int]) -> bool:
    """A process of this Airflow that is no longer (or never was) a descendant of a component: a member of a
    component's process group, or an airflow process / step script with this AIRFLOW_HOME (orphans)."""
    try:
        if os.getpgid(proc.pid) in groups:
            return True
        env = proc.environ()
    except (psutil.Error, OSError):
        return False
    if env.get("AIRFLOW_HOME") != str(ws.airflow_home):
        return False
    if _STEP_MARKER in env:
        return True
    with contextlib.suppress(psutil.Error):
        cmdline = " ".join(proc.cmdline())
        return "airflow" in cmdline or cmdline.startswith("[celeryd: ")
    return False


_STEP_MARKER = "MLPIPE_PIPELINE_RUN_ID"  # set for every step script (runtime/contract.py)


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (reaps our own Popen children; pid 1 here does not reap orphans)."""
    child = _CHILDREN.get(proc.pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(proc.pid, None)
        return False
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(proc: psutil.Process, names: dict[int, str]) -> str:
    if proc.pid in names:
        return names[proc.pid]
    try:
        cmd = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return "?"
    return cmd if len(cmd) <= 100 else cmd[:97] + "..."


class _Shutdown:
    """Every process of one embedded Airflow: the components, all their descendants (LocalExecutor workers,
    task processes, step scripts in their own sessions, Celery children) and orphans marked as ours."""

    def __init__(self, ws: Workspace, components: dict[str, int]) -> None:
        self.ws = ws
        self.names = {pid: name for name, pid in components.items()}
        self.groups = set(components.values())
        self.exclude = _own_lineage()
        self.tracked: dict[int, psutil.Process] = {}
        self.labels: dict[int, str] = {}
        self.signalled: dict[int, str] = {}
        self.report = StopReport(components=dict(components))
        for pid in components.values():
            with contextlib.suppress(psutil.Error):
                self._track(psutil.Process(pid))
        self.refresh()

    def _track(self, proc: psutil.Process) -> None:
        if proc.pid in self.exclude or proc.pid in self.tracked or not _running(proc):
            return
        self.tracked[proc.pid] = proc
        self.labels[proc.pid] = _describe(proc, self.names)

    def refresh(self) -> None:
        """Add what appeared since the last look: new children of tracked processes, marked orphans."""
        for proc in list(self.tracked.values()):
            with contextlib.suppress(psutil.Error):
                for child in proc.children(recursive=True):
                    self._track(child)
        for proc in psutil.process_iter():
            if proc.pid not in self.tracked and proc.pid not in self.exclude and _marked_as_ours(proc, self.ws,
                                                                                                 self.groups):
                self._track(proc)

    def alive(self) -> list[psutil.Process]:
        living = []
        for pid, proc in list(self.tracked.items()):
            if _running(proc):
                living.append(proc)
            elif pid not in self.report.ended:
                sig = self.signalled.get(pid)
                how = "killed (SIGKILL)" if sig == "SIGKILL" else f"exited after {sig}" if sig else "exited"
                self.report.ended[pid] = (self.labels[pid], how)
        return living

    def _send(self, proc: psutil.Process, sig: signal.Signals) -> None:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
            self.signalled[proc.pid] = sig.name

    def phase(self, which: Any, sig: signal.Signals | None, timeout: float, once: bool = True
              ) -> list[psutil.Process]:
        """Send ``sig`` (None: nothing, just wait) to the live processes ``which(proc)`` selects, newcomers
        too, until they are gone or ``timeout`` passes; returns those left."""
        deadline = time.monotonic() + timeout
        sent: set[int] = set()
        while True:
            self.refresh()
            targets = [p for p in self.alive() if which(p)]
            for proc in targets if sig is not None else []:
                if proc.pid not in sent or not once:
                    self._send(proc, sig)
                    sent.add(proc.pid)
            if not targets or time.monotonic() >= deadline:
                return targets
            time.sleep(0.2)

    def is_step_script(self, proc: psutil.Process) -> bool:
        try:
            return _STEP_MARKER in proc.environ()
        except psutil.Error:
            return False

    def step_tasks(self) -> set[int]:
        """The task processes running step scripts (not components): they report the step's end, then exit."""
        tasks = set()
        for proc in self.alive():
            if self.is_step_script(proc):
                with contextlib.suppress(psutil.Error):
                    if proc.ppid() in self.tracked and proc.ppid() not in self.names:
                        tasks.add(proc.ppid())
        return tasks


def _stop_locked(ws: Workspace, timeout: float) -> StopReport:
    """Stop every process of the embedded Airflow; return only once none is left (or raise naming them).

    Order: step scripts first (SIGTERM; their tasks then fail visibly while the api-server still answers),
    then the components (SIGTERM, the scheduler gets a second one), then whatever is left (SIGTERM), then
    SIGKILL. Descendants are snapshotted before signalling, since a dying parent orphans its children.
    """
    components = _component_pids(ws)
    run = _Shutdown(ws, components)
    step = max(timeout / 3, 1.0)
    if run.tracked:
        tasks = run.step_tasks()
        deadline = time.monotonic() + min(step, 10.0)
        run.phase(run.is_step_script, signal.SIGTERM, deadline - time.monotonic())
        run.phase(lambda p: p.pid in tasks, None, max(deadline - time.monotonic(), 0.0))
        run.phase(lambda p: p.pid in run.names, signal.SIGTERM, step / 2)
        run.phase(lambda p: True, signal.SIGTERM, step / 2)
        left = run.phase(lambda p: True, signal.SIGKILL, max(step, 10.0), once=False)
        if left:
            raise LocalAirflowError(
                f"could not stop processes of the embedded Airflow of {ws.home}: "
                + ", ".join(f"pid {p.pid} ({run.labels[p.pid]})" for p in left)
            )
        run.alive()  # record how the last ones ended
    _state_path(ws).unlink(missing_ok=True)
    if run.report:
        log.info("stopped the embedded Airflow of %s:\n%s", ws.home, "\n".join(run.report.lines()))
    return run.report


def shutdown(ws: Workspace, timeout: float = 30) -> StopReport:
    """Stop the embedded Airflow of ``ws`` and every process it started; returns what ended and how."""
    with _lock(ws):
        return _stop_locked(ws, timeout)


def stop(ws: Workspace, timeout: float = 30) -> bool:
    """Stop the embedded Airflow of ``ws``; True if something was running."""
    return bool(shutdown(ws, timeout))


def last_url(ws: Workspace) -> str | None:
    """The URL of the embedded Airflow as last started (it may not be running)."""
    state = _read_state(ws) or {}
    return state.get("url")


#: how long a running embedded Airflow whose api-server is slow to answer (a busy machine) is waited for before
#: it is restarted
SLOW_HEALTH_GRACE = 60.0


def ensure_running(ws: Workspace) -> AirflowInfo:
    """The running embedded Airflow, started if needed. Components that are all alive but whose api-server does
    not answer its health check in time are waited for, not restarted (a restart would cost every run going)."""
    info = status(ws)
    if info is not None:
        return info
    alive = status(ws, check_health=False)
    if alive is not None:
        deadline = time.monotonic() + SLOW_HEALTH_GRACE
        while time.monotonic() < deadline:
            if _health(alive.url) is not None:
                return alive
            time.sleep(1.0)
    return start(ws)
