"""Airflow going away while a run is waited for, and ``mlpipe airflow stop`` leaving nothing behind.

Real embedded Airflow (SQLite, LocalExecutor), real ``mlpipe`` processes. The step script waits for a file the
test creates, so events are ordered by files and output lines, never by sleeps. "Airflow goes away" is a crash:
every component's process group and the step script get SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from airflow_mlpipe import Experiment, Pipeline, PythonScriptStep, Workspace
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from airflow_mlpipe.sdk.runs import PIPELINE_STATUS
from tests.helpers.embedded import working_directory, write_project_config
from tests.helpers.waiting import wait_for_file

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(600)]

# The step: starts a helper in a session of its own (like a server it launches: out of reach of a kill of the
# step's process group, and a parent-death signal is not inherited), writes both pids, waits for the "go" file.
WAITER = """
import os, subprocess, sys, time
started, go = sys.argv[1], sys.argv[2]
helper = subprocess.Popen([sys.executable, "-c",
                           "import os, sys, time\\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.1)", go],
                          start_new_session=True)
with open(started + ".tmp", "w") as fh:
    fh.write(f"{os.getpid()} {helper.pid}")
os.replace(started + ".tmp", started)
while not os.path.exists(go):
    time.sleep(0.1)
helper.wait()
print("go file seen")
"""

PIPELINE_FILE = """
from airflow_mlpipe import Pipeline, PythonScriptStep, Workspace

ws = Workspace.from_config()
step = PythonScriptStep(name="waiter", script_name="waiter.py", source_directory={src!r},
                        arguments=[{started!r}, {go!r}], allow_reuse=False)
pipeline = Pipeline(workspace=ws, steps=[step])
"""

# A crashed scheduler's job counts as dead after 15 s, and orphaned tasks are looked for every 5 s, so that a
# restarted Airflow settles the crashed run within seconds rather than minutes.
SETTINGS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("outage")
    (root / "dags").mkdir()
    (root / "steps").mkdir()
    (root / "steps" / "waiter.py").write_text(WAITER)
    write_project_config(root, SETTINGS)
    with working_directory(root):
        ws = Workspace.from_config()
        try:
            yield root, ws, local_airflow._free_port()
        finally:
            local_airflow.stop(ws, timeout=20)


def _start(root: Path, ws: Workspace, port: int) -> local_airflow.AirflowInfo:
    return local_airflow.start(ws, dags_folder=root / "dags", port=port, timeout=180)


class _Mlpipe:
    """An ``mlpipe`` process whose output lines are collected with the time they arrived."""

    def __init__(self, root: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # a user's shell
        self.proc = subprocess.Popen([sys.executable, "-m", "airflow_mlpipe.cli", *args], cwd=root, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, None), daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read(self, stream, into) -> None:
        for line in stream:
            if into is None:
                self.errors.append(line.rstrip("\n"))
            else:
                into.append((time.monotonic(), line.rstrip("\n")))

    def wait_line(self, text: str, timeout: float) -> float:
        """When a stdout line containing ``text`` arrived (waits for it up to ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for when, line in list(self.lines):
                if text in line:
                    return when
            if self.proc.poll() is not None and all(text not in line for _, line in self.lines):
                for thread in self._threads:
                    thread.join(5)
                if all(text not in line for _, line in self.lines):
                    break
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r} within {timeout:.0f} s:\n{self.output()}")

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(10)
        return code

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines) + "\n--- stderr:\n" + "\n".join(self.errors)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _wait_file(path: Path, timeout: float, why: str) -> str:
    return wait_for_file(path, why, timeout=timeout)


def _pipeline_file(root: Path, name: str) -> tuple[Path, Path, Path]:
    started, go = root / f"{name}.started", root / f"{name}.go"
    path = root / f"{name}.py"
    path.write_text(PIPELINE_FILE.format(src=str(root / "steps"), started=str(started), go=str(go)))
    return path, started, go


def _airflow_processes(info: local_airflow.AirflowInfo) -> dict[int, float]:
    """pid -> create time of every component and all its descendants."""
    found: dict[int, float] = {}
    for pid in info.pids.values():
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                found[p.pid] = p.create_time()
    return found


def _crash(info: local_airflow.AirflowInfo, step_pids: list[int]) -> float:
    """Airflow goes away at once: SIGKILL to every component, every descendant and the step processes."""
    for pid in [*_airflow_processes(info), *step_pids]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return time.monotonic()


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def _crashed_while_run_waits(root: Path, ws: Workspace, port: int, name: str, unreachable_timeout: int):
    """Airflow started and ``mlpipe run`` waiting for a pipeline whose step waits for its go file; Airflow crashes
    once the step runs, and ``mlpipe run`` says so within 10 s. Yields the Airflow info, the ``mlpipe run``
    process (killed on exit), the go file and when the crash happened."""
    info = _start(root, ws, port)
    path, started, go = _pipeline_file(root, name)
    waiter = _Mlpipe(root, "run", str(path), "--unreachable-timeout", str(unreachable_timeout))
    try:
        step_pids = [int(p) for p in _wait_file(started, 240, "the step never started").split()]
        crashed = _crash(info, step_pids)
        said = waiter.wait_line(f"Airflow at {info.url} is not answering; retrying", 15)
        assert said - crashed < 10, f"took {said - crashed:.1f} s to say so"
        yield info, waiter, go, crashed
    finally:
        waiter.kill()


def test_outage_is_reported_and_gives_up_after_the_unreachable_timeout(project):
    with _crashed_while_run_waits(*project, "giveup", unreachable_timeout=8) as (info, waiter, _, crashed):
        code = waiter.finish(60)
        ended = time.monotonic()
    out = waiter.output()
    assert code == 1, out
    assert 8 <= ended - crashed < 30, f"gave up {ended - crashed:.1f} s after the crash:\n{out}"
    assert sum("is not answering" in line for _, line in waiter.lines) == 1, out  # said once, not every poll
    error = "\n".join(waiter.errors)
    assert f"mlpipe: error: Airflow at {info.url} did not answer for " in error, out
    assert "limit 8 s" in error and "MLPIPE_AIRFLOW_UNREACHABLE_TIMEOUT" in error, out


def test_wait_resumes_when_airflow_comes_back(project):
    root, ws, port = project
    with _crashed_while_run_waits(root, ws, port, "resume", unreachable_timeout=400) as (info, waiter, go, _):
        assert waiter.proc.poll() is None, waiter.output()
        go.write_text("go")  # a re-run of the step (if Airflow re-queues it) finishes at once
        info = _start(root, ws, port)
        back = waiter.wait_line(f"Airflow at {info.url} is answering again", 300)
        code = waiter.finish(300)
    out = waiter.output()
    assert sum("is answering again" in line for _, line in waiter.lines) == 1, out
    final = waiter.wait_line("PipelineRun Status: ", 1)
    assert final > back
    shown = next(line for _, line in waiter.lines if "PipelineRun Status: " in line).split(": ")[1]
    run_id = next(line for _, line in waiter.lines if line.startswith("PipelineRunId: ")).split(": ")[1]
    row = ws.store.get_pipeline_run(run_id)
    with AirflowClient(info.url, info.username, info.password) as client:
        state = client.get_dag_run(row["dag_id"], row["airflow_run_id"])["state"]
    assert shown == PIPELINE_STATUS[state] == row["status"], out
    assert code == (0 if shown == "Finished" else 1), out


def test_stop_returns_when_no_process_is_left(project):
    root, ws, port = project
    info = _start(root, ws, port)
    started, go = root / "stop.started", root / "stop.go"
    step = PythonScriptStep(name="waiter", script_name="waiter.py", source_directory=str(root / "steps"),
                            arguments=[str(started), str(go)], allow_reuse=False)
    Experiment(ws, "stop-while-running").submit(Pipeline(ws, [step]))
    step_pid, helper_pid = (int(p) for p in _wait_file(started, 240, "the step never started").split())
    before = _airflow_processes(info)
    assert step_pid in before and helper_pid in before  # descendants (by ppid), in their own session
    assert os.getsid(step_pid) not in info.pids.values()

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    proc = subprocess.run([sys.executable, "-m", "airflow_mlpipe.cli", "airflow", "stop"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    left = {pid: " ".join(psutil.Process(pid).cmdline()) for pid, created in before.items() if _alive(pid, created)}
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not left, f"still running after `mlpipe airflow stop` returned: {left}\n{proc.stdout}"
    assert f"pid {step_pid} " in proc.stdout and f"pid {helper_pid} " in proc.stdout, proc.stdout
    assert local_airflow.status(ws) is None
