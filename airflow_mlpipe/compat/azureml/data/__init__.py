"""v1 ``azureml.data`` (shipped inside azureml-core in v1)."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "FileDataset",
        "TabularDataset",
        "OutputFileDatasetConfig",
        "DataType",
        "DataReference",
        "DatasetConsumptionConfig",
        "SqlDataReference",
    ),
)
