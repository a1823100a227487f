"""Shared pieces of the DatabricksStep benchmark: a scratch project with its embedded Airflow and Databricks
emulator, the emulator's REST API, the same notebook run directly in this process, and the timings Airflow and
the emulator record for a step."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from _common import _parse

TOKEN = "dapi-bench-token-0123456789"
WARM = "mlpipe-bench-warm"
NOTEBOOK_PATH = "/Shared/bench_trivial"
#: the trivial step: one Spark job, a tiny file in its output folder, an exit value
NOTEBOOK = """\
# Databricks notebook source
import os
out = dbutils.widgets.get("out")

# COMMAND ----------
n = spark.range(10).count()
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "n.txt"), "w").write(str(n))
dbutils.notebook.exit(str(n))
"""


def parse_ts(value: str | None) -> datetime | None:
    """``_common._parse``, with ``None`` for a missing timestamp (a task that has not started or ended)."""
    return _parse(value) if value else None


def seconds(start: str | None, end: str | None) -> float:
    a, b = parse_ts(start), parse_ts(end)
    if a is None or b is None:
        raise ValueError(f"missing timestamp: {start!r} -> {end!r}")
    return (b - a).total_seconds()


def summary(values: list[float]) -> tuple[float, float, float]:
    """min, median and p90 (inclusive quantiles, so a handful of values works too)."""
    ordered = sorted(values)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return ordered[0], statistics.median(ordered), p90


def row(label: str, values: list[float]) -> str:
    low, mid, p90 = summary(values)
    return f"{label:<52} {low:>7.2f}s {mid:>7.2f}s {p90:>7.2f}s   n={len(values)}"


HEADER = f"{'':<52} {'min':>8} {'median':>8} {'p90':>8}"


class Emulator:
    """The emulator's REST API, as the test of the step uses it."""

    def __init__(self, url: str, home: Path) -> None:
        self.url, self.home = url, home

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def post(self, endpoint: str, **body: Any) -> dict:
        r = requests.post(f"{self.url}/api/{endpoint}", json=body, headers=self._headers(), timeout=60)
        r.raise_for_status()
        return r.json()

    def get(self, endpoint: str, **params: Any) -> dict:
        r = requests.get(f"{self.url}/api/{endpoint}", params=params, headers=self._headers(), timeout=60)
        r.raise_for_status()
        return r.json()

    def import_notebook(self, path: str, source: str) -> None:
        self.post("2.0/workspace/import", path=path, format="SOURCE", language="PYTHON", overwrite=True,
                  content=base64.b64encode(source.encode()).decode())

    def start_cluster(self, cluster_id: str, timeout: float = 300) -> float:
        """Start a long-lived cluster and wait until it runs; seconds it took."""
        started = time.monotonic()
        self.post("2.1/clusters/start", cluster_id=cluster_id)
        while self.get("2.1/clusters/get", cluster_id=cluster_id)["state"] != "RUNNING":
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"cluster {cluster_id} did not start in {timeout} s")
            time.sleep(0.2)
        return time.monotonic() - started

    def run_seconds(self, run_id: int) -> dict[str, float]:
        """The run's own duration as ``runs/get`` reports it (start_time→end_time), and its task's parts."""
        run = self.get("2.2/jobs/runs/get", run_id=run_id)
        out = {"run": (run["end_time"] - run["start_time"]) / 1000}
        for task in run.get("tasks") or []:
            out["task"] = (task["end_time"] - task["start_time"]) / 1000
            for part in ("setup_duration", "execution_duration", "cleanup_duration"):
                if task.get(part) is not None:
                    out[part] = task[part] / 1000
        out["start_ms"], out["end_ms"] = run["start_time"], run["end_time"]
        return out


@dataclass
class Project:
    root: Path
    ws: Any
    info: Any
    compute: Any
    api: Emulator
    store: Any

    def client(self) -> Any:
        from airflow_mlpipe.clients.airflow_rest import AirflowClient

        return AirflowClient(self.info.url, self.info.username, self.info.password)


@contextmanager
def scratch_project(port: int | None) -> Iterator[Project]:
    """A throw-away project: its embedded Airflow, an attached DatabricksCompute (which starts the emulator)
    and the benchmark's notebook; everything started here is stopped on the way out."""
    from airflow_mlpipe import Datastore, Workspace
    from airflow_mlpipe.clients import local_airflow
    from airflow_mlpipe.clients.databricks_connection import emulator_home, emulator_status, stop_emulator
    from airflow_mlpipe.sdk.compute import ComputeTarget, DatabricksCompute

    root = Path(tempfile.mkdtemp(prefix="mlpipe-bench-db-"))
    (root / ".mlpipe").mkdir()
    (root / ".mlpipe" / "config.json").write_text(json.dumps({"airflow": {"settings": {}}}))
    old = os.getcwd()
    os.chdir(root)
    ws = Workspace.from_config()
    try:
        t0 = time.monotonic()
        info = local_airflow.start(ws, dags_folder=root / "dags", port=port or local_airflow._free_port())
        print(f"embedded Airflow healthy after {time.monotonic() - t0:.1f} s at {info.url}")
        try:
            compute = ComputeTarget.attach(ws, "dbcompute", DatabricksCompute.attach_configuration(
                resource_group="rg", workspace_name="dbws", access_token=TOKEN))
            api = Emulator(emulator_status(ws)["url"], emulator_home(ws))
            print(f"Databricks emulator at {api.url}")
            api.import_notebook(NOTEBOOK_PATH, NOTEBOOK)
            yield Project(root, ws, info, compute, api, Datastore(ws, "workspaceblobstore"))
        finally:
            stop_emulator(ws)
            local_airflow.stop(ws)
    finally:
        os.chdir(old)
        shutil.rmtree(root, ignore_errors=True)


class DirectNotebook:
    """The notebook run in this process on a warm SparkSession, with the emulator's own notebook pieces
    (workspace read, cell parsing, ``dbutils``/widgets, cell execution): the step's work without Airflow,
    the provider, the REST hops and the cluster process."""

    def __init__(self, emulator_home: Path) -> None:
        from pyspark.sql import SparkSession

        from airflow_mlpipe.emulators.databricks.cluster_worker import DEFAULT_SPARK_CONF
        from airflow_mlpipe.emulators.databricks.dbfs_paths import DbfsRoot
        from airflow_mlpipe.emulators.databricks.dbutils import SecretStore
        from airflow_mlpipe.emulators.databricks.task_execution import TaskContext
        from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceStore

        self.scratch = Path(tempfile.mkdtemp(prefix="mlpipe-bench-direct-"))
        builder = SparkSession.builder.master("local[*]").appName("bench-direct")
        for key, value in {**DEFAULT_SPARK_CONF, "spark.sql.warehouse.dir": str(self.scratch / "wh"),
                           "spark.local.dir": str(self.scratch / "tmp")}.items():
            builder = builder.config(key, value)
        t0 = time.monotonic()
        self.spark = builder.getOrCreate()
        self.spark.sparkContext.setLogLevel("ERROR")
        self.startup = time.monotonic() - t0
        self.spark.range(1).count()  # warm, as the cluster is after clusters/start and its first run
        self.ctx = TaskContext(emulator_home, DbfsRoot(emulator_home / "dbfs"),
                               WorkspaceStore(emulator_home / "workspace"), SecretStore(emulator_home), self.spark)
        self.rounds = 0

    def run(self) -> float:
        from airflow_mlpipe.emulators.databricks.task_execution import run_task

        self.rounds += 1
        out = self.scratch / f"out{self.rounds}"
        task = {"notebook_task": {"notebook_path": NOTEBOOK_PATH, "base_parameters": {"out": str(out)}}}
        t0 = time.perf_counter()
        result = run_task(self.ctx, task)
        elapsed = time.perf_counter() - t0
        if result != "10" or (out / "n.txt").read_text() != "10":
            raise RuntimeError(f"the direct notebook run returned {result!r}")
        return elapsed

    def close(self) -> None:
        self.spark.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


_LINE = re.compile(r"^\[(?P<ts>[^\]]+)\]\s+(?P<rest>.*)$")


def log_marks(log: str) -> dict[str, datetime]:
    """When the step's task did what, from the timestamps of its log: the first line of each worker phase,
    the submission, the trigger's first poll and the completion's first line."""
    marks: dict[str, datetime] = {}
    for line in log.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        try:
            ts = parse_ts(match["ts"])
        except ValueError:
            continue
        rest = match["rest"]
        marks.setdefault("first", ts)
        if "Databricks run" in rest and "submitted" in rest:
            marks.setdefault("submitted", ts)
        elif "waiting (" in rest:
            marks.setdefault("trigger_first_poll", ts)
        elif "Pausing task as DEFERRED" in rest:
            marks.setdefault("deferred", ts)
        elif rest.startswith("INFO trigger ") and rest.rstrip().endswith("starting"):
            marks.setdefault("trigger_started", ts)
        elif "Trigger fired event" in rest:
            marks.setdefault("trigger_fired", ts)
        elif "Pre Execute" in rest and "trigger_fired" in marks:
            marks.setdefault("resumed", ts)  # the completion's first line, in a second worker process
        elif "Output of Databricks run" in rest or "the notebook exited with" in rest:
            marks.setdefault("complete_output", ts)
        marks["last"] = ts
    return marks


def timeline(log: str, origin: datetime) -> list[str]:
    """The log's timestamped lines as offsets from ``origin`` (the TI's start), shortened."""
    lines = []
    for line in log.splitlines():
        match = _LINE.match(line)
        if match:
            try:
                ts = parse_ts(match["ts"])
            except ValueError:
                continue
            lines.append(f"  {(ts - origin).total_seconds():>+7.3f}s  {match['rest'][:110]}")
    return lines
