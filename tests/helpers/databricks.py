"""The local Databricks emulator for a test module: started by its CLI (a background process, as a user would)
and reached through an Airflow connection in the environment, as the provider's ``DatabricksHook`` reads it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_CLI = [sys.executable, "-m", "airflow_mlpipe.emulators.databricks"]


def _conn_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def set_connection(conn_id: str, info: Mapping[str, Any], token: str) -> None:
    """Point the Airflow connection ``conn_id`` at the emulator described by ``info`` (also after a restart)."""
    os.environ[_conn_var(conn_id)] = json.dumps({
        "conn_type": "databricks", "host": info["host"], "port": info["port"], "schema": "http",
        "password": token})


@contextlib.contextmanager
def running_emulator(home: Path, token: str, conn_id: str,
                     env: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """The emulator serving ``home``, its connection set as ``conn_id``; yields its start info (plus ``home``).

    ``env`` is the emulator's environment (default: this process's). On exit the emulator is stopped (whatever
    instance serves ``home`` then) and the connection variable removed.
    """
    out = subprocess.run([*_CLI, "start", "--home", str(home), "--token", token], capture_output=True,
                         text=True, check=True, cwd=REPO, env=dict(env) if env is not None else None)
    info = json.loads(out.stdout)
    info["home"] = home
    try:
        set_connection(conn_id, info, token)
        yield info
    finally:
        os.environ.pop(_conn_var(conn_id), None)
        subprocess.run([*_CLI, "stop", "--home", str(home)], check=True, cwd=REPO, capture_output=True)
