"""v1 ``azureml.pipeline.core.pipeline_output_dataset``."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "PipelineOutputFileDataset",
        "PipelineOutputTabularDataset",
        "PipelineOutputAbstractDataset",
    ),
)
