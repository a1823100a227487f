"""Process liveness (shared by the local Airflow launcher and the cache's single-flight locks) and the one
launcher of step scripts, whose lifetime is tied to the task that runs them."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (this sandbox's pid 1 does not reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# ---------------------------------------------------------------------------------------------- step scripts
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_GET_PDEATHSIG = 2
#: how long a script gets to exit on SIGTERM before its whole process group is SIGKILLed
KILL_GRACE_S = 3.0

_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()


@functools.cache
def _prctl() -> Any:
    """libc's ``prctl`` (None off Linux), resolved once in the parent: a forked child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux); True if set.

    The "parent" is the thread that forked this process: it must outlive the work it waits for.
    """
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _die_with(parent: int) -> Callable[[], None]:
    prctl = _prctl()

    def setup() -> None:  # runs in the child between fork and exec: no locks, no imports
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(137)

    return setup


class LaunchRefused(RuntimeError):
    """A script was not started: the :class:`LaunchGate` it would run under was closed (the message says why)."""


class LaunchGate:
    """The scripts one piece of work starts (see :func:`gated`), stoppable from another thread: :meth:`close`
    kills those running and makes every later :func:`launch` under the gate raise :class:`LaunchRefused`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self.reason: str | None = None

    def close(self, reason: str, grace: float = KILL_GRACE_S) -> int:
        """Refuse new scripts and stop the running ones (SIGTERM, SIGKILL after ``grace``); returns how many."""
        with self._lock:
            self.reason = reason
            procs = [p for p in self._procs if p.returncode is None]  # not reaped yet: its group is ours
        for proc in procs:
            kill_group(proc, grace)
        return len(procs)


_GATE: ContextVar[LaunchGate | None] = ContextVar("mlpipe_launch_gate", default=None)


@contextmanager
def gated(gate: LaunchGate) -> Iterator[LaunchGate]:
    """Scripts launched inside (in this thread or context) run under ``gate``."""
    token = _GATE.set(gate)
    try:
        yield gate
    finally:
        _GATE.reset(token)


def launch(argv: list[str], cwd: str | Path, env: dict[str, str]) -> subprocess.Popen:
    """Start a step's script: its own session and process group (killed as a whole), SIGKILLed by the kernel
    when the process that started it dies (``kill -9`` of the task, a lost worker), output on one pipe.

    Call it from the thread that waits for the script (the parent-death signal is tied to the forking thread).
    Under a closed :class:`LaunchGate` nothing starts: :class:`LaunchRefused`.
    """
    gate = _GATE.get()
    if gate is None:
        proc = _start(argv, cwd, env)
    else:
        with gate._lock:  # atomic with close(): a script is either refused or known to the gate
            if gate.reason is not None:
                raise LaunchRefused(gate.reason)
            proc = _start(argv, cwd, env)
            gate._procs.add(proc)
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    return proc


def _start(argv: list[str], cwd: str | Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, start_new_session=True, preexec_fn=_die_with(os.getpid()))


def finished(proc: subprocess.Popen) -> None:
    """Forget a script that was waited for (its group id may be reused from now on)."""
    with _RUNNING_LOCK:
        _RUNNING.discard(proc)
    gate = _GATE.get()
    if gate is not None:
        with gate._lock:
            gate._procs.discard(proc)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE_S) -> None:
    """SIGTERM the script's process group, then SIGKILL it (stragglers included) after ``grace`` seconds.

    Safe in a signal handler: it never reaps (the waiting thread does), it polls the leader zombie-aware.
    """
    if grace > 0:
        _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    _killpg(proc.pid, signal.SIGKILL)


def kill_running(grace: float = KILL_GRACE_S) -> int:
    """Kill every script this process runs (a task's ``on_kill``); returns how many."""
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    for proc in procs:
        kill_group(proc, grace)
    return len(procs)


def kill_leftovers(env_name: str, value: str) -> int:
    """SIGKILL every process on this host whose environment has ``env_name=value``: what a dead try of a step
    left behind (children of its script outlive the script's parent-death signal). Returns how many."""
    import psutil

    killed = 0
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(env_name) == value:
                proc.kill()
                killed += 1
        except (psutil.Error, OSError):
            continue
    return killed
