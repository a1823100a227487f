"""v1 ``azureml.data.stored_procedure_parameter``."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    ("StoredProcedureParameter", "StoredProcedureParameterType"),
)
