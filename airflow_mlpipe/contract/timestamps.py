"""Times as v1 shows them: ISO 8601 in UTC with a ``Z`` (the store keeps naive UTC datetimes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def iso_utc(value: Any) -> Any:
    """A naive UTC datetime as ``...Z``, an aware one as its own ISO form; anything else (None, an ISO string
    from Airflow) unchanged."""
    if isinstance(value, datetime):
        return value.isoformat() + "Z" if value.tzinfo is None else value.isoformat()
    return value
