"""The emulator's clusters: one ``cluster_worker`` process per cluster, started on demand.

An ``existing_cluster_id`` names a long-lived cluster whose SparkSession stays warm between runs (any id is
accepted; the first run or ``clusters/start`` starts it). A ``new_cluster`` spec gets a one-time cluster
(``<date>-<time>-job<run id>``) that is started for its task and terminated after it. A cluster runs one task
at a time; other runs wait for it in PENDING. States are those of ``clusters/get``: PENDING while the
SparkSession starts, RUNNING, TERMINATING, TERMINATED, ERROR.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class ClusterProcess:
    """One cluster and its worker process; events from the worker are routed to the waiting runs."""

    def __init__(self, home: Path, cluster_id: str, spec: dict[str, Any], one_time: bool) -> None:
        self.home = home
        self.cluster_id = cluster_id
        self.spec = spec
        self.one_time = one_time
        self.state = "TERMINATED"
        self.state_message = ""
        self.start_seconds: float | None = None
        self.spark_version: str | None = None
        self.busy = threading.Lock()
        self._lock = threading.RLock()
        self._ready = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._cmd = None
        self._listeners: dict[int, queue.Queue] = {}
        self.started_ms: int | None = None
        self.terminated_ms: int | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def ensure_started(self) -> None:
        with self._lock:
            if self.state in ("PENDING", "RUNNING"):
                return
            cluster_dir = self.home / "clusters" / self.cluster_id
            cluster_dir.mkdir(parents=True, exist_ok=True)
            cmd_read, cmd_write = os.pipe()
            event_read, event_write = os.pipe()
            env = {**os.environ, **{str(k): str(v) for k, v in (self.spec.get("spark_env_vars") or {}).items()},
                   "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
            env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            log = open(cluster_dir / "driver.log", "ab")  # noqa: SIM115 - owned by the child process
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "airflow_mlpipe.emulators.databricks.cluster_worker",
                 "--home", str(self.home), "--cluster-id", self.cluster_id, "--cmd-fd", str(cmd_read),
                 "--event-fd", str(event_write), "--spec", json.dumps(self.spec)],
                pass_fds=(cmd_read, event_write), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=cluster_dir, env=env)
            log.close()
            os.close(cmd_read)
            os.close(event_write)
            self._cmd = os.fdopen(cmd_write, "w", buffering=1)
            self.state, self.state_message = "PENDING", "Starting Spark"
            self.started_ms = int(time.time() * 1000)
            self._ready.clear()
            threading.Thread(target=self._read_events, args=(os.fdopen(event_read, "r"), self._proc),
                             daemon=True, name=f"cluster-{self.cluster_id}").start()

    def _read_events(self, stream, proc: subprocess.Popen) -> None:
        for line in stream:
            event = json.loads(line)
            kind = event.get("event")
            if kind == "ready":
                with self._lock:
                    self.state, self.state_message = "RUNNING", ""
                    self.start_seconds, self.spark_version = event.get("seconds"), event.get("spark_version")
                self._ready.set()
            elif kind == "start_failed":
                with self._lock:
                    self.state, self.state_message = "ERROR", f"Spark did not start: {event.get('error')}"
                self._ready.set()
            elif "run_id" in event:
                listener = self._listeners.get(int(event["run_id"]))
                if listener is not None:
                    listener.put(event)
        proc.wait()
        with self._lock:
            if self._proc is proc:
                if self.state != "ERROR":
                    self.state = "TERMINATED"
                    self.state_message = self.state_message or f"Driver process exited (code {proc.returncode})"
                self.terminated_ms = int(time.time() * 1000)
                self._proc = None
        self._ready.set()
        for listener in list(self._listeners.values()):
            listener.put({"event": "driver_lost", "code": proc.returncode})

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout) and self.state == "RUNNING"

    def listen(self, run_id: int, events: queue.Queue) -> None:
        self._listeners[run_id] = events

    def unlisten(self, run_id: int) -> None:
        self._listeners.pop(run_id, None)

    def send(self, command: dict[str, Any]) -> None:
        with self._lock:
            if self._cmd is None or self._proc is None:
                raise RuntimeError("the cluster's driver is not running")
            self._cmd.write(json.dumps(command) + "\n")
            self._cmd.flush()

    def terminate(self, message: str = "Terminated", kill_after: float = 10.0) -> None:
        with self._lock:
            proc, command = self._proc, self._cmd
            if proc is None:
                self.state, self.state_message = "TERMINATED", message
                return
            self.state, self.state_message = "TERMINATING", message
        with contextlib.suppress(OSError, ValueError):
            command.write(json.dumps({"cmd": "stop"}) + "\n")
            command.flush()
        with contextlib.suppress(OSError, ValueError):
            command.close()
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait(10)
        with self._lock:
            self.state, self.state_message = "TERMINATED", message

    def kill(self, message: str) -> None:
        with self._lock:
            proc = self._proc
            self.state_message = message
        if proc is not None:
            kill_tree(proc.pid)

    def as_api(self) -> dict[str, Any]:
        spec = self.spec
        data = {"cluster_id": self.cluster_id, "cluster_name": spec.get("cluster_name") or self.cluster_id,
                "spark_version": spec.get("spark_version") or (f"emulator-spark-{self.spark_version}"
                                                               if self.spark_version else "emulator"),
                "node_type_id": spec.get("node_type_id", "local"), "num_workers": spec.get("num_workers", 0),
                "state": self.state, "state_message": self.state_message,
                "cluster_source": "JOB" if self.one_time else "API", "spark_conf": spec.get("spark_conf", {}),
                "driver": {"host_private_ip": "127.0.0.1"}}
        if self.started_ms:
            data["start_time"] = self.started_ms
        if self.terminated_ms and self.state == "TERMINATED":
            data["terminated_time"] = self.terminated_ms
        return data


def kill_tree(pid: int) -> None:
    """Kill a process and its descendants (the Spark JVM is a child of the worker)."""
    try:
        import psutil

        parent = psutil.Process(pid)
        processes = [*parent.children(recursive=True), parent]
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(processes, timeout=10)
    except ImportError:  # pragma: no cover - psutil is a dependency of the project
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    except Exception:  # noqa: BLE001 - already gone
        pass


class ClusterPool:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock = threading.Lock()
        self._clusters: dict[str, ClusterProcess] = {}

    def get(self, cluster_id: str) -> ClusterProcess | None:
        with self._lock:
            return self._clusters.get(cluster_id)

    def existing(self, cluster_id: str, spec: dict[str, Any] | None = None) -> ClusterProcess:
        with self._lock:
            cluster = self._clusters.get(cluster_id)
            if cluster is None:
                cluster = ClusterProcess(self.home, cluster_id, spec or {}, one_time=False)
                self._clusters[cluster_id] = cluster
            return cluster

    def one_time(self, run_id: int, spec: dict[str, Any]) -> ClusterProcess:
        cluster_id = time.strftime("%m%d-%H%M%S", time.gmtime()) + f"-job{run_id}"
        with self._lock:
            cluster = ClusterProcess(self.home, cluster_id, spec, one_time=True)
            self._clusters[cluster_id] = cluster
            return cluster

    def all(self) -> list[ClusterProcess]:
        with self._lock:
            return list(self._clusters.values())
