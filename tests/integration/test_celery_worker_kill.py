"""A Celery worker is SIGKILLed mid-step: the step is retried on the other worker and the run finishes, with no
partial output and one cache entry.

PostgreSQL (Airflow metadata and the airflow-mlpipe store), Redis (the broker, a private database) and two
``airflow celery worker`` processes on the same queue, started by ``local_airflow.start`` for a project whose
``.mlpipe/config.json`` asks for ``"celery_workers": 2``. Every task has ``retries=1``; Airflow notices the lost
worker by the missing task heartbeats (``task_instance_heartbeat_timeout`` shortened to 20 s).

PostgreSQL and Redis on 127.0.0.1 are required: when they are not reachable the test FAILS (never skips).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from airflow_mlpipe import Datastore, Experiment, Pipeline, PipelineData, PythonScriptStep, RunConfiguration
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from airflow_mlpipe.runtime.processes import pid_alive
from airflow_mlpipe.store.tables_cache import cache_entries
from tests.helpers.celery_cluster import celery_project
from tests.helpers.waiting import wait_for_json_lines, wait_until

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(600)]

#: writes a partial output, records its pid, its parent's (the task process) and all its ancestors' (which
#: worker runs it), then waits while ``hang`` exists
SLOW = """\
import json, os, sys, time
import psutil
out, ctl = sys.argv[2], os.environ["LIFETIME_DIR"]
ancestors = [p.pid for p in psutil.Process().parents()]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "part.txt"), "w").write("partial")
with open(os.path.join(ctl, "pids.jsonl"), "a") as fh:
    fh.write(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "ancestors": ancestors, "out": out}) + "\\n")
while os.path.exists(os.path.join(ctl, "hang")):
    time.sleep(0.2)
open(os.path.join(out, "result.txt"), "w").write("done")
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    settings = {
        "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    }
    with celery_project(tmp_path_factory.mktemp("worker_kill"), "workerkill", settings=settings,
                        celery_queues=["default"], celery_concurrency=2, celery_workers=2) as cluster:
        yield cluster


def _records(ctl: Path, n: int) -> list[dict]:
    return wait_for_json_lines(ctl / "pids.jsonl", n, f"try {n} of the step to start its script", timeout=240)


def _worker_of(record: dict, workers: dict[str, int]) -> str:
    """The Celery worker (component name) whose process tree ran the script of ``record``."""
    found = [name for name, wpid in workers.items() if wpid in record["ancestors"]]
    assert len(found) == 1, (record, workers)
    return found[0]


def test_sigkilled_worker_step_retries_on_the_other_worker(cluster):
    ws, info, root = cluster["ws"], cluster["info"], cluster["root"]
    workers = {n: p for n, p in info.pids.items() if n.startswith(local_airflow.CELERY_WORKER)}
    assert len(workers) == 2, info.pids
    ctl = root / "ctl"
    ctl.mkdir()
    (ctl / "hang").write_text("")
    src = root / "src"
    src.mkdir()
    (src / "slow.py").write_text(SLOW)
    out = PipelineData("out")
    rc = RunConfiguration()
    rc.environment_variables = {"LIFETIME_DIR": str(ctl)}
    step = PythonScriptStep("slow.py", name="slow", arguments=["--out", out], outputs=[out],
                            source_directory=str(src), runconfig=rc)
    run = Experiment(ws, "worker-kill").submit(Pipeline(ws, [step]))
    dag_id = ws.store.get_pipeline_run(run.id)["dag_id"]

    first = _records(ctl, 1)[0]
    assert ".partial-" in first["out"], first
    victim = _worker_of(first, workers)
    os.killpg(workers[victim], signal.SIGKILL)  # the worker and its pool processes (the task supervisors)
    wait_until(lambda: not pid_alive(first["pid"]), "the step script to die with its worker", timeout=15)
    wait_until(lambda: not pid_alive(first["ppid"]), "the task process to die with its worker", timeout=15)
    (ctl / "hang").unlink()  # the retry runs through

    second = _records(ctl, 2)[1]
    assert _worker_of(second, workers) != victim  # retried on the other worker
    with AirflowClient(info.url, info.username, info.password) as client:
        final = client.wait_for_dag_run(dag_id, run.id, timeout=240)
        tis = {t["task_id"]: t for t in client.task_instances(dag_id, run.id)}
    assert final["state"] == "success", final
    assert tis["slow"]["try_number"] == 2, tis["slow"]

    row = ws.store.get_step_run(f"{run.id}.slow")
    assert row["status"] == "Finished" and row["try_number"] == 2, row
    committed = Path(Datastore.get(ws).full_path(row["outputs"]["out"]["path"]))
    assert sorted(p.name for p in committed.iterdir()) == ["part.txt", "result.txt"]
    assert list(cluster["shared"].rglob("*.partial-*")) == [], "partial output left behind"
    with ws.store.begin() as conn:
        entries = conn.scalar(select(func.count()).select_from(cache_entries)
                              .where(cache_entries.c.step_name == "slow"))
    assert entries == 1
