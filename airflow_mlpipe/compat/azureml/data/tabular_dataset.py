"""v1 ``azureml.data.tabular_dataset``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    ("TabularDataset",),
)
