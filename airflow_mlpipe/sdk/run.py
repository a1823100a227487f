"""``Run`` (v1 ``azureml.core.Run``) and the offline run a script gets outside a pipeline.

Inside a step process, ``Run.get_context()`` is built only from the files the operator hands over
(:mod:`airflow_mlpipe.runtime.contract`): metrics go to the JSON-lines file, never to the database, so a step
script needs neither the store nor Airflow. Elsewhere (a run looked up from the client) the same methods read
and write the workspace store directly.

This module imports neither Airflow nor pandas: ``from azureml.core import Run`` in a step script stays cheap.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from airflow_mlpipe.exceptions import RunEnvironmentException, UserErrorException
from airflow_mlpipe.runtime import contract, metrics_io

_CONTEXT_CACHE: dict[str, Any] = {}
_SCALARS = (bool, int, float, str)


# ---------------------------------------------------------------------------------------------- helpers
def run_artifact_dir(workspace_home: str | os.PathLike, run_id: str) -> Path:
    """Where a run's uploaded files live: ``<home>/runs/<run_id>`` (path separators in the id made safe)."""
    safe = str(run_id).replace("/", "_").replace("\\", "_").replace("..", "_")
    return Path(workspace_home) / "runs" / safe


def _to_jsonable(value: Any, where: str) -> Any:
    """JSON-safe copy of ``value``; numpy/pandas values via ``.tolist()``/``.item()`` without importing numpy."""
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple | range):
        return [_to_jsonable(v, where) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _to_jsonable(tolist(), where)
    item = getattr(value, "item", None)
    if callable(item):
        return _to_jsonable(item(), where)
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


def _scalar(name: str, value: Any, method: str = "log") -> Any:
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
    converted = _to_jsonable(value, f"Run.{method}({name!r})")
    if isinstance(converted, list):
        raise UserErrorException(
            f"Run.{method}({name!r}, ...): value is an array; use Run.log_list(name, values) for a list of values"
        )
    if isinstance(converted, dict):
        raise UserErrorException(f"Run.{method}({name!r}, ...): value must be a scalar, not a mapping")
    return converted


def _list_value(name: str, value: Any, method: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or value is None:
        raise UserErrorException(
            f"Run.{method}({name!r}, ...): value must be a list of scalars, got {type(value).__name__}"
        )
    if not (_is_sequence_like(value) or callable(getattr(value, "tolist", None))):
        raise UserErrorException(
            f"Run.{method}({name!r}, ...): value must be a list of scalars, got {type(value).__name__}"
        )
    items = value.tolist() if callable(getattr(value, "tolist", None)) else list(value)
    return [_scalar(name, v, method) for v in items]


def _json_artifact(name: str, value: Any, method: str) -> Any:
    """v1's JSON artifacts accept a dict or a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserErrorException(f"Run.{method}({name!r}, ...): value is not valid JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise UserErrorException(f"Run.{method}({name!r}, ...): value must be a dict or a JSON string")
    return _to_jsonable(value, f"Run.{method}({name!r})")


def _safe_relpath(name: str) -> PurePosixPath:
    rel = PurePosixPath(str(name).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UserErrorException(f"artifact name {name!r} must be a relative path inside the run's folder")
    return rel


def _make_experiment(workspace: Any, name: str) -> Any:
    try:
        from airflow_mlpipe.sdk.experiment import Experiment
    except ModuleNotFoundError as exc:
        if exc.name != "airflow_mlpipe.sdk.experiment":
            raise
        return _ExperimentRef(workspace, name)
    return Experiment(workspace, name)


class _ExperimentRef:
    """Stand-in for ``Experiment`` until ``airflow_mlpipe.sdk.experiment`` exists: a name in a workspace."""

    def __init__(self, workspace: Any, name: str) -> None:
        self.workspace = workspace
        self.name = name

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {getattr(self.workspace, 'name', '?')})"


class DatasetNotFoundError(KeyError):
    """A missing input/output name; the message lists the names the step does have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RunDatasets(Mapping[str, Any]):
    """``run.input_datasets`` / ``run.output_datasets``: a read-only mapping resolved lazily per name.

    Direct-mode inputs become dataset objects only when asked for, so a step that reads one input does not
    pay for opening the others.
    """

    def __init__(
        self, what: str, run_id: str, entries: Mapping[str, Any], resolve: Callable[[str, Any], Any]
    ):
        self._what = what
        self._run_id = run_id
        self._entries = dict(entries)
        self._resolve = resolve
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._entries:
            known = ", ".join(repr(n) for n in sorted(self._entries)) or "none"
            raise DatasetNotFoundError(
                f"{name!r} is not one of the {self._what} of run {self._run_id}; known {self._what}: {known}"
            )
        if name not in self._cache:
            self._cache[name] = self._resolve(name, self._entries[name])
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._entries.items())}}}"


# ---------------------------------------------------------------------------------------------- Run
class Run:
    """A run: a step run in a pipeline, a pipeline run (subclass ``PipelineRun``), or a plain run.

    ``Run(experiment, run_id)`` is a handle on a run in the workspace store. ``Run.get_context()`` in a step
    script gives the step's own run, built from the operator's run-context file.
    """

    RUN_TYPE = "azureml.scriptrun"

    def __init__(self, experiment: Any, run_id: str, outputs: Any = None, **kwargs: Any) -> None:
        self._experiment = experiment
        self._run_id = str(run_id)
        self._outputs = outputs
        self._context: dict[str, Any] | None = kwargs.pop("_context", None)
        self._metrics_file: str | None = kwargs.pop("_metrics_file", None)
        self._workspace_obj: Any = kwargs.pop("_workspace", None)
        self._experiment_name: str | None = kwargs.pop("_experiment_name", None)
        self._pipeline_run_id: str | None = kwargs.pop("pipeline_run_id", None)
        self._step_name: str | None = kwargs.pop("step_name", None)
        self._run_type: str | None = kwargs.pop("run_type", None)
        self._display_name: str | None = kwargs.pop("display_name", None)
        self._description: str | None = kwargs.pop("description", None)
        self._status: str | None = kwargs.pop("status", None)
        self._tags: dict[str, Any] = dict(kwargs.pop("tags", None) or {})
        self._properties: dict[str, Any] = dict(kwargs.pop("properties", None) or {})
        self._error: Any = None
        self._step_usage: dict[str, bool] = {}
        self._input_datasets: RunDatasets | None = None
        self._output_datasets: RunDatasets | None = None
        self._kwargs = (
            kwargs  # other v1 keywords (``_run_dto``, ``_service_endpoint``…) are accepted and ignored
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def get_context(
        cls, allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any
    ) -> Any:
        """The current step's run from ``MLPIPE_RUN_CONTEXT`` (cached per process), else an offline run."""
        path = os.environ.get(contract.ENV_RUN_CONTEXT)
        if path:
            run = _CONTEXT_CACHE.get(path)
            if run is None:
                run = _CONTEXT_CACHE[path] = _load_context_run(path)
            return run
        if allow_offline:
            run = _CONTEXT_CACHE.get("")
            if run is None:
                run = _CONTEXT_CACHE[""] = _OfflineRun()
            return run
        raise RunEnvironmentException(
            f"Run.get_context(allow_offline=False): not inside a pipeline step ({contract.ENV_RUN_CONTEXT} is not "
            "set). Run the script as a step of a pipeline, or allow an offline run."
        )

    @staticmethod
    def get(workspace: Any, run_id: str) -> Run:
        """Look a run up in the workspace store (pipeline run, step run or plain run)."""
        from airflow_mlpipe.sdk.runs import get_run

        return get_run(workspace, run_id)

    # ------------------------------------------------------------------ identity
    @property
    def id(self) -> str:
        return self._run_id

    @property
    def name(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self._display_name or self._step_name or self._run_id

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._display_name = value

    @property
    def description(self) -> str | None:
        return self._description

    @description.setter
    def description(self, value: str | None) -> None:
        self._description = value

    @property
    def number(self) -> int | None:
        return None

    @property
    def type(self) -> str:
        return self._run_type or self.RUN_TYPE

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            self._experiment = _make_experiment(self._get_workspace(), self._experiment_name or "default")
        return self._experiment

    @property
    def parent(self) -> Any:
        """The pipeline run of a step run (a ``PipelineRun``); None for a run outside a pipeline."""
        pipeline_run_id = self._get_pipeline_run_id()
        if not pipeline_run_id or pipeline_run_id == self._run_id:
            return None
        from airflow_mlpipe.sdk.runs import PipelineRun

        return PipelineRun(self.experiment, pipeline_run_id)

    @property
    def status(self) -> str:
        if self._status:
            return self._status
        if self._context is not None:
            return "Running"
        _, row = self._store_row()
        return (row or {}).get("status") or "NotStarted"

    def get_status(self) -> str:
        return self.status

    # ------------------------------------------------------------------ private plumbing
    def _get_workspace(self) -> Any:
        if self._workspace_obj is None:
            if self._experiment is not None:
                self._workspace_obj = self._experiment.workspace
            elif self._context is not None:
                from airflow_mlpipe.workspace import Workspace

                self._workspace_obj = Workspace.from_ref(self._context.get("workspace"))
            else:
                raise UserErrorException(f"run {self._run_id} has neither an experiment nor a workspace")
        return self._workspace_obj

    def _store(self) -> Any:
        return self._get_workspace().store

    def _store_row(self) -> tuple[str | None, dict[str, Any] | None]:
        """``("pipeline"|"step", row)`` from the store; ``(None, None)`` in a step process or for unknown ids."""
        if self._context is not None:
            return None, None
        store = self._store()
        row = store.get_pipeline_run(self._run_id)
        if row is not None:
            return "pipeline", row
        row = store.get_step_run(self._run_id)
        if row is not None:
            return "step", row
        return None, None

    def _get_pipeline_run_id(self) -> str | None:
        if self._pipeline_run_id is None and self._context is None:
            kind, row = self._store_row()
            if kind == "step" and row:
                self._pipeline_run_id = row.get("pipeline_run_id") or None
        return self._pipeline_run_id

    def _metrics_pipeline_run_id(self) -> str | None:
        """The pipeline run a metric row belongs to (a ``PipelineRun`` subclass may return its own id)."""
        return self._get_pipeline_run_id()

    @property
    def _in_step_process(self) -> bool:
        return self._context is not None and bool(self._metrics_file)

    def _emit(self, record: dict[str, Any]) -> None:
        """Send one record where it belongs: the metrics file in a step process, else the store."""
        if self._in_step_process:
            metrics_io.append_record(self._metrics_file, record)  # type: ignore[arg-type]
        else:
            self._store().add_metrics(self._run_id, self._metrics_pipeline_run_id(), [record])

    def _run_dir(self) -> Path:
        return run_artifact_dir(self._get_workspace().home, self._run_id)

    # ------------------------------------------------------------------ metrics
    def log(self, name: str, value: Any, description: str = "", step: Any = None) -> None:
        """Log a scalar; logging a name again appends to its vector. ``step`` is all-or-nothing per name."""
        value = _scalar(name, value)
        used = step is not None
        previous = self._step_usage.setdefault(name, used)
        if previous != used:
            raise UserErrorException(
                f"Run.log({name!r}, ...): 'step' was {'given' if previous else 'not given'} for earlier values of "
                f"this metric; when step is used once it must be used for all values of {name!r}"
            )
        if used:
            step = _scalar(f"{name} step", step)
            if isinstance(step, bool) or not isinstance(step, int | float):
                raise UserErrorException(f"Run.log({name!r}, ...): step must be a number, got {step!r}")
        self._emit(metrics_io.make_record(name, "scalar", value, step, description))

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._emit(
            metrics_io.make_record(name, "list", _list_value(name, value, "log_list"), None, description)
        )

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Add one row to the table ``name``; each keyword is a column."""
        if not kwargs:
            raise UserErrorException(f"Run.log_row({name!r}): give at least one column as a keyword argument")
        row = {col: _scalar(f"{name}.{col}", val, "log_row") for col, val in kwargs.items()}
        self._emit(metrics_io.make_record(name, "row", row, None, description or ""))

    def log_table(self, name: str, value: Any, description: str = "") -> None:
        """Log a whole table: a dict of column name → list of values, all columns the same length."""
        if not isinstance(value, Mapping) or not value:
            raise UserErrorException(
                f"Run.log_table({name!r}, ...): value must be a non-empty dict of column name -> list of values"
            )
        table = {str(col): _list_value(f"{name}.{col}", vals, "log_table") for col, vals in value.items()}
        lengths = {col: len(vals) for col, vals in table.items()}
        if len(set(lengths.values())) > 1:
            raise UserErrorException(f"Run.log_table({name!r}, ...): columns differ in length: {lengths}")
        self._emit(metrics_io.make_record(name, "table", table, None, description))

    def log_image(
        self, name: str, path: str | os.PathLike | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Keep an image file (or save a matplotlib plot/figure) under the run's folder and log its path."""
        if (path is None) == (plot is None):
            raise UserErrorException(f"Run.log_image({name!r}): give exactly one of path= or plot=")
        stamp = f"{int(time.time() * 1000)}_{uuid.uuid4().hex[:6]}"
        folder = self._run_dir() / "images"
        folder.mkdir(parents=True, exist_ok=True)
        safe = str(name).replace("/", "_").replace("\\", "_")
        if path is not None:
            src = Path(path)
            if not src.is_file():
                raise UserErrorException(f"Run.log_image({name!r}): no image file at {str(src)!r}")
            target = folder / f"{safe}_{stamp}{src.suffix or '.png'}"
            shutil.copyfile(src, target)
        else:
            savefig = getattr(plot, "savefig", None)
            if not callable(savefig):
                raise UserErrorException(
                    f"Run.log_image({name!r}): plot must be matplotlib.pyplot or a Figure (something with savefig)"
                )
            target = folder / f"{safe}_{stamp}.png"
            savefig(str(target))
        self._emit(metrics_io.make_record(name, "image", str(target), None, description))

    def _log_json(self, kind: str, name: str, value: Any, description: str) -> None:
        self._emit(
            metrics_io.make_record(name, kind, _json_artifact(name, value, f"log_{kind}"), None, description)
        )

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._log_json("confusion_matrix", name, value, description)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._log_json("accuracy_table", name, value, description)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        self._log_json("residuals", name, value, description)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        self._log_json("predictions", name, value, description)

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        """v1 shapes: ``{name: value or [values]}``; ``recursive`` → ``{run_id: {...}}`` over this run's children."""
        if self._in_step_process:
            own = metrics_io.fold_metrics(metrics_io.read_records(self._metrics_file), name)  # type: ignore[arg-type]
        else:
            own = self._store().get_metrics(self._run_id, name)
        if not recursive:
            return own
        result: dict[str, Any] = {self._run_id: own}
        get_children = getattr(self, "get_children", None)
        if callable(get_children):
            for child in get_children():
                sub = child.get_metrics(name=name, recursive=True, run_type=run_type, populate=populate)
                if run_type and getattr(child, "type", None) != run_type:
                    sub.pop(child.id, None)
                result.update(sub)
        return result

    def flush(self, timeout_seconds: int = 300) -> None:
        """Records are written synchronously; nothing is buffered."""

    # ------------------------------------------------------------------ tags and properties
    def _persist_meta(self, column: str, updates: dict[str, Any]) -> None:
        if self._in_step_process:
            kind = metrics_io.TAG_KIND if column == "tags" else metrics_io.PROPERTY_KIND
            for key, value in updates.items():
                metrics_io.append_record(self._metrics_file, metrics_io.make_record(key, kind, value))  # type: ignore[arg-type]
            return
        if self._context is not None:
            return
        kind, row = self._store_row()
        if kind == "pipeline" and row is not None:
            self._store().upsert_pipeline_run(
                self._run_id, **{column: {**(row.get(column) or {}), **updates}}
            )
        elif kind == "step" and row is not None:
            details = dict(row.get("details") or {})
            details[column] = {**(details.get(column) or {}), **updates}
            self._store().upsert_step_run(self._run_id, details=details)

    def _stored_meta(self, column: str) -> dict[str, Any]:
        kind, row = self._store_row()
        if kind == "pipeline" and row is not None:
            return dict(row.get(column) or {})
        if kind == "step" and row is not None:
            return dict((row.get("details") or {}).get(column) or {})
        return {}

    @property
    def tags(self) -> dict[str, Any]:
        return {**self._stored_meta("tags"), **self._tags}

    @property
    def properties(self) -> dict[str, Any]:
        return {**self._stored_meta("properties"), **self._properties}

    def tag(self, key: str, value: Any = None) -> None:
        value = "" if value is None else _to_jsonable(value, f"Run.tag({key!r})")
        self._tags[key] = value
        self._persist_meta("tags", {key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        clean = {
            str(k): "" if v is None else _to_jsonable(v, f"Run.set_tags({k!r})") for k, v in tags.items()
        }
        self._tags.update(clean)
        self._persist_meta("tags", clean)

    def get_tags(self) -> dict[str, Any]:
        return self.tags

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Properties are immutable, as in v1: re-adding a key with a different value is an error."""
        current = self.properties
        clean = {str(k): _to_jsonable(v, f"Run.add_properties({k!r})") for k, v in properties.items()}
        for key, value in clean.items():
            if key in current and current[key] != value:
                raise UserErrorException(
                    f"Run.add_properties: property {key!r} is already {current[key]!r}; properties cannot be changed"
                )
        self._properties.update(clean)
        self._persist_meta("properties", clean)

    def get_properties(self) -> dict[str, Any]:
        return self.properties

    # ------------------------------------------------------------------ datasets
    @property
    def input_datasets(self) -> RunDatasets:
        """name → dataset object (direct mode) or local path (download/mount), from the run-context file."""
        if self._input_datasets is None:
            entries = (self._context or {}).get("input_datasets") or {}
            self._input_datasets = RunDatasets("input datasets", self._run_id, entries, self._resolve_input)
        return self._input_datasets

    def _resolve_input(self, name: str, entry: Any) -> Any:
        if isinstance(entry, str):
            return entry
        mode = (entry or {}).get("mode", "direct")
        if mode == "direct":
            if entry.get("dataset") is None:
                raise UserErrorException(
                    f"input dataset {name!r} of run {self._run_id} has no dataset definition"
                )
            from airflow_mlpipe.sdk.dataset import Dataset

            return Dataset.from_definition(self._get_workspace(), entry["dataset"])
        if "path" not in entry:
            raise UserErrorException(
                f"input dataset {name!r} ({mode} mode) of run {self._run_id} has no path"
            )
        return entry["path"]

    @property
    def output_datasets(self) -> RunDatasets:
        """name → local output directory the step writes to."""
        if self._output_datasets is None:
            entries = (self._context or {}).get("output_datasets") or {}
            self._output_datasets = RunDatasets(
                "output datasets",
                self._run_id,
                entries,
                lambda _n, e: e.get("path") if isinstance(e, dict) else e,
            )
        return self._output_datasets

    # ------------------------------------------------------------------ details and lifecycle
    def get_details(self) -> dict[str, Any]:
        kind, row = self._store_row()
        row = row or {}
        inputs = []
        for name, entry in ((self._context or {}).get("input_datasets") or {}).items():
            entry = entry if isinstance(entry, dict) else {"mode": "download", "path": entry}
            inputs.append(
                {
                    "dataset": entry.get("dataset", entry.get("path")),
                    "consumptionDetails": {
                        "type": "RunInput",
                        "inputName": name,
                        "mechanism": str(entry.get("mode", "direct")).capitalize(),
                    },
                }
            )
        outputs = [
            {"outputType": "RunOutput", "outputDetails": {"outputName": name}, "path": path}
            for name, path in ((self._context or {}).get("output_datasets") or {}).items()
        ]

        def _iso(value: Any) -> str | None:
            return value.isoformat() + "Z" if hasattr(value, "isoformat") else value

        details: dict[str, Any] = {
            "runId": self._run_id,
            "displayName": self.display_name,
            "target": "local",
            "status": self.status,
            "startTimeUtc": _iso(row.get("start_time")),
            "endTimeUtc": _iso(row.get("end_time")),
            "properties": self.properties,
            "inputDatasets": inputs,
            "outputDatasets": outputs,
            "runDefinition": {
                "script": self._step_name,
                "arguments": [],
                "parameters": (self._context or {}).get("parameters", {}),
            },
            "logFiles": {},
            "submittedBy": "local",
        }
        error = self._error or row.get("error")
        if error:
            details["error"] = {"error": {"message": str(error)}} if not isinstance(error, dict) else error
        return details

    def _set_status(self, status: str, error: Any = None) -> None:
        self._status = status
        if self._in_step_process:
            err = None if error is None else (error if isinstance(error, str) else repr(error))
            metrics_io.append_record(
                self._metrics_file,  # type: ignore[arg-type]
                metrics_io.make_record("status", metrics_io.STATUS_KIND, status, None, err),
            )

    def complete(self, _set_status: bool = True) -> None:
        """Mark the run completed (in a step, the operator still decides from the script's exit code)."""
        self._set_status("Completed")

    def fail(
        self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        """Mark the run failed; in a step the operator fails the step even if the script then exits 0."""
        detail = error_details if error_details is not None else "Run.fail() was called"
        if isinstance(detail, BaseException):
            detail = f"{type(detail).__name__}: {detail}"
        self._error = {"error": {"code": error_code or "UserError", "message": str(detail)}}
        print(f"Run {self._run_id} failed: {detail}", file=sys.stderr)
        self._set_status("Failed", str(detail))

    def cancel(self) -> None:
        self._set_status("Canceled")

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: Any = None) -> Run:
        raise UserErrorException(
            "Run.child_run is not supported by airflow-mlpipe; log with a name prefix instead, or split the work "
            "into pipeline steps"
        )

    # ------------------------------------------------------------------ files
    def upload_file(self, name: str, path_or_stream: Any, datastore_name: str | None = None) -> str:
        """Copy a file (or a stream's content) to ``<workspace home>/runs/<run_id>/<name>``; returns that path."""
        target = self._run_dir() / _safe_relpath(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(path_or_stream, str | os.PathLike):
            src = Path(path_or_stream)
            if not src.is_file():
                raise UserErrorException(f"Run.upload_file({name!r}): no file at {str(src)!r}")
            shutil.copyfile(src, target)
        elif hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        else:
            raise UserErrorException(f"Run.upload_file({name!r}): give a file path or a readable stream")
        return str(target)

    def upload_files(
        self,
        names: list[str],
        paths: list[Any],
        return_artifacts: bool = False,
        timeout_seconds: int | None = None,
        datastore_name: str | None = None,
    ) -> list[str]:
        if len(names) != len(paths):
            raise UserErrorException("Run.upload_files: names and paths must have the same length")
        return [self.upload_file(n, p) for n, p in zip(names, paths, strict=True)]

    def upload_folder(
        self, name: str, path: str | os.PathLike, datastore_name: str | None = None
    ) -> list[str]:
        root = Path(path)
        if not root.is_dir():
            raise UserErrorException(f"Run.upload_folder({name!r}): no folder at {str(root)!r}")
        return [
            self.upload_file(str(PurePosixPath(name) / f.relative_to(root).as_posix()), f)
            for f in sorted(root.rglob("*"))
            if f.is_file()
        ]

    def get_file_names(self) -> list[str]:
        root = self._run_dir()
        if not root.is_dir():
            return []
        return sorted(f.relative_to(root).as_posix() for f in root.rglob("*") if f.is_file())

    def download_file(
        self, name: str, output_file_path: str | os.PathLike | None = None, _validate_checksum: bool = False
    ) -> str:
        src = self._run_dir() / _safe_relpath(name)
        if not src.is_file():
            raise UserErrorException(
                f"Run.download_file: run {self._run_id} has no file {name!r}; files: {self.get_file_names()}"
            )
        dest = Path(output_file_path) if output_file_path else Path.cwd() / src.name
        if dest.is_dir():
            dest = dest / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return str(dest)

    def download_files(
        self, prefix: str | None = None, output_directory: str | os.PathLike | None = None, **_: Any
    ) -> list[str]:
        out = Path(output_directory or ".")
        return [
            self.download_file(n, out / n)
            for n in self.get_file_names()
            if prefix is None or n.startswith(prefix)
        ]

    def register_model(self, model_name: str, model_path: str | None = None, **kwargs: Any) -> Any:
        """Register a file of this run (or a local path) as a model; ``Model.register`` does the work."""
        import airflow_mlpipe

        if model_path is None:
            raise UserErrorException("Run.register_model: model_path is required")
        candidate = self._run_dir() / _safe_relpath(model_path)
        path = candidate if candidate.exists() else Path(model_path)
        if not path.exists():
            raise UserErrorException(
                f"Run.register_model: {model_path!r} is neither a file of run {self._run_id} nor a local path"
            )
        model_cls = airflow_mlpipe.Model
        return model_cls.register(
            self._get_workspace(), model_path=str(path), model_name=model_name, **kwargs
        )

    # ------------------------------------------------------------------ protocol
    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.complete()
        else:
            self.fail(error_details=exc)

    def __repr__(self) -> str:
        exp = self._experiment.name if self._experiment is not None else self._experiment_name
        return f"Run(Experiment: {exp},\nId: {self._run_id},\nType: {self.type},\nStatus: {self.status})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self._run_id)


def _load_context_run(path: str) -> Run:
    try:
        ctx = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunEnvironmentException(
            f"{contract.ENV_RUN_CONTEXT}={path}: cannot read the run context: {exc}"
        ) from exc
    if not isinstance(ctx, dict) or not ctx.get("run_id"):
        raise RunEnvironmentException(f"{contract.ENV_RUN_CONTEXT}={path}: the run context has no run_id")
    pipeline_run_id = ctx.get("pipeline_run_id") or None
    return Run(
        None,
        ctx["run_id"],
        _context=ctx,
        _metrics_file=os.environ.get(contract.ENV_METRICS_FILE) or None,
        _experiment_name=ctx.get("experiment") or "default",
        pipeline_run_id=pipeline_run_id,
        step_name=ctx.get("step_name"),
        run_type="azureml.StepRun" if pipeline_run_id else None,
    )


# ---------------------------------------------------------------------------------------------- offline
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
        value = _scalar(name, value)
        used = step is not None
        if self._step_usage.setdefault(name, used) != used:
            raise UserErrorException(
                f"Run.log({name!r}, ...): when step is used once it must be used for all values of {name!r}"
            )
        self._emit("scalar", name, value)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._emit("list", name, _list_value(name, value, "log_list"))

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._emit("row", name, {k: _scalar(f"{name}.{k}", v, "log_row") for k, v in kwargs.items()})

    def log_table(self, name: str, value: Any, description: str = "") -> None:
        if not isinstance(value, Mapping):
            raise UserErrorException(f"Run.log_table({name!r}, ...): value must be a dict of column -> list")
        self._emit(
            "table", name, {str(k): _list_value(f"{name}.{k}", v, "log_table") for k, v in value.items()}
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


__all__ = ["Run", "RunDatasets", "DatasetNotFoundError", "run_artifact_dir", "_OfflineRun"]
