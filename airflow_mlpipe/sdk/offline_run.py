"""The offline run (v1 ``_OfflineRun``): what ``Run.get_context()`` gives a script outside a pipeline step.

Logging only prints what it would have logged, so a step script can be tried with plain ``python script.py``.
Values are still checked as a real run checks them, so a mistake shows before the script runs as a step.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

from airflow_mlpipe.contract import run_context as contract
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.sdk.run_values import list_value, scalar_value

_OFFLINE_ABSENT = frozenset(
    {
        "experiment",
        "parent",
        "input_datasets",
        "output_datasets",
        "get_metrics",
        "get_details",
        "get_children",
    }
)


class _OfflineRun:
    """What ``Run.get_context()`` gives outside a pipeline step (v1 ``_OfflineRun``): logging only prints.

    As in v1 it has no ``experiment``, ``parent``, ``input_datasets`` or ``get_metrics``; touching them raises an
    ``AttributeError`` that says why, instead of v1's bare one.
    """

    def __init__(self, parent_logger: Any = None, run_id: str | None = None, **kwargs: Any) -> None:
        self._run_id = run_id or f"OfflineRun_{uuid.uuid4()}"
        self._display_name = self._run_id
        self._description: str | None = None
        self._tags: dict[str, Any] = {}
        self._properties: dict[str, Any] = {}
        self._step_usage: dict[str, bool] = {}

    def __getattr__(self, name: str) -> Any:
        if name in _OFFLINE_ABSENT:
            raise AttributeError(
                f"'_OfflineRun' has no {name!r}: this is an offline run, because Run.get_context() was called "
                f"outside a pipeline step ({contract.ENV_RUN_CONTEXT} is not set). Run the script as a pipeline "
                "step, or guard with `if not run.id.startswith('OfflineRun')`."
            )
        raise AttributeError(f"'_OfflineRun' object has no attribute {name!r}")

    @property
    def id(self) -> str:
        return self._run_id

    @property
    def name(self) -> str:
        return self._display_name

    @property
    def display_name(self) -> str:
        return self._display_name

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._display_name = value

    @property
    def description(self) -> str | None:
        return self._description

    @property
    def number(self) -> None:
        return None

    @property
    def type(self) -> str:
        return "offline"

    @property
    def status(self) -> str:
        return "Running"

    def get_status(self) -> str:
        return "Running"

    @staticmethod
    def _emit(kind: str, name: str, value: Any) -> None:
        print(f"Attempted to log {kind} metric {name}: {value}")

    def log(self, name: str, value: Any, description: str = "", step: Any = None) -> None:
        value = scalar_value(name, value)
        used = step is not None
        if self._step_usage.setdefault(name, used) != used:
            raise UserErrorException(
                f"Run.log({name!r}, ...): when step is used once it must be used for all values of {name!r}"
            )
        self._emit("scalar", name, value)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._emit("list", name, list_value(name, value, "log_list"))

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._emit("row", name, {k: scalar_value(f"{name}.{k}", v, "log_row") for k, v in kwargs.items()})

    def log_table(self, name: str, value: Any, description: str = "") -> None:
        if not isinstance(value, Mapping):
            raise UserErrorException(f"Run.log_table({name!r}, ...): value must be a dict of column -> list")
        self._emit(
            "table", name, {str(k): list_value(f"{name}.{k}", v, "log_table") for k, v in value.items()}
        )

    def log_image(self, name: str, path: Any = None, plot: Any = None, description: str = "") -> None:
        self._emit("image", name, path if path is not None else plot)

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._emit("confusion_matrix", name, value)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._emit("accuracy_table", name, value)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        self._emit("residuals", name, value)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        self._emit("predictions", name, value)

    def tag(self, key: str, value: Any = None) -> None:
        self._tags[key] = "" if value is None else value
        print(f"Attempted to set tag {key}: {value}")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._tags.update(tags)
        print(f"Attempted to set tags: {dict(tags)}")

    def get_tags(self) -> dict[str, Any]:
        return dict(self._tags)

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._tags)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self._properties.update(properties)
        print(f"Attempted to add properties: {dict(properties)}")

    def get_properties(self) -> dict[str, Any]:
        return dict(self._properties)

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._properties)

    def upload_file(self, name: str, path_or_stream: Any, datastore_name: str | None = None) -> None:
        shown = (
            path_or_stream if isinstance(path_or_stream, str | os.PathLike) else type(path_or_stream).__name__
        )
        print(f"Attempted to upload file {name} from {shown}")

    def upload_files(self, names: list[str], paths: list[Any], *args: Any, **kwargs: Any) -> None:
        print(f"Attempted to upload files {list(names)}")

    def upload_folder(self, name: str, path: Any, datastore_name: str | None = None) -> None:
        print(f"Attempted to upload folder {name} from {path}")

    def flush(self, timeout_seconds: int = 300) -> None:
        print("Attempted to flush an offline run")

    def complete(self, _set_status: bool = True) -> None:
        """Nothing to do offline."""

    def cancel(self) -> None:
        """Nothing to do offline."""

    def fail(
        self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        print(f"Offline run failed: {error_details}" + (f" ({error_code})" if error_code else ""))

    def child_run(
        self, name: str | None = None, run_id: str | None = None, outputs: Any = None
    ) -> _OfflineRun:
        return _OfflineRun(run_id=run_id or f"{self._run_id}.{name or uuid.uuid4()}")

    def __enter__(self) -> _OfflineRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None:
            self.fail(error_details=exc)

    def __repr__(self) -> str:
        return f"_OfflineRun(Id: {self._run_id})"
