"""v1 ``azureml.core.compute``; unsupported targets fail when defined, with a message."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "ComputeTarget",
        "AmlCompute",
        "ComputeInstance",
        "DatabricksCompute",
        "RemoteCompute",
        "AdlaCompute",
        "BatchCompute",
        "HDInsightCompute",
    ),
)
