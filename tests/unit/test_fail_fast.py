"""``continue_on_step_failure`` at the step lifecycle (no Airflow): a failed step stops the run's other steps.

Steps are driven through ``execute_step`` with real scripts and a real store, as a task would; the failed
sibling is whatever another step of the same pipeline run recorded. Events are ordered with files.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from airflow_mlpipe import Pipeline, PipelineData, PythonScriptStep, RunConfiguration
from airflow_mlpipe.runtime import fail_fast
from airflow_mlpipe.runtime.processes import pid_alive
from airflow_mlpipe.runtime.step_runner import StepExecution, StepFailed, run_python_step
from tests.helpers.waiting import wait_for_file, wait_until

#: records its pid, then waits while ``hold`` exists; writes ``done`` and its output at the end
WAITER = """\
import json, os, sys, time
ctl = os.environ["CTL"]
with open(os.path.join(ctl, "started.tmp"), "w") as fh:
    json.dump({"pid": os.getpid()}, fh)
os.replace(os.path.join(ctl, "started.tmp"), os.path.join(ctl, "started"))
deadline = time.monotonic() + 60
while os.path.exists(os.path.join(ctl, "hold")) and time.monotonic() < deadline:
    time.sleep(0.1)
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "o.txt"), "w").write("done")
open(os.path.join(ctl, "done"), "w").write("done")
"""
FAILS = "import sys\nprint('boom: bad input')\nsys.exit(3)\n"


def _execution(workspace, tmp_path: Path, script: str, name: str, run_id: str = "run-1", **fields) -> StepExecution:
    src = tmp_path / f"src-{name}"
    src.mkdir(exist_ok=True)
    (src / "s.py").write_text(script)
    ctl = tmp_path / f"ctl-{name}"
    ctl.mkdir(exist_ok=True)
    rc = RunConfiguration()
    rc.environment_variables = {"CTL": str(ctl)}
    out = PipelineData(f"out_{name}")
    step = PythonScriptStep("s.py", name=name, arguments=["--out", out], outputs=[out], source_directory=str(src),
                            runconfig=rc, allow_reuse=False)
    spec = Pipeline(workspace, [step]).to_spec("p")
    return StepExecution(workspace, run_id, "exp", "p", spec["steps"][0],
                         {"parameters": {}, "default_datastore": None}, {}, lambda t, o: None, **fields)


def _fail(workspace, tmp_path: Path, name: str = "a", **fields) -> dict:
    with pytest.raises(StepFailed, match="boom"):
        run_python_step(_execution(workspace, tmp_path, FAILS, name, **fields))
    return workspace.store.get_step_run(f"run-1.{name}")


def test_final_failure_is_marked_to_stop_the_run(workspace, tmp_path):
    row = _fail(workspace, tmp_path, "a", clear_number=2)
    assert row["status"] == "Failed" and row["details"][fail_fast.MARK] == 2
    # a try that Airflow retries, or a run that continues on failure, stops nothing
    assert fail_fast.MARK not in _fail(workspace, tmp_path, "b", last_try=False)["details"]
    assert fail_fast.MARK not in _fail(workspace, tmp_path, "c", continue_on_step_failure=True)["details"]


def test_step_does_not_start_after_a_sibling_failed(workspace, tmp_path):
    _fail(workspace, tmp_path, "a")
    later = _execution(workspace, tmp_path, WAITER, "later")
    with pytest.raises(fail_fast.RunStopped, match=r"'later' was not started: step 'a' failed \(.*boom: bad input\)"):
        run_python_step(later)
    assert not (tmp_path / "ctl-later" / "started").exists(), "the script ran"
    row = workspace.store.get_step_run("run-1.later")
    assert row["status"] == "Canceled" and row["start_time"] is None and "step 'a' failed" in row["error"]


def test_failures_of_other_runs_retries_and_rounds_stop_nothing(workspace, tmp_path):
    _fail(workspace, tmp_path, "a", clear_number=0)
    _fail(workspace, tmp_path, "b", last_try=False)
    for name, fields in (("next_round", {"clear_number": 1}), ("continues", {"continue_on_step_failure": True})):
        result = run_python_step(_execution(workspace, tmp_path, WAITER, name, **fields))
        assert (tmp_path / f"ctl-{name}" / "done").exists() and result.outputs
    other_run = _execution(workspace, tmp_path, WAITER, "other", run_id="run-2")
    run_python_step(other_run)
    assert workspace.store.get_step_run("run-2.other")["status"] == "Finished"


def test_running_step_is_stopped_when_a_sibling_fails(workspace, tmp_path):
    running = _execution(workspace, tmp_path, WAITER, "running")
    ctl = tmp_path / "ctl-running"
    (ctl / "hold").write_text("")
    raised: list[BaseException] = []

    def drive() -> None:
        try:
            run_python_step(running)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            raised.append(exc)

    thread = threading.Thread(target=drive)
    thread.start()
    pid = json.loads(wait_for_file(ctl / "started", "the running step's script to start"))["pid"]
    _fail(workspace, tmp_path, "a")
    thread.join(timeout=30)
    assert not thread.is_alive(), "the running step was not stopped"
    assert len(raised) == 1 and isinstance(raised[0], fail_fast.RunStopped), raised
    assert "'running' was stopped: step 'a' failed" in str(raised[0])
    wait_until(lambda: not pid_alive(pid), "the stopped script to be gone", timeout=10)
    assert not (ctl / "done").exists(), "the script ran to its end"
    row = workspace.store.get_step_run("run-1.running")
    assert row["status"] == "Canceled" and "step 'a' failed" in row["error"] and not row["outputs"]
    staged = list(Path(workspace.home).parent.rglob("*.partial-*"))
    assert staged == [], staged


def test_flag_comes_from_the_submission_then_the_schedule_then_the_spec():
    spec_true = {"spec": {"continue_on_step_failure": True}}
    assert fail_fast.continue_on_step_failure({}, {}) is False
    assert fail_fast.continue_on_step_failure({}, spec_true) is True
    assert fail_fast.continue_on_step_failure({"continue_on_step_failure": False}, spec_true) is False
    assert fail_fast.continue_on_step_failure(
        {}, {**spec_true, "run_defaults": {"continue_on_step_failure": False}}) is False
    assert fail_fast.continue_on_step_failure({"continue_on_step_failure": "false"}, spec_true) is False
