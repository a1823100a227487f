"""DataTransferStep's export: a SQL query, table or procedure result -> one Parquet or CSV file on any fsspec
filesystem, streamed in Arrow batches so memory stays bounded whatever the row count.

PostgreSQL goes through ADBC (binary COPY straight into Arrow, the fast path); every other database through its
DBAPI driver with a server-side (streaming) cursor and ``fetchmany``. The file is deterministic (fixed row groups
of ``batch_rows`` rows, no timestamps in metadata) so an unchanged result has an unchanged ``file_hash``, and it
appears at the destination only once complete.
"""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import blake3
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from airflow_mlpipe.data.sql_dialects import (
    POSTGRES,
    backend,
    compile_query,
    convert_pg_batch,
    dbapi_schema,
    dialect_of,
    failure,
    from_database,
    libpq_uri,
    parse_url,
    pg_target_schema,
    procedure_sql,
    quote_name,
    to_record_batch,
)

FORMATS = ("parquet", "csv")
ADBC_BATCH_BYTES = 4 << 20  # what one ADBC batch from PostgreSQL may hold (driver default: 16 MiB)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: row count, file size, blake3 of the file's bytes, and ``[column, arrow type]``."""

    rows: int
    bytes: int
    file_hash: str
    schema: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    sql: str
    params: Any
    label: str  # "query", "table 'x'", "procedure 'p'" for errors


def _source(url: Any, query: Any, table: Any, procedure: Any, params: Any) -> _Source:
    given = [name for name, value in (("query", query), ("table", table), ("procedure", procedure))
             if value is not None]
    if len(given) != 1:
        raise ValueError(f"export: pass exactly one of query=, table=, procedure= (got "
                         f"{', '.join(given) or 'none'})")
    dialect = dialect_of(url)
    if query is not None:
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"query: expected a non-empty SQL string, got {query!r}")
        return _Source(query, params, "query")
    if table is not None:
        if params:
            raise ValueError("params: a table export takes no parameters; use query= to filter")
        return _Source(f"SELECT * FROM {quote_name(dialect, table)}", None, f"table {table!r}")
    sql, binds = procedure_sql(dialect, procedure, params)
    return _Source(sql, binds, f"procedure {procedure!r}")


OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oci", "oss", "r2"})


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _abort_upload(f: Any) -> None:
    """Throw an unfinished object-store upload away: ``discard()`` aborts a started multipart upload (s3fs),
    and marking the file closed stops ``close()``/``__del__`` from committing the partial object."""
    try:
        f.discard()
    finally:
        try:
            f.closed = True
        except AttributeError:
            pass


@contextmanager
def atomic_output(fs: Any, path: str) -> Iterator[Any]:
    """A binary stream whose bytes appear at ``path`` only if the block exits cleanly.

    Local disk: a temp file in the same folder, then ``os.replace``. Object stores: the single object, whose
    upload completes at close (aborted on error). Other filesystems (memory, sftp, ...): a hidden temp sibling,
    then ``fs.mv``.
    """
    protocols = _protocols(fs)
    if "file" in protocols or "local" in protocols:
        local = fs._strip_protocol(path)
        folder = os.path.dirname(local) or "."
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(local)}.", suffix=".mlpipe-tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a finished file gets the usual mode
            os.replace(tmp, local)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    elif OBJECT_STORES.intersection(protocols):
        f = fs.open(path, "wb")
        try:
            yield f
        except BaseException:
            _abort_upload(f)
            raise
        f.close()
    else:
        parent, _, base = path.rstrip("/").rpartition("/")
        tmp = f"{parent}/.{base}.{secrets.token_hex(6)}.mlpipe-tmp" if parent else f".{base}.mlpipe-tmp"
        if parent:
            fs.makedirs(parent, exist_ok=True)
        try:
            with fs.open(tmp, "wb") as f:
                yield f
            fs.mv(tmp, path)
        except BaseException:
            try:
                fs.rm(tmp)
            except FileNotFoundError:
                pass
            raise


class _HashingSink:
    """A write-only stream that hashes and counts the bytes on their way to the destination."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.hash, self.size, self.closed = raw, blake3.blake3(), 0, False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if self.closed:  # an aborted export's writer, flushing from __del__: drop it
            return view.nbytes
        self.hash.update(view)
        self.raw.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:  # the destination closes the real stream (or aborts it)
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class _GroupWriter:
    """Writes batches in groups of exactly ``rows`` rows, each one contiguous: the same rows always give the
    same bytes, however the database happened to batch them."""

    def __init__(self, sink: _HashingSink, schema: pa.Schema, fmt: str, rows: int) -> None:
        self.schema, self.fmt, self.rows = schema, fmt, rows
        self.pending: list[pa.RecordBatch] = []
        self.count = 0
        if fmt == "parquet":
            self.writer: Any = pq.ParquetWriter(sink, schema, compression="zstd", write_statistics=True)
        else:
            self.writer = pa_csv.CSVWriter(sink, csv_schema(schema))

    def add(self, batch: pa.RecordBatch) -> Iterator[int]:
        """Buffer a batch; yields the size of each group written."""
        if batch.num_rows:
            self.pending.append(batch)
            self.count += batch.num_rows
        while self.count >= self.rows:
            table = pa.Table.from_batches(self.pending, self.schema)
            self._write(table.slice(0, self.rows))
            rest = table.slice(self.rows)
            self.pending, self.count = rest.to_batches(), rest.num_rows
            yield self.rows

    def finish(self) -> int:
        tail = self.count
        if tail:
            self._write(pa.Table.from_batches(self.pending, self.schema))
        self.pending, self.count = [], 0
        self.writer.close()
        return tail

    def _write(self, table: pa.Table) -> None:
        table = table.combine_chunks()
        if self.fmt == "parquet":
            self.writer.write_table(table, row_group_size=self.rows)
        else:
            self.writer.write_table(_csv_table(table))


def csv_schema(schema: pa.Schema) -> pa.Schema:
    """CSV is text: binary columns are written as base64."""
    return pa.schema([pa.field(f.name, pa.string()) if _is_binary(f.type) else f for f in schema])


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _csv_table(table: pa.Table) -> pa.Table:
    if not any(_is_binary(f.type) for f in table.schema):
        return table
    columns = [pa.array([None if v is None else base64.b64encode(v).decode("ascii") for v in col.to_pylist()],
                        pa.string()) if _is_binary(col.type) else col for col in table.columns]
    return pa.Table.from_arrays(columns, schema=csv_schema(table.schema))


@contextmanager
def _postgres_batches(url: Any, src: _Source) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
    """ADBC: binary COPY into Arrow batches. Parameters are rendered as literals by libpq's own escaping
    (psycopg), since ADBC materialises whole results of parameterised statements."""
    import adbc_driver_postgresql.dbapi as adbc

    sql = src.sql
    if src.params:
        sql = _pg_literal_sql(url, sql, src.params)
    conn = adbc.connect(libpq_uri(url))
    try:
        cur = conn.cursor()
        cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(ADBC_BATCH_BYTES)})
        cur.execute(sql)
        reader = cur.fetch_record_batch()
        schema = pg_target_schema(reader.schema)
        yield schema, (convert_pg_batch(b, schema) for b in reader)
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()


def _pg_literal_sql(url: Any, sql: str, params: Any) -> str:
    """``:name`` parameters bound client-side with the server's own quoting rules (psycopg ``mogrify``)."""
    import psycopg
    from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

    text, values = compile_query(pg_dialect.dialect(), sql, params)
    with psycopg.connect(libpq_uri(url)) as pconn:
        return psycopg.ClientCursor(pconn).mogrify(text, values)


def _stream_cursor(raw: Any, kind: str) -> Any:
    """A cursor that streams rows from the server instead of buffering the whole result client-side."""
    driver = raw.driver_connection
    module = type(driver).__module__
    if kind == "mysql" and module.startswith("pymysql"):
        import pymysql.cursors

        return driver.cursor(pymysql.cursors.SSCursor)
    if kind == "mysql" and module.startswith("MySQLdb"):
        import MySQLdb.cursors  # type: ignore[import-not-found]

        return driver.cursor(MySQLdb.cursors.SSCursor)
    return driver.cursor()


@contextmanager
def _dbapi_batches(url: Any, src: _Source, batch_rows: int) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
    """Any SQLAlchemy dialect: server-side cursor, ``fetchmany`` -> RecordBatch with a fixed schema."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    kind = backend(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    raw = engine.raw_connection()
    cur = None
    try:
        if kind == "mysql":  # TIMESTAMP columns come back in UTC and are exported as UTC
            with raw.driver_connection.cursor() as setup:
                setup.execute("SET time_zone = '+00:00'")
        cur = _stream_cursor(raw, kind)
        sql, params = compile_query(engine.dialect, src.sql, src.params)
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        if cur.description is None:
            raise ValueError(f"{src.label} returned no result set")
        first = cur.fetchmany(batch_rows)
        schema = dbapi_schema(cur, kind, first)

        def batches() -> Iterator[pa.RecordBatch]:
            rows = first
            while rows:
                yield to_record_batch(rows, schema)
                rows = cur.fetchmany(batch_rows)

        yield schema, batches()
        cur.close()
        raw.rollback()
        raw.close()
    except BaseException:
        result = getattr(cur, "_result", None)  # pymysql: don't drain the rest of a streaming result at __del__
        if getattr(result, "unbuffered_active", False):
            result.unbuffered_active = False
        raw.invalidate()  # no rollback: a half-read streaming result would first be read to its end
        raise
    finally:
        engine.dispose()


def _guarded(batches: Iterator[pa.RecordBatch], action: str, url: Any) -> Iterator[pa.RecordBatch]:
    """Database errors while streaming -> SqlTransferError naming the source and server."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except ValueError:
            raise
        except Exception as exc:
            raise failure(action, url, exc) from exc
        yield batch


def export(url: str, *, query: str | None = None, table: str | None = None, procedure: str | None = None,
           params: dict[str, Any] | list[Any] | None = None, fs: Any, path: str, fmt: str = "parquet",
           progress: Callable[[str], None] | None = None, batch_rows: int = 65_536,
           progress_rows: int = 1_000_000, progress_seconds: float = 10.0) -> ExportResult:
    """Copy one query / table / procedure result to ``path`` on ``fs`` as Parquet or CSV.

    ``params``: ``:name`` parameters of ``query`` (a dict), or the procedure's arguments (a list, or a dict for
    named arguments on PostgreSQL). ``batch_rows`` is both the fetch size and the Parquet row-group size (so it
    is part of what makes two exports byte-identical). ``progress`` gets a message with the rows so far every
    ``progress_rows`` rows or ``progress_seconds`` seconds, and once at the end; an exception it raises aborts
    the export like any other, leaving no file.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows: expected a positive int, got {batch_rows!r}")
    if not isinstance(path, str) or not path or path.endswith("/"):
        raise ValueError(f"path: expected a file path on the filesystem, got {path!r}")
    sa_url = parse_url(url)
    src = _source(sa_url, query, table, procedure, params)
    action = f"export of {src.label}"
    opener = _postgres_batches(sa_url, src) if backend(sa_url) == POSTGRES else \
        _dbapi_batches(sa_url, src, batch_rows)
    rows = last_rows = 0
    last_time = time.monotonic()
    try:
        with opener as (schema, raw_batches), atomic_output(fs, path) as out:
            sink = _HashingSink(out)
            try:
                writer = _GroupWriter(sink, schema, fmt, batch_rows)
                for batch in _guarded(raw_batches, action, sa_url):
                    for written in writer.add(batch):
                        rows += written
                        now = time.monotonic()
                        if progress and (rows - last_rows >= progress_rows or now - last_time >= progress_seconds):
                            progress(f"{action}: {rows:,} rows written to {path}")
                            last_rows, last_time = rows, now
                rows += writer.finish()
            finally:
                sink.close()
            out.flush()
    except (ValueError, TypeError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if from_database(exc):
            raise failure(action, sa_url, exc) from exc
        raise
    if progress:
        progress(f"{action}: done, {rows:,} rows, {sink.size:,} bytes written to {path}")
    written = schema if fmt == "parquet" else csv_schema(schema)
    return ExportResult(rows=rows, bytes=sink.size, file_hash=sink.hash.hexdigest(),
                        schema=[[f.name, str(f.type)] for f in written])

