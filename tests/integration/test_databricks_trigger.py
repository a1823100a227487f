"""The DatabricksStep's trigger against a Databricks stand-in that scripts the states a run goes through.

The stand-in is a real HTTP server speaking the Jobs API shapes (``runs/get``, ``runs/cancel``), so the provider's
async client runs unchanged; it can answer with a life-cycle state Databricks may add later, which the provider's
own ``RunState`` rejects. The first poll happens at once and the waits between polls grow.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_mlpipe.triggers.databricks_run import DatabricksRunTrigger

CONN_ID = "databricks_trigger_test"


class ScriptedDatabricks:
    """Answers ``runs/get`` with the next state of ``states`` (the last one repeats) and records every call."""

    def __init__(self, states: list[tuple[str, str]]) -> None:
        self.states = list(states)
        self.gets: list[float] = []
        self.cancels: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                owner.gets.append(time.monotonic())
                life, result = owner.states.pop(0) if len(owner.states) > 1 else owner.states[0]
                state = {"life_cycle_state": life, "state_message": f"now {life}"}
                if result:
                    state["result_state"] = result
                self._answer({"run_id": 42, "job_id": 7, "state": state, "run_page_url": "http://x/#job/7/run/42",
                              "tasks": [{"run_id": 43, "task_key": "t", "state": state}]})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                owner.cancels.append({"path": self.path, **json.loads(self.rfile.read(length) or b"{}")})
                self._answer({})

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> ScriptedDatabricks:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({
            "conn_type": "databricks", "host": "127.0.0.1", "port": self.server.server_address[1], "schema": "http",
            "password": "dapi-trigger-test"})
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        os.environ.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)


def _first_event(trigger: DatabricksRunTrigger, timeout: float = 30) -> dict:
    async def first() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout))


def test_unknown_states_keep_waiting_and_polls_back_off():
    states = [("PENDING", ""), ("SOME_STATE_ADDED_LATER", ""), ("RUNNING", ""), ("RUNNING", ""),
              ("TERMINATED", "SUCCESS")]
    with ScriptedDatabricks(states) as api:
        started = time.monotonic()
        trigger = DatabricksRunTrigger(CONN_ID, 42, first_interval=0.2, backoff=2.0, max_interval=0.5)
        event = _first_event(trigger)
    assert event == {"run_id": 42, "run_page_url": "http://x/#job/7/run/42", "life_cycle_state": "TERMINATED",
                     "result_state": "SUCCESS", "state_message": "now TERMINATED"}
    assert len(api.gets) == 5, "a state the trigger does not know ended its wait"
    assert api.gets[0] - started < 1.0, "the first poll waited"
    gaps = [b - a for a, b in zip(api.gets, api.gets[1:], strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and all(0.45 <= g < 1.5 for g in gaps[2:]), gaps


def test_a_run_that_already_failed_is_reported_as_failed_at_the_first_poll():
    with ScriptedDatabricks([("INTERNAL_ERROR", "FAILED")]) as api:
        event = _first_event(DatabricksRunTrigger(CONN_ID, 42, run_page_url="http://page"))
    assert len(api.gets) == 1
    assert (event["life_cycle_state"], event["result_state"], event["run_page_url"]) == (
        "INTERNAL_ERROR", "FAILED", "http://page")


def test_on_kill_cancels_the_run_and_the_trigger_serializes():
    with ScriptedDatabricks([("RUNNING", "")]) as api:
        trigger = DatabricksRunTrigger(CONN_ID, 42, first_interval=0.1)
        asyncio.run(trigger.on_kill())
    assert [c["run_id"] for c in api.cancels] == [42] and api.cancels[0]["path"].endswith("/jobs/runs/cancel")
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    import importlib

    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)


@pytest.mark.parametrize("current,expected", [(0.5, 0.75), (8.0, 10.0), (10.0, 10.0)])
def test_next_interval_grows_to_its_ceiling(current, expected):
    from airflow_mlpipe.triggers.databricks_run import next_interval

    assert next_interval(current, 1.5, 10.0) == expected
