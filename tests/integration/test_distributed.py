"""The same pipeline code on PostgreSQL + CeleryExecutor + a shared datastore folder, with real processes.

A fresh PostgreSQL database holds the Airflow metadata, another one the airflow-mlpipe store; Celery uses a
private Redis database. ``local_airflow.start`` runs api-server, scheduler, dag-processor, triggerer and an
``airflow celery worker -q default,cpu-cluster`` for a project whose ``.mlpipe/config.json`` says so; the test
then submits a pipeline with the public SDK exactly as a user would.

PostgreSQL and Redis on 127.0.0.1 are required: when they are not reachable the tests FAIL (never skip).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from airflow_mlpipe import Experiment, Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from tests.helpers.celery_cluster import celery_project, query
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(420)]

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


# ---------------------------------------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist_project")
    with celery_project(root, "dist", celery_queues=["default", "cpu-cluster"], celery_concurrency=2) as cluster:
        TIMINGS["start_to_healthy_s"] = cluster["start_s"]
        src = root / "steps"
        src.mkdir()
        (src / "prepare.py").write_text(PREPARE)
        (src / "train.py").write_text(TRAIN)
        yield {**cluster, "src": src}


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
    assert query(dist["af_db"], "SELECT count(*) FROM alembic_version")[0][0] == 1
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
    steps = query(store_db, "SELECT step_name, status, outputs::text FROM mlpipe_step_runs "
                             "WHERE pipeline_run_id = %s", (run.id,))
    by_name = {name: (st, json.loads(outputs or "{}")) for name, st, outputs in steps}
    assert set(by_name) == {"prepare", "train"}, steps
    assert all(st == "Finished" for st, _ in by_name.values()), steps
    model_uri = json.dumps(by_name["train"][1])
    assert Path(dist["shared"]).as_uri() in model_uri, model_uri
    metrics = dict(query(store_db, "SELECT name, value::text FROM mlpipe_metrics WHERE pipeline_run_id = %s",
                          (run.id,)))
    assert json.loads(metrics["rows"]) == 7 and json.loads(metrics["total"]) == expected_total, metrics
    assert query(store_db, "SELECT status FROM mlpipe_pipeline_runs WHERE run_id = %s", (run.id,)) == [
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
    assert query(af_db, "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (run.dag_id, run.id)) == [
        ("success",)
    ]
    rows = query(af_db, "SELECT task_id, queue, external_executor_id FROM task_instance "
                         "WHERE dag_id = %s AND run_id = %s", (run.dag_id, run.id))
    queues = {task: queue for task, queue, _ in rows}
    assert queues["prepare"] == "default" and queues["train"] == "cpu-cluster", queues
    # each step was a Celery task, and Celery's result backend (db+postgresql, same database) recorded it as
    # done by a worker (written when the Celery task returns, a moment after Airflow saw the TI succeed)
    celery_ids = {task: ext for task, _, ext in rows if task in ("prepare", "train")}
    assert all(celery_ids.values()), celery_ids
    done = {celery_ids["prepare"]: "SUCCESS", celery_ids["train"]: "SUCCESS"}

    def celery_states() -> dict:
        return dict(query(af_db, "SELECT task_id, status FROM celery_taskmeta WHERE task_id = ANY(%s)",
                          (list(celery_ids.values()),)))

    wait_until(lambda: celery_states() == done, f"Celery's result backend to record {celery_ids} as done",
               timeout=20, interval=0.5, detail=celery_states)
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
