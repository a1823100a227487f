"""The processes of an embedded Airflow: starting a component detached, telling whether a pid is still one of
ours, and signalling pids and process groups until they are gone.

Components run in their own session (one process group each) with the Airflow home as their working directory;
that is how a recycled pid is told apart from ours. The ``Popen`` objects of the components this process
started are kept so they are reaped (no zombies, no ResourceWarnings).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from airflow_mlpipe.clients.local_airflow_env import airflow_cmd, process_env
from airflow_mlpipe.clients.local_airflow_home import HOST, components_log_dir, private_opener
from airflow_mlpipe.data.workspace_location import WorkspaceLocation
from airflow_mlpipe.runtime.processes import pid_alive

#: components create owner-only files (airflow.db, logs, dag-processor logs), as Airflow's own ``daemon_umask``
COMPONENT_UMASK = 0o077


# Popen objects of the components this process started (kept so they can be reaped, no zombies / warnings)
_CHILDREN: dict[int, subprocess.Popen] = {}


def reap_exited(pid: int) -> bool:
    """True if ``pid`` is a component this process started and it has exited (it is reaped now)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return True
    return False


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a component this process started is reaped here once it has exited."""
    if pid in _CHILDREN:
        return not reap_exited(pid)
    return pid_alive(pid)


def pid_is_ours(pid: int, ws: WorkspaceLocation) -> bool:
    """True if ``pid`` is an airflow process of this workspace (guards against recycled pids).

    Components run with cwd = the airflow home (their environ may be overwritten by setproctitle). Celery
    retitles its worker ``[celeryd: <name>:MainProcess] …``, without "airflow" in it.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return process_alive(pid)
    if b"airflow" not in cmdline and not cmdline.startswith(b"[celeryd: "):
        return False
    if Path(cwd) == ws.airflow_home.resolve():
        return True
    try:
        environ = b"\0" + Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"\0AIRFLOW_HOME={ws.airflow_home}\0".encode() in environ


def group_alive(pgid: int) -> bool:
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
        reap_exited(pid)


def _wait_gone(pids: list[int], timeout: float, groups: bool = False) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        _reap(pids)
        alive = [p for p in pids if (group_alive(p) if groups else process_alive(p))]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.2)


def kill_pids(pids: list[int], timeout: float = 30) -> None:
    """SIGTERM, SIGTERM again (the scheduler wants a second one), then SIGKILL the process groups."""
    pids = [p for p in pids if process_alive(p)]
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
        if group_alive(pg):
            _signal(pg, signal.SIGTERM, group=True)
    left = _wait_gone(pids, 3, groups=True)
    for pg in left:
        _signal(pg, signal.SIGKILL, group=True)
    _wait_gone(left, 5, groups=True)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def airflow_process_options(ws: WorkspaceLocation, env: dict[str, str], out: IO[bytes]) -> dict[str, Any]:
    """``subprocess`` options of every ``airflow`` command we run: our environment, the home as working
    directory (how :func:`pid_is_ours` knows them), owner-only files, output to ``out``, no stdin."""
    return {
        "env": process_env(env),
        "cwd": ws.airflow_home,
        "umask": COMPONENT_UMASK,
        "stdout": out,
        "stderr": subprocess.STDOUT,
        "stdin": subprocess.DEVNULL,
    }


def spawn(ws: WorkspaceLocation, name: str, args: list[str], env: dict[str, str]) -> int:
    logdir = components_log_dir(ws)
    rundir = ws.airflow_home / "run"
    rundir.mkdir(exist_ok=True)
    with open(logdir / f"{name}.log", "ab", opener=private_opener) as out:
        out.write(f"\n===== {datetime.now().isoformat()} starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            [*airflow_cmd(), *args],
            **airflow_process_options(ws, env, out),
            start_new_session=True,  # own session + process group: detached, and killable as a group
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    (rundir / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid
