"""v1 ``azureml.core``: workspace, experiments, runs, data and configuration classes."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "Workspace",
        "Experiment",
        "Run",
        "ScriptRun",
        "Datastore",
        "Dataset",
        "Environment",
        "Model",
        "RunConfiguration",
        "ScriptRunConfig",
        "ComputeTarget",
    ),
)

VERSION = __version__ = "1.61.0+airflow_mlpipe"
