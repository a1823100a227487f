"""v1 ``azureml.automl.core.forecasting_parameters``."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    ("ForecastingParameters",),
)
