"""What every step operator shares: how a task's context becomes a :class:`StepExecution`."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

# re-exported: hand-written DAG files and older code import these names from here
from airflow_mlpipe.contract.conf import (  # noqa: F401
    CONF_KEY,
    PLANNED_RUNS_KEY,
    PLANNER_TASK_ID,
    REUSED_OUTPUTS_KEY,
    read_meta,
)
from airflow_mlpipe.contract.parameters import resolve_parameters
from airflow_mlpipe.data.workspace_location import WorkspaceLocation
from airflow_mlpipe.runtime.step_runner import StepExecution, StepResult


def run_meta(context: Any) -> dict[str, Any]:
    """The submission's metadata in ``conf``; anyone who may trigger the DAG can write it, so it is checked."""
    return read_meta(getattr(context["dag_run"], "conf", None))


def parameter_values(pipeline: dict[str, Any], context: Any) -> dict[str, Any]:
    """Values from ``conf``, else the run defaults (a Schedule's ``pipeline_parameters``), else the Params."""
    params = dict(context.get("params") or {})
    conf = dict(getattr(context["dag_run"], "conf", None) or {})
    defaults = (pipeline.get("run_defaults") or {}).get("parameters") or {}
    values = {k: params[k] for k in pipeline.get("parameters", {}) if k in params}
    values.update({k: v for k, v in defaults.items() if k not in conf and k in pipeline.get("parameters", {})})
    return resolve_parameters(pipeline.get("parameters", {}), values)


def experiment_name(pipeline: dict[str, Any], context: Any, dag_id: str) -> str:
    return (run_meta(context).get("experiment") or (pipeline.get("run_defaults") or {}).get("experiment")
            or dag_id)


#: whether a step whose cache key another run is computing waits in the triggerer (default) or in its worker
#: slot: the workspace config key ``cache_wait_deferrable``, else Airflow's ``[mlpipe] cache_wait_deferrable``
#: (``AIRFLOW__MLPIPE__CACHE_WAIT_DEFERRABLE``)
CACHE_WAIT_OPTION = ("mlpipe", "cache_wait_deferrable")


def cache_wait_deferrable(execution: StepExecution) -> bool:
    from airflow.configuration import conf

    configured = execution.workspace.config.get(CACHE_WAIT_OPTION[1])
    if configured is not None:
        return str(configured).strip().lower() not in ("0", "false", "no", "off")
    return conf.getboolean(*CACHE_WAIT_OPTION, fallback=True)


def task_ref(context: Any) -> Any:
    """The Airflow task instance (and try) a step runs as."""
    from airflow_mlpipe.runtime.liveness import TaskRef

    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return TaskRef(dag_id=ti.dag_id, run_id=context["run_id"], task_id=ti.task_id,
                   map_index=-1 if map_index is None else int(map_index),
                   try_number=getattr(ti, "try_number", 1) or 1)


def _die_with_supervisor(log: Any) -> None:
    """Under Airflow's task supervisor, SIGTERM this task process when the supervisor dies (a lost worker,
    ``mlpipe airflow stop``): on_kill then stops the script, which would otherwise outlive both. Not applied
    in-process (``dag.test()``), where the parent is the user's shell."""
    import signal

    from airflow_mlpipe.runtime.processes import set_parent_death_signal

    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import CommsDecoder
    except ImportError:
        return
    if isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), CommsDecoder):
        if not set_parent_death_signal(signal.SIGTERM):
            log.debug("could not tie the task process to its supervisor (no prctl)")


def _reconcile_siblings(execution: StepExecution, task: Any, log: Any) -> None:
    """End step runs of this pipeline run that Airflow no longer runs (killed tries between retries)."""
    from airflow_mlpipe.runtime import liveness

    store = execution.workspace.store
    try:
        if not any(r.get("status") == "Running" and r.get("task_id") != task.task_id
                   for r in store.list_step_runs(execution.pipeline_run_id)):
            return
        ended = liveness.reconcile_step_runs(
            store, execution.pipeline_run_id,
            lambda task_id: liveness.task_sdk_probe(liveness.TaskRef(task.dag_id, task.run_id, task_id)),
            skip_task=task.task_id)
        if ended:
            log.info("ended step runs whose tasks Airflow no longer runs: %s", ", ".join(ended))
    except Exception:  # noqa: BLE001 - a courtesy to other steps; never fail this one for it
        log.warning("could not reconcile the step runs of %s", execution.pipeline_run_id, exc_info=True)


def _fail_fast_fields(task: Any, context: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """What ``continue_on_step_failure`` needs to know of this try (see :mod:`airflow_mlpipe.runtime.fail_fast`):
    the run's flag, whether a retry follows a failure (Airflow's rule), and the DAG run's clear number."""
    from airflow_mlpipe.runtime.fail_fast import continue_on_step_failure

    ti = context["ti"]
    try_number = getattr(ti, "try_number", 1) or 1
    retries_left = bool(task.retries) and try_number <= (getattr(ti, "max_tries", 0) or 0)
    return {"continue_on_step_failure": continue_on_step_failure(meta, task.pipeline),
            "last_try": not retries_left,
            "clear_number": int(getattr(context["dag_run"], "clear_number", 0) or 0)}


class MlpipeStepOperator(BaseOperator):
    """Base of step operators; ``step`` is the step's entry of the PipelineSpec."""

    ui_color = "#dbeafe"
    #: whether a wait for another run computing the same cache key defers to the triggerer: None means only when
    #: ``run_step`` is this class's (its lifecycle is ``execute_step``, which passes the wait signal on); a
    #: subclass whose own ``run_step`` passes :class:`~runtime.cache.WaitForFlight` on untouched sets True
    cache_wait_defers: bool | None = None

    def __init__(self, *, step: dict[str, Any], pipeline: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("doc_md", f"airflow-mlpipe {step['kind']} **{step['name']}**")
        super().__init__(**kwargs)
        self.step = step
        self.pipeline = pipeline

    def step_execution(self, context: Any) -> StepExecution:
        meta = run_meta(context)
        ti = context["ti"]
        reused: dict[str, Any] = {}
        planned: dict[str, Any] | None = None
        if PLANNER_TASK_ID in self.dag.task_dict:
            if self.step["inputs"]:
                reused = ti.xcom_pull(task_ids=PLANNER_TASK_ID, key=REUSED_OUTPUTS_KEY) or {}
            planned = (ti.xcom_pull(task_ids=PLANNER_TASK_ID, key=PLANNED_RUNS_KEY) or {}).get(self.task_id)

        pulled: dict[str, dict[str, Any]] = {}

        def upstream(task_id: str, output: str) -> dict[str, Any] | None:
            if task_id in reused:  # the planner reused that step: its outputs come from the plan
                return reused[task_id].get(output)
            if task_id not in pulled:  # one pull per producer: its return value maps output name -> location
                pulled[task_id] = ti.xcom_pull(task_ids=task_id) or {}
            return pulled[task_id].get(output)

        return StepExecution(
            workspace=WorkspaceLocation.from_ref(self.pipeline.get("workspace")),
            pipeline_run_id=meta.get("run_id") or context["run_id"],
            experiment=experiment_name(self.pipeline, context, self.dag_id),
            dag_id=self.dag_id,
            step=self.step,
            pipeline=self.pipeline,
            parameter_values=parameter_values(self.pipeline, context),
            upstream=upstream,
            log=self.log,
            try_number=getattr(ti, "try_number", 1) or 1,
            regenerate_outputs=bool(meta.get("regenerate_outputs")),
            submitted_spec_hash=meta.get("spec_hash"),
            planned=planned,
            **_fail_fast_fields(self, context, meta),
        )

    def run_step(self, execution: StepExecution) -> StepResult:
        """The step kind's runtime body, as the step-kind registry names it."""
        from airflow_mlpipe.contract.step_kinds import load, step_kind

        return load(step_kind(self.step["kind"], f"Step {self.step['name']!r}").runtime)(execution)

    def execute(self, context: Any) -> dict[str, Any]:
        execution = self.step_execution(context)
        return self.guarded(context, execution, lambda: self._run_or_wait(context, execution))

    def _run_or_wait(self, context: Any, execution: StepExecution) -> StepResult:
        """Run the step; when another run computes the same cache key, defer to the triggerer until it ends
        (no worker slot held) rather than wait here. An operator with its own ``run_step`` (DatabricksStep)
        waits in its task unless it sets :attr:`cache_wait_defers`."""
        from airflow_mlpipe.runtime import cache

        defers = self.cache_wait_defers
        if defers is None:
            defers = type(self).run_step is MlpipeStepOperator.run_step
        if not defers or not cache_wait_deferrable(execution):
            return self.run_step(execution)
        try:
            with cache.wait_elsewhere():
                return self.run_step(execution)
        except cache.WaitForFlight as wait:
            self._defer_for_flight(context, execution, wait)
            raise  # not reached: defer raises

    def _defer_for_flight(self, context: Any, execution: StepExecution, wait: Any) -> None:
        from airflow_mlpipe.contract.timestamps import iso_utc
        from airflow_mlpipe.runtime.cache import describe_owner, owner_info
        from airflow_mlpipe.store.db import utcnow
        from airflow_mlpipe.triggers.cache_flight import CacheFlightTrigger

        described = describe_owner(wait.owner)
        self.log.info("Step %r: %s computes the same step (cache key %s); waiting in the triggerer (deferred, no "
                      "worker slot held)", self.step["name"], described, wait.key)
        # what the Step and Pipeline tabs show next to Airflow's "deferred" state (Airflow 3.3 gives a task no way
        # to set its own task-instance note); the step's final write replaces it
        owner = owner_info(wait.owner)
        execution.workspace.store.merge_step_run_details(execution.step_run_id, waiting_for={
            "key": wait.key, "step_run": owner["step_run"], "task": owner["task"], "since": iso_utc(utcnow()),
            "description": described})
        self.defer(trigger=CacheFlightTrigger(execution.workspace.to_ref(), wait.key, wait.owner),
                   method_name="resume_after_flight")

    def resume_after_flight(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Back from the triggerer: the run we waited for committed (reuse its verified entry), released the
        lock or died (take the lock over and run); the whole lifecycle runs again, so it may also wait again."""
        from airflow_mlpipe.runtime.cache import describe_owner

        event = event or {}
        self.log.info("Step %r: the wait for %s ended: %s after %s s", self.step["name"],
                      describe_owner(str(event.get("owner") or "")), event.get("status"), event.get("waited_s"))
        return self.execute(context)

    def guarded(self, context: Any, execution: StepExecution, action: Any) -> dict[str, Any]:
        """Run ``action`` (a step's work, returning its :class:`StepResult`) as this Airflow task: tied to the
        task's liveness, with a step failure turned into the task failure Airflow should see (retried or not),
        and the result handed on."""
        from airflow.sdk.exceptions import AirflowException

        from airflow_mlpipe.runtime import liveness
        from airflow_mlpipe.runtime.fail_fast import RunStopped
        from airflow_mlpipe.runtime.run_spec import SpecMismatchError
        from airflow_mlpipe.runtime.step_runner import StepFailed

        task = task_ref(context)
        _die_with_supervisor(self.log)
        self._killed = False
        with liveness.bind_task(task, liveness.task_sdk_probe):
            _reconcile_siblings(execution, task, self.log)
            try:
                result = action()
            except RunStopped as exc:  # another step failed (continue_on_step_failure=False): no retry
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(str(exc)) from None
            except StepFailed as exc:  # the script's traceback is already in the log: fail with its summary
                if self._killed:
                    execution.workspace.store.upsert_step_run(
                        execution.step_run_id, status="Canceled",
                        error=f"the task was stopped while the step ran (Airflow killed it): {exc}"[:4000])
                raise AirflowException(str(exc)) from None
            except SpecMismatchError as exc:  # retrying cannot help: the run's pipeline is gone from the DAG
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(str(exc)) from None
        return self.hand_on(context, result)

    def on_kill(self) -> None:
        """Airflow stops the task (run marked failed, task cleared, timeout): take the script's whole process
        group with it (SIGTERM, then SIGKILL after a grace period); the step then ends Canceled."""
        from airflow_mlpipe.runtime import processes

        self._killed = True
        killed = processes.kill_running()
        self.log.info("on_kill: stopped %d step script process group(s)", killed)

    def hand_on(self, context: Any, result: StepResult) -> dict[str, Any]:
        """The return value (XCom) maps each output name to ``{uri, content_hash, format, ...}``; a reused step
        pushes it itself and then skips (consumers still get the outputs): one XCom per step either way."""
        from airflow.sdk.exceptions import AirflowSkipException

        if result.reused_from:
            context["ti"].xcom_push(key="return_value", value=result.outputs)
            raise AirflowSkipException(f"reused the outputs of step run {result.reused_from} (cache hit)")
        return result.outputs
