"""Whether an embedded Airflow is up: its api-server's health report, and waiting for it after a start.

Healthy means the scheduler and the dag-processor report heartbeats (newer than the start, when waiting for a
fresh start); a component that exits meanwhile ends the wait at once with the tail of its log.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from airflow_mlpipe.clients.local_airflow_home import (
    AirflowInfo,
    LocalAirflowError,
    components_log_dir,
    log_tail,
)
from airflow_mlpipe.clients.local_airflow_processes import process_alive
from airflow_mlpipe.data.workspace_location import WorkspaceLocation


def fetch_health(url: str, timeout: float = 3.0) -> dict[str, Any] | None:
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


def wait_healthy(
    ws: WorkspaceLocation, info: AirflowInfo, timeout: float = 120, since: float | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        dead = [n for n, p in info.pids.items() if not process_alive(p)]
        if dead:
            logs = "\n".join(
                f"--- {n}:\n{log_tail(components_log_dir(ws) / f'{n}.log')}" for n in dead
            )
            raise LocalAirflowError(f"Airflow component(s) {', '.join(dead)} exited during start-up:\n{logs}")
        last = fetch_health(info.url, timeout=2)
        if _is_healthy(last, since):
            return
        time.sleep(0.5)
    raise LocalAirflowError(
        f"Airflow at {info.url} did not become healthy within {timeout:.0f}s (last health: {last}); "
        f"component logs are in {components_log_dir(ws)}"
    )
