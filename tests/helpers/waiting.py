"""Waiting on a condition with a deadline: the one way tests order events (never a fixed sleep)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], what: str, timeout: float = 120.0, interval: float = 0.2,
               detail: Callable[[], object] | None = None) -> T:
    """Call ``check`` until it returns something truthy and return that; fail after ``timeout`` seconds.

    ``what`` completes the failure message "timed out after N s waiting for ..."; ``detail()``, when given, is
    called then and its value added to the message (the state that was seen last).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(interval)


def wait_for_file(path: Path, what: str, timeout: float = 120.0) -> str:
    """The text of ``path`` once it exists as a file (written whole: writers rename it into place)."""
    wait_until(path.is_file, f"{what} ({path} to appear)", timeout=timeout, interval=0.1)
    return path.read_text()


def wait_for_json_lines(path: Path, n: int, what: str, timeout: float = 120.0) -> list[dict]:
    """The records of the JSON-lines file ``path`` once it holds at least ``n`` of them."""
    def records() -> list[dict] | None:
        text = path.read_text() if path.exists() else ""
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return rows if len(rows) >= n else None

    return wait_until(records, what, timeout=timeout)
