"""Queries over the published-pipeline tables (SQLAlchemy Core only: this runs in Airflow processes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, insert, select, update

from airflow_mlpipe.contract import schedule_rules as rules
from airflow_mlpipe.store import tables_published as tp
from airflow_mlpipe.store.db import Store, _all, _one, utcnow

#: the statuses of published pipelines, endpoints and schedules (v1's names)
ACTIVE, DISABLED = "Active", "Disabled"

# ---------------------------------------------------------------------------------------------- pipelines


def insert_pipeline(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    values = {"created_at": now, "modified_at": now, **row}
    with store.begin() as conn:
        conn.execute(insert(tp.published_pipelines).values(**values))
    return values


def get_pipeline(store: Store, pipeline_id: str) -> dict[str, Any] | None:
    t = tp.published_pipelines
    with store.begin() as conn:
        return _one(conn, select(t).where(t.c.id == pipeline_id))


def list_pipelines(store: Store, active_only: bool = True) -> list[dict[str, Any]]:
    t = tp.published_pipelines
    q = select(t).order_by(t.c.created_at, t.c.id)
    if active_only:
        q = q.where(t.c.status == ACTIVE)
    with store.begin() as conn:
        return _all(conn, q)


def set_pipeline_status(store: Store, pipeline_id: str, status: str) -> None:
    t = tp.published_pipelines
    with store.begin() as conn:
        conn.execute(update(t).where(t.c.id == pipeline_id).values(status=status, modified_at=utcnow()))


# ---------------------------------------------------------------------------------------------- endpoints


def insert_endpoint(store: Store, row: dict[str, Any], pipeline_id: str) -> dict[str, Any]:
    now = utcnow()
    values = {"created_at": now, "modified_at": now, "default_version": "0", "status": ACTIVE, **row}
    with store.begin() as conn:
        conn.execute(insert(tp.pipeline_endpoints).values(**values))
        conn.execute(insert(tp.endpoint_versions).values(endpoint_id=values["id"], version="0", version_number=0,
                                                         pipeline_id=pipeline_id, created_at=now))
    return values


def get_endpoint(store: Store, endpoint_id: str | None = None, name: str | None = None) -> dict[str, Any] | None:
    t = tp.pipeline_endpoints
    q = select(t).where(t.c.id == endpoint_id) if endpoint_id else select(t).where(t.c.name == name)
    with store.begin() as conn:
        return _one(conn, q)


def list_endpoints(store: Store, active_only: bool = True) -> list[dict[str, Any]]:
    t = tp.pipeline_endpoints
    q = select(t).order_by(t.c.created_at, t.c.id)
    if active_only:
        q = q.where(t.c.status == ACTIVE)
    with store.begin() as conn:
        return _all(conn, q)


def update_endpoint(store: Store, endpoint_id: str, **fields: Any) -> None:
    t = tp.pipeline_endpoints
    with store.begin() as conn:
        conn.execute(update(t).where(t.c.id == endpoint_id).values(modified_at=utcnow(), **fields))


def add_version(store: Store, endpoint_id: str, pipeline_id: str, make_default: bool) -> str:
    """Append a version (the next integer, as a string) in one transaction; returns it."""
    v = tp.endpoint_versions
    with store.begin() as conn:
        rows = _all(conn, select(v.c.version_number).where(v.c.endpoint_id == endpoint_id))
        number = max((r["version_number"] for r in rows), default=-1) + 1
        conn.execute(insert(v).values(endpoint_id=endpoint_id, version=str(number), version_number=number,
                                      pipeline_id=pipeline_id, created_at=utcnow()))
        if make_default:
            t = tp.pipeline_endpoints
            conn.execute(update(t).where(t.c.id == endpoint_id).values(default_version=str(number),
                                                                       modified_at=utcnow()))
    return str(number)


def list_versions(store: Store, endpoint_id: str | None = None) -> list[dict[str, Any]]:
    v = tp.endpoint_versions
    q = select(v).order_by(v.c.endpoint_id, v.c.version_number)
    if endpoint_id:
        q = q.where(v.c.endpoint_id == endpoint_id)
    with store.begin() as conn:
        return _all(conn, q)


def get_version(store: Store, endpoint_id: str, version: str) -> dict[str, Any] | None:
    v = tp.endpoint_versions
    with store.begin() as conn:
        return _one(conn, select(v).where(and_(v.c.endpoint_id == endpoint_id, v.c.version == str(version))))


# ---------------------------------------------------------------------------------------------- schedules


def insert_schedule(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    values = {"created_at": now, "modified_at": now, "status": ACTIVE, **row}
    with store.begin() as conn:
        conn.execute(insert(tp.schedules).values(**values))
    return values


def get_schedule(store: Store, schedule_id: str) -> dict[str, Any] | None:
    t = tp.schedules
    with store.begin() as conn:
        return _one(conn, select(t).where(t.c.id == schedule_id))


def list_schedules(store: Store, active_only: bool = True, pipeline_id: str | None = None,
                   pipeline_endpoint_id: str | None = None) -> list[dict[str, Any]]:
    t = tp.schedules
    q = select(t).order_by(t.c.created_at, t.c.id)
    if active_only:
        q = q.where(t.c.status == ACTIVE)
    if pipeline_id:
        q = q.where(t.c.pipeline_id == pipeline_id)
    if pipeline_endpoint_id:
        q = q.where(t.c.pipeline_endpoint_id == pipeline_endpoint_id)
    with store.begin() as conn:
        return _all(conn, q)


def update_schedule(store: Store, schedule_id: str, **fields: Any) -> None:
    t = tp.schedules
    with store.begin() as conn:
        conn.execute(update(t).where(t.c.id == schedule_id).values(modified_at=utcnow(), **fields))


def check_schedules_combinable(store: Store, row: dict[str, Any]) -> None:
    """Fail now, not when the DAG is parsed, if schedule ``row`` cannot join the other active schedules of its
    pipeline (one DAG timetable serves them all)."""
    others = ([s for s in list_schedules(store, pipeline_id=row["pipeline_id"]) if s["id"] != row.get("id")]
              if row.get("pipeline_id") else [])
    rules.check_combinable(rules.time_triggers([*others, row]))


def set_schedule_status(store: Store, row: dict[str, Any], status: str) -> None:
    """Enable (after :func:`check_schedules_combinable`) or disable schedule ``row``."""
    if status == ACTIVE:
        check_schedules_combinable(store, row)
    update_schedule(store, row["id"], status=status)


# ---------------------------------------------------------------------------------------------- factory view


def factory_rows(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the DAG factory needs, in two queries: pipelines to serve and active schedules.

    Served: every Active published pipeline, plus every pipeline that is a version of an Active endpoint.
    """
    p, e, v, s = tp.published_pipelines, tp.pipeline_endpoints, tp.endpoint_versions, tp.schedules
    in_use = select(v.c.pipeline_id).join(e, e.c.id == v.c.endpoint_id).where(e.c.status == ACTIVE)
    with store.begin() as conn:
        pipelines = _all(conn, select(p).where((p.c.status == ACTIVE) | p.c.id.in_(in_use))
                         .order_by(p.c.created_at, p.c.id))
        scheds = _all(conn, select(s).where(s.c.status == ACTIVE).order_by(s.c.created_at, s.c.id))
    return pipelines, scheds
