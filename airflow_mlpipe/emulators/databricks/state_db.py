"""The emulator's memory that outlives it: runs, their states and idempotency tokens, in SQLite.

A run is one row; a submitted run has a parent row (the run the API returns) and one row per task (the task
runs that ``runs/get`` lists in ``tasks[]`` and ``runs/get-output`` answers for). When the emulator starts,
every run that was not finished is marked ``INTERNAL_ERROR`` (it was in flight when the emulator stopped), so a
run is never lost and never left running forever.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

TERMINAL_LIFE_CYCLE_STATES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


def run_log_path(home: Path, run_id: int) -> Path:
    """Where a run's output is logged: written by the cluster worker or spark-submit, read by ``runs/get-output``."""
    return Path(home) / "runs" / str(run_id) / "output.log"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (job_id INTEGER PRIMARY KEY AUTOINCREMENT, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    parent_run_id INTEGER,
    task_key TEXT,
    run_name TEXT,
    life_cycle_state TEXT NOT NULL,
    result_state TEXT,
    state_message TEXT NOT NULL DEFAULT '',
    termination_code TEXT,
    user_cancelled_or_timedout INTEGER NOT NULL DEFAULT 0,
    submitted_ms INTEGER NOT NULL,
    start_ms INTEGER,
    exec_start_ms INTEGER,
    end_ms INTEGER,
    cluster_id TEXT,
    spec TEXT NOT NULL,
    notebook_result TEXT,
    notebook_truncated INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_trace TEXT
);
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_run_id);
CREATE TABLE IF NOT EXISTS idempotency (token TEXT PRIMARY KEY, run_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS clusters (cluster_id TEXT PRIMARY KEY, spec TEXT NOT NULL, created_ms INTEGER NOT NULL,
                                     one_time INTEGER NOT NULL DEFAULT 0);
"""

RESTART_MESSAGE = ("The Databricks emulator stopped while this run was in flight; the run was lost with the "
                   "cluster's driver. Submit it again.")


def now_ms() -> int:
    return int(time.time() * 1000)


class StateDb:
    """Thread-safe access to the emulator's SQLite file (one connection, one lock; calls are short)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def mark_in_flight_lost(self) -> list[int]:
        """Every run not finished becomes INTERNAL_ERROR; its ids. Called when the emulator starts (runs a crash left
        in flight) and when it stops (runs a stop interrupts), so no run is left looking alive."""
        with self._lock:
            placeholders = ",".join("?" * len(TERMINAL_LIFE_CYCLE_STATES))
            rows = self._conn.execute(
                f"SELECT run_id FROM runs WHERE life_cycle_state NOT IN ({placeholders})",
                TERMINAL_LIFE_CYCLE_STATES).fetchall()
            ids = [row["run_id"] for row in rows]
            for run_id in ids:
                self._conn.execute(
                    "UPDATE runs SET life_cycle_state='INTERNAL_ERROR', result_state='FAILED', state_message=?, "
                    "termination_code='INTERNAL_ERROR', end_ms=?, error=COALESCE(error, ?) WHERE run_id=?",
                    (RESTART_MESSAGE, now_ms(), RESTART_MESSAGE, run_id))
            return ids

    def create_submission(self, run_name: str, spec: dict[str, Any], tasks: list[dict[str, Any]],
                          idempotency_token: str | None) -> tuple[int, bool]:
        """Record a submitted run and its task runs; ``(run_id, created)``; a known token returns its run."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if idempotency_token:
                    row = self._conn.execute("SELECT run_id FROM idempotency WHERE token=?",
                                             (idempotency_token,)).fetchone()
                    if row:
                        self._conn.execute("COMMIT")
                        return row["run_id"], False
                submitted = now_ms()
                job_id = self._conn.execute("INSERT INTO jobs(created_ms) VALUES (?)", (submitted,)).lastrowid
                run_id = self._conn.execute(
                    "INSERT INTO runs(job_id, run_name, life_cycle_state, submitted_ms, spec) "
                    "VALUES (?, ?, 'PENDING', ?, ?)", (job_id, run_name, submitted, json.dumps(spec))).lastrowid
                for task in tasks:
                    self._conn.execute(
                        "INSERT INTO runs(job_id, parent_run_id, task_key, run_name, life_cycle_state, "
                        "submitted_ms, spec) VALUES (?, ?, ?, ?, 'PENDING', ?, ?)",
                        (job_id, run_id, task["task_key"], run_name, submitted, json.dumps(task)))
                if idempotency_token:
                    self._conn.execute("INSERT INTO idempotency(token, run_id) VALUES (?, ?)",
                                       (idempotency_token, run_id))
                self._conn.execute("COMMIT")
                return run_id, True
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def get(self, run_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
            return _as_dict(row) if row else None

    def tasks(self, parent_run_id: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM runs WHERE parent_run_id=? ORDER BY run_id",
                                      (parent_run_id,)).fetchall()
            return [_as_dict(row) for row in rows]

    def recent_runs(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM runs WHERE parent_run_id IS NULL ORDER BY run_id DESC "
                                      "LIMIT ?", (limit,)).fetchall()
            return [_as_dict(row) for row in rows]

    def update_open(self, run_id: int, **fields: Any) -> bool:
        """Update a run that has not ended (the first end wins: a late update is dropped); False if it had."""
        columns = ", ".join(f"{name}=?" for name in fields)
        placeholders = ",".join("?" * len(TERMINAL_LIFE_CYCLE_STATES))
        with self._lock:
            cursor = self._conn.execute(
                f"UPDATE runs SET {columns} WHERE run_id=? AND life_cycle_state NOT IN ({placeholders})",
                (*fields.values(), run_id, *TERMINAL_LIFE_CYCLE_STATES))
            return cursor.rowcount > 0

    def remember_cluster(self, cluster_id: str, spec: dict[str, Any], one_time: bool) -> None:
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO clusters(cluster_id, spec, created_ms, one_time) "
                               "VALUES (?, ?, ?, ?)", (cluster_id, json.dumps(spec), now_ms(), int(one_time)))

    def cluster(self, cluster_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM clusters WHERE cluster_id=?", (cluster_id,)).fetchone()
            if not row:
                return None
            return {**dict(row), "spec": json.loads(row["spec"])}


def _as_dict(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["spec"] = json.loads(data["spec"])
    return data
