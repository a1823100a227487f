"""One emulated cluster: a Python process that keeps a SparkSession warm and runs tasks one at a time.

The emulator starts it with two pipes: commands in (``run``, ``cancel``, ``stop``; JSON lines) and events out
(``ready``, ``start_failed``, ``started``, ``finished``). A task's stdout and stderr go to the run's log file
(secrets it read shown as ``[REDACTED]``). Cancelling (or a timeout, which the emulator turns into a cancel)
first cancels the task's Spark jobs, then interrupts the Python code with ``SIGUSR1``; the SparkSession
stays warm for the next run. When the emulator goes away (the command pipe closes) the process exits, and
with it the Spark JVM.

    python -m airflow_mlpipe.emulators.databricks.cluster_worker --home H --cluster-id C --cmd-fd N --event-fd M
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from airflow_mlpipe.emulators.databricks.dbfs_paths import DbfsRoot
from airflow_mlpipe.emulators.databricks.dbutils import SecretStore
from airflow_mlpipe.emulators.databricks.task_execution import (
    NOTEBOOK_RESULT_LIMIT,
    TaskContext,
    error_summary,
    install_path_mapping,
    run_task,
    user_traceback,
)
from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceStore

INTERRUPT_GRACE_SECONDS = 2.0
DEFAULT_SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.showConsoleProgress": "false",
}


class RunInterrupted(BaseException):  # noqa: N818 - not an error: a cancel or a timeout
    """Raised in the task's code by the cancel signal; not an ``Exception``, so user code does not catch it."""


class _RedactingLog(io.TextIOBase):
    def __init__(self, path: Path, secrets: SecretStore) -> None:
        self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by close()
        self._secrets = secrets

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._file.write(self._secrets.redact(text))
        return len(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Worker:
    def __init__(self, home: Path, cluster_id: str, spec: dict[str, Any], events) -> None:
        self.home = home
        self.cluster_id = cluster_id
        self.spec = spec
        self._events = events
        self._events_lock = threading.Lock()
        self.commands: queue.Queue[dict | None] = queue.Queue()
        self.current_run: int | None = None
        self.cancel_reason: str | None = None
        self.interrupted = False
        self.done = threading.Event()
        self.spark: Any = None
        self.secrets = SecretStore(home)

    def emit(self, event: dict[str, Any]) -> None:
        with self._events_lock:
            self._events.write(json.dumps(event) + "\n")
            self._events.flush()

    def start_spark(self) -> None:
        from pyspark.sql import SparkSession

        cluster_dir = self.home / "clusters" / self.cluster_id
        conf = {**DEFAULT_SPARK_CONF, "spark.sql.warehouse.dir": str(cluster_dir / "spark-warehouse"),
                "spark.driver.extraJavaOptions": f"-Dderby.system.home={cluster_dir}",
                "spark.local.dir": str(cluster_dir / "tmp"),
                **{str(k): str(v) for k, v in (self.spec.get("spark_conf") or {}).items()}}
        builder = SparkSession.builder.master(conf.pop("spark.master", "local[*]")).appName(
            f"databricks-emulator-{self.cluster_id}")
        for key, value in conf.items():
            builder = builder.config(key, value)
        self.spark = builder.getOrCreate()
        self.spark.sparkContext.setLogLevel("ERROR")

    def on_signal(self, signum, frame) -> None:
        if self.current_run is not None and self.cancel_reason and not self.interrupted:
            self.interrupted = True
            raise RunInterrupted(self.cancel_reason)

    def read_commands(self, stream) -> None:
        for line in stream:
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("cmd") == "cancel":
                threading.Thread(target=self.cancel, args=(command["run_id"], command.get("reason", "CANCELED")),
                                 daemon=True).start()
            else:
                self.commands.put(command)
        os._exit(0)  # the emulator is gone: leave at once (the Spark JVM follows when our stdin closes)

    def cancel(self, run_id: int, reason: str) -> None:
        if self.current_run != run_id:
            return
        self.cancel_reason = reason
        with contextlib.suppress(Exception):
            self.spark.sparkContext.cancelJobGroup(f"run-{run_id}")
        if not self.done.wait(INTERRUPT_GRACE_SECONDS) and self.current_run == run_id:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    def execute(self, command: dict[str, Any]) -> None:
        run_id = int(command["run_id"])
        self.current_run, self.cancel_reason, self.interrupted = run_id, None, False
        self.done.clear()
        self.emit({"event": "started", "run_id": run_id})
        log_path = Path(command["log_path"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = _RedactingLog(log_path, self.secrets)
        outcome: dict[str, Any] = {"event": "finished", "run_id": run_id}
        context = TaskContext(self.home, DbfsRoot(self.home / "dbfs"), WorkspaceStore(self.home / "workspace"),
                              self.secrets, self.spark)
        started = time.monotonic()
        try:
            self.spark.sparkContext.setJobGroup(f"run-{run_id}", f"Databricks emulator run {run_id}",
                                                interruptOnCancel=True)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                try:
                    result = run_task(context, command["task"])
                    outcome["result_state"] = "SUCCESS"
                    if result is not None:
                        encoded = result.encode("utf-8")
                        outcome["notebook_result"] = encoded[:NOTEBOOK_RESULT_LIMIT].decode("utf-8", "ignore")
                        outcome["notebook_truncated"] = len(encoded) > NOTEBOOK_RESULT_LIMIT
                except RunInterrupted as interrupted:
                    outcome["result_state"] = str(interrupted)
                except BaseException as error:  # noqa: BLE001 - every failure of user code is the run's result
                    if self.cancel_reason:
                        outcome["result_state"] = self.cancel_reason
                    else:
                        trace = user_traceback(error)
                        print(trace, file=sys.stderr)
                        outcome.update(result_state="FAILED", error=self.secrets.redact(error_summary(error)),
                                       error_trace=self.secrets.redact(trace))
        except RunInterrupted as interrupted:  # arrived between the inner handlers
            outcome["result_state"] = str(interrupted)
        finally:
            with contextlib.suppress(Exception):
                self.spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
            log.close()
            outcome["seconds"] = round(time.monotonic() - started, 3)
            self.current_run = None
            self.done.set()
            self.emit(outcome)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--cluster-id", required=True)
    parser.add_argument("--cmd-fd", required=True, type=int)
    parser.add_argument("--event-fd", required=True, type=int)
    parser.add_argument("--spec", default="{}")
    args = parser.parse_args(argv)
    events = os.fdopen(args.event_fd, "w", buffering=1)
    commands = os.fdopen(args.cmd_fd, "r")
    worker = Worker(args.home.resolve(), args.cluster_id, json.loads(args.spec), events)
    threading.Thread(target=worker.read_commands, args=(commands,), daemon=True).start()
    started = time.monotonic()
    try:
        worker.start_spark()
    except BaseException as error:  # noqa: BLE001 - reported to the emulator, which fails the waiting runs
        worker.emit({"event": "start_failed", "error": error_summary(error)})
        return 1
    install_path_mapping(DbfsRoot(worker.home / "dbfs"))
    signal.signal(signal.SIGUSR1, worker.on_signal)
    worker.emit({"event": "ready", "seconds": round(time.monotonic() - started, 3),
                 "spark_version": worker.spark.version})
    while True:
        command = worker.commands.get()
        if command is None or command.get("cmd") == "stop":
            break
        if command.get("cmd") == "run":
            try:
                worker.execute(command)
            except RunInterrupted:
                pass
    with contextlib.suppress(Exception):
        worker.spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
