"""v1 ``azureml.core.compute``; unsupported targets fail when configured, with a message saying why."""

from __future__ import annotations

from airflow_mlpipe.sdk.compute import (  # noqa: F401 - v1 types the top-level package does not export
    AdlaCompute,
    BatchCompute,
    ComputeInstance,
    HDInsightCompute,
    RemoteCompute,
)

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "ComputeTarget",
        "AmlCompute",
        "ComputeInstance",
        "DatabricksCompute",
        "DataFactoryCompute",
        "RemoteCompute",
        "AdlaCompute",
        "BatchCompute",
        "HDInsightCompute",
    ),
)
