"""``Run`` (v1 ``azureml.core.Run``): one class for a run in the store and for a step's own run.

Inside a step process, ``Run.get_context()`` is built only from the files the operator hands over
(:mod:`airflow_mlpipe.contract.run_context`, read by :mod:`airflow_mlpipe.sdk.run_context`): metrics go to the
JSON-lines file, never to the database, so a step script needs neither the store nor Airflow. Elsewhere (a run
looked up from the client) the same methods read and write the workspace store directly. Outside a step it is
the offline run of :mod:`airflow_mlpipe.sdk.offline_run`.

This module holds identity, status, metrics, tags and properties, details and lifecycle; a run's files are in
:mod:`airflow_mlpipe.sdk.run_files`, the checks on logged values in :mod:`airflow_mlpipe.sdk.run_values`.
It imports neither Airflow nor pandas: ``from azureml.core import Run`` in a step script stays cheap.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract import metrics_io
from airflow_mlpipe.contract import run_context as contract
from airflow_mlpipe.contract.exceptions import RunEnvironmentException, UserErrorException
from airflow_mlpipe.contract.timestamps import iso_utc as _iso
from airflow_mlpipe.sdk.offline_run import _OfflineRun
from airflow_mlpipe.sdk.run_context import (
    DatasetNotFoundError,
    RunDatasets,
    StepDatasets,
    context_run_arguments,
    read_run_context,
)
from airflow_mlpipe.sdk.run_files import RunFiles, run_artifact_dir
from airflow_mlpipe.sdk.run_values import json_artifact, list_value, scalar_value, to_jsonable

#: the step's own run per run-context path ("" for the offline run), so get_context() is the same object
_CONTEXT_CACHE: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------- Run
class Run(RunFiles, StepDatasets):
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
                run = _CONTEXT_CACHE[path] = Run._from_context(read_run_context(path))
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

    @staticmethod
    def _from_context(ctx: dict[str, Any]) -> Run:
        """The step's own run from its run context (see :mod:`airflow_mlpipe.sdk.run_context`)."""
        return Run(None, **context_run_arguments(ctx))

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
            from airflow_mlpipe.sdk.experiment import Experiment

            self._experiment = Experiment(self._get_workspace(), self._experiment_name or "default")
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
                from airflow_mlpipe.sdk.workspace import Workspace

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


    # ------------------------------------------------------------------ metrics
    def log(self, name: str, value: Any, description: str = "", step: Any = None) -> None:
        """Log a scalar; logging a name again appends to its vector. ``step`` is all-or-nothing per name."""
        value = scalar_value(name, value)
        used = step is not None
        previous = self._step_usage.setdefault(name, used)
        if previous != used:
            raise UserErrorException(
                f"Run.log({name!r}, ...): 'step' was {'given' if previous else 'not given'} for earlier values of "
                f"this metric; when step is used once it must be used for all values of {name!r}"
            )
        if used:
            step = scalar_value(f"{name} step", step)
            if isinstance(step, bool) or not isinstance(step, int | float):
                raise UserErrorException(f"Run.log({name!r}, ...): step must be a number, got {step!r}")
        self._emit(metrics_io.make_record(name, "scalar", value, step, description))

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._emit(
            metrics_io.make_record(name, "list", list_value(name, value, "log_list"), None, description)
        )

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Add one row to the table ``name``; each keyword is a column."""
        if not kwargs:
            raise UserErrorException(f"Run.log_row({name!r}): give at least one column as a keyword argument")
        row = {col: scalar_value(f"{name}.{col}", val, "log_row") for col, val in kwargs.items()}
        self._emit(metrics_io.make_record(name, "row", row, None, description or ""))

    def log_table(self, name: str, value: Any, description: str = "") -> None:
        """Log a whole table: a dict of column name → list of values, all columns the same length."""
        if not isinstance(value, Mapping) or not value:
            raise UserErrorException(
                f"Run.log_table({name!r}, ...): value must be a non-empty dict of column name -> list of values"
            )
        table = {str(col): list_value(f"{name}.{col}", vals, "log_table") for col, vals in value.items()}
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
            metrics_io.make_record(name, kind, json_artifact(name, value, f"log_{kind}"), None, description)
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
        value = "" if value is None else to_jsonable(value, f"Run.tag({key!r})")
        self._tags[key] = value
        self._persist_meta("tags", {key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        clean = {
            str(k): "" if v is None else to_jsonable(v, f"Run.set_tags({k!r})") for k, v in tags.items()
        }
        self._tags.update(clean)
        self._persist_meta("tags", clean)

    def get_tags(self) -> dict[str, Any]:
        return self.tags

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Properties are immutable, as in v1: re-adding a key with a different value is an error."""
        current = self.properties
        clean = {str(k): to_jsonable(v, f"Run.add_properties({k!r})") for k, v in properties.items()}
        for key, value in clean.items():
            if key in current and current[key] != value:
                raise UserErrorException(
                    f"Run.add_properties: property {key!r} is already {current[key]!r}; properties cannot be changed"
                )
        self._properties.update(clean)
        self._persist_meta("properties", clean)

    def get_properties(self) -> dict[str, Any]:
        return self.properties

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


__all__ = ["Run", "RunDatasets", "DatasetNotFoundError", "run_artifact_dir", "_OfflineRun"]
