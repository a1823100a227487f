"""The in-step side of a run: what a step script's ``Run.get_context()`` is built from.

The operator hands a step process its run context as a JSON file (:mod:`airflow_mlpipe.contract.run_context`):
run id, pipeline run, step name, parameters, and where each input and output dataset is. This module reads and
checks that file, and turns its dataset entries into ``run.input_datasets`` / ``run.output_datasets``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract import run_context as contract
from airflow_mlpipe.contract.exceptions import RunEnvironmentException, UserErrorException


def read_run_context(path: str) -> dict[str, Any]:
    """The run context at ``path`` (``MLPIPE_RUN_CONTEXT``): a JSON object with at least a ``run_id``."""
    try:
        ctx = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunEnvironmentException(
            f"{contract.ENV_RUN_CONTEXT}={path}: cannot read the run context: {exc}"
        ) from exc
    if not isinstance(ctx, dict) or not ctx.get("run_id"):
        raise RunEnvironmentException(f"{contract.ENV_RUN_CONTEXT}={path}: the run context has no run_id")
    return ctx


def context_run_arguments(ctx: dict[str, Any]) -> dict[str, Any]:
    """``Run(None, **these)`` is the step's own run: metrics go to the file ``MLPIPE_METRICS_FILE`` names."""
    pipeline_run_id = ctx.get("pipeline_run_id") or None
    return {
        "run_id": ctx["run_id"],
        "_context": ctx,
        "_metrics_file": os.environ.get(contract.ENV_METRICS_FILE) or None,
        "_experiment_name": ctx.get("experiment") or "default",
        "pipeline_run_id": pipeline_run_id,
        "step_name": ctx.get("step_name"),
        "run_type": "azureml.StepRun" if pipeline_run_id else None,
    }


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


class StepDatasets:
    """``run.input_datasets`` / ``run.output_datasets`` of ``Run`` (a mixin), from the run-context file."""

    _run_id: str
    _context: dict[str, Any] | None
    _input_datasets: RunDatasets | None
    _output_datasets: RunDatasets | None

    def _get_workspace(self) -> Any:
        raise NotImplementedError  # Run provides it

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
