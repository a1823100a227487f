"""What every step operator shares: how a task's context becomes a :class:`StepExecution`."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from airflow_mlpipe.runtime.step_runner import StepExecution, resolve_parameters
from airflow_mlpipe.workspace import Workspace

#: key of ``dag_run.conf`` where submissions put the experiment name, run id and flags
CONF_KEY = "__mlpipe"


class MlpipeStepOperator(BaseOperator):
    """Base of step operators; ``step`` is the step's entry of the PipelineSpec."""

    ui_color = "#dbeafe"

    def __init__(self, *, step: dict[str, Any], pipeline: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("doc_md", f"airflow-mlpipe {step['kind']} **{step['name']}**")
        super().__init__(**kwargs)
        self.step = step
        self.pipeline = pipeline

    def step_execution(self, context: Any) -> StepExecution:
        dag_run = context["dag_run"]
        conf = dict(getattr(dag_run, "conf", None) or {})
        meta = conf.get(CONF_KEY) or {}
        params = dict(context.get("params") or {})
        values = {k: params[k] for k in self.pipeline.get("parameters", {}) if k in params}
        ti = context["ti"]
        return StepExecution(
            workspace=Workspace.from_ref(self.pipeline.get("workspace")),
            pipeline_run_id=meta.get("run_id") or context["run_id"],
            experiment=meta.get("experiment") or self.dag_id,
            dag_id=self.dag_id,
            step=self.step,
            pipeline=self.pipeline,
            parameter_values=resolve_parameters(self.pipeline.get("parameters", {}), values),
            upstream=lambda task_id, output: ti.xcom_pull(task_ids=task_id, key=output),
            log=self.log,
            try_number=getattr(ti, "try_number", 1) or 1,
        )
