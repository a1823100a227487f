"""A step script dies with its task, leaves no partial output, and its step run never stays ``Running``.

Through the embedded Airflow (SQLite, LocalExecutor) with ``retries=1`` for every task: the task process (the
parent of the step script) is SIGKILLed mid-step, as the OOM killer or a lost worker would.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from airflow_mlpipe import (
    Datastore,
    Experiment,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    RunConfiguration,
    Workspace,
)
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from airflow_mlpipe.runtime.processes import pid_alive
from airflow_mlpipe.store.tables_cache import cache_entries
from tests.helpers.embedded import embedded_airflow, working_directory, write_project_config
from tests.helpers.waiting import wait_for_json_lines, wait_until

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(600)]

#: writes a partial output, records its pid and its parent's (the task process), then waits while ``hang``
#: exists in the control folder; its child ``sleep`` stands for the worker processes a script may start
SLOW = """\
import json, os, subprocess, sys, time
out, ctl = sys.argv[2], os.environ["LIFETIME_DIR"]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "part.txt"), "w").write("partial")
child = subprocess.Popen(["sleep", "600"])
with open(os.path.join(ctl, "pids.jsonl"), "a") as fh:
    fh.write(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "child": child.pid, "out": out}) + "\\n")
while os.path.exists(os.path.join(ctl, "hang")):
    time.sleep(0.2)
child.kill()
open(os.path.join(out, "result.txt"), "w").write(sys.argv[4])
"""


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifetime")
    write_project_config(root, {"AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
                                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1"})
    with working_directory(root):
        ws = Workspace.from_config()
        with embedded_airflow(ws, root / "dags") as info:
            yield root, ws, info


class Scenario:
    """One pipeline of one slow step, with its control folder."""

    def __init__(self, root: Path, ws: Workspace, name: str) -> None:
        self.ws, self.name = ws, name
        self.ctl = root / f"ctl-{name}"
        self.ctl.mkdir()
        src = root / f"src-{name}"
        src.mkdir()
        (src / "slow.py").write_text(SLOW)
        (self.ctl / "hang").write_text("")
        out = PipelineData("out")
        rc = RunConfiguration()
        rc.environment_variables = {"LIFETIME_DIR": str(self.ctl)}
        step = PythonScriptStep("slow.py", name="slow", arguments=["--out", out, "--tag", name], outputs=[out],
                                source_directory=str(src), runconfig=rc)
        self.run = Experiment(ws, f"lifetime-{name}").submit(Pipeline(ws, [step]))
        self.dag_id = ws.store.get_pipeline_run(self.run.id)["dag_id"]

    def started(self, n: int) -> list[dict]:
        """The pid records of the first ``n`` tries, waiting for them."""
        return wait_for_json_lines(self.ctl / "pids.jsonl", n, f"try {n} of step 'slow' to start its script",
                                   timeout=180)

    def step_row(self) -> dict:
        return self.ws.store.get_step_run(f"{self.run.id}.slow")

    def partials(self) -> list[Path]:
        return list(Path(Datastore.get(self.ws).full_path(f"azureml/{self.run.id}")).rglob("*.partial-*"))

    def cache_entries(self) -> int:
        with self.ws.store.begin() as conn:
            return conn.scalar(select(func.count()).select_from(cache_entries)
                               .where(cache_entries.c.step_name == "slow",
                                      cache_entries.c.step_run_id.like(f"{self.run.id}.%")))


def _kill_task_process(record: dict) -> None:
    """SIGKILL the task process that runs the script; the script and its child must go within seconds."""
    assert ".partial-" in record["out"], record  # the script writes into a staging folder
    os.kill(record["ppid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(record["pid"]),
               f"step script {record['pid']} to die with its task process {record['ppid']}", timeout=10)


def _dag_run_state(info, dag_id: str, run_id: str, timeout: float = 240) -> str:
    with AirflowClient(info.url, info.username, info.password) as client:
        return client.wait_for_dag_run(dag_id, run_id, timeout=timeout)["state"]


def test_killed_task_takes_its_script_and_the_retry_finishes_clean(airflow):
    root, ws, info = airflow
    s = Scenario(root, ws, "retry")
    first = s.started(1)[0]
    _kill_task_process(first)
    (s.ctl / "hang").unlink()  # the retry runs through
    second = s.started(2)[1]
    assert second["ppid"] != first["ppid"]
    assert _dag_run_state(info, s.dag_id, s.run.id) == "success"
    assert not pid_alive(first["child"]), "the killed try's child process outlived the retry's start"
    row = s.step_row()
    assert row["status"] == "Finished" and row["try_number"] == 2, row
    out = Path(Datastore.get(ws).full_path(row["outputs"]["out"]["path"]))
    assert sorted(p.name for p in out.iterdir()) == ["part.txt", "result.txt"]
    assert s.partials() == [], "a staging folder of the killed try was left behind"
    assert s.cache_entries() == 1


def test_step_killed_in_every_try_ends_failed_with_nothing_left(airflow):
    root, ws, info = airflow
    s = Scenario(root, ws, "dead")
    records = [s.started(1)[0]]
    _kill_task_process(records[0])
    records.append(s.started(2)[1])
    _kill_task_process(records[1])
    assert _dag_run_state(info, s.dag_id, s.run.id) == "failed"
    row = wait_until(lambda: (r := s.step_row())["status"] != "Running" and r, "the step run to leave 'Running'",
                     timeout=30)
    assert row["status"] in ("Failed", "Canceled"), row
    assert "process ended without finishing the step" in (row["error"] or ""), row
    assert ws.store.get_pipeline_run(s.run.id)["status"] == "Failed"
    wait_until(lambda: s.partials() == [], "the staging folders of the killed tries to be removed", timeout=30)
    wait_until(lambda: not any(pid_alive(r["child"]) for r in records),
               "the children of the killed scripts to be gone", timeout=30)
    assert s.cache_entries() == 0


def test_run_marked_failed_stops_the_script_group(airflow):
    """Airflow stops the task (here: the run is marked failed): on_kill takes the script's whole group."""
    root, ws, info = airflow
    s = Scenario(root, ws, "stopped")
    record = s.started(1)[0]
    with AirflowClient(info.url, info.username, info.password) as client:
        client.set_dag_run_state(s.dag_id, s.run.id, "failed")
    wait_until(lambda: not pid_alive(record["pid"]) and not pid_alive(record["child"]),
               "the script and its child to be stopped", timeout=30)
    row = wait_until(lambda: (r := s.step_row())["status"] != "Running" and r, "the step run to leave 'Running'",
                     timeout=30)
    assert row["status"] in ("Failed", "Canceled"), row
    wait_until(lambda: s.partials() == [], "the staging folder to be removed", timeout=30)
    assert s.cache_entries() == 0
