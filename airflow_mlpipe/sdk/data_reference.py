"""DataReference, DataPath, DataPathComputeBinding: the legacy (v1) ways of pointing a step at datastore paths.

They are thin path references; the compiler puts :meth:`to_spec` into the pipeline spec and the step runner
turns it back into a local path. Default names are derived from datastore and path (v1 used a random uuid,
which changed the step fingerprint on every build and defeated reuse).
"""

from __future__ import annotations

import hashlib
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.sdk.no_effect import warn_no_effect

SUPPORTED_DATAREF_MODES = ("mount", "download", "upload")
_ROOT_PATHS = (None, "", "/", ".", "./")


def _check_mode(mode: Any, what: str = "DataReference") -> str:
    if not isinstance(mode, str) or mode.lower() not in SUPPORTED_DATAREF_MODES:
        raise UserErrorException(
            f"{what}: invalid mode {mode!r}; supported modes are {', '.join(SUPPORTED_DATAREF_MODES)}"
        )
    return mode.lower()


def _warn_compute_binding(owner: str, path_on_compute: str | None, overwrite: bool) -> None:
    """v1 places/overwrites data on the compute; here a step reads its inputs where the runner puts them."""
    from airflow_mlpipe.sdk.pipeline_data import INPUT_OVERWRITE_INSTEAD, INPUT_PATH_INSTEAD

    if path_on_compute is not None:
        warn_no_effect(owner, "path_on_compute", INPUT_PATH_INSTEAD)
    if overwrite:
        warn_no_effect(owner, "overwrite", INPUT_OVERWRITE_INSTEAD)


def _datastore_name(datastore: Any) -> str | None:
    if datastore is None or isinstance(datastore, str):
        return datastore
    return datastore.name


def _join(base: str | None, child: str | None) -> str | None:
    if not child:
        return base
    if base in _ROOT_PATHS:
        return child
    return f"{base.rstrip('/')}/{child.lstrip('/')}"


class DataReference:
    """v1 ``DataReference(datastore, data_reference_name=None, path_on_datastore=None, mode='mount', …)``."""

    def __init__(self, datastore: Any, data_reference_name: str | None = None,
                 path_on_datastore: str | None = None, mode: str = "mount", path_on_compute: str | None = None,
                 overwrite: bool = False) -> None:
        self.mode = _check_mode(mode)
        _warn_compute_binding("DataReference", path_on_compute, bool(overwrite))
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore
        self.path_on_compute = path_on_compute
        self.overwrite = bool(overwrite)
        if not data_reference_name:
            if path_on_datastore not in _ROOT_PATHS:
                key = f"{_datastore_name(datastore)}:{path_on_datastore}".encode()
                data_reference_name = hashlib.sha256(key).hexdigest()[:32]
            else:
                data_reference_name = _datastore_name(datastore)
        self.data_reference_name = data_reference_name

    @property
    def datastore_name(self) -> str | None:
        return _datastore_name(self.datastore)

    @staticmethod
    def create(data_reference_name: str | None = None, datapath: DataPath | None = None,
               datapath_compute_binding: DataPathComputeBinding | None = None) -> DataReference:
        binding = datapath_compute_binding or DataPathComputeBinding()
        if datapath is None:
            raise UserErrorException("DataReference.create: datapath is required")
        return DataReference(datastore=datapath.datastore, data_reference_name=data_reference_name,
                             path_on_datastore=datapath.path_on_datastore, mode=binding.mode,
                             path_on_compute=binding.path_on_compute, overwrite=binding.overwrite)

    def _clone(self, **changes: Any) -> DataReference:
        args = {"datastore": self.datastore, "data_reference_name": self.data_reference_name,
                "path_on_datastore": self.path_on_datastore, "mode": self.mode,
                "path_on_compute": self.path_on_compute, "overwrite": self.overwrite}
        args.update(changes)
        return DataReference(**args)

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        """A child reference: ``path_on_datastore + '/' + path``."""
        return DataReference(datastore=self.datastore, data_reference_name=data_reference_name,
                             path_on_datastore=_join(self.path_on_datastore, path), mode=self.mode,
                             path_on_compute=self.path_on_compute, overwrite=self.overwrite)

    def as_download(self, path_on_compute: str | None = None, overwrite: bool = False) -> DataReference:
        return self._clone(mode="download", path_on_compute=path_on_compute, overwrite=overwrite)

    def as_upload(self, path_on_compute: str | None = None, overwrite: bool = False) -> DataReference:
        return self._clone(mode="upload", path_on_compute=path_on_compute, overwrite=overwrite)

    def as_mount(self) -> DataReference:
        return self._clone(mode="mount")

    def to_config(self) -> dict[str, Any]:
        """v1 ``DataReferenceConfiguration`` as a plain dict."""
        return {"datastore_name": self.datastore_name, "mode": self.mode,
                "path_on_datastore": self.path_on_datastore, "path_on_compute": self.path_on_compute,
                "overwrite": self.overwrite}

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "data_reference", "name": self.data_reference_name, "datastore": self.datastore_name,
                "path": self.path_on_datastore, "mode": self.mode, "path_on_compute": self.path_on_compute,
                "overwrite": self.overwrite}

    @staticmethod
    def from_spec(workspace: Any, spec: dict[str, Any]) -> DataReference:
        from airflow_mlpipe.sdk.datastore import Datastore

        store = Datastore.get(workspace, spec.get("datastore"))
        return DataReference(datastore=store, data_reference_name=spec.get("name"),
                             path_on_datastore=spec.get("path"), mode=spec.get("mode", "mount"),
                             path_on_compute=spec.get("path_on_compute"), overwrite=bool(spec.get("overwrite")))

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.data_reference_name}"

    __repr__ = __str__


class DataPath:
    """v1 ``DataPath(datastore=None, path_on_datastore=None, name=None)``: a datastore path as a value."""

    def __init__(self, datastore: Any = None, path_on_datastore: str | None = None, name: str | None = None) -> None:
        self._datastore = datastore
        self.path_on_datastore = path_on_datastore
        self.name = name

    @property
    def datastore(self) -> Any:
        return self._datastore

    @property
    def datastore_name(self) -> str | None:
        return _datastore_name(self._datastore)

    def create_data_reference(self, data_reference_name: str | None = None,
                              datapath_compute_binding: DataPathComputeBinding | None = None) -> DataReference:
        return DataReference.create(data_reference_name, self, datapath_compute_binding)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "data_path", "datastore": self.datastore_name, "path": self.path_on_datastore,
                "name": self.name}

    @staticmethod
    def from_spec(workspace: Any, spec: dict[str, Any]) -> DataPath:
        from airflow_mlpipe.sdk.datastore import Datastore

        store = Datastore.get(workspace, spec.get("datastore")) if workspace is not None else spec.get("datastore")
        return DataPath(store, spec.get("path"), spec.get("name"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataPath) and other.to_spec() == self.to_spec()

    def __hash__(self) -> int:
        return hash((self.datastore_name, self.path_on_datastore, self.name))

    def __repr__(self) -> str:
        return f"DataPath(datastore={self.datastore_name!r}, path_on_datastore={self.path_on_datastore!r})"


class DataPathComputeBinding:
    """v1 ``DataPathComputeBinding(mode='mount', path_on_compute=None, overwrite=False)``."""

    def __init__(self, mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False) -> None:
        self.mode = _check_mode(mode, "DataPathComputeBinding")
        _warn_compute_binding("DataPathComputeBinding", path_on_compute, bool(overwrite))
        self.path_on_compute = path_on_compute
        self.overwrite = bool(overwrite)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "datapath_compute_binding", "mode": self.mode, "path_on_compute": self.path_on_compute,
                "overwrite": self.overwrite}

    def __repr__(self) -> str:
        return f"DataPathComputeBinding(mode={self.mode!r}, path_on_compute={self.path_on_compute!r})"
