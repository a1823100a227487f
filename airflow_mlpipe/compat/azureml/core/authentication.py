"""v1 ``azureml.core.authentication``: headers for REST calls to the workspace's Airflow (Airflow JWTs)."""

from __future__ import annotations

from .._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "AbstractAuthentication",
        "InteractiveLoginAuthentication",
        "AzureCliAuthentication",
        "ServicePrincipalAuthentication",
        "MsiAuthentication",
        "AuthenticationException",
    ),
)
