"""v1 ``azureml.pipeline`` namespace: use ``azureml.pipeline.core`` and ``azureml.pipeline.steps``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (),
)
