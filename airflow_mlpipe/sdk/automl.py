"""AutoMLConfig and ForecastingParameters (v1 ``azureml.train.automl`` / ``azureml.automl.core``).

The v1 arguments are validated when the config is written (unknown metric for the task, missing label column,
model names without a counterpart, …) and kept as a JSON-able settings dict that goes into the PipelineSpec.
The engine is FLAML (``airflow_mlpipe.runtime.automl_engine``); how each setting maps onto it is in
:func:`airflow_mlpipe.runtime.automl_engine.flaml_settings`.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

from airflow_mlpipe.contract.automl_data import DATA_ARGUMENTS
from airflow_mlpipe.contract.exceptions import UserErrorException

TASKS = ("classification", "regression", "forecasting")
UNSUPPORTED_TASKS = ("image-classification", "image-classification-multilabel", "image-object-detection",
                     "image-instance-segmentation", "text-classification", "text-classification-multilabel",
                     "text-ner")

#: v1 ``get_primary_metrics(task)``
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "AUC_weighted", "norm_macro_recall", "average_precision_score_weighted",
                       "precision_score_weighted"),
    "regression": ("spearman_correlation", "normalized_root_mean_squared_error", "r2_score",
                   "normalized_mean_absolute_error"),
    "forecasting": ("normalized_root_mean_squared_error", "r2_score", "normalized_mean_absolute_error"),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "normalized_root_mean_squared_error",
                  "forecasting": "normalized_root_mean_squared_error"}
#: metrics where smaller is better
LOWER_IS_BETTER = {"normalized_root_mean_squared_error", "normalized_mean_absolute_error"}

#: v1 model name → FLAML learners, per task; ``None`` = no FLAML counterpart
_CLASSIFICATION_MODELS: dict[str, tuple[str, ...] | None] = {
    "LogisticRegression": ("lrl2", "lrl1"), "SGD": ("sgd",), "MultinomialNaiveBayes": None,
    "BernoulliNaiveBayes": None, "SVM": None, "LinearSVM": ("svc",), "KNN": ("kneighbor",), "DecisionTree": None,
    "RandomForest": ("rf",), "ExtremeRandomTrees": ("extra_tree",), "LightGBM": ("lgbm",),
    "GradientBoosting": ("histgb",), "TensorFlowDNN": None, "TensorFlowLinearClassifier": None,
    "XGBoostClassifier": ("xgboost", "xgb_limitdepth"), "AveragedPerceptronClassifier": None,
    "TabnetClassifier": None,
}
_REGRESSION_MODELS: dict[str, tuple[str, ...] | None] = {
    "ElasticNet": ("enet",), "GradientBoosting": ("histgb",), "DecisionTree": None, "KNN": ("kneighbor",),
    "LassoLars": ("lassolars",), "SGD": ("sgd",), "RandomForest": ("rf",), "ExtremeRandomTrees": ("extra_tree",),
    "LightGBM": ("lgbm",), "TensorFlowLinearRegressor": None, "TensorFlowDNN": None,
    "XGBoostRegressor": ("xgboost", "xgb_limitdepth"), "FastLinearRegressor": None,
    "OnlineGradientDescentRegressor": None, "TabnetRegressor": None,
}
_FORECASTING_MODELS: dict[str, tuple[str, ...] | None] = {
    "RandomForest": ("rf",), "ExtremeRandomTrees": ("extra_tree",), "LightGBM": ("lgbm",),
    "XGBoostRegressor": ("xgboost", "xgb_limitdepth"), "ElasticNet": None, "GradientBoosting": None,
    "DecisionTree": None, "KNN": None, "LassoLars": None, "SGD": None, "TensorFlowLinearRegressor": None,
    "TensorFlowDNN": None, "FastLinearRegressor": None, "OnlineGradientDescentRegressor": None,
    "TabnetRegressor": None, "Arimax": None, "AutoArima": None, "Average": None, "ExponentialSmoothing": None,
    "Naive": None, "Prophet": None, "SeasonalAverage": None, "SeasonalNaive": None, "TCNForecaster": None,
}
SUPPORTED_MODELS = {"classification": _CLASSIFICATION_MODELS, "regression": _REGRESSION_MODELS,
                    "forecasting": _FORECASTING_MODELS}
#: FLAML's own default learner list per task (what runs when no allowed/blocked models are given)
DEFAULT_LEARNERS = {
    "classification": ("lgbm", "rf", "xgboost", "extra_tree", "xgb_limitdepth", "sgd", "lrl1"),
    "regression": ("lgbm", "rf", "xgboost", "extra_tree", "xgb_limitdepth", "sgd"),
    "forecasting": ("lgbm", "rf", "xgboost", "extra_tree", "xgb_limitdepth"),
}

_DEPRECATED_DATA = ("X", "y", "sample_weight", "X_valid", "y_valid", "sample_weight_valid", "cv_splits_indices")
#: accepted for compatibility, recorded, and without effect here
_ACCEPTED_NO_EFFECT = ("spark_context", "mem_in_mb", "enforce_time_on_windows", "verbosity", "enable_tf",
                       "model_explainability", "enable_onnx_compatible_models", "enable_voting_ensemble",
                       "enable_stack_ensemble", "enable_local_managed", "enable_dnn", "exclude_nan_labels",
                       "num_classes")
_FORECASTING_KWARGS = {"time_column_name": "time_column_name", "max_horizon": "forecast_horizon",
                       "forecast_horizon": "forecast_horizon", "grain_column_names": "time_series_id_column_names",
                       "time_series_id_column_names": "time_series_id_column_names", "target_lags": "target_lags",
                       "feature_lags": "feature_lags", "target_rolling_window_size": "target_rolling_window_size",
                       "country_or_region": "country_or_region_for_holidays", "use_stl": "use_stl",
                       "seasonality": "seasonality",
                       "short_series_handling_configuration": "short_series_handling_configuration",
                       "freq": "freq", "target_aggregation_function": "target_aggregation_function"}


class ConfigException(UserErrorException):
    """v1 ``azureml.automl.core.shared.exceptions.ConfigException``: an invalid AutoML setting."""


class ForecastingParameters:
    """v1 ``ForecastingParameters``: the forecasting settings of an AutoMLConfig."""

    def __init__(self, time_column_name: str | None = None, forecast_horizon: int | str = 1,
                 time_series_id_column_names: str | list[str] | None = None,
                 group_column_names: str | list[str] | None = None, target_lags: Any = None,
                 feature_lags: str | None = None, target_rolling_window_size: Any = None,
                 holiday_country: str | None = None, seasonality: Any = "auto",
                 country_or_region_for_holidays: str | None = None, use_stl: str | None = None,
                 short_series_handling: bool = True, short_series_handling_configuration: str | None = "auto",
                 freq: str | None = None, target_aggregation_function: str | None = None,
                 cv_step_size: Any = "auto", features_unknown_at_forecast_time: Any = None,
                 validate_parameters: bool = True, **kwargs: Any) -> None:
        self.time_column_name = time_column_name
        self.forecast_horizon = forecast_horizon
        self.time_series_id_column_names = _as_list(time_series_id_column_names)
        self.group_column_names = _as_list(group_column_names)
        self.target_lags = target_lags
        self.feature_lags = feature_lags
        self.target_rolling_window_size = target_rolling_window_size
        self.seasonality = seasonality
        self.country_or_region_for_holidays = country_or_region_for_holidays or holiday_country
        self.use_stl = use_stl
        self.short_series_handling_configuration = short_series_handling_configuration
        self.freq = freq
        self.target_aggregation_function = target_aggregation_function
        self.cv_step_size = cv_step_size
        self.features_unknown_at_forecast_time = _as_list(features_unknown_at_forecast_time)
        if validate_parameters:
            self.validate_parameters()

    def validate_parameters(self) -> None:
        if self.time_column_name is not None and not isinstance(self.time_column_name, str):
            raise ConfigException(f"ForecastingParameters: time_column_name must be a column name, got "
                                  f"{self.time_column_name!r}")
        fh = self.forecast_horizon
        if fh != "auto" and (not isinstance(fh, int) or isinstance(fh, bool) or fh < 1):
            raise ConfigException(f"ForecastingParameters: forecast_horizon must be an integer >= 1 (or 'auto'), "
                                  f"got {fh!r}")
        agg = self.target_aggregation_function
        if agg is not None:
            if agg not in ("sum", "max", "min", "mean"):
                raise ConfigException("ForecastingParameters: target_aggregation_function must be one of sum, max, "
                                      f"min, mean; got {agg!r}")
            if not self.freq:
                raise ConfigException("ForecastingParameters: target_aggregation_function requires freq")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _positive(name: str, value: Any, kind: type = float, allow_none: bool = True) -> Any:
    if value is None and allow_none:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        what = "a positive integer" if kind is int else "a positive number"
        raise ConfigException(f"AutoMLConfig: {name} must be {what}, got {value!r}")
    return kind(value)


def _data_kind(obj: Any) -> str:
    """'pipeline_tabular' | 'pipeline_file' | 'tabular' | 'file' | 'consumption' | 'other'."""
    from airflow_mlpipe.sdk.pipeline_data import (
        PipelineOutputFileDataset,
        PipelineOutputTabularDataset,
        _Output,
    )

    if isinstance(obj, PipelineOutputTabularDataset):
        return "pipeline_tabular"
    if isinstance(obj, PipelineOutputFileDataset | _Output):
        return "pipeline_file"
    name = type(obj).__name__
    if name == "TabularDataset":
        return "tabular"
    if name == "FileDataset":
        return "file"
    if name == "DatasetConsumptionConfig":
        return "consumption"
    return "other"


class AutoMLConfig:
    """v1 ``AutoMLConfig(task, ...)``; every v1 argument is accepted, the ones in the module docstring act."""

    def __init__(self, task: str, path: str | None = None, iterations: int | None = None,
                 primary_metric: str | None = None, positive_label: Any = None, compute_target: Any = None,
                 spark_context: Any = None, X: Any = None, y: Any = None, sample_weight: Any = None,
                 X_valid: Any = None, y_valid: Any = None, sample_weight_valid: Any = None,
                 cv_splits_indices: Any = None, validation_size: float | None = None,
                 n_cross_validations: int | str | None = None, y_min: float | None = None,
                 y_max: float | None = None, num_classes: int | None = None, featurization: Any = "auto",
                 max_cores_per_iteration: int = 1, max_concurrent_iterations: int = 1,
                 iteration_timeout_minutes: float | None = None, mem_in_mb: int | None = None,
                 enforce_time_on_windows: bool = False, experiment_timeout_hours: float | None = None,
                 experiment_exit_score: float | None = None, enable_early_stopping: bool = True,
                 blocked_models: list[str] | str | None = None, blacklist_models: list[str] | str | None = None,
                 exclude_nan_labels: bool = True, verbosity: int = logging.INFO, enable_tf: bool = False,
                 model_explainability: bool = True, allowed_models: list[str] | str | None = None,
                 whitelist_models: list[str] | str | None = None, enable_onnx_compatible_models: bool = False,
                 enable_voting_ensemble: bool = True, enable_stack_ensemble: bool | None = None,
                 debug_log: str = "automl.log", training_data: Any = None, validation_data: Any = None,
                 test_data: Any = None, test_size: float | None = None, label_column_name: str | None = None,
                 weight_column_name: str | None = None, cv_split_column_names: list[str] | None = None,
                 enable_local_managed: bool = False, enable_dnn: bool | None = None,
                 forecasting_parameters: ForecastingParameters | None = None, **kwargs: Any) -> None:
        self._check_task(task)
        self.task = task
        self.path = path or "."
        self.compute_target = compute_target
        self.run_configuration = kwargs.pop("run_configuration", None)
        experiment_timeout_minutes = kwargs.pop("experiment_timeout_minutes", None)
        forecasting_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _FORECASTING_KWARGS}
        if kwargs:
            raise ConfigException(f"AutoMLConfig: unexpected argument(s) {sorted(kwargs)}")
        for name, value in (("X", X), ("y", y), ("sample_weight", sample_weight), ("X_valid", X_valid),
                            ("y_valid", y_valid), ("sample_weight_valid", sample_weight_valid),
                            ("cv_splits_indices", cv_splits_indices)):
            if value is not None:
                raise ConfigException(f"AutoMLConfig: {name} is deprecated in v1 and not supported here; pass a "
                                      "TabularDataset (or PipelineData.as_dataset().parse_parquet_files()) as "
                                      "training_data with label_column_name")
        self.no_effect: dict[str, Any] = {}
        defaults = {"spark_context": None, "mem_in_mb": None, "enforce_time_on_windows": False,
                    "verbosity": logging.INFO, "enable_tf": False, "model_explainability": True,
                    "enable_onnx_compatible_models": False, "enable_voting_ensemble": True,
                    "enable_stack_ensemble": None, "enable_local_managed": False, "enable_dnn": None,
                    "exclude_nan_labels": True, "num_classes": None}
        given = {"spark_context": spark_context, "mem_in_mb": mem_in_mb,
                 "enforce_time_on_windows": enforce_time_on_windows, "verbosity": verbosity, "enable_tf": enable_tf,
                 "model_explainability": model_explainability,
                 "enable_onnx_compatible_models": enable_onnx_compatible_models,
                 "enable_voting_ensemble": enable_voting_ensemble, "enable_stack_ensemble": enable_stack_ensemble,
                 "enable_local_managed": enable_local_managed, "enable_dnn": enable_dnn,
                 "exclude_nan_labels": exclude_nan_labels, "num_classes": num_classes}
        for key in _ACCEPTED_NO_EFFECT:
            if given[key] != defaults[key]:
                self.no_effect[key] = repr(given[key])
                if key not in ("spark_context", "enable_tf", "enable_dnn"):  # these are rejected below
                    from airflow_mlpipe.sdk.no_effect import warn_no_effect

                    warn_no_effect("AutoMLConfig", key, "the AutoML engine (FLAML) does not use it; the value is "
                                                        "only recorded in the step's spec and task log")
        if enable_tf or enable_dnn:
            raise ConfigException("AutoMLConfig: enable_tf / enable_dnn (deep-learning models) are not supported "
                                  "by airflow-mlpipe's AutoML engine (FLAML)")
        if spark_context is not None:
            raise ConfigException("AutoMLConfig: spark_context is not supported; AutoML runs on the Airflow worker")

        # ------------------------------------------------------------- metric
        allowed_metrics = PRIMARY_METRICS[task]
        if primary_metric is None:
            primary_metric = DEFAULT_METRIC[task]
        if primary_metric not in allowed_metrics:
            hint = ""
            if primary_metric == "spearman_correlation" and task == "forecasting":
                hint = " (spearman_correlation is not offered for forecasting here)"
            raise ConfigException(f"AutoMLConfig: primary_metric {primary_metric!r} is not valid for task {task!r}"
                                  f"{hint}; use one of {list(allowed_metrics)}")
        self.primary_metric = primary_metric
        self.positive_label = positive_label

        # ------------------------------------------------------------- budgets
        self.iterations = _positive("iterations", iterations, int)
        self.iteration_timeout_minutes = _positive("iteration_timeout_minutes", iteration_timeout_minutes)
        if experiment_timeout_hours is not None and experiment_timeout_minutes is not None:
            raise ConfigException("AutoMLConfig: give experiment_timeout_hours or experiment_timeout_minutes, "
                                  "not both")
        hours = _positive("experiment_timeout_hours", experiment_timeout_hours)
        minutes = _positive("experiment_timeout_minutes", experiment_timeout_minutes)
        self.experiment_timeout_minutes = hours * 60 if hours is not None else minutes
        self.experiment_exit_score = experiment_exit_score
        if experiment_exit_score is not None and not isinstance(experiment_exit_score, int | float):
            raise ConfigException(f"AutoMLConfig: experiment_exit_score must be a number, got "
                                  f"{experiment_exit_score!r}")
        if not isinstance(enable_early_stopping, bool):
            raise ConfigException(f"AutoMLConfig: enable_early_stopping must be True or False, got "
                                  f"{enable_early_stopping!r}")
        self.enable_early_stopping = enable_early_stopping
        self.max_cores_per_iteration = int(max_cores_per_iteration) if max_cores_per_iteration == -1 else \
            _positive("max_cores_per_iteration", max_cores_per_iteration, int, allow_none=False)
        self.max_concurrent_iterations = _positive("max_concurrent_iterations", max_concurrent_iterations, int,
                                                   allow_none=False)
        if self.max_concurrent_iterations > 1:
            warnings.warn("AutoMLConfig: max_concurrent_iterations > 1 is accepted but iterations run one at a "
                          "time on the worker (FLAML's concurrent trials need Ray); use max_cores_per_iteration "
                          "to give each iteration more cores", UserWarning, stacklevel=2)

        # ------------------------------------------------------------- validation
        if n_cross_validations is not None:
            if n_cross_validations == "auto":
                n_cross_validations = None
            elif not isinstance(n_cross_validations, int) or isinstance(n_cross_validations, bool) \
                    or n_cross_validations < 2:
                raise ConfigException(f"AutoMLConfig: n_cross_validations must be an integer >= 2 (or 'auto'), "
                                      f"got {n_cross_validations!r}")
        self.n_cross_validations = n_cross_validations
        if validation_size is not None:
            if not isinstance(validation_size, int | float) or isinstance(validation_size, bool) \
                    or not 0 < validation_size < 1:
                raise ConfigException(f"AutoMLConfig: validation_size must be a number in (0, 1), got "
                                      f"{validation_size!r}")
        self.validation_size = validation_size
        if validation_data is not None and n_cross_validations is not None:
            raise ConfigException("AutoMLConfig: give validation_data or n_cross_validations, not both")
        if validation_data is not None and validation_size is not None:
            raise ConfigException("AutoMLConfig: give validation_data or validation_size, not both")
        if n_cross_validations is not None and validation_size is not None:
            raise ConfigException("AutoMLConfig: give n_cross_validations or validation_size, not both")
        if cv_split_column_names:
            raise ConfigException("AutoMLConfig: cv_split_column_names is not supported; use n_cross_validations, "
                                  "validation_size or validation_data")
        if test_size is not None and (not isinstance(test_size, int | float) or not 0 < test_size < 1):
            raise ConfigException(f"AutoMLConfig: test_size must be a number in (0, 1), got {test_size!r}")
        self.test_size = test_size
        self.y_min, self.y_max = y_min, y_max
        if y_min is not None and y_max is not None and not y_max > y_min:
            raise ConfigException(f"AutoMLConfig: y_max ({y_max}) must be greater than y_min ({y_min})")

        # ------------------------------------------------------------- featurization
        if featurization not in ("auto", "off"):
            if isinstance(featurization, str):
                raise ConfigException(f"AutoMLConfig: featurization must be 'auto', 'off' or a FeaturizationConfig, "
                                      f"got {featurization!r}")
            raise ConfigException("AutoMLConfig: a custom FeaturizationConfig is not supported; use "
                                  "featurization='auto' (missing values imputed, text columns encoded as "
                                  "categories, ID-like columns dropped) or 'off' (numeric features only)")
        self.featurization = featurization

        # ------------------------------------------------------------- models
        if allowed_models is not None and whitelist_models is not None:
            raise ConfigException("AutoMLConfig: give allowed_models or its deprecated alias whitelist_models, "
                                  "not both")
        if blocked_models is not None and blacklist_models is not None:
            raise ConfigException("AutoMLConfig: give blocked_models or its deprecated alias blacklist_models, "
                                  "not both")
        self.allowed_models = _as_list(allowed_models if allowed_models is not None else whitelist_models)
        self.blocked_models = _as_list(blocked_models if blocked_models is not None else blacklist_models)
        self.learners = self._learners()

        # ------------------------------------------------------------- data
        self.training_data = training_data
        self.validation_data = validation_data
        self.test_data = test_data
        if training_data is None:
            raise ConfigException("AutoMLConfig: training_data is required (a TabularDataset, or "
                                  "PipelineData(...).as_dataset().parse_parquet_files() from an earlier step)")
        for name in DATA_ARGUMENTS:
            self._check_data(name, getattr(self, name))
        if not isinstance(label_column_name, str) or not label_column_name:
            raise ConfigException("AutoMLConfig: label_column_name is required with training_data (the column to "
                                  f"predict), got {label_column_name!r}")
        self.label_column_name = label_column_name
        if weight_column_name is not None and (not isinstance(weight_column_name, str) or
                                               weight_column_name == label_column_name):
            raise ConfigException(f"AutoMLConfig: weight_column_name must be a column name other than the label, "
                                  f"got {weight_column_name!r}")
        self.weight_column_name = weight_column_name

        # ------------------------------------------------------------- forecasting
        if forecasting_parameters is not None and forecasting_kwargs:
            raise ConfigException(f"AutoMLConfig: give forecasting_parameters or the deprecated forecasting "
                                  f"arguments {sorted(forecasting_kwargs)}, not both")
        if forecasting_kwargs:
            forecasting_parameters = ForecastingParameters(
                **{_FORECASTING_KWARGS[k]: v for k, v in forecasting_kwargs.items()})
        if task == "forecasting":
            if forecasting_parameters is None or not forecasting_parameters.time_column_name:
                raise ConfigException("AutoMLConfig: task 'forecasting' needs time_column_name (in "
                                      "ForecastingParameters(time_column_name=..., forecast_horizon=...))")
            if forecasting_parameters.forecast_horizon == "auto":
                raise ConfigException("AutoMLConfig: forecast_horizon='auto' is not supported; give an integer")
            if forecasting_parameters.time_series_id_column_names:
                raise ConfigException("AutoMLConfig: time_series_id_column_names (several series) is not supported "
                                      "by the FLAML forecasting engine here; train one series per step")
            if forecasting_parameters.time_column_name == label_column_name:
                raise ConfigException("AutoMLConfig: time_column_name and label_column_name must differ")
        elif forecasting_parameters is not None:
            raise ConfigException(f"AutoMLConfig: forecasting parameters were given for task {task!r}")
        self.forecasting_parameters = forecasting_parameters
        if not isinstance(debug_log, str) or not debug_log:
            raise ConfigException(f"AutoMLConfig: debug_log must be a file name, got {debug_log!r}")
        self.debug_log = debug_log
        self._check_label_now()

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_task(task: Any) -> None:
        if task in UNSUPPORTED_TASKS:
            raise ConfigException(f"AutoMLConfig: task {task!r} (image/text deep learning) is not supported; "
                                  f"use one of {list(TASKS)}")
        if task not in TASKS:
            raise ConfigException(f"AutoMLConfig: task must be one of {list(TASKS)}, got {task!r}")

    def _check_models(self, names: list[str], argument: str) -> list[str]:
        table = SUPPORTED_MODELS[self.task]
        flaml: list[str] = []
        for name in names:
            if name not in table:
                raise ConfigException(f"AutoMLConfig: {argument} has {name!r}, which is not a {self.task} model; "
                                      f"known: {sorted(table)}")
            learners = table[name]
            if learners is None:
                if argument == "blocked_models":
                    continue  # blocking a model we never run is fine
                offered = sorted(k for k, v in table.items() if v)
                raise ConfigException(f"AutoMLConfig: {argument} has {name!r}, which has no counterpart in the "
                                      f"AutoML engine here (FLAML); models offered for {self.task}: {offered}")
            flaml.extend(x for x in learners if x not in flaml)
        return flaml

    def _learners(self) -> list[str] | None:
        """FLAML learner names, or None for FLAML's default list ("auto")."""
        allowed = self._check_models(self.allowed_models, "allowed_models") if self.allowed_models else None
        blocked = self._check_models(self.blocked_models, "blocked_models") if self.blocked_models else []
        if allowed is None and not blocked:
            return None
        base = allowed if allowed is not None else list(DEFAULT_LEARNERS[self.task])
        learners = [x for x in base if x not in blocked]
        if not learners:
            raise ConfigException(f"AutoMLConfig: allowed_models {self.allowed_models} minus blocked_models "
                                  f"{self.blocked_models} leaves no model to try")
        return learners

    def _check_data(self, argument: str, data: Any) -> None:
        if data is None:
            return
        kind = _data_kind(data)
        if kind == "pipeline_file":
            raise ConfigException(f"AutoMLConfig: {argument} is a file view of a step output; AutoML needs a "
                                  "tabular view: use PipelineData(...).as_dataset().parse_parquet_files() "
                                  "(or parse_delimited_files())")
        if kind == "file":
            raise ConfigException(f"AutoMLConfig: {argument} is a FileDataset; AutoML needs a TabularDataset")
        if kind == "consumption":
            inner = getattr(data, "dataset", None)
            if _data_kind(inner) not in ("tabular", "pipeline_tabular"):
                raise ConfigException(f"AutoMLConfig: {argument} must wrap a TabularDataset, got "
                                      f"{type(inner).__name__}")
            if getattr(data, "mode", "direct") != "direct":
                raise ConfigException(f"AutoMLConfig: {argument} must be consumed in 'direct' mode")
            return
        if kind == "other":
            raise ConfigException(f"AutoMLConfig: {argument} must be a TabularDataset or a tabular view of a step "
                                  f"output (parse_parquet_files()), got {type(data).__name__}")

    def _check_label_now(self) -> None:
        """For a dataset that exists already, check the label (and time/weight) columns when the config is
        written; a step output is checked when the step runs."""
        data = self.training_data
        if _data_kind(data) == "consumption":
            data = data.dataset
        if _data_kind(data) != "tabular":
            return
        try:
            columns = list(data.take(1).to_pandas_dataframe().columns)
        except Exception:  # unreadable now (remote, credentials): the step checks at run time
            return
        for what, col in (("label_column_name", self.label_column_name),
                          ("weight_column_name", self.weight_column_name),
                          ("time_column_name", getattr(self.forecasting_parameters, "time_column_name", None))):
            if col is not None and col not in columns:
                raise ConfigException(f"AutoMLConfig: {what} {col!r} is not a column of training_data; "
                                      f"columns: {columns}")

    # ------------------------------------------------------------------ spec
    def data_inputs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in DATA_ARGUMENTS if getattr(self, name) is not None}

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings that go into the PipelineSpec (data arguments become step inputs)."""
        fp = self.forecasting_parameters
        return {
            "task": self.task,
            "primary_metric": self.primary_metric,
            "positive_label": self.positive_label if isinstance(self.positive_label, str | int | float | bool | None)
            else str(self.positive_label),
            "iterations": self.iterations,
            "iteration_timeout_minutes": self.iteration_timeout_minutes,
            "experiment_timeout_minutes": self.experiment_timeout_minutes,
            "experiment_exit_score": self.experiment_exit_score,
            "enable_early_stopping": self.enable_early_stopping,
            "n_cross_validations": self.n_cross_validations,
            "validation_size": self.validation_size,
            "test_size": self.test_size,
            "featurization": self.featurization,
            "allowed_models": self.allowed_models,
            "blocked_models": self.blocked_models,
            "learners": self.learners,
            "max_concurrent_iterations": self.max_concurrent_iterations,
            "max_cores_per_iteration": self.max_cores_per_iteration,
            "label_column_name": self.label_column_name,
            "weight_column_name": self.weight_column_name,
            "y_min": self.y_min,
            "y_max": self.y_max,
            "forecasting": fp.to_dict() if fp is not None else None,
            "debug_log": self.debug_log,
            "path": self.path,
            "no_effect": dict(self.no_effect),
        }

    def get_supported_dataset_languages(self, use_gpu: bool = False) -> dict[str, str]:
        return {}

    def __repr__(self) -> str:
        return f"AutoMLConfig(task={self.task!r}, primary_metric={self.primary_metric!r})"
