"""Datasets (v1 §4): lazy, JSON-serialisable definitions over datastore paths or URLs — never copies.

A definition is ``{"type", "source": {"format", "paths", "options"}, "transforms", "id"?, "name"?,
"version"?}``; step processes receive it and reopen it with :meth:`Dataset.from_definition`. Files are matched
at read time (folders expand to their files, globs are honoured) and read with pyarrow in sorted path order.
Seeds of random transforms are fixed in the definition (derived from it when not given), so the same
definition always yields the same rows and complementary splits stay complementary.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_mlpipe.exceptions import UserErrorException
from airflow_mlpipe.sdk.data_reference import DataPath, DataReference
from airflow_mlpipe.sdk.dataset_consumption import DatasetConsumptionConfig, check_input_name

FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "delimited": (".csv", ".tsv", ".txt", ".psv"),
    "parquet": (".parquet", ".parq", ".pq"),
    "json_lines": (".jsonl", ".json", ".ndjson"),
    "files": (),
}
_GLOB_CHARS = re.compile(r"[*?\[]")
_FILE_TRANSFORMS = ("take", "skip", "take_sample", "random_split")
_ENCODINGS = {"utf8": "utf8", "utf8bom": "utf-8-sig", "iso88591": "iso-8859-1", "latin1": "latin1",
              "ascii": "ascii", "utf16": "utf-16", "utf32": "utf-32", "windows1252": "cp1252"}


# ---------------------------------------------------------------------------------------------- helpers
def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _core(definition: dict[str, Any]) -> dict[str, Any]:
    return {k: definition.get(k) for k in ("type", "source", "transforms")}


def definition_hash(definition: dict[str, Any]) -> str:
    """sha256 of the canonical definition without registration fields (id, name, version)."""
    return hashlib.sha256(canonical_json(_core(definition)).encode()).hexdigest()


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


def _header_mode(value: Any) -> str:
    """True / ALL_FILES_HAVE_SAME_HEADERS → 'all'; False / NO_HEADERS → 'none'; FROM_FIRST_FILE → 'first'."""
    value = getattr(value, "value", value)
    if value is True or value in (2, 3, "all", "all_files_have_same_headers", "all_files_different_headers"):
        return "all"
    if value is False or value in (0, "none", "no_headers"):
        return "none"
    if value in (1, "first", "from_first_file"):
        return "first"
    raise UserErrorException(f"header={value!r} is not supported; use True, False or a PromoteHeadersBehavior")


def _seed_for(definition: dict[str, Any], seed: int | None) -> int:
    return int(seed) if seed is not None else int(definition_hash(definition)[:8], 16)


def _random_mask(n: int, probability: float, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed).random(n) < probability


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


@dataclass
class _Match:
    fs: Any
    path: str
    base: str
    direct_file: bool
    rel: str = ""

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = getattr(fs, "protocol", ())
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _entry_label(entry: dict[str, Any]) -> str:
    return entry["uri"] if "uri" in entry else f"{entry['datastore']}:/{entry.get('path', '')}"


def _extensions(fmt: str, options: dict[str, Any]) -> tuple[str, ...] | None:
    ext = options.get("file_extension")
    if ext is None:
        return FORMAT_EXTENSIONS.get(fmt) or None
    if not ext:
        return None
    return tuple(e if e.startswith(".") else "." + e for e in ([ext] if isinstance(ext, str) else ext))


def _match_entry(workspace: Any, entry: dict[str, Any], fmt: str, options: dict[str, Any]) -> list[_Match]:
    from airflow_mlpipe.sdk.datastore import resolve_uri

    if "datastore" in entry and workspace is None:
        raise UserErrorException(
            f"Dataset path {_entry_label(entry)} names a datastore but the dataset has no workspace; use "
            "Dataset.from_definition(workspace, …) or register the dataset"
        )
    fs, full = resolve_uri(workspace, entry)
    if _GLOB_CHARS.search(full):
        parts = full.split("/")
        prefix = []
        for part in parts:
            if _GLOB_CHARS.search(part):
                break
            prefix.append(part)
        base = "/".join(prefix) or "/"
        found = fs.glob(full, detail=True)
        return [_Match(fs, p, base, False) for p, info in sorted(found.items()) if info.get("type") == "file"]
    if not fs.exists(full):
        return []
    if fs.isfile(full):
        return [_Match(fs, full, posixpath.dirname(full) or "/", True)]
    exts = _extensions(fmt, options)
    out = []
    for p in sorted(fs.find(full)):
        name = posixpath.basename(p)
        if fmt != "files" and name.startswith((".", "_")):
            continue
        if exts and not name.lower().endswith(exts):
            continue
        out.append(_Match(fs, p, full.rstrip("/") or "/", False))
    return out


@dataclass
class _Listing:
    matches: list[_Match]
    base: str | None
    single_file: bool


def _list_files(workspace: Any, source: dict[str, Any], ignore_not_found: bool = False) -> _Listing:
    fmt = source.get("format", "files")
    options = source.get("options") or {}
    entries = source.get("paths") or []
    matches: list[_Match] = []
    for entry in entries:
        found = _match_entry(workspace, entry, fmt, options)
        if not found and not ignore_not_found:
            hint = f" with extension {', '.join(_extensions(fmt, options) or ())}" if fmt != "files" else ""
            raise UserErrorException(f"Dataset path {_entry_label(entry)} matches no file{hint}")
        matches.extend(found)
    base = None
    same_fs = len({_protocols(m.fs) for m in matches}) <= 1
    if matches and same_fs:
        try:
            base = posixpath.commonpath([m.base for m in matches]) or None
        except ValueError:
            base = None
    for m in matches:
        root = base or m.base
        m.rel = posixpath.relpath(m.path, root) if root not in ("", "/") else m.path.lstrip("/")
    single = len(entries) == 1 and len(matches) == 1 and matches[0].direct_file
    return _Listing(matches, base, single)


# ---------------------------------------------------------------------------------------------- reading
def _partition_parser(fmt: str | None) -> tuple[re.Pattern[str], list[tuple[str, str | None]]] | None:
    """``'/{Dept}/{Date:yyyy/MM/dd}/data.csv'`` → a suffix regex and its (column, date format) list."""
    if not fmt:
        return None
    pattern, columns, pos = "", [], 0
    for m in re.finditer(r"\{([^}:]+)(?::([^}]+))?\}", fmt):
        pattern += re.escape(fmt[pos:m.start()])
        name, datefmt = m.group(1), m.group(2)
        if datefmt:
            rx = re.escape(datefmt)
            for token, digits in (("yyyy", 4), ("MM", 2), ("dd", 2), ("HH", 2), ("mm", 2), ("ss", 2)):
                rx = rx.replace(token, rf"\d{{{digits}}}")
            pattern += f"({rx})"
        else:
            pattern += "([^/]+)"
        columns.append((name, datefmt))
        pos = m.end()
    pattern += re.escape(fmt[pos:])
    return re.compile(pattern + "$"), columns


def _partition_values(parser: Any, rel: str) -> dict[str, Any]:
    if parser is None:
        return {}
    regex, columns = parser
    m = regex.search("/" + rel)
    if not m:
        return {name: None for name, _ in columns}
    out: dict[str, Any] = {}
    for (name, datefmt), value in zip(columns, m.groups(), strict=True):
        if datefmt:
            py = datefmt
            for token, code in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
                                ("ss", "%S")):
                py = py.replace(token, code)
            value = datetime.strptime(value, py)
        out[name] = value
    return out


def _first_row(data: bytes, encoding: str, separator: str) -> list[str]:
    text = data[: 1 << 16].decode(encoding, errors="replace")
    try:
        return next(csv.reader(io.StringIO(text), delimiter=separator))
    except StopIteration:
        return []


def _read_delimited(data: bytes, options: dict[str, Any], header: bool, names: list[str] | None) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    encoding = _ENCODINGS.get(str(options.get("encoding", "utf8")).lower(), options.get("encoding", "utf8"))
    separator = options.get("separator", ",")
    typed = options.get("set_column_types") or {}
    read_kw: dict[str, Any] = {"encoding": encoding}
    if names is not None:
        read_kw["column_names"] = names
        read_kw["skip_rows"] = 1 if header else 0
    elif not header:
        count = len(_first_row(data, "utf-8-sig" if encoding == "utf8" else encoding, separator))
        read_kw["column_names"] = [f"Column{i + 1}" for i in range(count)]
    if names is None and header and not options.get("infer_column_types", True):
        cols = _first_row(data, "utf-8-sig" if encoding == "utf8" else encoding, separator)
    else:
        cols = read_kw.get("column_names") or []
    string_cols = set(typed)
    if not options.get("infer_column_types", True):
        string_cols |= set(cols)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in string_cols},
        strings_can_be_null=not options.get("empty_as_string", False),
        quoted_strings_can_be_null=not options.get("empty_as_string", False),
    )
    parse = pacsv.ParseOptions(delimiter=separator, newlines_in_values=bool(options.get("support_multi_line")))
    if encoding in ("utf8", "utf-8-sig") and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        read_kw["encoding"] = "utf8"
    return pacsv.read_csv(pa.BufferReader(data), read_options=pacsv.ReadOptions(**read_kw),
                          parse_options=parse, convert_options=convert)


def _read_json_lines(data: bytes, options: dict[str, Any]) -> Any:
    import pyarrow as pa
    import pyarrow.json as pajson

    if options.get("invalid_lines", "error") == "drop":
        rows = []
        for line in data.decode(options.get("encoding") or "utf8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return pa.Table.from_pylist(rows)
    return pajson.read_json(pa.BufferReader(data))


def _read_table(listing: _Listing, fmt: str, options: dict[str, Any]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt not in ("delimited", "parquet", "json_lines"):
        raise UserErrorException(f"Cannot read format {fmt!r} as a table")
    parser = _partition_parser(options.get("partition_format"))
    header_mode = _header_mode(options.get("header", True))
    tables = []
    names: list[str] | None = None
    for i, m in enumerate(listing.matches):
        with m.fs.open(m.path, "rb") as handle:
            data = handle.read()
        try:
            if fmt == "delimited":
                header = header_mode == "all" or (header_mode == "first" and i == 0)
                table = _read_delimited(data, options, header, names if header_mode == "first" else None)
                if header_mode == "first" and names is None:
                    names = table.column_names
            elif fmt == "parquet":
                table = pq.read_table(pa.BufferReader(data))
            else:
                table = _read_json_lines(data, options)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise UserErrorException(f"Could not read {m.path} as {fmt}: {exc}") from exc
        if options.get("include_path"):
            table = table.append_column("Path", pa.array(["/" + m.rel] * table.num_rows, pa.string()))
        for col, value in _partition_values(parser, m.rel).items():
            table = table.append_column(col, pa.array([value] * table.num_rows))
        tables.append(table)
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


def _convert(series: Any, spec: dict[str, Any], errors: str, col: str) -> Any:
    import pandas as pd

    kind = spec.get("type")
    try:
        if kind == "string":
            return series.astype("str").where(series.notna(), None) if series.dtype != "str" else series
        if kind in ("long", "float"):
            values = series
            if kind == "float" and spec.get("decimal_mark", ".") != "." and values.dtype == "str":
                values = values.str.replace(spec["decimal_mark"], ".", regex=False)
            numbers = pd.to_numeric(values, errors=errors)
            if kind == "long":
                if errors == "raise" and (numbers.dropna() % 1 != 0).any():
                    raise ValueError("non-integer values")
                return numbers.where(numbers % 1 == 0).astype("Int64")
            return numbers.astype("float64")
        if kind == "bool":
            mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
                       "t": True, "f": False}
            mapped = series.map(lambda v: v if isinstance(v, bool) or v is None or v != v
                                else mapping.get(str(v).strip().lower(), "bad"))
            if errors == "raise" and (mapped == "bad").any():
                raise ValueError("values that are not booleans")
            return mapped.where(mapped != "bad", None).astype("boolean")
        if kind == "datetime":
            formats = spec.get("formats") or [None]
            result = pd.to_datetime(series, format=formats[0], errors="coerce")
            for fmt in formats[1:]:
                result = result.fillna(pd.to_datetime(series, format=fmt, errors="coerce"))
            if errors == "raise" and (result.isna() & series.notna()).any():
                raise ValueError("values that do not parse as datetimes")
            return result
    except (ValueError, TypeError) as exc:
        raise UserErrorException(f"Column {col!r} cannot be converted to {kind}: {exc}") from exc
    raise UserErrorException(f"Column {col!r}: unknown column type {kind!r}")


def _apply_table_transforms(df: Any, transforms: list[dict[str, Any]]) -> Any:
    for t in transforms:
        op = t.get("op")
        if op == "take":
            df = df.iloc[: int(t["count"])]
        elif op == "skip":
            df = df.iloc[int(t["count"]):]
        elif op == "take_sample":
            df = df[_random_mask(len(df), float(t["probability"]), int(t["seed"]))]
        elif op == "random_split":
            mask = _random_mask(len(df), float(t["percentage"]), int(t["seed"]))
            df = df[mask if int(t.get("part", 0)) == 0 else ~mask]
        elif op == "keep_columns":
            cols = [c for c in t["columns"] if c in df.columns]
            missing = [c for c in t["columns"] if c not in df.columns]
            if missing and t.get("validate"):
                raise UserErrorException(f"keep_columns: columns {missing} are not in the dataset")
            df = df[cols]
        elif op == "drop_columns":
            df = df.drop(columns=[c for c in t["columns"] if c in df.columns])
        else:
            raise UserErrorException(f"Unknown tabular transform {op!r}")
        df = df.reset_index(drop=True)
    return df


def _apply_file_transforms(matches: list[_Match], transforms: list[dict[str, Any]]) -> list[_Match]:
    for t in transforms:
        op = t.get("op")
        if op == "take":
            matches = matches[: int(t["count"])]
        elif op == "skip":
            matches = matches[int(t["count"]):]
        elif op == "take_sample":
            mask = _random_mask(len(matches), float(t["probability"]), int(t["seed"]))
            matches = [m for m, keep in zip(matches, mask, strict=True) if keep]
        elif op == "random_split":
            mask = _random_mask(len(matches), float(t["percentage"]), int(t["seed"]))
            part0 = int(t.get("part", 0)) == 0
            matches = [m for m, keep in zip(matches, mask, strict=True) if bool(keep) == part0]
        elif op in ("keep_columns", "drop_columns"):
            continue  # file-level view of a tabular dataset: column transforms do not select files
        else:
            raise UserErrorException(f"Unknown file transform {op!r}")
    return matches


def _copy_to_local(m: _Match, local: str, overwrite: bool) -> None:
    from airflow_mlpipe.sdk.datastore import atomic_local_copy

    if os.path.exists(local):
        if _local_same(m, local):
            return
        if not overwrite:
            raise UserErrorException(f"{local} already exists with different content; pass overwrite=True")
    with m.fs.open(m.path, "rb") as handle:
        atomic_local_copy(handle, local)


def _local_same(m: _Match, local: str) -> bool:
    try:
        if m.fs.size(m.path) != os.path.getsize(local):
            return False
        with m.fs.open(m.path, "rb") as a, open(local, "rb") as b:
            while True:
                ca, cb = a.read(1 << 20), b.read(1 << 20)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- datasets
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
        parser = _partition_parser(self._definition["source"].get("options", {}).get("partition_format"))
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
        if not isinstance(definition, dict) or definition.get("type") not in ("file", "tabular"):
            raise UserErrorException(f"Not a dataset definition: {definition!r}")
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
        return {"op": op, **fields, "seed": _seed_for(self._definition, seed)}

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
    def _listing(self, ignore_not_found: bool = False) -> _Listing:
        listing = _list_files(self._workspace, self._definition["source"], ignore_not_found)
        listing.matches = _apply_file_transforms(listing.matches, self._definition["transforms"])
        return listing

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
        target = target_path or tempfile.mkdtemp(prefix="mlpipe_dataset_")
        out = []
        for m in self._listing(ignore_not_found).matches:
            local = os.path.join(target, *m.rel.split("/"))
            _copy_to_local(m, local, overwrite)
            out.append(os.path.abspath(local))
        return out

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
        selects = any(t.get("op") in _FILE_TRANSFORMS for t in self._dataset._definition["transforms"])
        if (self._requested is None and listing.base and listing.matches and not selects
                and all(m.is_local for m in listing.matches)):
            self.mount_point = listing.base
            return
        if self._requested is None:
            self._temp = tempfile.mkdtemp(prefix="mlpipe_mount_")
        target = self._requested or self._temp
        for m in listing.matches:
            _copy_to_local(m, os.path.join(target, *m.rel.split("/")), True)
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
        source = self._source()
        listing = _list_files(self._workspace, source)
        return _read_table(listing, source["format"], source.get("options") or {})

    def to_pandas_dataframe(self, on_error: str = "null", out_of_range_datetime: str = "null") -> Any:
        if on_error not in ("null", "fail"):
            raise UserErrorException(f"to_pandas_dataframe: on_error must be 'null' or 'fail', got {on_error!r}")
        df = self._arrow().to_pandas()
        errors = "coerce" if on_error == "null" else "raise"
        for col, spec in (self._source().get("options") or {}).get("set_column_types", {}).items():
            if col in df.columns:
                df[col] = _convert(df[col], spec, errors, col)
        return _apply_table_transforms(df, self._definition["transforms"])

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


# ---------------------------------------------------------------------------------------------- factories
def _definition(kind: str, fmt: str, path: Any, options: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    entries, workspace = _path_entries(path)
    definition = {"type": kind, "source": {"format": fmt, "paths": entries, "options": options}, "transforms": []}
    return definition, workspace


def _make(cls: type[Dataset], kind: str, fmt: str, path: Any, options: dict[str, Any], validate: bool) -> Any:
    definition, workspace = _definition(kind, fmt, path, {k: v for k, v in options.items() if v is not None})
    if validate:
        _list_files(workspace, definition["source"])
    return cls(definition, workspace)


class FileDatasetFactory:
    """``Dataset.File``."""

    @staticmethod
    def from_files(path: Any, validate: bool = True, partition_format: str | None = None,
                   is_file: bool = False) -> FileDataset:
        return _make(FileDataset, "file", "files", path, {"partition_format": partition_format}, validate)

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
        return _make(TabularDataset, "tabular", "delimited", path, options, validate)

    @staticmethod
    def from_parquet_files(path: Any, validate: bool = True, include_path: bool = False,
                           set_column_types: dict[str, Any] | None = None, partition_format: str | None = None,
                           file_extension: str | None = None) -> TabularDataset:
        options = {"include_path": bool(include_path), "set_column_types": _column_types_spec(set_column_types) or None,
                   "partition_format": partition_format, "file_extension": file_extension}
        return _make(TabularDataset, "tabular", "parquet", path, options, validate)

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
        return _make(TabularDataset, "tabular", "json_lines", path, options, validate)

    @staticmethod
    def from_sql_query(query: Any, validate: bool = True, set_column_types: Any = None,
                       query_timeout: int = 30) -> TabularDataset:
        raise UserErrorException("Dataset.Tabular.from_sql_query is not supported yet; export the query result to "
                                 "Parquet on a datastore and use from_parquet_files")

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


Dataset.File = FileDatasetFactory
Dataset.Tabular = TabularDatasetFactory


# ---------------------------------------------------------------------------------------------- runtime
def materialize(workspace: Any, definition: dict[str, Any], mode: str, target_dir: str) -> str:
    """Local path for a step input: the real path when mounting a local store, else a download.

    A dataset defined on one file gives the file path; otherwise the folder holding the files.
    """
    ds = Dataset.from_definition(workspace, definition)
    listing = ds._listing()
    selects = any(t.get("op") in _FILE_TRANSFORMS for t in ds._definition["transforms"])
    if (mode == "mount" and listing.matches and not selects and all(m.is_local for m in listing.matches)
            and (listing.single_file or listing.base)):
        return listing.matches[0].path if listing.single_file else listing.base
    os.makedirs(target_dir, exist_ok=True)
    paths = []
    for m in listing.matches:
        local = os.path.join(target_dir, *m.rel.split("/"))
        _copy_to_local(m, local, True)
        paths.append(local)
    if listing.single_file and paths:
        return os.path.abspath(paths[0])
    return os.path.abspath(target_dir)

