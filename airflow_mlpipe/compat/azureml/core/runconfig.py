"""v1 ``azureml.core.runconfig`` (CondaDependencies is importable here too, as in v1)."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "RunConfiguration",
        "CondaDependencies",
        "DockerConfiguration",
        "DataReferenceConfiguration",
        "Environment",
    ),
)
