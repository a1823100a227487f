"""Step cache tables (issue 3): filled in by the cache work."""

from __future__ import annotations

from sqlalchemy import Table

from airflow_mlpipe.store.models import metadata  # noqa: F401 - tables are defined on the shared metadata

#: tables created by this module's migration
TABLES: list[Table] = []
