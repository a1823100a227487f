"""airflow-mlpipe: Azure Machine Learning SDK v1 pipelines as Apache Airflow 3 DAGs.

Port a v1 pipeline by replacing its ``azureml.*`` imports with ``from airflow_mlpipe import ...``. Names are
resolved lazily so that importing the SDK neither starts nor configures Airflow.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # workspace, data
    "Workspace": "airflow_mlpipe.workspace",
    "Datastore": "airflow_mlpipe.sdk.datastore",
    "DataReference": "airflow_mlpipe.sdk.data_reference",
    "DataPath": "airflow_mlpipe.sdk.data_reference",
    "DataPathComputeBinding": "airflow_mlpipe.sdk.data_reference",
    "Dataset": "airflow_mlpipe.sdk.dataset",
    "FileDataset": "airflow_mlpipe.sdk.dataset",
    "TabularDataset": "airflow_mlpipe.sdk.dataset",
    "DatasetConsumptionConfig": "airflow_mlpipe.sdk.dataset_consumption",
    # pipeline objects
    "PipelineData": "airflow_mlpipe.sdk.pipeline_data",
    "OutputFileDatasetConfig": "airflow_mlpipe.sdk.pipeline_data",
    "TrainingOutput": "airflow_mlpipe.sdk.pipeline_data",
    "InputPortBinding": "airflow_mlpipe.sdk.pipeline_data",
    "PipelineOutputFileDataset": "airflow_mlpipe.sdk.pipeline_data",
    "PipelineOutputTabularDataset": "airflow_mlpipe.sdk.pipeline_data",
    "PipelineParameter": "airflow_mlpipe.sdk.parameters",
    "Pipeline": "airflow_mlpipe.sdk.pipeline",
    "PipelineStep": "airflow_mlpipe.sdk.steps.base",
    "StepSequence": "airflow_mlpipe.sdk.steps.base",
    "PythonScriptStep": "airflow_mlpipe.sdk.steps.python_script_step",
    "DatabricksStep": "airflow_mlpipe.sdk.steps.databricks_step",
    "DataTransferStep": "airflow_mlpipe.sdk.steps.data_transfer_step",
    "SqlDataReference": "airflow_mlpipe.sdk.sql_data_reference",
    "StoredProcedureParameter": "airflow_mlpipe.sdk.sql_data_reference",
    "StoredProcedureParameterType": "airflow_mlpipe.sdk.sql_data_reference",
    "AutoMLStep": "airflow_mlpipe.sdk.steps.automl_step",
    "AutoMLStepRun": "airflow_mlpipe.sdk.steps.automl_step",
    "AutoMLConfig": "airflow_mlpipe.sdk.automl",
    "ForecastingParameters": "airflow_mlpipe.sdk.automl",
    "Model": "airflow_mlpipe.sdk.model",
    # runs
    "Experiment": "airflow_mlpipe.sdk.experiment",
    "Run": "airflow_mlpipe.sdk.run",
    "PipelineRun": "airflow_mlpipe.sdk.runs",
    "StepRun": "airflow_mlpipe.sdk.runs",
    "StepRunOutput": "airflow_mlpipe.sdk.runs",
    "PortDataReference": "airflow_mlpipe.sdk.runs",
    # publishing, endpoints, schedules
    "PublishedPipeline": "airflow_mlpipe.sdk.published",
    "PipelineEndpoint": "airflow_mlpipe.sdk.published",
    "PipelineVersion": "airflow_mlpipe.sdk.published",
    "Schedule": "airflow_mlpipe.sdk.schedule",
    "ScheduleRecurrence": "airflow_mlpipe.sdk.schedule",
    "TimeZone": "airflow_mlpipe.sdk.schedule",
    # compute and environments
    "ComputeTarget": "airflow_mlpipe.sdk.compute",
    "AmlCompute": "airflow_mlpipe.sdk.compute",
    "DatabricksCompute": "airflow_mlpipe.sdk.compute",
    "DataFactoryCompute": "airflow_mlpipe.sdk.compute",
    "MavenLibrary": "airflow_mlpipe.sdk.databricks_libraries",
    "PyPiLibrary": "airflow_mlpipe.sdk.databricks_libraries",
    "EggLibrary": "airflow_mlpipe.sdk.databricks_libraries",
    "JarLibrary": "airflow_mlpipe.sdk.databricks_libraries",
    "RCranLibrary": "airflow_mlpipe.sdk.databricks_libraries",
    "DatabricksSection": "airflow_mlpipe.sdk.databricks_libraries",
    "DatabricksCluster": "airflow_mlpipe.sdk.databricks_libraries",
    "Environment": "airflow_mlpipe.sdk.environment",
    "RunConfiguration": "airflow_mlpipe.sdk.environment",
    "CondaDependencies": "airflow_mlpipe.sdk.environment",
    "ScriptRunConfig": "airflow_mlpipe.sdk.environment",
    # authentication
    "AbstractAuthentication": "airflow_mlpipe.sdk.authentication",
    "InteractiveLoginAuthentication": "airflow_mlpipe.sdk.authentication",
    "AzureCliAuthentication": "airflow_mlpipe.sdk.authentication",
    "ServicePrincipalAuthentication": "airflow_mlpipe.sdk.authentication",
    "MsiAuthentication": "airflow_mlpipe.sdk.authentication",
    "AuthenticationException": "airflow_mlpipe.sdk.authentication",
    # errors
    "AzureMLException": "airflow_mlpipe.contract.exceptions",
    "UserErrorException": "airflow_mlpipe.contract.exceptions",
    "PipelineValidationError": "airflow_mlpipe.contract.exceptions",
    "ActivityFailedException": "airflow_mlpipe.contract.exceptions",
    "RunEnvironmentException": "airflow_mlpipe.contract.exceptions",
    "ComputeTargetException": "airflow_mlpipe.contract.exceptions",
    "ModelNotFoundException": "airflow_mlpipe.contract.exceptions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"airflow_mlpipe has no attribute {name!r} (not supported by airflow-mlpipe yet)")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
