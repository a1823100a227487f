"""Pipeline parameter types and how a submitted value is checked against them.

Every consumer (the SDK at definition time, the compiler's Params, the REST API, the runtime) uses these, so a
value that passes one passes all.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException

#: v1 serialized type tag → JSON-schema type used for the Airflow Param
PARAM_TYPES: dict[str, str] = {"string": "string", "int": "integer", "float": "number", "bool": "boolean"}


def env_name(name: str) -> str:
    """``$AML_PARAMETER_<name>`` with every non-word character replaced, as v1 does."""
    return re.sub(r"\W", "_", name)


def datapath_value(where: str, value: Any) -> dict[str, Any]:
    """A DataPath value ``{"datastore": name, "path": relative path}``; the path cannot leave its datastore."""
    from airflow_mlpipe.contract.paths import relative_path

    if not isinstance(value, dict) or not isinstance(value.get("datastore"), str | None):
        raise UserErrorException(f"{where}: expected a DataPath (datastore and path), got {value!r}")
    path = relative_path(value.get("path") or "", f"{where}: path", allow_empty=True)
    return {**value, "path": path}


def coerce_parameter(step: str | None, name: str, ptype: str, value: Any) -> Any:
    """Check a submitted value against the parameter's type; strings that parse losslessly are accepted.

    v1 REST sends every value as a string, so ``"20"`` is a valid int; ``True`` is never an int.
    """
    where = f"Pipeline parameter {name!r}" + (f" (step {step!r})" if step else "")
    if ptype == "datapath":
        return datapath_value(where, value)
    if ptype == "dataset":
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


def resolve_parameters(parameters_spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Pipeline parameter values for a run: submitted values checked against their types, else defaults."""
    out: dict[str, Any] = {}
    for name, p in parameters_spec.items():
        out[name] = coerce_parameter(None, name, p["type"], values[name]) if name in values else p["default"]
    return out


def check_parameters(spec: dict[str, Any], values: dict[str, Any] | None) -> dict[str, Any]:
    """The submitted values, coerced; unknown names and wrong types fail before anything is submitted."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(spec.get("parameters", {})))
    if unknown:
        raise UserErrorException(
            f"Pipeline parameter with name {unknown[0]!r} does not exist "
            f"(parameters: {sorted(spec.get('parameters', {}))})"
        )
    resolved = resolve_parameters(spec.get("parameters", {}), values)
    return {k: resolved[k] for k in values}
