"""Audit trail of code and spec uploads (issue 9): uploading code is deploying it, so who did it is kept.

One row per accepted upload through the plugin API: a source-snapshot object or a pipeline spec.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Integer, String, Table, desc, insert, select

from airflow_mlpipe.store.models import metadata

uploads = Table(
    "mlpipe_upload_audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("user", String(255), nullable=False),
    Column("kind", String(20), nullable=False),  # snapshot_object | spec
    Column("digest", String(80), nullable=False),  # blake3 of the object, sha256 of the spec
    Column("dag_id", String(250)),
    Column("size", Integer),
    Column("client", String(255)),
)

#: tables created by this module's migration
TABLES: list[Table] = [uploads]


def record_upload(store: Any, *, user: str, kind: str, digest: str, dag_id: str | None = None,
                  size: int | None = None, client: str | None = None) -> None:
    from airflow_mlpipe.store.db import utcnow

    with store.begin() as conn:
        conn.execute(insert(uploads).values(at=utcnow(), user=user, kind=kind, digest=digest, dag_id=dag_id,
                                            size=size, client=client))


def list_uploads(store: Any, limit: int = 100) -> list[dict[str, Any]]:
    with store.begin() as conn:
        rows = conn.execute(select(uploads).order_by(desc(uploads.c.id)).limit(limit)).mappings()
        return [dict(r) for r in rows]
