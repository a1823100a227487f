"""DatabricksStep end to end: the SDK, the embedded Airflow (scheduler, triggerer), the Airflow Databricks
provider's hook and the Databricks emulator running real Spark.

One embedded Airflow and one emulator (with one warm cluster) serve the module. The compute target is attached
the v1 way, with an access token that must end up only in the Airflow connection. Steps wait for their run in
the triggerer (deferrable, the default) unless a test switches the workspace's ``databricks_deferrable`` off.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
import requests

from airflow_mlpipe import (
    Dataset,
    Datastore,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)
from airflow_mlpipe.clients.airflow_rest import AirflowAPIError, AirflowClient
from airflow_mlpipe.sdk.compute import ComputeTarget, DatabricksCompute
from airflow_mlpipe.sdk.steps.databricks_step import DatabricksStep
from tests.helpers.embedded import embedded_airflow, working_directory, write_project_config
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(900)]

WARM = "mlpipe-tests-warm"
TOKEN = "dapi-step-test-token-0123456789"

AGGREGATE = """\
# Databricks notebook source
import os
source = dbutils.widgets.get("titanic")
target = dbutils.widgets.get("by_class")
min_age = int(dbutils.widgets.get("min_age"))
print(f"aggregating {os.path.basename(source)} from age {min_age}")

# COMMAND ----------
from pyspark.sql import functions as F
rows = spark.read.option("header", True).csv(source)
agg = (rows.filter(F.col("Age").cast("double") >= min_age).groupBy("Pclass")
       .agg(F.count("*").alias("n"), F.sum(F.col("Survived").cast("int")).alias("survived")).orderBy("Pclass"))
agg.toPandas().to_csv(os.path.join(target, "by_class.csv"), index=False)
dbutils.notebook.exit(str(agg.count()))
"""
FAILING = """\
# Databricks notebook source
print("checking the rows")
raise ValueError("bad rows: 3 passengers without a class")
"""
#: waits for a file named by a widget (the test's go), so the test can act while the run is RUNNING
WAITING = """\
# Databricks notebook source
import os, time
go = dbutils.widgets.get("go")
deadline = time.time() + float(dbutils.widgets.get("seconds"))
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.2)
open(os.path.join(dbutils.widgets.get("waited"), "done.txt"), "w").write("finished")
print("waited for", go)
"""
#: says it started (a file named by a widget), then waits like WAITING
ANNOUNCING = """\
# Databricks notebook source
import os, time
open(dbutils.widgets.get("started"), "w").write("started")
deadline = time.time() + 300
while time.time() < deadline:
    time.sleep(0.2)
"""
#: fails once the Databricks step's run has started
FAILS_AFTER = """\
import os, sys, time
started = sys.argv[1]
while not os.path.exists(started):
    time.sleep(0.1)
print("failing on purpose")
sys.exit(3)
"""
#: reads one secret from an Airflow Variable and one from an Airflow Connection
SECRETS = """\
# Databricks notebook source
import hashlib, os
password = dbutils.secrets.get("warehouse", "password")
token = dbutils.secrets.get("mlpipe", "api-token")
print("connecting with", password, "and", token)
proof = hashlib.sha256(f"{password}|{token}".encode()).hexdigest()
open(os.path.join(dbutils.widgets.get("proof"), "proof.txt"), "w").write(proof)
"""
REPORT = """\
import argparse, os
p = argparse.ArgumentParser(); p.add_argument("--by_class"); p.add_argument("--out"); a = p.parse_args()
text = open(os.path.join(a.by_class, "by_class.csv")).read()
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "report.txt"), "w").write("classes:" + str(len(text.splitlines()) - 1))
print("report written")
"""
COUNT_SCRIPT = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--label"); p.add_argument("--titanic"); p.add_argument("--counted")
p.add_argument("--AZUREML_SCRIPT_DIRECTORY_NAME")
a = p.parse_args()
import helper
n = helper.count_lines(a.titanic)
open(os.path.join(a.counted, "count.txt"), "w").write(f"{a.label}:{n}")
print(f"counted {n} lines for {a.label} from {a.AZUREML_SCRIPT_DIRECTORY_NAME}")
"""
HELPER = "def count_lines(path):\n    return sum(1 for _ in open(path)) - 1\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory, test_data):
    from airflow_mlpipe.clients.databricks_connection import emulator_home, emulator_status, stop_emulator

    root = tmp_path_factory.mktemp("dbstep")
    write_project_config(root, {"AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
                                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1"})
    with working_directory(root):
        ws = Workspace.from_config()
        with embedded_airflow(ws, root / "dags") as info:
            try:
                compute = ComputeTarget.attach(ws, "dbcompute", DatabricksCompute.attach_configuration(
                    resource_group="rg", workspace_name="dbws", access_token=TOKEN))
                record = json.loads(ws.store.get_setting("compute:dbcompute"))
                api = Emulator(emulator_status(ws)["url"], emulator_home(ws))
                api.post("2.1/clusters/start", cluster_id=WARM)
                store = Datastore(ws, "workspaceblobstore")
                store.upload_files([str(test_data / "titanic.csv")], target_path="data", overwrite=True,
                                   show_progress=False)
                for path, text in (("/Shared/aggregate", AGGREGATE), ("/Shared/failing", FAILING),
                                   ("/Shared/waiting", WAITING), ("/Shared/secrets", SECRETS),
                                   ("/Shared/announcing", ANNOUNCING)):
                    api.import_notebook(path, text)
                yield Env(root, ws, info, compute, record, api, store)
            finally:
                stop_emulator(ws)


class Emulator:
    def __init__(self, url: str, home: Path) -> None:
        self.url, self.home = url, home

    def post(self, endpoint: str, **body) -> dict:
        r = requests.post(f"{self.url}/api/{endpoint}", json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=30)
        r.raise_for_status()
        return r.json()

    def get(self, endpoint: str, **params) -> dict:
        r = requests.get(f"{self.url}/api/{endpoint}", params=params, headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=30)
        r.raise_for_status()
        return r.json()

    def import_notebook(self, path: str, source: str) -> None:
        import base64

        self.post("2.0/workspace/import", path=path, format="SOURCE", language="PYTHON", overwrite=True,
                  content=base64.b64encode(source.encode()).decode())

    def runs_named(self, run_name: str) -> list[dict]:
        with sqlite3.connect(self.home / "state.sqlite") as db:
            rows = db.execute("SELECT run_id, life_cycle_state, result_state FROM runs WHERE parent_run_id IS NULL "
                              "AND run_name = ? ORDER BY run_id", (run_name,)).fetchall()
        return [{"run_id": r[0], "life_cycle_state": r[1], "result_state": r[2]} for r in rows]


class Env:
    def __init__(self, root, ws, info, compute, record, api, store) -> None:
        self.root, self.ws, self.info, self.compute, self.record = root, ws, info, compute, record
        self.api, self.store = api, store

    def client(self) -> AirflowClient:
        return AirflowClient(self.info.url, self.info.username, self.info.password)

    def titanic(self):
        return Dataset.File.from_files([(self.store, "data/titanic.csv")]).as_named_input("titanic")

    def submit(self, name: str, steps: list, **kwargs):
        run = Experiment(self.ws, name).submit(Pipeline(self.ws, steps), **kwargs)
        return run, self.ws.store.get_pipeline_run(run.id)["dag_id"]

    def step_row(self, run, task_id: str) -> dict:
        return self.ws.store.get_step_run(f"{run.id}.{task_id}") or {}

    def log(self, dag_id: str, run, task_id: str, try_number: int = 1) -> str:
        with self.client() as c:
            return c.task_log(dag_id, run.id, task_id, try_number=try_number)

    def ti(self, dag_id: str, run, task_id: str) -> dict:
        with self.client() as c:
            return next(t for t in c.task_instances(dag_id, run.id) if t["task_id"] == task_id)

    def output_dir(self, run, task_id: str, name: str) -> Path:
        out = self.step_row(run, task_id)["outputs"][name]
        return Path(Datastore.get(self.ws, out["datastore"]).full_path(out["path"]))


def _expected_by_class(test_data: Path, min_age: int) -> dict[str, tuple[int, int]]:
    found: dict[str, list[int]] = {}
    for row in csv.DictReader(io.StringIO((test_data / "titanic.csv").read_text())):
        if row["Age"] and float(row["Age"]) >= min_age:
            n, s = found.get(row["Pclass"], [0, 0])
            found[row["Pclass"]] = [n + 1, s + int(row["Survived"])]
    return {k: (v[0], v[1]) for k, v in found.items()}


def _aggregate_step(env: Env, by_class: PipelineData, **kwargs) -> DatabricksStep:
    return DatabricksStep(name="aggregate", inputs=[env.titanic()], outputs=[by_class],
                          notebook_path="/Shared/aggregate",
                          notebook_params={"min_age": PipelineParameter("min_age", default_value=30)},
                          existing_cluster_id=WARM, compute_target=env.compute, run_name="aggregate titanic",
                          **kwargs)


def test_token_lives_only_in_the_airflow_connection(env):
    assert env.record["conn_id"] and env.record["emulator"] is True
    everything = json.dumps(env.ws.store.settings_with_prefix(""))
    assert TOKEN not in everything
    with env.client() as c:
        conn = c.get_connection(env.record["conn_id"])
    assert conn["schema"] == "http" and conn["host"] == "127.0.0.1" and conn["conn_type"] == "databricks"


def test_notebook_step_reads_widgets_writes_outputs_and_is_reused(env, test_data, tmp_path):
    src = tmp_path / "report"
    src.mkdir()
    (src / "report.py").write_text(REPORT)
    by_class = PipelineData("by_class", datastore=env.store)
    report_out = PipelineData("report_out", datastore=env.store)
    aggregate = _aggregate_step(env, by_class)
    report = PythonScriptStep("report.py", name="report", source_directory=str(src),
                              arguments=["--by_class", by_class, "--out", report_out], inputs=[by_class],
                              outputs=[report_out])
    runs_before = len(env.api.runs_named("aggregate titanic"))
    run, dag_id = env.submit("dbnotebook", [aggregate, report], pipeline_parameters={"min_age": 40})
    assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"

    table = (env.output_dir(run, "aggregate", "by_class") / "by_class.csv").read_text().splitlines()
    got = {r.split(",")[0]: (int(r.split(",")[1]), int(r.split(",")[2])) for r in table[1:]}
    assert got == _expected_by_class(test_data, 40)
    assert (env.output_dir(run, "report", "report_out") / "report.txt").read_text() == f"classes:{len(got)}"
    row = env.step_row(run, "aggregate")
    assert row["status"] == "Finished" and row["details"]["databricks"]["run_id"]
    assert row["details"]["cache"]["decision"] == "computed"  # what the UI's Step tab shows, kept across the halves
    assert not list(env.output_dir(run, "aggregate", "by_class").parent.glob("*.partial-*"))

    log = env.log(dag_id, run, "aggregate")
    assert "aggregating titanic.csv from age 40" in log  # the notebook's stdout, in the task log
    assert "the notebook exited with '3'" in log
    with env.client() as c:
        page = c.xcom(dag_id, run.id, "aggregate", key="run_page_url")
        links = c._json("GET", f"{c.API}/dags/{dag_id}/dagRuns/{run.id}/taskInstances/aggregate/links")
    assert page == row["details"]["databricks"]["run_page_url"]
    assert links["extra_links"] == {"See Databricks Job Run": page}  # the operator's extra link in the Airflow UI
    assert requests.get(page, timeout=10).status_code == 200
    assert len(env.api.runs_named("aggregate titanic")) == runs_before + 1

    again, _ = env.submit("dbnotebook", [aggregate, report], pipeline_parameters={"min_age": 40})
    assert again.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    assert env.step_row(again, "aggregate")["reused_run_id"] == f"{run.id}.aggregate"
    assert len(env.api.runs_named("aggregate titanic")) == runs_before + 1, "a reused step started a run"


def test_failed_notebook_fails_the_task_with_its_error(env):
    out = PipelineData("never", datastore=env.store)
    step = DatabricksStep(name="check", outputs=[out], notebook_path="/Shared/failing", existing_cluster_id=WARM,
                          compute_target=env.compute, allow_reuse=False, run_name="failing check")
    run, dag_id = env.submit("dbfailing", [step])
    assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Failed"
    row = env.step_row(run, "check")
    assert row["status"] == "Failed" and "bad rows: 3 passengers without a class" in row["error"]
    assert "Run page: http://127.0.0.1" in row["error"]
    log = env.log(dag_id, run, "check")
    assert "checking the rows" in log and "ValueError: bad rows" in log
    runs = env.api.runs_named("failing check")
    assert [r["result_state"] for r in runs] == ["FAILED", "FAILED"]  # the retry is a new attempt
    assert not row["outputs"]


def test_timeout_seconds_is_enforced_by_databricks(env, tmp_path):
    out = PipelineData("waited", datastore=env.store)
    step = DatabricksStep(name="slow", outputs=[out], notebook_path="/Shared/waiting", existing_cluster_id=WARM,
                          notebook_params={"go": str(tmp_path / "never"), "seconds": "120"}, timeout_seconds=5,
                          compute_target=env.compute, allow_reuse=False, run_name="slow timeout")
    run, _ = env.submit("dbtimeout", [step])
    assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Failed"
    assert "TIMEDOUT" in env.step_row(run, "slow")["error"]
    assert {r["result_state"] for r in env.api.runs_named("slow timeout")} == {"TIMEDOUT"}


def test_a_deferred_step_completes_when_its_run_ends(env, tmp_path):
    go = tmp_path / "go"
    out = PipelineData("waited", datastore=env.store)
    step = DatabricksStep(name="wait", outputs=[out], notebook_path="/Shared/waiting", existing_cluster_id=WARM,
                          notebook_params={"go": str(go), "seconds": "300"}, compute_target=env.compute,
                          allow_reuse=False, run_name="deferred then done")
    run, dag_id = env.submit("dbdeferred", [step])
    wait_until(lambda: env.ti(dag_id, run, "wait")["state"] == "deferred", "the task to defer", timeout=180)
    go.write_text("")
    assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    assert (env.output_dir(run, "wait", "waited") / "done.txt").read_text() == "finished"
    log = env.log(dag_id, run, "wait")
    assert "waiting in the triggerer" in log and f"waited for {go}" in log and "Output 'waited' committed" in log
    assert [r["result_state"] for r in env.api.runs_named("deferred then done")] == ["SUCCESS"]


def test_a_step_whose_key_another_run_computes_waits_in_the_triggerer(env, tmp_path):
    """Two runs of one reusable step: one submits the Databricks run; the other defers on the cache key (no
    worker slot held) while the owner itself is deferred on its Databricks run, then reuses its outputs."""
    go = tmp_path / "go"

    def step() -> DatabricksStep:
        return DatabricksStep(name="shared", outputs=[PipelineData("waited", datastore=env.store)],
                              notebook_path="/Shared/waiting", existing_cluster_id=WARM,
                              notebook_params={"go": str(go), "seconds": "300"}, compute_target=env.compute,
                              allow_reuse=True, run_name=f"shared key {tmp_path.name}")

    owner, dag_id = env.submit("dbshared", [step()])
    wait_until(lambda: env.ti(dag_id, owner, "shared")["state"] == "deferred", "the owner to defer", timeout=180)
    waiter, waiter_dag = env.submit("dbshared", [step()])

    def waits_in_the_triggerer() -> bool:
        try:
            return "waiting in the triggerer (deferred, no worker slot held)" in env.log(waiter_dag, waiter, "shared")
        except AirflowAPIError:  # its task instance or log is not there yet
            return False

    wait_until(waits_in_the_triggerer, "the second run to wait for the first in the triggerer", timeout=180)
    assert env.ti(waiter_dag, waiter, "shared")["state"] == "deferred"
    assert env.step_row(waiter, "shared")["details"]["waiting_for"]["step_run"] == f"{owner.id}.shared"
    go.write_text("")
    for run in (owner, waiter):
        assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    assert len(env.api.runs_named(f"shared key {tmp_path.name}")) == 1  # computed once
    assert env.step_row(waiter, "shared")["reused_run_id"] == f"{owner.id}.shared"


def test_stopping_a_deferred_task_cancels_its_run(env, tmp_path):
    out = PipelineData("waited", datastore=env.store)
    step = DatabricksStep(name="wait", outputs=[out], notebook_path="/Shared/waiting", existing_cluster_id=WARM,
                          notebook_params={"go": str(tmp_path / "never"), "seconds": "300"},
                          compute_target=env.compute, allow_reuse=False, run_name="cancel me")
    run, dag_id = env.submit("dbcancel", [step])
    wait_until(lambda: env.ti(dag_id, run, "wait")["state"] == "deferred", "the task to defer", timeout=180)
    # the triggerer has picked the trigger up (Airflow calls on_kill only for a running trigger)
    wait_until(lambda: "(RUNNING)" in env.log(dag_id, run, "wait"), "the trigger to poll the run", timeout=60)
    with env.client() as c:
        c.set_dag_run_state(dag_id, run.id, "failed")
    wait_until(lambda: env.api.runs_named("cancel me")[-1]["result_state"] == "CANCELED",
               "the Databricks run to be cancelled", timeout=60)
    assert len(env.api.runs_named("cancel me")) == 1


def test_dbutils_secrets_come_from_airflow_variables_and_connections(env):
    import hashlib

    with env.client() as c:
        c._json("POST", f"{c.API}/variables", json={"key": "mlpipe.api-token", "value": "tok-from-a-variable"})
        c.put_connection({"connection_id": "warehouse", "conn_type": "postgres", "host": "db.example",
                          "login": "etl", "password": "pw-from-a-connection"})
    proof = PipelineData("proof", datastore=env.store)
    step = DatabricksStep(name="secrets", outputs=[proof], notebook_path="/Shared/secrets",
                          existing_cluster_id=WARM, compute_target=env.compute, allow_reuse=False)
    run, dag_id = env.submit("dbsecrets", [step])
    assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    expected = hashlib.sha256(b"pw-from-a-connection|tok-from-a-variable").hexdigest()
    assert (env.output_dir(run, "secrets", "proof") / "proof.txt").read_text() == expected
    log = env.log(dag_id, run, "secrets")
    assert "connecting with [REDACTED] and [REDACTED]" in log
    assert "pw-from-a-connection" not in log and "tok-from-a-variable" not in log


def test_stopping_a_polling_task_cancels_its_run(env, tmp_path):
    """``databricks_deferrable: false``: the worker polls, and Airflow's on_kill cancels the run."""
    config = env.root / ".mlpipe" / "config.json"
    saved = config.read_text()
    config.write_text(json.dumps({**json.loads(saved), "databricks_deferrable": False}))
    out = PipelineData("waited", datastore=env.store)
    step = DatabricksStep(name="wait", outputs=[out], notebook_path="/Shared/waiting", existing_cluster_id=WARM,
                          notebook_params={"go": str(tmp_path / "never"), "seconds": "300"},
                          compute_target=env.compute, allow_reuse=False, run_name="cancel a polling task")
    try:
        run, dag_id = env.submit("dbcancelsync", [step])
        wait_until(lambda: (env.step_row(run, "wait").get("details") or {}).get("databricks", {}).get("run_id"),
                   "the step to submit its run", timeout=180)
    finally:
        config.write_text(saved)
    with env.client() as c:
        c.set_dag_run_state(dag_id, run.id, "failed")
    wait_until(lambda: env.api.runs_named("cancel a polling task")[-1]["result_state"] == "CANCELED",
               "the Databricks run to be cancelled", timeout=60)
    assert len(env.api.runs_named("cancel a polling task")) == 1


@pytest.mark.parametrize("deferrable", [True, False])
def test_another_steps_failure_cancels_the_run(env, tmp_path, deferrable):
    """v1's continue_on_step_failure=False: a step that fails for good stops the pipeline run, including a
    Databricks run in another branch, waited for in the triggerer or in the worker."""
    config = env.root / ".mlpipe" / "config.json"
    saved = config.read_text()
    config.write_text(json.dumps({**json.loads(saved), "databricks_deferrable": deferrable}))
    src, started = tmp_path / "fails", tmp_path / "started"
    src.mkdir()
    (src / "fails.py").write_text(FAILS_AFTER)
    fails = PythonScriptStep("fails.py", name="fails", source_directory=str(src), arguments=[str(started)],
                             allow_reuse=False)
    name = f"stopped by a sibling {deferrable}"
    wait = DatabricksStep(name="wait", outputs=[PipelineData("waited", datastore=env.store)],
                          notebook_path="/Shared/announcing", notebook_params={"started": str(started)},
                          existing_cluster_id=WARM, compute_target=env.compute, allow_reuse=False, run_name=name)
    try:
        run, dag_id = env.submit(f"dbsibling{int(deferrable)}", [fails, wait])
        assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Failed"
    finally:
        config.write_text(saved)
    wait_until(lambda: [r["result_state"] for r in env.api.runs_named(name)] == ["CANCELED"],
               "the Databricks run to be cancelled", timeout=60)
    wait_until(lambda: env.step_row(run, "wait").get("status") == "Canceled", "the step to end Canceled",
               timeout=60)
    assert "step 'fails' failed" in env.step_row(run, "wait")["error"]
    assert env.ti(dag_id, run, "wait")["try_number"] == 1  # stopped for good: no retry


def _task_process(ti_id: str) -> int | None:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"airflow worker -- {ti_id}" in cmdline:
            return int(pid)
    return None


def test_worker_killed_while_waiting_reattaches_on_retry(env, tmp_path):
    config = env.root / ".mlpipe" / "config.json"
    saved = config.read_text()
    config.write_text(json.dumps({**json.loads(saved), "databricks_deferrable": False}))  # wait in the worker
    go = tmp_path / "go"
    out = PipelineData("waited", datastore=env.store)
    step = DatabricksStep(name="wait", outputs=[out], notebook_path="/Shared/waiting", existing_cluster_id=WARM,
                          notebook_params={"go": str(go), "seconds": "300"}, compute_target=env.compute,
                          allow_reuse=False, run_name="survive a lost worker")
    try:
        run, dag_id = env.submit("dbcrash", [step])
        wait_until(lambda: (env.step_row(run, "wait").get("details") or {}).get("databricks", {}).get("run_id"),
                   "the step to submit its run", timeout=180)
        ti = env.ti(dag_id, run, "wait")
        pid = wait_until(lambda: _task_process(ti["id"]), "the task process", timeout=30)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: env.ti(dag_id, run, "wait")["try_number"] == 2, "the retry", timeout=180)
        go.write_text("")
        assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    finally:
        config.write_text(saved)
    runs = env.api.runs_named("survive a lost worker")
    assert len(runs) == 1 and runs[0]["result_state"] == "SUCCESS", runs
    assert "reattaching to Databricks run" in env.log(dag_id, run, "wait", try_number=2)
    assert (env.output_dir(run, "wait", "waited") / "done.txt").read_text() == "finished"


GATE = """\
import argparse, os, time
p = argparse.ArgumentParser(); p.add_argument("--go"); p.add_argument("--out"); a = p.parse_args()
while not os.path.exists(a.go):
    time.sleep(0.1)
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "gate.txt"), "w").write("open")
"""


def test_a_try_lost_before_it_recorded_its_run_gets_the_same_run_again(env, tmp_path):
    """A worker that died after ``runs/submit`` but before recording the run id left only the attempt and its
    token: the next try submits with that token and Databricks answers with the same run."""
    from types import SimpleNamespace

    from airflow_mlpipe.runtime import databricks_runner as dbr

    src, go = tmp_path / "gate", tmp_path / "go"
    src.mkdir()
    (src / "gate.py").write_text(GATE)
    gate_out, waited = PipelineData("gate_out", datastore=env.store), PipelineData("waited", datastore=env.store)
    gate = PythonScriptStep("gate.py", name="gate", source_directory=str(src), arguments=["--go", str(go), "--out",
                            gate_out], outputs=[gate_out], allow_reuse=False)
    step = DatabricksStep(name="wait", inputs=[gate_out], outputs=[waited], notebook_path="/Shared/waiting",
                          existing_cluster_id=WARM, notebook_params={"go": str(go), "seconds": "60"},
                          compute_target=env.compute, allow_reuse=False, run_name="lost before recording")
    run, _ = env.submit("dblost", [gate, step])
    step_run_id = f"{run.id}.wait"
    token = dbr.idempotency_token(SimpleNamespace(pipeline_run_id=run.id, step={"task_id": "wait"},
                                                  clear_number=0), 0)
    # what the lost try did: its record, then the submission (the notebook waits for the gate like the step's)
    env.ws.store.upsert_step_run(step_run_id, pipeline_run_id=run.id, step_name="wait", task_id="wait",
                                 kind="DatabricksStep", status="Queued")
    env.ws.store.merge_step_run_details(step_run_id, databricks={
        "attempt": 0, "clear_number": 0, "token": token, "run_id": None, "key": "-", "components": {},
        "staging": {}, "inputs": {}, "flight_owner": None})
    lost = env.api.post("2.2/jobs/runs/submit", run_name="lost before recording", idempotency_token=token, tasks=[{
        "task_key": "wait", "existing_cluster_id": WARM, "notebook_task": {
            "notebook_path": "/Shared/waiting",
            "base_parameters": {"go": str(go), "seconds": "60", "waited": str(tmp_path / "lost-out")}}}])
    (tmp_path / "lost-out").mkdir()
    go.write_text("")
    assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    runs = env.api.runs_named("lost before recording")
    assert [r["run_id"] for r in runs] == [lost["run_id"]], runs
    assert env.step_row(run, "wait")["details"]["databricks"]["run_id"] == lost["run_id"]


def test_python_script_name_uploads_its_folder_once(env, tmp_path):
    src = tmp_path / "count"
    src.mkdir()
    (src / "count.py").write_text(COUNT_SCRIPT)
    (src / "helper.py").write_text(HELPER)
    def step():
        counted = PipelineData("counted", datastore=env.store)
        return DatabricksStep(name="count", inputs=[env.titanic()], outputs=[counted], python_script_name="count.py",
                              source_directory=str(src), python_script_params=["--label", "all"],
                              existing_cluster_id=WARM, compute_target=env.compute, allow_reuse=False)

    snapshots = env.api.home / "dbfs" / "mlpipe" / "snapshots"
    before = set(snapshots.iterdir()) if snapshots.exists() else set()
    run, dag_id = env.submit("dbscript", [step()])
    assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    assert (env.output_dir(run, "count", "counted") / "count.txt").read_text() == "all:891"
    uploaded = set(snapshots.iterdir()) - before
    assert len(uploaded) == 1 and {p.name for p in next(iter(uploaded)).iterdir()} >= {"count.py", "helper.py"}
    assert "counted 891 lines for all from dbfs:/mlpipe/snapshots/" in env.log(dag_id, run, "count")
    again, _ = env.submit("dbscript", [step()])
    assert again.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    assert set(snapshots.iterdir()) - before == uploaded, "an unchanged folder was uploaded again"
    mtimes = {p: p.stat().st_mtime_ns for p in next(iter(uploaded)).iterdir()}
    assert mtimes == {p: p.stat().st_mtime_ns for p in next(iter(uploaded)).iterdir()}


def test_jar_step_runs_its_main_class(env, tmp_path):
    from airflow_mlpipe.sdk.databricks_libraries import JarLibrary

    (tmp_path / "Hello.java").write_text(
        'public class Hello { public static void main(String[] a) {'
        ' System.out.println("hello from the jar " + String.join(",", a)); } }')
    subprocess.run(["javac", "--release", "17", "Hello.java"], cwd=tmp_path, check=True)
    subprocess.run(["jar", "cf", "hello.jar", "Hello.class"], cwd=tmp_path, check=True)
    import base64

    env.api.post("2.0/dbfs/put", path="/jars/hello.jar", overwrite=True,
                 contents=base64.b64encode((tmp_path / "hello.jar").read_bytes()).decode())
    out = PipelineData("jar_out", datastore=env.store)
    step = DatabricksStep(name="jar", outputs=[out], main_class_name="Hello", jar_params=["x", "y"],
                          jar_libraries=[JarLibrary("dbfs:/jars/hello.jar")], existing_cluster_id=WARM,
                          compute_target=env.compute, allow_reuse=False)
    run, dag_id = env.submit("dbjar", [step])
    assert run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    assert "hello from the jar x,y,--jar_out," in env.log(dag_id, run, "jar")


def test_bad_arguments_fail_at_definition_time(env):
    with pytest.raises(ValueError, match="'notebook_path': exactly one of notebook_path, python_script_path"):
        DatabricksStep(name="none", existing_cluster_id=WARM, compute_target=env.compute)
    with pytest.raises(ValueError, match="permit_cluster_restart"):
        DatabricksStep(name="restart", notebook_path="/Shared/aggregate", num_workers=1,
                       permit_cluster_restart=True, compute_target=env.compute)
