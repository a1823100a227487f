"""AutoMLStep (v1 ``azureml.pipeline.steps.AutoMLStep``) and AutoMLStepRun.

The step has no script: its operator runs the AutoML engine (FLAML) in a subprocess of the worker on the
tabular inputs named in the AutoMLConfig, and writes the metrics (``metrics.json``: one record per model tried)
and the best model (``model.pkl``) to the outputs marked with ``TrainingOutput('Metrics' | 'Model')``.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
import warnings
from typing import Any

from airflow_mlpipe.exceptions import PipelineValidationError
from airflow_mlpipe.sdk.automl import AutoMLConfig, _data_kind
from airflow_mlpipe.sdk.compute import compute_spec
from airflow_mlpipe.sdk.pipeline_data import PipelineData, TrainingOutput
from airflow_mlpipe.sdk.steps.base import PipelineStep

#: file names inside the outputs
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.pkl"


class AutoMLStep(PipelineStep):
    """v1 ``AutoMLStep(name, automl_config, inputs=None, outputs=None, script_repl_params=None,
    allow_reuse=True, version=None, hash_paths=None, enable_default_model_output=True,
    enable_default_metrics_output=True, **kwargs)``."""

    kind = "AutoMLStep"
    DEFAULT_METRIC_PREFIX = "default_metrics_"
    DEFAULT_MODEL_PREFIX = "default_model_"

    def __init__(self, name: str, automl_config: AutoMLConfig, inputs: list | None = None,
                 outputs: list | None = None, script_repl_params: dict | None = None, allow_reuse: bool = True,
                 version: str | None = None, hash_paths: list | None = None,
                 enable_default_model_output: bool = True, enable_default_metrics_output: bool = True,
                 **kwargs: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PipelineValidationError(f"AutoMLStep: name must be a non-empty string, got {name!r}")
        if not isinstance(automl_config, AutoMLConfig):
            raise PipelineValidationError(f"Step {name!r}, argument 'automl_config': expected an AutoMLConfig, got "
                                          f"{type(automl_config).__name__}")
        if "passthru_automl_config" in kwargs:
            warnings.warn(f"Step {name!r}: passthru_automl_config is ignored (v1 1.62 always passes the config "
                          "through)", DeprecationWarning, stacklevel=2)
            kwargs.pop("passthru_automl_config")
        if kwargs:
            raise PipelineValidationError(f"Step {name!r}: unexpected argument(s) {sorted(kwargs)}")
        if hash_paths:
            warnings.warn(f"Step {name!r}: hash_paths is deprecated and has no effect", DeprecationWarning,
                          stacklevel=2)
        if script_repl_params:
            warnings.warn(f"Step {name!r}: script_repl_params has no effect (no data_script here)", UserWarning,
                          stacklevel=2)
        self.automl_config = automl_config
        self.safe_name = re.sub(r"\W", "_", name.replace(" ", "_"))
        all_outputs = list(outputs or [])
        self._default_outputs: dict[str, PipelineData] = {}
        if enable_default_metrics_output:
            self._default_outputs["Metrics"] = PipelineData(
                self.DEFAULT_METRIC_PREFIX + self.safe_name,
                pipeline_output_name="_" + self.DEFAULT_METRIC_PREFIX + self.safe_name,
                training_output=TrainingOutput("Metrics"))
        if enable_default_model_output:
            self._default_outputs["Model"] = PipelineData(
                self.DEFAULT_MODEL_PREFIX + self.safe_name,
                pipeline_output_name="_" + self.DEFAULT_MODEL_PREFIX + self.safe_name,
                training_output=TrainingOutput("Model"))
        all_outputs += list(self._default_outputs.values())
        all_inputs = list(inputs or []) + self._data_inputs(name, automl_config)
        super().__init__(name, all_inputs, all_outputs, arguments=None, allow_reuse=allow_reuse, version=version)
        for out in self._outputs.values():
            training = getattr(out, "training_output", None)
            if training is None:
                raise self._err("outputs", f"PipelineData {out.name!r} needs training_output=TrainingOutput("
                                           "'Metrics') or TrainingOutput('Model') to be an output of an AutoMLStep")
            if training.type == "Model" and (training.iteration is not None or training.metric is not None):
                raise self._err("outputs", f"PipelineData {out.name!r}: TrainingOutput('Model', iteration=..., "
                                           "metric=...) is not supported; the model output is the best model by "
                                           "the primary metric")
        self.compute = compute_spec(name, automl_config.compute_target, automl_config.run_configuration)

    @staticmethod
    def _data_inputs(step_name: str, config: AutoMLConfig) -> list[Any]:
        """The config's tabular data, as inputs named after the config argument (v1 behaviour)."""
        from airflow_mlpipe.sdk.dataset_consumption import DatasetConsumptionConfig

        found = []
        for argument, data in config.data_inputs().items():
            kind = _data_kind(data)
            if kind == "pipeline_tabular":
                found.append(data.as_named_input(argument))
            elif kind == "tabular":
                found.append(DatasetConsumptionConfig(argument, data))
            elif kind == "consumption":
                if data.name != argument:
                    warnings.warn(f"Step {step_name!r}: input {data.name!r} given as {argument} is renamed to "
                                  f"{argument!r}", UserWarning, stacklevel=3)
                    data = copy.copy(data)
                    data.name = argument
                inner = data.dataset
                found.append(inner.as_named_input(argument) if _data_kind(inner) == "pipeline_tabular" else data)
        return found

    def get_default_metrics_output(self) -> PipelineData | None:
        return self._default_outputs.get("Metrics")

    def get_default_model_output(self) -> PipelineData | None:
        return self._default_outputs.get("Model")

    def _kind_spec(self, pipeline: Any) -> dict[str, Any]:
        rc = self.automl_config.run_configuration
        return {
            "automl": self.automl_config.settings(),
            "compute": dict(self.compute),
            "runconfig": rc.to_spec() if hasattr(rc, "to_spec") else None,
            "source_directory": None,
            "hash_paths": [],
        }


# ---------------------------------------------------------------------------------------------- run side
def _read_output_file(port: Any, file_name: str) -> bytes:
    store = port.datastore
    path = f"{store.full_path(port.path_on_datastore).rstrip('/')}/{file_name}"
    with store.fs.open(path, "rb") as fh:
        return fh.read()


class AutoMLStepRun:
    """v1 ``AutoMLStepRun(step_run)``: a StepRun of an AutoMLStep, with its outputs, best model and metrics."""

    def __init__(self, step_run: Any = None, **kwargs: Any) -> None:
        if step_run is None:
            raise PipelineValidationError("AutoMLStepRun: pass the StepRun of an AutoMLStep")
        self._step_run = step_run

    def __getattr__(self, name: str) -> Any:  # everything a StepRun has
        return getattr(self._step_run, name)

    @property
    def step_run(self) -> Any:
        return self._step_run

    def _details(self) -> dict[str, Any]:
        row = self._step_run._refresh_row() or {}
        return (row.get("details") or {}).get("automl") or {}

    def _output_of(self, kind: str) -> Any:
        outputs = self._step_run.get_outputs()
        prefix = AutoMLStep.DEFAULT_METRIC_PREFIX if kind == "Metrics" else AutoMLStep.DEFAULT_MODEL_PREFIX
        for name, out in outputs.items():
            if name.startswith(prefix):
                return out
        for name in self._details().get("outputs", {}).get(kind, []):
            if name in outputs:
                return outputs[name]
        return None

    def get_default_metrics_output(self) -> Any:
        """``StepRunOutput`` of ``default_metrics_<step>`` (None when the step disabled it)."""
        out = self._step_run.get_outputs()
        return next((o for n, o in out.items() if n.startswith(AutoMLStep.DEFAULT_METRIC_PREFIX)), None)

    def get_default_model_output(self) -> Any:
        out = self._step_run.get_outputs()
        return next((o for n, o in out.items() if n.startswith(AutoMLStep.DEFAULT_MODEL_PREFIX)), None)

    # convenience beyond v1: the best model and the iteration metrics without downloading by hand
    @property
    def best_model_name(self) -> str | None:
        return self._details().get("best_model")

    @property
    def best_score(self) -> float | None:
        return self._details().get("best_score")

    @property
    def primary_metric(self) -> str | None:
        return self._details().get("primary_metric")

    def get_best_model(self) -> Any:
        """The best model, unpickled (``predict``/``predict_proba`` on the training columns)."""
        out = self._output_of("Model")
        if out is None:
            raise PipelineValidationError(f"AutoML step {self._step_run.name!r} has no model output")
        return pickle.loads(_read_output_file(out.get_port_data_reference(), MODEL_FILE))

    def get_output(self) -> tuple[Any, Any]:
        """v1 ``AutoMLRun.get_output()`` shape: ``(best run, fitted model)``; the best run is this step run."""
        return self._step_run, self.get_best_model()

    def get_iteration_metrics(self) -> Any:
        """The metrics output as a pandas DataFrame: one row per model tried."""
        import pandas as pd

        out = self._output_of("Metrics")
        if out is None:
            raise PipelineValidationError(f"AutoML step {self._step_run.name!r} has no metrics output")
        return pd.DataFrame(json.loads(_read_output_file(out.get_port_data_reference(), METRICS_FILE)))

    def __repr__(self) -> str:
        return f"AutoMLStepRun({self._step_run!r})"
