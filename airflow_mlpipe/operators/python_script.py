"""PythonScriptStepOperator: runs a PythonScriptStep on the worker and hands its outputs on through XCom."""

from __future__ import annotations

from airflow_mlpipe.operators.base import MlpipeStepOperator
from airflow_mlpipe.runtime.step_runner import StepExecution, StepResult, run_python_step


class PythonScriptStepOperator(MlpipeStepOperator):
    """The return value (XCom) maps each output to ``{uri, content_hash, format, ...}`` for consumers (and plain
    ``@task`` code). A cache hit is a skipped task."""

    def run_step(self, execution: StepExecution) -> StepResult:
        return run_python_step(execution)
