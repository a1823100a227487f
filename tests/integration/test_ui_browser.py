"""The Airflow UI's own trigger form for a published pipeline, in headless Chromium against a real api-server."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.browser import chromium, open_page
from tests.helpers.published import admin_token, bearer, emit_pipeline, published_project, wait_dag_run_done
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.scheduler
http = httpx.Client(timeout=90)


@pytest.fixture(scope="module")
def browser():
    with chromium() as port:
        yield port


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def publish(ws, root):
        p = emit_pipeline(ws, root, tag=True).publish("ui_pipeline", description="shown in the UI", version="3")
        return {"p": p}

    with published_project(tmp_path_factory, publish) as (root, ws, info, extra):
        yield root, ws, info, extra, admin_token(info)


def _wait_finished(info, token, dag_id, run_id, timeout=120) -> str:
    return wait_dag_run_done(info.url, token, dag_id, run_id, timeout=timeout)


def test_trigger_form_with_non_default_value(project, browser):
    """The Airflow UI's trigger form shows the pipeline parameters; a non-default value reaches the step."""
    _, ws, info, extra, token = project
    dag_id = extra["p"].dag_id
    page = open_page(browser, info.url, token)
    try:
        page.send("Page.navigate", url=f"{info.url}/dags/{dag_id}")
        page.wait("[...document.querySelectorAll('button')].some(b => /^\\s*Trigger/.test(b.innerText))", 90)
        page.eval("[...document.querySelectorAll('button')].find(b => /^\\s*Trigger/.test(b.innerText)).click()")
        dlg = ("[...document.querySelectorAll('[role=dialog]')].find(d => /Trigger/i.test(d.innerText) "
               "&& d.querySelector('button'))")
        page.wait(f"!!({dlg})", 30)
        # the form lists the Params; open "Run Parameters" if it is collapsed
        page.eval(f"""(() => {{ const d = {dlg};
            const b = [...d.querySelectorAll('button')].find(x => /Run Parameters|Advanced/i.test(x.innerText));
            if (b && b.getAttribute('aria-expanded') !== 'true') b.click(); return true; }})()""")
        field = f"({dlg}).querySelector('input[name=\"element_value\"], #element_value')"
        page.wait(f"!!{field}", 30)
        assert "tag" in page.eval(f"({dlg}).innerText")
        # real typing (the form's number input ignores synthetic value changes)
        page.eval(f"(() => {{ const el = {field}; el.focus(); el.select(); return true; }})()")
        page.send("Input.dispatchKeyEvent", type="keyDown", key="Backspace", code="Backspace",
                  windowsVirtualKeyCode=8)
        page.send("Input.dispatchKeyEvent", type="keyUp", key="Backspace", code="Backspace", windowsVirtualKeyCode=8)
        page.send("Input.insertText", text="42")
        page.eval(f"(() => {{ {field}.blur(); return true; }})()")
        assert page.eval(f"{field}.value") == "42"
        # Trigger submits the form's conf, shown under "Advanced Options": wait until it has taken the value
        page.click(f"[...({dlg}).querySelectorAll('button')].find(b => /Advanced Options/i.test(b.innerText))")
        conf_text = f"[...({dlg}).querySelectorAll('.view-lines')].map(e => e.textContent).join('')"
        page.wait(f"/\"value\":\\s*42\\b/.test({conf_text})", 30)
        page.eval(f"""(() => {{ const d = {dlg};
            const bs = [...d.querySelectorAll('button')].filter(b => /^\\s*Trigger\\s*$/.test(b.innerText));
            bs[bs.length - 1].click(); return bs.length; }})()""")
        runs = wait_until(lambda: http.get(f"{info.url}/api/v2/dags/{dag_id}/dagRuns",
                                           headers=bearer(token)).json()["dag_runs"],
                          "the triggered run", timeout=30, interval=1,
                          detail=lambda: page.eval("document.body.innerText")[:3000])
        run = runs[0]
        assert run["conf"].get("value") == 42, run["conf"]
        assert _wait_finished(info, token, dag_id, run["dag_run_id"]) == "success"
        assert ws.store.get_metrics(f"{run['dag_run_id']}.emit")["value"] == 42
    finally:
        page.close()
