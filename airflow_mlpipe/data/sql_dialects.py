"""What the SQL export and load engines share: URL handling that never leaks the password, identifier
quoting with the dialect's own preparer, and the Arrow <-> SQL type mapping.

Kept free of Airflow: a DataTransferStep gets its URL (with credentials) from the runtime and passes it here.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

POSTGRES = "postgresql"
MYSQL_FAMILY = ("mysql", "mariadb")


class SqlTransferError(RuntimeError):
    """A copy between a SQL database and a file failed; the message names the source and the server (never the
    password)."""


def parse_url(url: str | URL) -> URL:
    """A SQLAlchemy URL; a string that does not parse is reported without echoing it (it holds a password)."""
    if isinstance(url, URL):
        return url
    if not isinstance(url, str) or not url:
        raise ValueError(f"url: expected a SQLAlchemy URL string such as "
                         f"'postgresql+psycopg2://user:pw@host:5432/db', got {type(url).__name__}")
    try:
        return make_url(url)
    except Exception:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        raise ValueError(f"url: not a SQLAlchemy URL (scheme {scheme!r}); expected "
                         f"'dialect+driver://user:password@host:port/database'") from None


def server_label(url: URL) -> str:
    """The URL as errors and logs may show it: password hidden."""
    return url.render_as_string(hide_password=True)


def backend(url: URL) -> str:
    """``postgresql``, ``mysql`` (MySQL and MariaDB), ``mssql``, ``sqlite``, ... (the dialect without driver)."""
    name = url.get_backend_name()
    return "mysql" if name in MYSQL_FAMILY else name


def scrub(message: str, url: URL) -> str:
    """A driver's error text with the password taken out, should the driver have echoed it."""
    if url.password:
        message = message.replace(str(url.password), "***")
    return message.strip()


def failure(action: str, url: URL, exc: BaseException) -> SqlTransferError:
    """The error raised for any database-side failure: what was being done, where, and the driver's reason."""
    reason = scrub(f"{type(exc).__name__}: {exc}", url)
    return SqlTransferError(f"{action} on {server_label(url)} failed: {reason}")


_DRIVER_MODULES = frozenset({"sqlalchemy", "adbc_driver_manager", "adbc_driver_postgresql", "psycopg", "psycopg2",
                             "pymysql", "MySQLdb", "pymssql", "_mssql", "sqlite3"})


def from_database(exc: BaseException) -> bool:
    """Whether an error came from the database driver (connect, execute), not the filesystem or a callback."""
    return (type(exc).__module__ or "").split(".")[0] in _DRIVER_MODULES


def libpq_uri(url: URL) -> str:
    """The libpq connection URI for ADBC from a ``postgresql[+driver]://`` SQLAlchemy URL (query options such as
    ``sslmode`` pass through)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def dialect_of(url: URL) -> Any:
    """A dialect instance for compiling SQL and quoting (no connection, no driver import needed)."""
    return url.get_dialect()()


def split_name(name: Any, arg: str = "table") -> tuple[str | None, str]:
    """``schema.table`` or ``table`` -> (schema, name). Names containing dots are not supported."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{arg}: expected a name such as 'sales' or 'public.sales', got {name!r}")
    parts = name.strip().split(".")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"{arg}: expected 'name' or 'schema.name', got {name!r}")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def quote_name(dialect: Any, name: str, arg: str = "table") -> str:
    """The (schema-qualified) name quoted by the dialect's preparer: the exact name, never SQL."""
    schema, base = split_name(name, arg)
    prep = dialect.identifier_preparer
    return (prep.quote_identifier(schema) + "." if schema else "") + prep.quote_identifier(base)


_BIND = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def procedure_sql(dialect: Any, procedure: str, params: Any) -> tuple[str, dict[str, Any] | None]:
    """The statement calling a procedure that returns a result set, with ``:name`` binds for its arguments.

    PostgreSQL: ``SELECT * FROM fn(...)`` (a set-returning function; a dict uses named notation ``a => ...``).
    MySQL/MariaDB: ``CALL proc(...)`` (positional arguments only). SQL Server: ``EXEC proc ...`` (untested here).
    """
    name = quote_name(dialect, procedure, "procedure")
    kind = dialect.name if dialect.name not in MYSQL_FAMILY else "mysql"
    if params is None:
        params = []
    if isinstance(params, dict):
        bad = [k for k in params if not isinstance(k, str) or not _BIND.match(k)]
        if bad:
            raise ValueError(f"params: procedure argument names must be identifiers, got {bad!r}")
        if kind == "mysql":
            raise ValueError("params: MySQL/MariaDB CALL takes positional arguments; pass a list, not a dict")
        binds = {f"p_{k}": v for k, v in params.items()}
        if kind == "mssql":
            args = ", ".join(f"@{k} = :p_{k}" for k in params)
        else:
            args = ", ".join(f"{dialect.identifier_preparer.quote_identifier(k)} => :p_{k}" for k in params)
    elif isinstance(params, list | tuple):
        binds = {f"p{i}": v for i, v in enumerate(params)}
        args = ", ".join(f":p{i}" for i in range(len(params)))
    else:
        raise ValueError(f"params: for a procedure expected a list (positional) or a dict (named), "
                         f"got {type(params).__name__}")
    if kind == POSTGRES:
        sql = f"SELECT * FROM {name}({args})"
    elif kind == "mysql":
        sql = f"CALL {name}({args})"
    elif kind == "mssql":
        sql = f"EXEC {name} {args}".rstrip()
    else:
        raise ValueError(f"procedure: stored procedures are supported on PostgreSQL, MySQL/MariaDB and SQL Server, "
                         f"not on {dialect.name}; use query= instead")
    return sql, binds or None


def compile_query(dialect: Any, sql: str, params: dict[str, Any] | None) -> tuple[str, Any]:
    """The user's SQL with ``:name`` parameters rendered in the driver's paramstyle: (sql, driver params)."""
    if not params:
        return sql, None
    if not isinstance(params, dict):
        raise ValueError(f"params: for a query expected a dict of :name parameters, got {type(params).__name__}")
    compiled = sa.text(sql).bindparams(**params).compile(dialect=dialect)
    values = compiled.construct_params()
    if dialect.positional:
        return compiled.string, tuple(values[k] for k in compiled.positiontup)
    return compiled.string, values


def sqla_type(field: pa.Field, kind: str) -> Any:
    """The SQLAlchemy column type a table created from this Arrow field gets (types survive a round trip)."""
    from sqlalchemy.dialects import mysql

    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return sa.SmallInteger()
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return sa.Integer()
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return sa.BigInteger()
    if pa.types.is_uint64(t):
        return sa.Numeric(20, 0)
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return sa.REAL() if kind != "mysql" else mysql.FLOAT()
    if pa.types.is_float64(t):
        return sa.Double()
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return mysql.LONGTEXT() if kind == "mysql" else sa.Text()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return mysql.LONGBLOB() if kind == "mysql" else sa.LargeBinary()
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_timestamp(t):
        if kind == "mysql":  # TIMESTAMP is stored in UTC (the session runs at +00:00); DATETIME is naive
            return mysql.TIMESTAMP(fsp=6) if t.tz else mysql.DATETIME(fsp=6)
        return sa.DateTime(timezone=t.tz is not None)
    if pa.types.is_time(t):
        return mysql.TIME(fsp=6) if kind == "mysql" else sa.Time()
    raise ValueError(f"column {field.name!r}: Arrow type {t} has no SQL column type here; supported: ints, floats, "
                     f"bool, text, bytes, date, timestamp(tz), time, decimal")


def load_arrow_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type values are sent to the database as (dictionaries decoded, nanoseconds -> microseconds,
    large/view types -> plain)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_timestamp(t) and t.unit == "ns":
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


# --- result sets -> Arrow (export) ---------------------------------------------------------------------------

def _pg_field(f: pa.Field) -> pa.Field:
    """The file type of one column ADBC read from PostgreSQL: NUMERIC(p,s) -> decimal, other extension types
    (json, uuid) -> their storage; unconstrained NUMERIC stays text (it has no fixed scale)."""
    meta = f.metadata or {}
    pg_type = meta.get(b"POSTGRESQL:type", b"").decode()
    t = f.type
    if pg_type == "numeric":
        typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
        if typmod >= 4:
            precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
            t = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        else:
            t = pa.string()
    elif isinstance(t, pa.BaseExtensionType):
        t = t.storage_type
    if pa.types.is_interval(t):
        raise ValueError(f"column {f.name!r}: PostgreSQL {pg_type or 'interval'} cannot be stored in Parquet/CSV; "
                         f"cast it in the query (e.g. {f.name}::text or extract(epoch from {f.name}))")
    return pa.field(f.name, t, nullable=True)


def pg_target_schema(schema: pa.Schema) -> pa.Schema:
    """The schema written for an ADBC result (without the driver's field metadata)."""
    return pa.schema([_pg_field(f) for f in schema])


def convert_pg_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """An ADBC batch in the written schema (extension arrays unwrapped, numeric text -> decimal)."""
    columns = []
    for col, target in zip(batch.columns, schema, strict=True):
        if isinstance(col, pa.ExtensionArray):
            col = col.storage
        if col.type != target.type:
            col = col.cast(target.type)
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


_MYSQL_TEXT = {15, 245, 247, 248, 249, 250, 251, 252, 253, 254}


def _mysql_type(f: Any) -> pa.DataType:
    """Arrow type of a pymysql result field (type code, UNSIGNED flag, charset 63 = binary)."""
    code, unsigned, length, scale = f.type_code, bool(f.flags & 32), f.length, f.scale
    if code == 1:  # TINYINT(1) is MySQL's BOOLEAN
        return pa.bool_() if length == 1 and not unsigned else (pa.int16() if unsigned else pa.int8())
    if code == 2:
        return pa.int32() if unsigned else pa.int16()
    if code in (3, 9):
        return pa.int64() if unsigned and code == 3 else pa.int32()
    if code == 8:
        return pa.uint64() if unsigned else pa.int64()
    if code == 13:
        return pa.int16()
    if code == 4:
        return pa.float32()
    if code == 5:
        return pa.float64()
    if code in (0, 246):
        precision = max(1, length - (1 if scale else 0) - (0 if unsigned else 1))
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    if code in (10, 14):
        return pa.date32()
    if code == 12:
        return pa.timestamp("us")
    if code == 7:
        return pa.timestamp("us", tz="UTC")
    if code == 11:
        return pa.duration("us")
    if code in (16, 255):
        return pa.binary()
    if code in _MYSQL_TEXT:
        return pa.binary() if f.charsetnr == 63 else pa.string()
    return pa.string()


def _infer_type(values: list[Any]) -> pa.DataType:
    """Fallback for drivers without usable type codes: the type of the first fetched rows (all-NULL -> text;
    decimals widened to precision 38 so later rows fit)."""
    t = pa.array(values).type
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_decimal(t):
        return pa.decimal128(38, min(t.scale, 37))
    return t


def dbapi_schema(cursor: Any, kind: str, first_rows: list[Any]) -> pa.Schema:
    """The schema of a DBAPI result: from the MySQL wire types when the driver is pymysql, else inferred."""
    names = [d[0] for d in cursor.description]
    fields = getattr(getattr(cursor, "_result", None), "fields", None)
    if kind == "mysql" and fields is not None and len(fields) == len(names):
        types = [_mysql_type(f) for f in fields]
    else:
        columns = list(zip(*first_rows, strict=True)) if first_rows else [[] for _ in names]
        types = [_infer_type(list(col)) for col in columns]
    return pa.schema([pa.field(n, t) for n, t in zip(names, types, strict=True)])


def to_record_batch(rows: list[Any], schema: pa.Schema) -> pa.RecordBatch:
    """Rows from ``fetchmany`` -> one RecordBatch of the fixed schema (errors name the column)."""
    columns = list(zip(*rows, strict=True))
    arrays = []
    for values, f in zip(columns, schema, strict=True):
        try:
            if pa.types.is_boolean(f.type):
                arrays.append(pa.array([None if v is None else bool(v) for v in values], pa.bool_()))
            else:
                arrays.append(pa.array(values, f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise ValueError(f"column {f.name!r}: a value does not fit the column's type {f.type}: {exc}") from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
