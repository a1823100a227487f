"""The plugin's REST API in a real api-server with real tokens: v1 submission of published pipelines and
endpoints, runs/steps/metrics, 401/403/4xx, OpenAPI + schemathesis; and Airflow-native triggering (Params, conf).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from airflow_mlpipe import Pipeline, PipelineEndpoint, Workspace
from airflow_mlpipe.clients import local_airflow
from tests.helpers.published import (
    ROLES,
    admin_token,
    bearer,
    emit_pipeline,
    published_project,
    user_token,
    wait_dag_run_done,
    wait_v1_run,
)

pytestmark = pytest.mark.scheduler
http = httpx.Client(timeout=90)


def make_pipeline(ws: Workspace, root: Path, default: int = 1) -> Pipeline:
    return emit_pipeline(ws, root, default=default, tag=True)


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

    with published_project(tmp_path_factory, publish) as (root, ws, info, extra):
        yield root, ws, info, extra, admin_token(info)


def _wait_run(info, token: str, run_id: str, timeout: float = 120) -> dict:
    return wait_v1_run(info.url, lambda: bearer(token), run_id, timeout=timeout)


def test_auth_401_403(project):
    _, ws, info, extra, token = project
    base = f"{info.url}/mlpipe/api/v1"
    assert http.get(f"{base}/pipelines").status_code == 401
    assert http.get(f"{info.url}/mlpipe/ui").status_code == 401
    assert http.get(f"{base}/pipelines", headers=bearer("garbage")).status_code == 403
    viewer = user_token(ws, info, "viewer")
    listed = http.get(f"{base}/pipelines", headers=bearer(viewer))
    assert listed.status_code == 200 and {p["Name"] for p in listed.json()} == {"rest_pipeline", "rest_pipeline_v2"}
    denied = http.post(f"{base}/PipelineRuns/PipelineSubmit/{extra['p0'].id}", headers=bearer(viewer),
                        json={"ExperimentName": "rest-exp"})
    assert denied.status_code == 403 and "may not trigger" in denied.json()["detail"]
    for page in ("openapi.json", "docs", "redoc"):  # the description and docs need a login like every route
        assert http.get(f"{info.url}/mlpipe/{page}").status_code == 401, page
        assert http.get(f"{info.url}/mlpipe/{page}", headers=bearer(viewer)).status_code == 200, page


def test_submit_published_pipeline_v1_body(project):
    _, ws, info, extra, token = project
    p0 = extra["p0"]
    assert p0.endpoint == f"{info.url}/mlpipe/api/v1/PipelineRuns/PipelineSubmit/{p0.id}"
    r = http.post(p0.endpoint, headers=bearer(token), json={
        "ExperimentName": "rest-exp", "RunSource": "API", "Description": "from REST",
        "ParameterAssignments": {"value": "20", "tag": "hello"}, "tags": {"team": "ml"}})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["Status"]["StatusCode"] == "NotStarted" and run["PipelineId"] == p0.id
    assert run["ParameterAssignments"] == {"value": 20, "tag": "hello"} and run["tags"] == {"team": "ml"}
    final = _wait_run(info, token, run["Id"])
    assert final["Status"]["StatusCode"] == "Finished", final
    steps = http.get(f"{info.url}/mlpipe/api/v1/runs/{run['Id']}/steps", headers=bearer(token)).json()
    emit = next(s for s in steps if s["Name"] == "emit")
    assert emit["Status"] == "Finished" and emit["Reused"] is False
    metrics = http.get(f"{info.url}/mlpipe/api/v1/runs/{run['Id']}/metrics", headers=bearer(token)).json()
    assert metrics["Steps"]["emit"] == {"value": 20, "tag_len": 5}
    # typed values are accepted too (REST examples send raw numbers)
    r2 = http.post(p0.endpoint, headers=bearer(token), json={"ExperimentName": "rest-exp",
                                                           "ParameterAssignments": {"value": 21}})
    assert r2.status_code == 200, r2.text
    assert _wait_run(info, token, r2.json()["Id"])["Status"]["StatusCode"] == "Finished"
    assert ws.store.get_metrics(f"{r2.json()['Id']}.emit") == {"value": 21, "tag_len": 3}


def test_submit_endpoint_default_and_version(project):
    _, ws, info, extra, token = project
    ep = PipelineEndpoint.get(ws, name="rest_endpoint")
    assert ep.default_version == "1"
    r = http.post(ep.endpoint, headers=bearer(token), json={"ExperimentName": "ep-exp"})
    assert r.status_code == 200, r.text
    assert r.json()["PipelineId"] == extra["p1"].id and r.json()["Properties"]["azureml.pipelineendpointversion"] == "1"
    r0 = http.post(f"{info.url}/mlpipe/api/v1/PipelineRuns/PipelineEndpointSubmit/Name/rest_endpoint",
                    params={"pipelineVersion": "0"}, headers=bearer(token),
                    json={"ExperimentName": "ep-exp", "ParameterAssignments": {"value": "3"}})
    assert r0.status_code == 200 and r0.json()["PipelineId"] == extra["p0"].id
    assert _wait_run(info, token, r.json()["Id"])["Status"]["StatusCode"] == "Finished"
    assert _wait_run(info, token, r0.json()["Id"])["Status"]["StatusCode"] == "Finished"
    assert ws.store.get_metrics(f"{r.json()['Id']}.emit")["value"] == 5  # v2's default
    assert ws.store.get_metrics(f"{r0.json()['Id']}.emit")["value"] == 3
    # SDK submission through the same endpoint
    run = ep.submit("ep-exp", pipeline_parameters={"value": 8}, pipeline_version="0")
    assert run.wait_for_completion(show_output=False) == "Finished"
    listed = http.get(f"{info.url}/mlpipe/api/v1/endpoints", headers=bearer(token)).json()
    assert listed[0]["Name"] == "rest_endpoint" and [v["Version"] for v in listed[0]["PipelineVersionList"]] == \
        ["0", "1"]


@pytest.mark.parametrize("body,status,needle", [
    ("{not json", 400, "JSON"),
    ({}, 400, "ExperimentName"),
    ({"ExperimentName": "e", "Bogus": 1}, 400, "Bogus"),
    ({"ExperimentName": "e", "ParameterAssignments": {"nope": "1"}}, 400, "'nope' does not exist"),
    ({"ExperimentName": "e", "ParameterAssignments": {"value": "abc"}}, 400, "expects a value of type integer"),
    ({"ExperimentName": "e", "ParameterAssignments": {"value": [1]}}, 400, "ParameterAssignments"),
    ({"ExperimentName": "bad name!"}, 400, "Experiment name"),
])
def test_bad_bodies_are_4xx_with_a_message(project, body, status, needle):
    _, _, info, extra, token = project
    url = extra["p0"].endpoint
    if isinstance(body, str):
        r = http.post(url, headers={**bearer(token), "Content-Type": "application/json"}, content=body)
    else:
        r = http.post(url, headers=bearer(token), json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"], r.text


def test_unknown_and_disabled_are_4xx(project):
    _, _, info, extra, token = project
    base = f"{info.url}/mlpipe/api/v1"
    body = {"ExperimentName": "e"}
    r = http.post(f"{base}/PipelineRuns/PipelineSubmit/does-not-exist", headers=bearer(token), json=body)
    assert r.status_code == 404 and "does-not-exist" in r.json()["detail"]
    r = http.post(extra["off"].endpoint, headers=bearer(token), json=body)
    assert r.status_code == 400 and "Disabled" in r.json()["detail"] and "Status must be Active" in r.json()["detail"]
    r = http.post(f"{base}/PipelineRuns/PipelineEndpointSubmit/Id/{extra['ep'].id}", params={"pipelineVersion": "9"},
                   headers=bearer(token), json=body)
    assert r.status_code == 404 and "no version '9'" in r.json()["detail"]
    assert http.get(f"{base}/runs/nope", headers=bearer(token)).status_code == 404
    assert http.get(f"{base}/endpoints/nope", headers=bearer(token)).status_code == 404


def test_airflow_native_trigger_params_and_conf(project):
    """Pipeline parameters are typed DAG Params (trigger form); POST /api/v2/.../dagRuns with conf runs them."""
    _, ws, info, extra, token = project
    dag_id = extra["p0"].dag_id
    details = http.get(f"{info.url}/api/v2/dags/{dag_id}/details", headers=bearer(token)).json()
    assert details["params"]["value"]["value"] == 1 and details["params"]["value"]["schema"]["type"] == "integer"
    assert details["params"]["tag"]["schema"]["type"] == "string"
    bad = http.post(f"{info.url}/api/v2/dags/{dag_id}/dagRuns", headers=bearer(token),
                     json={"logical_date": None, "conf": {"value": "x"}})
    assert bad.status_code == 400 and "value" in bad.text
    r = http.post(f"{info.url}/api/v2/dags/{dag_id}/dagRuns", headers=bearer(token),
                   json={"logical_date": None, "conf": {"value": 7}})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    assert wait_dag_run_done(info.url, token, dag_id, run_id) == "success"
    assert ws.store.get_metrics(f"{run_id}.emit") == {"value": 7, "tag_len": 3}


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
    assert run.dag_id.startswith("remote-exp__")  # one DAG per graph of the experiment
    served = json.loads((local_airflow.submitted_dags_folder(ws) / "specs" / f"{run.dag_id}.json").read_text())
    assert served["workspace"] == ws.to_ref()  # the server's workspace, never the client's paths
    source = served["steps"][0]["source_directory"]
    assert source.startswith("mlpipe-snapshot:")
    manifest = SnapshotStore(ws.home).read_json(source.split(":", 1)[1])
    assert list(manifest["files"]) == ["emit.py"]


# ---------------------------------------------------------------------------------------------- security (issue 9)
def _upload_snapshot(info, token: str, files: dict[str, bytes]) -> str:
    """Upload a snapshot (objects, then its manifest document) as ``Experiment.submit`` does; returns the
    manifest digest."""
    import blake3

    manifest = {}
    for rel, data in files.items():
        digest = blake3.blake3(data).hexdigest()
        manifest[rel] = digest
        r = http.put(f"{info.url}/mlpipe/api/v1/snapshots/objects/{digest}", headers=bearer(token), content=data)
        assert r.status_code == 204, r.text
    return _put_manifest(info, token, manifest)


def _put_manifest(info, token: str, manifest: dict) -> str:
    import blake3

    doc = json.dumps({"files": manifest, "git": None, "source_directory": "laptop"}, sort_keys=True).encode()
    digest = blake3.blake3(doc).hexdigest()
    r = http.put(f"{info.url}/mlpipe/api/v1/snapshots/objects/{digest}", headers=bearer(token), content=doc)
    assert r.status_code == 204, r.text
    return digest


def _spec(dag_id: str, manifest_digest: str, **step_fields) -> dict:
    step = {"name": "emit", "task_id": "emit", "kind": "PythonScriptStep", "script_name": "emit.py",
            "source_directory": f"mlpipe-snapshot:{manifest_digest}", "inputs": [], "outputs": [], "arguments": [],
            "parameters": [], "depends_on": [], "allow_reuse": True, "hash_paths": []}
    step.update(step_fields)
    return {"spec_version": 1, "name": dag_id, "parameters": {}, "steps": [step]}


def test_role_route_matrix(project):
    """Viewer reads; User and Op also trigger published pipelines; only Admin uploads code or specs."""
    _, ws, info, extra, admin = project
    import blake3

    base = f"{info.url}/mlpipe/api/v1"
    tokens = {role: user_token(ws, info, role) for role in ROLES}
    code = b"print('deployed')\n"
    digest = blake3.blake3(code).hexdigest()
    manifest = _upload_snapshot(info, admin, {"emit.py": code})
    bad_params = {"ExperimentName": "matrix", "ParameterAssignments": {"nope": "1"}}  # refused after the authz
    routes = {
        "list pipelines": ("GET", "/pipelines", None),
        "get pipeline": ("GET", f"/pipelines/{extra['p0'].id}", None),
        "list endpoints": ("GET", "/endpoints", None),
        "get endpoint": ("GET", "/endpoints/rest_endpoint", None),
        "list runs": ("GET", "/runs", None),
        "submit pipeline": ("POST", f"/PipelineRuns/PipelineSubmit/{extra['p0'].id}", bad_params),
        "submit endpoint by id": ("POST", f"/PipelineRuns/PipelineEndpointSubmit/Id/{extra['ep'].id}", bad_params),
        "submit endpoint by name": ("POST", "/PipelineRuns/PipelineEndpointSubmit/Name/rest_endpoint", bad_params),
        "missing objects": ("POST", "/snapshots/missing", {"hashes": [digest]}),
        "upload object": ("PUT", f"/snapshots/objects/{digest}", code),
        "upload spec": ("PUT", "/specs/matrix_spec", _spec("matrix_spec", manifest)),
        "audit trail": ("GET", "/audit/uploads", None),
    }
    read, trigger, deploy = {200}, {400}, {200, 204}
    expected = {
        "viewer": {"list pipelines": read, "get pipeline": read, "list endpoints": read, "get endpoint": read,
                   "list runs": read},
        "user": {"submit pipeline": trigger, "submit endpoint by id": trigger, "submit endpoint by name": trigger},
        "op": {},
        "admin": {"missing objects": deploy, "upload object": deploy, "upload spec": deploy, "audit trail": deploy},
    }
    order = ["viewer", "user", "op", "admin"]
    got, wrong = {}, []
    for i, role in enumerate(order):
        allowed = {k: v for r in order[: i + 1] for k, v in expected[r].items()}
        for name, (method, path, body) in routes.items():
            kwargs = {"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
            r = http.request(method, base + path, headers=bearer(tokens[role]), **kwargs)
            got[(role, name)] = r.status_code
            want = allowed.get(name, {403})
            if r.status_code not in want:
                wrong.append(f"{role:6} {name:24} {r.status_code} (wanted {sorted(want)}): {r.text[:200]}")
            if r.status_code == 403:
                assert r.json()["error"]["code"] == "Forbidden" and role in r.json()["detail"]
    assert not wrong, "\n".join(wrong)
    # the audit trail names who uploaded what
    trail = http.get(f"{base}/audit/uploads", headers=bearer(admin)).json()
    assert {"User": "admin", "Kind": "spec", "DagId": "matrix_spec"}.items() <= trail[0].items()
    assert any(e["Kind"] == "snapshot_object" and e["Digest"] == digest and e["User"] == "admin" for e in trail)
    assert not any(e["User"] in ("viewer", "user", "op") for e in trail)


@pytest.mark.parametrize("case, fields, field", [
    ("script outside the snapshot", {"script_name": "../../../../tmp/evil.py"}, "script_name"),
    ("absolute script", {"script_name": "/tmp/evil.py"}, "script_name"),
    ("output escaping its datastore", {"outputs": [{"name": "o", "destination_path": "../../victim"}]},
     "destination_path"),
    ("snapshot name with a path", {"source_directory": "mlpipe-snapshot:../../x"}, "source_directory"),
    ("server folder as source", {"source_directory": "/etc"}, "source_directory"),
    ("depends_on not a list", {"depends_on": 5}, "depends_on"),
    ("source_directory not a string", {"source_directory": 5}, "source_directory"),
    ("script not in the snapshot", {"script_name": "other.py"}, "script_name"),
])
def test_uploaded_specs_are_path_checked(project, case, fields, field):
    _, ws, info, _, admin = project
    manifest = _upload_snapshot(info, admin, {"emit.py": b"print(1)\n"})
    dag_id = f"probe_{uuid.uuid4().hex[:8]}"
    r = http.put(f"{info.url}/mlpipe/api/v1/specs/{dag_id}", headers=bearer(admin),
                 json=_spec(dag_id, manifest, **fields))
    assert r.status_code == 400, (case, r.text)
    assert field in r.json()["detail"] and r.json()["error"]["code"] in ("UserError", "ValidationError"), r.text
    from airflow_mlpipe.clients.local_airflow import submitted_dags_folder

    assert not list(submitted_dags_folder(ws).rglob(f"{dag_id}.json")), "a refused spec must not be served"


def test_uploaded_manifest_entries_are_path_checked(project, tmp_path):
    _, ws, info, _, admin = project
    import blake3

    data = b"owned\n"
    digest = blake3.blake3(data).hexdigest()
    assert http.put(f"{info.url}/mlpipe/api/v1/snapshots/objects/{digest}", headers=bearer(admin),
                    content=data).status_code == 204
    for entry in ("../../escape.txt", str(tmp_path / "abs.txt")):
        manifest = _put_manifest(info, admin, {"emit.py": digest, entry: digest})
        r = http.put(f"{info.url}/mlpipe/api/v1/specs/manifest_probe", headers=bearer(admin),
                     json=_spec("manifest_probe", manifest))
        assert r.status_code == 400 and "files entry" in r.json()["detail"], r.text
    assert not (tmp_path / "abs.txt").exists()


def test_limits_and_authentication_before_the_body(project):
    _, ws, info, extra, admin = project
    from airflow_mlpipe.plugins import guard

    base = f"{info.url}/mlpipe/api/v1"
    big = b"x" * (guard.MAX_BODY_BYTES + 1)
    # no credential: 401 before the body is looked at, whatever its size
    r = http.put(f"{base}/specs/anything", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "Unauthorized"
    r = http.put(f"{base}/specs/anything", content=big, headers={**bearer(admin), "Content-Type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(5):
            yield b"x" * (guard.MAX_BODY_BYTES // 4)

    r = http.post(extra["p0"].endpoint, content=chunks(), headers={**bearer(admin), "Content-Type": "application/json"})
    assert r.status_code == 413, r.text


@pytest.mark.parametrize("params, needle", [
    ({"value": "nan"}, "value"), ({"value": "inf"}, "value"), ({"value": str(2**64)}, "64-bit"),
    ({"value": 2**70}, "64-bit"),
])
def test_out_of_range_parameters_are_400_and_start_no_run(project, params, needle):
    _, ws, info, extra, admin = project
    before = len(ws.store.list_pipeline_runs(None, limit=500))
    r = http.post(extra["p0"].endpoint, headers=bearer(admin), json={"ExperimentName": "ranges",
                                                                  "ParameterAssignments": params})
    assert r.status_code == 400 and needle in r.json()["detail"], r.text
    assert len(ws.store.list_pipeline_runs(None, limit=500)) == before


# last: schemathesis submits many runs, which keeps this Airflow busy for a while
def test_schemathesis_every_check(project, tmp_path):
    """Property-based run over our OpenAPI description with every schemathesis check: no 5xx, every response
    documented and matching its schema, bad input refused, good input accepted, authentication enforced."""
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st is not None, "schemathesis is required (it is in the dev dependency group: uv sync)"
    _, _, info, _, token = project
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    proc = subprocess.run(
        [st, "--config-file", str(Path(__file__).with_name("schemathesis.toml")), "run", f"{info.url}/mlpipe/openapi.json", "--url", f"{info.url}/mlpipe",
         "-H", f"Authorization: Bearer {token}", "--checks", "all", "--max-examples", "15",
         "--phases", "examples,fuzzing", "--no-color", "--request-timeout", "60"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
