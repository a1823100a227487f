"""Datasets (v1 §4): lazy, JSON-serialisable definitions over datastore paths or URLs — never copies.

These are the v1 classes (``Dataset``, ``FileDataset``, ``TabularDataset``, ``MountContext``); what they do —
match files, read tables, apply transforms, materialise — is :mod:`airflow_mlpipe.data`, which step processes
and the runtime use on the definitions directly. The factories and ``DataType`` are
:mod:`airflow_mlpipe.sdk.dataset_factory`, exported here too.
"""

from __future__ import annotations

import copy
import os
import posixpath
import shutil
import tempfile
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.dataset_definition import canonical_json, definition_hash, seed_for
from airflow_mlpipe.data.dataset_definition import check_definition as _check_definition
from airflow_mlpipe.data.dataset_definition import definition_core as _core
from airflow_mlpipe.data.dataset_files import FORMAT_EXTENSIONS, FileListing
from airflow_mlpipe.data.materialize import copy_listing, download_dataset, materialize, real_folder
from airflow_mlpipe.data.readers import partition_parser, read_arrow, read_pandas
from airflow_mlpipe.data.transforms import selected_files
from airflow_mlpipe.sdk.dataset_consumption import DatasetConsumptionConfig, check_input_name
from airflow_mlpipe.sdk.dataset_factory import DataType, FileDatasetFactory, TabularDatasetFactory

__all__ = [
    "FORMAT_EXTENSIONS",
    "DataType",
    "Dataset",
    "FileDataset",
    "FileDatasetFactory",
    "MountContext",
    "TabularDataset",
    "TabularDatasetFactory",
    "canonical_json",
    "definition_hash",
    "materialize",
]


class Dataset:
    """Base of FileDataset and TabularDataset; also v1 ``azureml.core.Dataset`` (``Dataset.File``, …)."""

    _type = ""
    File: Any = None
    Tabular: Any = None

    def __init__(self, definition: dict[str, Any], workspace: Any = None,
                 registration: dict[str, Any] | None = None) -> None:
        self._definition = copy.deepcopy(_core(definition))
        self._definition["transforms"] = list(self._definition.get("transforms") or [])
        self._workspace = workspace
        self._registration = dict(registration or {})

    # ------------------------------------------------------------------ identity
    @property
    def id(self) -> str | None:
        return self._registration.get("id")

    @property
    def name(self) -> str | None:
        return self._registration.get("name")

    @property
    def version(self) -> int | None:
        return self._registration.get("version")

    @property
    def description(self) -> str | None:
        return self._registration.get("description")

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._registration.get("tags") or {})

    @property
    def workspace(self) -> Any:
        return self._workspace

    @property
    def data_changed_time(self) -> Any:
        return None

    @property
    def partition_keys(self) -> list[str]:
        parser = partition_parser(self._definition["source"].get("options", {}).get("partition_format"))
        return [name for name, _ in parser[1]] if parser else []

    def to_definition(self) -> dict[str, Any]:
        out = copy.deepcopy(self._definition)
        for key in ("id", "name", "version"):
            if self._registration.get(key) is not None:
                out[key] = self._registration[key]
        return out

    def fingerprint(self) -> str:
        """Hash of the definition (what is read), not of the data; the step cache hashes the data too."""
        return definition_hash(self._definition)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({canonical_json(self.to_definition())})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dataset) and other.to_definition() == self.to_definition()

    def __hash__(self) -> int:
        return hash(canonical_json(self.to_definition()))

    # ------------------------------------------------------------------ construction
    @staticmethod
    def from_definition(workspace: Any, definition: dict[str, Any]) -> Dataset:
        """Reopen a dataset from :meth:`to_definition` (how step processes receive datasets)."""
        _check_definition(definition)
        cls = TabularDataset if definition["type"] == "tabular" else FileDataset
        reg = {k: definition[k] for k in ("id", "name", "version") if definition.get(k) is not None}
        return cls(definition, workspace, reg)

    @staticmethod
    def _from_row(workspace: Any, row: dict[str, Any]) -> Dataset:
        ds = Dataset.from_definition(workspace, row["definition"])
        ds._registration = {k: row.get(k) for k in ("id", "name", "version", "description", "tags")}
        return ds

    @staticmethod
    def get_by_name(workspace: Any, name: str, version: int | str = "latest", **_: Any) -> Dataset:
        row = workspace.store.get_dataset(name, version)
        if row is None:
            known = sorted(r["name"] for r in workspace.store.list_datasets())
            what = f"{name!r}" + ("" if version in (None, "latest") else f" version {version}")
            raise UserErrorException(f"No dataset registered under name {what}; registered datasets: {known}")
        return Dataset._from_row(workspace, row)

    @staticmethod
    def get_by_id(workspace: Any, id: str, **_: Any) -> Dataset:  # noqa: A002 - v1 argument name
        row = workspace.store.get_dataset_by_id(id)
        if row is None:
            raise UserErrorException(f"No dataset with id {id!r} in this workspace")
        return Dataset._from_row(workspace, row)

    @staticmethod
    def get_all(workspace: Any) -> dict[str, Dataset]:
        return {row["name"]: Dataset._from_row(workspace, row) for row in workspace.store.list_datasets()}

    def register(self, workspace: Any, name: str, description: str | None = None,
                 tags: dict[str, Any] | None = None, create_new_version: bool = False) -> Dataset:
        """Store the definition under ``name``; an identical definition returns the existing version."""
        if not isinstance(name, str) or not name.strip():
            raise UserErrorException("Dataset.register: name must be a non-empty string")
        row = workspace.store.register_dataset(name, copy.deepcopy(self._definition), description=description,
                                               tags=tags, create_new_version=create_new_version)
        return Dataset._from_row(workspace, row)

    # ------------------------------------------------------------------ consumption
    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(check_input_name(name), self)

    def _with_transform(self, transform: dict[str, Any]) -> Dataset:
        definition = copy.deepcopy(self._definition)
        definition["transforms"].append(transform)
        return type(self)(definition, self._workspace)

    def _seeded(self, op: str, seed: int | None, **fields: Any) -> dict[str, Any]:
        return {"op": op, **fields, "seed": seed_for(self._definition, seed)}

    def skip(self, count: int) -> Dataset:
        return self._with_transform({"op": "skip", "count": int(count)})

    def take(self, count: int) -> Dataset:
        return self._with_transform({"op": "take", "count": int(count)})

    def take_sample(self, probability: float, seed: int | None = None) -> Dataset:
        if not 0 <= probability <= 1:
            raise UserErrorException(f"take_sample: probability must be between 0 and 1, got {probability}")
        return self._with_transform(self._seeded("take_sample", seed, probability=float(probability)))

    def random_split(self, percentage: float, seed: int | None = None) -> tuple[Dataset, Dataset]:
        """Two complementary datasets; the first holds about ``percentage`` of the records."""
        if not 0 < percentage < 1:
            raise UserErrorException(f"random_split: percentage must be between 0 and 1, got {percentage}")
        base = self._seeded("random_split", seed, percentage=float(percentage))
        return self._with_transform({**base, "part": 0}), self._with_transform({**base, "part": 1})

    # ------------------------------------------------------------------ files
    def _listing(self, ignore_not_found: bool = False) -> FileListing:
        return selected_files(self._workspace, self._definition, ignore_not_found)

    def _source(self) -> dict[str, Any]:
        return self._definition["source"]


class FileDataset(Dataset):
    """A set of files (v1 ``azureml.data.FileDataset``)."""

    _type = "file"

    def to_path(self) -> list[str]:
        return ["/" + m.rel for m in self._listing().matches]

    def download(self, target_path: str | None = None, overwrite: bool = False,
                 ignore_not_found: bool = False) -> list[str]:
        """Copy the files to ``target_path`` keeping their layout; returns the local paths."""
        return download_dataset(self._workspace, self._definition, target_path, overwrite, ignore_not_found)

    def mount(self, mount_point: str | None = None, **_: Any) -> MountContext:
        return MountContext(self, mount_point)

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(None, self, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(None, self, "download", path_on_compute)

    def as_hdfs(self) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(None, self, "hdfs")

    def file_metadata(self, col: str) -> Any:
        raise UserErrorException("FileDataset.file_metadata is not supported")


class MountContext:
    """v1 mount context: ``with ds.mount() as ctx: ctx.mount_point``.

    Local datasets without file selection mount their real folder; anything else is downloaded to a
    temporary folder removed on exit.
    """

    def __init__(self, dataset: FileDataset, mount_point: str | None = None) -> None:
        self._dataset = dataset
        self._requested = mount_point
        self._temp: str | None = None
        self.mount_point: str | None = None

    def start(self) -> None:
        listing = self._dataset._listing()
        if self._requested is None and listing.base and real_folder(listing, self._dataset._definition):
            self.mount_point = listing.base
            return
        if self._requested is None:
            self._temp = tempfile.mkdtemp(prefix="mlpipe_mount_")
        target = self._requested or self._temp
        copy_listing(listing, target, True)
        self.mount_point = os.path.abspath(target)

    def stop(self) -> None:
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def __enter__(self) -> MountContext:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class TabularDataset(Dataset):
    """Rows read from delimited, Parquet or JSON-lines files (v1 ``azureml.data.TabularDataset``)."""

    _type = "tabular"

    def _arrow(self) -> Any:
        return read_arrow(self._workspace, self._source())

    def to_pandas_dataframe(self, on_error: str = "null", out_of_range_datetime: str = "null") -> Any:
        return read_pandas(self._workspace, self._definition, on_error)

    def to_dask_dataframe(self, *args: Any, **kwargs: Any) -> Any:
        raise UserErrorException("to_dask_dataframe is not supported; use to_pandas_dataframe()")

    def to_spark_dataframe(self) -> Any:
        raise UserErrorException("to_spark_dataframe is not supported; use to_pandas_dataframe()")

    def keep_columns(self, columns: str | list[str], validate: bool = False) -> TabularDataset:
        cols = [columns] if isinstance(columns, str) else list(columns)
        return self._with_transform({"op": "keep_columns", "columns": cols, "validate": bool(validate)})

    def drop_columns(self, columns: str | list[str]) -> TabularDataset:
        cols = [columns] if isinstance(columns, str) else list(columns)
        return self._with_transform({"op": "drop_columns", "columns": cols})

    def _write(self, suffix: str, writer: Any) -> FileDataset:
        """Write the rows to the default datastore under a path derived from the definition."""
        from airflow_mlpipe.sdk.datastore import Datastore

        if self._workspace is None:
            raise UserErrorException("This dataset has no workspace to write converted files to")
        store = Datastore.get_default(self._workspace)
        rel = f"converted/{self.fingerprint()[:16]}/part-00000{suffix}"
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, f"part-00000{suffix}")
            writer(self.to_pandas_dataframe(), local)
            store.upload_files([local], relative_root=tmp, target_path=posixpath.dirname(rel), overwrite=True,
                               show_progress=False)
        return FileDatasetFactory.from_files((store, posixpath.dirname(rel)))

    def to_parquet_files(self) -> FileDataset:
        return self._write(".parquet", lambda df, path: df.to_parquet(path, index=False))

    def to_csv_files(self, separator: str = ",") -> FileDataset:
        return self._write(".csv", lambda df, path: df.to_csv(path, index=False, sep=separator))

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        raise UserErrorException("A TabularDataset can only be consumed in direct mode; use as_named_input(name)")

    as_download = as_mount

    def as_hdfs(self) -> DatasetConsumptionConfig:
        raise UserErrorException("A TabularDataset can only be consumed in direct mode; use as_named_input(name)")



Dataset.File = FileDatasetFactory
Dataset.Tabular = TabularDatasetFactory
