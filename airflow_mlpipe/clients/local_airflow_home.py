"""The files of an embedded Airflow's home: secrets, admin password, state file, lock, component logs.

Everything lives under ``ws.airflow_home`` and is owner-only (the home 0700, the files 0600): the secrets and
the password are generated once and kept, so tokens and logins survive restarts. The launcher
(:mod:`airflow_mlpipe.clients.local_airflow`) reads and writes these; nothing here starts a process.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.bundle_files import BUNDLE_DIRNAME
from airflow_mlpipe.data.workspace_location import WorkspaceLocation, make_private_dir

DEFAULT_PORT = 8080
HOST = "127.0.0.1"
USERNAME = "admin"
STATE_FILE = "mlpipe-airflow.json"
SECRETS_FILE = "mlpipe-secrets.json"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
DB_MARKER = ".mlpipe-db-migrated"


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


def submitted_dags_folder(ws: WorkspaceLocation) -> Path:
    folder = ws.airflow_home / BUNDLE_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def state_path(ws: WorkspaceLocation) -> Path:
    return ws.airflow_home / STATE_FILE


def passwords_path(ws: WorkspaceLocation) -> Path:
    return ws.airflow_home / PASSWORDS_FILE


def components_log_dir(ws: WorkspaceLocation) -> Path:
    d = ws.airflow_home / "logs" / "components"
    make_private_dir(d.parent)
    make_private_dir(d)
    return d


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def private_opener(path: str, flags: int) -> int:
    """``open(..., opener=)`` that creates the file owner-only (0600)."""
    return os.open(path, flags, 0o600)


def private_airflow_home(ws: WorkspaceLocation) -> Path:
    """The Airflow home, owner-only (0700): it holds airflow.cfg, the DB, the secrets and the logs."""
    make_private_dir(ws.airflow_home)
    return ws.airflow_home


def tighten_private_files(ws: WorkspaceLocation) -> None:
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


def airflow_secrets(ws: WorkspaceLocation) -> dict[str, str]:
    """Fernet key, api secret key and JWT secret: generated once and kept in the home (tokens survive restarts)."""
    path = ws.airflow_home / SECRETS_FILE
    if path.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            data = json.loads(path.read_text())
            if all(data.get(k) for k in ("fernet_key", "secret_key", "jwt_secret")):
                return data
    private_airflow_home(ws)
    data = {
        "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "secret_key": secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(48),
    }
    _write_private(path, json.dumps(data))
    return data


def ensure_password(ws: WorkspaceLocation) -> str:
    """Pre-generate the admin password so it is known before the api-server prints it."""
    path = passwords_path(ws)
    data: dict[str, str] = {}
    if path.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            data = json.loads(path.read_text() or "{}")
    if not data.get(USERNAME):
        data[USERNAME] = secrets.token_urlsafe(12)
        private_airflow_home(ws)
        _write_private(path, json.dumps(data) + "\n")
    return data[USERNAME]


def admin_password(ws: WorkspaceLocation) -> str:
    """The generated password of the ``admin`` user of the embedded Airflow ("" if never started)."""
    path = passwords_path(ws)
    try:
        return str(json.loads(path.read_text()).get(USERNAME, ""))
    except (OSError, json.JSONDecodeError):
        return ""


def default_dags_folder(ws: WorkspaceLocation) -> Path:
    cwd_dags = Path.cwd() / "dags"
    if cwd_dags.is_dir():
        return cwd_dags.resolve()
    folder = ws.airflow_home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def home_lock(ws: WorkspaceLocation) -> Iterator[None]:
    ws.airflow_home.mkdir(parents=True, exist_ok=True)
    with open(ws.airflow_home / "mlpipe-airflow.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_state(ws: WorkspaceLocation) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(ws).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def info_from_state(ws: WorkspaceLocation, state: dict[str, Any]) -> AirflowInfo:
    return AirflowInfo(
        url=state["url"],
        port=int(state["port"]),
        pids={k: int(v) for k, v in state.get("pids", {}).items()},
        home=str(ws.airflow_home),
        dags_folder=state.get("dags_folder", ""),
        username=USERNAME,
        password=admin_password(ws),
    )
