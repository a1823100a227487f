"""Model registry (issue 4): one row per registered model version; the files live on a datastore."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, String, Table, Text, UniqueConstraint

from airflow_mlpipe.store.models import metadata

models = Table(
    "mlpipe_models", metadata,
    Column("id", String(300), primary_key=True),  # "<name>:<version>", like v1
    Column("name", String(255), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("datastore", String(255), nullable=False),
    Column("path", Text, nullable=False),  # folder on the datastore holding the registered file(s)
    Column("root", Text, nullable=False),  # the registered file or folder name inside ``path``
    Column("description", Text),
    Column("tags", JSON, nullable=False),
    Column("properties", JSON, nullable=False),
    Column("framework", String(100)),
    Column("framework_version", String(100)),
    Column("run_id", String(300)),
    Column("datasets", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("name", "version", name="uq_mlpipe_models_name_version"),
)

#: tables created by this module's migration
TABLES: list[Table] = [models]
