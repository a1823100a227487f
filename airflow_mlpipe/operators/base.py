"""What every step operator shares: how a task's context becomes a :class:`StepExecution`."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from airflow_mlpipe.runtime.step_runner import StepExecution, StepResult, resolve_parameters
from airflow_mlpipe.workspace import Workspace

#: key of ``dag_run.conf`` where submissions put the experiment name, run id and flags
CONF_KEY = "__mlpipe"
#: task id of the cache planner at the head of every compiled DAG
PLANNER_TASK_ID = "mlpipe_cache_plan"
#: XCom key under which the planner hands on the outputs of the steps it reused
REUSED_OUTPUTS_KEY = "reused_outputs"


def run_meta(context: Any) -> dict[str, Any]:
    conf = dict(getattr(context["dag_run"], "conf", None) or {})
    return conf.get(CONF_KEY) or {}


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


class MlpipeStepOperator(BaseOperator):
    """Base of step operators; ``step`` is the step's entry of the PipelineSpec."""

    ui_color = "#dbeafe"

    def __init__(self, *, step: dict[str, Any], pipeline: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("doc_md", f"airflow-mlpipe {step['kind']} **{step['name']}**")
        super().__init__(**kwargs)
        self.step = step
        self.pipeline = pipeline

    def step_execution(self, context: Any) -> StepExecution:
        meta = run_meta(context)
        ti = context["ti"]
        reused: dict[str, Any] = {}
        if self.step["inputs"] and PLANNER_TASK_ID in self.dag.task_dict:
            reused = ti.xcom_pull(task_ids=PLANNER_TASK_ID, key=REUSED_OUTPUTS_KEY) or {}

        pulled: dict[str, dict[str, Any]] = {}

        def upstream(task_id: str, output: str) -> dict[str, Any] | None:
            if task_id in reused:  # the planner reused that step: its outputs come from the plan
                return reused[task_id].get(output)
            if task_id not in pulled:  # one pull per producer: its return value maps output name -> location
                pulled[task_id] = ti.xcom_pull(task_ids=task_id) or {}
            return pulled[task_id].get(output)

        return StepExecution(
            workspace=Workspace.from_ref(self.pipeline.get("workspace")),
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
        )

    def run_step(self, execution: StepExecution) -> StepResult:
        """The step kind's runtime function (each operator names its own)."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        from airflow_mlpipe.runtime.step_runner import StepFailed

        execution = self.step_execution(context)
        try:
            result = self.run_step(execution)
        except StepFailed as exc:  # the script's traceback is already in the log: fail with its summary
            raise AirflowException(str(exc)) from None
        return self.hand_on(context, result)

    def hand_on(self, context: Any, result: StepResult) -> dict[str, Any]:
        """The return value (XCom) maps each output name to ``{uri, content_hash, format, ...}``; a reused step
        pushes it itself and then skips (consumers still get the outputs): one XCom per step either way."""
        from airflow.sdk.exceptions import AirflowSkipException

        if result.reused_from:
            context["ti"].xcom_push(key="return_value", value=result.outputs)
            raise AirflowSkipException(f"reused the outputs of step run {result.reused_from} (cache hit)")
        return result.outputs
