"""Stopping an embedded Airflow: every process it started, in an order that lets running steps fail visibly.

The process tree is tracked from the components down (LocalExecutor workers, task processes, step scripts in
their own sessions, Celery children) plus orphans marked as ours (their process group or their
``AIRFLOW_HOME``), and is signalled in phases until nothing is left; :class:`StopReport` says how each ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from airflow_mlpipe.clients.local_airflow_home import LocalAirflowError, read_state, state_path
from airflow_mlpipe.clients.local_airflow_processes import pid_is_ours, process_alive, reap_exited
from airflow_mlpipe.data.workspace_location import WorkspaceLocation

log = logging.getLogger(__name__)


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


def _component_pids(ws: WorkspaceLocation) -> dict[str, int]:
    """Components named in the state file and the pid files (those still alive and ours)."""
    found: dict[str, int] = {}
    state = read_state(ws) or {}
    for name, pid in (state.get("pids") or {}).items():
        found[str(name)] = int(pid)
    rundir = ws.airflow_home / "run"
    if rundir.is_dir():
        for f in rundir.glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                found.setdefault(f.stem, int(f.read_text().strip()))
            f.unlink(missing_ok=True)
    return {n: p for n, p in found.items() if process_alive(p) and pid_is_ours(p, ws)}


def _own_lineage() -> set[int]:
    """This process and its ancestors: never signalled, whatever their environment says."""
    pids = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids.update(p.pid for p in psutil.Process().parents())
    return pids


def _marked_as_ours(proc: psutil.Process, ws: WorkspaceLocation, groups: set[int]) -> bool:
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


_STEP_MARKER = "MLPIPE_PIPELINE_RUN_ID"  # set for every step script (contract/run_context.py)


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (reaps our own Popen children; pid 1 here does not reap orphans)."""
    if reap_exited(proc.pid):
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

    def __init__(self, ws: WorkspaceLocation, components: dict[str, int]) -> None:
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


def stop_processes(ws: WorkspaceLocation, timeout: float) -> StopReport:
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
    state_path(ws).unlink(missing_ok=True)
    if run.report:
        log.info("stopped the embedded Airflow of %s:\n%s", ws.home, "\n".join(run.report.lines()))
    return run.report
