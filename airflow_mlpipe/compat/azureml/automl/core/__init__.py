"""v1 ``azureml.automl.core`` namespace."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (),
)
