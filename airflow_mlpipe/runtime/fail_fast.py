"""v1's ``continue_on_step_failure``: False (v1's default) stops a pipeline run at its first failed step.

Airflow's own ``fail_fast`` DAG option cannot do it: it refuses the ``none_failed`` trigger rule our steps use
(a reused, skipped producer must still feed its consumers). A task cannot set the state of other task
instances either, so the steps of a run coordinate through our store, where every step run is recorded:

* a step whose failure is final (no retry follows) marks its ``Failed`` step run with the DAG run's clear
  number (details ``stops_run``); a run that is cleared and runs again counts up, so old failures do not count;
* a step about to start looks for such a failure; if there is one it does not run: its step run ends
  ``Canceled`` and its task fails without retry, so its dependants end ``upstream_failed`` (v1 ``NotStarted``)
  and the DAG run ends failed;
* a running step polls for one (every :data:`POLL_INTERVAL_S`), stops its script's process group and refuses
  to start scripts from then on (:class:`runtime.processes.LaunchGate`); it ends ``Canceled`` too.

With True, steps run as Airflow schedules them: only the failed step's dependants do not run.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from airflow_mlpipe.runtime import processes
from airflow_mlpipe.runtime.step_runner import StepFailed
from airflow_mlpipe.store.db import utcnow
from airflow_mlpipe.store.step_run_queries import failed_step_runs

if TYPE_CHECKING:
    from airflow_mlpipe.runtime.step_runner import StepExecution

log = logging.getLogger(__name__)

#: key of a failed step run's ``details``: the clear number of the DAG-run round whose other steps it stops
MARK = "stops_run"
#: seconds between two looks of a running step for a failed one
POLL_INTERVAL_S = 1.0
#: the step-run status of a step that was stopped, or not started, because another step failed
CANCELED = "Canceled"
#: the key of the flag in the submission's metadata (``conf["__mlpipe"]``), a Schedule's run defaults, the spec
FLAG = "continue_on_step_failure"


class RunStopped(StepFailed):
    """The step did not run, or was stopped: another step of its run failed and ``continue_on_step_failure`` is
    False. Retrying cannot help; the message names the failed step."""


class StoppedBy(StepFailed):
    """Raised by a step that noticed, while waiting for remote work, that ``failed`` stops its run; the remote
    work is already cancelled. :func:`record_failure` records it ``Canceled``."""

    def __init__(self, failed: dict[str, Any]) -> None:
        super().__init__(_why(failed))
        self.failed = failed


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def continue_on_step_failure(meta: dict[str, Any], pipeline: dict[str, Any]) -> bool:
    """The flag of a run: the submission's (``conf``), else its Schedule's run defaults, else the spec's
    (a published pipeline's own setting), else v1's default False."""
    for source in (meta, pipeline.get("run_defaults") or {}, pipeline.get("spec") or {}):
        if source.get(FLAG) is not None:
            return _as_bool(source[FLAG])
    return False


def stopping_failure(ex: StepExecution) -> dict[str, Any] | None:
    """The failed step run that stops ``ex``'s run (None if none does, or the run continues on failure)."""
    if ex.continue_on_step_failure:
        return None
    return stopping_failure_of(ex.workspace.store, ex.pipeline_run_id, ex.step["task_id"], ex.clear_number)


def stopping_failure_of(store: Any, pipeline_run_id: str, task_id: str, clear_number: int) -> dict[str, Any] | None:
    """:func:`stopping_failure` from plain values (a trigger waiting for a remote run has no StepExecution)."""
    for row in failed_step_runs(store, pipeline_run_id, exclude_task_id=task_id):
        mark = (row.get("details") or {}).get(MARK)
        if isinstance(mark, int) and not isinstance(mark, bool) and mark == clear_number:
            return row
    return None


def record_stopped(ex: StepExecution, failed: dict[str, Any]) -> RunStopped:
    """Record a step that ``failed`` (another step's final failure) stopped while it ran: ``Canceled``; returns
    the :class:`RunStopped` to raise."""
    message = f"Step {ex.step['name']!r} was stopped: {_why(failed)}"
    ex.workspace.store.upsert_step_run(ex.step_run_id, status=CANCELED, end_time=utcnow(), error=message[:4000])
    return RunStopped(message)


def _why(failed: dict[str, Any]) -> str:
    name = failed.get("step_name") or failed.get("task_id")
    error = next((ln for ln in str(failed.get("error") or "").splitlines() if ln.strip()), "")
    error = error.removeprefix(f"Step {name!r} failed: ")
    return (f"step {name!r} failed" + (f" ({error[:300]})" if error else "")
            + "; continue_on_step_failure is False, so the pipeline run stops at its first failed step")


def refuse_if_stopped(ex: StepExecution) -> None:
    """Before a step starts: if another step of its run failed for good, record this step run ``Canceled``
    (never started) and raise :class:`RunStopped`."""
    failed = stopping_failure(ex)
    if failed is None:
        return
    message = f"Step {ex.step['name']!r} was not started: {_why(failed)}"
    ex.workspace.store.upsert_step_run(
        ex.step_run_id, pipeline_run_id=ex.pipeline_run_id, step_name=ex.step["name"], task_id=ex.step["task_id"],
        kind=ex.step["kind"], status=CANCELED, start_time=None, end_time=utcnow(), error=message[:4000],
        try_number=ex.try_number, reused_run_id=None)
    ex.log.warning("%s", message)
    raise RunStopped(message)


class SiblingWatch:
    """While a step's body runs: look for a failed step of the run that stops it; if one shows up, stop the
    body's scripts and refuse new ones. ``stopped_by`` is then that step run. A no-op when the run continues
    on failure."""

    def __init__(self, ex: StepExecution, interval: float = POLL_INTERVAL_S) -> None:
        self.ex = ex
        self.interval = interval
        self.stopped_by: dict[str, Any] | None = None
        self._gate = processes.LaunchGate()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._gated: Any = None

    def __enter__(self) -> SiblingWatch:
        if self.ex.continue_on_step_failure:
            return self
        self._gated = processes.gated(self._gate)
        self._gated.__enter__()
        self._thread = threading.Thread(target=self._watch, name=f"mlpipe-fail-fast-{self.ex.step['task_id']}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._thread is None:
            return
        self._done.set()
        self._thread.join()
        self._gated.__exit__(*exc_info)

    def _watch(self) -> None:
        while not self._done.wait(self.interval):
            try:
                failed = stopping_failure(self.ex)
            except Exception:  # noqa: BLE001 - a busy or unreachable store: look again next time
                log.debug("could not look for failed steps of %s", self.ex.pipeline_run_id, exc_info=True)
                continue
            if failed is not None:
                self.stopped_by = failed
                self.ex.log.warning("Step %r stops: %s", self.ex.step["name"], _why(failed))
                stopped = self._gate.close(_why(failed))
                self.ex.log.info("stopped %d script process group(s) of step %r", stopped, self.ex.step["name"])
                return


def record_failure(ex: StepExecution, exc: BaseException, watch: SiblingWatch | None) -> RunStopped | None:
    """Record how a step that raised ``exc`` ended: ``Canceled`` if another step's failure stopped it (returns
    the :class:`RunStopped` to raise instead), else ``Failed``, marked so that it stops the run's other steps
    when no retry follows and the run does not continue on failure."""
    store = ex.workspace.store
    failed = watch.stopped_by if watch is not None else None
    if failed is not None:
        return record_stopped(ex, failed)
    if isinstance(exc, StoppedBy):
        return record_stopped(ex, exc.failed)
    if not ex.continue_on_step_failure and ex.last_try and not isinstance(exc, RunStopped):
        store.merge_step_run_details(ex.step_run_id, **{MARK: ex.clear_number})
    store.upsert_step_run(ex.step_run_id, status="Failed", end_time=utcnow(), error=str(exc)[:4000])
    return None
