"""PythonScriptSteps in Docker containers, through the Docker provider's DockerOperator and the real ``docker``
client, against a Docker Engine API double on a unix socket (no engine runs here; see tests/helpers/docker_engine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import pytest

from airflow_mlpipe import Datastore, Pipeline, PipelineData, PythonScriptStep, RunConfiguration
from airflow_mlpipe.sdk.environment import Environment
from tests.helpers.docker_engine import DockerEngineDouble

pytestmark = pytest.mark.timeout(300)

PRODUCE = """
import os, sys
from azureml.core import Run
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "numbers.txt"), "w").write("\\n".join(str(i) for i in range(5)))
Run.get_context().log("produced", 5)
print("produced in a container; GREETING =", os.environ.get("GREETING"), "; python", sys.version.split()[0])
print("secret seen:", os.environ.get("DB_PASSWORD") == "s3cret", os.environ.get("API_TOKEN") == "tok-42")
print("worker HOME leaked:", os.environ.get("MLPIPE_TEST_WORKER_ONLY") is not None)
"""
CONSUME = """
import os, sys
nums = [int(x) for x in open(os.path.join(sys.argv[2], "numbers.txt")).read().split()]
os.makedirs(sys.argv[4], exist_ok=True)
open(os.path.join(sys.argv[4], "sum.txt"), "w").write(str(sum(nums)))
"""
#: stdout and stderr are separate pipes (in Docker too): only writes apart in time keep their order in the log
FAIL = """
import sys, time
print("working on it", flush=True)
time.sleep(0.5)
print("bad things happened", file=sys.stderr)
sys.exit(3)
"""
SLOW = """
import time
print("started, now sleeping", flush=True)
time.sleep(600)
"""


@pytest.fixture
def engine():
    folder = tempfile.mkdtemp(prefix="dk-")  # a unix socket path must stay short
    with DockerEngineDouble(folder) as double:
        double.add_image("python:3.11-slim", python=shutil.which("python3", path="/usr/bin") or "/usr/bin/python3")
        double.add_image("busybox:latest", python=None)
        yield double


@pytest.fixture
def project(tmp_path, monkeypatch, engine):
    """A workspace whose config points Docker steps at the double; the step sources in ``steps/``."""
    from airflow_mlpipe.workspace import Workspace

    (tmp_path / ".mlpipe").mkdir()
    (tmp_path / ".mlpipe" / "config.json").write_text(json.dumps({"docker_url": engine.url}))
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "steps"
    src.mkdir()
    for name, text in (("produce.py", PRODUCE), ("consume.py", CONSUME), ("fail.py", FAIL), ("slow.py", SLOW)):
        (src / name).write_text(text)
    return Workspace.from_config(), src


def _docker_runconfig(image: str = "python:3.11-slim", env: dict | None = None) -> RunConfiguration:
    rc = RunConfiguration()
    rc.environment = Environment.from_docker_image("in-docker", image)
    rc.environment_variables = env or {}
    return rc


def _step_container(engine: DockerEngineDouble, step: str):
    found = [c for c in engine.all_containers()
             if c.config.get("Labels", {}).get("mlpipe.step") == step and "mlpipe.check" not in c.config["Labels"]]
    assert len(found) == 1, [c.config.get("Labels") for c in engine.all_containers()]
    return found[0]


def test_docker_step_output_is_committed_and_consumed(run_dag, project, engine, monkeypatch, capfd):
    ws, src = project
    monkeypatch.setenv("MLPIPE_TEST_API_TOKEN", "tok-42")
    monkeypatch.setenv("MLPIPE_TEST_WORKER_ONLY", "x")
    numbers, total = PipelineData("numbers"), PipelineData("total")
    rc = _docker_runconfig(env={"GREETING": "hello", "DB_PASSWORD": "s3cret", "API_TOKEN": "$MLPIPE_TEST_API_TOKEN"})
    produce = PythonScriptStep("produce.py", name="produce", arguments=["--out", numbers], outputs=[numbers],
                               source_directory=str(src), runconfig=rc)
    consume = PythonScriptStep("consume.py", name="consume", arguments=["--inp", numbers, "--out", total],
                               inputs=[numbers], outputs=[total], source_directory=str(src))
    dr = run_dag(Pipeline(ws, steps=[produce, consume]), "docker_handoff",
                 {"__mlpipe": {"run_id": "run-docker", "experiment": "docker"}})
    assert dr.state == "success"
    steps = {r["step_name"]: r for r in ws.store.list_step_runs("run-docker")}
    assert {s: r["status"] for s, r in steps.items()} == {"produce": "Finished", "consume": "Finished"}
    out = steps["consume"]["outputs"]["total"]
    assert (Path(Datastore.get(ws, out["datastore"]).full_path(out["path"])) / "sum.txt").read_text() == "10"
    assert ws.store.get_metrics("run-docker.produce") == {"produced": 5}  # run.log() in the container
    # the script's output is in the task log, streamed from the container
    captured = capfd.readouterr()
    logged = captured.out + captured.err
    assert "produced in a container; GREETING = hello ; python 3." in logged
    lines = [ln for ln in logged.splitlines() if "secret seen" in ln or "leaked" in ln]
    assert "secret seen: True True" in logged and "worker HOME leaked: False" in logged, lines
    assert "step runtime OK on Python 3." in logged  # the image was checked before the step
    # the container's life through the Engine API: pull, create, attach, start, wait, remove
    paths = engine.paths()
    assert "/images/create" in paths and "/containers/create" in paths
    c = _step_container(engine, "produce")
    assert {f"/containers/{c.id}/{a}" for a in ("attach", "start", "wait")} <= set(paths)
    assert ("DELETE", f"/containers/{c.id}") in engine.requests and not engine.containers
    assert c.exit_code == 0 and c.config["Image"] == "python:3.11-slim"
    assert c.config["Cmd"][:2] == ["python", "produce.py"] and c.config["WorkingDir"].endswith("/snapshot")
    # mounts at the same paths: the work folder, the step runtime (read-only) and the output's datastore folder
    assert all(m["Type"] == "bind" and m["Source"] == m["Target"] for m in c.mounts)
    assert any(m["ReadOnly"] and "/runtime/" in m["Source"] for m in c.mounts)
    assert c.env["AZUREML_RUN_ID"] == "run-docker.produce" and c.env["GREETING"] == "hello"
    assert "MLPIPE_TEST_WORKER_ONLY" not in c.env and c.env["PATH"].startswith("/usr/local/sbin")
    assert c.config["User"] == f"{os.getuid()}:{os.getgid()}"


def test_secrets_go_to_private_environment_not_the_rendered_one(project):
    from airflow_mlpipe.compiler.dag_builder import build_dag
    from airflow_mlpipe.operators.docker_step import DockerStepOperator

    ws, src = project
    rc = _docker_runconfig(env={"GREETING": "hello", "DB_PASSWORD": "s3cret", "API_TOKEN": "$MLPIPE_TEST_API_TOKEN"})
    o = PipelineData("o")
    step = PythonScriptStep("produce.py", name="produce", arguments=["--out", o], outputs=[o],
                            source_directory=str(src), runconfig=rc)
    dag = build_dag(Pipeline(ws, steps=[step]).to_spec("docker_secrets"))
    op = dag.task_dict["produce"]
    assert isinstance(op, DockerStepOperator)
    assert "environment" in op.template_fields and op.environment == {"GREETING": "hello"}
    assert "s3cret" not in json.dumps(op.environment)
    assert set(op._private_environment) == {"DB_PASSWORD", "API_TOKEN"}
    assert "s3cret" not in json.dumps(op._private_environment)  # resolved on the worker at run time


def test_nonzero_exit_fails_the_step_with_the_log_tail(run_dag, project, engine):
    ws, src = project
    step = PythonScriptStep("fail.py", name="fail", source_directory=str(src), runconfig=_docker_runconfig())
    dr = run_dag(Pipeline(ws, steps=[step]), "docker_fail", {"__mlpipe": {"run_id": "run-dfail"}})
    assert dr.state == "failed"
    row = ws.store.get_step_run("run-dfail.fail")
    assert row["status"] == "Failed"
    assert "exited with code 3 in Docker image python:3.11-slim" in row["error"]
    assert "bad things happened" in row["error"]
    assert _step_container(engine, "fail").exit_code == 3 and not engine.containers  # removed after failing


def test_image_without_python_fails_clearly_before_the_step(run_dag, project, engine):
    ws, src = project
    o = PipelineData("o")
    step = PythonScriptStep("produce.py", name="nopython", arguments=["--out", o], outputs=[o],
                            source_directory=str(src), runconfig=_docker_runconfig("busybox"))
    dr = run_dag(Pipeline(ws, steps=[step]), "docker_nopython", {"__mlpipe": {"run_id": "run-nopy"}})
    assert dr.state == "failed"
    error = ws.store.get_step_run("run-nopy.nopython")["error"]
    assert "Docker image 'busybox' cannot run the step runtime" in error
    assert 'exec: "python": executable file not found' in error
    labels = [c.config["Labels"] for c in engine.all_containers()]
    assert labels and all(lb.get("mlpipe.check") == "python" for lb in labels), "the step itself never started"
    assert not engine.containers


def test_killed_task_stops_and_removes_the_container(run_dag, project, engine):
    """Airflow stops a task with SIGTERM, whose handler calls on_kill: the container is stopped and removed.
    Also: a step on a Docker compute target runs in the workspace's default image."""
    ws, src = project
    step = PythonScriptStep("slow.py", name="slow", source_directory=str(src),
                            compute_target=("dockerhost", "docker"))
    assert step.compute == {"name": "dockerhost", "type": "docker", "queue": None}

    def kill_when_running() -> None:
        engine.wait_for_running(where=lambda c: "mlpipe.check" not in c.config["Labels"])  # not the image check
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    previous = signal.getsignal(signal.SIGTERM)
    killer.start()
    try:
        dr = run_dag(Pipeline(ws, steps=[step]), "docker_kill", {"__mlpipe": {"run_id": "run-dkill"}})
    finally:
        signal.signal(signal.SIGTERM, previous)
    killer.join(5)
    assert dr.state == "failed"
    c = _step_container(engine, "slow")
    assert c.config["Image"] == "python:3.11-slim"
    assert c.stopped_by == "stop" and c.exit_code == 128 + signal.SIGTERM, (c.stopped_by, c.exit_code)
    assert ("DELETE", f"/containers/{c.id}") in engine.requests and not engine.containers
    row = ws.store.get_step_run("run-dkill.slow")
    assert row["status"] == "Canceled", row["error"]


def test_mounts_use_the_named_volume_every_worker_sees(run_dag, tmp_path, monkeypatch, engine):
    """Compose: the worker's /shared is a named volume; the engine (on the host) mounts that volume."""
    from airflow_mlpipe.runtime.docker_runner import container_mounts
    from airflow_mlpipe.workspace import Workspace

    assert container_mounts(["/shared/home/docker-work/x", "/shared/datastore/a", "/opt/rt"],
                            {"/shared": "compose_mlpipe-shared"}, read_only={"/opt/rt"}) == [
        {"target": "/opt/rt", "source": "/opt/rt", "type": "bind", "read_only": True},
        {"target": "/shared", "source": "compose_mlpipe-shared", "type": "volume", "read_only": False}]
    (tmp_path / ".mlpipe").mkdir()
    (tmp_path / ".mlpipe" / "config.json").write_text(json.dumps(
        {"docker_url": engine.url, "docker_volumes": {str(tmp_path): "mlpipe-shared"}}))
    engine.add_volume("mlpipe-shared", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    (tmp_path / "produce.py").write_text(PRODUCE)
    out = PipelineData("numbers")
    step = PythonScriptStep("produce.py", name="produce", arguments=["--out", out], outputs=[out],
                            source_directory=str(tmp_path), runconfig=_docker_runconfig())
    dr = run_dag(Pipeline(ws, steps=[step]), "docker_volume", {"__mlpipe": {"run_id": "run-dvol"}})
    assert dr.state == "success"
    c = _step_container(engine, "produce")
    assert c.mounts == [{"Type": "volume", "Source": "mlpipe-shared", "Target": str(tmp_path), "ReadOnly": False}]
    row = ws.store.get_step_run("run-dvol.produce")
    assert (Path(Datastore.get(ws).full_path(row["outputs"]["numbers"]["path"])) / "numbers.txt").exists()


def test_environment_from_dockerfile_is_built_once_and_runs_the_step(run_dag, project, engine):
    ws, src = project
    dockerfile = "FROM python:3.11-slim\nRUN echo preparing\n"
    steps = []
    for name in ("first", "second"):
        rc = RunConfiguration()
        rc.environment = Environment.from_dockerfile("built", dockerfile)
        o = PipelineData(f"{name}_out")
        steps.append(PythonScriptStep("produce.py", name=name, arguments=["--out", o], outputs=[o],
                                      source_directory=str(src), runconfig=rc, allow_reuse=False))
    steps[1].run_after(steps[0])
    dr = run_dag(Pipeline(ws, steps=steps), "docker_built", {"__mlpipe": {"run_id": "run-dbuilt"}})
    assert dr.state == "success"
    assert len(engine.builds) == 1 and engine.builds[0]["dockerfile"] == dockerfile  # built once, reused
    images = {_step_container(engine, n).config["Image"] for n in ("first", "second")}
    assert images == {engine.builds[0]["tag"]} and engine.builds[0]["tag"].startswith("mlpipe-env:")
