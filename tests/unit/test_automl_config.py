"""AutoMLConfig / AutoMLStep validation at definition time, the v1 → FLAML mapping, and the v1 metrics."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_mlpipe import (
    AutoMLConfig,
    AutoMLStep,
    ForecastingParameters,
    PipelineData,
    PipelineValidationError,
    TrainingOutput,
)
from airflow_mlpipe.sdk.automl import ConfigException


def _tabular():
    return PipelineData("prepped").as_dataset().parse_parquet_files()


def _config(**kw):
    kw.setdefault("task", "classification")
    kw.setdefault("training_data", _tabular())
    kw.setdefault("label_column_name", "Survived")
    return AutoMLConfig(**kw)


def test_seed_config_is_accepted_and_serialisable():
    import json

    cfg = _config(path=".", debug_log="automated_ml_errors.log", compute_target="cpu-cluster",
                  featurization="auto", iteration_timeout_minutes=10, iterations=2, experiment_timeout_hours=0.25,
                  primary_metric="AUC_weighted")
    s = cfg.settings()
    assert s["experiment_timeout_minutes"] == 15 and s["iterations"] == 2 and s["learners"] is None
    json.dumps(s)


@pytest.mark.parametrize("task,metric", [("classification", "r2_score"), ("regression", "AUC_weighted"),
                                         ("classification", "auc"), ("forecasting", "spearman_correlation")])
def test_unknown_metric_for_task(task, metric):
    extra = {"forecasting_parameters": ForecastingParameters(time_column_name="t")} if task == "forecasting" else {}
    with pytest.raises(ConfigException, match=f"primary_metric {metric!r} is not valid for task {task!r}"):
        _config(task=task, primary_metric=metric, **extra)


def test_default_metrics():
    assert _config().primary_metric == "accuracy"
    assert _config(task="regression").primary_metric == "normalized_root_mean_squared_error"


@pytest.mark.parametrize("kw,match", [
    ({"label_column_name": None}, "label_column_name is required"),
    ({"training_data": None}, "training_data is required"),
    ({"training_data": PipelineData("x").as_dataset()}, "parse_parquet_files"),
    ({"task": "clasification"}, "task must be one of"),
    ({"task": "image-classification"}, "not supported"),
    ({"iterations": 0}, "iterations must be a positive integer"),
    ({"iterations": 2.5}, "iterations must be a positive integer"),
    ({"experiment_timeout_hours": -1}, "experiment_timeout_hours must be a positive number"),
    ({"experiment_timeout_hours": 1, "experiment_timeout_minutes": 5}, "not both"),
    ({"n_cross_validations": 1}, "n_cross_validations must be an integer >= 2"),
    ({"validation_size": 1.5}, r"validation_size must be a number in \(0, 1\)"),
    ({"validation_size": 0.2, "n_cross_validations": 5}, "not both"),
    ({"featurization": "custom"}, "featurization must be"),
    ({"allowed_models": ["NotAModel"]}, "not a classification model"),
    ({"allowed_models": ["TensorFlowDNN"]}, "no counterpart"),
    ({"allowed_models": ["LightGBM"], "blocked_models": ["LightGBM"]}, "leaves no model"),
    ({"X": [[1]], "y": [1]}, "deprecated"),
    ({"bogus": 1}, "unexpected argument"),
    ({"enable_dnn": True}, "not supported"),
])
def test_invalid_settings(kw, match):
    with pytest.raises(ConfigException, match=match):
        _config(**kw)


def test_model_names_map_to_flaml_learners():
    cfg = _config(allowed_models=["LightGBM", "XGBoostClassifier", "RandomForest", "ExtremeRandomTrees",
                                  "LogisticRegression", "KNN"])
    assert cfg.learners == ["lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "lrl2", "lrl1", "kneighbor"]
    blocked = _config(blocked_models=["XGBoostClassifier", "DecisionTree"])
    assert blocked.learners == ["lgbm", "rf", "extra_tree", "sgd", "lrl1"]
    assert _config(whitelist_models=["LightGBM"]).learners == ["lgbm"]
    assert _config(task="regression", allowed_models=["ElasticNet", "LassoLars"]).learners == ["enet", "lassolars"]


def test_forecasting_needs_time_column_and_horizon():
    with pytest.raises(ConfigException, match="time_column_name"):
        _config(task="forecasting", label_column_name="y")
    cfg = _config(task="forecasting", label_column_name="y", time_column_name="date", max_horizon=7)
    assert cfg.forecasting_parameters.forecast_horizon == 7
    with pytest.raises(ConfigException, match="forecast_horizon"):
        ForecastingParameters(time_column_name="date", forecast_horizon=0)
    with pytest.raises(ConfigException, match="requires freq"):
        ForecastingParameters(time_column_name="date", target_aggregation_function="sum")


def test_missing_label_column_of_a_dataset_is_caught_when_written(workspace, test_data):
    from airflow_mlpipe import Dataset

    ds = Dataset.Tabular.from_delimited_files(str(test_data / "titanic.csv"))
    with pytest.raises(ConfigException, match="label_column_name 'Survive' is not a column"):
        AutoMLConfig(task="classification", training_data=ds, label_column_name="Survive")
    assert AutoMLConfig(task="classification", training_data=ds, label_column_name="Survived")


def test_step_outputs_and_defaults():
    metrics = PipelineData("metrics_data", training_output=TrainingOutput("Metrics"))
    model = PipelineData("model_data", training_output=TrainingOutput(type="Model"))
    step = AutoMLStep("AutoML Classification", _config(), outputs=[metrics, model])
    names = [o.output_name for o in step.outputs]
    assert names == ["metrics_data", "model_data", "default_metrics_AutoML_Classification",
                     "default_model_AutoML_Classification"]
    assert step.get_default_model_output().pipeline_output_name == "_default_model_AutoML_Classification"
    assert [i.input_name for i in step.inputs] == ["training_data"]
    quiet = AutoMLStep("s", _config(), outputs=[], enable_default_model_output=False,
                       enable_default_metrics_output=False)
    assert quiet.outputs == []
    with pytest.raises(PipelineValidationError, match="needs training_output"):
        AutoMLStep("s2", _config(), outputs=[PipelineData("plain")])
    with pytest.raises(PipelineValidationError, match="not supported"):
        AutoMLStep("s3", _config(), outputs=[PipelineData("m", training_output=TrainingOutput("Model", iteration=3))])
    with pytest.raises(PipelineValidationError, match="expected an AutoMLConfig"):
        AutoMLStep("s4", {"task": "classification"})


def test_flaml_settings_mapping():
    from airflow_mlpipe.runtime.automl_engine import flaml_settings

    s = _config(iterations=7, experiment_timeout_minutes=2, n_cross_validations=5, iteration_timeout_minutes=1,
                allowed_models=["LightGBM"], max_cores_per_iteration=-1).settings()
    f = flaml_settings(s, n_rows=500, y_range=0, has_validation_data=False)
    assert (f["time_budget"], f["max_iter"], f["eval_method"], f["n_splits"], f["train_time_limit"]) == \
        (120, 7, "cv", 5, 60)
    assert f["estimator_list"] == ["lgbm"] and f["n_jobs"] == -1 and f["early_stop"] is True
    f = flaml_settings(_config(validation_size=0.2, featurization="off").settings(), 500, 0, False)
    assert (f["eval_method"], f["split_ratio"], f["skip_transform"]) == ("holdout", 0.2, True)
    assert flaml_settings(_config().settings(), 500, 0, False)["n_splits"] == 10  # v1: < 1,000 rows → 10 folds
    assert flaml_settings(_config().settings(), 50_000, 0, False)["eval_method"] == "holdout"


def test_v1_metric_definitions():
    from sklearn.metrics import roc_auc_score

    from airflow_mlpipe.runtime.automl_model import classification_metrics, regression_metrics

    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    m = classification_metrics(y, np.stack([1 - p1, p1], axis=1), [0, 1])
    assert m["AUC_weighted"] == pytest.approx(roc_auc_score(y, p1))
    assert m["accuracy"] == pytest.approx(0.6)
    # macro recall 0.5*(1/2) + 0.5*(2/3) = 7/12; normalised with R = 1/2
    assert m["norm_macro_recall"] == pytest.approx((7 / 12 - 0.5) / 0.5)
    r = regression_metrics([0, 5, 10], [1, 5, 9], y_range=10)
    assert r["normalized_root_mean_squared_error"] == pytest.approx(np.sqrt(2 / 3) / 10)
    assert r["normalized_mean_absolute_error"] == pytest.approx((2 / 3) / 10)
    assert r["spearman_correlation"] == pytest.approx(1.0)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classification_metrics_match_sklearn(n_classes):
    from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score
    from sklearn.preprocessing import label_binarize

    from airflow_mlpipe.runtime.automl_model import classification_metrics

    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 300)
    proba = rng.random((300, n_classes)).round(2)  # rounded: ties
    proba /= proba.sum(axis=1, keepdims=True)
    m = classification_metrics(y, proba, list(range(n_classes)))
    onehot = label_binarize(y, classes=list(range(n_classes))) if n_classes > 2 else np.stack([1 - y, y], axis=1)
    pred = proba.argmax(axis=1)
    assert m["AUC_weighted"] == pytest.approx(roc_auc_score(onehot, proba, average="weighted"))
    assert m["average_precision_score_weighted"] == pytest.approx(
        average_precision_score(onehot, proba, average="weighted"))
    assert m["precision_score_weighted"] == pytest.approx(precision_score(y, pred, average="weighted"))
    r = 1 / n_classes
    assert m["norm_macro_recall"] == pytest.approx(max(0, (recall_score(y, pred, average="macro") - r) / (1 - r)))
