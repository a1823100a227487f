"""DatabricksStepOperator: runs a DatabricksStep as a Databricks run, through the Airflow Databricks provider.

The step's lifecycle is that of every step (recorded start, cache key, reuse, staged outputs committed
atomically, cache entry only on success), split at the wait: the task submits the run and then defers to
:class:`~airflow_mlpipe.triggers.databricks_run.DatabricksRunTrigger` (or polls, ``deferrable=False``);
``execute_complete`` commits the outputs or fails with the notebook's error.

Submission is idempotent and reattaches on both paths: the step run's record (in the workspace store) holds the
attempt, its ``idempotency_token`` and, once known, the run id. A retry finds a run still going and waits for it,
commits one that succeeded, and starts a new attempt only after one that failed; a worker lost between submitting
and recording the run id submits again with the same token, which Databricks answers with the same run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from airflow.providers.databricks.operators.databricks import XCOM_RUN_PAGE_URL_KEY, DatabricksJobRunLink

from airflow_mlpipe.operators.base import MlpipeStepOperator
from airflow_mlpipe.runtime import databricks_runner as dbr
from airflow_mlpipe.runtime.step_runner import StepExecution, StepFailed, StepResult

#: whether a DatabricksStep waits in the triggerer (default) or polls in its worker: the workspace config key
#: ``databricks_deferrable``, else Airflow's ``[mlpipe] databricks_deferrable``
#: (``AIRFLOW__MLPIPE__DATABRICKS_DEFERRABLE``)
DEFERRABLE_OPTION = ("mlpipe", "databricks_deferrable")
#: first poll interval, growth factor and ceiling, in seconds (both the trigger and the synchronous wait): a
#: run's end is seen within 3 s, at one cheap ``runs/get`` every 3 s for a long run
POLLING = (0.5, 1.5, 3.0)
#: how long a deferrable step waits for its run in the worker before deferring, and how it polls meanwhile
INLINE_WAIT_S = 2.0
INLINE_POLLING = (0.1, 1.5, 0.5)


def _deferrable(ex: StepExecution) -> bool:
    from airflow.configuration import conf

    configured = ex.workspace.config.get(DEFERRABLE_OPTION[1])
    if configured is not None:
        return str(configured).strip().lower() not in ("0", "false", "no", "off")
    return conf.getboolean(*DEFERRABLE_OPTION, fallback=True)


def _source_manifest(ex: StepExecution, hook: Any) -> dict[str, str]:
    """The step's code as the cache key sees it: its local folder (``python_script_name``) plus the content
    hashes of its notebook and DBFS files, read from the Databricks workspace."""
    from airflow_mlpipe.hooks.databricks_dbfs import dbfs_file_hash, notebook_hash
    from airflow_mlpipe.runtime.snapshot import source_manifest

    where = f"Step {ex.step['name']!r}"
    manifest = dict(source_manifest(ex.workspace, ex.step)[0])
    remote = dbr.remote_sources(ex.step)
    for path in remote["notebooks"]:
        manifest[f"databricks-notebook:{path}"] = notebook_hash(hook, path, where=where)
    for path in remote["files"]:
        manifest[f"databricks-dbfs:{path}"] = dbfs_file_hash(hook, path, where=where)
    return manifest


def _upload_script_folder(ex: StepExecution, hook: Any, manifest: dict[str, str]) -> str:
    """``python_script_name``: the step's folder on DBFS, content-addressed (an unchanged folder is not sent
    again); an uploaded snapshot (remote submission) is materialised first."""
    from airflow_mlpipe.hooks.databricks_dbfs import upload_tree
    from airflow_mlpipe.runtime.snapshot import SNAPSHOT_PREFIX, SnapshotStore

    local = {k: v for k, v in manifest.items() if not k.startswith("databricks-")}
    source = ex.step["source_directory"]
    where = f"Step {ex.step['name']!r}"
    if not source.startswith(SNAPSHOT_PREFIX):
        return upload_tree(hook, Path(source), local, where=where)
    with tempfile.TemporaryDirectory(prefix="mlpipe-dbfs-") as tmp:
        SnapshotStore(ex.workspace.home).materialize(local, Path(tmp))
        return upload_tree(hook, Path(tmp), local, where=where)


class DatabricksStepOperator(MlpipeStepOperator):
    """A DatabricksStep: one Databricks run per step run, its page as the task's extra link, its output in the
    task log, cancelled when the task is stopped (also while deferred)."""

    ui_color = "#fecaca"
    operator_extra_links = (DatabricksJobRunLink(),)
    cache_wait_defers = True  # ``_recorded`` passes the wait signal on: a waiting step holds no worker slot

    def __init__(self, *, step: dict[str, Any], pipeline: dict[str, Any], deferrable: bool | None = None,
                 polling: tuple[float, float, float] = POLLING, **kwargs: Any) -> None:
        super().__init__(step=step, pipeline=pipeline, **kwargs)
        self.conn_id = step["compute"]["conn_id"]
        self.deferrable = deferrable  # None: the workspace config, else Airflow's config (see DEFERRABLE_OPTION)
        self.polling = tuple(polling)
        self._run_id: int | None = None

    # ------------------------------------------------------------------ plumbing
    def _hook(self) -> Any:
        """One provider hook per task process (its connection is read once); an emulator it points at that is
        down is started first."""
        hook = getattr(self, "_databricks_hook", None)
        if hook is None:
            from airflow.providers.databricks.hooks.databricks import DatabricksHook

            from airflow_mlpipe.hooks.databricks_cancel import prepare_cancel
            from airflow_mlpipe.hooks.databricks_emulator import ensure_emulator

            hook = DatabricksHook(self.conn_id, retry_limit=3, retry_delay=1.0, caller=type(self).__name__)
            ensure_emulator(hook.databricks_conn, self.log)
            self._cancel = prepare_cancel(hook)
            self._databricks_hook = hook
        return hook

    def step_execution(self, context: Any) -> StepExecution:
        self._ti = context["ti"]
        ex = super().step_execution(context)
        self._defers = _deferrable(ex) if self.deferrable is None else bool(self.deferrable)
        return ex

    def _recorded(self, ex: StepExecution, action: Any) -> StepResult:
        """Record a failure of ``action`` as the step's (Failed, or Canceled when another step stopped the
        run); a deferral, or waiting for another run that computes the same key, is not a failure."""
        from airflow.sdk.exceptions import TaskDeferred

        from airflow_mlpipe.runtime import fail_fast
        from airflow_mlpipe.runtime.cache import WaitForFlight

        try:
            return action()
        except (TaskDeferred, WaitForFlight):
            raise
        except BaseException as exc:
            stopped = fail_fast.record_failure(ex, exc, None)
            if stopped is not None:
                raise stopped from exc
            raise

    # ------------------------------------------------------------------ the two halves
    def run_step(self, execution: StepExecution) -> StepResult:
        return self._recorded(execution, lambda: self._start(execution))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: commit the outputs of a successful run, or fail with its error."""
        ex = self.step_execution(context)
        phase = dbr.RunPhase(event.get("life_cycle_state", ""), event.get("result_state", ""),
                             event.get("state_message", ""))
        if event.get("stopped_by"):  # the trigger saw another step's final failure and cancelled the run
            from airflow_mlpipe.runtime.fail_fast import stopping_failure

            failed = stopping_failure(ex) or {"step_name": event["stopped_by"]}
            record = dbr.current_record(ex) or {}
            return self.guarded(context, ex, lambda: self._recorded(ex, lambda: self._stopped(ex, record, failed)))
        return self.guarded(context, ex, lambda: self._recorded(ex, lambda: self._finish(ex, phase)))

    def _start(self, ex: StepExecution) -> StepResult:
        from airflow_mlpipe.runtime import cache
        from airflow_mlpipe.runtime.step_runner import begin_step, collect_upstream, reuse_or_explain

        begin_step(ex)
        hook = self._hook()
        record = dbr.current_record(ex)
        attempt, same_token = 0, False
        if record is not None and record.get("run_id") is not None:
            phase = dbr.run_phase(hook.get_run(record["run_id"]))
            if not phase.terminal or phase.succeeded:
                self.log.info("Step %r: reattaching to Databricks run %s of an earlier try (%s)", ex.step["name"],
                              record["run_id"], phase.describe())
                self._run_id = record["run_id"]
                return self._wait_or_finish(ex, record, phase)
            attempt = record["attempt"] + 1
            self.log.info("Step %r: the earlier Databricks run %s ended %s; submitting attempt %d",
                          ex.step["name"], record["run_id"], phase.describe(), attempt)
        elif record is not None:  # an earlier try submitted but died before it knew the run id: same token
            attempt, same_token = record["attempt"], True
        upstream = collect_upstream(ex)
        manifest = _source_manifest(ex, hook)
        key = cache.compute_key(ex.workspace, ex.step, manifest, upstream, ex.parameter_values)
        noted: dict[str, Any] = {}
        reused, flight = reuse_or_explain(ex, key, None, noted)
        if reused is not None:
            return reused
        ex.workspace.store.merge_step_run_details(ex.step_run_id, **noted)  # kept when the run's outputs commit
        try:
            return self._submit(ex, hook, attempt, key, manifest, upstream, flight, fresh=not same_token)
        finally:  # the lock is kept only by a task that deferred (detached), released by its completion
            if flight is not None and not flight.detached:
                flight.release()

    def _check_cluster(self, ex: StepExecution, hook: Any) -> None:
        """v1 ``permit_cluster_restart`` on an existing cluster that is not running: True starts it, False fails
        the step (None leaves it to Databricks, which starts it for the run)."""
        db = ex.step["databricks"]
        cluster_id = (db.get("cluster") or {}).get("existing_cluster_id")
        permit = db.get("permit_cluster_restart")
        if not cluster_id or permit is None:
            return
        state = hook.get_cluster_state(cluster_id)
        if state.is_running:
            return
        if not permit:
            raise StepFailed(f"Step {ex.step['name']!r}: cluster {cluster_id!r} is {state.state} and "
                             "permit_cluster_restart is False")
        self.log.info("Step %r: starting cluster %s (%s; permit_cluster_restart=True)", ex.step["name"],
                      cluster_id, state.state)
        hook.start_cluster({"cluster_id": cluster_id})

    def _submit(self, ex: StepExecution, hook: Any, attempt: int, key: Any, manifest: dict[str, str],
                upstream: dict[str, Any], flight: Any, fresh: bool) -> StepResult:
        """Stage, upload, record the attempt, submit (``fresh=False``: again with the token of an attempt whose
        run may already be writing its outputs), record the run, then wait."""
        self._check_cluster(ex, hook)
        outputs = dbr.staged_outputs(ex, attempt, fresh=fresh)
        script_directory = None
        if ex.step["databricks"]["task"] == "python_script_name":
            script_directory = _upload_script_folder(ex, hook, manifest)
            self.log.info("Step %r: source folder on DBFS at %s", ex.step["name"], script_directory)
        inputs, inputs_record = dbr.input_uris(ex, upstream)
        token = dbr.idempotency_token(ex, attempt)
        owner = flight.owner if flight is not None else None
        record = dbr.new_record(ex, attempt, token, key, inputs_record, owner)
        dbr.save_record(ex, record)  # before submitting: a lost worker's retry then knows the token
        body = dbr.submit_request(ex, inputs, outputs.staging_uris(), token, script_directory)
        run_id = hook.submit_run(body)
        self._run_id = run_id
        run = hook.get_run(run_id)
        tasks = run.get("tasks") or []
        record.update(run_id=run_id, run_page_url=run.get("run_page_url"),
                      task_run_id=tasks[0].get("run_id") if tasks else run_id)
        dbr.save_record(ex, record)
        if record["run_page_url"]:
            self._ti.xcom_push(key=XCOM_RUN_PAGE_URL_KEY, value=record["run_page_url"])
        phase = dbr.run_phase(run)
        self.log.info("Step %r: Databricks run %s submitted: %s", ex.step["name"], run_id, record["run_page_url"])
        return self._wait_or_finish(ex, record, phase, flight)

    def _wait_or_finish(self, ex: StepExecution, record: dict[str, Any], phase: dbr.RunPhase,
                        flight: Any = None) -> StepResult:
        """A run that already ended is finished at once (reported as it ended). Otherwise a deferrable step
        first waits briefly in its worker (a short run then ends without the triggerer's pick-up and a second
        worker process, about 2.5 s together), then defers; ``deferrable=False`` polls to the end."""
        if not phase.terminal and self._defers:
            phase = self._poll(ex, record, budget=INLINE_WAIT_S, polling=INLINE_POLLING)
            if not phase.terminal:
                from airflow_mlpipe.triggers.databricks_run import DatabricksRunTrigger

                if flight is not None:
                    flight.detach()  # the deferred task keeps the key's lock; execute_complete releases it
                self.log.info("Databricks run %s: %s; waiting in the triggerer", record["run_id"], phase.describe())
                first, backoff, maximum = self.polling
                stop_check = None if ex.continue_on_step_failure else {
                    "workspace": ex.workspace.to_ref(), "pipeline_run_id": ex.pipeline_run_id,
                    "task_id": ex.step["task_id"], "clear_number": ex.clear_number}
                self.defer(trigger=DatabricksRunTrigger(self.conn_id, record["run_id"], record.get("run_page_url"),
                                                        first_interval=first, max_interval=maximum,
                                                        backoff=backoff, stop_check=stop_check),
                           method_name="execute_complete")
        if not phase.terminal:
            phase = self._poll(ex, record)
        return self._finish(ex, phase, record)

    def _stopped(self, ex: StepExecution, record: dict[str, Any], failed: dict[str, Any]) -> None:
        """Another step's final failure stops the run (``continue_on_step_failure=False``): this step's run
        was cancelled, its staged outputs go, and it ends Canceled."""
        from airflow_mlpipe.runtime import cache
        from airflow_mlpipe.runtime.fail_fast import StoppedBy

        stopped = StoppedBy(failed)
        self.log.warning("Step %r: Databricks run %s cancelled: %s", ex.step["name"], record.get("run_id"), stopped)
        if "attempt" in record:
            dbr.staged_outputs(ex, record["attempt"]).discard()
        if record.get("flight_owner"):
            cache.release_lock(ex.workspace, record["key"], record["flight_owner"])
        raise stopped

    def _poll(self, ex: StepExecution, record: dict[str, Any], budget: float | None = None,
              polling: tuple[float, float, float] | None = None) -> dbr.RunPhase:
        """Poll until the run ends (or ``budget`` seconds pass): quick polls first, then backing off. At most
        once a second it also looks for another step's final failure that stops the run, and then cancels."""
        from airflow_mlpipe.runtime import fail_fast

        first, backoff, maximum = polling or self.polling
        hook, run_id = self._hook(), record["run_id"]
        deadline = None if budget is None else time.monotonic() + budget
        interval, last, next_check = first, None, time.monotonic()
        while True:
            phase = dbr.run_phase(hook.get_run(run_id))
            if phase.terminal or (deadline is not None and time.monotonic() + interval > deadline):
                return phase
            if phase != last:
                self.log.info("Databricks run %s: %s%s", run_id, phase.describe(),
                              " (a state this version does not know: still waiting)" if phase.unknown else "")
                last = phase
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + fail_fast.POLL_INTERVAL_S
                failed = fail_fast.stopping_failure(ex)
                if failed is not None:
                    hook.cancel_run(run_id)
                    self._run_id = None
                    self._stopped(ex, record, failed)
            time.sleep(interval)
            interval = dbr.next_interval(interval, backoff, maximum)

    def _finish(self, ex: StepExecution, phase: dbr.RunPhase, record: dict[str, Any] | None = None) -> StepResult:
        """The run ended: its output into the task log, then commit (success) or fail with its error. ``record``
        is read from the store when the caller does not hold it (back from the triggerer)."""
        from airflow_mlpipe.runtime import cache
        from airflow_mlpipe.runtime.step_runner import commit_step

        record = record or dbr.current_record(ex)
        if record is None or record.get("run_id") is None:
            raise StepFailed(f"Step {ex.step['name']!r}: no Databricks run is recorded for this step run")
        self._run_id = None
        hook = self._hook()
        output = hook.get_run_output(record.get("task_run_id") or record["run_id"])
        self._log_output(ex, record, output)
        outputs = dbr.staged_outputs(ex, record["attempt"])
        try:
            if not phase.succeeded:
                outputs.discard()
                raise StepFailed(dbr.failure_message(ex, phase, output, record.get("run_page_url")))
            key = cache.StepKey(record["key"], record["components"])
            details = {dbr.RECORD: {k: record[k] for k in ("run_id", "run_page_url", "attempt", "token")}}
            return commit_step(ex, key, outputs, record.get("inputs") or {}, details)
        finally:
            if record.get("flight_owner"):
                cache.release_lock(ex.workspace, record["key"], record["flight_owner"])

    def _log_output(self, ex: StepExecution, record: dict[str, Any], output: dict[str, Any]) -> None:
        logs = output.get("logs") or ""
        if logs:
            self.log.info("Output of Databricks run %s:", record["run_id"])
            for line in str(logs).splitlines():
                self.log.info("%s", line)
        result = (output.get("notebook_output") or {}).get("result")
        if result is not None:
            self.log.info("Step %r: the notebook exited with %r", ex.step["name"], result)
        if output.get("error_trace"):
            self.log.error("%s", output["error_trace"])
        if record.get("run_page_url"):
            self.log.info("Run page: %s", record["run_page_url"])

    def on_kill(self) -> None:
        """The task is stopped while it polls: cancel the run (a deferred task's trigger does it there). Runs in
        the SIGTERM handler, so it uses the request prepared with the hook (see ``hooks/databricks_cancel``)."""
        self._killed = True
        cancel, run_id = getattr(self, "_cancel", None), self._run_id
        if cancel is None or run_id is None:
            return
        try:
            cancel(run_id)
        except Exception as exc:  # noqa: BLE001 - the task is going down either way: say what was left running
            self.log.warning("on_kill: could not cancel Databricks run %s: %s", run_id, exc)
            return
        self.log.info("on_kill: cancelled Databricks run %s", run_id)


def run_databricks_step(execution: StepExecution) -> StepResult:
    """The registry's runtime for the kind, outside an operator (synchronous): the operator is the body."""
    raise StepFailed(f"Step {execution.step['name']!r}: a DatabricksStep runs through its operator "
                     "(DatabricksStepOperator), which submits and waits for its Databricks run")
