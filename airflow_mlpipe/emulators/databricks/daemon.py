"""Starting, stopping and finding the emulator: one background server per home folder.

``start`` launches ``serve`` in a new session (logs in ``<home>/emulator.log``) and returns once it answers;
the server writes ``<home>/emulator.json`` (host, port, pid, url). ``stop`` ends the server and everything it
started (cluster workers and their Spark JVMs) by killing its process group and descendants. A token given
to ``start`` is kept in ``<home>/token`` (mode 600) and then required from clients. ``import_notebook`` puts a
local notebook into the workspace without needing the server. The home folder holds all the emulator's data:
``state.sqlite`` (runs), ``dbfs/``, ``workspace/``, ``clusters/`` (driver logs), ``runs/`` (run output),
and optionally ``secrets.json`` for ``dbutils.secrets``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

INFO_FILE = "emulator.json"
TOKEN_FILE = "token"
LOG_FILE = "emulator.log"


def _info_path(home: Path) -> Path:
    return Path(home) / INFO_FILE


def read_info(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads(_info_path(home).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        import psutil

        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - gone between the two calls
        return False


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:  # noqa: S310 - our own URL
            return response.status == 200
    except OSError:
        return False


def status(home: Path) -> dict[str, Any]:
    """``{"running": bool, ...emulator.json}`` for the emulator of ``home``."""
    info = read_info(home)
    if not info or not _alive(int(info.get("pid", 0))) or not _healthy(info["url"]):
        return {"running": False, "home": str(Path(home).resolve())}
    return {"running": True, **info}


def start(home: Path, port: int = 0, token: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Start the emulator for ``home`` in the background (or return the one already running)."""
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    current = status(home)
    if current["running"]:
        return current
    token_file = home / TOKEN_FILE
    if token:
        token_file.write_text(token)
        token_file.chmod(0o600)
    else:
        token_file.unlink(missing_ok=True)
    _info_path(home).unlink(missing_ok=True)
    with open(home / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_mlpipe.emulators.databricks", "serve", "--home", str(home),
             "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_info(home)
        if info and info.get("pid") == process.pid and _healthy(info["url"], 1.0):
            return {"running": True, **info}
        if process.poll() is not None:
            tail = (home / LOG_FILE).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the Databricks emulator exited (code {process.returncode}):\n{tail}")
        time.sleep(0.1)
    stop(home)
    raise RuntimeError(f"the Databricks emulator did not answer within {timeout:.0f} s (see {home / LOG_FILE})")


def stop(home: Path, grace: float = 10.0) -> bool:
    """Stop the emulator of ``home`` and every process it started; False when none was running."""
    info = read_info(home)
    if not info:
        return False
    pid = int(info.get("pid", 0))
    was_running = pid > 0 and _alive(pid)
    if was_running:
        import psutil

        try:
            descendants = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)  # the server records its runs in flight, then stops its clusters
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:  # a zombie (our own child, not reaped) counts as gone
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        for process in descendants:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs([p for p in descendants if p.is_running()], timeout=grace)
    _info_path(home).unlink(missing_ok=True)
    return was_running


def serve(home: Path, port: int = 0, host: str = "127.0.0.1") -> int:
    """Run the server in this process until SIGTERM/SIGINT (what ``start`` launches)."""
    from airflow_mlpipe.emulators.databricks.server import make_server

    home = Path(home).resolve()
    token_file = home / TOKEN_FILE
    token = token_file.read_text().strip() if token_file.is_file() else None
    server, emulator = make_server(home, host, port, token)
    actual_port = server.server_address[1]
    info = {"host": host, "port": actual_port, "pid": os.getpid(), "url": f"http://{host}:{actual_port}",
            "home": str(home), "started_at": time.time(), "token_required": bool(token)}
    if emulator.lost_runs:
        print(f"runs in flight at the last stop, now INTERNAL_ERROR: {emulator.lost_runs}", flush=True)

    def on_signal(signum, frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = _info_path(home).with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, _info_path(home))
    print(f"Databricks emulator serving {info['url']} (home {home})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        emulator.db.mark_in_flight_lost()
        for cluster in emulator.pool.all():
            cluster.kill("Emulator stopped")
        server.server_close()
        if (read_info(home) or {}).get("pid") == os.getpid():
            _info_path(home).unlink(missing_ok=True)
    return 0


def import_notebook(home: Path, local_file: Path, workspace_path: str, overwrite: bool = True) -> dict[str, Any]:
    """Put a local notebook (``.py`` source or ``.ipynb``) at ``workspace_path``; works with the server down."""
    from airflow_mlpipe.emulators.databricks import notebook_source
    from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceStore

    content = Path(local_file).read_bytes()
    fmt = "JUPYTER" if notebook_source.looks_like_ipynb(content) else "SOURCE"
    store = WorkspaceStore(Path(home).resolve() / "workspace")
    return store.import_object(workspace_path, content, fmt, "PYTHON", overwrite).as_api()
