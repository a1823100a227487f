"""The ML views inside the Airflow UI (the plugin's React bundle), end to end: headless Chromium against a real
api-server, scheduler and runs of a published two-step pipeline.

Run 1 computes both steps; run 2 changes the ``threshold`` parameter, so ``prepare`` is reused from run 1 and
``score`` computed again with the change as its reason. ``MLPIPE_SCREENSHOTS=<folder>`` keeps a screenshot of
each view there (the README's come from it).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from airflow_mlpipe import PipelineData, PipelineParameter, PythonScriptStep
from tests.helpers.browser import Page, chromium, open_page
from tests.helpers.published import admin_token, bearer, published_project, user_token, wait_dag_run_done

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(900)]
http = httpx.Client(timeout=90)

PREPARE = """\
import os, sys
out = sys.argv[sys.argv.index('--out') + 1]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, 'passengers.csv'), 'w') as fh:
    fh.write('name,age,survived\\n' + ''.join(f'p{i},{20 + i},{i % 2}\\n' for i in range(8)))
"""
#: a 1x1 PNG
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
SCORE = f"""\
import base64, os, sys
from azureml.core import Run
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
threshold = int(args['--threshold'])
rows = open(os.path.join(args['--data'], 'passengers.csv')).read().splitlines()[1:]
kept = [r for r in rows if int(r.split(',')[1]) >= 20 + threshold]
run = Run.get_context()
run.log('accuracy', len(kept) / len(rows))
run.log_table('confusion', {{'actual': [0, 1], 'predicted_0': [3, 1], 'predicted_1': [1, 3]}})
png = os.path.join(args['--out'], 'plot.png')
os.makedirs(args['--out'], exist_ok=True)
open(png, 'wb').write(base64.b64decode('{PNG}'))
run.log_image('roc', path=png)
open(os.path.join(args['--out'], 'kept.csv'), 'w').write('name,age,survived\\n' + '\\n'.join(kept) + '\\n')
"""


def _pipeline(ws, root: Path):
    from airflow_mlpipe import Pipeline

    src = root / "steps"
    src.mkdir(exist_ok=True)
    (src / "prepare.py").write_text(PREPARE)
    (src / "score.py").write_text(SCORE)
    prepared, scored = PipelineData("prepared"), PipelineData("scored")
    prepare = PythonScriptStep("prepare.py", name="prepare", arguments=["--out", prepared], outputs=[prepared],
                               source_directory=str(src))
    score = PythonScriptStep("score.py", name="score", inputs=[prepared], outputs=[scored],
                             arguments=["--data", prepared, "--out", scored, "--threshold",
                                        PipelineParameter("threshold", default_value=1)],
                             source_directory=str(src))
    return Pipeline(ws, [prepare, score])


def _submit(info, token: str, pipeline_id: str, threshold: int) -> dict:
    r = http.post(f"{info.url}/mlpipe/api/v1/PipelineRuns/PipelineSubmit/{pipeline_id}", headers=bearer(token),
                  json={"ExperimentName": "ui-views", "ParameterAssignments": {"threshold": threshold}})
    assert r.status_code == 200, r.text
    run = r.json()
    assert wait_dag_run_done(info.url, token, run["DagId"], run["DagRunId"], timeout=240) == "success"
    return run


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def publish(ws, root):
        return _pipeline(ws, root).publish("ui_views", description="two steps, one reused", version="1")

    with published_project(tmp_path_factory, publish, name="ui_views") as (root, ws, info, published):
        token = admin_token(info)
        first = _submit(info, token, published.id, 3)
        second = _submit(info, token, published.id, 5)
        yield {"ws": ws, "info": info, "p": published, "token": token, "runs": [first, second]}


@pytest.fixture(scope="module")
def browser():
    with chromium() as port:
        yield port


@pytest.fixture
def page_as(project, browser):
    """``page_as(token)`` opens a logged-in tab; each tab must end without console errors."""
    pages: list[Page] = []

    def open_as(token: str | None = None, dark: bool = False) -> Page:
        page = open_page(browser, project["info"].url, token or project["token"], dark=dark)
        pages.append(page)
        return page

    yield open_as
    for page in pages:
        page.close()
    errors = [e for page in pages for e in page.errors]
    assert not errors, f"console errors in the browser: {errors}"


def _shot(page: Page, name: str) -> None:
    folder = os.environ.get("MLPIPE_SCREENSHOTS")
    if folder:
        page.screenshot(Path(folder) / f"{name}.png")


def _goto(page: Page, project, path: str, root: str) -> None:
    page.send("Page.navigate", url=f"{project['info'].url}/{path}")
    page.wait(f"!!document.querySelector('[data-testid={root}]') && "
              f"!document.querySelector('[data-testid={root}] [data-loading=true]')", 120)


def _row(step: str) -> str:
    return f"document.querySelector('[data-testid=step-row][data-step={step}]')"


# ---------------------------------------------------------------------------------------------- the bundle
def test_bundle_is_served_behind_airflow_auth(project):
    url = f"{project['info'].url}/mlpipe/static/mlpipe-ui.js"
    assert http.get(url).status_code == 401
    r = http.get(url, headers=bearer(project["token"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), r.headers
    assert r.headers["x-content-type-options"] == "nosniff"
    assert http.get(f"{project['info'].url}/mlpipe/static/..%2F..%2Fapi.py", headers=bearer(project["token"])
                    ).status_code == 404
    plugins = http.get(f"{project['info'].url}/api/v2/plugins", headers=bearer(project["token"])).json()
    apps = {a["name"]: a for p in plugins["plugins"] for a in p.get("react_apps", [])}
    assert {n: apps[n]["destination"] for n in ("Pipeline", "Step", "Experiment", "ML Pipelines",
                                                 "ML Pipeline runs")} == {
        "Pipeline": "dag_run", "Step": "task_instance", "Experiment": "dag", "ML Pipelines": "nav",
        "ML Pipeline runs": "dashboard"}


# ---------------------------------------------------------------------------------------------- the views
def test_pipeline_tab_links_a_reused_step_to_its_producer(project, page_as):
    first, second = project["runs"]
    dag_id = second["DagId"]
    page = page_as()
    _goto(page, project, f"dags/{dag_id}/runs/{second['DagRunId']}/plugin/mlpipe-pipeline", "mlpipe-pipeline")
    text = page.eval("document.querySelector('[data-testid=mlpipe-pipeline]').innerText")
    assert "threshold" in text and "5" in text, text  # the run's parameters
    assert "'threshold' 3 -> 5" in page.eval(f"{_row('score')}.innerText")  # why score was computed again
    link = f"{_row('prepare')}.querySelector('[data-testid=reused-link]')"
    assert f"/dags/{dag_id}/runs/{first['DagRunId']}" in page.eval(f"{link}.getAttribute('href')")
    _shot(page, "pipeline-tab")
    # keyboard: focus the score row's expander and press Enter; its outputs and a preview appear
    page.eval(f"{_row('score')}.querySelector('button[aria-expanded]').focus()")
    page.press("Enter")
    page.wait("[...document.querySelectorAll('button')].some(b => /preview/i.test(b.innerText))", 30)
    page.click("[...document.querySelectorAll('button')].find(b => /preview/i.test(b.innerText))")
    page.wait("[...document.querySelectorAll('td')].some(td => td.innerText.trim() === 'p7')", 30)
    # the producer link lands on the producer's DAG run page
    page.click(link)
    page.wait(f"location.pathname.includes('/runs/{first['DagRunId']}')", 30)


def test_pipeline_tab_in_dark_mode(project, page_as):
    second = project["runs"][1]
    page = page_as(dark=True)
    _goto(page, project, f"dags/{second['DagId']}/runs/{second['DagRunId']}/plugin/mlpipe-pipeline",
          "mlpipe-pipeline")
    assert page.eval("document.documentElement.classList.contains('dark')")
    _shot(page, "pipeline-tab-dark")


def test_step_tab_shows_the_cache_decision_tables_and_images(project, page_as):
    second = project["runs"][1]
    page = page_as()
    _goto(page, project, f"dags/{second['DagId']}/runs/{second['DagRunId']}/tasks/score/plugin/mlpipe-step",
          "mlpipe-step")
    text = page.eval("document.querySelector('[data-testid=mlpipe-step]').innerText")
    assert "computed" in text.lower() and "threshold" in text and "confusion" in text and "predicted_1" in text
    page.wait("[...document.querySelectorAll('[data-testid=mlpipe-step] img')].some(i => i.naturalWidth > 0)", 30)
    _shot(page, "step-tab")


def test_experiment_chart_has_a_point_per_run(project, page_as):
    dag_id = project["runs"][0]["DagId"]
    view = http.get(f"{project['info'].url}/mlpipe/api/v1/ui/dags/{dag_id}/experiment",
                    headers=bearer(project["token"])).json()
    with_metric = [r for r in view["Runs"] if "score/accuracy" in r["Metrics"]]
    assert len(with_metric) >= 2
    page = page_as()
    _goto(page, project, f"dags/{dag_id}/plugin/mlpipe-experiment", "mlpipe-experiment")
    picker = "document.querySelector('[data-testid=metric-picker]')"
    page.eval(f"""(() => {{ const s = {picker}; s.value = 'score/accuracy';
        s.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()""")
    points = page.wait("document.querySelectorAll('[data-testid=metric-chart] [data-testid=chart-point]').length", 30)
    assert points == len(with_metric)
    _shot(page, "experiment-tab")


def test_nav_page_submits_with_a_typed_parameter(project, page_as):
    p = project["p"]
    page = page_as()
    _goto(page, project, "plugin/mlpipe", "mlpipe-published")
    _shot(page, "ml-pipelines-page")
    page.click(f"document.querySelector('[data-pipeline-id=\"{p.id}\"] [data-testid=submit-button]')")
    field = "document.querySelector('[role=dialog] input[name=threshold]')"
    page.wait(f"!!{field}", 30)
    page.eval(f"(() => {{ const el = {field}; el.focus(); el.select(); return true; }})()")
    page.press("Backspace")
    page.type_text("7")
    page.click("[...document.querySelectorAll('[role=dialog] button')].find(b => /^\\s*submit/i.test(b.innerText))")
    href = page.wait("document.querySelector('[data-testid=submitted-run-link]')?.getAttribute('href')", 60)
    run_id = href.rstrip("/").split("/runs/")[1]
    token = project["token"]
    dag_run = http.get(f"{project['info'].url}/api/v2/dags/{p.dag_id}/dagRuns/{run_id}", headers=bearer(token))
    assert dag_run.json()["conf"]["threshold"] == 7, dag_run.json()["conf"]  # a number, not "7"
    assert wait_dag_run_done(project["info"].url, token, p.dag_id, run_id, timeout=240) == "success"


def test_viewer_sees_no_actions_and_the_server_refuses_them(project, page_as):
    info, p = project["info"], project["p"]
    viewer = user_token(project["ws"], info, "viewer")
    page = page_as(viewer)
    _goto(page, project, "plugin/mlpipe", "mlpipe-published")
    assert p.name in page.eval("document.querySelector('[data-testid=mlpipe-published]').innerText")
    for testid in ("submit-button", "enable-button", "disable-button", "set-default-button"):
        assert page.eval(f"document.querySelectorAll('[data-testid={testid}]').length") == 0, testid
    refused = http.post(f"{info.url}/mlpipe/api/v1/ui/pipelines/{p.id}/disable", headers=bearer(viewer))
    assert refused.status_code == 403, refused.text
    refused = http.post(f"{info.url}/mlpipe/api/v1/PipelineRuns/PipelineSubmit/{p.id}", headers=bearer(viewer),
                        json={"ExperimentName": "nope", "ParameterAssignments": {"threshold": 1}})
    assert refused.status_code == 403, refused.text


def test_dashboard_shows_recent_runs_and_the_reused_share(project, page_as):
    page = page_as()
    _goto(page, project, "", "mlpipe-dashboard")
    text = page.eval("document.querySelector('[data-testid=mlpipe-dashboard]').innerText")
    assert "%" in text and project["runs"][1]["DagRunId"][:12] in text, text
    _shot(page, "dashboard")
