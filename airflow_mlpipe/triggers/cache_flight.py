"""Waiting in the triggerer for another run that computes the same step (the cache's single flight).

A step whose cache key is being computed by another run defers here instead of holding a worker slot. The
trigger polls the workspace store (one indexed SELECT on the cache entries and locks) and, at most every
``LOCK_CHECK_S``, asks Airflow through the triggerer's Task SDK channel whether the lock owner's task instance
is still alive (a deferred owner, e.g. a DatabricksStep waiting on its run, is alive without a process). It
fires when the owner committed the key's entry, released the lock, or died; the task then resumes, reuses the
verified entry or takes the lock over and runs the step.

The waiting task's log (the worker's last line and this trigger's lines) names the run it waits for, and so do
the UI's Step and Pipeline tabs (Airflow 3.3 gives neither a task nor a trigger a way to write the task instance's
note: the ORM is blocked in both processes and the Execution API has no note field).

It never fires sooner than ``SETTLE_S`` after the task deferred. Airflow 3.3's scheduler fails a task whose
trigger fired so early that the task was queued again before the scheduler had read the executor's report of the
deferring process's exit ("finished with state success, but the task instance's state attribute is queued":
apache/airflow#67287, #72716; 3.3 only guards the ``scheduled`` case). That report comes when the task process
has exited, seconds after it deferred; waiting it out costs a waiter at most ``SETTLE_S`` when the owner ends
right away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mlpipe.runtime.cache import LOCK_CHECK_S, describe_owner, flight_status

#: the least time between the task's deferral and this trigger's event (see the module docstring)
SETTLE_S = 15.0


class CacheFlightTrigger(BaseTrigger):
    """Fires once with ``{"status": "committed" | "free" | "owner_dead", "key", "owner", "waited_s"}``."""

    def __init__(self, workspace: dict[str, Any] | None, key: str, owner: str, poll_interval: float = 0.5,
                 not_before: float | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        self.key = key
        self.owner = owner
        self.poll_interval = float(poll_interval)
        #: wall-clock time (epoch seconds) before which the event is held: the deferral plus ``SETTLE_S``
        self.not_before = time.time() + SETTLE_S if not_before is None else float(not_before)
        self._store_ws: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "workspace": self.workspace, "key": self.key, "owner": self.owner,
            "poll_interval": self.poll_interval, "not_before": self.not_before})

    def __repr__(self) -> str:
        return f"<CacheFlightTrigger key={self.key} waiting for {describe_owner(self.owner)}>"

    def _ws(self) -> Any:
        if self._store_ws is None:
            from airflow_mlpipe.data.workspace_location import WorkspaceLocation

            self._store_ws = WorkspaceLocation.from_ref(self.workspace)
        return self._store_ws

    def _status(self, ask_airflow: bool) -> tuple[str, str | None]:
        from airflow_mlpipe.runtime.liveness import task_sdk_probe

        return flight_status(self._ws(), self.key, task_sdk_probe if ask_airflow else None)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        owner, next_ask = self.owner, 0.0
        self.log.info("Waiting for %s, which computes the same step (cache key %s)", describe_owner(owner), self.key)
        while True:
            ask = time.monotonic() >= next_ask
            status, holder = await asyncio.to_thread(self._status, ask)
            if ask:
                next_ask = time.monotonic() + LOCK_CHECK_S
            if status == "held" and holder != owner:  # the lock passed to another run: wait for that one
                owner = holder or owner
                self.log.info("The lock passed to %s: waiting for it", describe_owner(owner))
            elif status == "dead" and not ask:  # only a stale heartbeat so far: let Airflow's state decide
                pass
            elif status != "held":
                settle = self.not_before - time.time()
                if settle > 0:  # the owner ended: the outcome stands, but the event waits for the scheduler
                    await asyncio.sleep(settle)
                event = {"status": "owner_dead" if status == "dead" else status, "key": self.key,
                         "owner": holder or owner, "waited_s": round(time.monotonic() - started, 3)}
                self.log.info("Cache key %s: %s (after %.1f s)", self.key, event["status"], event["waited_s"])
                yield TriggerEvent(event)
                return
            await asyncio.sleep(self.poll_interval)
