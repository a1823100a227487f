"""v1 ``azureml.core.model``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    ("Model", "Dataset"),
)
