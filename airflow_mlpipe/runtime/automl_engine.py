"""The AutoML engine of an AutoMLStep: FLAML, run in a subprocess of the worker.

``python -m airflow_mlpipe.runtime.automl_engine JOB.json`` reads the training data (the step's tabular inputs,
through ``Dataset.from_definition(...).to_pandas_dataframe()``), runs FLAML with the v1 settings mapped by
:func:`flaml_settings`, and writes the metrics (JSON) and the model (a pickle) as the staged output files, plus a
summary for the parent (``runtime/automl_runner.py``), which records metrics and commits the outputs.

How v1 settings map onto FLAML (honest, and where it is an approximation it says so):

======================================  ==================================================================
v1                                      FLAML
======================================  ==================================================================
experiment_timeout_hours / _minutes     ``time_budget`` (seconds); neither → v1's 6 days
iterations                              ``max_iter`` (v1 default 1000)
iteration_timeout_minutes               ``train_time_limit`` (seconds, per trial)
n_cross_validations                     ``eval_method="cv"``, ``n_splits``
validation_size                         ``eval_method="holdout"``, ``split_ratio``
validation_data                         ``X_val`` / ``y_val``
none of the three                       v1's rule: < 1,000 rows → 10-fold CV; < 20,000 → 3-fold; else 10 % holdout
primary_metric                          a custom FLAML metric computing the v1 definitions (all metrics of the
                                        task are logged per iteration); forecasting: FLAML's rmse / mae / r2,
                                        reported normalised by the label range
allowed_models / blocked_models         ``estimator_list`` (v1 names mapped in ``sdk/automl.py``)
enable_early_stopping                   ``early_stop`` (FLAML stops when its search has converged; v1 used a
                                        no-improvement window — same intent, different rule)
max_cores_per_iteration                 ``n_jobs``
max_concurrent_iterations               trials run one at a time (FLAML's concurrent trials need Ray)
featurization "auto"                    FLAML's transformer: numeric NaN → median, text/categorical → category
                                        (NaN → own level), constant and all-unique (ID-like) columns dropped,
                                        datetime → parts
featurization "off"                     ``skip_transform=True``; every feature must be numeric
weight_column_name                      ``sample_weight``
forecasting time_column_name /          ``task="ts_forecast"``, time column first, ``period=forecast_horizon``
forecast_horizon
experiment_exit_score, ensembles,       accepted, recorded, no effect (FLAML has no stop-at-score; the best
explainability                          single model is the output)
======================================  ==================================================================
"""

from __future__ import annotations

import json
import math
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from airflow_mlpipe.runtime.automl_model import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    AutoMLModel,
    classification_metrics,
    regression_metrics,
    to_loss,
)

SIX_DAYS_S = 6 * 24 * 3600
#: trials the step's leaderboard keeps at most (the metrics output has them all)
LEADERBOARD_ROWS = 1000
FLAML_TASK = {"classification": "classification", "regression": "regression", "forecasting": "ts_forecast"}
_FORECAST_METRIC = {"normalized_root_mean_squared_error": "rmse", "normalized_mean_absolute_error": "mae",
                    "r2_score": "r2"}


class AutoMLError(RuntimeError):
    """A user-facing failure of the AutoML run (bad data for the settings)."""


def default_validation(n_rows: int) -> dict[str, Any]:
    """v1's choice when no validation is configured."""
    if n_rows < 1000:
        return {"eval_method": "cv", "n_splits": 10}
    if n_rows < 20000:
        return {"eval_method": "cv", "n_splits": 3}
    return {"eval_method": "holdout", "split_ratio": 0.1}


def make_metric(task: str, primary: str, y_range: float):
    """A FLAML custom metric: the loss of the v1 ``primary`` metric, and every v1 metric of the task logged."""

    def metric(X_val, y_val, estimator, labels, X_train, y_train, weight_val=None, weight_train=None,
               config=None, groups_val=None, groups_train=None):
        start = time.perf_counter()
        if task == "classification":
            proba = estimator.predict_proba(X_val)
            values = classification_metrics(y_val, proba, labels)
        else:
            values = regression_metrics(y_val, estimator.predict(X_val), y_range)
        values["pred_time"] = (time.perf_counter() - start) / max(len(y_val), 1)
        return to_loss(primary, values[primary]), values

    return metric


def flaml_settings(settings: dict[str, Any], n_rows: int, y_range: float, has_validation_data: bool,
                   log_file: str | None = None) -> dict[str, Any]:
    """``AutoML.fit`` keyword arguments for the v1 ``settings`` (``AutoMLConfig.settings()``)."""
    task = settings["task"]
    primary = settings["primary_metric"]
    out: dict[str, Any] = {"task": FLAML_TASK[task], "verbose": 2, "n_concurrent_trials": 1}
    minutes = settings.get("experiment_timeout_minutes")
    out["time_budget"] = float(minutes) * 60 if minutes else SIX_DAYS_S
    out["max_iter"] = int(settings.get("iterations") or 1000)
    if settings.get("iteration_timeout_minutes"):
        out["train_time_limit"] = float(settings["iteration_timeout_minutes"]) * 60
    if settings.get("n_cross_validations"):
        out.update(eval_method="cv", n_splits=int(settings["n_cross_validations"]))
    elif settings.get("validation_size"):
        out.update(eval_method="holdout", split_ratio=float(settings["validation_size"]))
    elif has_validation_data:
        out.update(eval_method="holdout")
    else:
        out.update(default_validation(n_rows))
    if task == "forecasting":
        out["metric"] = _FORECAST_METRIC[primary]
        out["period"] = int((settings.get("forecasting") or {}).get("forecast_horizon") or 1)
    else:
        out["metric"] = make_metric(task, primary, y_range)
    out["estimator_list"] = list(settings["learners"]) if settings.get("learners") else "auto"
    out["early_stop"] = bool(settings.get("enable_early_stopping", True))
    cores = settings.get("max_cores_per_iteration") or 1
    out["n_jobs"] = -1 if cores == -1 else int(cores)
    if settings.get("featurization") == "off":
        out["skip_transform"] = True
    if log_file:
        out.update(log_file_name=log_file, log_type="all")
    return out


def _load(workspace: Any, definition: dict[str, Any]) -> Any:
    from airflow_mlpipe.data.dataset_definition import check_definition
    from airflow_mlpipe.data.readers import read_pandas

    return read_pandas(workspace, check_definition(definition))


def _split(df: Any, settings: dict[str, Any], argument: str) -> tuple[Any, Any, Any]:
    """Features, label and weights of a frame; the label column must be there."""
    label = settings["label_column_name"]
    if label not in df.columns:
        raise AutoMLError(f"label_column_name {label!r} is not a column of {argument}; columns: {list(df.columns)}")
    df = df[df[label].notna()]  # v1 exclude_nan_labels
    weight = settings.get("weight_column_name")
    w = None
    if weight:
        if weight not in df.columns:
            raise AutoMLError(f"weight_column_name {weight!r} is not a column of {argument}")
        w = df[weight].astype(float).to_numpy()
    X = df.drop(columns=[c for c in (label, weight) if c])
    fc = settings.get("forecasting") or {}
    time_col = fc.get("time_column_name")
    if time_col:
        if time_col not in X.columns:
            raise AutoMLError(f"time_column_name {time_col!r} is not a column of {argument}")
        import pandas as pd

        X = X.assign(**{time_col: pd.to_datetime(X[time_col])})
        X = X[[time_col] + [c for c in X.columns if c != time_col]]
        order = X[time_col].argsort(kind="stable").to_numpy()
        X, df = X.iloc[order], df.iloc[order]
        w = w[order] if w is not None else None
    if settings.get("featurization") == "off":
        bad = [c for c in X.columns if c != time_col and X[c].dtype.kind not in "biuf"]
        if bad:
            raise AutoMLError(f"featurization='off' needs numeric features; non-numeric column(s) {bad}: use "
                              "featurization='auto' or encode them in an earlier step")
    return X.reset_index(drop=True), df[label].reset_index(drop=True), w


def _records(log_file: Path, settings: dict[str, Any], y_range: float) -> list[dict[str, Any]]:
    """One record per model tried, from FLAML's trial log."""
    task, primary = settings["task"], settings["primary_metric"]
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    rows: list[dict[str, Any]] = []
    if not log_file.is_file():
        return rows
    for line in log_file.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "record_id" not in rec:
            continue
        logged = rec.get("logged_metric") or {}
        row: dict[str, Any] = {"iteration": rec["record_id"], "model": rec.get("learner")}
        if task == "forecasting":
            loss = float(rec.get("validation_loss", math.nan))
            flaml_metric = _FORECAST_METRIC[primary]
            row[primary] = 1 - loss if flaml_metric == "r2" else loss / (y_range or 1.0)
        else:
            for name in names:
                if name in logged:
                    row[name] = _clean(logged[name])
        row["training_time_s"] = _clean(rec.get("trial_time"))
        row["wall_clock_time_s"] = _clean(rec.get("wall_clock_time"))
        row["sample_size"] = rec.get("sample_size")
        row["config"] = json.dumps(rec.get("config"), sort_keys=True, default=str)
        rows.append(row)
    return rows


def leaderboard(records: list[dict[str, Any]], primary: str) -> dict[str, Any]:
    """The trials in order, compactly, for the step's details: iteration, model, primary-metric score and
    training seconds (the first :data:`LEADERBOARD_ROWS`)."""
    return {"primary_metric": primary, "lower_is_better": primary in LOWER_IS_BETTER,
            "rows": [{"iteration": r["iteration"], "model": r["model"], "score": _clean(r.get(primary)),
                      "seconds": r.get("training_time_s")} for r in records[:LEADERBOARD_ROWS]]}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def train(job: dict[str, Any], workspace: Any, log=print) -> dict[str, Any]:
    """Run FLAML for ``job``; writes the outputs and returns the summary."""
    import numpy as np

    settings = job["settings"]
    task, primary = settings["task"], settings["primary_metric"]
    t0 = time.perf_counter()
    train_df = _load(workspace, job["data"]["training_data"])
    X, y, w = _split(train_df, settings, "training_data")
    if len(X) < 2:
        raise AutoMLError(f"training_data has {len(X)} usable row(s); AutoML needs more")
    fit_kwargs: dict[str, Any] = {}
    if job["data"].get("validation_data"):
        X_val, y_val, w_val = _split(_load(workspace, job["data"]["validation_data"]), settings, "validation_data")
        fit_kwargs.update(X_val=X_val, y_val=y_val)
        if w_val is not None:
            fit_kwargs["sample_weight_val"] = w_val
    if w is not None:
        fit_kwargs["sample_weight"] = w
    test = None
    if job["data"].get("test_data"):
        test = _split(_load(workspace, job["data"]["test_data"]), settings, "test_data")
    elif settings.get("test_size") and task != "forecasting":
        rng = np.random.default_rng(0)
        mask = rng.random(len(X)) < float(settings["test_size"])
        test = (X[mask].reset_index(drop=True), y[mask].reset_index(drop=True), None)
        X, y = X[~mask].reset_index(drop=True), y[~mask].reset_index(drop=True)
        if w is not None:
            fit_kwargs["sample_weight"] = w[~mask]
    y_range = 0.0
    if task != "classification":
        lo = settings.get("y_min") if settings.get("y_min") is not None else float(y.min())
        hi = settings.get("y_max") if settings.get("y_max") is not None else float(y.max())
        y_range = float(hi - lo)
    elif y.nunique() < 2:
        raise AutoMLError(f"the label column {settings['label_column_name']!r} has a single class; "
                          "classification needs at least two")
    load_s = time.perf_counter() - t0

    t_import = time.perf_counter()
    from flaml import AutoML

    import_s = time.perf_counter() - t_import
    log_file = Path(job["workdir"]) / "flaml_trials.jsonl"
    kwargs = flaml_settings(settings, len(X), y_range, "X_val" in fit_kwargs, str(log_file))
    log(f"AutoML: task={task} primary_metric={primary} rows={len(X)} features={list(X.columns)}")
    log("AutoML: FLAML settings " + json.dumps({k: v for k, v in kwargs.items() if k != "metric"}, default=str))
    automl = AutoML()
    t1 = time.perf_counter()
    automl.fit(X_train=X, y_train=y, **kwargs, **fit_kwargs)
    fit_s = time.perf_counter() - t1
    if getattr(automl, "_trained_estimator", None) is None:
        raise AutoMLError("no model finished training within the time budget; raise experiment_timeout_minutes "
                          "or iteration_timeout_minutes")
    records = _records(log_file, settings, y_range)
    best_loss = float(automl.best_loss)
    if task == "forecasting":
        best_score = 1 - best_loss if _FORECAST_METRIC[primary] == "r2" else best_loss / (y_range or 1.0)
    else:
        best_score = best_loss if primary in ("normalized_root_mean_squared_error",
                                              "normalized_mean_absolute_error") else 1 - best_loss
    best_metrics: dict[str, Any] = {primary: best_score}
    best_id = getattr(automl, "_best_iteration", None)
    for row in records:
        if row["model"] == automl.best_estimator and math.isclose(row.get(primary) or math.nan, best_score,
                                                                  rel_tol=1e-9, abs_tol=1e-12):
            best_metrics = {k: v for k, v in row.items() if k in CLASSIFICATION_METRICS + REGRESSION_METRICS}
            best_id = row["iteration"]
            break
    classes = None
    if task == "classification":
        lt = automl._label_transformer
        classes = list(lt.classes_) if lt is not None else sorted(y.unique().tolist())
    fc = settings.get("forecasting") or {}
    model = AutoMLModel(
        task=task, flaml_task=automl._state.task, transformer=automl._transformer,
        estimator=automl._trained_estimator, label_transformer=automl._label_transformer,
        columns=list(X.columns), label_column_name=settings["label_column_name"], classes=classes,
        model_name=automl.best_estimator, config=automl.best_config or {}, primary_metric=primary,
        score=best_score, time_column_name=fc.get("time_column_name"),
    )
    test_metrics: dict[str, Any] = {}
    if test is not None and len(test[0]):
        if task == "classification":
            test_metrics = classification_metrics(test[1], model.predict_proba(test[0]), model.classes_)
        elif task == "regression":
            test_metrics = regression_metrics(test[1], model.predict(test[0]), y_range)
    t2 = time.perf_counter()
    model_bytes = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    metrics_json = json.dumps(records, default=str)
    # as in v1, each output IS the file (not a folder holding it): the step commits it in place
    for path in job["outputs"].get("Model", []):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(model_bytes)
    for path in job["outputs"].get("Metrics", []):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(metrics_json)
    write_s = time.perf_counter() - t2
    log(f"AutoML: best model {automl.best_estimator} (iteration {best_id}) {primary}={best_score:.6f} "
        f"after {len(records)} iteration(s) in {fit_s:.1f} s")
    return {
        "best_model": automl.best_estimator, "best_iteration": best_id, "best_score": best_score,
        "primary_metric": primary, "best_metrics": best_metrics, "best_config": automl.best_config,
        "iterations": len(records), "test_metrics": test_metrics, "rows": len(X),
        "leaderboard": leaderboard(records, primary),
        "timings": {"startup_s": job.get("startup_s"), "load_s": load_s, "import_s": import_s, "fit_s": fit_s,
                    "write_s": write_s},
        "flaml": {k: v for k, v in kwargs.items() if k not in ("metric", "log_file_name")},
    }


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text())
    if job.get("launched_at"):
        job["startup_s"] = time.time() - float(job["launched_at"])  # interpreter start and this module's imports
    from airflow_mlpipe.data.workspace_location import WorkspaceLocation

    workspace = WorkspaceLocation.from_ref(job.get("workspace"))
    try:
        summary = train(job, workspace, log=lambda msg: print(msg, flush=True))
    except AutoMLError as exc:
        print(f"AutoMLError: {exc}", flush=True)
        Path(job["summary"]).write_text(json.dumps({"error": str(exc)}))
        return 2
    Path(job["summary"]).write_text(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
