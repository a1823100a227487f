"""Triggering a run survives Airflow's transient "Database error" (SQLite write lock) without doubling the run.

A real HTTP server on 127.0.0.1 plays the Airflow REST API v2 routes the client uses.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_mlpipe.clients.airflow_rest import AirflowAPIError, AirflowClient


class FakeAirflow:
    """Answers POST dagRuns with the scripted statuses; a 500 may still have created the run (``commit_on_500``)."""

    def __init__(self, statuses: list[int], commit_on_500: bool) -> None:
        self.statuses, self.commit_on_500 = list(statuses), commit_on_500
        self.runs: dict[str, dict] = {}
        self.posts = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.posts += 1
                status = fake.statuses.pop(0) if fake.statuses else 200
                run_id = body.get("dag_run_id") or "manual__generated"
                if run_id in fake.runs:
                    return self._send(409, {"detail": "DAG run already exists"})
                if status == 200 or fake.commit_on_500:
                    fake.runs[run_id] = {"dag_run_id": run_id, "state": "queued", "conf": body["conf"]}
                if status == 200:
                    return self._send(200, fake.runs[run_id])
                return self._send(status, {"reason": "Database error", "message": "Serious error"})

            def do_GET(self):  # noqa: N802
                run_id = self.path.rsplit("/", 1)[-1]
                if run_id in fake.runs:
                    return self._send(200, fake.runs[run_id])
                return self._send(404, {"detail": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize("commit_on_500", [False, True])
def test_a_transient_500_is_retried_and_the_run_exists_once(commit_on_500):
    fake = FakeAirflow([500, 500], commit_on_500)
    try:
        run = AirflowClient(fake.url, token="t").trigger("dag", conf={"x": 1}, dag_run_id="run-1")
    finally:
        fake.close()
    assert run["dag_run_id"] == "run-1" and run["conf"] == {"x": 1}
    assert list(fake.runs) == ["run-1"]
    # a run the failed answer did create is found by its id, not posted again
    assert fake.posts == (1 if commit_on_500 else 3)


def test_without_our_own_run_id_a_500_is_not_retried():
    fake = FakeAirflow([500], commit_on_500=False)
    try:
        with pytest.raises(AirflowAPIError) as err:
            AirflowClient(fake.url, token="t").trigger("dag", conf={})
    finally:
        fake.close()
    assert err.value.status == 500 and fake.posts == 1


def test_an_idempotent_request_is_retried_on_a_database_error():
    """PATCH (unpause) answered with Airflow's SQLite "Database error" once succeeds on the retry."""
    answers = [500, 200]
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_PATCH(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
            status = answers.pop(0)
            data = json.dumps({"reason": "Database error"} if status == 500 else {"is_paused": False}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = AirflowClient(f"http://127.0.0.1:{server.server_address[1]}", token="t")
        resp = client.request("PATCH", "/api/v2/dags/d", json={"is_paused": False})
    finally:
        server.shutdown()
    assert resp.json() == {"is_paused": False} and len(seen) == 2
