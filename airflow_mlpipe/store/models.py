"""Tables of our own metadata store (prefix ``mlpipe_``), kept apart from Airflow's database.

Task code may not use Airflow's ORM, so runs, metrics and registries live here, reached by URL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "mlpipe_schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime)


class Setting(Base):
    __tablename__ = "mlpipe_settings"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ExperimentRow(Base):
    __tablename__ = "mlpipe_experiments"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class PipelineRunRow(Base):
    __tablename__ = "mlpipe_pipeline_runs"
    run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    experiment: Mapped[str] = mapped_column(String(255), index=True)
    dag_id: Mapped[str] = mapped_column(String(250), index=True)
    airflow_run_id: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(40))
    pipeline_name: Mapped[str | None] = mapped_column(String(250), nullable=True)
    spec_hash: Mapped[str | None] = mapped_column(String(80), nullable=True)
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    properties: Mapped[dict] = mapped_column(JSON, default=dict)
    regenerate_outputs: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    start_time: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class StepRunRow(Base):
    __tablename__ = "mlpipe_step_runs"
    step_run_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    pipeline_run_id: Mapped[str] = mapped_column(String(250), index=True)
    step_name: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(40))
    outputs: Mapped[dict] = mapped_column(JSON, default=dict)
    inputs: Mapped[dict] = mapped_column(JSON, default=dict)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    reused_run_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    try_number: Mapped[int] = mapped_column(Integer, default=1)
    start_time: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class MetricRow(Base):
    __tablename__ = "mlpipe_metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(500), index=True)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(250), index=True, nullable=True)
    name: Mapped[str] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(String(20))  # scalar | list | row | table | image
    value: Mapped[object] = mapped_column(JSON)
    step: Mapped[float | None] = mapped_column(Float, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    logged_at: Mapped[datetime] = mapped_column(DateTime)


class DatasetRow(Base):
    __tablename__ = "mlpipe_datasets"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(250), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class DatastoreRow(Base):
    __tablename__ = "mlpipe_datastores"
    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    url: Mapped[str] = mapped_column(Text)
    conn_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
