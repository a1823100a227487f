"""Queries over step runs that a running step polls (SQLAlchemy Core only: this runs in task processes).

Kept apart from :mod:`store.db` because they serve one feature, ``continue_on_step_failure=False`` (see
:mod:`airflow_mlpipe.runtime.fail_fast`), and are cheap on purpose: one indexed lookup, few columns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from airflow_mlpipe.store import models as t
from airflow_mlpipe.store.db import Store, _all

#: the step-run status of a step that failed
FAILED = "Failed"


def failed_step_runs(store: Store, pipeline_run_id: str, exclude_task_id: str | None = None) -> list[dict[str, Any]]:
    """The step runs of ``pipeline_run_id`` recorded ``Failed`` (oldest end first), except ``exclude_task_id``'s:
    ``step_name``, ``task_id``, ``error``, ``details``, ``try_number``, ``end_time``."""
    table = t.step_runs
    q = (select(table.c.step_run_id, table.c.step_name, table.c.task_id, table.c.error, table.c.details,
                table.c.try_number, table.c.end_time)
         .where(table.c.pipeline_run_id == pipeline_run_id, table.c.status == FAILED)
         .order_by(table.c.end_time))
    if exclude_task_id is not None:
        q = q.where(table.c.task_id != exclude_task_id)
    with store.begin() as conn:
        return _all(conn, q)
