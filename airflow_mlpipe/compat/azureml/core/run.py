"""v1 ``azureml.core.run``: ``Run`` and the offline run scripts get outside a pipeline."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "Run",
        "_OfflineRun",
    ),
)
