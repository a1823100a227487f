"""v1 ``azureml.train.automl.run``."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    ("AutoMLRun",),
)
