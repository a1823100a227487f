"""The cache sensor: a step whose key another run is computing waits in the triggerer, not in a worker slot.

A real embedded Airflow (SQLite, LocalExecutor, triggerer) with two worker slots (``AIRFLOW__CORE__PARALLELISM
=2``). Three runs of one pipeline share a slow step (it runs until the test writes a ``release`` file). One
run computes it; the other two must be ``deferred`` (no slot held), their task log naming the run they wait for,
so that an unrelated pipeline still runs on the free slot meanwhile. Then all three finish, the step computed
once and reused twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_mlpipe import Experiment, Pipeline, PipelineData, PythonScriptStep, RunConfiguration, Workspace
from airflow_mlpipe.clients.airflow_rest import AirflowClient
from tests.helpers.embedded import embedded_airflow, working_directory, write_project_config
from tests.helpers.waiting import wait_for_file, wait_until

pytestmark = [pytest.mark.timeout(900)]

#: the shared slow step: records that it computes, then runs until the test releases it
SLOW = """\
import os, sys, time
ctl = os.environ["CTL"]
with open(os.path.join(ctl, "computed"), "a") as fh:
    fh.write(os.environ["MLPIPE_PIPELINE_RUN_ID"] + "\\n")
open(os.path.join(ctl, "started.tmp"), "w").write(os.environ["MLPIPE_PIPELINE_RUN_ID"])
os.replace(os.path.join(ctl, "started.tmp"), os.path.join(ctl, "started"))
deadline = time.monotonic() + 300
while not os.path.exists(os.path.join(ctl, "release")) and time.monotonic() < deadline:
    time.sleep(0.1)
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "result.txt"), "w").write("computed once")
"""
#: an unrelated quick step (never reused)
QUICK = """\
import os, sys
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "q.txt"), "w").write("ran")
"""


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache_sensor")
    write_project_config(root, {"AIRFLOW__CORE__PARALLELISM": "2"})
    with working_directory(root):
        ws = Workspace.from_config()
        with embedded_airflow(ws, root / "dags") as info:
            yield root, ws, info


def _pipeline(ws: Workspace, src: Path, script: str, name: str, ctl: Path, allow_reuse: bool) -> Pipeline:
    src.mkdir(exist_ok=True)
    (src / f"{name}.py").write_text(script)
    rc = RunConfiguration()
    rc.environment_variables = {"CTL": str(ctl)}
    out = PipelineData(f"{name}_out")
    step = PythonScriptStep(f"{name}.py", name=name, arguments=["--out", out], outputs=[out],
                            source_directory=str(src), runconfig=rc, allow_reuse=allow_reuse)
    return Pipeline(ws, [step])


def _states(info, dag_id: str, run_id: str) -> dict[str, dict]:
    with AirflowClient(info.url, info.username, info.password) as client:
        return {ti["task_id"]: ti for ti in client.task_instances(dag_id, run_id)}


@pytest.mark.scheduler
def test_waiting_runs_defer_and_hold_no_worker_slot(airflow):
    root, ws, info = airflow
    ctl = root / "ctl"
    ctl.mkdir()
    shared = _pipeline(ws, root / "src-shared", SLOW, "shared", ctl, allow_reuse=True)
    runs = [Experiment(ws, "cache-sensor").submit(shared) for _ in range(3)]
    dag_id = ws.store.get_pipeline_run(runs[0].id)["dag_id"]
    owner_run_id = wait_for_file(ctl / "started", "the shared step to start in one run", timeout=300)
    owner = next(r for r in runs if r.id == owner_run_id)
    waiters = [r for r in runs if r is not owner]

    def all_waiting() -> dict | None:
        tis = {r.id: _states(info, dag_id, r.id).get("shared") or {} for r in runs}
        if tis[owner.id].get("state") == "running" and all(tis[w.id].get("state") == "deferred" for w in waiters):
            return tis
        return None

    wait_until(all_waiting, "the two other runs' step to be deferred while the owner runs", timeout=300,
               detail=lambda: {r.id: _states(info, dag_id, r.id) for r in runs})
    with AirflowClient(info.url, info.username, info.password) as client:
        for w in waiters:  # the waiting task's log in the UI names the run it waits for
            log = client.task_log(dag_id, w.id, "shared")
            assert f"step run {owner.id}.shared" in log and "waiting in the triggerer" in log, log[-3000:]
    for w in waiters:  # what the Step and Pipeline tabs show next to the deferred state
        waiting = ws.store.get_step_run(f"{w.id}.shared")["details"]["waiting_for"]
        assert waiting["step_run"] == f"{owner.id}.shared" and waiting["task"]["run_id"] == owner.id, waiting

    # both slots are not taken: an unrelated pipeline runs to its end while the owner still computes
    other = Experiment(ws, "cache-sensor-other").submit(_pipeline(ws, root / "src-q", QUICK, "quick", ctl, False))
    assert other.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    assert not (ctl / "release").exists()
    assert all(t.get("state") == "deferred" for t in
               (_states(info, dag_id, w.id)["shared"] for w in waiters)), "a waiter left the deferred state early"

    (ctl / "release").write_text("")
    for r in runs:
        assert r.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False) == "Finished"
    assert (ctl / "computed").read_text().split() == [owner.id], "the shared step was computed more than once"
    owner_row = ws.store.get_step_run(f"{owner.id}.shared")
    assert owner_row["status"] == "Finished" and not owner_row.get("reused_run_id")
    for w in waiters:
        row = ws.store.get_step_run(f"{w.id}.shared")
        assert row["status"] == "Finished" and row["reused_run_id"] == owner_row["step_run_id"], row
        assert row["outputs"]["shared_out"]["content_hash"] == owner_row["outputs"]["shared_out"]["content_hash"]


# ---------------------------------------------------------------------------------------------- the pieces
def _lock(ws, key: str, pid: int) -> None:
    """A lock on ``key`` held by process ``pid`` of this host, heartbeat fresh (so only the pid decides)."""
    import socket

    from sqlalchemy import insert

    from airflow_mlpipe.store.tables_cache import cache_locks

    with ws.store.begin() as conn:
        conn.execute(insert(cache_locks).values(key=key, owner=json.dumps({"id": "x", "task": None,
                                                                           "step_run": "pr-owner.shared"}),
                                                host=socket.gethostname(), pid=pid, heartbeat=time.time()))


def _fire(ws, key: str, owner: str, act=None, not_before: float = 0.0) -> dict:
    """Run the trigger until it fires (``act()`` once it is waiting); its event's payload. ``not_before`` 0: no
    settle time (the deferral is long past)."""
    from airflow_mlpipe.data.workspace_location import WorkspaceLocation
    from airflow_mlpipe.triggers.cache_flight import CacheFlightTrigger

    ref = WorkspaceLocation.from_config().to_ref()  # the fixture's project folder is the working directory
    classpath, kwargs = CacheFlightTrigger(ref, key, owner, poll_interval=0.05, not_before=not_before).serialize()
    trigger = CacheFlightTrigger(**kwargs)
    assert classpath == "airflow_mlpipe.triggers.cache_flight.CacheFlightTrigger"

    async def first() -> dict:
        gen = trigger.run()
        task = asyncio.ensure_future(gen.__anext__())
        if act is not None:
            await asyncio.sleep(0.3)
            assert not task.done(), f"the trigger fired while the owner still held the key: {task.result()}"
            await asyncio.to_thread(act)
        event = await asyncio.wait_for(task, 30)
        return event.payload

    return asyncio.run(first())


def test_trigger_fires_when_the_owner_commits_releases_or_dies(workspace):
    from sqlalchemy import delete, insert

    from airflow_mlpipe.store.db import utcnow
    from airflow_mlpipe.store.tables_cache import cache_entries, cache_locks

    _lock(workspace, "k-commit", os.getpid())

    def commit() -> None:
        with workspace.store.begin() as conn:
            conn.execute(insert(cache_entries).values(key="k-commit", step_name="s", kind="python_script",
                                                      components={}, outputs={}, step_run_id="pr-owner.shared",
                                                      pipeline_run_id="pr-owner", created_at=utcnow(), hits=0))
            conn.execute(delete(cache_locks).where(cache_locks.c.key == "k-commit"))

    assert _fire(workspace, "k-commit", "o", commit)["status"] == "committed"

    _lock(workspace, "k-free", os.getpid())

    def release() -> None:
        with workspace.store.begin() as conn:
            conn.execute(delete(cache_locks).where(cache_locks.c.key == "k-free"))

    assert _fire(workspace, "k-free", "o", release)["status"] == "free"

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock(workspace, "k-dead", dead.pid)
    event = _fire(workspace, "k-dead", "o")
    assert event["status"] == "owner_dead" and "pr-owner.shared" in event["owner"]


def test_trigger_holds_its_event_until_the_settle_time_after_the_deferral(workspace):
    """An owner that ends right after the waiter deferred: the event waits (Airflow's scheduler must read the
    deferring process's exit first, or it fails the resumed task), then reports the outcome."""
    from sqlalchemy import insert

    from airflow_mlpipe.store.db import utcnow
    from airflow_mlpipe.store.tables_cache import cache_entries
    from airflow_mlpipe.triggers.cache_flight import SETTLE_S, CacheFlightTrigger

    with workspace.store.begin() as conn:
        conn.execute(insert(cache_entries).values(key="k-settle", step_name="s", kind="python_script", components={},
                                                  outputs={}, step_run_id="pr-owner.shared", pipeline_run_id="pr-owner",
                                                  created_at=utcnow(), hits=0))
    started = time.time()
    event = _fire(workspace, "k-settle", "o", not_before=started + 1.5)
    assert event["status"] == "committed" and time.time() - started >= 1.5
    assert CacheFlightTrigger(None, "k", "o").not_before >= started + SETTLE_S  # by default, from its creation


def test_a_step_that_may_wait_elsewhere_raises_the_wait_signal_naming_the_owner(workspace):
    from airflow_mlpipe.runtime import cache

    owner = cache.SingleFlight(workspace, "k-signal", "pr-1.shared")
    assert owner.acquire() is None  # it holds the lock
    try:
        waiter = cache.SingleFlight(workspace, "k-signal", "pr-2.shared")
        with cache.wait_elsewhere(0), pytest.raises(cache.WaitForFlight) as caught:
            waiter.acquire()
        assert caught.value.owner == owner.owner and "step run pr-1.shared" in str(caught.value)
        assert not isinstance(caught.value, Exception)  # no `except Exception` records it as a failure
    finally:
        owner.release()
    with cache.wait_elsewhere(0):  # free again: the waiter takes it
        assert waiter.acquire() is None
    waiter.release()
