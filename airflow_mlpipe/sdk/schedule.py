"""Schedule, ScheduleRecurrence, TimeZone (v1 ``azureml.pipeline.core.schedule``): authoring and the store.

A time-based schedule runs the published pipeline's DAG on a cron (or fixed-delta) timetable; a datastore
schedule runs it when the files directly under a datastore folder change (an Airflow Asset updated by a watcher
DAG). What a stored schedule means is :mod:`airflow_mlpipe.contract.schedule_rules`; the DAGs are built by
:mod:`airflow_mlpipe.compiler.schedules`, from the published-pipelines DAG file of the workspace's bundle, which
re-reads the schedules on every parse. Nothing here loads Airflow.
"""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from airflow_mlpipe.contract import schedule_rules as rules
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.schedule_rules import FREQUENCIES, START_FORMAT, WEEK_DAYS
from airflow_mlpipe.store import published_queries as q


class TimeZone(enum.Enum):
    """Windows time-zone names as v1 uses them (the common ones); IANA names are accepted as strings too."""

    UTC = "UTC"
    GMTStandardTime = "GMT Standard Time"
    WEuropeStandardTime = "W. Europe Standard Time"
    CentralEuropeStandardTime = "Central Europe Standard Time"
    RomanceStandardTime = "Romance Standard Time"
    EasternStandardTime = "Eastern Standard Time"
    CentralStandardTime = "Central Standard Time"
    MountainStandardTime = "Mountain Standard Time"
    PacificStandardTime = "Pacific Standard Time"
    IndiaStandardTime = "India Standard Time"
    ChinaStandardTime = "China Standard Time"
    TokyoStandardTime = "Tokyo Standard Time"
    AUSEasternStandardTime = "AUS Eastern Standard Time"


def iana_zone(time_zone: Any) -> str:
    """The IANA name of a TimeZone member or a v1 (Windows) or IANA time-zone name."""
    return rules.iana_zone(time_zone.value if isinstance(time_zone, TimeZone) else time_zone)


class ScheduleRecurrence:
    """v1 ``ScheduleRecurrence(frequency, interval, start_time, time_zone, hours, minutes, week_days, time_of_day)``."""

    def __init__(self, frequency: str, interval: int, start_time: datetime | str | None = None,
                 time_zone: TimeZone | str | None = None, hours: list[int] | None = None,
                 minutes: list[int] | None = None, week_days: list[str] | None = None,
                 time_of_day: str | None = None) -> None:
        self.frequency = frequency
        self.interval = interval
        self.start_time = start_time
        self.time_zone = time_zone
        self.hours = hours
        self.minutes = minutes
        self.week_days = week_days
        self.time_of_day = time_of_day
        self.validate()
        if time_of_day is not None:
            h, m = time_of_day.split(":")
            self.hours, self.minutes = [int(h)], [int(m)]
        if start_time is not None and time_zone is None:
            self.time_zone = TimeZone.UTC

    def validate(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise UserErrorException(f"ScheduleRecurrence: frequency must be one of {FREQUENCIES}, "
                                     f"got {self.frequency!r}")
        if not isinstance(self.interval, int) or isinstance(self.interval, bool) or self.interval < 1:
            raise UserErrorException(f"ScheduleRecurrence: interval must be a positive integer, got {self.interval!r}")
        if isinstance(self.start_time, datetime) and self.start_time.tzinfo is not None:
            raise UserErrorException("ScheduleRecurrence: start_time must be a naive datetime; use time_zone")
        if isinstance(self.start_time, str):
            try:
                datetime.strptime(self.start_time, START_FORMAT)
            except ValueError as exc:
                raise UserErrorException(f"ScheduleRecurrence: start_time {self.start_time!r} is not "
                                         "'YYYY-MM-DDThh:mm:ss'") from exc
        if self.time_of_day is not None:
            if self.hours or self.minutes:
                raise UserErrorException("ScheduleRecurrence: time_of_day cannot be combined with hours/minutes")
            m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(self.time_of_day))
            if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
                raise UserErrorException(f"ScheduleRecurrence: time_of_day {self.time_of_day!r} is not 'hh:mm'")
        if (self.hours or self.minutes) and self.frequency not in ("Day", "Week"):
            raise UserErrorException("ScheduleRecurrence: hours and minutes apply to frequency Day or Week only")
        if self.week_days and self.frequency != "Week":
            raise UserErrorException("ScheduleRecurrence: week_days apply to frequency Week only")
        for h in self.hours or []:
            if not isinstance(h, int) or not 0 <= h <= 23:
                raise UserErrorException(f"ScheduleRecurrence: hours must be integers 0-23, got {h!r}")
        for m in self.minutes or []:
            if not isinstance(m, int) or not 0 <= m <= 59:
                raise UserErrorException(f"ScheduleRecurrence: minutes must be integers 0-59, got {m!r}")
        for d in self.week_days or []:
            if str(d).lower() not in WEEK_DAYS:
                raise UserErrorException(f"ScheduleRecurrence: unknown week day {d!r}")
        if self.time_zone is not None:
            iana_zone(self.time_zone)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        start = self.start_time.strftime(START_FORMAT) if isinstance(self.start_time, datetime) \
            else self.start_time
        tz = self.time_zone.value if isinstance(self.time_zone, TimeZone) else self.time_zone
        return {"frequency": self.frequency, "interval": self.interval, "start_time": start, "time_zone": tz,
                "hours": self.hours, "minutes": self.minutes, "week_days": self.week_days}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ScheduleRecurrence:
        return ScheduleRecurrence(data["frequency"], data["interval"], start_time=data.get("start_time"),
                                  time_zone=data.get("time_zone"), hours=data.get("hours"),
                                  minutes=data.get("minutes"), week_days=data.get("week_days"))

    def to_cron(self) -> str | timedelta:
        """A cron expression, or a timedelta where cron cannot express the recurrence."""
        return rules.recurrence_to_cron(self.to_dict())

    def __repr__(self) -> str:
        return f"ScheduleRecurrence({self.to_dict()})"


# ---------------------------------------------------------------------------------------------- datastore watch
def folder_fingerprint(ws: Any, datastore_name: str, path: str | None) -> str:
    """Hash of (name, size, mtime) of the files directly under ``path`` (sub-folders are not watched, as in v1)."""
    from airflow_mlpipe.sdk.datastore import Datastore

    store = Datastore(ws, datastore_name)
    return rules.folder_fingerprint(store.fs, store.full_path(path or ""))


# ---------------------------------------------------------------------------------------------- Schedule
class Schedule:
    """v1 ``Schedule``: a recurrence or a datastore trigger for a published pipeline (or an endpoint)."""

    def __init__(self, workspace: Any, _row: dict[str, Any]) -> None:
        self._workspace = workspace
        self._row = _row

    @staticmethod
    def create(workspace: Any, name: str, pipeline_id: str, experiment_name: str,
               recurrence: ScheduleRecurrence | None = None, description: str | None = None,
               pipeline_parameters: dict | None = None, wait_for_provisioning: bool = False,
               wait_timeout: int = 3600, datastore: Any = None, polling_interval: float = 5,
               data_path_parameter_name: str | None = None, continue_on_step_failure: bool | None = None,
               path_on_datastore: str | None = None, _workflow_provider: Any = None,
               _service_endpoint: Any = None, pipeline_endpoint_id: str | None = None) -> Schedule:
        from airflow_mlpipe.clients.submit import EXPERIMENT_NAME as _NAME
        from airflow_mlpipe.sdk.published import PipelineEndpoint, PublishedPipeline

        if (recurrence is None) == (datastore is None):
            raise UserErrorException("Schedule.create: give exactly one of recurrence (time-based) or datastore "
                                     "(run when files change)")
        if not isinstance(experiment_name, str) or not _NAME.match(experiment_name):
            raise UserErrorException(f"Schedule.create: experiment name {experiment_name!r} is invalid")
        if pipeline_endpoint_id:
            target = PipelineEndpoint.get(workspace, id=pipeline_endpoint_id).get_pipeline()
        else:
            target = PublishedPipeline.get(workspace, pipeline_id)
        if pipeline_parameters:
            from airflow_mlpipe.contract.parameters import check_parameters

            check_parameters(target.to_spec(), pipeline_parameters)
        if recurrence is not None and not isinstance(recurrence, ScheduleRecurrence):
            raise UserErrorException("Schedule.create: recurrence must be a ScheduleRecurrence")
        if datastore is not None and not (isinstance(polling_interval, (int, float)) and polling_interval > 0):
            raise UserErrorException("Schedule.create: polling_interval must be a positive number of minutes")
        ds_name = None if datastore is None else (datastore if isinstance(datastore, str) else datastore.name)
        row = {
            "id": str(uuid.uuid4()), "name": name, "description": description,
            "pipeline_id": None if pipeline_endpoint_id else target.id, "pipeline_endpoint_id": pipeline_endpoint_id,
            "experiment_name": experiment_name, "recurrence": recurrence.to_dict() if recurrence else None,
            "datastore_name": ds_name, "path_on_datastore": path_on_datastore,
            "polling_interval": float(polling_interval) if datastore is not None else None,
            "data_path_parameter_name": data_path_parameter_name, "pipeline_parameters": dict(pipeline_parameters or {}),
            "continue_on_step_failure": continue_on_step_failure,
        }
        q.check_schedules_combinable(workspace.store, row)
        if ds_name:
            workspace.store.set_setting(rules.fingerprint_setting_key(row["id"]),
                                        folder_fingerprint(workspace, ds_name, path_on_datastore))
        return Schedule(workspace, q.insert_schedule(workspace.store, row))

    @staticmethod
    def create_for_pipeline_endpoint(workspace: Any, name: str, pipeline_endpoint_id: str, experiment_name: str,
                                     **kwargs: Any) -> Schedule:
        return Schedule.create(workspace, name, None, experiment_name, pipeline_endpoint_id=pipeline_endpoint_id,
                               **kwargs)

    @staticmethod
    def get(workspace: Any, id: str, _workflow_provider: Any = None, _service_endpoint: Any = None) -> Schedule:
        row = q.get_schedule(workspace.store, id)
        if row is None:
            raise UserErrorException(f"Schedule {id!r} was not found")
        return Schedule(workspace, row)

    @staticmethod
    def list(workspace: Any, active_only: bool = True, pipeline_id: str | None = None,
             pipeline_endpoint_id: str | None = None, **_: Any) -> list[Schedule]:
        return [Schedule(workspace, r) for r in q.list_schedules(workspace.store, active_only, pipeline_id,
                                                                 pipeline_endpoint_id)]

    @staticmethod
    def get_schedules_for_pipeline_id(workspace: Any, pipeline_id: str, **_: Any) -> list[Schedule]:
        return Schedule.list(workspace, active_only=False, pipeline_id=pipeline_id)

    @staticmethod
    def get_schedules_for_pipeline_endpoint_id(workspace: Any, pipeline_endpoint_id: str, **_: Any) -> list[Schedule]:
        return Schedule.list(workspace, active_only=False, pipeline_endpoint_id=pipeline_endpoint_id)

    def _refresh(self) -> dict[str, Any]:
        self._row = q.get_schedule(self._workspace.store, self.id) or self._row
        return self._row

    # ------------------------------------------------------------------ properties
    id = property(lambda self: self._row["id"])
    name = property(lambda self: self._row["name"])
    description = property(lambda self: self._row.get("description"))
    pipeline_id = property(lambda self: self._row.get("pipeline_id"))
    pipeline_endpoint_id = property(lambda self: self._row.get("pipeline_endpoint_id"))
    experiment_name = property(lambda self: self._row.get("experiment_name"))
    datastore_name = property(lambda self: self._row.get("datastore_name"))
    path_on_datastore = property(lambda self: self._row.get("path_on_datastore"))
    polling_interval = property(lambda self: self._row.get("polling_interval"))
    data_path_parameter_name = property(lambda self: self._row.get("data_path_parameter_name"))
    continue_on_step_failure = property(lambda self: self._row.get("continue_on_step_failure"))

    @property
    def status(self) -> str:
        return self._refresh()["status"]

    @property
    def recurrence(self) -> ScheduleRecurrence | None:
        rec = self._row.get("recurrence")
        return ScheduleRecurrence.from_dict(rec) if rec else None

    def enable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        q.set_schedule_status(self._workspace.store, self._row, q.ACTIVE)
        self._refresh()

    def disable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        q.set_schedule_status(self._workspace.store, self._row, q.DISABLED)
        self._refresh()

    def update(self, name: str | None = None, description: str | None = None,
               recurrence: ScheduleRecurrence | None = None, pipeline_parameters: dict | None = None,
               status: str | None = None, polling_interval: float | None = None, **_: Any) -> None:
        fields: dict[str, Any] = {}
        if name is not None:
            fields["name"] = name
        if description is not None:
            fields["description"] = description
        if recurrence is not None:
            fields["recurrence"] = recurrence.to_dict()
        if pipeline_parameters is not None:
            fields["pipeline_parameters"] = dict(pipeline_parameters)
        if status is not None:
            if status not in (q.ACTIVE, q.DISABLED):
                raise UserErrorException(f"Schedule.update: status must be Active or Disabled, got {status!r}")
            fields["status"] = status
        if polling_interval is not None:
            fields["polling_interval"] = float(polling_interval)
        if fields:
            q.update_schedule(self._workspace.store, self.id, **fields)
        self._refresh()

    def _dag_id(self) -> str | None:
        from airflow_mlpipe.sdk.published import PipelineEndpoint, PublishedPipeline

        if self.pipeline_endpoint_id:
            return PipelineEndpoint.get(self._workspace, id=self.pipeline_endpoint_id).get_pipeline().dag_id
        return PublishedPipeline.get(self._workspace, self.pipeline_id).dag_id

    def get_pipeline_runs(self) -> list[Any]:
        """Scheduled runs of this schedule's pipeline DAG (recorded in the store), newest first."""
        from airflow_mlpipe.sdk.experiment import Experiment
        from airflow_mlpipe.sdk.runs import PipelineRun

        dag_id = self._dag_id()
        rows = [r for r in self._workspace.store.list_pipeline_runs(limit=10_000) if r["dag_id"] == dag_id
                and not (r.get("properties") or {}).get("azureml.pipelineid")]
        return [PipelineRun(Experiment(self._workspace, r["experiment"], _skip_name_validation=True), r["run_id"])
                for r in rows]

    def get_last_pipeline_run(self) -> Any:
        runs = self.get_pipeline_runs()
        return runs[0] if runs else None

    def __repr__(self) -> str:
        return f"Schedule(Name: {self.name}, Id: {self.id}, Status: {self._row['status']})"
