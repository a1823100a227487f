"""Cancelling a Databricks run from ``on_kill``, which Airflow calls in the task's SIGTERM handler.

The provider's ``cancel_run`` reads the connection's extra, and the Task SDK then masks its secrets through the
supervisor channel; if the signal interrupted the task while it was itself talking on that channel (every
``runs/get`` of the polling loop does), the handler waits forever on the channel's lock and the run is never
cancelled. So the request is prepared beforehand, while the task runs normally, and sent in the handler with
plain ``urllib`` (no channel, no provider code).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Callable
from typing import Any

CANCEL_RUN = "api/2.2/jobs/runs/cancel"


def prepare_cancel(hook: Any, timeout: float = 10.0) -> Callable[[int], None]:
    """A function that cancels a run by id with the hook's URL and credentials, safe to call from a signal
    handler; call this outside the handler (it reads the connection)."""
    url = hook._endpoint_url(CANCEL_RUN)
    headers = {**hook.user_agent_header, **hook._get_aad_headers(), "Content-Type": "application/json"}
    token = hook._get_token()
    conn = hook.databricks_conn
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif conn.login:
        basic = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"

    def cancel(run_id: int) -> None:
        request = urllib.request.Request(url, data=json.dumps({"run_id": int(run_id)}).encode(), headers=headers,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the connection's URL
            response.read()

    return cancel
