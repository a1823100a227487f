"""``continue_on_step_failure`` as in v1, through the embedded Airflow (SQLite, LocalExecutor).

One pipeline, two independent branches: ``a`` fails (its dependant ``a2`` must never run) while ``b1`` runs;
``b2`` consumes ``b1``'s output. Every task gets one retry (``retries=1``), so ``a`` fails twice: only its
final failure counts. With v1's default (False) the run stops at that failure: ``b1`` is stopped mid-run and
``b2`` never starts. With True, ``b1`` and ``b2`` finish. Events are ordered with files in a control folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
from tests.helpers.embedded import embedded_airflow, working_directory, write_project_config
from tests.helpers.waiting import wait_for_file, wait_until

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(600)]

#: shared by every script: the control folder and a bounded wait for a file to appear
PRELUDE = """\
import json, os, sys, time
ctl = os.environ["CTL"]
def wait_for(name, timeout=120):
    deadline = time.monotonic() + timeout
    while not os.path.exists(os.path.join(ctl, name)) and time.monotonic() < deadline:
        time.sleep(0.1)
def mark(name, text=""):
    open(os.path.join(ctl, name + ".tmp"), "w").write(text)
    os.replace(os.path.join(ctl, name + ".tmp"), os.path.join(ctl, name))
def output(value):
    out = sys.argv[sys.argv.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "o.txt"), "w").write(value)
"""
#: fails once b1 runs; its second try first waits for the test's go
FAILS = PRELUDE + """\
with open(os.path.join(ctl, "a_tries"), "a") as fh:
    fh.write("try\\n")
tries = len(open(os.path.join(ctl, "a_tries")).read().splitlines())
wait_for("b1_started")
if tries > 1:
    mark("a_try2")
    wait_for("a_go")
print("boom: step a fails")
sys.exit(1)
"""
#: records its pid, runs until the test releases it, then writes its output
SLOW = PRELUDE + """\
mark("b1_started", json.dumps({"pid": os.getpid()}))
wait_for("release")
output("b1")
mark("b1_done")
"""
#: a dependant: writes its output and a marker named after itself
QUICK = PRELUDE + """\
name = sys.argv[sys.argv.index("--name") + 1]
output(name)
mark(name + "_done")
"""


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("cosf")
    write_project_config(root, {"AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
                                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1"})
    with working_directory(root):
        ws = Workspace.from_config()
        with embedded_airflow(ws, root / "dags") as info:
            yield root, ws, info


class Branches:
    """The two-branch pipeline of one scenario, submitted, with its control folder."""

    def __init__(self, root: Path, ws: Workspace, name: str, **submit_args) -> None:
        self.ws, self.ctl = ws, root / f"ctl-{name}"
        self.ctl.mkdir()
        src = root / f"src-{name}"
        src.mkdir()
        for file, text in (("fails.py", FAILS), ("slow.py", SLOW), ("quick.py", QUICK)):
            (src / file).write_text(text)
        rc = RunConfiguration()
        rc.environment_variables = {"CTL": str(self.ctl)}
        a_out, b1_out, a2_out, b2_out = (PipelineData(n) for n in ("a_out", "b1_out", "a2_out", "b2_out"))

        def step(script: str, step_name: str, out: PipelineData, inp: PipelineData | None = None):
            args = ["--out", out, "--name", step_name] + (["--in", inp] if inp is not None else [])
            return PythonScriptStep(script, name=step_name, arguments=args, outputs=[out],
                                    inputs=[inp] if inp is not None else [], source_directory=str(src),
                                    runconfig=rc, allow_reuse=False)

        steps = [step("fails.py", "a", a_out), step("quick.py", "a2", a2_out, a_out),
                 step("slow.py", "b1", b1_out), step("quick.py", "b2", b2_out, b1_out)]
        self.run = Experiment(ws, f"cosf-{name}").submit(Pipeline(ws, steps), **submit_args)
        self.dag_id = ws.store.get_pipeline_run(self.run.id)["dag_id"]

    def b1_pid(self) -> int:
        return json.loads(wait_for_file(self.ctl / "b1_started", "step b1 to start", timeout=180))["pid"]

    def row(self, step: str) -> dict:
        return self.ws.store.get_step_run(f"{self.run.id}.{step}") or {}

    def fail_a(self) -> None:
        """Let a's first try fail; while its second try runs b1 must still run; then let a fail for good."""
        wait_for_file(self.ctl / "a_try2", "the retry of step a to start", timeout=180)
        assert self.row("b1").get("status") == "Running", self.row("b1")
        assert not (self.ctl / "b1_done").exists()
        (self.ctl / "a_go").write_text("")

    def task_states(self, info) -> dict[str, str]:
        with AirflowClient(info.url, info.username, info.password) as client:
            return {ti["task_id"]: ti.get("state") for ti in client.task_instances(self.dag_id, self.run.id)}

    def statuses(self) -> dict[str, str]:
        return {s.name: s.get_status() for s in self.run.get_steps()}


def test_default_stops_the_run_at_its_first_failed_step(airflow):
    root, ws, info = airflow
    s = Branches(root, ws, "default")
    pid = s.b1_pid()
    assert pid_alive(pid)
    s.fail_a()
    assert s.run.wait_for_completion(show_output=False, timeout_seconds=240, raise_on_error=False) == "Failed"
    wait_until(lambda: not pid_alive(pid), "b1's script to be stopped", timeout=30)
    assert not (s.ctl / "b1_done").exists(), "b1 ran to its end although step a failed"
    assert not (s.ctl / "b2_done").exists() and not (s.ctl / "a2_done").exists()
    assert s.statuses() == {"a": "Failed", "a2": "NotStarted", "b1": "Canceled", "b2": "NotStarted"}
    b1 = s.row("b1")
    assert "step 'a' failed" in b1["error"] and "continue_on_step_failure is False" in b1["error"], b1
    assert not b1["outputs"]
    states = s.task_states(info)
    assert states["b1"] == "failed" and states["b2"] == "upstream_failed", states
    assert len((s.ctl / "a_tries").read_text().splitlines()) == 2


def test_true_lets_independent_branches_finish(airflow):
    root, ws, info = airflow
    s = Branches(root, ws, "continue", continue_on_step_failure=True)
    pid = s.b1_pid()
    s.fail_a()
    # a failed for good and Airflow has acted on it (its dependant will not run); b1 still runs
    wait_until(lambda: s.task_states(info).get("a2") == "upstream_failed", "a's dependant to be upstream_failed",
               timeout=120)
    assert pid_alive(pid) and s.row("b1").get("status") == "Running", s.row("b1")
    (s.ctl / "release").write_text("")
    assert s.run.wait_for_completion(show_output=False, timeout_seconds=240, raise_on_error=False) == "Failed"
    assert (s.ctl / "b1_done").exists() and (s.ctl / "b2_done").exists()
    assert not (s.ctl / "a2_done").exists()
    assert s.statuses() == {"a": "Failed", "a2": "NotStarted", "b1": "Finished", "b2": "Finished"}
    for step in ("b1", "b2"):
        out = s.row(step)["outputs"][f"{step}_out"]
        assert (Path(Datastore.get(ws, out["datastore"]).full_path(out["path"])) / "o.txt").read_text() == step
