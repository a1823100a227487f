"""The UI's JSON routes (``/mlpipe/api/v1/ui/``) in a real api-server with real tokens, over two real runs of a
published pipeline: the second reuses ``prep`` (pointing at the first run's DAG run) and computes ``train`` again
after a parameter change; previews, logged tables and images, published entries and their actions with the
DAG permissions of each role, 403/404/400 answers, and schemathesis over the UI's routes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from airflow_mlpipe import (
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
)
from tests.helpers.published import (
    admin_token,
    bearer,
    emit_pipeline,
    published_project,
    user_token,
    wait_v1_run,
)

pytestmark = pytest.mark.scheduler
http = httpx.Client(timeout=90)

#: a 1x1 PNG
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
PREP = f"""\
import argparse, base64, os, tempfile
import pyarrow as pa, pyarrow.parquet as pq
from azureml.core import Run
p = argparse.ArgumentParser()
for name in ("--table", "--rows", "--note"):
    p.add_argument(name)
a = p.parse_args()
for folder in (a.table, a.rows, a.note):
    os.makedirs(folder, exist_ok=True)
pq.write_table(pa.table({{"id": list(range(30)), "name": [f"n{{i}}" for i in range(30)]}}),
               os.path.join(a.table, "part-0.parquet"))
open(os.path.join(a.rows, "rows.csv"), "w").write("x,y\\n1,a\\n2,b\\n")
open(os.path.join(a.note, "note.txt"), "w").write("not a table")
run = Run.get_context()
run.log("rows", 30)
run.log_table("summary", {{"column": ["id", "name"], "nulls": [0, 0]}})
run.log_row("per_class", cls="a", f1=0.5)
run.log_row("per_class", cls="b", f1=0.7)
tmp = tempfile.mkdtemp()
open(os.path.join(tmp, "chart.png"), "wb").write(base64.b64decode("{PNG}"))
run.log_image("chart", path=os.path.join(tmp, "chart.png"))
open(os.path.join(tmp, "vector.svg"), "w").write('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
run.log_image("vector", path=os.path.join(tmp, "vector.svg"))
"""
TRAIN = """\
import argparse, os
import pyarrow.parquet as pq
from azureml.core import Run
p = argparse.ArgumentParser()
for name in ("--data", "--alpha", "--model"):
    p.add_argument(name)
a = p.parse_args()
os.makedirs(a.model, exist_ok=True)
open(os.path.join(a.model, "model.txt"), "w").write(a.alpha)
Run.get_context().log("score", pq.read_table(a.data).num_rows * float(a.alpha))
"""


def ui_pipeline(ws, root: Path) -> Pipeline:
    src = root / "ui_steps"
    src.mkdir(exist_ok=True)
    (src / "prep.py").write_text(PREP)
    (src / "train.py").write_text(TRAIN)
    table, rows, note, model = (PipelineData(n) for n in ("table", "rows", "note", "model"))
    prep = PythonScriptStep("prep.py", name="prep", arguments=["--table", table, "--rows", rows, "--note", note],
                            outputs=[table, rows, note], source_directory=str(src))
    train = PythonScriptStep("train.py", name="train", inputs=[table], outputs=[model], source_directory=str(src),
                             arguments=["--data", table, "--alpha", PipelineParameter("alpha", default_value=1),
                                        "--model", model])
    return Pipeline(ws, [prep, train])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def publish(ws, root):
        main = ui_pipeline(ws, root).publish("ui_pipeline")
        other = emit_pipeline(ws, root).publish("ui_other")
        endpoint = PipelineEndpoint.publish(ws, "ui_endpoint", "", main)
        endpoint.add(other)
        schedule = Schedule.create(ws, "monthly", other.id, "sched-exp", recurrence=ScheduleRecurrence("Month", 1))
        schedule.disable()  # enabled only through the UI route below
        return {"main": main, "other": other, "endpoint": endpoint, "schedule": schedule}

    with published_project(tmp_path_factory, publish) as (root, ws, info, extra):
        token = admin_token(info)
        runs = []
        for values in ({}, {"alpha": 2}):
            r = http.post(extra["main"].endpoint, headers=bearer(token),
                          json={"ExperimentName": "ui-exp", "ParameterAssignments": values})
            assert r.status_code == 200, r.text
            final = wait_v1_run(info.url, lambda: bearer(token), r.json()["Id"], timeout=240)
            assert final["Status"]["StatusCode"] == "Finished", final
            runs.append(final)
        tokens = {role: user_token(ws, info, role) for role in ("viewer", "user")}
        yield {"ws": ws, "url": f"{info.url}/mlpipe/api/v1/ui", "info": info, "admin": token, **tokens,
               "runs": runs, **extra}


def _get(project, path: str, role: str = "viewer", **params) -> httpx.Response:
    return http.get(f"{project['url']}/{path}", headers=bearer(project[role]), params=params)


def _run_path(run: dict) -> str:
    return f"dags/{run['DagId']}/runs/{run['DagRunId']}"


def test_pipeline_view_second_run_reuses_prep_and_computes_train(project):
    first, second = project["runs"]
    r = _get(project, f"{_run_path(first)}/pipeline")
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["Run"]["Id"] == first["Id"] and view["Run"]["Status"] == "Finished"
    assert [s["Name"] for s in view["Steps"]] == ["prep", "train"]
    assert all(s["Status"] == "Finished" and not s["Reused"] for s in view["Steps"])
    assert view["Steps"][0]["MissReasons"] == ["no earlier successful run of this step"]

    view = _get(project, f"{_run_path(second)}/pipeline").json()
    assert view["Run"]["Parameters"] == {"alpha": 2} and view["Run"]["Experiment"] == "ui-exp"
    prep, train = view["Steps"]
    assert prep["Reused"] is True and prep["Status"] == "Finished" and prep["MissReasons"] == []
    assert prep["ReusedFrom"] == {"PipelineRunId": first["Id"], "DagId": first["DagId"],
                                  "DagRunId": first["DagRunId"], "TaskId": "prep",
                                  "StepRunId": f"{first['Id']}.prep"}
    assert first["Id"] in prep["CacheReason"] and prep["CacheReason"].startswith("cache key ")
    assert prep["Metrics"] == {"rows": 30}  # the producer's, as in v1
    assert train["Reused"] is False and train["MissReasons"] == ["parameter 'alpha' 1 -> 2"]
    assert train["Metrics"] == {"score": 60.0} and train["DurationSeconds"] > 0
    (data,) = train["Inputs"]
    assert data["Name"] == "table" and data["Tabular"] is True and data["ContentHash"]
    outputs = {o["Name"]: o for o in prep["Outputs"]}
    assert {n: o["Tabular"] for n, o in outputs.items()} == {"table": True, "rows": True, "note": False}
    assert outputs["table"]["Uri"].startswith("file://") and outputs["table"]["Files"] == 1


def test_step_view_cache_tables_and_images(project):
    first, second = project["runs"]
    r = _get(project, f"{_run_path(first)}/steps/prep")
    assert r.status_code == 200, r.text
    step = r.json()
    assert step["Cache"]["Decision"] == "computed" and step["Cache"]["Key"].startswith("blake3:")
    assert set(step["Cache"]["Components"]["source"]) == {"prep.py", "train.py"}
    assert {t["Name"]: (t["Columns"], t["Rows"]) for t in step["Tables"]} == {
        "summary": (["column", "nulls"], [["id", 0], ["name", 0]]),
        "per_class": (["cls", "f1"], [["a", 0.5], ["b", 0.7]])}
    images = {i["Name"]: i["Url"] for i in step["Images"]}
    assert set(images) == {"chart", "vector"} and step["Leaderboard"] is None

    base = project["info"].url
    png = http.get(f"{base}/{images['chart']}", headers=bearer(project["viewer"]))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["x-content-type-options"] == "nosniff" and png.content.startswith(b"\x89PNG")
    svg = http.get(f"{base}/{images['vector']}", headers=bearer(project["viewer"]))
    assert svg.status_code == 400 and "SVG is refused" in svg.json()["detail"]
    assert http.get(f"{base}/mlpipe/api/v1/ui/images/999999", headers=bearer(project["viewer"])).status_code == 404
    assert http.get(f"{base}/{images['chart']}").status_code == 401

    reused = _get(project, f"{_run_path(second)}/steps/prep").json()
    assert reused["Cache"]["Decision"] == "reused" and reused["Cache"]["Key"] == step["Cache"]["Key"]
    assert reused["Tables"] == step["Tables"] and reused["Images"] == step["Images"]
    train = _get(project, f"{_run_path(second)}/steps/train").json()
    assert train["Cache"]["Components"]["params"] == {"alpha": 2}
    assert train["Cache"]["Reasons"] == ["parameter 'alpha' 1 -> 2"]


def test_previews(project):
    first, second = project["runs"]
    steps = f"{_run_path(first)}/steps"
    r = _get(project, f"{steps}/prep/preview", port="table", rows=5)
    assert r.status_code == 200, r.text
    assert r.json() == {"Columns": ["id", "name"], "Rows": [[i, f"n{i}"] for i in range(5)], "TotalRows": 30}
    assert _get(project, f"{steps}/prep/preview", port="rows").json()["Rows"] == [[1, "a"], [2, "b"]]
    # a reused step's input is its producer's: train of the second run read the first run's table
    shown = _get(project, f"{_run_path(second)}/steps/train/preview", port="table", side="input", rows=2).json()
    assert shown["Rows"] == [[0, "n0"], [1, "n1"]]
    note = _get(project, f"{steps}/prep/preview", port="note")
    assert note.status_code == 400 and "'note'" in note.json()["detail"] and "not tabular" in note.json()["detail"]
    for port in ("../../../../etc/passwd", "/etc/passwd", "table/../../x"):
        bad = _get(project, f"{steps}/prep/preview", port=port)
        assert bad.status_code == 404 and "has no output" in bad.json()["detail"], port
    assert _get(project, f"{steps}/prep/preview", port="table", rows=101).status_code == 400
    assert _get(project, f"{steps}/prep/preview", port="table", side="sideways").status_code == 400


def test_unknown_runs_and_steps_are_404(project):
    first, _ = project["runs"]
    r = _get(project, f"dags/{first['DagId']}/runs/manual__nope/pipeline")
    assert r.status_code == 404 and "is not an airflow-mlpipe pipeline run" in r.json()["detail"]
    assert _get(project, f"{_run_path(first)}/steps/nope").status_code == 404
    assert _get(project, f"dags/nope/runs/{first['DagRunId']}/steps/prep").status_code == 404


def test_experiment_and_summary(project):
    first, second = project["runs"]
    r = _get(project, f"dags/{first['DagId']}/experiment")
    assert r.status_code == 200, r.text
    runs = r.json()["Runs"]
    assert [x["Id"] for x in runs] == [second["Id"], first["Id"]]
    assert runs[0]["Metrics"] == {"prep/rows": 30, "train/score": 60.0} and runs[0]["Parameters"] == {"alpha": 2}
    assert r.json()["Curves"] == []
    summary = _get(project, "summary", limit=50).json()
    mine = {x["Id"]: x for x in summary["Runs"]}
    assert (mine[second["Id"]]["Steps"], mine[second["Id"]]["ReusedSteps"]) == (2, 1)
    assert mine[first["Id"]]["ReusedSteps"] == 0 and summary["StepsReused"] >= 1
    assert 0 < summary["ReusedShare"] < 1


def test_published_view_and_permissions(project):
    main, other = project["main"], project["other"]
    seen = _get(project, "published").json()
    pipelines = {p["Id"]: p for p in seen["Pipelines"]}
    assert pipelines[main.id]["Parameters"] == [{"Name": "alpha", "Type": "int", "Default": 1}]
    assert (pipelines[main.id]["CanSubmit"], pipelines[main.id]["CanManage"]) == (False, False)  # a Viewer
    (endpoint,) = seen["Endpoints"]
    assert endpoint["DefaultVersion"] == "0" and [v["DagId"] for v in endpoint["Versions"]] == [main.dag_id,
                                                                                             other.dag_id]
    (schedule,) = seen["Schedules"]
    assert schedule["Status"] == "Disabled" and schedule["DagId"] == other.dag_id and not schedule["CanManage"]
    assert schedule["Recurrence"] == "every 1 Month"
    as_user = {p["Id"]: p for p in _get(project, "published", role="user").json()["Pipelines"]}
    assert (as_user[main.id]["CanSubmit"], as_user[main.id]["CanManage"]) == (True, True)


def test_actions_need_the_dag_edit_permission(project):
    url, other, endpoint = project["url"], project["other"], project["endpoint"]
    schedule = project["schedule"]
    viewer, user = bearer(project["viewer"]), bearer(project["user"])
    denied = http.post(f"{url}/pipelines/{other.id}/disable", headers=viewer)
    assert denied.status_code == 403 and "may not change" in denied.json()["detail"]
    r = http.post(f"{url}/pipelines/{other.id}/disable", headers=user)
    assert r.status_code == 200 and r.json()["Status"] == "Disabled" and r.json()["CanManage"] is True
    assert http.post(f"{url}/pipelines/{other.id}/enable", headers=user).json()["Status"] == "Active"
    assert http.post(f"{url}/pipelines/nope/enable", headers=user).status_code == 404

    assert http.put(f"{url}/endpoints/{endpoint.id}/default-version", headers=viewer,
                    json={"Version": "1"}).status_code == 403
    r = http.put(f"{url}/endpoints/{endpoint.id}/default-version", headers=user, json={"Version": "1"})
    assert r.status_code == 200 and r.json()["DefaultVersion"] == "1"
    missing = http.put(f"{url}/endpoints/{endpoint.id}/default-version", headers=user, json={"Version": "9"})
    assert missing.status_code == 404 and "no version '9'" in missing.json()["detail"]
    assert http.put(f"{url}/endpoints/{endpoint.id}/default-version", headers=user,
                    json={"Version": 1}).status_code == 400
    assert http.post(f"{url}/endpoints/{endpoint.id}/disable", headers=user).json()["Status"] == "Disabled"
    assert http.post(f"{url}/endpoints/{endpoint.id}/enable", headers=user).json()["Status"] == "Active"
    assert PipelineEndpoint.get(project["ws"], id=endpoint.id).default_version == "1"

    assert http.post(f"{url}/schedules/{schedule.id}/enable", headers=viewer).status_code == 403
    r = http.post(f"{url}/schedules/{schedule.id}/enable", headers=user)
    assert r.status_code == 200 and r.json()["Status"] == "Active" and r.json()["CanManage"] is True
    assert http.post(f"{url}/schedules/{schedule.id}/disable", headers=user).json()["Status"] == "Disabled"
    assert Schedule.get(project["ws"], schedule.id).status == "Disabled"


def test_schemathesis_on_the_ui_routes(project, tmp_path):
    """Every schemathesis check on the UI's operations, with the first run's real DAG run, step and image among
    the generated identifiers: no 5xx, documented answers matching their schemas, bad input refused with a 4xx,
    authentication enforced."""
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st is not None, "schemathesis is required (it is in the dev dependency group: uv sync)"
    first, _ = project["runs"]
    image = next(i for i in _get(project, f"{_run_path(first)}/steps/prep").json()["Images"] if i["Name"] == "chart")
    config = tmp_path / "schemathesis.toml"
    config.write_text(Path(__file__).with_name("schemathesis.toml").read_text() + f"""
[[operations]]
include-path-regex = "^/api/v1/ui/dags/[^/]+/runs/"
[operations.parameters]
"path.dag_id" = "{first['DagId']}"
"path.dag_run_id" = "{first['DagRunId']}"
"path.task_id" = "prep"
"query.port" = "table"

[[operations]]
include-path-regex = "^/api/v1/ui/images/"
[operations.parameters]
"path.image_id" = {image['Url'].rsplit('/', 1)[1]}
""")
    info = project["info"]
    proc = subprocess.run(
        [st, "--config-file", str(config), "run", f"{info.url}/mlpipe/openapi.json", "--url", f"{info.url}/mlpipe",
         "-H", f"Authorization: Bearer {project['admin']}", "--checks", "all", "--max-examples", "10",
         "--include-path-regex", "^/api/v1/ui/", "--phases", "examples,fuzzing", "--no-color",
         "--request-timeout", "60"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "SCHEMATHESIS_HOOKS": ""}, cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
