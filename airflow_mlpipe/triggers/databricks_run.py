"""Waiting for a Databricks run in the triggerer: quick polls first, then backing off.

The provider's own trigger (7.23) polls at a fixed 30 s, which adds up to 30 s to every short step; this one
asks after ``first_interval`` seconds and multiplies the wait by ``backoff`` up to ``max_interval`` (3 s: one
cheap ``runs/get`` per run every 3 s at most). A
life-cycle state it does not know keeps it waiting (the provider's ``RunState`` fails on one). The first poll
happens at once, so a run that ended before the task deferred is reported as it ended. When a user stops the
task while it is deferred (marks it failed or success, clears it), Airflow calls :meth:`on_kill`, which cancels
the run; a trigger timeout does not, so the step also passes ``timeout_seconds`` to Databricks itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mlpipe.runtime.databricks_runner import next_interval, run_phase
from airflow_mlpipe.runtime.fail_fast import POLL_INTERVAL_S


class DatabricksRunTrigger(BaseTrigger):
    """Fires once, when the run ends, with ``{run_id, run_page_url, life_cycle_state, result_state,
    state_message}``."""

    def __init__(self, conn_id: str, run_id: int, run_page_url: str | None = None, first_interval: float = 0.5,
                 max_interval: float = 3.0, backoff: float = 1.5, retry_limit: int = 3,
                 retry_delay: float = 1.0, stop_check: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.run_id = int(run_id)
        self.run_page_url = run_page_url
        self.first_interval = float(first_interval)
        self.max_interval = float(max_interval)
        self.backoff = float(backoff)
        self.retry_limit = int(retry_limit)
        self.retry_delay = float(retry_delay)
        #: ``{workspace, pipeline_run_id, task_id, clear_number}``: look for another step's final failure that
        #: stops the pipeline run (``continue_on_step_failure=False``); None when the run continues on failure
        self.stop_check = stop_check
        self._store: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "conn_id": self.conn_id, "run_id": self.run_id, "run_page_url": self.run_page_url,
            "first_interval": self.first_interval, "max_interval": self.max_interval, "backoff": self.backoff,
            "retry_limit": self.retry_limit, "retry_delay": self.retry_delay, "stop_check": self.stop_check})

    def _hook(self) -> Any:
        from airflow.providers.databricks.hooks.databricks import DatabricksHook

        return DatabricksHook(self.conn_id, retry_limit=self.retry_limit, retry_delay=self.retry_delay,
                              caller="DatabricksRunTrigger")

    def _stopping_failure(self) -> dict[str, Any] | None:
        from airflow_mlpipe.data.workspace_location import WorkspaceLocation
        from airflow_mlpipe.runtime.fail_fast import stopping_failure_of

        check = self.stop_check or {}
        if self._store is None:
            self._store = WorkspaceLocation.from_ref(check.get("workspace")).store
        return stopping_failure_of(self._store, check["pipeline_run_id"], check["task_id"],
                                   int(check.get("clear_number") or 0))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        interval = self.first_interval
        last = None
        next_check = time.monotonic()
        async with hook:
            while True:
                if self.stop_check and time.monotonic() >= next_check:
                    next_check = time.monotonic() + POLL_INTERVAL_S
                    failed = await asyncio.to_thread(self._stopping_failure)
                    if failed is not None:
                        self.log.warning("Cancelling Databricks run %s: step %r failed and the pipeline run does "
                                         "not continue on step failure", self.run_id, failed.get("step_name"))
                        await asyncio.to_thread(self._hook().cancel_run, self.run_id)
                        yield TriggerEvent({"run_id": self.run_id, "run_page_url": self.run_page_url,
                                            "stopped_by": failed.get("step_name") or failed.get("task_id")})
                        return
                run = await hook.a_get_run(self.run_id)
                phase = run_phase(run)
                if phase.terminal:
                    yield TriggerEvent({"run_id": self.run_id,
                                        "run_page_url": self.run_page_url or run.get("run_page_url"),
                                        "life_cycle_state": phase.life_cycle_state,
                                        "result_state": phase.result_state,
                                        "state_message": phase.state_message})
                    return
                if phase != last:
                    if phase.unknown:
                        self.log.warning("Databricks run %s is in state %r, which this version does not know: "
                                         "still waiting for it to end", self.run_id, phase.life_cycle_state)
                    else:
                        self.log.info("Databricks run %s: waiting (%s)", self.run_id, phase.describe())
                    last = phase
                await asyncio.sleep(interval)
                interval = next_interval(interval, self.backoff, self.max_interval)

    async def on_kill(self) -> None:
        """The user stopped the task while it waited here: stop the run too."""
        self.log.info("Cancelling Databricks run %s (the task was stopped)", self.run_id)
        await asyncio.to_thread(self._hook().cancel_run, self.run_id)
