"""Schedules through a real scheduler: a time-based Schedule runs the published pipeline's DAG on its cron, and a
datastore Schedule runs it after a write under the watched folder (Airflow Asset event from the watcher DAG)."""

from __future__ import annotations

import httpx
import pytest

from airflow_mlpipe import Datastore, Schedule, ScheduleRecurrence
from airflow_mlpipe.contract.schedule_rules import watcher_dag_id
from tests.helpers.published import admin_token, bearer, emit_pipeline, published_project
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.scheduler
http = httpx.Client(timeout=90)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def publish(ws, root):
        timed = emit_pipeline(ws, root, tag=True).publish("every_minute")
        sched = Schedule.create(ws, "minutely", timed.id, "sched-exp",
                                recurrence=ScheduleRecurrence("Minute", 1), pipeline_parameters={"value": 7})
        data = emit_pipeline(ws, root, default=2, tag=True).publish("on_new_files")
        (ws.home / "datastores").mkdir(exist_ok=True)
        dsched = Schedule.create(ws, "on-files", data.id, "data-exp", datastore=Datastore(ws, "workspaceblobstore"),
                                 path_on_datastore="incoming", polling_interval=0.1)  # minutes: every 6 s
        return {"timed": timed, "sched": sched, "data": data, "dsched": dsched}

    with published_project(tmp_path_factory, publish) as (root, ws, info, extra):
        yield root, ws, info, extra, admin_token(info)


def _runs(info, token, dag_id):
    r = http.get(f"{info.url}/api/v2/dags/{dag_id}/dagRuns", headers=bearer(token))
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return r.json()["dag_runs"]


def _wait_for(info, token, dag_id, run_type, timeout):
    def first_success():
        done = [r for r in _runs(info, token, dag_id) if r["run_type"] == run_type and r["state"] == "success"]
        return done[0] if done else None

    return wait_until(first_success, f"a successful {run_type} run of {dag_id}", timeout=timeout, interval=2,
                      detail=lambda: _runs(info, token, dag_id))


def test_data_triggered_run_after_datastore_write(project, tmp_path):
    _, ws, info, extra, token = project
    dag_id, watcher = extra["data"].dag_id, watcher_dag_id({"id": extra["dsched"].id})
    wait_until(lambda: sum(r["state"] == "success" for r in _runs(info, token, watcher)) >= 2,
               "the datastore watcher to poll twice", timeout=120, interval=1,
               detail=lambda: _runs(info, token, watcher))
    # two polls saw no change under the watched folder: no pipeline run
    assert not [r for r in _runs(info, token, dag_id) if r["run_type"] == "asset_triggered"]
    src = tmp_path / "batch.csv"
    src.write_text("a,b\n1,2\n")
    Datastore(ws, "workspaceblobstore").upload_files([str(src)], target_path="incoming", overwrite=True)
    run = _wait_for(info, token, dag_id, "asset_triggered", timeout=120)
    assert ws.store.get_metrics(f"{run['dag_run_id']}.emit")["value"] == 2
    assert ws.store.get_pipeline_run(run["dag_run_id"])["experiment"] == "data-exp"
    watch = _runs(info, token, watcher)
    assert any(r["state"] == "success" for r in watch)


def test_scheduled_run_happens_on_its_schedule(project):
    _, ws, info, extra, token = project
    run = _wait_for(info, token, extra["timed"].dag_id, "scheduled", timeout=150)
    assert run["run_after"].endswith(":00Z") or ":00" in run["run_after"]  # on a minute boundary
    # the schedule's experiment and parameter values apply to the runs it triggers; a later scheduled run reuses
    # the first one's step (same inputs), and a reused step reports the metrics of the run that produced it
    step = ws.store.get_step_run(f"{run['dag_run_id']}.emit")
    assert ws.store.get_metrics(step.get("reused_run_id") or step["step_run_id"])["value"] == 7
    assert ws.store.get_pipeline_run(run["dag_run_id"])["experiment"] == "sched-exp"
    extra["sched"].disable()
    assert Schedule.get(ws, extra["sched"].id).status == "Disabled"
