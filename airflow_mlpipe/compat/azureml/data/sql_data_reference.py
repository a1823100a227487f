"""v1 ``azureml.data.sql_data_reference``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    ("SqlDataReference",),
)
