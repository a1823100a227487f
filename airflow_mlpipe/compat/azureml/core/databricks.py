"""v1 ``azureml.core.databricks``: the libraries a DatabricksStep installs and the runconfig's Databricks section."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "MavenLibrary",
        "PyPiLibrary",
        "EggLibrary",
        "JarLibrary",
        "RCranLibrary",
        "DatabricksSection",
        "DatabricksCluster",
    ),
)
