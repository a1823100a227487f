"""Tables of our own metadata store (prefix ``mlpipe_``), kept apart from Airflow's database.

Task code may not use Airflow's ORM, so runs, metrics and registries live here, reached by URL. These are
SQLAlchemy Core tables on purpose: ORM use in a process that has Airflow's models loaded makes SQLAlchemy
configure every mapper of the process (about a second per task process), and the store is on the hot path.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

schema_version = Table(
    "mlpipe_schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime),
)

settings = Table(
    "mlpipe_settings", metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text),
)

experiments = Table(
    "mlpipe_experiments", metadata,
    Column("name", String(255), primary_key=True),
    Column("created_at", DateTime),
)

pipeline_runs = Table(
    "mlpipe_pipeline_runs", metadata,
    Column("run_id", String(250), primary_key=True),
    Column("experiment", String(255), index=True),
    Column("dag_id", String(250), index=True),
    Column("airflow_run_id", String(250)),
    Column("status", String(40)),
    Column("pipeline_name", String(250), nullable=True),
    Column("spec_hash", String(80), nullable=True),
    Column("parameters", JSON),
    Column("tags", JSON),
    Column("properties", JSON),
    Column("regenerate_outputs", Boolean, default=False),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime),
    Column("start_time", DateTime, nullable=True),
    Column("end_time", DateTime, nullable=True),
)

step_runs = Table(
    "mlpipe_step_runs", metadata,
    Column("step_run_id", String(500), primary_key=True),
    Column("pipeline_run_id", String(250), index=True),
    Column("step_name", String(250)),
    Column("task_id", String(250)),
    Column("kind", String(60)),
    Column("status", String(40)),
    Column("outputs", JSON),
    Column("inputs", JSON),
    Column("details", JSON),
    Column("reused_run_id", String(500), nullable=True),
    Column("error", Text, nullable=True),
    Column("try_number", Integer, default=1),
    Column("start_time", DateTime, nullable=True),
    Column("end_time", DateTime, nullable=True),
)

metrics = Table(
    "mlpipe_metrics", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(500), index=True),
    Column("pipeline_run_id", String(250), index=True, nullable=True),
    Column("name", String(250)),
    Column("kind", String(20)),  # scalar | list | row | table | image | ...
    Column("value", JSON),
    Column("step", Float, nullable=True),
    Column("description", Text, nullable=True),
    Column("logged_at", DateTime),
)

datasets = Table(
    "mlpipe_datasets", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(250), index=True),
    Column("version", Integer),
    Column("definition", JSON),
    Column("description", Text, nullable=True),
    Column("tags", JSON),
    Column("created_at", DateTime),
    UniqueConstraint("name", "version"),
)

datastores = Table(
    "mlpipe_datastores", metadata,
    Column("name", String(250), primary_key=True),
    Column("kind", String(60)),
    Column("url", Text),
    Column("conn_id", String(250), nullable=True),
    Column("options", JSON),
    Column("created_at", DateTime),
)

#: the tables of schema version 1 (feature modules ``tables_*.py`` add theirs in later migrations)
CORE_TABLES = [schema_version, settings, experiments, pipeline_runs, step_runs, metrics, datasets, datastores]
