"""A project with published pipelines served by its embedded Airflow, and the REST calls tests make to it.

The REST, schedule, UI, CLI-submit and authentication tests each publish a one-step ``emit`` pipeline into a
scratch project and talk to its api-server with real tokens of real users.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from airflow_mlpipe import Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace
from airflow_mlpipe.clients import local_airflow
from tests.helpers.embedded import embedded_airflow, write_project_config
from tests.helpers.waiting import wait_until

#: one SimpleAuthManager user per Airflow role, each named after its role
ROLES = ("admin", "viewer", "user", "op")
TERMINAL_V1 = ("Finished", "Failed", "Canceled")
http = httpx.Client(timeout=90)

#: writes ``--value`` to its output and logs it (and ``tag_len`` with ``--tag``); exits with ``--code``
EMIT = """\
import os, sys
from azureml.core import Run
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
os.makedirs(args['--out'], exist_ok=True)
open(os.path.join(args['--out'], 'v.txt'), 'w').write(args['--value'])
run = Run.get_context()
run.log('value', int(args['--value']))
if '--tag' in args:
    run.log('tag_len', len(args['--tag']))
sys.exit(int(args.get('--code', '0')))
"""


def emit_pipeline(ws: Workspace, root: Path, *, value: str = "value", default: int = 1, tag: bool = False,
                  code: bool = False) -> Pipeline:
    """The ``emit`` step with pipeline parameter ``value`` (named so), optionally ``tag`` (default "abc") and
    ``code`` (the step's exit code, default 0); its script goes to ``root/steps``."""
    src = root / "steps"
    src.mkdir(exist_ok=True)
    (src / "emit.py").write_text(EMIT)
    out = PipelineData("out")
    arguments: list[Any] = ["--out", out, "--value", PipelineParameter(value, default_value=default)]
    if tag:
        arguments += ["--tag", PipelineParameter("tag", default_value="abc")]
    if code:
        arguments += ["--code", PipelineParameter("code", default_value=0)]
    step = PythonScriptStep("emit.py", name="emit", arguments=arguments, outputs=[out], source_directory=str(src))
    return Pipeline(ws, [step])


class PublishedProject(NamedTuple):
    root: Path
    ws: Workspace
    info: local_airflow.AirflowInfo
    extra: Any  # what ``publish`` returned


@contextlib.contextmanager
def published_project(tmp_path_factory, publish: Callable[[Workspace, Path], Any], *, name: str = "project",
                      users: dict[str, str] | None = None) -> Iterator[PublishedProject]:
    """A project with an empty dags folder, ``publish(ws, root)`` run first, then its embedded Airflow started.

    ``users`` (user -> role) become real SimpleAuthManager users (Airflow generates their passwords); the default
    is one user per role of ``ROLES``. Nothing is copied into the dags folder: the embedded Airflow serves
    published pipelines from the workspace's own bundle.
    """
    root = tmp_path_factory.mktemp(name)
    dags = root / "dags"
    dags.mkdir()
    users = {role: role for role in ROLES} if users is None else users
    settings = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in users.items())}
    write_project_config(root, settings if users else {})
    ws = Workspace.from_config(path=root)
    extra = publish(ws, root)
    with embedded_airflow(ws, dags) as info:
        yield PublishedProject(root, ws, info, extra)


def token_of(url: str, username: str, password: str) -> str:
    resp = http.post(f"{url}/auth/token", json={"username": username, "password": password})
    assert resp.status_code == 201, resp.text
    return resp.json()["access_token"]


def admin_token(info: local_airflow.AirflowInfo) -> str:
    """A real token of the embedded Airflow's admin user."""
    return token_of(info.url, info.username, info.password)


def user_password(ws: Workspace, user: str) -> str:
    """The password Airflow generated for a SimpleAuthManager ``user``."""
    return json.loads((ws.airflow_home / local_airflow.PASSWORDS_FILE).read_text())[user]


def user_token(ws: Workspace, info: local_airflow.AirflowInfo, user: str) -> str:
    """A real token of the SimpleAuthManager ``user`` (e.g. the one named after a role)."""
    return token_of(info.url, user, user_password(ws, user))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_v1_run(url: str, headers: Callable[[], dict[str, str]], run_id: str, timeout: float = 180) -> dict:
    """The v1 run entity once its status is final, polled with ``headers()`` called afresh each time (as a
    long-running REST client does)."""
    def final() -> dict | None:
        r = http.get(f"{url}/mlpipe/api/v1/runs/{run_id}", headers=headers())
        assert r.status_code == 200, r.text
        return r.json() if r.json()["Status"]["StatusCode"] in TERMINAL_V1 else None

    return wait_until(final, f"run {run_id} to end", timeout=timeout, interval=1)


def wait_dag_run_done(url: str, token: str, dag_id: str, run_id: str, timeout: float = 120) -> str:
    """The state of an Airflow DAG run once it is ``success`` or ``failed``."""
    def state() -> str | None:
        got = http.get(f"{url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=bearer(token)).json()["state"]
        return got if got in ("success", "failed") else None

    return wait_until(state, f"DAG run {dag_id}/{run_id} to end", timeout=timeout, interval=1)
