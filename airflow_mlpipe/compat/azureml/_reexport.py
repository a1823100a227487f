"""The one helper every ``azureml.*`` compatibility module uses: lazy re-export from ``airflow_mlpipe``.

A compat module declares the v1 names it offers and installs a module ``__getattr__``. A name resolves, on
first use, against the top-level ``airflow_mlpipe`` package (its public API), falling back to the few
modules whose location is fixed; it is then cached in the module. An unknown or unavailable name raises
:class:`NotSupportedError`, an ImportError, so ``from azureml.core import X`` shows our message rather than
Python's generic one.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

#: searched after the top-level package, for names it does not (yet) export
_FALLBACK_MODULES = ("airflow_mlpipe.sdk.run", "airflow_mlpipe.workspace", "airflow_mlpipe.contract.exceptions")


class NotSupportedError(ImportError):
    """A v1 name that airflow-mlpipe does not provide (an ImportError, so ``from … import`` keeps the message)."""


def _lookup(target: str) -> Any:
    import airflow_mlpipe

    try:
        value = getattr(airflow_mlpipe, target)
    except AttributeError:
        pass
    except ModuleNotFoundError as exc:
        # the top level maps the name to one of our modules that is not in this installation
        if not (exc.name or "").startswith("airflow_mlpipe"):
            raise
    else:
        if not isinstance(value, ModuleType):
            return value
    for module_name in _FALLBACK_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        if target in vars(module):
            return vars(module)[target]
    raise LookupError(target)


def _submodule_exists(package: str, name: str) -> bool:
    module = sys.modules.get(package)
    if module is None or "__path__" not in vars(module):
        return False
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except (ImportError, ValueError):
        return False


def reexport(
    module_name: str, names: Iterable[str], aliases: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a compat module offering ``names`` (``aliases``: v1 name → our name)."""
    supported = tuple(names)
    renames = dict(aliases or {})

    def __getattr__(name: str) -> Any:
        if name == "__all__":
            available = []
            for candidate in supported:
                try:
                    __getattr__(candidate)
                except NotSupportedError:
                    continue
                available.append(candidate)
            return available
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        if name not in supported:
            if _submodule_exists(module_name, name):
                return importlib.import_module(f"{module_name}.{name}")
            if name.startswith("_"):
                raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
            offered = ", ".join(supported) or "no names"
            raise NotSupportedError(
                f"{module_name}.{name} is not supported by airflow-mlpipe (this compatibility module offers: "
                f"{offered}). Import from airflow_mlpipe instead, or see the airflow-mlpipe README for what is "
                "supported.",
                name=module_name,
            )
        target = renames.get(name, name)
        try:
            value = _lookup(target)
        except LookupError:
            raise NotSupportedError(
                f"{module_name}.{name} is not supported by this airflow-mlpipe installation: "
                f"airflow_mlpipe does not export {target!r}",
                name=module_name,
            ) from None
        setattr(sys.modules[module_name], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(supported) | set(vars(sys.modules[module_name])))

    return __getattr__, __dir__
