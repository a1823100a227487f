"""Tabular datasets defined by a SQL query (v1 ``Dataset.Tabular.from_sql_query``): read and identified by their
result, never by statistics that can be stale.

The source is ``{"format": "sql", "paths": [], "options": {"datastore": name, "query": sql}}``. Reading streams
the result through the SQL export (Arrow batches, bounded memory) into a temporary Parquet file; its content hash
is the blake3 of that file, which the export makes byte-identical for an unchanged result.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException

SQL_FORMAT = "sql"


def sql_location(workspace: Any, source: dict[str, Any]) -> Any:
    """The SQL datastore a SQL dataset reads (an error naming the datastore when it is not a SQL one)."""
    from airflow_mlpipe.data.datastore_location import DatastoreLocation

    options = source.get("options") or {}
    store = DatastoreLocation.get(workspace, options.get("datastore"))
    if not getattr(store, "is_sql", False):
        raise UserErrorException(f"SQL dataset: datastore {store.name!r} is a {store.datastore_type} datastore, "
                                 "not a SQL one")
    return store


def _export(workspace: Any, source: dict[str, Any], folder: str) -> tuple[str, Any]:
    import fsspec

    from airflow_mlpipe.data.sql_export import export

    path = os.path.join(folder, "result.parquet")
    result = export(sql_location(workspace, source).sql_url(), query=source["options"]["query"],
                    fs=fsspec.filesystem("file"), path=path)
    return path, result


def read_sql_table(workspace: Any, source: dict[str, Any]) -> Any:
    """The query's rows as one Arrow table."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="mlpipe-sql-") as folder:
        path, _ = _export(workspace, source, folder)
        return pq.read_table(path)


def sql_result_hash(workspace: Any, source: dict[str, Any]) -> str:
    """The blake3 of the query's result (as the export writes it): what a cache key uses for a SQL dataset."""
    with tempfile.TemporaryDirectory(prefix="mlpipe-sql-") as folder:
        _, result = _export(workspace, source, folder)
        return result.file_hash


def validate_query(workspace: Any, source: dict[str, Any]) -> None:
    """Run the query for one row (as a subquery with a row limit, so the server reads no more); errors name the
    datastore, never the password."""
    import sqlalchemy as sa

    from airflow_mlpipe.data.sql_dialects import failure, parse_url

    store = sql_location(workspace, source)
    url = parse_url(store.sql_url())
    query = source["options"]["query"].strip().rstrip(";")
    probe = (f"SELECT TOP 1 * FROM ({query}) AS mlpipe_probe" if url.get_backend_name() == "mssql"
             else f"SELECT * FROM ({query}) AS mlpipe_probe LIMIT 1")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(probe)).fetchall()
    except sa.exc.SQLAlchemyError as exc:
        raise UserErrorException(f"from_sql_query on datastore {store.name!r}: "
                                 f"{failure('query', url, exc)}") from None
    finally:
        engine.dispose()
