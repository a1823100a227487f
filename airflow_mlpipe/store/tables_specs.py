"""Every PipelineSpec a run ran, content-addressed (issue 8).

A spec is stored once under its hash and never changes, so a run's spec stays available however the DAG file,
the experiment's DAG or a published pipeline changes later: any run can be published, inspected or compared.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, DateTime, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

from airflow_mlpipe.store.models import metadata

specs = Table(
    "mlpipe_specs", metadata,
    Column("spec_hash", String(80), primary_key=True),
    Column("name", String(250)),
    Column("spec", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

#: tables created by this module's migration
TABLES: list[Table] = [specs]


def save_spec(store: Any, spec: dict[str, Any], digest: str | None = None) -> str:
    """Store ``spec`` under its hash (once); returns the hash."""
    from airflow_mlpipe.contract.spec import spec_hash
    from airflow_mlpipe.store.db import utcnow

    digest = digest or spec_hash(spec)
    with store.begin() as conn:
        if conn.execute(select(specs.c.spec_hash).where(specs.c.spec_hash == digest)).first() is not None:
            return digest
    try:
        with store.begin() as conn:
            conn.execute(insert(specs).values(spec_hash=digest, name=spec.get("name"), spec=spec,
                                              created_at=utcnow()))
    except IntegrityError:  # another process stored the same spec first: same content
        pass
    return digest


def get_spec(store: Any, digest: str | None) -> dict[str, Any] | None:
    if not digest:
        return None
    with store.begin() as conn:
        row = conn.execute(select(specs.c.spec).where(specs.c.spec_hash == digest)).first()
    return dict(row[0]) if row is not None else None
