"""v1 ``azureml.data.output_dataset_config``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "OutputFileDatasetConfig",
        "OutputDatasetConfig",
        "OutputTabularDatasetConfig",
    ),
)
