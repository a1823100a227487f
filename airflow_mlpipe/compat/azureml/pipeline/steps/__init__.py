"""v1 ``azureml.pipeline.steps``; step kinds airflow-mlpipe lacks fail on import with a message."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "PythonScriptStep",
        "DatabricksStep",
        "DataTransferStep",
        "AutoMLStep",
        "AutoMLStepRun",
        "ParallelRunStep",
        "ParallelRunConfig",
        "HyperDriveStep",
        "EstimatorStep",
        "MpiStep",
        "CommandStep",
        "AdlaStep",
        "AzureBatchStep",
    ),
)
