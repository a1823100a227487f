"""A scratch project folder and its embedded Airflow (SQLite, LocalExecutor), for module-scoped fixtures.

Starting an embedded Airflow costs 15-30 s, so a test module starts one in a module-scoped fixture and its tests
share it; these helpers are the set-up and tear-down those fixtures have in common.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_mlpipe import Workspace
from airflow_mlpipe.clients import local_airflow


def write_project_config(root: Path, settings: dict[str, str] | None = None, **config: Any) -> Path:
    """``root/.mlpipe/config.json`` with the embedded Airflow's ``settings`` (``AIRFLOW__*``) and other keys."""
    path = root / ".mlpipe" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        config = {**config, "airflow": {**config.get("airflow", {}), "settings": settings}}
    path.write_text(json.dumps(config, indent=2))
    return path


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[Path]:
    """``cwd`` is ``path`` inside the block (``Workspace.from_config()`` and step scripts look there)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(old)


@contextlib.contextmanager
def embedded_airflow(ws: Workspace, dags: Path, *, start_timeout: float = 120,
                     stop_timeout: float = 30) -> Iterator[local_airflow.AirflowInfo]:
    """The embedded Airflow of ``ws`` parsing ``dags``, on a free port; stopped (all its processes) on exit,
    also when it failed to become healthy."""
    try:
        yield local_airflow.start(ws, dags_folder=dags, port=local_airflow._free_port(), timeout=start_timeout)
    finally:
        local_airflow.stop(ws, timeout=stop_timeout)
