"""Step outputs and their views: PipelineData, OutputFileDatasetConfig, pipeline-output datasets.

An output object is *produced* by exactly one step (recorded when the step lists it in ``outputs``) and may be
consumed by any number of steps. Consumption is described by an :class:`InputBinding`-like dict in the spec:
``{"kind": "pipeline_data", "name": <input name>, "source": {"step": ..., "output": ...}, "mode": ..., "read": ...}``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError
from airflow_mlpipe.sdk.no_effect import warn_no_effect

_WORD = re.compile(r"^\w+$")
OUTPUT_MODES = ("mount", "upload")
INPUT_MODES = ("mount", "download", "direct")


#: what happens instead of the v1 arguments that place or overwrite data on the compute
INPUT_PATH_INSTEAD = ("the input is placed in the step's working folder (or read in place from a local datastore); "
                      "the script gets its path through its arguments and $AZUREML_DATAREFERENCE_<name>")
INPUT_OVERWRITE_INSTEAD = "each step run gets a fresh working folder, so there is never anything to overwrite"
READ_OPTION_INSTEAD = {
    "partition_format": "no partition columns are added; only the columns in the files are read",
    "set_column_types": "column types are inferred from the files",
    "quoted_line_breaks": "a line break always ends a row",
    "path_glob": "every file of the output is read",
}


def _check_word(what: str, value: str) -> str:
    if not isinstance(value, str) or not value or not _WORD.match(value):
        raise ValueError(f"{what} {value!r} is invalid: use letters, digits and '_' only")
    return value


class TrainingOutput:
    """v1 ``TrainingOutput(type, iteration=None, metric=None, model_file=None)`` for AutoML/HyperDrive outputs."""

    def __init__(self, type: str, iteration: int | None = None, metric: str | None = None,
                 model_file: str | None = None) -> None:
        kind = str(type).lower()
        if kind not in ("metrics", "model"):
            raise ValueError(f"TrainingOutput: type must be 'Metrics' or 'Model', got {type!r}")
        if kind == "metrics" and (iteration is not None or metric is not None):
            raise ValueError("TrainingOutput: iteration and metric are not allowed for type 'Metrics'")
        if kind == "model" and iteration is not None and metric is not None:
            raise ValueError("TrainingOutput: give iteration or metric for type 'Model', not both")
        self._type = "Metrics" if kind == "metrics" else "Model"
        self._iteration, self._metric, self._model_file = iteration, metric, model_file

    type = property(lambda self: self._type)
    iteration = property(lambda self: self._iteration)
    metric = property(lambda self: self._metric)
    model_file = property(lambda self: self._model_file)

    def to_spec(self) -> dict[str, Any]:
        return {"type": self._type, "iteration": self._iteration, "metric": self._metric,
                "model_file": self._model_file}


class _Output:
    """Shared behaviour of things a step writes."""

    kind = "pipeline_data"

    def __init__(self, name: str, datastore: Any = None, output_name: str | None = None,
                 pipeline_output_name: str | None = None) -> None:
        self._name = _check_word(f"{type(self).__name__} name", name)
        self._output_name = _check_word("output_name", output_name) if output_name else name
        self.datastore = datastore
        self.pipeline_output_name = pipeline_output_name
        self._producer: Any = None
        self._format = "files"
        self._register: dict | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def output_name(self) -> str:
        return self._output_name

    @property
    def producer(self) -> Any:
        return self._producer

    def _set_producer(self, step: Any) -> None:
        if self._producer is not None and self._producer is not step:
            raise PipelineValidationError(
                f"Step {getattr(step, 'name', step)!r}: output {self._output_name!r} is already an output of step "
                f"{self._producer.name!r}; an output can have one producer only"
            )
        self._producer = step

    def _datastore_name(self) -> str | None:
        ds = self.datastore
        if ds is None:
            return None
        return ds if isinstance(ds, str) else ds.name

    def output_spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self._output_name,
            "datastore": self._datastore_name(),
            "pipeline_output_name": self.pipeline_output_name,
            "format": self._format,
            "register": self._register,
        }

    def input_spec(self, input_name: str | None = None, mode: str = "mount", read: dict | None = None,
                   path_on_compute: str | None = None) -> dict[str, Any]:
        # the producer may be declared after the consumer: the step name is resolved when the spec is built
        return {
            "kind": "pipeline_data",
            "name": input_name or self._name,
            "source": {"output": self._output_name, "_data": self},
            "mode": mode,
            "read": read,
            "path_on_compute": path_on_compute,
        }


class PipelineData(_Output):
    """v1 ``PipelineData``: intermediate data, a fresh folder on a datastore per producing step run."""

    def __init__(self, name: str, datastore: Any = None, output_name: str | None = None,
                 output_mode: str = "mount", output_path_on_compute: str | None = None,
                 output_overwrite: bool | None = None, data_type: str | None = None,
                 is_directory: bool | None = None, pipeline_output_name: str | None = None,
                 training_output: TrainingOutput | None = None) -> None:
        super().__init__(name, datastore, output_name, pipeline_output_name)
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"Invalid output mode {output_mode!r} for PipelineData {name!r}: use 'mount' or 'upload'")
        _warn_pipeline_data_arguments(output_path_on_compute, output_overwrite, data_type, is_directory)
        self.output_mode = output_mode
        self.output_path_on_compute = output_path_on_compute
        self.output_overwrite = output_overwrite
        self.data_type = data_type
        self.is_directory = is_directory
        self.training_output = training_output

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self._name}"

    __repr__ = __str__

    def get_env_variable_name(self) -> str:
        return str(self)

    def output_spec(self) -> dict[str, Any]:
        spec = super().output_spec()
        spec["mode"] = self.output_mode
        spec["training_output"] = self.training_output.to_spec() if self.training_output else None
        return spec

    # consumption views ------------------------------------------------------------------
    def create_input_binding(self, input_name: str | None = None, mode: str | None = None,
                             path_on_compute: str | None = None, overwrite: bool | None = None) -> InputPortBinding:
        mode = mode or "mount"
        if mode not in ("mount", "download"):
            raise ValueError(f"PipelineData {self._name!r}: input mode must be 'mount' or 'download', got {mode!r}")
        if overwrite is not None:
            warn_no_effect("PipelineData input binding", "overwrite", INPUT_OVERWRITE_INSTEAD)
        return InputPortBinding(input_name or self._name, self, mode, path_on_compute)

    def as_download(self, input_name: str | None = None, path_on_compute: str | None = None,
                    overwrite: bool | None = None) -> InputPortBinding:
        return self.create_input_binding(input_name, "download", path_on_compute, overwrite)

    def as_mount(self, input_name: str | None = None) -> InputPortBinding:
        return self.create_input_binding(input_name, "mount")

    def as_input(self, input_name: str) -> InputPortBinding:
        return self.create_input_binding(input_name)

    def as_dataset(self) -> PipelineOutputFileDataset:
        return PipelineOutputFileDataset(self)


class InputPortBinding:
    """A named, moded consumption of an output (v1 ``InputPortBinding``)."""

    def __init__(self, name: str, bind_object: _Output, bind_mode: str = "mount",
                 path_on_compute: str | None = None, read: dict | None = None) -> None:
        self.name = _check_word("input name", name)
        if path_on_compute is not None:
            warn_no_effect("PipelineData input binding", "path_on_compute", INPUT_PATH_INSTEAD)
        self.bind_object = bind_object
        self.bind_mode = bind_mode
        self.path_on_compute = path_on_compute
        self.read = read

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.name}"

    def input_spec(self) -> dict[str, Any]:
        return self.bind_object.input_spec(self.name, self.bind_mode, self.read, self.path_on_compute)


class PipelineOutputFileDataset:
    """``PipelineData.as_dataset()``: the output consumed as a FileDataset (or parsed to a TabularDataset)."""

    _tabular = False

    def __init__(self, data: _Output, input_name: str | None = None, mode: str = "mount",
                 read: dict | None = None, path_on_compute: str | None = None) -> None:
        self._data = data
        self._input_name = input_name
        self._mode = mode
        self._read = read
        self._path_on_compute = path_on_compute

    def _clone(self, **changes: Any) -> PipelineOutputFileDataset:
        new = copy.copy(self)
        for key, value in changes.items():
            setattr(new, key, value)
        return new

    @property
    def name(self) -> str:
        return self._data.output_name

    @property
    def input_name(self) -> str:
        return self._input_name or self._data.name

    @property
    def pipeline_data(self) -> _Output:
        return self._data

    def as_named_input(self, name: str) -> PipelineOutputFileDataset:
        return self._clone(_input_name=_check_word("input name", name))

    def as_download(self, path_on_compute: str | None = None) -> PipelineOutputFileDataset:
        _warn_dataset_path(path_on_compute)
        return self._clone(_mode="download", _path_on_compute=path_on_compute)

    def as_mount(self, path_on_compute: str | None = None) -> PipelineOutputFileDataset:
        _warn_dataset_path(path_on_compute)
        return self._clone(_mode="mount", _path_on_compute=path_on_compute)

    def as_direct(self) -> PipelineOutputFileDataset:
        return self._clone(_mode="direct")

    def _parse(self, fmt: str, options: dict[str, Any]) -> PipelineOutputTabularDataset:
        new = PipelineOutputTabularDataset(self._data, self._input_name, "direct",
                                           {"type": "tabular", "format": fmt, "options": options})
        return new

    def parse_parquet_files(self, include_path: bool = False, partition_format: str | None = None,
                            file_extension: str = ".parquet", set_column_types: dict | None = None
                            ) -> PipelineOutputTabularDataset:
        _warn_read_options("parse_parquet_files", partition_format=partition_format,
                           set_column_types=set_column_types)
        self._data._format = "parquet"
        return self._parse("parquet", {"include_path": include_path, "file_extension": file_extension})

    def parse_delimited_files(self, include_path: bool = False, separator: str = ",", header: Any = True,
                              partition_format: str | None = None, file_extension: str = "",
                              set_column_types: dict | None = None, quoted_line_breaks: bool = False
                              ) -> PipelineOutputTabularDataset:
        _warn_read_options("parse_delimited_files", partition_format=partition_format,
                           set_column_types=set_column_types, quoted_line_breaks=quoted_line_breaks or None)
        self._data._format = "delimited"
        return self._parse("delimited", {"include_path": include_path, "separator": separator,
                                         "header": bool(header), "file_extension": file_extension})

    def register(self, name: str, create_new_version: bool = True) -> PipelineOutputFileDataset:
        """Register the produced output as a dataset version when the producing step succeeds."""
        self._data._register = {"name": name, "create_new_version": create_new_version}
        return self

    def input_spec(self) -> dict[str, Any]:
        read = self._read or {"type": "file"}  # a dataset view: it appears in run.input_datasets
        return self._data.input_spec(self.input_name, self._mode, read, self._path_on_compute)

    def __str__(self) -> str:
        return f"DatasetConsumptionConfig:{self.input_name}"


class PipelineOutputTabularDataset(PipelineOutputFileDataset):
    """``parse_parquet_files()`` / ``parse_delimited_files()``: consumed in direct mode as a TabularDataset."""

    _tabular = True

    def keep_columns(self, columns: list[str] | str) -> PipelineOutputTabularDataset:
        return self._with_transform({"op": "keep_columns", "columns": _as_list(columns)})

    def drop_columns(self, columns: list[str] | str) -> PipelineOutputTabularDataset:
        return self._with_transform({"op": "drop_columns", "columns": _as_list(columns)})

    def random_split(self, percentage: float, seed: int | None = None
                     ) -> tuple[PipelineOutputTabularDataset, PipelineOutputTabularDataset]:
        seed = 0 if seed is None else seed
        first = self._with_transform({"op": "random_split", "percentage": percentage, "seed": seed, "part": 0})
        second = self._with_transform({"op": "random_split", "percentage": percentage, "seed": seed, "part": 1})
        return first, second

    def _with_transform(self, transform: dict[str, Any]) -> PipelineOutputTabularDataset:
        read = copy.deepcopy(self._read)
        read.setdefault("transforms", []).append(transform)
        return self._clone(_read=read)  # type: ignore[return-value]


def _as_list(columns: list[str] | str) -> list[str]:
    return [columns] if isinstance(columns, str) else list(columns)


def _warn_pipeline_data_arguments(output_path_on_compute: str | None, output_overwrite: bool | None,
                                  data_type: str | None, is_directory: bool | None) -> None:
    owner = "PipelineData"
    if output_path_on_compute is not None:
        warn_no_effect(owner, "output_path_on_compute", "the step writes to a staging folder whose path it gets "
                                                        "through its arguments and $AZUREML_DATAREFERENCE_<name>")
    if output_overwrite is not None:
        warn_no_effect(owner, "output_overwrite", "each step run writes a fresh folder, which replaces only an "
                                                  "earlier try of the same step run")
    if data_type is not None:
        warn_no_effect(owner, "data_type", "the output is plain files; consumers choose how to read them "
                                           "(as_dataset(), parse_parquet_files(), ...)")
    if is_directory is not None:
        warn_no_effect(owner, "is_directory", "the output is a file or a folder according to what the step "
                                              "writes at its path")


def _warn_dataset_path(path_on_compute: str | None) -> None:
    if path_on_compute is not None:
        warn_no_effect("PipelineOutputFileDataset", "path_on_compute", INPUT_PATH_INSTEAD)


def _warn_read_options(method: str, **given: Any) -> None:
    for argument, value in given.items():
        if value is not None:
            warn_no_effect(method, argument, READ_OPTION_INSTEAD[argument])


class OutputFileDatasetConfig(_Output):
    """v1 ``OutputFileDatasetConfig(name=None, destination=None, source=None, partition_format=None)``."""

    kind = "output_file_dataset"

    def __init__(self, name: str | None = None, destination: tuple | None = None, source: str | None = None,
                 partition_format: str | None = None) -> None:
        if name is None:
            raise PipelineValidationError(
                "OutputFileDatasetConfig: give it a name; v1's random default name changes on every build "
                "and would defeat step reuse"
            )
        datastore, path = (destination or (None, None))
        if partition_format is not None:
            warn_no_effect("OutputFileDatasetConfig", "partition_format",
                           "no partition columns are extracted when the output is read back")
        super().__init__(name, datastore)
        self.destination_path = path
        self.source = source
        self._mode = "mount"

    def __str__(self) -> str:
        return f"DatasetOutputConfig:{self._name}"

    def as_mount(self, disable_metadata_cache: bool = False) -> OutputFileDatasetConfig:
        new = copy.copy(self)
        new._mode = "mount"
        return new

    def as_upload(self, overwrite: bool = False, source_globs: list[str] | None = None) -> OutputFileDatasetConfig:
        if source_globs is not None:
            warn_no_effect("OutputFileDatasetConfig.as_upload", "source_globs",
                           "every file the step writes to the output folder is uploaded")
        if not overwrite and self.destination_path and "{run-id}" not in self.destination_path:
            warn_no_effect("OutputFileDatasetConfig.as_upload", "overwrite",
                           f"overwrite=False is not honoured: each successful run replaces what is at "
                           f"{self.destination_path!r}; put {{run-id}} in the destination path to keep every run")
        new = copy.copy(self)
        new._mode = "upload"
        return new

    def as_input(self, name: str | None = None) -> PipelineOutputFileDataset:
        return PipelineOutputFileDataset(self, name or self._name, "mount")

    def read_delimited_files(self, include_path: bool = False, separator: str = ",", header: Any = True,
                             partition_format: str | None = None, path_glob: str | None = None,
                             set_column_types: dict | None = None) -> PipelineOutputTabularDataset:
        _warn_read_options("read_delimited_files", partition_format=partition_format, path_glob=path_glob,
                           set_column_types=set_column_types)
        return PipelineOutputFileDataset(self).parse_delimited_files(include_path, separator, header)

    def read_parquet_files(self, include_path: bool = False, partition_format: str | None = None,
                           path_glob: str | None = None, set_column_types: dict | None = None
                           ) -> PipelineOutputTabularDataset:
        _warn_read_options("read_parquet_files", partition_format=partition_format, path_glob=path_glob,
                           set_column_types=set_column_types)
        return PipelineOutputFileDataset(self).parse_parquet_files(include_path)

    def register_on_complete(self, name: str, description: str | None = None, tags: dict | None = None
                             ) -> OutputFileDatasetConfig:
        new = copy.copy(self)
        new._register = {"name": name, "description": description, "tags": tags or {}, "create_new_version": True}
        return new

    def output_spec(self) -> dict[str, Any]:
        spec = super().output_spec()
        spec.update(mode=self._mode, destination_path=self.destination_path)
        return spec
