"""v1 ``SqlDataReference``: a table, a query or a stored procedure on a SQL datastore, as a DataTransferStep end.

The datastore's credentials stay in its Airflow connection: the spec carries the datastore name and the SQL.
"""

from __future__ import annotations

import enum
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException


class StoredProcedureParameterType(enum.Enum):
    """v1 ``azureml.data.stored_procedure_parameter.StoredProcedureParameterType``."""

    String = "String"
    Int = "Int"
    Decimal = "Decimal"
    Guid = "Guid"
    Boolean = "Boolean"
    Date = "Date"


class StoredProcedureParameter:
    """v1 ``StoredProcedureParameter(name, value, type=StoredProcedureParameterType.String)``."""

    def __init__(self, name: str, value: Any, type: StoredProcedureParameterType = StoredProcedureParameterType.String
                 ) -> None:
        if not isinstance(name, str) or not name:
            raise UserErrorException(f"StoredProcedureParameter: name must be a non-empty string, got {name!r}")
        if not isinstance(type, StoredProcedureParameterType):
            raise UserErrorException(f"StoredProcedureParameter {name!r}: type must be a StoredProcedureParameterType, "
                                     f"got {type!r}")
        self.name = name
        self.value = value
        self.type = type

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, "value": None if self.value is None else str(self.value), "type": self.type.value}


def _datastore_name(datastore: Any) -> str:
    name = datastore if isinstance(datastore, str) else getattr(datastore, "name", None)
    if not isinstance(name, str) or not name:
        raise UserErrorException(f"SqlDataReference: datastore must be a SQL datastore or its name, got {datastore!r}")
    is_sql = getattr(datastore, "is_sql", None)
    if is_sql is False:
        raise UserErrorException(f"SqlDataReference: datastore {name!r} is a {datastore.datastore_type} datastore, not "
                                 "a SQL one (register it with Datastore.register_azure_sql_database, "
                                 "register_azure_postgre_sql, register_azure_my_sql or register_sql_database)")
    return name


class SqlDataReference:
    """v1 ``SqlDataReference(datastore, data_reference_name=None, sql_table=None, sql_query=None,
    sql_stored_procedure=None, sql_stored_procedure_params=None)``: exactly one of table, query, procedure."""

    def __init__(self, datastore: Any, data_reference_name: str | None = None, sql_table: str | None = None,
                 sql_query: str | None = None, sql_stored_procedure: str | None = None,
                 sql_stored_procedure_params: list[StoredProcedureParameter] | None = None) -> None:
        self.datastore = datastore
        self.datastore_name = _datastore_name(datastore)
        given = {k: v for k, v in (("sql_table", sql_table), ("sql_query", sql_query),
                                   ("sql_stored_procedure", sql_stored_procedure)) if v is not None}
        if len(given) != 1:
            raise self._error("give exactly one of sql_table, sql_query, sql_stored_procedure "
                              f"(got {sorted(given) or 'none'})")
        for key, value in given.items():
            if not isinstance(value, str) or not value.strip():
                raise self._error(f"{key} must be a non-empty string, got {value!r}")
        params = list(sql_stored_procedure_params or [])
        if params and sql_stored_procedure is None:
            raise self._error("sql_stored_procedure_params need sql_stored_procedure")
        for p in params:
            if not isinstance(p, StoredProcedureParameter):
                raise self._error(f"sql_stored_procedure_params must hold StoredProcedureParameter, got {p!r}")
        self.sql_table = sql_table
        self.sql_query = sql_query
        self.sql_stored_procedure = sql_stored_procedure
        self.sql_stored_procedure_params = params
        self.data_reference_name = data_reference_name or self.datastore_name
        self.mode = "direct"

    def _error(self, problem: str) -> UserErrorException:
        return UserErrorException(f"SqlDataReference on datastore {self.datastore_name!r}: {problem}")

    def sql_spec(self) -> dict[str, Any]:
        """The SQL side of the spec: which of table / query / procedure, and the procedure's parameters."""
        if self.sql_table is not None:
            return {"table": self.sql_table}
        if self.sql_query is not None:
            return {"query": self.sql_query}
        return {"procedure": self.sql_stored_procedure,
                "params": [p.to_spec() for p in self.sql_stored_procedure_params]}

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "sql_reference", "name": self.data_reference_name, "datastore": self.datastore_name,
                "sql": self.sql_spec()}

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.data_reference_name}"

    __repr__ = __str__
