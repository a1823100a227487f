"""PipelineParameter: a typed run-time value that becomes an Airflow DAG Param of the same name."""

from __future__ import annotations

import re
from typing import Any

from airflow_mlpipe.exceptions import PipelineValidationError, UserErrorException

#: v1 serialized type tag → JSON-schema type used for the Airflow Param
PARAM_TYPES: dict[str, str] = {"string": "string", "int": "integer", "float": "number", "bool": "boolean"}


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


def env_name(name: str) -> str:
    """``$AML_PARAMETER_<name>`` with every non-word character replaced, as v1 does."""
    return re.sub(r"\W", "_", name)


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


def coerce_parameter(step: str | None, name: str, ptype: str, value: Any) -> Any:
    """Check a submitted value against the parameter's type; strings that parse losslessly are accepted.

    v1 REST sends every value as a string, so ``"20"`` is a valid int; ``True`` is never an int.
    """
    where = f"Pipeline parameter {name!r}" + (f" (step {step!r})" if step else "")
    if ptype in ("dataset", "datapath"):
        return value
    value = _checked(where, ptype, value)
    if ptype == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif ptype == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
    elif ptype == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif ptype == "string":
        if isinstance(value, str):
            if "\n" in value:
                raise UserErrorException(f"{where}: multi-line string values are not supported")
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise UserErrorException(
        f"{where} expects a value of type {PARAM_TYPES.get(ptype, ptype)}, got {value!r} ({type(value).__name__})"
    )


INT64 = (-(2**63), 2**63 - 1)


def _checked(where: str, ptype: str, value: Any) -> Any:
    """The range rules every consumer relies on: ints fit in 64 bits (Airflow's Params, PostgreSQL, JSON
    consumers), floats are finite (JSON has no NaN/Infinity; ``float("nan")`` parses but means nothing)."""
    import math

    number: Any = value
    if ptype == "int" and isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        number = int(value)
    if ptype == "float" and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
    if ptype == "int" and isinstance(number, int) and not isinstance(number, bool):
        if not INT64[0] <= number <= INT64[1]:
            raise UserErrorException(f"{where} expects a 64-bit integer, got {value!r} (out of range)")
    if ptype == "float" and isinstance(number, float) and not math.isfinite(number):
        raise UserErrorException(f"{where} expects a finite number, got {value!r}")
    return value


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
