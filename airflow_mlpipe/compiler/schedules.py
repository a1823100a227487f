"""Schedules (v1 ``Schedule``) as Airflow schedules of published pipelines' DAGs.

- A time-based schedule becomes the schedule of the pipeline's DAG: a cron expression (``CronTriggerTimetable`` in
  the schedule's time zone) or a fixed delta (``DeltaTriggerTimetable``); several active schedules of one pipeline
  are combined (``MultipleCronTriggerTimetable``).
- A datastore schedule ("run when files under this folder change") becomes an Airflow **Asset**: a small watcher
  DAG (``mlpipe_datastore_watch__<id>``) lists the folder every ``polling_interval`` minutes (not sub-folders, as
  in v1) and, when it changed, emits an event for the Asset; the pipeline's DAG is scheduled on that Asset.

What a schedule means (recurrence → cron, time zones, which schedules combine) is
:mod:`airflow_mlpipe.contract.schedule_rules`, shared with the SDK that stores schedules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_mlpipe.contract.schedule_rules import (
    TimeTrigger,
    check_combinable,
    fingerprint_setting_key,
    folder_fingerprint,
    time_triggers,
    watcher_dag_id,
)
from airflow_mlpipe.data.datastore_location import DatastoreLocation
from airflow_mlpipe.store import published_queries as q


def asset_for(schedule_row: dict[str, Any]):
    """The Asset a datastore schedule's watcher updates and its pipeline's DAG is scheduled on."""
    from airflow.sdk import Asset

    ds = schedule_row["datastore_name"]
    path = (schedule_row.get("path_on_datastore") or "").strip("/")
    return Asset(name=f"mlpipe_datastore__{ds}__{path or '_root'}", uri=f"mlpipe-datastore://{ds}/{path}",
                 group="mlpipe")


def dag_schedule_for(workspace: Any, schedules: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """``(schedule for the pipeline's DAG, extra DAGs: dag_id → watcher DAG)`` from the pipeline's active
    schedules; raises when its time-based schedules cannot be combined."""
    if not schedules:
        return None, {}
    timetable = timetable_for(time_triggers(schedules))
    assets, extra = [], {}
    for s in schedules:
        if s.get("datastore_name"):
            asset = asset_for(s)
            assets.append(asset)
            extra[watcher_dag_id(s)] = watcher_dag(workspace, s, asset)
    if not assets:
        return timetable, extra
    from airflow.sdk import AssetAny

    condition = assets[0] if len(assets) == 1 else AssetAny(*assets)
    if timetable is None:
        return ([condition] if len(assets) == 1 else condition), extra
    from airflow.timetables.assets import AssetOrTimeSchedule

    return AssetOrTimeSchedule(timetable=timetable, assets=condition), extra


def timetable_for(triggers: list[TimeTrigger]):
    """One Airflow timetable for a pipeline's time triggers (``None`` without any)."""
    if not triggers:
        return None
    from airflow.timetables.trigger import (
        CronTriggerTimetable,
        DeltaTriggerTimetable,
        MultipleCronTriggerTimetable,
    )

    if len(triggers) == 1:
        expr, tz = triggers[0]
        return DeltaTriggerTimetable(expr) if isinstance(expr, timedelta) else CronTriggerTimetable(expr, timezone=tz)
    check_combinable(triggers)
    return MultipleCronTriggerTimetable(*[str(e) for e, _ in triggers], timezone=triggers[0][1])


def watcher_dag(workspace: Any, schedule_row: dict[str, Any], asset: Any):
    """The DAG that lists a datastore schedule's folder and updates ``asset`` when it changed."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    def watch(schedule_id: str) -> str:
        return watch_datastore(workspace, schedule_id)

    minutes = float(schedule_row.get("polling_interval") or 5)
    with DAG(dag_id=watcher_dag_id(schedule_row), schedule=timedelta(minutes=minutes), catchup=False,
             start_date=datetime(2024, 1, 1), tags=["mlpipe", "schedule"], max_active_runs=1,
             description=f"Watches datastore {schedule_row['datastore_name']}:"
                         f"{schedule_row.get('path_on_datastore') or '/'} for schedule {schedule_row['name']}") as dag:
        PythonOperator(task_id="watch", python_callable=watch, outlets=[asset],
                       op_kwargs={"schedule_id": schedule_row["id"]})
    return dag


def watch_datastore(workspace: Any, schedule_id: str) -> str:
    """Task of the watcher DAG: succeed (emitting the Asset event) when the folder changed, else skip."""
    from airflow.sdk.exceptions import AirflowSkipException

    row = q.get_schedule(workspace.store, schedule_id)
    if row is None or row["status"] != "Active":
        raise AirflowSkipException(f"schedule {schedule_id} is not active")
    store = DatastoreLocation.get(workspace, row["datastore_name"])
    current = folder_fingerprint(store.fs, store.full_path(row.get("path_on_datastore") or ""))
    key = fingerprint_setting_key(schedule_id)
    if workspace.store.get_setting(key) == current:
        raise AirflowSkipException("no change")
    workspace.store.set_setting(key, current)
    return current
