"""The "ML Pipelines" page in headless Chromium (Debian's ``chromium``) against a real api-server, driven over the
Chrome DevTools Protocol with a small websockets client (no browser download, no Node)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.helpers.published import admin_token, bearer, emit_pipeline, published_project, wait_dag_run_done
from tests.helpers.waiting import wait_for_file, wait_until

pytestmark = pytest.mark.scheduler
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
http = httpx.Client(timeout=90)


class Page:
    """Just enough CDP: send a command, wait for its answer, evaluate JavaScript."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=None, open_timeout=30)
        self._ids = itertools.count(1)

    def send(self, method: str, **params):
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv(timeout=60))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expr: str):
        res = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expr}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait(self, expr: str, timeout: float = 60):
        return wait_until(lambda: self.eval(f"(() => {{ try {{ return ({expr}); }} catch (e) {{ return null; }} }})()"),
                          expr, timeout=timeout, interval=0.5,
                          detail=lambda: f"page text: {self.eval('document.body.innerText')[:2000]}")

    def click(self, expr: str) -> None:
        """A real mouse click (pressed and released) on the middle of the element ``expr`` evaluates to."""
        x, y = self.eval(f"""(() => {{ const el = ({expr}); el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self._ws.close()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM is not None, "Debian's chromium is required for the browser test (apt-get install -y chromium)"
    profile = tempfile.mkdtemp(prefix="mlpipe_chromium_")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = int(wait_for_file(Path(profile) / "DevToolsActivePort", "chromium's DevTools port", timeout=30)
                   .split()[0])
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def publish(ws, root):
        p = emit_pipeline(ws, root, tag=True).publish("ui_pipeline", description="shown in the UI", version="3")
        return {"p": p}

    with published_project(tmp_path_factory, publish) as (root, ws, info, extra):
        yield root, ws, info, extra, admin_token(info)


def _page(port: int, info, token: str) -> Page:
    target = httpx.put(f"http://127.0.0.1:{port}/json/new?about:blank").json()
    page = Page(target["webSocketDebuggerUrl"])
    page.send("Network.enable")
    page.send("Network.setCookie", name="_token", value=token, url=info.url, path="/")
    return page


def _wait_finished(info, token, dag_id, run_id, timeout=120) -> str:
    return wait_dag_run_done(info.url, token, dag_id, run_id, timeout=timeout)


def test_trigger_form_with_non_default_value(project, browser):
    """The Airflow UI's trigger form shows the pipeline parameters; a non-default value reaches the step."""
    _, ws, info, extra, token = project
    dag_id = extra["p"].dag_id
    page = _page(browser, info, token)
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


def test_mlpipe_page_renders(project, browser):
    _, ws, info, extra, token = project
    p = extra["p"]
    r = http.post(p.endpoint, headers=bearer(token),
                  json={"ExperimentName": "ui-exp", "ParameterAssignments": {"value": "9"}})
    assert r.status_code == 200, r.text
    assert _wait_finished(info, token, p.dag_id, r.json()["Id"]) == "success"
    plugins = http.get(f"{info.url}/api/v2/plugins", headers=bearer(token)).json()
    views = [v for pl in plugins["plugins"] for v in pl.get("external_views", [])]
    assert any(v["href"] == "/mlpipe/ui" and v["destination"] == "nav" for v in views)
    page = _page(browser, info, token)
    try:
        page.send("Page.navigate", url=f"{info.url}/mlpipe/ui")
        assert page.wait("document.body.getAttribute('data-loaded')", 60) == "1", page.eval("document.body.innerText")
        text = page.eval("document.body.innerText")
        assert "ui_pipeline" in text and "Published pipelines" in text
        assert page.eval(f"!!document.querySelector('tr[data-pipeline-id=\"{p.id}\"]')")
        row = f"tr[data-run-id=\"{r.json()['Id']}\"]"
        assert page.eval(f"document.querySelector('{row} .run-status').innerText") == "Finished"
        assert "value=9" in page.eval(f"document.querySelector('{row} .run-params').innerText")
        assert page.eval(f"document.querySelectorAll('{row} svg.metric-plot').length") >= 1
        link = page.eval(f"document.querySelector('{row} a').getAttribute('href')")
        assert f"/dags/{p.dag_id}/runs/" in link
        # the page inside the Airflow UI (nav entry with url_route)
        page.send("Page.navigate", url=f"{info.url}/plugin/mlpipe")
        page.wait("!!document.querySelector('iframe')", 60)
    finally:
        page.close()
