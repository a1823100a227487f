"""PipelineParameter: a typed run-time value that becomes an Airflow DAG Param of the same name."""

from __future__ import annotations

from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError

# re-exported: the SDK's historical names for the contract's parameter rules
from airflow_mlpipe.contract.parameters import PARAM_TYPES, _checked, coerce_parameter, env_name  # noqa: F401


def param_type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if hasattr(value, "to_definition"):
        return "dataset"
    if type(value).__name__ == "DataPath":
        return "datapath"
    raise ValueError(f"Default value is of unsupported type: {type(value).__name__}")


class PipelineParameter:
    """v1 ``PipelineParameter(name, default_value)``."""

    def __init__(self, name: str, default_value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("PipelineParameter: name must be a non-empty string")
        self.name = name
        self.default_value = default_value
        self.param_type = param_type_of(default_value)
        _checked(f"PipelineParameter {name!r}: default_value", self.param_type, default_value)

    def __str__(self) -> str:
        return f"PipelineParameter_Name:{self.name}_Default:{self.default_value}"

    __repr__ = __str__

    def to_spec(self) -> dict[str, Any]:
        default = self.default_value
        if self.param_type == "dataset":
            default = default.to_definition()
        elif self.param_type == "datapath":
            default = default.to_spec()
        return {"name": self.name, "type": self.param_type, "default": default}

    def _key(self) -> str:
        return f"{self.param_type}:{self.to_spec()['default']!r}"


def check_unique_parameters(params: list[PipelineParameter]) -> dict[str, PipelineParameter]:
    found: dict[str, PipelineParameter] = {}
    for p in params:
        prev = found.get(p.name)
        if prev is not None and prev is not p and prev._key() != p._key():
            raise PipelineValidationError(
                f"Pipeline parameters with the same name {p.name!r} but different values: "
                f"{prev.default_value!r} and {p.default_value!r}"
            )
        found.setdefault(p.name, p)
    return found
