"""The Databricks emulator, driven as Airflow drives Databricks: through the provider's ``DatabricksHook``.

One emulator (started by its CLI, as a background process) and one warm cluster serve the whole module, so
the JVM starts once. The REST shapes are checked where the provider reads them (``state``, ``status``,
``tasks[]``, ``run_page_url``, ``notebook_output``, ``error``), and the runs execute for real on PySpark.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from airflow.providers.databricks.hooks.databricks import DatabricksHook  # noqa: E402
from airflow.providers.databricks.utils.databricks import extract_failed_task_errors  # noqa: E402

from airflow_mlpipe.emulators.databricks import daemon  # noqa: E402
from tests.helpers.databricks import running_emulator, set_connection
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
CONN_ID = "databricks_emulator_test"
TOKEN = "dapi-emulator-test-token"
WARM = "emulator-warm-cluster"
SECRET = "s3cr3t-value-for-the-test"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    home = tmp_path_factory.mktemp("databricks_emulator")
    (home / "secrets.json").write_text(json.dumps({"test-scope": {"db-password": SECRET}}))
    started = time.monotonic()
    env = {**os.environ, "MLPIPE_DATABRICKS_SECRET_TEST_SCOPE_FROM_ENV": "env-secret"}
    with running_emulator(home, TOKEN, CONN_ID, env=env) as info:
        print(f"\nemulator up in {time.monotonic() - started:.1f} s at {info['url']}")
        requests.post(f"{info['url']}/api/2.1/clusters/start", json={"cluster_id": WARM},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).raise_for_status()
        yield info


@pytest.fixture
def hook(emulator) -> DatabricksHook:
    return DatabricksHook(databricks_conn_id=CONN_ID, retry_limit=2, retry_delay=0.5)


def api(emulator, method: str, endpoint: str, version: str = "2.0", query: dict | None = None, **body):
    response = requests.request(method, f"{emulator['url']}/api/{version}/{endpoint}", params=query,
                                json=body or None, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    return response.status_code, response.json() if response.content else {}


def import_notebook(emulator, path: str, source: str, fmt: str = "SOURCE") -> None:
    status, body = api(emulator, "POST", "workspace/import", path=path, format=fmt, language="PYTHON",
                       overwrite=True, content=base64.b64encode(source.encode()).decode())
    assert status == 200, body


def wait_terminal(hook: DatabricksHook, run_id: int, timeout: float = 180.0) -> dict:
    def finished():
        run = hook.get_run(run_id)
        return run if run["state"]["life_cycle_state"] in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR") else None
    return wait_until(finished, f"run {run_id} to end", timeout)


def notebook_task(path: str, params: dict | None = None, cluster: str = WARM, **extra) -> dict:
    return {"task_key": extra.pop("task_key", "main"), "existing_cluster_id": cluster,
            "notebook_task": {"notebook_path": path, "base_parameters": params or {}}, **extra}


def titanic_rows(count: int = 40) -> str:
    lines = (REPO / "tests" / "data" / "titanic.csv").read_text().splitlines()
    return "\n".join(lines[: count + 1]) + "\n"


AGGREGATE_NOTEBOOK = '''# Databricks notebook source
# MAGIC %md
# MAGIC # Survival by class
# MAGIC Aggregates the extracted rows with Spark.

# COMMAND ----------

import json
dbutils.widgets.text("min_age", "0")
input_path = dbutils.widgets.get("input")
min_age = float(dbutils.widgets.get("min_age"))
label = getArgument("label", "none")
password = dbutils.secrets.get("test-scope", "db-password")
print(f"connecting with {password} and {dbutils.secrets.get('test-scope', 'from-env')}")
print(f"reading {input_path} for {label}")

# COMMAND ----------

# MAGIC %run ./helpers

# COMMAND ----------

frame = spark.read.option("header", True).option("inferSchema", True).csv(input_path)
frame.createOrReplaceTempView("passengers")
with open("/dbfs/data/titanic.csv") as fuse:
    fuse_lines = len(fuse.read().splitlines())

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT Pclass, count(*) AS n FROM passengers GROUP BY Pclass ORDER BY Pclass

# COMMAND ----------

rows = (frame.where(frame.Age >= min_age).groupBy("Pclass")
        .agg({"Survived": "sum", "*": "count"}).collect())
result = {str(r["Pclass"]): survival(r) for r in rows}
frame.write.mode("overwrite").parquet("dbfs:/out/passengers.parquet")
display(frame.limit(2))
print("files:", sorted(f.name for f in dbutils.fs.ls("dbfs:/out/")))
dbutils.notebook.exit(json.dumps({"by_class": result, "fuse_lines": fuse_lines, "label": label}))
print("never printed")
'''

IPYNB_NOTEBOOK = json.dumps({"nbformat": 4, "nbformat_minor": 0, "metadata": {}, "cells": [
    {"cell_type": "markdown", "metadata": {}, "source": ["# a Jupyter notebook"]},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
     "source": ["n = spark.read.parquet('dbfs:/out/passengers.parquet').count()\n",
                "dbutils.notebook.exit(str(n))"]}]})


def test_dbfs_streaming_upload_round_trips_and_errors(emulator):
    payload = os.urandom(2_500_000)  # three blocks: more than the 1 MB a put or a block may carry
    status, body = api(emulator, "POST", "dbfs/put", path="/big/file.bin", overwrite=True,
                       contents=base64.b64encode(payload).decode())
    assert (status, body["error_code"]) == (400, "MAX_BLOCK_SIZE_EXCEEDED")
    status, created = api(emulator, "POST", "dbfs/create", path="dbfs:/big/file.bin", overwrite=True)
    assert status == 200 and isinstance(created["handle"], int)
    for start in range(0, len(payload), 1024 * 1024):
        status, _ = api(emulator, "POST", "dbfs/add-block", handle=created["handle"],
                        data=base64.b64encode(payload[start:start + 1024 * 1024]).decode())
        assert status == 200
    status, body = api(emulator, "GET", "dbfs/get-status", path="/big/file.bin")
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")  # not there before close
    assert api(emulator, "POST", "dbfs/close", handle=created["handle"])[0] == 200

    # GET parameters as a JSON body (the provider's async client) and as a query string
    assert api(emulator, "GET", "dbfs/get-status", path="/big/file.bin")[1] == api(
        emulator, "GET", "dbfs/get-status", query={"path": "/big/file.bin"})[1]
    status, info = api(emulator, "GET", "dbfs/get-status", query={"path": "/big/file.bin"})
    assert info["file_size"] == len(payload) and info["is_dir"] is False and info["path"] == "/big/file.bin"
    read_back = b""
    while len(read_back) < len(payload):
        _, chunk = api(emulator, "GET", "dbfs/read", query={"path": "/big/file.bin", "offset": len(read_back),
                                                            "length": 1024 * 1024})
        assert chunk["bytes_read"] > 0
        read_back += base64.b64decode(chunk["data"])
    assert read_back == payload
    assert api(emulator, "GET", "dbfs/read", path="/big/file.bin", length=2 * 1024 * 1024)[1]["error_code"] == \
        "MAX_READ_SIZE_EXCEEDED"
    assert api(emulator, "POST", "dbfs/create", path="/big/file.bin")[1]["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert api(emulator, "POST", "dbfs/mkdirs", path="/big/sub/dir")[0] == 200
    listing = api(emulator, "GET", "dbfs/list", path="/big")[1]["files"]
    assert {(f["path"], f["is_dir"]) for f in listing} == {("/big/file.bin", False), ("/big/sub", True)}
    assert api(emulator, "POST", "dbfs/delete", path="/big")[1]["error_code"] == "IO_ERROR"
    assert api(emulator, "POST", "dbfs/delete", path="/big", recursive=True)[0] == 200
    assert api(emulator, "GET", "dbfs/list", path="/big")[0] == 404
    assert api(emulator, "POST", "dbfs/put", path="/../escape", contents="")[1]["error_code"] == \
        "INVALID_PARAMETER_VALUE"


def test_workspace_import_export_and_cli_import(emulator, tmp_path):
    assert api(emulator, "POST", "workspace/mkdirs", path="/Users/dev@example.com/nb")[0] == 200
    import_notebook(emulator, "/Users/dev@example.com/nb/aggregate", AGGREGATE_NOTEBOOK)
    import_notebook(emulator, "/Users/dev@example.com/nb/helpers", "# Databricks notebook source\n"
                    "def survival(row):\n    return [int(row['sum(Survived)']), int(row['count(1)'])]\n")
    status, obj = api(emulator, "GET", "workspace/get-status", path="/Users/dev@example.com/nb/aggregate")
    assert status == 200 and (obj["object_type"], obj["language"]) == ("NOTEBOOK", "PYTHON")
    listing = api(emulator, "GET", "workspace/list", query={"path": "/Users/dev@example.com"})[1]
    assert [(o["path"], o["object_type"]) for o in listing["objects"]] == [("/Users/dev@example.com/nb",
                                                                            "DIRECTORY")]
    nested = api(emulator, "GET", "workspace/list", path="/Users/dev@example.com/nb")[1]["objects"]
    assert {o["path"] for o in nested} == {"/Users/dev@example.com/nb/aggregate",
                                           "/Users/dev@example.com/nb/helpers"}
    _, exported = api(emulator, "GET", "workspace/export", path="/Users/dev@example.com/nb/aggregate",
                      format="SOURCE")
    assert base64.b64decode(exported["content"]).decode() == AGGREGATE_NOTEBOOK
    _, jupyter = api(emulator, "GET", "workspace/export", path="/Users/dev@example.com/nb/aggregate",
                     format="JUPYTER")
    cells = json.loads(base64.b64decode(jupyter["content"]))["cells"]
    assert cells[0]["cell_type"] == "markdown"
    assert [c["source"].split("\n")[0] for c in cells if c["source"].startswith("%")] == ["%run ./helpers", "%sql"]
    status, missing = api(emulator, "GET", "workspace/get-status", path="/Users/nobody/x")
    assert (status, missing["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")

    local = tmp_path / "count.ipynb"
    local.write_text(IPYNB_NOTEBOOK)
    out = subprocess.run([sys.executable, "-m", "airflow_mlpipe.emulators.databricks", "import", str(local),
                          "/Shared/count", "--home", str(emulator["home"])], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert json.loads(out.stdout)["object_type"] == "NOTEBOOK"
    assert api(emulator, "GET", "workspace/get-status", path="/Workspace/Shared/count")[1]["path"] == "/Shared/count"


def test_tokens_are_checked_and_status_reports_the_server(emulator):
    out = subprocess.run([sys.executable, "-m", "airflow_mlpipe.emulators.databricks", "status", "--home",
                          str(emulator["home"])], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and json.loads(out.stdout)["port"] == emulator["port"]
    url = f"{emulator['url']}/api/2.2/jobs/runs/get?run_id=1"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert (wrong.status_code, wrong.json()["error_code"]) == (403, "PERMISSION_DENIED")


def test_notebook_with_widgets_aggregates_csv_with_spark(emulator, hook):
    csv_text = titanic_rows()
    assert api(emulator, "POST", "dbfs/put", path="dbfs:/data/titanic.csv", overwrite=True,
               contents=base64.b64encode(csv_text.encode()).decode())[0] == 200
    expected: dict[str, list[int]] = {}
    for row in csv.DictReader(io.StringIO(csv_text)):
        if row["Age"] and float(row["Age"]) >= 30:
            survived, count = expected.get(row["Pclass"], [0, 0])
            expected[row["Pclass"]] = [survived + int(row["Survived"]), count + 1]

    started = time.monotonic()
    run_id = hook.submit_run({"run_name": "aggregate titanic", "tasks": [
        notebook_task("/Users/dev@example.com/nb/aggregate", task_key="aggregate",
                      params={"input": "dbfs:/data/titanic.csv", "min_age": "30", "label": "adults"}),
        notebook_task("/Shared/count", task_key="count", depends_on=[{"task_key": "aggregate"}])]})
    run = wait_terminal(hook, run_id)
    print(f"\nfirst notebook run (cluster cold start included): {time.monotonic() - started:.1f} s")
    assert run["state"]["result_state"] == "SUCCESS", run["state"]
    assert run["status"] == {"state": "TERMINATED", "termination_details": {
        "code": "SUCCESS", "type": "SUCCESS", "message": ""}}
    assert run["run_id"] == run_id and isinstance(run["job_id"], int)
    assert run["run_page_url"] == hook.get_run_page_url(run_id)
    assert requests.get(run["run_page_url"], timeout=10).status_code == 200
    tasks = {task["task_key"]: task for task in run["tasks"]}
    assert [t["state"]["result_state"] for t in tasks.values()] == ["SUCCESS", "SUCCESS"]
    assert tasks["aggregate"]["cluster_instance"]["cluster_id"] == WARM

    output = hook.get_run_output(tasks["aggregate"]["run_id"])
    result = json.loads(output["notebook_output"]["result"])
    assert result == {"by_class": expected, "fuse_lines": len(csv_text.splitlines()), "label": "adults"}
    assert "reading dbfs:/data/titanic.csv for adults" in output["logs"]
    assert "connecting with [REDACTED] and [REDACTED]" in output["logs"] and SECRET not in output["logs"]
    assert "|Pclass|n" in output["logs"].replace(" ", "")  # the %sql cell, displayed
    assert "files: ['passengers.parquet/']" in output["logs"] and "never printed" not in output["logs"]
    assert hook.get_run_output(tasks["count"]["run_id"])["notebook_output"]["result"] == str(
        len(csv_text.splitlines()) - 1)
    with pytest.raises(Exception, match="multiple tasks"):
        hook.get_run_output(run_id)


def test_python_file_on_dbfs_gets_argv_and_fuse_paths(emulator):
    script = '''import argparse, sys
from pyspark.sql import SparkSession
parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int)
parser.add_argument("--output")
args = parser.parse_args()
spark = SparkSession.builder.getOrCreate()
total = spark.range(args.rows).selectExpr("sum(id) AS s").collect()[0]["s"]
with open(args.output, "w") as out:
    out.write(str(total))
print("argv", sys.argv[1:], "total", total)
'''
    api(emulator, "POST", "dbfs/put", path="/scripts/sum.py", overwrite=True,
        contents=base64.b64encode(script.encode()).decode())
    # the single-task shape of API 2.0, on the 2.1 endpoints, by plain HTTP
    status, submitted = api(emulator, "POST", "jobs/runs/submit", version="2.1", run_name="sum", existing_cluster_id=WARM,
                            spark_python_task={"python_file": "dbfs:/scripts/sum.py",
                                               "parameters": ["--rows", "101", "--output", "/dbfs/out/sum.txt"]})
    assert status == 200
    hook = DatabricksHook(databricks_conn_id=CONN_ID)
    started = time.monotonic()
    run = wait_terminal(hook, submitted["run_id"])
    print(f"\nwarm python file run: {time.monotonic() - started:.1f} s")
    assert run["state"]["result_state"] == "SUCCESS", run["state"]
    _, run21 = api(emulator, "GET", "jobs/runs/get", version="2.1", run_id=submitted["run_id"])
    assert "status" not in run21 and run21["tasks"][0]["task_key"] == "sum"
    output = hook.get_run_output(submitted["run_id"])  # a single-task run answers for its task
    assert "argv ['--rows', '101', '--output', '/dbfs/out/sum.txt'] total 5050" in output["logs"]
    _, read = api(emulator, "GET", "dbfs/read", path="/out/sum.txt")
    assert base64.b64decode(read["data"]) == b"5050"


def test_failing_notebook_surfaces_its_error(emulator, hook):
    import_notebook(emulator, "/Shared/failing", '''# Databricks notebook source
print("before the failure")

# COMMAND ----------

def check(value):
    raise ValueError(f"bad input {value}")

check(dbutils.widgets.get("value"))
''')
    run_id = hook.submit_run({"run_name": "failing", "tasks": [notebook_task("/Shared/failing", {"value": "42"})]})
    run = wait_terminal(hook, run_id)
    state = hook.get_run_state(run_id)
    assert (state.life_cycle_state, state.result_state) == ("TERMINATED", "FAILED")
    assert "ValueError: bad input 42" in state.state_message
    assert run["status"]["termination_details"]["code"] == "RUN_EXECUTION_ERROR"
    errors = extract_failed_task_errors(hook, run, state)  # what the provider's operators log and raise
    assert errors == [{"task_key": "main", "run_id": run["tasks"][0]["run_id"], "error": "ValueError: bad input 42"}]
    output = hook.get_run_output(run["tasks"][0]["run_id"])
    assert "/Shared/failing (cell 2)" in output["error_trace"] and "check" in output["error_trace"]
    assert "before the failure" in output["logs"]


def test_timeout_ends_the_run_timedout_and_the_cluster_stays_warm(emulator, hook):
    import_notebook(emulator, "/Shared/sleepy", "# Databricks notebook source\nimport time\nprint('sleeping')\n"
                                                "time.sleep(300)\n")
    run_id = hook.submit_run({"run_name": "too slow", "timeout_seconds": 2,
                              "tasks": [notebook_task("/Shared/sleepy")]})
    run = wait_terminal(hook, run_id, timeout=60)
    assert (run["state"]["life_cycle_state"], run["state"]["result_state"]) == ("TERMINATED", "TIMEDOUT")
    assert run["state"]["user_cancelled_or_timedout"] is True
    import_notebook(emulator, "/Shared/quick", "# Databricks notebook source\n"
                                               "dbutils.notebook.exit(str(spark.range(7).count()))\n")
    started = time.monotonic()
    quick = hook.submit_run({"run_name": "quick", "tasks": [notebook_task("/Shared/quick")]})
    assert wait_terminal(hook, quick)["state"]["result_state"] == "SUCCESS"
    elapsed = time.monotonic() - started
    print(f"\nwarm trivial notebook run, submit to TERMINATED: {elapsed:.2f} s")
    assert elapsed < 8, "the cluster's SparkSession should still be warm"
    assert hook.get_run_output(quick)["notebook_output"]["result"] == "7"


def test_cancel_stops_a_running_run(emulator, hook):
    # a Spark job whose tasks run until cancelled (an aggregation over a huge range may end early, e.g. on overflow)
    import_notebook(emulator, "/Shared/long_job", "# Databricks notebook source\nprint('working', flush=True)\n"
                                                  "spark.range(0, 2, 1, 2).foreach("
                                                  "lambda _: __import__('time').sleep(600))\n")
    run_id = hook.submit_run({"run_name": "long", "tasks": [notebook_task("/Shared/long_job")]})
    wait_until(lambda: "working" in (hook.get_run_output(run_id).get("logs") or ""), "the job to start", 60)
    assert hook.get_run_state(run_id).life_cycle_state == "RUNNING"
    hook.cancel_run(run_id)
    run = wait_terminal(hook, run_id, timeout=60)
    assert (run["state"]["life_cycle_state"], run["state"]["result_state"]) == ("TERMINATED", "CANCELED")
    assert run["status"]["termination_details"]["code"] == "USER_CANCELED"

    async def async_state():
        async with DatabricksHook(databricks_conn_id=CONN_ID) as async_hook:
            return await async_hook.a_get_run_state(run_id)  # GET parameters sent as a JSON body
    state = asyncio.run(async_state())
    assert (state.life_cycle_state, state.result_state, state.is_terminal) == ("TERMINATED", "CANCELED", True)


def test_idempotency_token_returns_the_same_run(emulator, hook):
    request = {"run_name": "once", "idempotency_token": "step-run-7f3a-try-1",
               "tasks": [notebook_task("/Shared/quick")]}
    first = hook.submit_run(request)
    second = hook.submit_run(request)
    assert first == second
    other = hook.submit_run({**request, "idempotency_token": "step-run-7f3a-try-2"})
    assert other != first
    for run_id in (first, other):
        assert wait_terminal(hook, run_id)["state"]["result_state"] == "SUCCESS"
    assert hook.get_run(first)["job_id"] != hook.get_run(other)["job_id"]
    status, body = api(emulator, "POST", "jobs/runs/submit", version="2.2", idempotency_token="x" * 65,
                       tasks=[notebook_task("/Shared/quick")])
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


def test_jar_task_runs_its_main_class_with_spark_submit(emulator, hook, tmp_path):
    (tmp_path / "Hello.java").write_text(
        'public class Hello { public static void main(String[] a) {'
        ' System.out.println("hello " + String.join(",", a)); if (a.length > 2) System.exit(3); } }')
    subprocess.run(["javac", "--release", "17", "Hello.java"], cwd=tmp_path, check=True)
    subprocess.run(["jar", "cf", "hello.jar", "Hello.class"], cwd=tmp_path, check=True)
    jar = base64.b64encode((tmp_path / "hello.jar").read_bytes()).decode()
    hook._do_api_call(("POST", "2.0/dbfs/put"), {"path": "/jars/hello.jar", "contents": jar, "overwrite": True})
    started = time.monotonic()
    run_id = hook.submit_run({"run_name": "jar", "tasks": [
        {"task_key": "ok", "existing_cluster_id": WARM, "libraries": [{"jar": "dbfs:/jars/hello.jar"}],
         "spark_jar_task": {"main_class_name": "Hello", "parameters": ["x", "y"]}},
        {"task_key": "exit3", "existing_cluster_id": WARM, "libraries": [{"jar": "dbfs:/jars/hello.jar"}],
         "spark_jar_task": {"main_class_name": "Hello", "parameters": ["a", "b", "c"]}}]})
    run = wait_terminal(hook, run_id)
    print(f"\ntwo JAR tasks through spark-submit: {time.monotonic() - started:.1f} s")
    tasks = {task["task_key"]: task for task in run["tasks"]}
    assert tasks["ok"]["state"]["result_state"] == "SUCCESS"
    assert "hello x,y" in hook.get_run_output(tasks["ok"]["run_id"])["logs"]
    assert tasks["exit3"]["state"]["result_state"] == "FAILED"
    assert "Hello exited with code 3" in hook.get_run_output(tasks["exit3"]["run_id"])["error"]


def test_a_run_in_flight_when_the_emulator_restarts_reports_internal_error(emulator, hook):
    import psutil

    in_flight = hook.submit_run({"run_name": "interrupted", "tasks": [notebook_task("/Shared/sleepy")]})
    wait_until(lambda: "sleeping" in (hook.get_run_output(in_flight).get("logs") or ""), "the run to start", 60)
    fresh = hook.submit_run({"run_name": "on a new cluster", "tasks": [{
        "task_key": "main", "new_cluster": {"spark_version": "15.4.x-scala2.12", "num_workers": 1},
        "notebook_task": {"notebook_path": "/Shared/quick"}}]})
    new_cluster = wait_until(lambda: hook.get_run(fresh)["tasks"][0].get("cluster_instance"), "a new cluster", 30)
    assert new_cluster["cluster_id"] != WARM
    server = psutil.Process(daemon.read_info(emulator["home"])["pid"])
    processes = [server, *server.children(recursive=True)]
    assert len(processes) >= 4  # the server, two cluster workers and the warm cluster's JVM

    server.kill()  # a crash: nothing is recorded on the way down
    wait_until(lambda: not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
             "the cluster workers and their JVMs to exit with the emulator", 30)
    info = daemon.start(emulator["home"], token=TOKEN)
    set_connection(CONN_ID, info, TOKEN)
    emulator.update(url=info["url"], port=info["port"])
    restarted = DatabricksHook(databricks_conn_id=CONN_ID)
    for run_id in (in_flight, fresh):
        state = restarted.get_run_state(run_id)
        assert (state.life_cycle_state, state.result_state) == ("INTERNAL_ERROR", "FAILED"), state
        assert state.is_terminal and "stopped while this run was in flight" in state.state_message
    assert restarted.get_run_output(in_flight)["error"]
    assert restarted.get_run(in_flight)["tasks"][0]["state"]["life_cycle_state"] == "INTERNAL_ERROR"

    # `stop` ends the server and every process it started
    assert restarted.submit_run({"run_name": "after restart", "tasks": [notebook_task("/Shared/quick")]})
    server = psutil.Process(daemon.read_info(emulator["home"])["pid"])
    wait_until(lambda: len(server.children(recursive=True)) >= 2, "the warm cluster to start again", 30)
    processes = [server, *server.children(recursive=True)]
    out = subprocess.run([sys.executable, "-m", "airflow_mlpipe.emulators.databricks", "stop", "--home",
                          str(emulator["home"])], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == {"stopped": True}
    assert not [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert daemon.status(emulator["home"])["running"] is False
