"""SQL load (DataTransferStep's engine) against real PostgreSQL and MariaDB: modes, folders of files, and a load
that fails mid-way leaves the table exactly as it was."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import fsspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from airflow_mlpipe.data.sql_dialects import SqlTransferError
from airflow_mlpipe.data.sql_load import load
from tests.integration.test_sql_export import MY, PG, run_sql, table_names

URLS = pytest.mark.parametrize("url", [PG, MY], ids=["postgresql", "mariadb"])


@pytest.fixture
def tables():
    yield from table_names()


def write_parts(folder, parts: list[pa.Table], fmt: str = "parquet") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, table in enumerate(parts):
        if fmt == "parquet":
            pq.write_table(table, folder / f"part-{i:03d}.parquet")
        else:
            pa_csv.write_csv(table, folder / f"part-{i:03d}.csv")
    (folder / "_SUCCESS").write_text("")


def good(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "name": [f"row{i}" for i in range(start, start + n)]})


def rows(url: str, table: str) -> list[tuple]:
    return sorted(run_sql(url, f"SELECT id, name FROM {table}", fetch=True))


def table_exists(url: str, table: str) -> bool:
    if url.startswith("postgresql"):
        return run_sql(url, "SELECT to_regclass(%s) IS NOT NULL", (table,), fetch=True)[0][0]
    return bool(run_sql(url, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                        "AND table_name = %s", (table,), fetch=True)[0][0])


def leftover_tables(url: str, table: str) -> list[str]:
    if url.startswith("postgresql"):
        found = run_sql(url, "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{table}%",), fetch=True)
    else:
        found = run_sql(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
                        "AND table_name LIKE %s", (f"{table}%",), fetch=True)
    return sorted(r[0] for r in found)


@URLS
@pytest.mark.parametrize("mode", ["create", "append", "replace"])
def test_failed_load_leaves_table_as_it_was(url, mode, tables, tmp_path):
    name = tables(url)
    if mode != "create":
        run_sql(url, f"CREATE TABLE {name} (id bigint, name text)")
        run_sql(url, f"INSERT INTO {name} VALUES (1, 'old1'), (2, 'old2')")
    before = rows(url, name) if mode != "create" else None
    # the first two files load fine; the third has text where the id column is a number
    bad = pa.table({"id": ["7", "not a number"], "name": ["x", "y"]})
    write_parts(tmp_path / "in", [good(100, 3000), good(200, 10), bad])
    seen: list[str] = []
    with pytest.raises(ValueError) as err:
        load(url, name, fs=fsspec.filesystem("file"), path=str(tmp_path / "in"), mode=mode, batch_rows=1000,
             progress=seen.append, progress_rows=1)
    assert "part-002.parquet" in str(err.value) and "'id'" in str(err.value)
    assert any("3,000 rows loaded" in m for m in seen), seen  # rows had gone in before the failure
    if mode == "create":
        assert not table_exists(url, name)
        assert leftover_tables(url, name) == []
    else:
        assert rows(url, name) == before
        assert leftover_tables(url, name) == [name]


@URLS
def test_database_side_failure_rolls_back_append(url, tables, tmp_path):
    """A row the database rejects (NOT NULL) in the last file: the rows before it are rolled back too."""
    name = tables(url)
    run_sql(url, f"CREATE TABLE {name} (id bigint NOT NULL, name text)")
    run_sql(url, f"INSERT INTO {name} VALUES (1, 'old1')")
    nulls = pa.table({"id": pa.array([None], pa.int64()), "name": ["no id"]})
    write_parts(tmp_path / "in", [good(10, 500), nulls])
    with pytest.raises(SqlTransferError) as err:
        load(url, name, fs=fsspec.filesystem("file"), path=str(tmp_path / "in"), mode="append")
    assert name in str(err.value) and "127.0.0.1" in str(err.value)
    assert rows(url, name) == [(1, "old1")]


@URLS
def test_modes_and_folders(url, tables, tmp_path):
    name = tables(url)
    fs = fsspec.filesystem("file")
    write_parts(tmp_path / "a", [good(0, 5), good(5, 5)])
    assert load(url, name, fs=fs, path=str(tmp_path / "a")).rows == 10
    assert rows(url, name) == [(i, f"row{i}") for i in range(10)]

    with pytest.raises(SqlTransferError) as err:
        load(url, name, fs=fs, path=str(tmp_path / "a"), mode="create")
    msg = str(err.value)
    assert repr(name) in msg and "already exists" in msg and "append" in msg and "replace" in msg
    assert len(rows(url, name)) == 10

    # append: columns in another order and another int width are matched by name and converted
    other = pa.table({"name": ["row10"], "id": pa.array([10], pa.int32())})
    pq.write_table(other, tmp_path / "one.parquet")
    assert load(url, name, fs=fs, path=str(tmp_path / "one.parquet"), mode="append").rows == 1
    assert rows(url, name)[-1] == (10, "row10") and len(rows(url, name)) == 11

    write_parts(tmp_path / "c", [good(50, 2)], fmt="csv")
    assert load(url, name, fs=fs, path=str(tmp_path / "c"), fmt="csv", mode="replace").rows == 2
    assert rows(url, name) == [(50, "row50"), (51, "row51")]
    assert leftover_tables(url, name) == [name]

    unknown = pa.table({"id": [1], "extra": ["?"]})
    pq.write_table(unknown, tmp_path / "extra.parquet")
    with pytest.raises(SqlTransferError):
        load(url, name, fs=fs, path=str(tmp_path / "extra.parquet"), mode="append")
    assert rows(url, name) == [(50, "row50"), (51, "row51")]


@URLS
def test_load_keeps_types(url, tables, tmp_path):
    name = tables(url)
    t = pa.table({
        "i8": pa.array([1, None], pa.int8()), "i64": pa.array([2**40, -1], pa.int64()),
        "f32": pa.array([0.5, None], pa.float32()), "b": [True, False], "s": ["a", None],
        "bin": pa.array([b"\x00\xff", None], pa.binary()), "d": pa.array([dt.date(2020, 1, 1), None]),
        "ts": pa.array([dt.datetime(2020, 1, 1, 1, 2, 3, 4), None], pa.timestamp("us")),
        "tz": pa.array([dt.datetime(2020, 1, 1, 1, 2, 3, 4, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([Decimal("1.50"), None], pa.decimal128(7, 2)),
        "cat": pa.array(["x", "y"]).dictionary_encode(),
        "ns": pa.array([dt.datetime(2021, 5, 5), None], pa.timestamp("ns")),
    })
    pq.write_table(t, tmp_path / "t.parquet")
    assert load(url, name, fs=fsspec.filesystem("file"), path=str(tmp_path / "t.parquet")).rows == 2
    if url.startswith("postgresql"):
        types = run_sql(url, "SELECT data_type FROM information_schema.columns WHERE table_name = %s "
                        "ORDER BY ordinal_position", (name,), fetch=True)
        assert [r[0] for r in types] == ["smallint", "bigint", "real", "boolean", "text", "bytea", "date",
                                         "timestamp without time zone", "timestamp with time zone", "numeric",
                                         "text", "timestamp without time zone"]
    else:
        types = run_sql(url, "SELECT column_type FROM information_schema.columns WHERE table_schema = DATABASE() "
                        "AND table_name = %s ORDER BY ordinal_position", (name,), fetch=True)
        assert [r[0] for r in types] == ["smallint(6)", "bigint(20)", "float", "tinyint(1)", "longtext", "longblob",
                                         "date", "datetime(6)", "timestamp(6)", "decimal(7,2)", "longtext",
                                         "datetime(6)"]
    got = run_sql(url, f"SELECT i8, i64, f32, b, s, bin, d, ts, amount, cat FROM {name} ORDER BY i64 DESC", fetch=True)
    first = tuple(bytes(v) if isinstance(v, memoryview) else v for v in got[0])
    assert first == (1, 2**40, 0.5, True, "a", b"\x00\xff", dt.date(2020, 1, 1),
                     dt.datetime(2020, 1, 1, 1, 2, 3, 4), Decimal("1.50"), "x")


def test_bad_arguments_and_missing_files(tmp_path):
    fs = fsspec.filesystem("file")
    with pytest.raises(ValueError, match="mode: expected one of"):
        load(PG, "t", fs=fs, path=str(tmp_path), mode="upsert")
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        load(PG, "t", fs=fs, path=str(tmp_path / "nope.parquet"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_text("")
    with pytest.raises(FileNotFoundError, match="holds no data files"):
        load(PG, "t", fs=fs, path=str(tmp_path / "empty"))


def test_other_dialects_use_one_transaction(tmp_path):
    """SQLite stands in for the generic SQLAlchemy path (SQL Server users go through it too)."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    fs = fsspec.filesystem("file")
    write_parts(tmp_path / "in", [good(0, 3)])
    assert load(url, "t", fs=fs, path=str(tmp_path / "in")).rows == 3
    write_parts(tmp_path / "bad", [good(10, 3), pa.table({"id": ["zz"], "name": ["q"]})])
    with pytest.raises(ValueError):
        load(url, "t", fs=fs, path=str(tmp_path / "bad"), mode="replace")
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT id, name FROM t ORDER BY id").fetchall() == [(0, "row0"), (1, "row1"),
                                                                                (2, "row2")]
