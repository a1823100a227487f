"""Step classes (v1 ``azureml.pipeline.steps``)."""

from __future__ import annotations

from airflow_mlpipe.sdk.steps.base import PipelineStep, StepSequence
from airflow_mlpipe.sdk.steps.data_transfer_step import DataTransferStep
from airflow_mlpipe.sdk.steps.databricks_step import DatabricksStep
from airflow_mlpipe.sdk.steps.python_script_step import PythonScriptStep

__all__ = ["DataTransferStep", "DatabricksStep", "PipelineStep", "PythonScriptStep", "StepSequence"]
