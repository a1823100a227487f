"""What a stored Schedule means, as pure logic: recurrence → cron (or a fixed delta), time zones, which time-based
schedules of one pipeline can be combined, the watcher DAG's id and the folder fingerprint a datastore schedule
compares.

The SDK (which validates and stores schedules) and the compiler (which turns them into Airflow timetables and
watcher DAGs) both use it, so a schedule that ``Schedule.create`` accepts is one the DAG factory can build. No
Airflow here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException

FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
WEEK_DAYS = {"monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
             "saturday": "sat", "sunday": "sun"}
START_FORMAT = "%Y-%m-%dT%H:%M:%S"

#: Windows time-zone names as v1 uses them → IANA names
WINDOWS_ZONES = {
    "UTC": "UTC", "GMT Standard Time": "Europe/London", "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest", "Romance Standard Time": "Europe/Paris",
    "Eastern Standard Time": "America/New_York", "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver", "Pacific Standard Time": "America/Los_Angeles",
    "India Standard Time": "Asia/Kolkata", "China Standard Time": "Asia/Shanghai",
    "Tokyo Standard Time": "Asia/Tokyo", "AUS Eastern Standard Time": "Australia/Sydney",
}

#: a time trigger: a cron expression or a fixed delta, and the IANA time zone it runs in
TimeTrigger = tuple[str | timedelta, str]


def iana_zone(name: str | None) -> str:
    """The IANA name of a v1 (Windows) or IANA time-zone name; ``None`` is UTC."""
    name = name or "UTC"
    if name in WINDOWS_ZONES:
        return WINDOWS_ZONES[name]
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(str(name))
    except Exception as exc:  # noqa: BLE001 - any unusable name is the user's error
        raise UserErrorException(f"ScheduleRecurrence: unknown time_zone {name!r}") from exc
    return str(name)


def _start(start_time: datetime | str | None) -> datetime | None:
    if start_time is None or isinstance(start_time, datetime):
        return start_time
    return datetime.strptime(start_time, START_FORMAT)


def recurrence_to_cron(recurrence: dict[str, Any]) -> str | timedelta:
    """A cron expression for a stored recurrence (``ScheduleRecurrence.to_dict()``), or a timedelta where cron
    cannot express it."""
    start = _start(recurrence.get("start_time"))
    n, f = recurrence["interval"], recurrence["frequency"]
    minutes, hours, week_days = recurrence.get("minutes"), recurrence.get("hours"), recurrence.get("week_days")
    minute0 = start.minute if start else 0
    hour0 = start.hour if start else 0
    mins = ",".join(str(m) for m in sorted(set(minutes))) if minutes else str(minute0)
    hrs = ",".join(str(h) for h in sorted(set(hours))) if hours else str(hour0)
    if f == "Minute":
        return "* * * * *" if n == 1 else (f"*/{n} * * * *" if 60 % n == 0 else timedelta(minutes=n))
    if f == "Hour":
        return f"{minute0} * * * *" if n == 1 else (f"{minute0} */{n} * * *" if 24 % n == 0
                                                     else timedelta(hours=n))
    if f == "Day":
        return f"{mins} {hrs} * * *" if n == 1 else f"{mins} {hrs} */{n} * *"
    if f == "Week":
        if week_days:
            if n != 1:
                raise UserErrorException("ScheduleRecurrence: week_days with interval > 1 is not supported "
                                         "(cron cannot express every n-th week)")
            days = ",".join(WEEK_DAYS[d.lower()] for d in week_days)
            return f"{mins} {hrs} * * {days}"
        return f"{mins} {hrs} * * {start.strftime('%a').lower() if start else 'mon'}" if n == 1 \
            else timedelta(weeks=n)
    day = start.day if start else 1
    return f"{minute0} {hour0} {day} */{n} *" if n > 1 else f"{minute0} {hour0} {day} * *"


def time_triggers(schedules: list[dict[str, Any]]) -> list[TimeTrigger]:
    """``(cron or delta, IANA zone)`` of each time-based schedule row (datastore schedules have none)."""
    return [(recurrence_to_cron(s["recurrence"]), iana_zone(s["recurrence"].get("time_zone")))
            for s in schedules if s.get("recurrence")]


def check_combinable(triggers: list[TimeTrigger]) -> None:
    """Several time-based schedules of one pipeline become one timetable only if all are cron expressions in one
    time zone; raises UserErrorException otherwise."""
    if len(triggers) <= 1:
        return
    zones = {tz for _, tz in triggers}
    if any(not isinstance(e, str) for e, _ in triggers) or len(zones) != 1:
        raise UserErrorException(
            "A published pipeline can have several time-based schedules only if all are cron-expressible and share "
            f"one time zone (got {[str(e) for e, _ in triggers]} in {sorted(zones)})"
        )


def watcher_dag_id(schedule_row: dict[str, Any]) -> str:
    """The DAG that watches a datastore schedule's folder."""
    return f"mlpipe_datastore_watch__{schedule_row['id'].replace('-', '')[:8]}"


def fingerprint_setting_key(schedule_id: str) -> str:
    """The store setting holding the last fingerprint a datastore schedule saw."""
    return f"schedule:{schedule_id}:fingerprint"


def folder_fingerprint(fs: Any, full_path: str) -> str:
    """Hash of (name, size, mtime) of the files directly under ``full_path`` of the fsspec filesystem ``fs``
    (sub-folders are not watched, as in v1); a missing folder is an empty one."""
    try:
        entries = fs.ls(full_path, detail=True)
    except FileNotFoundError:
        entries = []
    files = sorted((str(e.get("name")), e.get("size"), str(e.get("mtime") or e.get("LastModified") or ""))
                   for e in entries if e.get("type") == "file")
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


def recurrence_text(rec: dict[str, Any]) -> str:
    """A stored recurrence for people: ``every 1 Week on Monday at 08:00, 17:00 from 2024-01-01T00:00:00 (UTC)``
    (hours and minutes not given default to the start time's)."""
    parts = [f"every {rec.get('interval')} {rec.get('frequency')}"]
    if rec.get("week_days"):
        parts.append("on " + ", ".join(rec["week_days"]))
    start = rec.get("start_time")
    if rec.get("hours") or rec.get("minutes"):
        hours = sorted(set(rec.get("hours") or [int(start[11:13]) if start else 0]))
        minutes = sorted(set(rec.get("minutes") or [int(start[14:16]) if start else 0]))
        parts.append("at " + ", ".join(f"{h:02d}:{m:02d}" for h in hours for m in minutes))
    if start:
        parts.append(f"from {start}")
    if rec.get("time_zone"):
        parts.append(f"({rec['time_zone']})")
    return " ".join(parts)
