"""v1 ``azureml.exceptions``: the exception names ported ``except`` clauses use."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "AzureMLException",
        "UserErrorException",
        "ActivityFailedException",
        "RunEnvironmentException",
        "ComputeTargetException",
        "ModelNotFoundException",
        "WorkspaceException",
        "ExperimentExecutionException",
        "PipelineValidationError",
    ),
)
