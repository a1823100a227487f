"""DatasetConsumptionConfig (v1 §4.5): how a step consumes a dataset (direct, mount or download).

Default names derive from the dataset definition (v1 drew random hex, which broke step reuse).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException

CONSUMPTION_MODES = ("direct", "download", "mount", "hdfs")
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


def check_input_name(name: Any, what: str = "Dataset input") -> str:
    """Input names become environment variables: letters, digits and ``_`` only."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserErrorException(
            f"{what} name {name!r} is invalid: use only letters, digits and '_' (it becomes an environment variable)"
        )
    return name


def _describe(dataset: Any) -> dict[str, Any]:
    if hasattr(dataset, "to_definition"):
        return dataset.to_definition()
    return dataset.to_spec()


def default_input_name(dataset: Any) -> str:
    """``input_<8 hex>`` of the canonical JSON of the dataset's definition (identity fields excluded)."""
    try:
        described = _describe(dataset)
    except Exception:  # objects whose spec needs a later build step still get a stable-enough name
        described = {"repr": repr(dataset)}
    if isinstance(described, dict):
        described = {k: v for k, v in described.items() if k not in ("id", "name", "version")} or described
    text = json.dumps(described, sort_keys=True, separators=(",", ":"), default=str)
    return "input_" + hashlib.sha256(text.encode()).hexdigest()[:8]


def _is_tabular(dataset: Any) -> bool:
    from airflow_mlpipe.sdk.dataset import TabularDataset

    return isinstance(dataset, TabularDataset) or bool(getattr(dataset, "_tabular", False))


class DatasetConsumptionConfig:
    """v1 ``DatasetConsumptionConfig(name, dataset, mode='direct', path_on_compute=None)``."""

    def __init__(self, name: str | None, dataset: Any, mode: str = "direct",
                 path_on_compute: str | None = None) -> None:
        if isinstance(dataset, tuple):
            from airflow_mlpipe.sdk.dataset import Dataset

            if len(dataset) not in (2, 3):
                raise UserErrorException("DatasetConsumptionConfig: a tuple dataset must be (workspace, name[, version])")
            dataset = Dataset.get_by_name(*dataset)
        if not (hasattr(dataset, "to_definition") or hasattr(dataset, "to_spec")):
            raise UserErrorException(
                f"DatasetConsumptionConfig: dataset must be a FileDataset, TabularDataset, PipelineParameter or "
                f"pipeline output dataset, got {type(dataset).__name__}"
            )
        mode = (mode or "direct").lower() if isinstance(mode, str) else mode
        if mode not in CONSUMPTION_MODES:
            raise UserErrorException(
                f"DatasetConsumptionConfig: invalid mode {mode!r}; supported: {', '.join(CONSUMPTION_MODES)}"
            )
        if mode == "hdfs":
            raise UserErrorException("DatasetConsumptionConfig: hdfs mode is not supported (no HDFS/Spark compute); "
                                     "use direct, mount or download")
        if mode in ("mount", "download") and _is_tabular(dataset):
            raise UserErrorException(
                f"A TabularDataset can only be consumed in direct mode (as_named_input), not {mode!r}; "
                "use a FileDataset to mount or download files"
            )
        if path_on_compute is not None:
            from airflow_mlpipe.sdk.no_effect import warn_no_effect
            from airflow_mlpipe.sdk.pipeline_data import INPUT_PATH_INSTEAD

            warn_no_effect("DatasetConsumptionConfig", "path_on_compute", INPUT_PATH_INSTEAD)
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute
        self._name = check_input_name(name) if name is not None else default_input_name(dataset)

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = check_input_name(value)

    @property
    def arg_val(self) -> str:
        return f"DatasetConsumptionConfig:{self._name}"

    def __str__(self) -> str:
        return self.arg_val

    __repr__ = __str__

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(self._name, self.dataset, "download", path_on_compute)

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(self._name, self.dataset, "mount", path_on_compute)

    def as_hdfs(self) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(self._name, self.dataset, "hdfs")

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "dataset", "name": self._name, "mode": self.mode, "path_on_compute": self.path_on_compute,
                "dataset": _describe(self.dataset)}
