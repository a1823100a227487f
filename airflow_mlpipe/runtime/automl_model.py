"""What an AutoMLStep hands over: the v1 metrics computed honestly, and the picklable best model.

Metrics follow the v1 definitions (``azureml.automl.runtime.shared.score``):

- ``AUC_weighted``: one-vs-rest ROC AUC per class averaged with class-support weights (binary: the AUC);
- ``accuracy``; ``precision_score_weighted``: precision per class, support-weighted;
- ``norm_macro_recall``: ``(macro recall - R) / (1 - R)`` with ``R = 1 / n_classes``, clipped at 0;
- ``average_precision_score_weighted``: average precision per one-hot class column, support-weighted;
- ``normalized_root_mean_squared_error`` / ``normalized_mean_absolute_error``: RMSE / MAE divided by the label
  range of the training data (or ``y_max - y_min`` from the config);
- ``r2_score``; ``spearman_correlation``: Spearman's rank correlation of predictions and truth.

The model pickle is an :class:`AutoMLModel`: this module is importable wherever the project is installed, so the
pickle loads in a fresh Python without FLAML's search state or the training data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

CLASSIFICATION_METRICS = ("AUC_weighted", "accuracy", "norm_macro_recall", "average_precision_score_weighted",
                          "precision_score_weighted")
REGRESSION_METRICS = ("normalized_root_mean_squared_error", "normalized_mean_absolute_error", "r2_score",
                      "spearman_correlation")
LOWER_IS_BETTER = {"normalized_root_mean_squared_error", "normalized_mean_absolute_error"}


def _one_hot(y: Any, classes: Any) -> np.ndarray:
    y = np.asarray(y)
    return np.stack([(y == c).astype(float) for c in classes], axis=1)


def _binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties averaged): same value as sklearn's ``roc_auc_score``, without its overhead."""
    from scipy.stats import rankdata

    n_pos = float(y.sum())
    n_neg = len(y) - n_pos
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """sklearn's ``average_precision_score``: sum over thresholds of (R_n - R_n-1) * P_n."""
    order = np.argsort(-score, kind="mergesort")
    y, score = y[order], score[order]
    last = np.r_[np.where(np.diff(score))[0], len(y) - 1]
    tps = np.cumsum(y)[last]
    fps = 1 + last - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification_metrics(y_true: Any, proba: np.ndarray, classes: Any) -> dict[str, float]:
    """All v1 classification primary metrics from class probabilities (columns in ``classes`` order).

    Computed with numpy (a trial is scored on every fold: this runs inside FLAML's time budget); the unit
    tests check the values against scikit-learn's."""
    y_true = np.asarray(y_true)
    classes = np.asarray(classes)
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:
        proba = np.stack([1 - proba, proba], axis=1)
    y_pred = classes[np.argmax(proba, axis=1)]
    onehot = _one_hot(y_true, classes)
    support = onehot.sum(axis=0)
    n = len(y_true)
    out: dict[str, float] = {"accuracy": float(np.mean(y_pred == y_true))}
    aucs = np.full(len(classes), np.nan)
    aps = np.full(len(classes), np.nan)
    for j in range(len(classes)):
        if 0 < support[j] < n:
            aucs[j] = _binary_auc(onehot[:, j], proba[:, j])
            aps[j] = _average_precision(onehot[:, j], proba[:, j])
    weights = np.where(np.isnan(aucs), 0.0, support)
    total = weights.sum()
    out["AUC_weighted"] = float(np.nansum(aucs * weights) / total) if total else math.nan
    out["average_precision_score_weighted"] = float(np.nansum(aps * weights) / total) if total else math.nan
    predicted = _one_hot(y_pred, classes)
    tp = (predicted * onehot).sum(axis=0)
    n_pred = predicted.sum(axis=0)
    precision = np.divide(tp, n_pred, out=np.zeros_like(tp), where=n_pred > 0)
    out["precision_score_weighted"] = float((precision * support).sum() / support.sum()) if support.sum() else 0.0
    present = support > 0
    macro_recall = float((tp[present] / support[present]).mean()) if present.any() else 0.0
    r = 1.0 / max(len(classes), 2)
    out["norm_macro_recall"] = max(0.0, (macro_recall - r) / (1 - r))
    return out


def regression_metrics(y_true: Any, y_pred: Any, y_range: float) -> dict[str, float]:
    """All v1 regression primary metrics; ``y_range`` normalises RMSE and MAE."""
    from scipy.stats import spearmanr
    from sklearn.metrics import r2_score

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    rng = y_range if y_range and y_range > 0 else 1.0
    err = y_pred - y_true
    out = {
        "normalized_root_mean_squared_error": float(np.sqrt(np.mean(err ** 2)) / rng),
        "normalized_mean_absolute_error": float(np.mean(np.abs(err)) / rng),
        "r2_score": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else math.nan,
    }
    rho = spearmanr(y_true, y_pred).statistic if len(y_true) > 1 else math.nan
    out["spearman_correlation"] = float(rho) if rho == rho else 0.0
    return out


def to_loss(metric: str, value: float) -> float:
    """FLAML minimises: the loss for a v1 metric value."""
    if value is None or value != value:
        return math.inf
    return value if metric in LOWER_IS_BETTER else 1.0 - value


class AutoMLModel:
    """The best model of an AutoMLStep: FLAML's featurizer, the fitted learner and the label decoding.

    ``predict(X)`` / ``predict_proba(X)`` take a DataFrame with the training columns (the label column, if
    present, is ignored); ``columns`` lists them in training order.
    """

    def __init__(self, task: str, flaml_task: Any, transformer: Any, estimator: Any, label_transformer: Any,
                 columns: list[str], label_column_name: str, classes: list[Any] | None, model_name: str,
                 config: dict[str, Any], primary_metric: str, score: float | None,
                 time_column_name: str | None = None) -> None:
        self.task = task
        self._flaml_task = flaml_task
        self._transformer = transformer
        self._estimator = estimator
        self._label_transformer = label_transformer
        self.columns = list(columns)
        self.label_column_name = label_column_name
        self.classes_ = np.asarray(classes) if classes is not None else None
        self.model_name = model_name
        self.config = dict(config)
        self.primary_metric = primary_metric
        self.score = score
        self.time_column_name = time_column_name

    @property
    def estimator(self) -> Any:
        """The fitted underlying learner (a LightGBM / scikit-learn / XGBoost model)."""
        return getattr(self._estimator, "estimator", self._estimator)

    def _frame(self, X: Any) -> Any:
        import pandas as pd

        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(X, columns=self.columns)
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"AutoMLModel: input lacks the training column(s) {missing}; expected {self.columns}")
        X = X[self.columns].copy()
        if self._flaml_task is not None:
            X = self._flaml_task.preprocess(X, self._transformer)
        return X

    def predict(self, X: Any) -> np.ndarray:
        y = self._estimator.predict(self._frame(X))
        if isinstance(y, np.ndarray) and y.ndim > 1:
            y = y.flatten()
        if self._label_transformer is not None:
            import pandas as pd

            y = self._label_transformer.inverse_transform(pd.Series(np.asarray(y).astype(int)))
        return np.asarray(y)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is only available for classification models")
        return np.asarray(self._estimator.predict_proba(self._frame(X)))

    def __repr__(self) -> str:
        return (f"AutoMLModel(task={self.task!r}, model={self.model_name!r}, {self.primary_metric}="
                f"{self.score!r}, columns={self.columns})")
