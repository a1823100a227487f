"""v1 ``azureml.pipeline.core.graph``."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "PipelineParameter",
        "PipelineDataset",
        "InputPortBinding",
        "OutputPortBinding",
        "PortDataReference",
    ),
)
