"""AutoMLStepOperator: runs an AutoMLStep (FLAML in a subprocess of the worker) and hands its outputs on."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException

from airflow_mlpipe.operators.base import MlpipeStepOperator
from airflow_mlpipe.runtime.step_runner import StepFailed


class AutoMLStepOperator(MlpipeStepOperator):
    """Pushes ``{uri, content_hash, format, ...}`` per output (metrics JSON, model pickle) under the output's
    name, like PythonScriptStepOperator; the best model and metric go to the task log and the step's metrics.
    A cache hit is a skipped task."""

    ui_color = "#fde68a"

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlpipe.runtime.automl_runner import run_automl_step

        execution = self.step_execution(context)
        try:
            result = run_automl_step(execution)
        except StepFailed as exc:
            raise AirflowException(str(exc)) from None
        return self.hand_on(context, result)
