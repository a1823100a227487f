"""The plugin's REST API in a real api-server with real tokens: v1 submission of published pipelines and
endpoints, runs/steps/metrics, 401/403/4xx, OpenAPI + schemathesis; and Airflow-native triggering (Params, conf).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from airflow_mlpipe import (
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)
from airflow_mlpipe.clients import local_airflow

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.scheduler
http = httpx.Client(timeout=90)

EMIT = (
    "import os, sys\nfrom azureml.core import Run\nargs = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
    "os.makedirs(args['--out'], exist_ok=True)\nopen(os.path.join(args['--out'], 'v.txt'), 'w').write(args['--value'])\n"
    "run = Run.get_context()\nrun.log('value', int(args['--value']))\nrun.log('tag_len', len(args['--tag']))\n"
)


def make_pipeline(ws: Workspace, root: Path, default: int = 1) -> Pipeline:
    src = root / "steps"
    src.mkdir(exist_ok=True)
    (src / "emit.py").write_text(EMIT)
    out = PipelineData("out")
    value = PipelineParameter("value", default_value=default)
    tag = PipelineParameter("tag", default_value="abc")
    step = PythonScriptStep("emit.py", name="emit", arguments=["--out", out, "--value", value, "--tag", tag],
                            outputs=[out], source_directory=str(src))
    return Pipeline(ws, [step])


def start_project(tmp_path_factory, publish):
    """A project with a dags folder holding only the published-pipeline factory; ``publish(ws, root)`` first."""
    root = tmp_path_factory.mktemp("project")
    dags = root / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "published_pipelines.py", dags / "published_pipelines.py")
    ws = Workspace(home=root / ".mlpipe")
    extra = publish(ws, root)
    info = local_airflow.start(ws, dags_folder=dags, port=local_airflow._free_port())
    return root, ws, info, extra


def admin_token(info) -> str:
    resp = http.post(f"{info.url}/auth/token", json={"username": info.username, "password": info.password})
    assert resp.status_code == 201, resp.text
    return resp.json()["access_token"]


def forged_token(ws: Workspace, admin: str, role: str) -> str:
    """A token for another SimpleAuthManager role, signed with this Airflow's JWT secret (what /auth/token would
    issue for such a user; the embedded Airflow only configures ``admin``)."""
    import jwt

    header = jwt.get_unverified_header(admin)
    claims = jwt.decode(admin, options={"verify_signature": False})
    claims.update(sub=f"{role}-user", role=role, jti=uuid.uuid4().hex)
    secret = json.loads((ws.airflow_home / "mlpipe-secrets.json").read_text())["jwt_secret"]
    return jwt.encode(claims, secret, algorithm=header["alg"], headers={"kid": header["kid"]} if "kid" in header
                      else None)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def publish(ws, root):
        pipeline = make_pipeline(ws, root)
        p0 = pipeline.publish("rest_pipeline", description="REST test", version="1.0")
        p1 = make_pipeline(ws, root, default=5).publish("rest_pipeline_v2", version="2.0")
        off = pipeline.publish("disabled_pipeline")
        off.disable()
        ep = PipelineEndpoint.publish(ws, "rest_endpoint", "endpoint under test", p0)
        ep.add_default(p1)
        return {"p0": p0, "p1": p1, "off": off, "ep": ep}

    root, ws, info, extra = start_project(tmp_path_factory, publish)
    try:
        yield root, ws, info, extra, admin_token(info)
    finally:
        local_airflow.stop(ws)


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _wait_run(info, token: str, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = http.get(f"{info.url}/mlpipe/api/v1/runs/{run_id}", headers=_h(token))
        assert r.status_code == 200, r.text
        if r.json()["Status"]["StatusCode"] in ("Finished", "Failed", "Canceled") or time.monotonic() > deadline:
            return r.json()
        time.sleep(1)


def test_auth_401_403(project):
    _, ws, info, extra, token = project
    base = f"{info.url}/mlpipe/api/v1"
    assert http.get(f"{base}/pipelines").status_code == 401
    assert http.get(f"{info.url}/mlpipe/ui").status_code == 401
    assert http.get(f"{base}/pipelines", headers=_h("garbage")).status_code == 403
    viewer = forged_token(ws, token, "viewer")
    listed = http.get(f"{base}/pipelines", headers=_h(viewer))
    assert listed.status_code == 200 and {p["Name"] for p in listed.json()} == {"rest_pipeline", "rest_pipeline_v2"}
    denied = http.post(f"{base}/PipelineRuns/PipelineSubmit/{extra['p0'].id}", headers=_h(viewer),
                        json={"ExperimentName": "rest-exp"})
    assert denied.status_code == 403 and "may not trigger" in denied.json()["detail"]
    assert http.get(f"{info.url}/mlpipe/openapi.json").status_code == 200  # the description itself is public


def test_submit_published_pipeline_v1_body(project):
    _, ws, info, extra, token = project
    p0 = extra["p0"]
    assert p0.endpoint == f"{info.url}/mlpipe/api/v1/PipelineRuns/PipelineSubmit/{p0.id}"
    r = http.post(p0.endpoint, headers=_h(token), json={
        "ExperimentName": "rest-exp", "RunSource": "API", "Description": "from REST",
        "ParameterAssignments": {"value": "20", "tag": "hello"}, "tags": {"team": "ml"}})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["Status"]["StatusCode"] == "NotStarted" and run["PipelineId"] == p0.id
    assert run["ParameterAssignments"] == {"value": 20, "tag": "hello"} and run["tags"] == {"team": "ml"}
    final = _wait_run(info, token, run["Id"])
    assert final["Status"]["StatusCode"] == "Finished", final
    steps = http.get(f"{info.url}/mlpipe/api/v1/runs/{run['Id']}/steps", headers=_h(token)).json()
    emit = next(s for s in steps if s["Name"] == "emit")
    assert emit["Status"] == "Finished" and emit["Reused"] is False
    metrics = http.get(f"{info.url}/mlpipe/api/v1/runs/{run['Id']}/metrics", headers=_h(token)).json()
    assert metrics["Steps"]["emit"] == {"value": 20, "tag_len": 5}
    # typed values are accepted too (REST examples send raw numbers)
    r2 = http.post(p0.endpoint, headers=_h(token), json={"ExperimentName": "rest-exp",
                                                           "ParameterAssignments": {"value": 21}})
    assert r2.status_code == 200, r2.text
    assert _wait_run(info, token, r2.json()["Id"])["Status"]["StatusCode"] == "Finished"
    assert ws.store.get_metrics(f"{r2.json()['Id']}.emit") == {"value": 21, "tag_len": 3}


def test_submit_endpoint_default_and_version(project):
    _, ws, info, extra, token = project
    ep = PipelineEndpoint.get(ws, name="rest_endpoint")
    assert ep.default_version == "1"
    r = http.post(ep.endpoint, headers=_h(token), json={"ExperimentName": "ep-exp"})
    assert r.status_code == 200, r.text
    assert r.json()["PipelineId"] == extra["p1"].id and r.json()["Properties"]["azureml.pipelineendpointversion"] == "1"
    r0 = http.post(f"{info.url}/mlpipe/api/v1/PipelineRuns/PipelineEndpointSubmit/Name/rest_endpoint",
                    params={"pipelineVersion": "0"}, headers=_h(token),
                    json={"ExperimentName": "ep-exp", "ParameterAssignments": {"value": "3"}})
    assert r0.status_code == 200 and r0.json()["PipelineId"] == extra["p0"].id
    assert _wait_run(info, token, r.json()["Id"])["Status"]["StatusCode"] == "Finished"
    assert _wait_run(info, token, r0.json()["Id"])["Status"]["StatusCode"] == "Finished"
    assert ws.store.get_metrics(f"{r.json()['Id']}.emit")["value"] == 5  # v2's default
    assert ws.store.get_metrics(f"{r0.json()['Id']}.emit")["value"] == 3
    # SDK submission through the same endpoint
    run = ep.submit("ep-exp", pipeline_parameters={"value": 8}, pipeline_version="0")
    assert run.wait_for_completion(show_output=False) == "Finished"
    listed = http.get(f"{info.url}/mlpipe/api/v1/endpoints", headers=_h(token)).json()
    assert listed[0]["Name"] == "rest_endpoint" and [v["Version"] for v in listed[0]["PipelineVersionList"]] == \
        ["0", "1"]


@pytest.mark.parametrize("body,status,needle", [
    ("{not json", 422, "JSON"),
    ({}, 422, "ExperimentName"),
    ({"ExperimentName": "e", "Bogus": 1}, 422, "Bogus"),
    ({"ExperimentName": "e", "ParameterAssignments": {"nope": "1"}}, 400, "'nope' does not exist"),
    ({"ExperimentName": "e", "ParameterAssignments": {"value": "abc"}}, 400, "expects a value of type integer"),
    ({"ExperimentName": "e", "ParameterAssignments": {"value": [1]}}, 422, "ParameterAssignments"),
    ({"ExperimentName": "bad name!"}, 400, "Experiment name"),
])
def test_bad_bodies_are_4xx_with_a_message(project, body, status, needle):
    _, _, info, extra, token = project
    url = extra["p0"].endpoint
    if isinstance(body, str):
        r = http.post(url, headers={**_h(token), "Content-Type": "application/json"}, content=body)
    else:
        r = http.post(url, headers=_h(token), json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"], r.text


def test_unknown_and_disabled_are_4xx(project):
    _, _, info, extra, token = project
    base = f"{info.url}/mlpipe/api/v1"
    body = {"ExperimentName": "e"}
    r = http.post(f"{base}/PipelineRuns/PipelineSubmit/does-not-exist", headers=_h(token), json=body)
    assert r.status_code == 404 and "does-not-exist" in r.json()["detail"]
    r = http.post(extra["off"].endpoint, headers=_h(token), json=body)
    assert r.status_code == 400 and "Disabled" in r.json()["detail"] and "Status must be Active" in r.json()["detail"]
    r = http.post(f"{base}/PipelineRuns/PipelineEndpointSubmit/Id/{extra['ep'].id}", params={"pipelineVersion": "9"},
                   headers=_h(token), json=body)
    assert r.status_code == 404 and "no version '9'" in r.json()["detail"]
    assert http.get(f"{base}/runs/nope", headers=_h(token)).status_code == 404
    assert http.get(f"{base}/endpoints/nope", headers=_h(token)).status_code == 404


def test_airflow_native_trigger_params_and_conf(project):
    """Pipeline parameters are typed DAG Params (trigger form); POST /api/v2/.../dagRuns with conf runs them."""
    _, ws, info, extra, token = project
    dag_id = extra["p0"].dag_id
    details = http.get(f"{info.url}/api/v2/dags/{dag_id}/details", headers=_h(token)).json()
    assert details["params"]["value"]["value"] == 1 and details["params"]["value"]["schema"]["type"] == "integer"
    assert details["params"]["tag"]["schema"]["type"] == "string"
    bad = http.post(f"{info.url}/api/v2/dags/{dag_id}/dagRuns", headers=_h(token),
                     json={"logical_date": None, "conf": {"value": "x"}})
    assert bad.status_code == 400 and "value" in bad.text
    r = http.post(f"{info.url}/api/v2/dags/{dag_id}/dagRuns", headers=_h(token),
                   json={"logical_date": None, "conf": {"value": 7}})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = http.get(f"{info.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=_h(token)).json()["state"]
        if state in ("success", "failed"):
            break
        time.sleep(1)
    assert state == "success"
    assert ws.store.get_metrics(f"{run_id}.emit") == {"value": 7, "tag_len": 3}


def test_schemathesis_no_server_errors(project, tmp_path):
    """Property-based run over our OpenAPI description: no 5xx for any generated request."""
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st is not None, "schemathesis is required (it is in the dev dependency group: uv sync)"
    _, _, info, _, token = project
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    proc = subprocess.run(
        [st, "run", f"{info.url}/mlpipe/openapi.json", "--url", f"{info.url}/mlpipe",
         "-H", f"Authorization: Bearer {token}", "--checks", "not_a_server_error", "--max-examples", "15",
         "--phases", "examples,fuzzing", "--no-color", "--request-timeout", "60"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]


def test_experiment_submit_from_another_machine_uploads_snapshots(project, tmp_path, monkeypatch):
    """A client workspace that names the api-server (not the embedded Airflow) ships its sources over REST."""
    from airflow_mlpipe import Experiment, Pipeline, PipelineData, PythonScriptStep
    from airflow_mlpipe.runtime.snapshot import SnapshotStore

    root, ws, info, extra, token = project
    client_dir = tmp_path / "laptop"
    (client_dir / ".mlpipe").mkdir(parents=True)
    (client_dir / ".mlpipe" / "config.json").write_text(json.dumps({
        "workspace_name": "remote", "store_url": ws.store_url,
        "airflow": {"url": info.url, "username": info.username, "password_env": "TEST_AIRFLOW_PASSWORD"},
    }))
    monkeypatch.setenv("TEST_AIRFLOW_PASSWORD", info.password)
    monkeypatch.chdir(client_dir)
    src = client_dir / "steps"
    src.mkdir()
    (src / "emit.py").write_text("import os, sys\nout = sys.argv[2]\nos.makedirs(out, exist_ok=True)\n"
                                 "open(os.path.join(out, 'v.txt'), 'w').write('remote')\n"
                                 "from azureml.core import Run\nRun.get_context().log('where', 'server')\n")
    remote = Workspace.from_config()
    assert not remote.is_embedded
    out = PipelineData("out")
    step = PythonScriptStep("emit.py", name="emit", arguments=["--out", out], outputs=[out], source_directory=str(src))
    run = Experiment(remote, "remote-exp").submit(Pipeline(remote, [step]))
    shutil.rmtree(src)  # the server must not need the client's files
    assert run.wait_for_completion(show_output=False, timeout_seconds=180) == "Finished"
    assert run.find_step_run("emit")[0].get_metrics() == {"where": "server"}
    served = json.loads((local_airflow.submitted_dags_folder(ws) / "specs" / "remote-exp.json").read_text())
    source = served["steps"][0]["source_directory"]
    assert source.startswith("mlpipe-snapshot:")
    manifest = SnapshotStore(ws.home).read_json(source.split(":", 1)[1])
    assert list(manifest["files"]) == ["emit.py"]
