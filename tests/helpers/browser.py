"""Headless Chromium (Debian's ``chromium``) driven over the Chrome DevTools Protocol with a small websockets
client: no browser download, no Node. Pages record the console errors and uncaught exceptions they see."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.waiting import wait_for_file, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: CDP key events: key -> (code, windowsVirtualKeyCode)
KEYS = {"Tab": ("Tab", 9), "Enter": ("Enter", 13), "Escape": ("Escape", 27), " ": ("Space", 32),
        "Backspace": ("Backspace", 8)}


class Page:
    """Just enough CDP: send a command, wait for its answer, evaluate JavaScript, click, press keys; the console
    errors and uncaught exceptions seen meanwhile are kept in :attr:`errors`."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=None, open_timeout=30)
        self._ids = itertools.count(1)
        self.errors: list[str] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv(timeout=60))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                       for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails") or {}
            self.errors.append("exception: " + str((details.get("exception") or {}).get("description")
                                                   or details.get("text")))
        elif method == "Log.entryAdded" and (params.get("entry") or {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")

    def eval(self, expr: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expr}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait(self, expr: str, timeout: float = 60) -> Any:
        return wait_until(lambda: self.eval(f"(() => {{ try {{ return ({expr}); }} catch (e) {{ return null; }} }})()"),
                          expr, timeout=timeout, interval=0.5,
                          detail=lambda: f"page text: {self.eval('document.body.innerText')[:2000]}")

    def click(self, expr: str) -> None:
        """A real mouse click (pressed and released) on the middle of the element ``expr`` evaluates to."""
        x, y = self.eval(f"""(() => {{ const el = ({expr}); el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def press(self, key: str, shift: bool = False) -> None:
        """A real key press (down and up) on whatever has the focus."""
        code, vk = KEYS[key]
        text = {"Enter": "\r", " ": " "}.get(key)
        for kind in ("keyDown", "keyUp"):
            extra = {"text": text} if kind == "keyDown" and text else {}
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=vk,
                      modifiers=8 if shift else 0, **extra)

    def type_text(self, text: str) -> None:
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self._ws.close()


@contextlib.contextmanager
def chromium() -> Iterator[int]:
    """A headless Chromium; yields its DevTools port."""
    assert CHROMIUM is not None, "Debian's chromium is required for the browser tests (apt-get install -y chromium)"
    profile = tempfile.mkdtemp(prefix="mlpipe_chromium_")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield int(wait_for_file(Path(profile) / "DevToolsActivePort", "chromium's DevTools port", timeout=30)
                  .split()[0])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(port: int, base_url: str, token: str, dark: bool = False) -> Page:
    """A new tab logged in to the Airflow at ``base_url`` as the owner of ``token`` (the UI's ``_token``
    cookie), recording console errors; ``dark`` asks for the dark color scheme."""
    target = httpx.put(f"http://127.0.0.1:{port}/json/new?about:blank").json()
    page = Page(target["webSocketDebuggerUrl"])
    for domain in ("Network", "Runtime", "Log"):
        page.send(f"{domain}.enable")
    page.send("Network.setCookie", name="_token", value=token, url=base_url, path="/")
    if dark:
        page.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
    return page
