"""Path checks for everything a spec, a manifest or a request names: nothing may point outside its root.

A spec can come from another machine (the plugin API) or from a file anyone with write access to the DAG
folder edited, so every relative path in it is checked before anything is written or run: no absolute paths,
no ``..`` segments, no NUL bytes, and — where the root exists on this machine — the resolved path (symlinks
followed) must stay under the resolved root.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from airflow_mlpipe.contract.exceptions import PipelineValidationError

_DRIVE = re.compile(r"^[A-Za-z]:")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class UnsafePathError(PipelineValidationError):
    """A path from a spec, manifest or request points outside its root (or is not a path at all)."""

    def __init__(self, field: str, value: object, why: str) -> None:
        self.field = field
        super().__init__(f"{field}: {value!r} {why}")


def relative_path(value: object, field: str, allow_empty: bool = False) -> str:
    """``value`` as a normalised '/'-separated relative path that cannot leave its root, or an error naming
    ``field``."""
    if not isinstance(value, str):
        raise UnsafePathError(field, value, f"must be a relative path string, not {type(value).__name__}")
    if "\x00" in value:
        raise UnsafePathError(field, value, "contains a NUL byte")
    text = value.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise UnsafePathError(field, value, "must be relative to its root, not an absolute path")
    if any(part == ".." for part in text.split("/")):
        raise UnsafePathError(field, value, "must not contain '..' (it would leave its root)")
    norm = posixpath.normpath(text) if text else ""
    if norm in ("", "."):
        if allow_empty:
            return ""
        raise UnsafePathError(field, value, "is empty")
    return norm


def safe_join(root: str | Path, rel: object, field: str) -> Path:
    """``root / rel`` after checking ``rel`` and that the resolved result (symlinks followed) stays in ``root``."""
    root = Path(root)
    norm = relative_path(rel, field)
    target = root / norm
    resolved_root = root.resolve()
    resolved = target.resolve()
    if resolved != resolved_root and not resolved.is_relative_to(resolved_root):
        raise UnsafePathError(field, rel, f"resolves outside {root} (through a symbolic link)")
    return target


def check_digest(value: object, field: str) -> str:
    """A blake3 hex digest (64 lower-case hex characters), the only names content-addressed objects have."""
    if not isinstance(value, str) or not _HEX64.match(value):
        raise UnsafePathError(field, value, "must be a 64-character lower-case hex blake3 digest")
    return value


_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]{1,250}$")


def check_run_id(value: object, field: str) -> str:
    """A run id names files and folders (step runs, snapshots, outputs): Airflow's own run-id characters only."""
    if not isinstance(value, str) or not _RUN_ID.match(value) or set(value) == {"."}:
        raise UnsafePathError(field, value, "must be a run id of letters, digits and _ . ~ : + - (at most 250)")
    return value
