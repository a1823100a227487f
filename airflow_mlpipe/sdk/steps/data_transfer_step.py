"""DataTransferStep: copy data between datastores (files, folders, SQL results, SQL tables) on the Airflow worker.

v1 ran the copy on Azure Data Factory; here the step's task runs it (the ``DataFactoryCompute`` names the Celery
queue). The source is a DataReference, a PipelineData, a DataPath pipeline parameter or a SqlDataReference; the
destination a DataReference, a DataPath pipeline parameter or a SqlDataReference naming a table. Its one output,
``_data_transfer_output`` (``get_output()``), is the destination, so later steps can consume the copy.
"""

from __future__ import annotations

from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError
from airflow_mlpipe.sdk.compute import ComputeTarget, compute_spec
from airflow_mlpipe.sdk.parameters import PipelineParameter
from airflow_mlpipe.sdk.pipeline_data import PipelineData
from airflow_mlpipe.sdk.sql_data_reference import SqlDataReference
from airflow_mlpipe.sdk.steps.base import PipelineStep

OUTPUT_NAME = "_data_transfer_output"
REFERENCE_TYPES = ("file", "directory")
#: how a table destination is written (not a v1 argument: v1's Data Factory appended)
SQL_WRITE_MODES = ("append", "replace", "create")


def _reference_type(step: str, argument: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in REFERENCE_TYPES:
        raise PipelineValidationError(f"Step {step!r}, argument {argument!r}: expected 'file' or 'directory', "
                                      f"got {value!r}")
    return value.lower()


def _is_data_reference(obj: Any) -> bool:
    return type(obj).__name__ == "DataReference"


class DataTransferStep(PipelineStep):
    """v1 ``DataTransferStep(name, source_data_reference, destination_data_reference, compute_target,
    source_reference_type=None, destination_reference_type=None, allow_reuse=True)``."""

    kind = "DataTransferStep"

    def __init__(self, name: str | None = None, source_data_reference: Any = None,
                 destination_data_reference: Any = None, compute_target: Any = None,
                 source_reference_type: str | None = None, destination_reference_type: str | None = None,
                 allow_reuse: bool = True, sql_write_mode: str = "append") -> None:
        for argument, value in (("name", name), ("source_data_reference", source_data_reference),
                                ("destination_data_reference", destination_data_reference),
                                ("compute_target", compute_target)):
            if value is None:
                raise PipelineValidationError(f"DataTransferStep {name or ''!r}: argument {argument!r} is required")
        assert name is not None
        self.source_reference_type = _reference_type(name, "source_reference_type", source_reference_type)
        self.destination_reference_type = _reference_type(name, "destination_reference_type",
                                                          destination_reference_type)
        if sql_write_mode not in SQL_WRITE_MODES:
            raise PipelineValidationError(f"Step {name!r}, argument 'sql_write_mode': expected one of "
                                          f"{', '.join(SQL_WRITE_MODES)}, got {sql_write_mode!r}")
        self.sql_write_mode = sql_write_mode
        self._source_sql: dict[str, Any] | None = None
        if isinstance(source_data_reference, SqlDataReference):
            self._source_sql = source_data_reference.to_spec()
            source_inputs: list[Any] = []
        else:
            source_inputs = [self._check_source(name, source_data_reference)]
        self._destination, datastore = self._destination_of(name, destination_data_reference)
        self._output = PipelineData(OUTPUT_NAME, datastore=datastore)
        # a source that is another transfer's output is named like this step's output: v1 renames the input
        super().__init__(name, inputs=source_inputs, outputs=[self._output], allow_reuse=allow_reuse,
                         fix_port_name_collisions=True)
        if isinstance(destination_data_reference, tuple):
            self._parameters[destination_data_reference[0].name] = destination_data_reference[0]
        if self._source_sql is not None and self._destination.get("sql"):
            raise self._err("destination_data_reference", "a SQL source needs a file destination (a DataReference "
                                                          "or DataPath on a file datastore); copy SQL to SQL "
                                                          "through a file store")
        self.compute = self._compute(compute_target)

    # ------------------------------------------------------------------ arguments
    @staticmethod
    def _check_source(name: str, source: Any) -> Any:
        binding = getattr(source, "bind_object", None)
        if _is_data_reference(binding):
            return binding
        if _is_data_reference(source) or type(source).__name__ == "PortDataReference":
            return source
        if isinstance(source, PipelineData) or type(source).__name__ == "InputPortBinding":
            return source
        if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], PipelineParameter):
            return source
        raise PipelineValidationError(
            f"Step {name!r}, argument 'source_data_reference': unexpected type {type(source).__name__}; expected a "
            "DataReference, InputPortBinding, PortDataReference, PipelineData, SqlDataReference or a "
            "(PipelineParameter(DataPath), DataPathComputeBinding) tuple")

    @staticmethod
    def _destination_of(name: str, destination: Any) -> tuple[dict[str, Any], Any]:
        """The destination's spec and the datastore of the step's output (None: decided by a parameter)."""
        binding = getattr(destination, "bind_object", None)
        if _is_data_reference(binding):
            destination = binding
        if isinstance(destination, SqlDataReference):
            if destination.sql_table is None:
                raise PipelineValidationError(f"Step {name!r}, argument 'destination_data_reference': a SQL "
                                              "destination must name a table (sql_table=...)")
            return {"datastore": destination.datastore_name, "sql": destination.sql_spec()}, destination.datastore
        if _is_data_reference(destination):
            return ({"datastore": destination.datastore_name, "path": destination.path_on_datastore or ""},
                    destination.datastore)
        if isinstance(destination, tuple) and len(destination) == 2 and isinstance(destination[0], PipelineParameter):
            default = destination[0].default_value
            if type(default).__name__ != "DataPath":
                raise PipelineValidationError(f"Step {name!r}, argument 'destination_data_reference': the "
                                              f"PipelineParameter {destination[0].name!r} must default to a DataPath")
            return {"parameter": destination[0].name}, None
        raise PipelineValidationError(
            f"Step {name!r}, argument 'destination_data_reference': unexpected type {type(destination).__name__}; "
            "expected a DataReference, an InputPortBinding wrapping one, a SqlDataReference (table) or a "
            "(PipelineParameter(DataPath), DataPathComputeBinding) tuple")

    def _compute(self, target: Any) -> dict[str, Any]:
        if isinstance(target, ComputeTarget) and target.type != "DataFactory":
            raise self._err("compute_target", f"{target.name!r} is a {target.type} target; a DataTransferStep "
                                              "runs on a DataFactoryCompute")
        if isinstance(target, str | tuple | ComputeTarget):
            spec = compute_spec(self.name, target, step_kind=self.kind)
            return {**spec, "type": "datafactory"}
        raise self._err("compute_target", f"expected a DataFactoryCompute or its name, got {type(target).__name__}")

    # ------------------------------------------------------------------ v1 API
    def get_output(self) -> PipelineData:
        """The destination as a PipelineData, for later steps' inputs."""
        return self._output

    # ------------------------------------------------------------------ spec
    def _kind_spec(self, pipeline: Any) -> dict[str, Any]:
        workspace = getattr(pipeline, "_workspace", None)
        if workspace is not None and self.compute["name"] != "local":
            try:
                target = ComputeTarget(workspace, self.compute["name"])
            except Exception as exc:
                raise self._err("compute_target", f"no compute target named {self.compute['name']!r} in the "
                                                  f"workspace ({exc})") from None
            if target.type != "DataFactory":
                raise self._err("compute_target", f"{target.name!r} is a {target.type} target; a DataTransferStep "
                                                  "runs on a DataFactoryCompute")
        return {
            "compute": dict(self.compute),
            "transfer": {
                "source_input": None if self._source_sql else next(iter(self._inputs)),
                "source_sql": self._source_sql,
                "destination": dict(self._destination),
                "source_reference_type": self.source_reference_type,
                "destination_reference_type": self.destination_reference_type,
                "sql_write_mode": self.sql_write_mode,
            },
        }

    def to_spec(self, pipeline: Any) -> dict[str, Any]:
        spec = super().to_spec(pipeline)
        dest = self._destination
        for out in spec["outputs"]:  # the output is the destination itself, not a fresh folder per run
            out["destination_path"] = dest.get("path") or None
            out["datastore"] = dest.get("datastore")
        return spec
