"""Published pipelines, endpoints and schedules (issue 5).

A published pipeline is immutable: its spec (``name`` = the DAG id it compiles to) never changes after the
row is written; only ``status`` (Active/Disabled) does. Endpoint versions are strings ``"0"``, ``"1"``, ...
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Integer, String, Table, Text

from airflow_mlpipe.store.models import metadata

published_pipelines = Table(
    "mlpipe_published_pipelines", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), index=True),
    Column("description", Text, nullable=True),
    Column("version", String(100), nullable=True),
    Column("status", String(20)),  # Active | Disabled
    Column("dag_id", String(250), unique=True),
    Column("spec", JSON),
    Column("spec_hash", String(80)),
    Column("continue_on_step_failure", Boolean, default=False),
    Column("total_run_steps", Integer),
    Column("source_run_id", String(250), nullable=True),
    Column("created_at", DateTime),
    Column("modified_at", DateTime),
)

pipeline_endpoints = Table(
    "mlpipe_pipeline_endpoints", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), unique=True),
    Column("description", Text, nullable=True),
    Column("status", String(20)),  # Active | Disabled
    Column("default_version", String(20)),
    Column("created_at", DateTime),
    Column("modified_at", DateTime),
)

endpoint_versions = Table(
    "mlpipe_endpoint_versions", metadata,
    Column("endpoint_id", String(64), primary_key=True),
    Column("version", String(20), primary_key=True),
    Column("version_number", Integer),
    Column("pipeline_id", String(64), index=True),
    Column("created_at", DateTime),
)

schedules = Table(
    "mlpipe_schedules", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255)),
    Column("description", Text, nullable=True),
    Column("pipeline_id", String(64), index=True, nullable=True),
    Column("pipeline_endpoint_id", String(64), index=True, nullable=True),
    Column("experiment_name", String(255)),
    Column("status", String(20)),  # Active | Disabled
    Column("recurrence", JSON, nullable=True),
    Column("datastore_name", String(250), nullable=True),
    Column("path_on_datastore", Text, nullable=True),
    Column("polling_interval", Float, nullable=True),
    Column("data_path_parameter_name", String(250), nullable=True),
    Column("pipeline_parameters", JSON),
    Column("continue_on_step_failure", Boolean, nullable=True),
    Column("created_at", DateTime),
    Column("modified_at", DateTime),
)

#: tables created by this module's migration
TABLES: list[Table] = [published_pipelines, pipeline_endpoints, endpoint_versions, schedules]
