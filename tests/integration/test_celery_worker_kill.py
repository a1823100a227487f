"""A Celery worker is SIGKILLed mid-step: the step is retried on the other worker and the run finishes, with no
partial output and one cache entry.

PostgreSQL (Airflow metadata and the airflow-mlpipe store), Redis (the broker, a private database) and two
``airflow celery worker`` processes on the same queue, started by ``local_airflow.start`` for a project whose
``.mlpipe/config.json`` asks for ``"celery_workers": 2``. Every task has ``retries=1``; Airflow notices the lost
worker by the missing task heartbeats (``task_instance_heartbeat_timeout`` shortened to 20 s).

PostgreSQL and Redis on 127.0.0.1 are required: when they are not reachable the test FAILS (never skips).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import time
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
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from airflow_mlpipe.runtime.processes import pid_alive
from airflow_mlpipe.store.tables_cache import cache_entries

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(600)]

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CLAIM_KEY = "mlpipe_ci_claim"

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


# ---------------------------------------------------------------------------------------------- services
def _require_services() -> None:
    problems = []
    for name, host, port in (("PostgreSQL", PG_HOST, PG_PORT), ("Redis", REDIS_HOST, REDIS_PORT)):
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as exc:
            problems.append(f"{name} on {host}:{port} is not reachable ({exc})")
    if problems:
        pytest.fail("this test needs PostgreSQL and Redis running on 127.0.0.1: " + "; ".join(problems),
                    pytrace=False)


def _pg_admin():
    import psycopg2

    try:
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"cannot connect to PostgreSQL as {PG_USER!r} on {PG_HOST}:{PG_PORT}: {exc}", pytrace=False)
    conn.autocommit = True
    return conn


def _drop_database(admin, name: str) -> None:
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _claim_redis_db():
    """A Redis database nobody uses (empty, no client on it), claimed with a marker key so parallel runs differ."""
    import redis

    token = secrets.token_hex(8)
    numbers = list(range(1, 16))
    secrets.SystemRandom().shuffle(numbers)
    for number in numbers:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=5)
        try:
            me = str(client.client_id())
            in_use = {int(c.get("db", 0)) for c in client.client_list() if str(c.get("id")) != me}
            if number not in in_use and client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=3600):
                return number, client
        except redis.RedisError as exc:
            pytest.fail(f"Redis on {REDIS_HOST}:{REDIS_PORT} does not answer: {exc}", pytrace=False)
        client.close()
    pytest.fail(f"no empty Redis database (1-15) on {REDIS_HOST}:{REDIS_PORT} to use as a private broker",
                pytrace=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _require_services()
    suffix = secrets.token_hex(4)
    af_db, store_db = f"mlpipe_ci_{suffix}_airflow", f"mlpipe_ci_{suffix}_store"
    admin = _pg_admin()
    redis_db, redis_client = _claim_redis_db()
    created: list[str] = []
    ws = None
    old_cwd = os.getcwd()
    try:
        with admin.cursor() as cur:
            for name in (af_db, store_db):
                cur.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
        root = tmp_path_factory.mktemp("worker_kill")
        (root / "dags").mkdir()
        shared = root / "shared-datastore"
        shared.mkdir()
        pg = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}"
        config = {
            "workspace_name": "workerkill",
            "store_url": f"{pg}/{store_db}",
            "datastores": {"workspaceblobstore": str(shared)},
            "airflow": {
                "settings": {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{pg}/{af_db}",
                    "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{af_db}",
                    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
                    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                },
                "celery_queues": ["default"],
                "celery_concurrency": 2,
                "celery_workers": 2,
            },
        }
        (root / ".mlpipe").mkdir()
        (root / ".mlpipe" / "config.json").write_text(json.dumps(config, indent=2))
        os.chdir(root)
        ws = Workspace.from_config()
        info = local_airflow.start(ws, dags_folder=root / "dags", port=local_airflow._free_port(), timeout=180)
        yield {"root": root, "ws": ws, "info": info, "shared": shared}
    finally:
        os.chdir(old_cwd)
        if ws is not None:
            local_airflow.stop(ws, timeout=30)
            from airflow_mlpipe.store import db as store_module

            for url in [u for u in store_module._STORES if store_db in u]:
                store_module._STORES.pop(url).engine.dispose()
        for name in created:
            _drop_database(admin, name)
        admin.close()
        try:
            redis_client.flushdb()
        finally:
            redis_client.close()


def _wait(what: str, check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _records(ctl: Path, n: int) -> list[dict]:
    path = ctl / "pids.jsonl"

    def lines():
        text = path.read_text() if path.exists() else ""
        rows = [json.loads(x) for x in text.splitlines() if x.strip()]
        return rows if len(rows) >= n else None

    return _wait(f"try {n} of the step to start its script", lines, timeout=240)


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
    _wait("the step script to die with its worker", lambda: not pid_alive(first["pid"]), timeout=15)
    _wait("the task process to die with its worker", lambda: not pid_alive(first["ppid"]), timeout=15)
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
