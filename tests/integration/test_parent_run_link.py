"""Issue 10: ``parentRunId`` / ``parent_run_id`` link a run to its parent (run property ``azureml.parentrunid``,
as in v1) over REST and the SDK; ``credential_passthrough`` warns that it has no effect instead of being ignored.
"""

from __future__ import annotations

import httpx
import pytest

from airflow_mlpipe import PipelineEndpoint
from airflow_mlpipe.sdk.no_effect import NoEffectWarning, reset_no_effect_warnings
from tests.helpers.published import admin_token, bearer, emit_pipeline, published_project

pytestmark = pytest.mark.scheduler
http = httpx.Client(timeout=90)
PARENT = "parent-run-0001"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def publish(ws, root):
        pipeline = emit_pipeline(ws, root, tag=True)
        p0 = pipeline.publish("parent_link_pipeline", version="1.0")
        PipelineEndpoint.publish(ws, "parent_link_endpoint", "parent link", p0)
        return {"pipeline": pipeline, "p0": p0}

    with published_project(tmp_path_factory, publish) as (_, ws, info, extra):
        yield ws, info, extra, admin_token(info)


def _post(url: str, token: str, **params: str) -> dict:
    r = http.post(url, params=params, headers=bearer(token), json={"ExperimentName": "pl"})
    assert r.status_code == 200, r.text
    return r.json()


def test_rest_parent_run_id_is_recorded(project):
    ws, info, extra, token = project
    base = f"{info.url}/mlpipe/api/v1/PipelineRuns"
    published = _post(f"{base}/PipelineSubmit/{extra['p0'].id}", token, parentRunId=PARENT)
    endpoint = _post(f"{base}/PipelineEndpointSubmit/Name/parent_link_endpoint", token, parentRunId=PARENT)
    plain = _post(f"{base}/PipelineSubmit/{extra['p0'].id}", token)
    assert published["Properties"]["azureml.parentrunid"] == PARENT
    assert endpoint["Properties"]["azureml.parentrunid"] == PARENT
    assert "azureml.parentrunid" not in plain["Properties"]
    assert ws.store.get_pipeline_run(published["Id"])["properties"]["azureml.parentrunid"] == PARENT


def test_sdk_parent_run_id_and_credential_passthrough(project):
    ws, _, extra, _ = project
    run = extra["p0"].submit(ws, "pl", parent_run_id="sdk-parent")
    assert run.get_details()["properties"]["azureml.parentrunid"] == "sdk-parent"
    reset_no_effect_warnings()
    with pytest.warns(NoEffectWarning, match="credential_passthrough"):
        local = extra["pipeline"].submit("pl-local", parent_run_id="local-parent", credential_passthrough=True)
    assert local.get_details()["properties"]["azureml.parentrunid"] == "local-parent"
