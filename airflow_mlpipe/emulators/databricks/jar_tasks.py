"""``spark_jar_task``: ``main_class_name`` run through PySpark's ``spark-submit`` with the task's JAR libraries.

The first JAR (``jar_uri``, else the first ``{"jar": ...}`` library) is the application, the others go to
``--jars``; ``parameters`` are the main class's arguments. JAR paths may be ``dbfs:/``, ``/dbfs/``, ``file:/``
or local. The process's stdout and stderr are the run's log; a non-zero exit fails the run with the end of
stderr as its ``error_trace``. Cancel and timeout kill the process group.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_mlpipe.emulators.databricks.dbfs_paths import DbfsRoot
from airflow_mlpipe.emulators.databricks.state_db import run_log_path

TRACE_TAIL_BYTES = 20_000


def _resolve(dbfs: DbfsRoot, path: str) -> Path:
    if path.startswith("dbfs:"):
        return dbfs.local(path)
    if path.startswith("/dbfs/"):
        return dbfs.local(path[len("/dbfs"):])
    if path.startswith("file:"):
        return Path("/" + path[len("file:"):].lstrip("/"))
    return Path(path)


def spark_submit_command(home: Path, spec: dict[str, Any]) -> list[str]:
    import pyspark

    task = spec["spark_jar_task"]
    jars = ([task["jar_uri"]] if task.get("jar_uri") else []) + [
        lib["jar"] for lib in spec.get("libraries") or [] if isinstance(lib, dict) and lib.get("jar")]
    if not jars:
        raise ValueError("spark_jar_task needs a JAR: add {\"jar\": \"dbfs:/...\"} to the task's libraries")
    dbfs = DbfsRoot(home / "dbfs")
    local = [_resolve(dbfs, jar) for jar in jars]
    missing = [str(jar) for jar, path in zip(jars, local, strict=True) if not path.is_file()]
    if missing:
        raise ValueError(f"JAR library not found: {', '.join(missing)}")
    conf = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4",
            **{str(k): str(v) for k, v in ((spec.get("new_cluster") or {}).get("spark_conf") or {}).items()}}
    command = [str(Path(pyspark.__file__).parent / "bin" / "spark-submit"), "--master",
               conf.pop("spark.master", "local[*]"), "--class", task["main_class_name"]]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    if len(local) > 1:
        command += ["--jars", ",".join(str(p) for p in local[1:])]
    return [*command, str(local[0]), *[str(p) for p in task.get("parameters") or []]]


def run_jar_task(home: Path, run_id: int, spec: dict[str, Any], inbox: queue.Queue,
                 deadline: float | None) -> dict[str, Any]:
    try:
        command = spark_submit_command(home, spec)
    except ValueError as error:
        return {"result_state": "FAILED", "error": str(error)}
    import pyspark

    log_path = run_log_path(home, run_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(Path(pyspark.__file__).parent), "PYSPARK_PYTHON": sys.executable}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    reason: str | None = None
    while process.poll() is None:
        timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
        try:
            event = inbox.get(timeout=timeout)
            if event.get("event") == "cancel_requested":
                reason = "CANCELED"
        except queue.Empty:
            pass
        if reason is None and deadline is not None and time.monotonic() >= deadline:
            reason = "TIMEDOUT"
        if reason:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            return {"result_state": reason}
    if process.returncode == 0:
        return {"result_state": "SUCCESS"}
    tail = log_path.read_bytes()[-TRACE_TAIL_BYTES:].decode("utf-8", "replace")
    main_class = spec["spark_jar_task"]["main_class_name"]
    error_lines = [line for line in tail.splitlines() if "Exception" in line or "Error" in line]
    summary = error_lines[0].strip() if error_lines else f"{main_class} exited with code {process.returncode}"
    return {"result_state": "FAILED", "error": summary, "error_trace": tail}
