"""AutoMLStep (v1 ``azureml.pipeline.steps.AutoMLStep``) and AutoMLStepRun.

The step has no script: its operator runs the AutoML engine (FLAML) in a subprocess of the worker on the
tabular inputs named in the AutoMLConfig, and writes the metrics (JSON: one record per model tried) and the best
model (a pickle) to the outputs marked with ``TrainingOutput('Metrics' | 'Model')``. As in v1, each of those
outputs IS a file (not a folder): ``open(port._path_on_datastore)`` after ``port.download('.')`` reads it, and a
step given the output as an argument gets the file's path.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError, UserErrorException
from airflow_mlpipe.sdk.automl import AutoMLConfig, _data_kind
from airflow_mlpipe.sdk.compute import check_named_target, compute_spec
from airflow_mlpipe.sdk.no_effect import warn_no_effect
from airflow_mlpipe.sdk.pipeline_data import PipelineData, TrainingOutput
from airflow_mlpipe.sdk.run import Run
from airflow_mlpipe.sdk.steps.base import PipelineStep

#: file names inside the outputs committed before the outputs were the files themselves (still read)
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.pkl"
#: in the step spec (and so in its cache key): outputs committed as folders are not reused for file outputs
OUTPUT_LAYOUT = "file"


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
            warn_no_effect("AutoMLStep", "hash_paths", "an AutoMLStep has no source folder; its reuse key covers "
                                                       "the AutoMLConfig and the input data")
        if script_repl_params:
            warn_no_effect("AutoMLStep", "script_repl_params", "there is no data_script to substitute them into; "
                                                               "the inputs come from the AutoMLConfig data")
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
        self.compute = compute_spec(name, automl_config.compute_target, automl_config.run_configuration,
                                    step_kind=self.kind)

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
        check_named_target(self.name, self.kind, self.compute, getattr(pipeline, "_workspace", None))
        return {
            "automl": self.automl_config.settings(),
            "compute": dict(self.compute),
            "runconfig": rc.to_spec() if hasattr(rc, "to_spec") else None,
            "source_directory": None,
            "hash_paths": [],
            "output_layout": OUTPUT_LAYOUT,
        }


# ---------------------------------------------------------------------------------------------- run side
def _read_output_file(port: Any, legacy_name: str) -> bytes:
    """The bytes of an AutoML output: the output IS the file (v1); an output committed before that layout is
    a folder holding ``legacy_name``."""
    store = port.datastore
    path = store.full_path(port.path_on_datastore)
    if not store.fs.isfile(path):
        path = f"{path.rstrip('/')}/{legacy_name}"
    with store.fs.open(path, "rb") as fh:
        return fh.read()


#: the name of the best child's model in v1 (``best_run.download_file("outputs/model.pkl")``)
CHILD_MODEL_FILE = "outputs/model.pkl"


class AutoMLChildRun(Run):
    """One model tried by an AutoML step (v1: a child run ``<parent id>_<iteration>``), from the metrics output.

    Only the best iteration has a model file (``outputs/model.pkl``, served from the step's model output): the
    engine keeps the best model only.
    """

    RUN_TYPE = "azureml.AutoMLChildRun"

    def __init__(self, parent: AutoMLRun, record: dict[str, Any], is_best: bool) -> None:
        step_run = parent.step_run
        super().__init__(step_run.experiment, f"{step_run.id}_{record.get('iteration')}",
                         status="Completed", pipeline_run_id=step_run.pipeline_run_id)
        self._parent = parent
        self._record = dict(record)
        self._is_best = is_best

    @property
    def parent(self) -> AutoMLRun:
        return self._parent

    @property
    def iteration(self) -> Any:
        return self._record.get("iteration")

    def _store_row(self) -> tuple[str | None, dict[str, Any] | None]:
        return None, None  # not a row of our store: everything comes from the AutoML step's outputs

    @property
    def properties(self) -> dict[str, Any]:
        primary = self._parent.primary_metric
        score = self._record.get(primary) if primary else None
        return {"run_algorithm": self._record.get("model"), "iteration": str(self.iteration),
                "primary_metric": primary, "score": None if score is None else str(score),
                "run_template": "automl_child", **self._properties}

    def get_metrics(self, name: str | None = None, recursive: bool = False, run_type: str | None = None,
                    populate: bool = False) -> dict[str, Any]:
        from airflow_mlpipe.sdk.automl import PRIMARY_METRICS

        known = {m for ms in PRIMARY_METRICS.values() for m in ms}
        metrics = {k: v for k, v in self._record.items() if k in known and v is not None}
        if self._is_best:
            metrics = {**(self._parent._details().get("best_metrics") or {}), **metrics}
        if name is not None:
            metrics = {k: v for k, v in metrics.items() if k == name}
        return {self.id: metrics} if recursive else metrics

    def get_file_names(self) -> list[str]:
        return [CHILD_MODEL_FILE] if self._is_best and self._parent._output_of("Model") is not None else []

    def _file(self, name: str) -> bytes:
        if name not in self.get_file_names():
            raise UserErrorException(f"AutoML child run {self.id}: no file {name!r}; files: "
                                     f"{self.get_file_names()} (only the best model is kept)")
        return self._parent._model_bytes()

    def download_file(self, name: str, output_file_path: str | os.PathLike | None = None,
                      _validate_checksum: bool = False) -> str:
        data = self._file(name)
        dest = Path(output_file_path) if output_file_path else Path.cwd() / Path(name).name
        if dest.is_dir():
            dest = dest / Path(name).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return str(dest)

    def download_files(self, prefix: str | None = None, output_directory: str | os.PathLike | None = None,
                       **_: Any) -> list[str]:
        out = Path(output_directory or ".")
        return [self.download_file(n, out / n) for n in self.get_file_names() if prefix is None or n.startswith(prefix)]

    def register_model(self, model_name: str, model_path: str | None = None, **kwargs: Any) -> Any:
        """v1 ``best_run.register_model(model_name, model_path="outputs/model.pkl")``: registers that file."""
        from airflow_mlpipe.sdk.model import Model

        with tempfile.TemporaryDirectory(prefix="mlpipe-automl-") as tmp:
            local = self.download_file(model_path or CHILD_MODEL_FILE, Path(tmp) / Path(model_path or
                                                                                      CHILD_MODEL_FILE).name)
            return Model.register(self._get_workspace(), model_path=local, model_name=model_name, **kwargs)

    def get_details(self) -> dict[str, Any]:
        return {"runId": self.id, "target": "local", "status": self.status, "properties": self.properties,
                "parentRunId": self._parent.id}

    def __repr__(self) -> str:
        return f"Run(Experiment: {self.experiment.name},\nId: {self.id},\nType: {self.type},\nStatus: {self.status})"


class AutoMLRun:
    """v1 ``AutoMLRun(experiment, run_id)``: a finished AutoML step run, its models tried (children) and the best.

    Everything a StepRun has is available too (``get_metrics``, ``get_outputs``, …)."""

    def __init__(self, experiment: Any, run_id: str, **kwargs: Any) -> None:
        from airflow_mlpipe.sdk.runs import StepRun, get_run

        run = get_run(experiment.workspace, run_id)
        if not isinstance(run, StepRun):
            raise UserErrorException(f"AutoMLRun: run {run_id!r} is a pipeline run, not the step run of an "
                                     "AutoMLStep; use run.find_step_run('<step name>')[0].id")
        self._step_run = run

    def __getattr__(self, name: str) -> Any:  # everything a StepRun has
        if name.startswith("__") or name == "_step_run":
            raise AttributeError(name)
        return getattr(self._step_run, name)

    @property
    def step_run(self) -> Any:
        return self._step_run

    @property
    def id(self) -> str:
        return self._step_run.id

    def _details(self) -> dict[str, Any]:
        row = self._step_run._refresh_row() or {}
        return (row.get("details") or {}).get("automl") or {}

    def _finished_details(self) -> dict[str, Any]:
        details = self._details()
        if not details:
            raise UserErrorException(f"Step run {self._step_run.id} ({self._step_run.name!r}) has no AutoML "
                                     f"result: it is not an AutoMLStep, or it has not finished (status "
                                     f"{self._step_run.get_status()})")
        return details

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

    def _model_bytes(self) -> bytes:
        out = self._output_of("Model")
        if out is None:
            raise PipelineValidationError(f"AutoML step {self._step_run.name!r} has no model output")
        return _read_output_file(out.get_port_data_reference(), MODEL_FILE)

    def _records(self) -> list[dict[str, Any]]:
        out = self._output_of("Metrics")
        if out is None:
            raise PipelineValidationError(f"AutoML step {self._step_run.name!r} has no metrics output")
        return json.loads(_read_output_file(out.get_port_data_reference(), METRICS_FILE))

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
        return pickle.loads(self._model_bytes())

    def get_iteration_metrics(self) -> Any:
        """The metrics output as a pandas DataFrame: one row per model tried."""
        import pandas as pd

        return pd.DataFrame(self._records())

    # v1 AutoMLRun
    def get_children(self, recursive: bool = False, **kwargs: Any) -> list[AutoMLChildRun]:
        """One child run per model tried, in iteration order."""
        best = self._finished_details().get("best_iteration")
        return [AutoMLChildRun(self, r, r.get("iteration") == best) for r in self._records()]

    def get_best_child(self, metric: str | None = None, onnx_compatible: bool = False,
                       **kwargs: Any) -> AutoMLChildRun:
        """The child run of the best model by the primary metric (the only one whose model is kept)."""
        details = self._finished_details()
        if onnx_compatible:
            raise UserErrorException("AutoMLRun.get_best_child: onnx_compatible models are not produced here")
        if metric is not None and metric != details.get("primary_metric"):
            raise UserErrorException(f"AutoMLRun.get_best_child: only the best model by the primary metric "
                                     f"{details.get('primary_metric')!r} is kept, not by {metric!r}")
        children = self.get_children()
        best = next((c for c in children if c._is_best), None)
        if best is None:  # the best iteration is not in the log: a child made of the step's best metrics
            record = {"iteration": details.get("best_iteration"), "model": details.get("best_model"),
                      **(details.get("best_metrics") or {})}
            best = AutoMLChildRun(self, record, True)
        return best

    def get_output(self, iteration: int | None = None, metric: str | None = None,
                   return_onnx_model: bool = False, return_split_onnx_model: Any = None,
                   **kwargs: Any) -> tuple[AutoMLChildRun, Any]:
        """v1 ``(best run, fitted model)``; the fitted model of another iteration is not kept."""
        best = self.get_best_child(metric=metric, onnx_compatible=return_onnx_model)
        if iteration is not None and iteration != best.iteration:
            raise UserErrorException(f"AutoMLRun.get_output: only the best model (iteration {best.iteration}) "
                                     f"is kept, not iteration {iteration}")
        return best, self.get_best_model()

    def __repr__(self) -> str:
        return f"AutoMLRun({self._step_run!r})"


class AutoMLStepRun(AutoMLRun):
    """v1 ``AutoMLStepRun(step_run)``: the StepRun of an AutoMLStep as an ``AutoMLRun``, plus its default
    outputs."""

    def __init__(self, step_run: Any = None, **kwargs: Any) -> None:
        if step_run is None:
            raise PipelineValidationError("AutoMLStepRun: pass the StepRun of an AutoMLStep")
        self._step_run = step_run

    def get_default_metrics_output(self) -> Any:
        """``StepRunOutput`` of ``default_metrics_<step>`` (None when the step disabled it)."""
        out = self._step_run.get_outputs()
        return next((o for n, o in out.items() if n.startswith(AutoMLStep.DEFAULT_METRIC_PREFIX)), None)

    def get_default_model_output(self) -> Any:
        out = self._step_run.get_outputs()
        return next((o for n, o in out.items() if n.startswith(AutoMLStep.DEFAULT_MODEL_PREFIX)), None)

    def __repr__(self) -> str:
        return f"AutoMLStepRun({self._step_run!r})"
