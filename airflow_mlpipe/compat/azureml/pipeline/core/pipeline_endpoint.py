"""v1 ``azureml.pipeline.core.pipeline_endpoint``."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    ("PipelineEndpoint",),
)
