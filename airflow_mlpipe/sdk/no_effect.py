"""One warning, once per process, for each v1 argument that is accepted but changes nothing here.

Ported code keeps running when it passes an argument that only meant something on Azure (``path_on_compute``,
``vm_size``, ...); the author is told once which argument it was and what happens instead, never silently.
Filter them like any warning: ``warnings.simplefilter("ignore", NoEffectWarning)``.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


class NoEffectWarning(UserWarning):
    """A v1 argument accepted for compatibility that has no effect in airflow-mlpipe."""


def _caller_stacklevel() -> int:
    """The stack level of the first frame outside airflow_mlpipe, so the warning points at the user's line."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn_no_effect(owner: str, argument: str, instead: str) -> bool:
    """Warn (once per process per ``(owner, argument)``) that ``owner``'s ``argument`` has no effect.

    ``instead`` says what happens instead. Returns whether a warning was issued.
    """
    key = (owner, argument)
    with _lock:
        if key in _warned:
            return False
        _warned.add(key)
    warnings.warn(f"{owner}: argument {argument!r} has no effect in airflow-mlpipe; {instead}",
                  NoEffectWarning, stacklevel=_caller_stacklevel())
    return True


def reset_no_effect_warnings() -> None:
    """Forget which warnings were issued (tests; a long-lived process that wants to see them again)."""
    with _lock:
        _warned.clear()
