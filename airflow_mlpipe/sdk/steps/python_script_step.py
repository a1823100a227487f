"""PythonScriptStep: a script run as a subprocess of the Airflow worker, in a snapshot of its source folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError
from airflow_mlpipe.sdk.compute import check_named_target, compute_spec
from airflow_mlpipe.sdk.no_effect import warn_no_effect
from airflow_mlpipe.sdk.parameters import PipelineParameter
from airflow_mlpipe.sdk.steps.base import PipelineStep

RUNCONFIG_PIPELINE_PARAM_KEYS = {"NodeCount", "MpiProcessCountPerNode", "TensorflowWorkerCount",
                                 "TensorflowParameterServerCount"}


class PythonScriptStep(PipelineStep):
    """v1 ``PythonScriptStep`` with every v1 argument."""

    kind = "PythonScriptStep"

    def __init__(self, script_name: str, name: str | None = None, arguments: list | None = None,
                 compute_target: Any = None, runconfig: Any = None,
                 runconfig_pipeline_params: dict[str, PipelineParameter] | None = None,
                 inputs: list | None = None, outputs: list | None = None, params: dict[str, Any] | None = None,
                 source_directory: str | None = None, allow_reuse: bool = True, version: str | None = None,
                 hash_paths: list[str] | None = None) -> None:
        if not isinstance(script_name, str) or not script_name:
            raise PipelineValidationError(f"PythonScriptStep: script_name must be a non-empty string, got {script_name!r}")
        step_name = name or script_name
        super().__init__(step_name, inputs, outputs, arguments, fix_port_name_collisions=True,
                         allow_reuse=allow_reuse, version=version)
        self.script_name = script_name
        self.source_directory = str(Path(source_directory).resolve()) if source_directory else None
        self.runconfig = runconfig
        self.compute = compute_spec(step_name, compute_target, runconfig, step_kind=self.kind)
        self.hash_paths = list(hash_paths or [])
        if hash_paths:
            warn_no_effect("PythonScriptStep", "hash_paths", "the whole source_directory (minus .amlignore/"
                                                             ".gitignore matches) is hashed for reuse, as in v1")
        self.params: dict[str, Any] = {}
        for key, value in (params or {}).items():
            if isinstance(value, PipelineParameter):
                self._parameters[value.name] = value
                self.params[key] = {"parameter": value.name}
            elif isinstance(value, str | int | float | bool):
                self.params[key] = {"literal": str(value)}
            else:
                raise self._err("params", f"value of {key!r} must be a str, number, bool or PipelineParameter")
        self.runconfig_pipeline_params: dict[str, str] = {}
        for key, value in (runconfig_pipeline_params or {}).items():
            if key not in RUNCONFIG_PIPELINE_PARAM_KEYS:
                raise self._err("runconfig_pipeline_params", f"key {key!r} must be one of "
                                                             f"{sorted(RUNCONFIG_PIPELINE_PARAM_KEYS)}")
            if not isinstance(value, PipelineParameter):
                raise self._err("runconfig_pipeline_params", f"value of {key!r} must be a PipelineParameter")
            if key in self.params:
                raise self._err("runconfig_pipeline_params", f"{key!r} is also given in params")
            self._parameters[value.name] = value
            self.runconfig_pipeline_params[key] = value.name
        if self.source_directory is not None:
            self._check_script(Path(self.source_directory))

    def _check_script(self, folder: Path) -> None:
        if not folder.is_dir():
            raise self._err("source_directory", f"folder {str(folder)!r} does not exist")
        script = folder / self.script_name
        if not script.is_file():
            raise self._err("script_name", f"script not found at: {script}")

    def _kind_spec(self, pipeline: Any) -> dict[str, Any]:
        source = self.source_directory
        if source is None:
            source = str(Path(pipeline.default_source_directory).resolve())
            self._check_script(Path(source))
        runconfig = self.runconfig.to_spec() if hasattr(self.runconfig, "to_spec") else None
        check_named_target(self.name, self.kind, self.compute, getattr(pipeline, "_workspace", None))
        return {
            "script_name": self.script_name,
            "source_directory": source,
            "params": dict(self.params),
            "compute": dict(self.compute),
            "runconfig": runconfig,
            "runconfig_pipeline_params": dict(self.runconfig_pipeline_params),
            "hash_paths": list(self.hash_paths),
        }
