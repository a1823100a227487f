"""v1 authentication for REST calls (issue 8, item 4): ``InteractiveLoginAuthentication``, ``AzureCliAuthentication``,
``MsiAuthentication`` and ``ServicePrincipalAuthentication`` give headers a real api-server accepts: the embedded
Airflow, and a second api-server (own process and port, its tokens short-lived) that a client workspace names as a
remote one. The seed's ``requests.post(published_pipeline.endpoint, headers=auth_header, json=...)`` runs unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import requests

from airflow_mlpipe import (
    AuthenticationException,
    AzureCliAuthentication,
    InteractiveLoginAuthentication,
    MsiAuthentication,
    PipelineEndpoint,
    PublishedPipeline,
    ServicePrincipalAuthentication,
    UserErrorException,
    Workspace,
)
from airflow_mlpipe.clients import local_airflow
from airflow_mlpipe.clients.airflow_rest import client_for
from tests.helpers.published import (
    admin_token,
    bearer,
    emit_pipeline,
    published_project,
    user_password,
    wait_v1_run,
)
from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "airflow_mlpipe" / "compat"
SP_USER = "sp-1"
#: tokens of the second ("remote") api-server live this long, so the refresh is observable within a test
REMOTE_TOKEN_SECONDS = 12
pytestmark = pytest.mark.scheduler


def start_second_api_server(ws: Workspace, dags: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Another api-server process of the same deployment (same database and secrets) on its own port."""
    port = local_airflow._free_port()
    env = local_airflow.airflow_env(ws, dags_folder=dags, port=port)
    env["AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME"] = str(REMOTE_TOKEN_SECONDS)
    env["AIRFLOW__API_AUTH__JWT_LEEWAY"] = "0"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*local_airflow._airflow_cmd(), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=local_airflow._process_env(env), cwd=ws.airflow_home, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/api/v2/monitor/health", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, "the second api-server to become healthy", timeout=180, interval=0.5,
                   detail=lambda: log.read_text()[-3000:])
    except BaseException:
        stop_process_group(proc)
        raise
    return proc, url


def stop_process_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def publish(ws, root):
        published = emit_pipeline(ws, root, value="pipeline_arg").publish("auth_pipeline", description="auth test",
                                                                          version="1.0")
        endpoint = PipelineEndpoint.publish(ws, "auth_endpoint", "endpoint under test", published)
        return {"published": published, "endpoint": endpoint}

    users = {"admin": "admin", SP_USER: "user"}
    with published_project(tmp_path_factory, publish, name="authproject", users=users) as (root, ws, info, extra):
        second, second_url = start_second_api_server(ws, root / "dags", root / "second-api-server.log")
        try:
            yield {"root": root, "ws": ws, "info": info, **extra, "remote_url": second_url}
        finally:
            stop_process_group(second)


def sp_password(ws: Workspace) -> str:
    """The password Airflow generated for the service principal's user."""
    return user_password(ws, SP_USER)


def wait_finished(url: str, auth, run_id: str, timeout: float = 180) -> dict:
    """Poll the v1 run entity with a fresh header each time (as a long-running REST client should)."""
    return wait_v1_run(url, auth.get_authentication_header, run_id, timeout=timeout)


def dag_run(info, entity: dict) -> dict:
    r = httpx.get(f"{info.url}/api/v2/dags/{entity['DagId']}/dagRuns/{entity['DagRunId']}",
                  headers=bearer(admin_token(info)), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------------------------- embedded Airflow
def test_interactive_login_header_submits_published_pipeline_v1_body(project, monkeypatch):
    """The seed, unchanged: header from InteractiveLoginAuthentication, v1 body posted to ``.endpoint``."""
    monkeypatch.chdir(project["root"])
    interactive_auth = InteractiveLoginAuthentication()
    auth_header = interactive_auth.get_authentication_header()
    assert list(auth_header) == ["Authorization"] and auth_header["Authorization"].startswith("Bearer ")
    published_pipeline = project["published"]
    response = requests.post(published_pipeline.endpoint, headers=auth_header,
                             json={"ExperimentName": "My_Pipeline", "ParameterAssignments": {"pipeline_arg": 20}},
                             timeout=120)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["PipelineId"] == published_pipeline.id
    final = wait_finished(project["info"].url, interactive_auth, run["Id"])
    assert final["Status"]["StatusCode"] == "Finished", final
    assert project["ws"].store.get_metrics(f"{run['Id']}.emit") == {"value": 20}
    assert dag_run(project["info"], run)["triggering_user_name"] == "admin"


def test_endpoint_variant_with_run_source_api(project, monkeypatch):
    monkeypatch.chdir(project["root"])
    aad_token = AzureCliAuthentication().get_authentication_header()
    rest_endpoint = project["endpoint"].endpoint
    response = requests.post(rest_endpoint, headers=aad_token,
                             json={"ExperimentName": "PipelineEndpointExperiment", "RunSource": "API",
                                   "ParameterAssignments": {"pipeline_arg": "7"}}, timeout=120)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["RunSource"] == "API" and run["PipelineEndpointId"] == project["endpoint"].id
    assert wait_finished(project["info"].url, AzureCliAuthentication(), run["Id"])["Status"]["StatusCode"] == \
        "Finished"
    assert project["ws"].store.get_metrics(f"{run['Id']}.emit") == {"value": 7}


def test_msi_and_step_script_import_path(project, monkeypatch):
    """MsiAuthentication is the deployment's account; ``azureml.core.authentication`` works for step scripts."""
    monkeypatch.chdir(project["root"])
    base = f"{project['info'].url}/mlpipe/api/v1/pipelines"
    with pytest.warns(UserWarning, match="identity_config"):
        msi = MsiAuthentication(identity_config={"client_id": "abc"})
    listed = requests.get(base, headers=msi.get_authentication_header(), timeout=60)
    assert listed.status_code == 200 and [p["Name"] for p in listed.json()] == ["auth_pipeline"]
    script = (
        "import sys, httpx\nfrom azureml.core.authentication import InteractiveLoginAuthentication\n"
        "h = InteractiveLoginAuthentication().get_authentication_header()\n"
        "print(httpx.get(sys.argv[1], headers=h, timeout=60).status_code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(COMPAT)}
    proc = subprocess.run([sys.executable, "-c", script, base], cwd=project["root"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "200", proc.stdout + proc.stderr


def test_service_principal_maps_to_an_airflow_user(project):
    ws, info = project["ws"], project["info"]
    sp = ServicePrincipalAuthentication(tenant_id="my-tenant", service_principal_id=SP_USER,
                                        service_principal_password=sp_password(ws), workspace=ws)
    response = requests.post(project["published"].endpoint, headers=sp.get_authentication_header(),
                             json={"ExperimentName": "sp-exp", "ParameterAssignments": {"pipeline_arg": 3}}, timeout=120)
    assert response.status_code == 200, response.text
    run = response.json()
    assert dag_run(info, run)["triggering_user_name"] == SP_USER  # the run was triggered as the principal
    assert wait_finished(info.url, sp, run["Id"])["Status"]["StatusCode"] == "Finished"
    # a User may submit but not upload code
    denied = requests.post(f"{info.url}/mlpipe/api/v1/snapshots/missing", headers=sp.get_authentication_header(),
                           json={"hashes": []}, timeout=60)
    assert denied.status_code == 403, denied.text
    # a pre-issued token in place of the password is sent as is
    issued = httpx.post(f"{info.url}/auth/token", json={"username": SP_USER, "password": sp_password(ws)},
                        timeout=60).json()["access_token"]
    by_token = ServicePrincipalAuthentication("my-tenant", SP_USER, issued, workspace=ws)
    assert by_token.get_authentication_header() == {"Authorization": f"Bearer {issued}"}
    # a wrong password is refused with a message naming the user and where the credentials came from
    wrong = ServicePrincipalAuthentication("my-tenant", SP_USER, "not-the-password", workspace=ws)
    with pytest.raises(AuthenticationException, match=rf"refused the login of user '{SP_USER}'.*ServicePrincipal"):
        wrong.get_authentication_header()


def test_workspace_auth_is_used_by_the_sdk_rest_client(project):
    """``Workspace.from_config(auth=sp)``: the SDK's own REST calls (here PublishedPipeline.submit) run as the SP."""
    ws, info = project["ws"], project["info"]
    sp = ServicePrincipalAuthentication("my-tenant", SP_USER, sp_password(ws))
    ws_sp = Workspace.from_config(path=project["root"], auth=sp)
    assert ws_sp.auth is sp
    run = PublishedPipeline.get(ws_sp, project["published"].id).submit(ws_sp, "sp-sdk-exp",
                                                                        pipeline_parameters={"pipeline_arg": 4})
    assert run.wait_for_completion(show_output=False) == "Finished"
    row = ws.store.get_pipeline_run(run.id)
    triggered = dag_run(info, {"DagId": row["dag_id"], "DagRunId": row["airflow_run_id"]})
    assert triggered["triggering_user_name"] == SP_USER
    # the workspace is also the object's default one: its header is for that Airflow and that user
    assert client_for(ws_sp).base_url == info.url
    me = httpx.get(f"{info.url}/api/v2/dags/{row['dag_id']}/dagRuns/{row['airflow_run_id']}",
                   headers=sp.get_authentication_header(), timeout=60)
    assert me.status_code == 200


# ---------------------------------------------------------------------------------------------- a remote api-server
@pytest.fixture
def client_workspace(project, tmp_path, monkeypatch):
    """A laptop whose workspace config names the second api-server and the admin's credentials."""
    client_dir = tmp_path / "laptop"
    (client_dir / ".mlpipe").mkdir(parents=True)
    (client_dir / ".mlpipe" / "config.json").write_text(json.dumps({
        "workspace_name": "remote", "store_url": project["ws"].store_url,
        "airflow": {"url": project["remote_url"], "username": "admin", "password_env": "TEST_AIRFLOW_PASSWORD"},
    }))
    monkeypatch.setenv("TEST_AIRFLOW_PASSWORD", project["info"].password)
    monkeypatch.chdir(client_dir)
    return client_dir


def test_remote_api_server_header_and_submission(project, client_workspace):
    remote = Workspace.from_config()
    assert not remote.is_embedded
    published = PublishedPipeline.get(remote, project["published"].id)
    assert published.endpoint.startswith(project["remote_url"] + "/mlpipe/api/v1/")
    auth = InteractiveLoginAuthentication()
    response = requests.post(published.endpoint, headers=auth.get_authentication_header(),
                             json={"ExperimentName": "remote-exp", "ParameterAssignments": {"pipeline_arg": 9}}, timeout=120)
    assert response.status_code == 200, response.text
    final = wait_finished(project["remote_url"], auth, response.json()["Id"])
    assert final["Status"]["StatusCode"] == "Finished", final
    # a service principal on the remote: its own user; a wrong one is refused by the remote
    sp = ServicePrincipalAuthentication("t", SP_USER, sp_password(project["ws"]))
    ok = requests.get(f"{project['remote_url']}/mlpipe/api/v1/pipelines", headers=sp.get_authentication_header(),
                      timeout=60)
    assert ok.status_code == 200, ok.text
    with pytest.raises(AuthenticationException, match=project["remote_url"]):
        ServicePrincipalAuthentication("t", SP_USER, "wrong").get_authentication_header()


def test_remote_header_is_refreshed_when_the_token_expires(project, client_workspace):
    """The remote's tokens live REMOTE_TOKEN_SECONDS: once the server rejects the old header, a new call to
    get_authentication_header() returns a new, accepted one, and a signed session retries its 401 itself."""
    url = f"{project['remote_url']}/mlpipe/api/v1/pipelines"
    auth = InteractiveLoginAuthentication()
    old = auth.get_authentication_header()
    session = auth.signed_session()
    assert requests.get(url, headers=old, timeout=60).status_code == 200
    wait_until(lambda: requests.get(url, headers=old, timeout=60).status_code == 401,  # the server's clock decides
               "the short-lived token to expire", timeout=REMOTE_TOKEN_SECONDS + 30, interval=0.5)
    new = auth.get_authentication_header()
    assert new != old
    assert requests.get(url, headers=new, timeout=60).status_code == 200
    # the session still carries the expired token: it answers 401 once, logs in again and resends
    assert session.headers["Authorization"] == old["Authorization"]
    answered = session.get(url, timeout=60)
    assert answered.status_code == 200, answered.text
    assert session.headers["Authorization"] == new["Authorization"]
    session.close()


def test_remote_config_without_credentials_is_a_clear_error(project, tmp_path, monkeypatch):
    (tmp_path / ".mlpipe").mkdir()
    (tmp_path / ".mlpipe" / "config.json").write_text(json.dumps({"airflow": {"url": project["remote_url"]}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserErrorException, match=r"config.json: 'airflow' names the api-server .* but no credentials"):
        InteractiveLoginAuthentication().get_authentication_header()
    (tmp_path / ".mlpipe" / "config.json").write_text(json.dumps(
        {"airflow": {"url": project["remote_url"], "token_env": "TEST_AIRFLOW_TOKEN_UNSET"}}))
    monkeypatch.delenv("TEST_AIRFLOW_TOKEN_UNSET", raising=False)
    with pytest.raises(UserErrorException, match=r"token_env' names \$TEST_AIRFLOW_TOKEN_UNSET, which is not set"):
        InteractiveLoginAuthentication().get_authentication_header()
    # a token from the environment is used as is
    token = httpx.post(f"{project['remote_url']}/auth/token",
                       json={"username": "admin", "password": project["info"].password}, timeout=60).json()
    monkeypatch.setenv("TEST_AIRFLOW_TOKEN_UNSET", token["access_token"])
    header = InteractiveLoginAuthentication().get_authentication_header()
    assert header == {"Authorization": f"Bearer {token['access_token']}"}
