"""v1 ``azureml.core.conda_dependencies``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    ("CondaDependencies",),
)
