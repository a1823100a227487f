"""A Databricks compute target as an Airflow Connection: where its host comes from, and the local emulator.

``DatabricksCompute.attach`` calls :func:`attach_databricks`, which resolves the Databricks host in this order:

1. the Airflow connection of the target (``conn_id``, default ``mlpipe_databricks_<name>``) already has a host:
   it is kept (only its password is replaced when a token is given);
2. the workspace config names the Databricks workspace's URL, or ``$MLPIPE_DATABRICKS_HOST`` overrides it for
   every Databricks workspace::

       {"databricks_hosts": {"<Databricks workspace_name>": "https://adb-123.azuredatabricks.net"}}

3. otherwise the local Databricks emulator of the workspace (``<workspace home>/databricks-emulator``), started
   here on a port that stays the same across restarts (saved in ``<emulator home>/port``), so the connection
   stays valid.

The connection is written through the workspace's Airflow REST API with the token as its password. The token
is never stored by us: the store record has the host and the connection id only. The emulator is its own
program (the top layer), so it is only ever run as ``python -m airflow_mlpipe.emulators.databricks``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_mlpipe.contract.exceptions import ComputeTargetException
from airflow_mlpipe.data.workspace_location import WorkspaceLocation, make_private_dir
from airflow_mlpipe.hooks.databricks_emulator import EMULATOR_HOME_EXTRA as EXTRA_EMULATOR_HOME

EMULATOR_MODULE = "airflow_mlpipe.emulators.databricks"
EMULATOR_DIRNAME = "databricks-emulator"
EMULATOR_HOST = "127.0.0.1"
PORT_FILE = "port"
#: the connection ``mlpipe databricks start`` writes when given no ``--conn-id``
EMULATOR_CONN_ID = "mlpipe_databricks_emulator"
CONFIG_HOSTS = "databricks_hosts"
ENV_DATABRICKS_HOST = "MLPIPE_DATABRICKS_HOST"
EMULATOR_DOWN = 3  # exit code of the emulator's ``status`` when it is not running
EMULATOR_TIMEOUT = 120.0


class EmulatorError(RuntimeError):
    """The local Databricks emulator could not be started, stopped or asked."""


# ---------------------------------------------------------------------------------------------- names
def default_conn_id(name: str) -> str:
    """The Airflow connection id of the Databricks target ``name`` when the user names none."""
    return "mlpipe_databricks_" + re.sub(r"[^A-Za-z0-9_]", "_", name).lower()


def emulator_home(workspace: WorkspaceLocation) -> Path:
    """Where the workspace's emulator keeps its notebooks, DBFS, runs and port."""
    return Path(workspace.home).resolve() / EMULATOR_DIRNAME


def is_placeholder_token(token: str | None) -> bool:
    """No token: empty, or a v1 sample's placeholder such as ``"<databricks_access_token>"``."""
    value = (token or "").strip()
    return not value or (value.startswith("<") and value.endswith(">"))


# ---------------------------------------------------------------------------------------------- emulator
#: what of the embedded Airflow's environment the emulator gets, so ``dbutils.secrets`` can read Airflow's
#: Variables and Connections (decrypted with its Fernet key)
START_LOCK_FILE = ".start.lock"
AIRFLOW_ENV_FOR_SECRETS = ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__FERNET_KEY")


def _emulator(command: str, home: Path, *args: str, timeout: float = EMULATOR_TIMEOUT,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", EMULATOR_MODULE, command, "--home", str(home), *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        env={**os.environ, **env} if env else None,
    )


def _secrets_env(workspace: WorkspaceLocation) -> dict[str, str] | None:
    """The embedded Airflow's metadata DB and Fernet key (a remote Airflow's are not ours to hand out)."""
    if not workspace.is_embedded:
        return None
    from airflow_mlpipe.clients.local_airflow_env import airflow_env

    env = airflow_env(workspace)
    return {k: env[k] for k in AIRFLOW_ENV_FOR_SECRETS if k in env}


def _json_out(proc: subprocess.CompletedProcess, what: str) -> dict[str, Any]:
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        raise EmulatorError(f"the Databricks emulator's {what} failed (exit {proc.returncode}): {tail}") from exc


def emulator_status(workspace: WorkspaceLocation) -> dict[str, Any]:
    """``{"running": bool, ...}`` (host, port, url, pid when running) of the workspace's emulator."""
    home = emulator_home(workspace)
    proc = _emulator("status", home)
    if proc.returncode not in (0, EMULATOR_DOWN):
        raise EmulatorError(f"the Databricks emulator's status failed (exit {proc.returncode}): "
                            f"{(proc.stderr or '').strip()[-2000:]}")
    info = _json_out(proc, "status")
    info["running"] = proc.returncode == 0
    return info


def saved_port(home: Path) -> int | None:
    """The port the emulator of ``home`` was first started on (its connections point there)."""
    try:
        port = int((Path(home) / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _save_port(home: Path, port: int) -> None:
    tmp = Path(home) / (PORT_FILE + ".tmp")
    tmp.write_text(str(int(port)))
    os.replace(tmp, Path(home) / PORT_FILE)


def ensure_emulator(workspace: WorkspaceLocation) -> dict[str, Any]:
    """The workspace's emulator, started if it is down, always on the same port: ``{host, port, url, home}``.

    Started without a token, so it accepts whatever token a connection carries.
    """
    home = emulator_home(workspace)
    make_private_dir(home)
    with _start_lock(home):  # one start at a time: `mlpipe run` and Airflow's parse of the same DAG file may race
        return _ensure_started(workspace, home)


@contextlib.contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    import fcntl

    with open(home / START_LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_started(workspace: WorkspaceLocation, home: Path) -> dict[str, Any]:
    info = emulator_status(workspace)
    port = saved_port(home)
    if not info["running"]:
        proc = _emulator("start", home, "--port", str(port or 0), env=_secrets_env(workspace))
        if proc.returncode != 0:
            hint = ""
            if port:
                hint = (f" It starts on port {port}, saved in {home / PORT_FILE} because Airflow connections point "
                        f"there; if another program holds that port, stop it, or delete that file to pick a new "
                        f"port and attach the target again.")
            raise EmulatorError(f"could not start the Databricks emulator of {home} (exit {proc.returncode}): "
                                f"{(proc.stderr or proc.stdout or '').strip()[-2000:]}{hint}")
        info = _json_out(proc, "start")
    if port != int(info["port"]):  # the first start (or one started by hand elsewhere): connections follow it
        _save_port(home, int(info["port"]))
    return {"host": info.get("host", EMULATOR_HOST), "port": int(info["port"]), "url": info["url"],
            "home": str(home)}


def stop_emulator(workspace: WorkspaceLocation) -> bool:
    """Stop the workspace's emulator and everything it started; False when it was not running."""
    home = emulator_home(workspace)
    proc = _emulator("stop", home)
    if proc.returncode != 0:
        raise EmulatorError(f"could not stop the Databricks emulator of {home} (exit {proc.returncode}): "
                            f"{(proc.stderr or '').strip()[-2000:]}")
    return bool(_json_out(proc, "stop").get("stopped"))


def import_notebook(workspace: WorkspaceLocation, local_notebook: str | os.PathLike, workspace_path: str,
                    overwrite: bool = True) -> dict[str, Any]:
    """Put a local notebook (``.py`` source or ``.ipynb``) at ``workspace_path`` in the emulator's workspace."""
    local = Path(local_notebook).resolve()
    if not local.is_file():
        raise FileNotFoundError(f"mlpipe databricks import: notebook file {str(local)!r} does not exist")
    if not workspace_path.startswith("/"):
        raise ComputeTargetException(f"mlpipe databricks import: WORKSPACE_PATH must be an absolute workspace "
                                     f"path such as /Users/me/notebook, got {workspace_path!r}")
    home = emulator_home(workspace)
    make_private_dir(home)
    args = [str(local), workspace_path, *([] if overwrite else ["--no-overwrite"])]
    proc = _emulator("import", home, *args)
    if proc.returncode != 0:
        last = ((proc.stderr or "").strip().splitlines() or [""])[-1]  # the emulator's error, not its traceback
        raise EmulatorError(f"could not import {local} as {workspace_path!r} (exit {proc.returncode}): {last}")
    return _json_out(proc, "import")


# ---------------------------------------------------------------------------------------------- hosts
def normalise_url(url: str, where: str) -> str:
    """``scheme://host[:port]`` of a Databricks workspace URL (``https`` when none is given)."""
    text = str(url).strip().rstrip("/")
    parts = urlsplit(text if "://" in text else f"https://{text}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ComputeTargetException(
            f"{where}: expected a Databricks workspace URL such as https://adb-123.azuredatabricks.net, got {url!r}"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ComputeTargetException(f"{where}: the port of {url!r} is not a number") from exc
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")


def configured_host(workspace: WorkspaceLocation, databricks_workspace: str | None) -> str | None:
    """The URL the workspace config gives the Databricks workspace (``$MLPIPE_DATABRICKS_HOST`` wins), or None."""
    override = os.environ.get(ENV_DATABRICKS_HOST, "").strip()
    if override:
        return normalise_url(override, ENV_DATABRICKS_HOST)
    hosts = (workspace.config or {}).get(CONFIG_HOSTS)
    if hosts is None:
        return None
    where = f"workspace config {workspace.config_path or workspace.home}: {CONFIG_HOSTS!r}"
    if not isinstance(hosts, dict):
        raise ComputeTargetException(f"{where} must map Databricks workspace names to URLs, got "
                                     f"{type(hosts).__name__}")
    url = hosts.get(databricks_workspace) if databricks_workspace else None
    if url is None:
        return None
    if not isinstance(url, str):
        raise ComputeTargetException(f"{where}[{databricks_workspace!r}] must be a URL string, got {url!r}")
    return normalise_url(url, f"{where}[{databricks_workspace!r}]")


def connection_url(conn: dict[str, Any]) -> str | None:
    """The URL an Airflow connection (as the REST API shows it) points at, or None without a host."""
    host = str(conn.get("host") or "").strip()
    if not host:
        return None
    if "://" in host:
        return host.rstrip("/")
    port = conn.get("port")
    return f"{conn.get('schema') or 'https'}://{host}" + (f":{port}" if port else "")


def connection_extra(conn: dict[str, Any] | None) -> dict[str, Any]:
    try:
        extra = json.loads((conn or {}).get("extra") or "{}")
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


def resolve_host(workspace: WorkspaceLocation, databricks_workspace: str | None,
                 existing: dict[str, Any] | None) -> tuple[str, str | None]:
    """Where the target's host comes from: ``("connection", url)``, ``("config", url)`` or ``("emulator", None)``."""
    url = connection_url(existing) if existing else None
    if url:
        return "connection", url
    url = configured_host(workspace, databricks_workspace)
    if url:
        return "config", url
    return "emulator", None


def connection_body(conn_id: str, url: str, token: str | None, home: str | None = None) -> dict[str, Any]:
    """The Airflow REST body of a ``databricks`` connection to ``url`` (the provider keeps only the host name,
    so scheme and port go into ``schema`` and ``port``); ``home`` marks a connection to our emulator."""
    parts = urlsplit(url)
    body: dict[str, Any] = {
        "connection_id": conn_id, "conn_type": "databricks", "host": parts.hostname, "schema": parts.scheme,
        "port": parts.port,
        "description": "Databricks emulator of an airflow-mlpipe workspace" if home else "Databricks workspace",
    }
    if home:
        body["extra"] = json.dumps({EXTRA_EMULATOR_HOME: home})
    if token is not None:
        body["password"] = token
    return body


# ---------------------------------------------------------------------------------------------- writing
def _client(workspace: WorkspaceLocation) -> Any:
    """The workspace's Airflow REST client; the embedded Airflow is started first when it is down."""
    from airflow_mlpipe.clients.airflow_rest import client_for

    return client_for(workspace)


def _has_password(conn: dict[str, Any] | None) -> bool:
    return bool(conn and conn.get("password"))


def connect_emulator(workspace: WorkspaceLocation, conn_id: str = EMULATOR_CONN_ID,
                     token: str | None = None) -> dict[str, Any]:
    """Start the workspace's emulator and point the Airflow connection ``conn_id`` at it (``mlpipe databricks
    start``): ``{host, port, url, home, conn_id}``. Without a token an existing password is kept, else one is
    generated (the emulator accepts any)."""
    info = ensure_emulator(workspace)
    with _client(workspace) as client:
        existing = client.get_connection(conn_id)
        password = choose_password("emulator", token, existing, target=conn_id, conn_id=conn_id)
        client.put_connection(connection_body(conn_id, info["url"], password, info["home"]))
    return {**info, "conn_id": conn_id}


def _generated_token() -> str:
    return "mlpipe-emulator-" + secrets.token_urlsafe(16)


def choose_password(source: str, token: str | None, existing: dict[str, Any] | None, *, target: str,
                    conn_id: str, url: str | None = None) -> str | None:
    """The password to write for a host from ``source`` (see :func:`resolve_host`); None keeps what is there.

    A placeholder token is no token: the emulator gets a generated one (it accepts any), a real workspace
    needs one unless its connection already has a password.
    """
    given = None if is_placeholder_token(token) else str(token)
    if given is not None or source == "connection" or _has_password(existing):
        return given
    if source == "emulator":
        return _generated_token()
    raise ComputeTargetException(
        f"DatabricksCompute.attach({target!r}): argument 'access_token' is needed for the Databricks workspace "
        f"at {url} (got an empty value or a placeholder); pass a personal access token to "
        f"DatabricksCompute.attach_configuration, or create the Airflow connection {conn_id!r} yourself "
        f"and pass conn_id={conn_id!r}"
    )


def store_record(config: dict[str, Any], conn_id: str, host: str | None, emulator: bool) -> dict[str, Any]:
    """The workspace store's row of a Databricks target: where it is and its connection, never a token."""
    return {"type": "Databricks", "conn_id": conn_id, "resource_group": config.get("resource_group"),
            "workspace_name": config.get("workspace_name"), "resource_id": config.get("resource_id"),
            "host": host, "emulator": bool(emulator), "created": datetime.now(UTC).isoformat()}


def attach_databricks(workspace: WorkspaceLocation, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Write the Airflow connection of the Databricks target ``name`` and return its store record (no token).

    ``config`` is ``DatabricksCompute.attach_configuration(...)``; its ``access_token`` is popped, so the caller
    cannot store it by mistake.
    """
    token = config.pop("access_token", None)
    conn_id = config.get("conn_id") or default_conn_id(name)
    with _client(workspace) as client:
        existing = client.get_connection(conn_id)
        source, url = resolve_host(workspace, config.get("workspace_name"), existing)
        home = None
        if source == "emulator":
            info = ensure_emulator(workspace)
            url, home = info["url"], info["home"]
        password = choose_password(source, token, existing, target=name, conn_id=conn_id, url=url)
        if source != "connection":
            client.put_connection(connection_body(conn_id, url, password, home))
        elif password is not None:  # only the password changes; the user's host, login and extras stay
            client.put_connection({"connection_id": conn_id, "password": password,
                                   "conn_type": existing.get("conn_type") or "databricks"})
    emulator = home is not None or (source == "connection" and EXTRA_EMULATOR_HOME in connection_extra(existing))
    return store_record(config, conn_id, url, emulator)
