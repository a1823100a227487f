"""PythonScriptStepOperator: runs a PythonScriptStep on the worker and hands its outputs on through XCom."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException

from airflow_mlpipe.operators.base import MlpipeStepOperator
from airflow_mlpipe.runtime.step_runner import StepFailed, run_python_step


class PythonScriptStepOperator(MlpipeStepOperator):
    """Pushes ``{uri, content_hash, format, ...}`` per output under the output's name, and all of them as the
    return value, so consumers (and plain ``@task`` code) can pull them. A cache hit is a skipped task."""

    def execute(self, context: Any) -> dict[str, Any]:
        execution = self.step_execution(context)
        try:
            result = run_python_step(execution)
        except StepFailed as exc:
            raise AirflowException(str(exc)) from None
        return self.hand_on(context, result)
