"""The same pipeline code on PostgreSQL + CeleryExecutor + a shared datastore folder, with real processes.

A fresh PostgreSQL database holds the Airflow metadata, another one the airflow-mlpipe store; Celery uses a
private Redis database. ``local_airflow.start`` runs api-server, scheduler, dag-processor, triggerer and an
``airflow celery worker -q default,cpu-cluster`` for a project whose ``.mlpipe/config.json`` says so; the test
then submits a pipeline with the public SDK exactly as a user would.

PostgreSQL and Redis on 127.0.0.1 are required: when they are not reachable the tests FAIL (never skip).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from pathlib import Path

import pytest

from airflow_mlpipe import Experiment, Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowClient

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(420)]

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CLAIM_KEY = "mlpipe_ci_claim"
TIMINGS: dict[str, float] = {}

PREPARE = """\
import argparse, json, os
from azureml.core import Run

p = argparse.ArgumentParser()
p.add_argument("--rows", type=int)
p.add_argument("--output")
a = p.parse_args()
os.makedirs(a.output, exist_ok=True)
rows = [{"i": i, "x": i * i} for i in range(a.rows)]
with open(os.path.join(a.output, "rows.json"), "w") as fh:
    json.dump(rows, fh)
run = Run.get_context()
run.log("rows", a.rows)
print("prepared", a.rows, "rows")
"""

TRAIN = """\
import argparse, json, os, socket
from azureml.core import Run

p = argparse.ArgumentParser()
p.add_argument("--input")
p.add_argument("--model")
a = p.parse_args()
rows = json.load(open(os.path.join(a.input, "rows.json")))
os.makedirs(a.model, exist_ok=True)
model = {"total": sum(r["x"] for r in rows), "n": len(rows), "host": socket.gethostname()}
with open(os.path.join(a.model, "model.json"), "w") as fh:
    json.dump(model, fh)
run = Run.get_context()
run.log("total", model["total"])
run.log("n", model["n"])
print("trained on", len(rows), "rows")
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
        pytest.fail(
            "the distributed tests need PostgreSQL and Redis running on 127.0.0.1: " + "; ".join(problems)
            + " (start them, e.g. `pg_ctlcluster 15 main start` and `redis-server --daemonize yes "
            "--bind 127.0.0.1`, and re-run)",
            pytrace=False,
        )


def _pg_admin():
    import psycopg2

    try:
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"cannot connect to PostgreSQL as {PG_USER!r} on {PG_HOST}:{PG_PORT}: {exc}", pytrace=False)
    conn.autocommit = True
    return conn


def _pg(dbname: str):
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=5)
    conn.autocommit = True
    return conn


def _query(dbname: str, sql: str, args: tuple = ()) -> list[tuple]:
    conn = _pg(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


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


# ---------------------------------------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def dist(tmp_path_factory):
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
        root = tmp_path_factory.mktemp("dist_project")
        (root / "dags").mkdir()
        shared = root / "shared-datastore"  # what every worker mounts in a cluster
        shared.mkdir()
        src = root / "steps"
        src.mkdir()
        (src / "prepare.py").write_text(PREPARE)
        (src / "train.py").write_text(TRAIN)
        pg_airflow = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{af_db}"
        config = {
            "workspace_name": "dist",
            "store_url": f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{store_db}",
            "datastores": {"workspaceblobstore": str(shared)},
            "airflow": {
                "settings": {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_airflow,
                    "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{af_db}",
                },
                "celery_queues": ["default", "cpu-cluster"],
                "celery_concurrency": 2,
            },
        }
        (root / ".mlpipe").mkdir()
        (root / ".mlpipe" / "config.json").write_text(json.dumps(config, indent=2))
        os.chdir(root)
        ws = Workspace.from_config()
        assert ws.config_path == (root / ".mlpipe" / "config.json").resolve()
        t0 = time.monotonic()
        info = local_airflow.start(ws, dags_folder=root / "dags", port=local_airflow._free_port(), timeout=180)
        TIMINGS["start_to_healthy_s"] = time.monotonic() - t0
        yield {"root": root, "ws": ws, "info": info, "af_db": af_db, "store_db": store_db, "shared": shared,
               "src": src, "redis_db": redis_db}
    finally:
        os.chdir(old_cwd)
        if ws is not None:
            local_airflow.stop(ws, timeout=30)
            from airflow_mlpipe.store import db as store_module

            # pooled connections of this process to the store database (Store.for_url caches stores)
            for url in [u for u in store_module._STORES if store_db in u]:
                store_module._STORES.pop(url).engine.dispose()
        for name in created:
            _drop_database(admin, name)
        admin.close()
        try:
            redis_client.flushdb()
        finally:
            redis_client.close()


# ---------------------------------------------------------------------------------------------- tests
def test_settings_apply_over_the_embedded_defaults(tmp_path):
    """No services needed: the environment the launcher builds, with and without workspace settings."""
    plain = Workspace(home=tmp_path / "plain" / ".mlpipe")
    env = local_airflow.airflow_env(plain, dags_folder=tmp_path, port=8123)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and not local_airflow.is_celery(env)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{plain.airflow_home / 'airflow.db'}"
    assert "MLPIPE_STORE_URL" not in env and "AIRFLOW__CELERY__WORKER_CONCURRENCY" not in env

    config = {"store_url": "postgresql+psycopg2://u@db/store",
              "airflow": {"settings": {"AIRFLOW__CORE__EXECUTOR": "airflow.providers.celery.executors."
                                                                  "celery_executor.CeleryExecutor",
                                       "AIRFLOW__CORE__PARALLELISM": 8},
                          "celery_queues": ["cpu-cluster", "gpu"], "celery_concurrency": 3}}
    ws = Workspace(config=config, home=tmp_path / "dist" / ".mlpipe")
    env = local_airflow.airflow_env(ws, dags_folder=tmp_path, port=8123)
    assert local_airflow.is_celery(env) and env["AIRFLOW__CORE__PARALLELISM"] == "8"
    assert env["MLPIPE_STORE_URL"] == "postgresql+psycopg2://u@db/store"
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "3"
    assert ws.is_embedded  # settings without a url: still the launcher's own Airflow
    args = local_airflow.celery_worker_args(ws, env)
    assert args[args.index("-q") + 1] == "default,cpu-cluster,gpu"  # the default queue is always served
    assert args[args.index("-c") + 1] == "3"

    bad = Workspace(config={"airflow": {"settings": {"EXECUTOR": "CeleryExecutor"}}}, home=tmp_path / "bad")
    with pytest.raises(local_airflow.LocalAirflowError, match="'EXECUTOR' is not an AIRFLOW__"):
        local_airflow.airflow_env(bad, dags_folder=tmp_path, port=8123)


def test_env_and_processes_are_distributed(dist):
    ws, info = dist["ws"], dist["info"]
    env = local_airflow.airflow_env(ws, dags_folder=info.dags_folder, port=info.port)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].endswith(f"/{dist['redis_db']}")
    assert env["MLPIPE_STORE_URL"] == ws.store_url and dist["store_db"] in ws.store_url
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"
    assert set(info.pids) == {"api-server", "scheduler", "dag-processor", "triggerer", "celery-worker"}
    args = local_airflow.celery_worker_args(ws, env)
    assert args[:3] == ["celery", "worker", "--skip-serve-logs"]
    assert args[args.index("-q") + 1] == "default,cpu-cluster"
    # the worker is one of our processes, recognised after restart-free status checks
    status = local_airflow.status(ws)
    assert status is not None and status.pids == info.pids
    # nothing of the embedded SQLite default was created
    assert not (ws.airflow_home / "airflow.db").exists()
    assert not (ws.home / "mlpipe.db").exists()
    # the metadata DB was migrated into PostgreSQL
    assert _query(dist["af_db"], "SELECT count(*) FROM alembic_version")[0][0] == 1
    print(f"\nPostgreSQL + Celery start-to-healthy: {TIMINGS['start_to_healthy_s']:.1f} s")


def test_pipeline_runs_on_celery_with_postgres_store(dist):
    ws, info, src = dist["ws"], dist["info"], dist["src"]
    # --- exactly as a user writes it
    rows = PipelineParameter("rows", default_value=3)
    prepared = PipelineData("prepared")
    model = PipelineData("model", pipeline_output_name="model")
    prepare = PythonScriptStep(name="prepare", script_name="prepare.py", source_directory=str(src),
                               arguments=["--rows", rows, "--output", prepared], outputs=[prepared])
    train = PythonScriptStep(name="train", script_name="train.py", source_directory=str(src),
                             arguments=["--input", prepared, "--model", model], inputs=[prepared],
                             outputs=[model], compute_target="cpu-cluster")
    pipeline = Pipeline(workspace=ws, steps=[prepare, train])
    t0 = time.monotonic()
    run = Experiment(ws, "dist").submit(pipeline, pipeline_parameters={"rows": 7})
    status = run.wait_for_completion(show_output=False, timeout_seconds=150)
    TIMINGS["submit_to_finished_s"] = time.monotonic() - t0
    worker_log = ws.airflow_home / "logs" / "components" / "celery-worker.log"
    assert status == "Finished", (run.get_details(), worker_log.read_text(errors="replace")[-3000:])
    print(f"\nsubmit-to-Finished on Celery: {TIMINGS['submit_to_finished_s']:.1f} s")

    # --- SDK view (read from the PostgreSQL store)
    expected_total = sum(i * i for i in range(7))
    assert run.find_step_run("prepare")[0].get_metrics() == {"rows": 7}
    assert run.find_step_run("train")[0].get_metrics() == {"total": expected_total, "n": 7}
    assert run.get_details()["parameters"] == {"rows": 7}
    out = dist["root"] / "downloaded"
    assert run.get_pipeline_output("model").download(str(out)) == 1
    model_json = json.loads(next(out.rglob("model.json")).read_text())
    assert model_json["total"] == expected_total
    # the outputs landed on the shared datastore folder
    committed = list(dist["shared"].rglob("model.json"))
    assert committed, f"no model.json under the shared datastore {dist['shared']}"

    # --- the same, straight from the PostgreSQL store database
    store_db = dist["store_db"]
    steps = _query(store_db, "SELECT step_name, status, outputs::text FROM mlpipe_step_runs "
                             "WHERE pipeline_run_id = %s", (run.id,))
    by_name = {name: (st, json.loads(outputs or "{}")) for name, st, outputs in steps}
    assert set(by_name) == {"prepare", "train"}, steps
    assert all(st == "Finished" for st, _ in by_name.values()), steps
    model_uri = json.dumps(by_name["train"][1])
    assert Path(dist["shared"]).as_uri() in model_uri, model_uri
    metrics = dict(_query(store_db, "SELECT name, value::text FROM mlpipe_metrics WHERE pipeline_run_id = %s",
                          (run.id,)))
    assert json.loads(metrics["rows"]) == 7 and json.loads(metrics["total"]) == expected_total, metrics
    assert _query(store_db, "SELECT status FROM mlpipe_pipeline_runs WHERE run_id = %s", (run.id,)) == [
        ("Finished",)
    ]

    # --- Airflow: task instances ran through the CeleryExecutor, on the queue named by compute_target
    client = AirflowClient(info.url, info.username, info.password)
    try:
        tis = {t["task_id"]: t for t in client.task_instances(run.dag_id, run.id)}
    finally:
        client.close()
    assert {"prepare", "train"} <= set(tis), list(tis)
    print("task instances:", json.dumps({k: {f: v.get(f) for f in ("state", "executor", "queue", "hostname",
                                                                    "pid")} for k, v in tis.items()}))
    for ti in tis.values():
        assert ti["state"] == "success", ti
        assert ti.get("executor") in (None, "CeleryExecutor"), ti
        assert ti["hostname"], ti
    assert tis["train"]["queue"] == "cpu-cluster"
    assert tis["prepare"]["queue"] == "default"

    # --- Airflow metadata lives in PostgreSQL
    af_db = dist["af_db"]
    assert _query(af_db, "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (run.dag_id, run.id)) == [
        ("success",)
    ]
    rows = _query(af_db, "SELECT task_id, queue, external_executor_id FROM task_instance "
                         "WHERE dag_id = %s AND run_id = %s", (run.dag_id, run.id))
    queues = {task: queue for task, queue, _ in rows}
    assert queues["prepare"] == "default" and queues["train"] == "cpu-cluster", queues
    # each step was a Celery task, and Celery's result backend (db+postgresql, same database) recorded it as
    # done by a worker (written when the Celery task returns, a moment after Airflow saw the TI succeed)
    celery_ids = {task: ext for task, _, ext in rows if task in ("prepare", "train")}
    assert all(celery_ids.values()), celery_ids
    deadline = time.monotonic() + 20
    while True:
        states = dict(_query(af_db, "SELECT task_id, status FROM celery_taskmeta WHERE task_id = ANY(%s)",
                             (list(celery_ids.values()),)))
        if states == {celery_ids["prepare"]: "SUCCESS", celery_ids["train"]: "SUCCESS"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states == {celery_ids["prepare"]: "SUCCESS", celery_ids["train"]: "SUCCESS"}, (celery_ids, states)
    # and the worker's own log shows it consumed both queues
    text = worker_log.read_text(errors="replace")
    assert re.search(r"\.> cpu-cluster\s+exchange=", text), text[-3000:]
    assert re.search(r"Executing workload in Celery: .*task_id=train/", text), text[-3000:]


def test_zz_stop_stops_the_worker(dist):
    ws, info = dist["ws"], dist["info"]
    worker = info.pids["celery-worker"]
    t0 = time.monotonic()
    assert local_airflow.stop(ws, timeout=30) is True
    print(f"\nstop (5 components): {time.monotonic() - t0:.1f} s")
    for name, pid in info.pids.items():
        assert not local_airflow._pid_alive(pid), name
    assert not local_airflow._group_alive(worker), "celery pool processes left behind"
    assert local_airflow.status(ws) is None
