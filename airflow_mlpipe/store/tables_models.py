"""Model registry (issue 4)."""

from __future__ import annotations

from sqlalchemy import Table

from airflow_mlpipe.store.models import metadata  # noqa: F401 - tables are defined on the shared metadata

#: tables created by this module's migration
TABLES: list[Table] = []
