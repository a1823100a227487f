"""SQL export (DataTransferStep's engine) against real PostgreSQL and MariaDB: every type survives a round trip,
files are deterministic and atomic, memory stays bounded, errors name the source and server but no password."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from decimal import Decimal

import fsspec
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest

from airflow_mlpipe.data.sql_dialects import SqlTransferError
from airflow_mlpipe.data.sql_export import export
from airflow_mlpipe.data.sql_load import load

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
MY = "mysql+pymysql://root@127.0.0.1:3306/test"
UTC = dt.UTC

ROWS = [
    (1, 100000, 10**15, 1.5, 2.25, True, "héllo", b"\x00\x01bin", dt.date(2024, 2, 29),
     dt.datetime(2024, 1, 2, 3, 4, 5, 123456), dt.datetime(2024, 1, 2, 3, 4, 5, 654321, tzinfo=UTC),
     Decimal("12345.678")),
    (-2, -7, -(10**12), -0.5, 1e300, False, "", b"", dt.date(1999, 12, 31),
     dt.datetime(1999, 12, 31, 23, 59, 59), dt.datetime(2030, 6, 1, 12, 0, tzinfo=UTC), Decimal("-0.001")),
    (None, None, None, None, None, None, None, None, None, None, None, None),
]
COLUMNS = ["c_small", "c_int", "c_big", "c_real", "c_double", "c_bool", "c_text", "c_bytes", "c_date", "c_ts",
           "c_tstz", "c_dec"]
PG_DDL = ("c_small smallint, c_int integer, c_big bigint, c_real real, c_double double precision, c_bool boolean, "
          "c_text text, c_bytes bytea, c_date date, c_ts timestamp, c_tstz timestamptz, c_dec numeric(12,3)")
MY_DDL = ("c_small smallint, c_int int, c_big bigint, c_real float, c_double double, c_bool boolean, "
          "c_text longtext, c_bytes longblob, c_date date, c_ts datetime(6), c_tstz timestamp(6) NULL, "
          "c_dec decimal(12,3)")
ARROW_TYPES = [["c_small", "int16"], ["c_int", "int32"], ["c_big", "int64"], ["c_real", "float"],
               ["c_double", "double"], ["c_bool", "bool"], ["c_text", "string"], ["c_bytes", "binary"],
               ["c_date", "date32[day]"], ["c_ts", "timestamp[us]"], ["c_tstz", "timestamp[us, tz=UTC]"],
               ["c_dec", "decimal128(12, 3)"]]


def pg_sql(sql: str, params: tuple | None = None, fetch: bool = False) -> list[tuple]:
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(sql, params)
            return cur.fetchall() if fetch else []
    finally:
        conn.close()


def my_sql(sql: str, params: tuple | None = None, fetch: bool = False) -> list[tuple]:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(sql, params)
            return list(cur.fetchall()) if fetch else []
    finally:
        conn.close()


def run_sql(url: str, sql: str, params: tuple | None = None, fetch: bool = False) -> list[tuple]:
    return pg_sql(sql, params, fetch) if url.startswith("postgresql") else my_sql(sql, params, fetch)


def normalize(url: str, rows: list[tuple]) -> list[tuple]:
    """MariaDB hands back naive UTC for TIMESTAMP and 0/1 for BOOLEAN; PostgreSQL bytea as memoryview."""
    out = []
    for row in rows:
        vals = []
        for col, v in zip(COLUMNS, row, strict=True):
            if isinstance(v, memoryview):
                v = bytes(v)
            if col == "c_tstz" and v is not None and v.tzinfo is None:
                v = v.replace(tzinfo=UTC)
            if col == "c_tstz" and v is not None:
                v = v.astimezone(UTC)
            if col == "c_bool" and v is not None:
                v = bool(v)
            vals.append(v)
        out.append(tuple(vals))
    return out


def table_names():
    """Unique table names per test, dropped afterwards on both servers (the ``tables`` fixture's body)."""
    made: list[tuple[str, str]] = []

    def name(url: str, prefix: str = "mlpipe_t") -> str:
        n = f"{prefix}_{uuid.uuid4().hex[:10]}"
        made.append((url, n))
        return n

    yield name
    for url, n in made:
        if url.startswith("postgresql"):
            pg_sql(f'DROP TABLE IF EXISTS "{n}"')
        else:
            my_sql(f"DROP TABLE IF EXISTS `{n}`")


@pytest.fixture
def tables():
    yield from table_names()


def create_typed_table(url: str, name: str) -> None:
    ddl = PG_DDL if url.startswith("postgresql") else MY_DDL
    run_sql(url, f"CREATE TABLE {name} (id int, {ddl})")
    marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
    for i, row in enumerate(ROWS):
        vals = tuple(v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, dt.datetime) and v.tzinfo
                     and not url.startswith("postgresql") else v for v in row)
        run_sql(url, f"INSERT INTO {name} VALUES ({marks})", (i, *vals))


def column_types(url: str, name: str) -> list[tuple]:
    if url.startswith("postgresql"):
        return pg_sql("SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
                      "WHERE table_name = %s ORDER BY ordinal_position", (name,), fetch=True)
    return my_sql("SELECT column_name, column_type FROM information_schema.columns WHERE table_schema = DATABASE() "
                  "AND table_name = %s ORDER BY ordinal_position", (name,), fetch=True)


@pytest.mark.parametrize("url", [PG, MY], ids=["postgresql", "mariadb"])
def test_round_trip_parquet_keeps_values_and_types(url, tables, tmp_path):
    src, dst = tables(url), tables(url)
    create_typed_table(url, src)
    fs = fsspec.filesystem("file")
    out = str(tmp_path / "t.parquet")
    res = export(url, query=f"SELECT {', '.join(COLUMNS)} FROM {src} ORDER BY id", fs=fs, path=out)
    assert res.rows == 3 and res.bytes == os.path.getsize(out)
    assert res.schema == ARROW_TYPES
    assert [[f.name, str(f.type)] for f in pq.read_schema(out)] == ARROW_TYPES
    file_rows = pq.read_table(out).to_pylist()
    assert file_rows[0]["c_dec"] == Decimal("12345.678") and file_rows[2]["c_int"] is None

    assert load(url, dst, fs=fs, path=out).rows == 3
    back = run_sql(url, f"SELECT {', '.join(COLUMNS)} FROM {dst}", fetch=True)
    assert sorted(normalize(url, back), key=repr) == sorted(normalize(url, ROWS), key=repr)
    src_types = [t for t in column_types(url, src) if t[0] != "id"]
    assert column_types(url, dst) == src_types
    # and the re-loaded table exports to the very same bytes
    again = export(url, query=f"SELECT {', '.join(COLUMNS)} FROM {dst} ORDER BY c_small DESC NULLS LAST"
                   if url.startswith("postgresql") else
                   f"SELECT {', '.join(COLUMNS)} FROM {dst} ORDER BY c_small IS NULL, c_small DESC",
                   fs=fs, path=str(tmp_path / "again.parquet"))
    assert again.file_hash == res.file_hash


@pytest.mark.parametrize("url", [PG, MY], ids=["postgresql", "mariadb"])
def test_round_trip_csv(url, tables, tmp_path):
    src, dst = tables(url), tables(url)
    create_typed_table(url, src)
    fs = fsspec.filesystem("file")
    out = str(tmp_path / "t.csv")
    cols = ["c_int", "c_big", "c_double", "c_bool", "c_text", "c_date", "c_ts"]
    res = export(url, table=src, fs=fs, path=out, fmt="csv")
    assert res.rows == 3
    header = open(out, encoding="utf-8").readline().strip()
    assert header.split(",")[1:3] == ['"c_small"', '"c_int"']
    load(url, dst, fs=fs, path=out, fmt="csv")
    back = run_sql(url, f"SELECT {', '.join(cols)} FROM {dst} ORDER BY id", fetch=True)
    expected = [(r[1], r[2], r[4], r[5], r[6], r[8], r[9]) for r in ROWS]
    got = [tuple(bool(v) if i == 3 and v is not None else v for i, v in enumerate(row)) for row in back]
    assert got == expected  # NULL and "" stay apart (empty vs quoted empty field)


def test_postgres_table_query_and_procedure_sources(tables, tmp_path):
    src = tables(PG)
    create_typed_table(PG, src)
    fn = f"mlpipe_fn_{uuid.uuid4().hex[:8]}"
    pg_sql(f"CREATE FUNCTION {fn}(lo int, tag text) RETURNS TABLE(id int, c_text text, tag text) LANGUAGE sql AS "
           f"$$ SELECT id, c_text, tag FROM {src} WHERE id >= lo ORDER BY id $$")
    fs = fsspec.filesystem("file")
    try:
        res = export(PG, table=f"public.{src}", fs=fs, path=str(tmp_path / "tbl.parquet"))
        assert res.rows == 3 and res.schema[0] == ["id", "int32"]
        res = export(PG, query=f"SELECT id, c_text FROM {src} WHERE id >= :lo AND c_text <> :t ORDER BY id",
                     params={"lo": 0, "t": "it's"}, fs=fs, path=str(tmp_path / "q.parquet"))
        assert pq.read_table(tmp_path / "q.parquet").to_pylist() == [{"id": 0, "c_text": "héllo"},
                                                                     {"id": 1, "c_text": ""}]
        export(PG, procedure=fn, params=[1, "x'y"], fs=fs, path=str(tmp_path / "p1.parquet"))
        assert pq.read_table(tmp_path / "p1.parquet").to_pylist() == [
            {"id": 1, "c_text": "", "tag": "x'y"}, {"id": 2, "c_text": None, "tag": "x'y"}]
        export(PG, procedure=fn, params={"tag": "n", "lo": 2}, fs=fs, path=str(tmp_path / "p2.parquet"))
        assert pq.read_table(tmp_path / "p2.parquet").to_pylist() == [{"id": 2, "c_text": None, "tag": "n"}]
    finally:
        pg_sql(f"DROP FUNCTION IF EXISTS {fn}(int, text)")


def test_mariadb_table_query_and_procedure_sources(tables, tmp_path):
    src = tables(MY)
    create_typed_table(MY, src)
    proc = f"mlpipe_proc_{uuid.uuid4().hex[:8]}"
    my_sql(f"CREATE PROCEDURE {proc}(IN lo INT) SELECT id, c_dec FROM {src} WHERE id >= lo ORDER BY id")
    fs = fsspec.filesystem("file")
    try:
        res = export(MY, table=f"test.{src}", fs=fs, path=str(tmp_path / "tbl.parquet"))
        assert res.rows == 3
        export(MY, query=f"SELECT id FROM {src} WHERE c_text = :t", params={"t": "héllo"}, fs=fs,
               path=str(tmp_path / "q.parquet"))
        assert pq.read_table(tmp_path / "q.parquet").to_pylist() == [{"id": 0}]
        res = export(MY, procedure=proc, params=[1], fs=fs, path=str(tmp_path / "p.parquet"))
        assert res.schema == [["id", "int32"], ["c_dec", "decimal128(12, 3)"]]
        assert pq.read_table(tmp_path / "p.parquet").to_pylist() == [{"id": 1, "c_dec": Decimal("-0.001")},
                                                                    {"id": 2, "c_dec": None}]
        with pytest.raises(ValueError, match="positional"):
            export(MY, procedure=proc, params={"lo": 1}, fs=fs, path=str(tmp_path / "x.parquet"))
    finally:
        my_sql(f"DROP PROCEDURE IF EXISTS {proc}")


@pytest.mark.parametrize("url", [PG, MY], ids=["postgresql", "mariadb"])
def test_same_result_same_hash_changed_row_new_hash(url, tables, tmp_path):
    src = tables(url)
    run_sql(url, f"CREATE TABLE {src} (id int, v text)")
    run_sql(url, f"INSERT INTO {src} (id, v) VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(2500)))
    fs = fsspec.filesystem("file")
    q = f"SELECT id, v FROM {src} ORDER BY id"
    a = export(url, query=q, fs=fs, path=str(tmp_path / "a.parquet"), batch_rows=1000)
    b = export(url, query=q, fs=fs, path=str(tmp_path / "b.parquet"), batch_rows=1000)
    assert a.file_hash == b.file_hash and (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_row_groups == 3
    run_sql(url, f"UPDATE {src} SET v = 'changed' WHERE id = 1234")
    c = export(url, query=q, fs=fs, path=str(tmp_path / "c.parquet"), batch_rows=1000)
    assert c.file_hash != a.file_hash and c.rows == a.rows == 2500
    for fmt in ("csv",):
        d = export(url, query=q, fs=fs, path=str(tmp_path / "d.csv"), fmt=fmt, batch_rows=700)
        e = export(url, query=q, fs=fs, path=str(tmp_path / "e.csv"), fmt=fmt, batch_rows=700)
        assert d.file_hash == e.file_hash


@pytest.mark.parametrize("url", [PG, MY], ids=["postgresql", "mariadb"])
def test_memory_stays_bounded(url, tables, tmp_path):
    src = tables(url)
    n = 300_000
    if url.startswith("postgresql"):
        pg_sql(f"CREATE TABLE {src} AS SELECT g AS id, g * 0.5 AS f, repeat(md5(g::text), 3) AS s "
               f"FROM generate_series(1, {n}) g")
    else:
        my_sql(f"CREATE TABLE {src} AS SELECT seq AS id, seq * 0.5e0 AS f, repeat(md5(seq), 3) AS s "
               f"FROM seq_1_to_{n}")
    peak = [0]
    calls = []

    def sample(msg: str) -> None:
        calls.append(msg)
        peak[0] = max(peak[0], pa.total_allocated_bytes())

    before = pa.total_allocated_bytes()
    out = tmp_path / "big.parquet"
    res = export(url, table=src, fs=fsspec.filesystem("file"), path=str(out), batch_rows=5000, progress=sample,
                 progress_rows=5000)
    assert res.rows == n and len(calls) >= n // 5000
    assert "rows" in calls[0]
    data_size = pq.read_table(out).nbytes
    assert data_size > 30_000_000
    print(f"peak Arrow memory {peak[0] - before:,} B for {data_size:,} B of data")
    assert peak[0] - before < data_size / 5, (peak[0] - before, data_size)


def _failing_query(url: str) -> str:
    """Fails after many rows: division by zero (PostgreSQL), a scalar subquery returning two rows (MariaDB)."""
    if url.startswith("postgresql"):
        return "SELECT g, 100 / (1500000 - g) AS boom FROM generate_series(1, 1600000) g"
    return "SELECT seq, IF(seq < 50000, seq, (SELECT 1 UNION SELECT 2)) AS boom FROM seq_1_to_60000"


@pytest.mark.parametrize("where", ["local", "memory"])
@pytest.mark.parametrize("url", [PG, MY], ids=["postgresql", "mariadb"])
def test_failed_export_leaves_no_file(url, where, tmp_path):
    if where == "local":
        fs, folder = fsspec.filesystem("file"), str(tmp_path / "out")
    else:
        fs, folder = fsspec.filesystem("memory"), f"/mlpipe-{uuid.uuid4().hex}"
    fs.makedirs(folder, exist_ok=True)
    path = f"{folder}/result.parquet"
    written = []
    with pytest.raises(SqlTransferError, match="division by zero|more than 1 row") as err:
        export(url, query=_failing_query(url), fs=fs, path=path, batch_rows=1000, progress=written.append,
               progress_rows=1000)
    assert "export of query" in str(err.value) and "127.0.0.1" in str(err.value)
    assert len(written) >= 10, written  # it failed mid-way, not at the start
    assert fs.ls(folder, detail=False) == []

    # an exception from the progress callback aborts too; an older file at the path stays as it was
    with fs.open(path, "wb") as fh:
        fh.write(b"old content")

    def stop(msg: str) -> None:
        if "3,000 rows" in msg:
            raise KeyboardInterrupt("user stopped")

    with pytest.raises(KeyboardInterrupt):
        export(url, query=f"SELECT {'g' if url.startswith('postgresql') else 'seq'} AS n FROM "
               f"{'generate_series(1, 10000) g' if url.startswith('postgresql') else 'seq_1_to_10000'}", fs=fs, path=path, batch_rows=1000,
               progress=stop, progress_rows=1000)
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)] == ["result.parquet"]
    assert fs.cat(path) == b"old content"
    if where == "memory":
        fs.rm(folder, recursive=True)


def test_errors_name_table_and_server_but_not_password(tables, tmp_path):
    fs = fsspec.filesystem("file")
    missing = f"no_such_table_{uuid.uuid4().hex[:6]}"
    for url in (PG, MY):
        with pytest.raises(SqlTransferError) as err:
            export(url, table=missing, fs=fs, path=str(tmp_path / "x.parquet"))
        assert missing in str(err.value) and "127.0.0.1" in str(err.value)
    for url in ("postgresql+psycopg2://postgres:S3cretPw@127.0.0.1:5999/test",
                "mysql+pymysql://nobody:S3cretPw@127.0.0.1:3306/test"):
        with pytest.raises(SqlTransferError) as err:
            export(url, table="sales", fs=fs, path=str(tmp_path / "x.parquet"))
        msg = str(err.value)
        assert "'sales'" in msg and "127.0.0.1" in msg and "S3cretPw" not in msg, msg
        assert "***" in msg
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_named(tmp_path):
    fs = fsspec.filesystem("file")
    with pytest.raises(ValueError, match="exactly one of query=, table=, procedure= \\(got query, table\\)"):
        export(PG, query="select 1", table="t", fs=fs, path=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="got none"):
        export(PG, fs=fs, path=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="fmt"):
        export(PG, query="select 1", fs=fs, path=str(tmp_path / "x"), fmt="xlsx")
    with pytest.raises(ValueError, match="table: expected 'name' or 'schema.name'"):
        export(PG, table="a.b.c", fs=fs, path=str(tmp_path / "x"))
    with pytest.raises(ValueError) as err:
        export("postgresql+psycopg2://u:S3cretPw@host:bad/db", query="select 1", fs=fs, path=str(tmp_path / "x"))
    assert "S3cretPw" not in str(err.value)


def test_table_names_are_quoted_not_spliced(tmp_path):
    odd = f'odd "name"; drop {uuid.uuid4().hex[:6]}'
    quoted = '"' + odd.replace('"', '""') + '"'
    pg_sql(f"CREATE TABLE {quoted} (id int)")
    try:
        pg_sql(f"INSERT INTO {quoted} VALUES (7)")
        res = export(PG, table=odd, fs=fsspec.filesystem("file"), path=str(tmp_path / "odd.parquet"))
        assert res.rows == 1 and pq.read_table(tmp_path / "odd.parquet").to_pylist() == [{"id": 7}]
    finally:
        pg_sql(f"DROP TABLE IF EXISTS {quoted}")


def test_other_dialects_stream_through_dbapi(tmp_path):
    """SQLite stands in for the generic DBAPI path (SQL Server users go through it too): types come from the
    first rows, NULL-only columns become text, later batches keep the schema."""
    import sqlite3

    db = tmp_path / "db.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, x REAL, s TEXT, b BLOB, n TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, NULL)",
                         [(i, i / 2, f"s{i}", bytes([i % 256])) for i in range(2500)])
    fs = fsspec.filesystem("file")
    res = export(f"sqlite:///{db}", table="t", fs=fs, path=str(tmp_path / "out" / "t.parquet"), batch_rows=1000)
    assert res.rows == 2500
    assert res.schema == [["id", "int64"], ["x", "double"], ["s", "string"], ["b", "binary"], ["n", "string"]]
    back = pq.read_table(tmp_path / "out" / "t.parquet").to_pylist()
    assert back[2499] == {"id": 2499, "x": 1249.5, "s": "s2499", "b": bytes([2499 % 256]), "n": None}
    with pytest.raises(ValueError, match="stored procedures are supported on"):
        export(f"sqlite:///{db}", procedure="p", fs=fs, path=str(tmp_path / "p.parquet"))
