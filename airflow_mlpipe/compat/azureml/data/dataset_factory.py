"""v1 ``azureml.data.dataset_factory``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "TabularDatasetFactory",
        "FileDatasetFactory",
        "DataType",
    ),
)
