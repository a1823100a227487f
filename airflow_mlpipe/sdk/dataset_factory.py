"""The v1 dataset factories (``Dataset.File``, ``Dataset.Tabular``) and ``DataType``: v1 arguments turned
into a dataset definition (see :mod:`airflow_mlpipe.data.dataset_definition`).

The dataset classes are looked up when a factory runs, so :mod:`airflow_mlpipe.sdk.dataset` can import this
module at load time.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.dataset_definition import header_mode as _header_mode
from airflow_mlpipe.data.dataset_files import GLOB_CHARS as _GLOB_CHARS
from airflow_mlpipe.data.dataset_files import list_files
from airflow_mlpipe.sdk.data_reference import DataPath, DataReference

if TYPE_CHECKING:
    from airflow_mlpipe.sdk.dataset import FileDataset, TabularDataset


class DataType:
    """v1 ``azureml.data.DataType``: column conversions for ``set_column_types``."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self.options = options

    @staticmethod
    def to_string() -> DataType:
        return DataType("string")

    @staticmethod
    def to_long() -> DataType:
        return DataType("long")

    @staticmethod
    def to_float(decimal_mark: str = ".") -> DataType:
        return DataType("float", decimal_mark=decimal_mark)

    @staticmethod
    def to_bool() -> DataType:
        return DataType("bool")

    @staticmethod
    def to_datetime(formats: str | list[str] | None = None) -> DataType:
        formats = [formats] if isinstance(formats, str) else list(formats or [])
        return DataType("datetime", formats=formats)

    def to_spec(self) -> dict[str, Any]:
        return {"type": self.kind, **self.options}

    def __repr__(self) -> str:
        return f"DataType({self.kind!r})"


_TYPE_ALIASES = {"str": "string", "string": "string", "int": "long", "long": "long", "integer": "long",
                 "float": "float", "double": "float", "bool": "bool", "boolean": "bool", "datetime": "datetime",
                 "date": "datetime", "timestamp": "datetime"}


def _column_types_spec(set_column_types: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for col, value in (set_column_types or {}).items():
        if isinstance(value, DataType):
            out[col] = value.to_spec()
        elif isinstance(value, dict) and "type" in value:
            out[col] = dict(value)
        elif isinstance(value, type) and value.__name__ in _TYPE_ALIASES:
            out[col] = {"type": _TYPE_ALIASES[value.__name__]}
        elif isinstance(value, str) and value.lower() in _TYPE_ALIASES:
            out[col] = {"type": _TYPE_ALIASES[value.lower()]}
        else:
            raise UserErrorException(
                f"set_column_types[{col!r}] = {value!r} is not a DataType (use DataType.to_long(), to_float(), "
                "to_string(), to_bool(), to_datetime())"
            )
    return out



# ---------------------------------------------------------------------------------------------- paths
def _path_entries(path: Any) -> tuple[list[dict[str, Any]], Any]:
    """Normalise v1 ``path`` forms to definition entries; also returns a workspace found on a datastore."""
    from airflow_mlpipe.sdk.datastore import Datastore

    items = path if isinstance(path, list) else [path]
    if not items:
        raise UserErrorException("Dataset path is empty: give a (datastore, 'path') tuple, DataPath or URL")
    entries: list[dict[str, Any]] = []
    workspace = None
    for item in items:
        store, rel = None, None
        if isinstance(item, tuple) and len(item) == 2:
            store, rel = item
        elif isinstance(item, DataPath | DataReference):
            store, rel = item.datastore, item.path_on_datastore
        elif isinstance(item, Datastore):
            store, rel = item, ""
        elif isinstance(item, str | os.PathLike):
            uri = os.fspath(item)
            if re.match(r"^https?://", uri, re.I):
                raise UserErrorException(
                    f"Dataset path {uri!r}: http(s) URLs are not supported (no internet access); copy the file "
                    "to a datastore and use (datastore, 'path')"
                )
            if "://" not in uri:
                uri = Path(uri).expanduser().resolve().as_uri() if not _GLOB_CHARS.search(uri) else (
                    "file://" + posixpath.join(Path.cwd().as_posix(), uri) if not uri.startswith("/")
                    else "file://" + uri)
            entries.append({"uri": uri})
            continue
        else:
            raise UserErrorException(
                f"Unsupported dataset path {item!r}: use a (Datastore, 'relative/path') tuple, a DataPath, a URL "
                "string, or a list of those"
            )
        if isinstance(store, Datastore):
            workspace = workspace or store.workspace
            name = store.name
        elif isinstance(store, str):
            name = store
        else:
            raise UserErrorException(f"Dataset path {item!r}: the first element must be a Datastore")
        entries.append({"datastore": name, "path": str(rel or "").replace("\\", "/").lstrip("/")})
    return entries, workspace


# ---------------------------------------------------------------------------------------------- factories
def _definition(kind: str, fmt: str, path: Any, options: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    entries, workspace = _path_entries(path)
    definition = {"type": kind, "source": {"format": fmt, "paths": entries, "options": options}, "transforms": []}
    return definition, workspace


def _make(kind: str, fmt: str, path: Any, options: dict[str, Any], validate: bool) -> Any:
    from airflow_mlpipe.sdk.dataset import Dataset

    definition, workspace = _definition(kind, fmt, path, {k: v for k, v in options.items() if v is not None})
    if validate:
        list_files(workspace, definition["source"])
    return Dataset.from_definition(workspace, definition)


class FileDatasetFactory:
    """``Dataset.File``."""

    @staticmethod
    def from_files(path: Any, validate: bool = True, partition_format: str | None = None,
                   is_file: bool = False) -> FileDataset:
        return _make("file", "files", path, {"partition_format": partition_format}, validate)

    @staticmethod
    def upload_directory(src_dir: str, target: Any, pattern: str | None = None, overwrite: bool = False,
                         show_progress: bool = True) -> FileDataset:
        """Upload ``src_dir`` (files matching ``pattern`` if given) to ``target`` and return its FileDataset."""
        import fnmatch

        if isinstance(target, DataPath):
            store, rel = target.datastore, target.path_on_datastore
        elif isinstance(target, tuple) and len(target) == 2:
            store, rel = target
        else:
            raise UserErrorException("upload_directory: target must be a (datastore, 'path') tuple or DataPath")
        if not os.path.isdir(src_dir):
            raise UserErrorException(f"upload_directory: {src_dir!r} is not a directory")
        files = [os.path.join(d, f) for d, _, names in sorted(os.walk(src_dir)) for f in sorted(names)]
        if pattern:
            files = [f for f in files if fnmatch.fnmatch(os.path.relpath(f, src_dir).replace(os.sep, "/"), pattern)]
        store.upload_files(files, relative_root=src_dir, target_path=rel, overwrite=overwrite,
                           show_progress=show_progress)
        return FileDatasetFactory.from_files((store, rel or ""))


class TabularDatasetFactory:
    """``Dataset.Tabular``."""

    @staticmethod
    def from_delimited_files(path: Any, validate: bool = True, include_path: bool = False,
                             infer_column_types: bool = True, set_column_types: dict[str, Any] | None = None,
                             separator: str = ",", header: Any = True, partition_format: str | None = None,
                             support_multi_line: bool = False, empty_as_string: bool = False,
                             encoding: str = "utf8", file_extension: str | None = None) -> TabularDataset:
        options = {"separator": separator, "header": _header_mode(header), "include_path": bool(include_path),
                   "infer_column_types": bool(infer_column_types),
                   "set_column_types": _column_types_spec(set_column_types) or None,
                   "partition_format": partition_format, "support_multi_line": bool(support_multi_line),
                   "empty_as_string": bool(empty_as_string), "encoding": encoding, "file_extension": file_extension}
        return _make("tabular", "delimited", path, options, validate)

    @staticmethod
    def from_parquet_files(path: Any, validate: bool = True, include_path: bool = False,
                           set_column_types: dict[str, Any] | None = None, partition_format: str | None = None,
                           file_extension: str | None = None) -> TabularDataset:
        options = {"include_path": bool(include_path), "set_column_types": _column_types_spec(set_column_types) or None,
                   "partition_format": partition_format, "file_extension": file_extension}
        return _make("tabular", "parquet", path, options, validate)

    @staticmethod
    def from_json_lines_files(path: Any, validate: bool = True, include_path: bool = False,
                              set_column_types: dict[str, Any] | None = None, partition_format: str | None = None,
                              invalid_lines: str = "error", encoding: str = "utf8",
                              file_extension: str | None = None) -> TabularDataset:
        if invalid_lines not in ("error", "drop"):
            raise UserErrorException(f"invalid_lines must be 'error' or 'drop', got {invalid_lines!r}")
        options = {"include_path": bool(include_path), "set_column_types": _column_types_spec(set_column_types) or None,
                   "partition_format": partition_format, "invalid_lines": invalid_lines, "encoding": encoding,
                   "file_extension": file_extension}
        return _make("tabular", "json_lines", path, options, validate)

    @staticmethod
    def from_sql_query(query: Any, validate: bool = True, set_column_types: Any = None,
                       query_timeout: int = 30) -> TabularDataset:
        """``query`` is ``DataPath(sql_datastore, 'SELECT …')`` or ``(sql_datastore, 'SELECT …')``; any SQL
        datastore (v1: only MS SQL). The dataset is read by running the query; its identity is its result."""
        from airflow_mlpipe.data.sql_dataset import sql_location, validate_query
        from airflow_mlpipe.sdk.dataset import Dataset

        if isinstance(query, DataPath):
            store, sql = query.datastore, query.path_on_datastore
        elif isinstance(query, tuple) and len(query) == 2:
            store, sql = query
        else:
            raise UserErrorException("from_sql_query: query must be DataPath(sql_datastore, 'SELECT ...') or a "
                                     f"(sql_datastore, 'SELECT ...') tuple, got {type(query).__name__}")
        if not isinstance(sql, str) or not sql.strip():
            raise UserErrorException(f"from_sql_query: the query must be a non-empty SQL string, got {sql!r}")
        workspace = getattr(store, "workspace", None)
        if workspace is None:
            raise UserErrorException("from_sql_query: the datastore must be a Datastore object of a workspace")
        options = {"datastore": store.name, "query": sql, "query_timeout": query_timeout}
        if set_column_types:
            options["set_column_types"] = _column_types_spec(set_column_types)
        source = {"format": "sql", "paths": [], "options": options}
        sql_location(workspace, source)  # a SQL datastore, or an error naming it
        if validate:
            validate_query(workspace, source)
        return Dataset.from_definition(workspace, {"type": "tabular", "source": source, "transforms": []})

    @staticmethod
    def register_pandas_dataframe(dataframe: Any, target: Any, name: str, description: str | None = None,
                                  tags: dict[str, Any] | None = None, show_progress: bool = True,
                                  row_group_size: int | None = None,
                                  make_target_path_unique: bool = True) -> TabularDataset:
        """Write the frame as Parquet under ``target`` and register it (unique path = content hash)."""
        if isinstance(target, DataPath):
            store, rel = target.datastore, target.path_on_datastore or ""
        elif isinstance(target, tuple) and len(target) == 2:
            store, rel = target
        else:
            store, rel = target, ""
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "part-00000.parquet")
            dataframe.to_parquet(local, index=False, row_group_size=row_group_size)
            if make_target_path_unique:
                digest = hashlib.sha256(Path(local).read_bytes()).hexdigest()[:16]
                rel = posixpath.join(rel or "", digest)
            store.upload_files([local], relative_root=tmp, target_path=rel, overwrite=True,
                               show_progress=show_progress)
        ds = TabularDatasetFactory.from_parquet_files((store, rel))
        return ds.register(store.workspace, name, description=description, tags=tags, create_new_version=True)

