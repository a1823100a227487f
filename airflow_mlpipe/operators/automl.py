"""AutoMLStepOperator: runs an AutoMLStep (FLAML in a subprocess of the worker) and hands its outputs on."""

from __future__ import annotations

from airflow_mlpipe.operators.base import MlpipeStepOperator


class AutoMLStepOperator(MlpipeStepOperator):
    """Hands on its outputs (metrics JSON, model pickle) like PythonScriptStepOperator; the best model and metric
    go to the task log and the step's metrics. A cache hit is a skipped task. Its body is the registry's
    runtime for the kind."""

    ui_color = "#fde68a"
