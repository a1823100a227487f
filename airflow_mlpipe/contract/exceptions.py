"""Exceptions with the v1 names, so ported ``except`` clauses keep working."""

from __future__ import annotations


class AzureMLException(Exception):
    """Base of the v1 exception hierarchy, for ported ``except AzureMLException`` clauses."""


class UserErrorException(AzureMLException, ValueError):
    """Bad input from the pipeline author (v1: ``azureml.exceptions.UserErrorException``)."""


class PipelineValidationError(UserErrorException):
    """A pipeline definition that cannot run; the message names the step, the argument and the expectation."""


class ActivityFailedException(AzureMLException, RuntimeError):
    """A run finished in Failed/Canceled state and ``raise_on_error`` was set."""

    def __init__(self, message: str, error_details: dict | None = None) -> None:
        super().__init__(message)
        self.error_details = error_details or {}


class RunEnvironmentException(AzureMLException, RuntimeError):
    """``Run.get_context(allow_offline=False)`` outside a pipeline step."""


class ModelNotFoundException(UserErrorException):
    """No registered model with that name/version."""


class ComputeTargetException(UserErrorException):
    """Unknown or unsupported compute target."""
