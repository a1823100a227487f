"""v1 ``azureml.pipeline.core.run``."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "PipelineRun",
        "StepRun",
        "StepRunOutput",
    ),
)
