"""Running one DataTransferStep inside the shared step lifecycle.

File sources (a DataReference, a PipelineData, a DataPath parameter) are keyed like any input: listings with
ETag, size and version on object stores, content hashes locally, so an unchanged source is reused without a copy.
A SQL source can only be known by reading it: the query always runs, streamed into its destination while being
hashed, and the step's key includes that hash, so an unchanged result gives an unchanged output and later steps
are reused. The copy publishes its destination atomically itself (:mod:`data.file_copy`, :mod:`data.sql_export`,
:mod:`data.sql_load`); the lifecycle then records the output and, only on success, the cache entry.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.paths import relative_path
from airflow_mlpipe.data.datastore_location import DatastoreLocation
from airflow_mlpipe.runtime.step_runner import (
    StepExecution,
    StepFailed,
    StepResult,
    StepWork,
    begin_step,
    commit_step,
    execute_step,
)

#: a SQL result written into a destination folder
EXPORT_FILE = "part-00000"
_EXPORT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class TransferOutputs:
    """The staged-outputs protocol for a copy that already published its destination atomically."""

    def __init__(self, committed: dict[str, dict[str, Any]]) -> None:
        self._committed = committed

    def commit(self) -> dict[str, dict[str, Any]]:
        return self._committed

    def discard(self) -> None:
        """Nothing to remove: an unfinished copy is invisible at its destination and resumed by the next try."""


@contextlib.contextmanager
def _naming(ex: StepExecution, what: str) -> Iterator[None]:
    """A storage or database error names the step, the datastores and the paths (the drivers' own messages often
    name none of them); the cause stays chained for the log."""
    try:
        yield
    except (StepFailed, KeyboardInterrupt):
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StepFailed(f"Step {ex.step['name']!r}: {what} failed: {reason}") from exc


def _progress(ex: StepExecution) -> Any:
    return lambda message: ex.log.info("Step %r: %s", ex.step["name"], message)


def _destination(ex: StepExecution) -> tuple[DatastoreLocation, dict[str, Any]]:
    """The destination datastore and ``{"datastore", "path"}`` or ``{"datastore", "sql"}`` (a parameter's value
    when the destination is a DataPath pipeline parameter)."""
    dest = dict(ex.step["transfer"]["destination"])
    where = f"Step {ex.step['name']!r}, destination_data_reference"
    if "parameter" in dest:
        value = ex.parameter_values.get(dest["parameter"])
        if not isinstance(value, dict):
            raise StepFailed(f"{where}: parameter {dest['parameter']!r} must be a DataPath, got {value!r}")
        dest = {"datastore": value.get("datastore"), "path": value.get("path") or ""}
    dest["datastore"] = dest.get("datastore") or ex.workspace._default_datastore_name
    store = DatastoreLocation.get(ex.workspace, dest["datastore"])
    if dest.get("sql"):
        if not getattr(store, "is_sql", False):
            raise StepFailed(f"{where}: datastore {store.name!r} is a {store.datastore_type} datastore, not a SQL one")
        return store, dest
    dest["path"] = relative_path(dest.get("path") or "", f"{where}: path", allow_empty=True)
    if getattr(store, "is_sql", False):
        raise StepFailed(f"{where}: datastore {store.name!r} is a SQL datastore; name a table with "
                         "SqlDataReference(..., sql_table=...)")
    return store, dest


def _source(ex: StepExecution, upstream: dict[str, dict[str, Any]]) -> tuple[DatastoreLocation, str]:
    """The source datastore and the path on it."""
    name = ex.step["transfer"]["source_input"]
    inp = next(i for i in ex.step["inputs"] if i["name"] == name)
    if inp["kind"] == "pipeline_data":
        ref = upstream[name]
    elif inp["kind"] == "datapath_parameter":
        ref = ex.parameter_values.get(inp["parameter"])
        if not isinstance(ref, dict):
            raise StepFailed(f"Step {ex.step['name']!r}, source_data_reference: parameter {inp['parameter']!r} "
                             f"must be a DataPath, got {ref!r}")
    else:
        ref = inp
    store = DatastoreLocation.get(ex.workspace, ref.get("datastore") or ex.workspace._default_datastore_name)
    if getattr(store, "is_sql", False):
        raise StepFailed(f"Step {ex.step['name']!r}, source_data_reference: datastore {store.name!r} is a SQL "
                         "datastore; use SqlDataReference(datastore, sql_table=... | sql_query=... | "
                         "sql_stored_procedure=...)")
    path = relative_path(ref.get("path") or "", f"Step {ex.step['name']!r}, source_data_reference: path",
                         allow_empty=True)
    return store, path


def _output(ex: StepExecution, store: DatastoreLocation, dest: dict[str, Any], content_hash: str, size: int,
            files: int, **extra: Any) -> dict[str, dict[str, Any]]:
    spec = ex.step["outputs"][0]
    path = dest["sql"]["table"] if dest.get("sql") else dest["path"]
    uri = f"{store.url.rstrip('/')}#table={path}" if dest.get("sql") else store.uri(path)
    return {spec["name"]: {"uri": uri, "datastore": store.name, "path": path, "content_hash": content_hash,
                           "format": "sql_table" if dest.get("sql") else "files", "size": size, "files": files,
                           "pipeline_output_name": spec.get("pipeline_output_name"),
                           "producer_run_id": ex.step_run_id, **extra}}


def _table_format(path: str) -> str:
    return "csv" if path.lower().endswith((".csv", ".tsv", ".txt")) else "parquet"


# ---------------------------------------------------------------------------------------------- file sources
def _copy_body(ex: StepExecution, workdir: Path, upstream: dict[str, dict[str, Any]], manifest: dict[str, str],
               work: StepWork) -> None:
    """Copy files or a folder to a file datastore, or load Parquet/CSV into a SQL table."""
    transfer = ex.step["transfer"]
    src_store, src_path = _source(ex, upstream)
    dst_store, dest = _destination(ex)
    src_full = src_store.full_path(src_path)
    work.details["transfer"] = {"source": src_store.uri(src_path), "destination": dest}
    if dest.get("sql"):
        from airflow_mlpipe.data.sql_load import load

        table = dest["sql"]["table"]
        fmt = _table_format(src_full)
        ex.log.info("Step %r: loading %s into table %s of datastore %r (%s)", ex.step["name"],
                    src_store.uri(src_path), table, dst_store.name, transfer["sql_write_mode"])
        what = (f"loading {src_store.uri(src_path)} (datastore {src_store.name!r}) into table {table} of "
                f"datastore {dst_store.name!r}")
        with _naming(ex, what):
            result = load(dst_store.sql_url(), table, fs=src_store.fs, path=src_full, fmt=fmt,
                          mode=transfer["sql_write_mode"], progress=_progress(ex))
        source_hash = work.key.components["inputs"][transfer["source_input"]]
        from airflow_mlpipe.runtime.fingerprints import hash_json

        content = "blake3:" + hash_json({"source": source_hash, "table": table, "mode": transfer["sql_write_mode"],
                                         "rows": result.rows})
        work.outputs = TransferOutputs(_output(ex, dst_store, dest, content, result.rows, 0, rows=result.rows))
        return
    from airflow_mlpipe.data.file_copy import copy

    dst_full = dst_store.full_path(dest["path"])
    ex.log.info("Step %r: copying %s to %s", ex.step["name"], src_store.uri(src_path), dst_store.uri(dest["path"]))
    what = (f"copying {src_store.uri(src_path)} (datastore {src_store.name!r}) to {dst_store.uri(dest['path'])} "
            f"(datastore {dst_store.name!r})")
    with _naming(ex, what):
        result = copy(src_store.fs, src_full, dst_store.fs, dst_full,
                      reference_type=transfer["source_reference_type"], progress=_progress(ex),
                      source_id={"datastore": src_store.name, "path": src_path})
    ex.log.info("Step %r: %d file(s), %d bytes at the destination; %d copied, %d already there", ex.step["name"],
                result.files, result.bytes, result.copied, result.skipped)
    work.outputs = TransferOutputs(_output(ex, dst_store, dest, result.content_hash, result.bytes, result.files))


# ---------------------------------------------------------------------------------------------- SQL sources
def _export_path(dest: dict[str, Any], reference_type: str | None) -> tuple[str, str]:
    """(datastore-relative file path, format) of a SQL result: the destination itself when it names a file,
    else ``<destination>/part-00000.parquet``."""
    path = dest["path"]
    ext = posixpath.splitext(path)[1].lower()
    if reference_type == "file" or (reference_type is None and ext in _EXPORT_FORMATS):
        if not path:
            raise StepFailed("destination_data_reference: a file destination needs a path")
        return path, _EXPORT_FORMATS.get(ext, "parquet")
    return posixpath.join(path, f"{EXPORT_FILE}.parquet") if path else f"{EXPORT_FILE}.parquet", "parquet"


def _run_sql_source(ex: StepExecution) -> StepResult:
    """Stream the query into its destination while hashing it; the key includes that hash."""
    from airflow_mlpipe.data.hashing import tree_hash
    from airflow_mlpipe.data.sql_export import export
    from airflow_mlpipe.runtime import cache, fail_fast
    from airflow_mlpipe.runtime.fingerprints import hash_json

    step = ex.step
    transfer = step["transfer"]
    sql = transfer["source_sql"]
    begin_step(ex)
    watch = fail_fast.SiblingWatch(ex)
    try:
        src_store = DatastoreLocation.get(ex.workspace, sql["datastore"])
        if not getattr(src_store, "is_sql", False):
            raise StepFailed(f"Step {step['name']!r}, source_data_reference: datastore {src_store.name!r} is a "
                             f"{src_store.datastore_type} datastore, not a SQL one")
        dst_store, dest = _destination(ex)
        rel, fmt = _export_path(dest, transfer["destination_reference_type"])
        query = sql["sql"]
        ex.log.info("Step %r: exporting %s of datastore %r to %s (%s)", step["name"],
                    ", ".join(f"{k}={v!r}" for k, v in query.items() if k != "params"), src_store.name,
                    dst_store.uri(rel), fmt)
        what = f"exporting from datastore {src_store.name!r} to {dst_store.uri(rel)} (datastore {dst_store.name!r})"
        with watch, _naming(ex, what):
            result = export(src_store.sql_url(), query=query.get("query"), table=query.get("table"),
                            procedure=query.get("procedure"), params=query.get("params"), fs=dst_store.fs,
                            path=dst_store.full_path(rel), fmt=fmt, progress=_progress(ex))
        ex.log.info("Step %r: %d rows, %d bytes written", step["name"], result.rows, result.bytes)
        # the output is the file written (other files in a destination folder are not part of it)
        content = tree_hash([(posixpath.basename(rel), result.file_hash, result.bytes)])
        base = cache.compute_key(ex.workspace, step, {}, {}, ex.parameter_values)
        key = cache.StepKey("blake3:" + hash_json({"base": base.key, "result": content}),
                            {**base.components, "inputs": {"source": content}})
        outputs = TransferOutputs(_output(ex, dst_store, {**dest, "path": rel}, content, result.bytes, 1,
                                          rows=result.rows))
        source = {"kind": "sql_reference", "datastore": src_store.name, **query}
        return commit_step(ex, key, outputs, {"source": source},
                           {"transfer": {"source": source, "destination": dest, "rows": result.rows}})
    except BaseException as exc:
        stopped = fail_fast.record_failure(ex, exc, watch)
        if stopped is not None:
            raise stopped from exc
        raise


def run_transfer_step(ex: StepExecution) -> StepResult:
    """Run a DataTransferStep, or reuse a verified earlier copy of an unchanged file source."""
    if ex.step["transfer"].get("source_sql"):
        return _run_sql_source(ex)
    return execute_step(ex, _copy_body)
