"""A step's recorded inputs and outputs as the UI shows them, and the preview of a tabular one: the first rows of
its Parquet or delimited files, read only inside the port's own folder of its datastore."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from fastapi import HTTPException

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.paths import relative_path
from airflow_mlpipe.data.dataset_files import FORMAT_EXTENSIONS, FileMatch, list_files
from airflow_mlpipe.data.datastore_location import DatastoreLocation
from airflow_mlpipe.plugins import ui_views as views

#: formats a preview reads
TABLE_FORMATS = ("parquet", "delimited")
#: a preview answers at most this many rows
MAX_PREVIEW_ROWS = 100
#: Parquet files whose footers a preview reads to count the rows (more: TotalRows is null)
MAX_COUNTED_FILES = 100


@dataclass
class Port:
    """One recorded input or output of a step: what the view shows and where its data is, if readable here."""

    record: dict[str, Any]
    #: a dataset-definition source over datastore paths (``format``, ``options``, ``paths``); None: not readable
    source: dict[str, Any] | None
    uri: str | None = None


def _files(datastore: str, path: Any, fmt: str | None) -> dict[str, Any]:
    return {"format": fmt or "files", "options": {}, "paths": [{"datastore": datastore, "path": path or ""}]}


def _datastore_uri(ws: Any, datastore: str, path: Any) -> str | None:
    try:
        return DatastoreLocation.get(ws, datastore).uri(str(path or ""))
    except UserErrorException:  # a datastore no longer registered: the view shows no URI
        return None


def output_port(record: Any) -> Port:
    if not isinstance(record, dict) or not record.get("datastore") or record.get("format") == "sql_table":
        return Port(record if isinstance(record, dict) else {}, None)
    return Port(record, _files(record["datastore"], record.get("path"), record.get("format")), record.get("uri"))


def input_port(ws: Any, record: Any) -> Port:
    """An input as recorded when its step ran: the producer's output, a datastore path or a dataset."""
    if not isinstance(record, dict):
        return Port({}, None)
    kind = record.get("kind")
    if kind == "pipeline_data":
        producer = ws.store.get_step_run(str(record.get("producer_run_id") or "")) or {}
        output = next((o for o in (producer.get("outputs") or {}).values()
                       if isinstance(o, dict) and o.get("uri") == record.get("uri")), None)
        if output is None:
            return Port(record, None, record.get("uri"))
        return Port({**output, **record}, output_port(output).source, record.get("uri"))
    if kind in ("data_reference", "datapath_parameter") and record.get("datastore"):
        return Port(record, _files(record["datastore"], record.get("path"), "files"),
                     _datastore_uri(ws, record["datastore"], record.get("path")))
    if kind == "dataset" and record.get("dataset_id"):
        definition = (ws.store.get_dataset_by_id(str(record["dataset_id"])) or {}).get("definition") or {}
        source = definition.get("source") or {}
        paths = source.get("paths") or []
        first = paths[0] if paths else {}
        uri = first.get("uri") or (_datastore_uri(ws, first["datastore"], first.get("path"))
                                   if first.get("datastore") else None)
        readable = (definition.get("type") == "tabular" and source.get("format") in TABLE_FORMATS and paths
                    and all(p.get("datastore") for p in paths))
        return Port(record, source if readable else None, uri)
    return Port(record, None)


def table_source(ws: Any, source: dict[str, Any] | None) -> dict[str, Any] | None:
    """``source`` as the table a preview reads (Parquet or delimited files), or None when it holds none: a plain
    output or folder is a table when all its data files are Parquet, or all CSV, or all TSV (a delimited output
    of TSV files is read with tabs)."""
    if source is None or source["format"] not in ("files", *TABLE_FORMATS):
        return None
    if source["format"] == "parquet" or "separator" in (source.get("options") or {}):
        return source
    names = [posixpath.basename(m.path).lower() for m in list_files(ws, source, ignore_not_found=True).matches]
    names = [n for n in names if not n.startswith((".", "_"))]
    kinds = (("parquet", FORMAT_EXTENSIONS["parquet"], {}), ("delimited", (".csv",), {}),
             ("delimited", (".tsv",), {"separator": "\t"}))
    for fmt, extensions, options in kinds:
        if names and source["format"] in ("files", fmt) and all(n.endswith(extensions) for n in names):
            return {**source, "format": fmt, "options": {**options, "file_extension": list(extensions)}}
    return source if source["format"] == "delimited" else None


def is_table(ws: Any, source: dict[str, Any] | None) -> bool:
    try:
        return table_source(ws, source) is not None
    except Exception:  # noqa: BLE001 - a port that cannot be listed now is not previewable; the view still loads
        return False


def port_ref(ws: Any, name: str, port: Port, tables: dict[str, bool] | None = None) -> dict[str, Any]:
    """The view of one port; ``tables`` (source → is a table) spares a view listing the same folder twice (an
    output and the input of the next step)."""
    tables = {} if tables is None else tables
    known = json.dumps(port.source, sort_keys=True, default=str)
    if known not in tables:
        tables[known] = is_table(ws, port.source)
    return views.data_ref(name, port.record, tables[known], port.uri)


def find_port(ws: Any, facts: views.StepFacts, side: str, name: str) -> Port:
    """The step's recorded ``side`` port ``name`` (a reused step's inputs are its producer's); 404 otherwise."""
    if facts.row is None:
        raise HTTPException(404, f"Step {facts.task_id!r} has not run: it has no recorded {side}s")
    recorded = (facts.row if side == "output" else facts.reported).get(f"{side}s") or {}
    if name not in recorded:
        raise HTTPException(404, f"Step {facts.task_id!r} has no {side} {name!r} (its {side}s: {sorted(recorded)})")
    return output_port(recorded[name]) if side == "output" else input_port(ws, recorded[name])


def _inside(store: Any, root: str, path: str) -> bool:
    """Whether ``path`` is ``root`` or in it, and ``root`` in the datastore (local paths with symlinks resolved)."""
    if store.is_local:
        base, target = FilePath(root).resolve(), FilePath(path).resolve()
        return base.is_relative_to(FilePath(store.root).resolve()) and (target == base or target.is_relative_to(base))
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def checked_files(ws: Any, source: dict[str, Any], port: str) -> list[FileMatch]:
    """The files a preview of ``source`` reads, each checked to lie inside one of its recorded paths."""
    roots = []
    for entry in source["paths"]:
        rel = relative_path(entry.get("path") or "", f"port {port!r}: the recorded path", allow_empty=True)
        store = DatastoreLocation.get(ws, entry["datastore"])
        roots.append((store, store.full_path(rel)))
    matches = list_files(ws, source, ignore_not_found=True).matches
    for m in matches:
        if not any(_inside(store, root, m.path) for store, root in roots):
            raise UserErrorException(f"port {port!r}: {posixpath.basename(m.path)} leads outside the port's folder "
                                     "(a symbolic link); it is not read")
    return matches


#: what a reader gives: the columns, the rows (values in column order) and the row count when it is known
Rows = tuple[list[str], list[list[Any]], int | None]


def _batch_rows(columns: list[str], names: list[str], batch: Any, limit: int) -> list[list[Any]]:
    """A record batch's first ``limit`` rows in ``columns`` order (a later file's columns matched by name)."""
    rows = [list(values) for values in zip(*(c.to_pylist() for c in batch.columns), strict=True)][:limit]
    if names == columns:
        return rows
    index = {n: i for i, n in enumerate(names)}
    return [[row[index[c]] if c in index else None for c in columns] for row in rows]


def _parquet_rows(files: list[FileMatch], limit: int) -> Rows:
    import pyarrow.parquet as pq

    columns: list[str] | None = None
    rows: list[list[Any]] = []
    total, count = 0, len(files) <= MAX_COUNTED_FILES
    for m in files:
        if len(rows) >= limit and not count:
            break
        with m.fs.open(m.path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            total += parquet.metadata.num_rows
            names = parquet.schema_arrow.names
            columns = columns if columns is not None else names
            for batch in parquet.iter_batches(batch_size=limit) if len(rows) < limit else ():
                rows += _batch_rows(columns, names, batch, limit - len(rows))
                if len(rows) >= limit:
                    break
    return columns or [], rows, total if count else None


def _delimited_rows(files: list[FileMatch], options: dict[str, Any], limit: int) -> Rows:
    import pyarrow.csv as pacsv

    from airflow_mlpipe.data.dataset_definition import header_mode

    header = header_mode(options.get("header", True)) != "none"
    parse = pacsv.ParseOptions(delimiter=options.get("separator", ","))
    columns: list[str] | None = None
    rows: list[list[Any]] = []
    for m in files:
        if len(rows) >= limit:
            break
        with m.fs.open(m.path, "rb") as handle:
            reader = pacsv.open_csv(handle, parse_options=parse, read_options=pacsv.ReadOptions(
                block_size=1 << 20, autogenerate_column_names=not header))
            names = reader.schema.names if header else [f"Column{i + 1}" for i in range(len(reader.schema))]
            columns = columns if columns is not None else names
            for batch in reader:
                rows += _batch_rows(columns, names, batch, limit - len(rows))
                if len(rows) >= limit:
                    break
    return columns or [], rows, None


def preview(ws: Any, source: dict[str, Any], port: str, limit: int) -> dict[str, Any]:
    import pyarrow as pa

    files = checked_files(ws, source, port)
    try:
        if source["format"] == "parquet":
            columns, rows, total = _parquet_rows(files, limit)
        else:
            columns, rows, total = _delimited_rows(files, source.get("options") or {}, limit)
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise UserErrorException(f"port {port!r} could not be read as {source['format']} files: {exc}") from exc
    return {"Columns": [str(c) for c in columns], "Rows": [[views.json_value(v) for v in row] for row in rows],
            "TotalRows": total}
