"""v1 ``azureml.core.environment``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "Environment",
        "CondaDependencies",
        "DockerSection",
        "PythonSection",
    ),
)
