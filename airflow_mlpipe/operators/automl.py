"""AutoMLStepOperator: runs an AutoMLStep (FLAML in a subprocess of the worker) and hands its outputs on."""

from __future__ import annotations

from airflow_mlpipe.operators.base import MlpipeStepOperator
from airflow_mlpipe.runtime.step_runner import StepExecution, StepResult


class AutoMLStepOperator(MlpipeStepOperator):
    """Hands on its outputs (metrics JSON, model pickle) like PythonScriptStepOperator; the best model and metric
    go to the task log and the step's metrics. A cache hit is a skipped task."""

    ui_color = "#fde68a"

    def run_step(self, execution: StepExecution) -> StepResult:
        from airflow_mlpipe.runtime.automl_runner import run_automl_step

        return run_automl_step(execution)
