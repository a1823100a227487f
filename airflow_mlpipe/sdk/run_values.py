"""Checking what a script logs on a run: v1's rules for scalars, lists, tables and JSON artifacts.

Shared by the store-backed/in-step ``Run`` and the offline run, so both refuse the same values with the same
message. numpy/pandas values are converted through ``.tolist()``/``.item()`` without importing either.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException

_SCALARS = (bool, int, float, str)


def to_jsonable(value: Any, where: str) -> Any:
    """JSON-safe copy of ``value``; numpy/pandas values via ``.tolist()``/``.item()`` without importing numpy."""
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple | range):
        return [to_jsonable(v, where) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return to_jsonable(tolist(), where)
    item = getattr(value, "item", None)
    if callable(item):
        return to_jsonable(item(), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    raise UserErrorException(f"{where}: a value of type {type(value).__name__} is not JSON serialisable")


def _is_sequence_like(value: Any) -> bool:
    return (
        isinstance(value, list | tuple | range | set | frozenset)
        or inspect.isgenerator(value)
        or isinstance(value, Iterator)
    )


def scalar_value(name: str, value: Any, method: str = "log") -> Any:
    """Validate one metric value as v1's ``Run.log`` does: scalars only, with a pointer to the right method."""
    if _is_sequence_like(value):
        raise UserErrorException(
            f"Run.{method}({name!r}, ...): value is a {type(value).__name__}; "
            "Run.log takes a single value, use Run.log_list(name, values) for a list of values"
        )
    if isinstance(value, Mapping):
        raise UserErrorException(
            f"Run.{method}({name!r}, ...): value is a dict; use Run.log_row(name, **columns) or Run.log_table"
        )
    converted = to_jsonable(value, f"Run.{method}({name!r})")
    if isinstance(converted, list):
        raise UserErrorException(
            f"Run.{method}({name!r}, ...): value is an array; use Run.log_list(name, values) for a list of values"
        )
    if isinstance(converted, dict):
        raise UserErrorException(f"Run.{method}({name!r}, ...): value must be a scalar, not a mapping")
    return converted


def list_value(name: str, value: Any, method: str) -> list[Any]:
    """A list of scalars (list, tuple, generator, numpy array...) as v1's ``log_list``/``log_table`` take."""
    if isinstance(value, str | bytes | Mapping) or value is None:
        raise UserErrorException(
            f"Run.{method}({name!r}, ...): value must be a list of scalars, got {type(value).__name__}"
        )
    if not (_is_sequence_like(value) or callable(getattr(value, "tolist", None))):
        raise UserErrorException(
            f"Run.{method}({name!r}, ...): value must be a list of scalars, got {type(value).__name__}"
        )
    items = value.tolist() if callable(getattr(value, "tolist", None)) else list(value)
    return [scalar_value(name, v, method) for v in items]


def json_artifact(name: str, value: Any, method: str) -> Any:
    """v1's JSON artifacts accept a dict or a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserErrorException(f"Run.{method}({name!r}, ...): value is not valid JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise UserErrorException(f"Run.{method}({name!r}, ...): value must be a dict or a JSON string")
    return to_jsonable(value, f"Run.{method}({name!r})")
