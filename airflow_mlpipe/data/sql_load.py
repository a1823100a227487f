"""DataTransferStep's load: Parquet/CSV files on any fsspec filesystem -> a SQL table, all or nothing.

A failed load leaves the table as it was. PostgreSQL: one transaction (DDL included) fed by ADBC's binary COPY
ingest. MySQL/MariaDB (DDL commits implicitly there): ``create``/``replace`` fill a private new table and swap
it in with one atomic ``RENAME TABLE``; ``append`` is one InnoDB transaction of batched INSERTs. Other dialects:
one SQLAlchemy transaction. Column types come from the first file; later files are cast to them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from airflow_mlpipe.data.sql_dialects import (
    POSTGRES,
    SqlTransferError,
    backend,
    dialect_of,
    failure,
    from_database,
    libpq_uri,
    load_arrow_type,
    parse_url,
    pg_target_schema,
    quote_name,
    server_label,
    split_name,
    sqla_type,
)

FORMATS = ("parquet", "csv")
MODES = ("create", "append", "replace")


@dataclass(frozen=True)
class LoadResult:
    """How many rows the load wrote."""

    rows: int


def list_input_files(fs: Any, path: str) -> list[str]:
    """One file, or every file under a folder in sorted order (names starting with ``_`` or ``.``, such as
    Spark's ``_SUCCESS``, are skipped)."""
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if not p.rsplit("/", 1)[-1].startswith(("_", ".")))
        if not files:
            raise FileNotFoundError(f"path: folder {path!r} holds no data files")
        return files
    if not fs.isfile(path):
        raise FileNotFoundError(f"path: {path!r} is neither a file nor a folder on the filesystem")
    return [path]


class _Files:
    """The input files as one stream of batches in the table's schema (taken from the first file)."""

    def __init__(self, fs: Any, files: list[str], fmt: str, batch_rows: int) -> None:
        self.fs, self.files, self.fmt, self.batch_rows = fs, files, fmt, batch_rows
        self.schema = self._first_schema()

    def _first_schema(self) -> pa.Schema:
        with self.fs.open(self.files[0], "rb") as fh:
            if self.fmt == "parquet":
                raw = pq.ParquetFile(fh).schema_arrow
            else:
                raw = pa_csv.open_csv(fh, read_options=pa_csv.ReadOptions(block_size=1 << 20),
                                      convert_options=_csv_options(None)).schema
        return pa.schema([pa.field(f.name, load_arrow_type(f.type)) for f in raw])

    def batches(self, target: pa.Schema | None = None) -> Iterator[pa.RecordBatch]:
        """Every file's batches cast to ``target`` (default: the first file's schema); errors name the file."""
        target = target or self.schema
        for path in self.files:
            with self.fs.open(path, "rb") as fh:
                for batch in self._read(fh, path, target):
                    yield _conform(batch, target, path)

    def _read(self, fh: Any, path: str, target: pa.Schema) -> Iterator[pa.RecordBatch]:
        try:
            if self.fmt == "parquet":
                yield from pq.ParquetFile(fh).iter_batches(batch_size=self.batch_rows)
            else:
                yield from pa_csv.open_csv(fh, convert_options=_csv_options(target))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"file {path!r}: cannot be read as {self.fmt} with the table's columns: {exc}") from exc


def _csv_options(target: pa.Schema | None) -> pa_csv.ConvertOptions:
    """An empty unquoted field is NULL, a quoted ``""`` the empty string (what export writes)."""
    types = {f.name: f.type for f in target} if target is not None else None
    return pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False)


def _conform(batch: pa.RecordBatch, target: pa.Schema, path: str) -> pa.RecordBatch:
    names = set(batch.schema.names)
    extra = [n for n in batch.schema.names if target.get_field_index(n) < 0]
    if extra:
        raise ValueError(f"file {path!r}: columns {extra} are not in the table (columns: {target.names})")
    columns = []
    for f in target:
        if f.name not in names:
            columns.append(pa.nulls(batch.num_rows, f.type))
            continue
        col = batch.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"file {path!r}: column {f.name!r} ({col.type}) does not convert to the table's "
                                 f"type {f.type}: {exc}") from exc
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, schema=target)


class _Progress:
    def __init__(self, progress: Callable[[str], None] | None, label: str, every_rows: int, seconds: float) -> None:
        self.progress, self.label, self.every_rows, self.seconds = progress, label, every_rows, seconds
        self.rows = self.last_rows = 0
        self.last_time = time.monotonic()

    def add(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if self.progress and (self.rows - self.last_rows >= self.every_rows or now - self.last_time >= self.seconds):
            self.progress(f"{self.label}: {self.rows:,} rows loaded")
            self.last_rows, self.last_time = self.rows, now


def _table_ddl(dialect: Any, table: str, schema: pa.Schema, name_override: str | None = None) -> str:
    db_schema, name = split_name(table)
    kind = backend_of_dialect(dialect)
    columns = [sa.Column(f.name, sqla_type(f, kind), nullable=True) for f in schema]
    kwargs = {"mysql_engine": "InnoDB"} if kind == "mysql" else {}
    t = sa.Table(name_override or name, sa.MetaData(), *columns, schema=db_schema, **kwargs)
    return str(sa.schema.CreateTable(t).compile(dialect=dialect)).strip()


def backend_of_dialect(dialect: Any) -> str:
    return "mysql" if dialect.name in ("mysql", "mariadb") else dialect.name


def _exists_error(url: Any, table: str) -> SqlTransferError:
    return SqlTransferError(f"load into table {table!r} on {server_label(url)}: the table already exists and mode "
                            f"is 'create'; use mode='append' to add rows or mode='replace' to replace it "
                            f"(modes: {', '.join(MODES)})")


class _Stash:
    """Keeps an exception raised while the driver pulls batches, so the caller re-raises ours, not the
    driver's paraphrase of it."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def wrap(self, batches: Iterator[pa.RecordBatch], counter: _Progress) -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                yield batch
                counter.add(batch.num_rows)
        except BaseException as exc:
            self.error = exc
            raise


def _load_postgres(url: Any, table: str, files: _Files, mode: str, counter: _Progress) -> None:
    import adbc_driver_postgresql.dbapi as adbc

    dialect = dialect_of(url)
    db_schema, name = split_name(table)
    qname = quote_name(dialect, table)
    stash = _Stash()
    conn = adbc.connect(libpq_uri(url))  # autocommit off: everything below is one transaction
    try:
        cur = conn.cursor()
        cur.execute("SELECT to_regclass($1) IS NOT NULL", parameters=(qname,))
        exists = bool(cur.fetchone()[0])
        if exists and mode == "create":
            raise _exists_error(url, table)
        target = files.schema
        if exists and mode == "append":
            target = _pg_append_schema(cur, qname, files.schema, url, table)
        else:
            if exists:
                cur.execute(f"DROP TABLE {qname}")
            cur.execute(_table_ddl(dialect, table, files.schema))
        reader = pa.RecordBatchReader.from_batches(target, stash.wrap(files.batches(target), counter))
        cur.adbc_ingest(name, reader, mode="append", db_schema_name=db_schema)
        conn.commit()
    except BaseException as exc:
        conn.rollback()
        if stash.error is not None and stash.error is not exc:
            raise stash.error from None
        raise
    finally:
        conn.close()


def _pg_append_schema(cur: Any, qname: str, file_schema: pa.Schema, url: Any, table: str) -> pa.Schema:
    """The Arrow types the existing table's columns take (so COPY's binary values match the column types)."""
    cur.execute(f"SELECT * FROM {qname} LIMIT 0")
    raw = cur.fetch_arrow_table().schema
    table_types = {f.name: f for f in pg_target_schema(raw)}
    raw_types = {f.name: (f.metadata or {}).get(b"POSTGRESQL:type", b"").decode() for f in raw}
    missing = [f.name for f in file_schema if f.name not in table_types]
    if missing:
        raise SqlTransferError(f"load into table {table!r} on {server_label(url)}: the files' columns {missing} "
                               f"are not in the table (columns: {list(table_types)})")
    fields = []
    for f in file_schema:
        t = table_types[f.name].type
        if raw_types[f.name] == "numeric" and pa.types.is_string(t):  # unconstrained NUMERIC
            t = f.type
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def _rows(batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
    """Python rows for a DBAPI ``executemany`` (timestamps with a zone sent as naive UTC)."""
    columns = []
    for col in batch.columns:
        if pa.types.is_timestamp(col.type) and col.type.tz:
            col = col.cast(pa.timestamp(col.type.unit))
        columns.append(col.to_pylist())
    return list(zip(*columns, strict=True))


def _load_mysql(url: Any, table: str, files: _Files, mode: str, counter: _Progress) -> None:
    engine = sa.create_engine(url, poolclass=NullPool)
    dialect = engine.dialect
    prep = dialect.identifier_preparer
    db_schema, name = split_name(table)
    qname = quote_name(dialect, table)
    raw = engine.raw_connection()
    dbc = raw.driver_connection
    try:
        cur = dbc.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = COALESCE(%s, DATABASE()) "
                    "AND table_name = %s", (db_schema, name))
        exists = bool(cur.fetchone()[0])
        if exists and mode == "create":
            raise _exists_error(url, table)
        columns = ", ".join(prep.quote_identifier(f.name) for f in files.schema)
        marks = ", ".join(["%s"] * len(files.schema))

        def insert_all(into: str, commit_each: bool) -> None:
            sql = f"INSERT INTO {into} ({columns}) VALUES ({marks})"
            for batch in files.batches():
                cur.executemany(sql, _rows(batch))
                if commit_each:
                    dbc.commit()
                counter.add(batch.num_rows)

        if mode == "append":
            if not exists:
                cur.execute(_table_ddl(dialect, table, files.schema))
            try:
                dbc.begin()
                insert_all(qname, commit_each=False)
                dbc.commit()
            except BaseException:
                dbc.rollback()
                if not exists:
                    cur.execute(f"DROP TABLE IF EXISTS {qname}")
                raise
            return
        tmp_name = f"{name[:40]}__mlpipe_{secrets.token_hex(4)}"
        tmp = (prep.quote_identifier(db_schema) + "." if db_schema else "") + prep.quote_identifier(tmp_name)
        old = (prep.quote_identifier(db_schema) + "." if db_schema else "") + \
            prep.quote_identifier(f"{name[:40]}__mlpipe_old_{secrets.token_hex(4)}")
        cur.execute(_table_ddl(dialect, table, files.schema, name_override=tmp_name))
        try:
            insert_all(tmp, commit_each=True)
            if exists:  # one atomic statement: readers see the old table or the new one, never neither
                cur.execute(f"RENAME TABLE {qname} TO {old}, {tmp} TO {qname}")
                cur.execute(f"DROP TABLE {old}")
            else:
                cur.execute(f"RENAME TABLE {tmp} TO {qname}")
        except BaseException:
            cur.execute(f"DROP TABLE IF EXISTS {tmp}")
            raise
    finally:
        raw.close()
        engine.dispose()


def _load_generic(url: Any, table: str, files: _Files, mode: str, counter: _Progress) -> None:
    """Any other SQLAlchemy dialect (SQL Server, SQLite, ...): DDL and inserts in one transaction."""
    engine = sa.create_engine(url, poolclass=NullPool)
    db_schema, name = split_name(table)
    kind = backend_of_dialect(engine.dialect)
    if kind == "sqlite":  # pysqlite commits before DDL by itself; take the transaction over (SQLAlchemy recipe)
        sa.event.listen(engine, "connect", lambda dbapi_conn, _: setattr(dbapi_conn, "isolation_level", None))
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    try:
        with engine.begin() as conn:
            exists = sa.inspect(conn).has_table(name, schema=db_schema)
            if exists and mode == "create":
                raise _exists_error(url, table)
            columns = [sa.Column(f.name, sqla_type(f, kind)) for f in files.schema]
            target = sa.Table(name, sa.MetaData(), *columns, schema=db_schema)
            if exists and mode == "replace":
                target.drop(conn)
            if not exists or mode == "replace":
                target.create(conn)
            for batch in files.batches():
                conn.execute(target.insert(), [dict(zip(batch.schema.names, r, strict=True)) for r in _rows(batch)])
                counter.add(batch.num_rows)
    finally:
        engine.dispose()


def load(url: str, table: str, *, fs: Any, path: str, fmt: str = "parquet", mode: str = "create",
         progress: Callable[[str], None] | None = None, batch_rows: int = 65_536,
         progress_rows: int = 1_000_000, progress_seconds: float = 10.0) -> LoadResult:
    """Load one file or a folder of files (sorted) into ``table`` (``name`` or ``schema.name``).

    ``mode``: ``create`` (the table must not exist), ``append`` (adds rows; creates the table if missing; file
    columns must exist in the table) or ``replace`` (a new table with the files' columns and rows replaces
    the old one; on PostgreSQL the old one is dropped inside the load's transaction, so views depending on it
    make the load fail cleanly). On any error the table is left as it was (MySQL/MariaDB ``append``: as long as
    the table is InnoDB). CSV: empty unquoted fields are NULL, types are inferred from the first file.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows: expected a positive int, got {batch_rows!r}")
    sa_url = parse_url(url)
    split_name(table)
    files = _Files(fs, list_input_files(fs, path), fmt, batch_rows)
    counter = _Progress(progress, f"load into {table!r}", progress_rows, progress_seconds)
    kind = backend(sa_url)
    loader = _load_postgres if kind == POSTGRES else _load_mysql if kind == "mysql" else _load_generic
    try:
        loader(sa_url, table, files, mode, counter)
    except Exception as exc:
        if from_database(exc):
            raise failure(f"load into table {table!r} ({mode})", sa_url, exc) from exc
        raise
    if progress:
        progress(f"load into {table!r}: done, {counter.rows:,} rows")
    return LoadResult(rows=counter.rows)
