"""Commit markers of folders published on object stores, and the readers' view of them.

An object store cannot publish a folder atomically, so a transfer writes ``<folder>/_mlpipe_pending`` first
(its content is the resume journal), the files at their final keys, ``<folder>/_mlpipe_manifest.json`` last, and
then removes the pending marker. Readers see exactly the manifest's files, refuse a folder whose transfer is in
progress or was killed, and read a folder without markers (not written by us) as is. Both marker names are never
data. A manifest and a pending marker of the same transfer (same ``transfer`` id) mean the manifest was written
and only the clean-up is left: committed. A pending marker of another transfer means a new one is under way.
"""

from __future__ import annotations

import json
import posixpath
from datetime import UTC, datetime
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException

MANIFEST = "_mlpipe_manifest.json"
PENDING = "_mlpipe_pending"
MARKERS = frozenset({MANIFEST, PENDING})
VERSION = 1


class IncompleteTransfer(UserErrorException):
    """A folder whose transfer did not finish (killed) or is still in progress: its files are not readable yet."""

    def __init__(self, folder: str) -> None:
        super().__init__(f"Folder {folder} is not readable: a transfer into it did not finish or is still in "
                         f"progress ({folder}/{PENDING} exists and no manifest of that transfer); rerun the "
                         "transfer (it resumes) or wait for it to finish")
        self.folder = folder


def is_marker(path: str) -> bool:
    """Whether ``path`` names one of the two marker objects (never listed as data)."""
    return posixpath.basename(path.rstrip("/")) in MARKERS


def _read_json(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        raw = fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UserErrorException(f"{path} is not a valid transfer marker: {exc}") from exc
    return data if isinstance(data, dict) else None


def read_manifest(fs: Any, folder: str) -> dict[str, Any] | None:
    return _read_json(fs, f"{folder.rstrip('/')}/{MANIFEST}")


def read_pending(fs: Any, folder: str) -> dict[str, Any] | None:
    """The resume journal of a transfer into ``folder`` (None: no transfer pending). An empty or unreadable
    marker still means pending, with an empty journal."""
    path = f"{folder.rstrip('/')}/{PENDING}"
    try:
        raw = fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _state(fs: Any, folder: str, has_manifest: bool, has_pending: bool) -> dict[str, Any] | None:
    """The manifest that says what ``folder`` holds (None: a plain folder); raises when a transfer is pending."""
    folder = folder.rstrip("/")
    manifest = read_manifest(fs, folder) if has_manifest else None
    if has_pending:
        pending = read_pending(fs, folder)
        if pending is not None and (manifest is None or manifest.get("transfer") != pending.get("transfer")):
            raise IncompleteTransfer(folder)
    return manifest


def committed_files(fs: Any, folder: str) -> list[str] | None:
    """The full paths a committed transfer published in ``folder`` (sorted), None for a plain folder (read it
    as is). Raises :class:`IncompleteTransfer` while a transfer into it is pending or after one was killed."""
    folder = folder.rstrip("/")
    manifest = _state(fs, folder, fs.exists(f"{folder}/{MANIFEST}"), fs.exists(f"{folder}/{PENDING}"))
    if manifest is None:
        return None
    return sorted(f"{folder}/{rel}" for rel in manifest.get("files", {}))


def visible(fs: Any, listing: dict[str, Any] | list[str]) -> Any:
    """Filter a recursive listing (``fs.find`` output, list or ``detail=True`` dict) to what readers may see:
    marker objects dropped, folders with a manifest reduced to its files, a folder with a pending transfer
    raising :class:`IncompleteTransfer`. Only folders with markers cost a request (the manifest read)."""
    paths = list(listing)
    folders: dict[str, set[str]] = {}
    for p in paths:
        name = posixpath.basename(p)
        if name in MARKERS:
            folders.setdefault(posixpath.dirname(p), set()).add(name)
    allowed: dict[str, set[str]] = {}
    for folder, names in folders.items():
        manifest = _state(fs, folder, MANIFEST in names, PENDING in names)
        if manifest is not None:
            allowed[folder] = {f"{folder}/{rel}" for rel in manifest.get("files", {})}

    def keep(p: str) -> bool:
        if posixpath.basename(p) in MARKERS:
            return False
        for folder, files in allowed.items():
            if p.startswith(folder + "/") and p not in files:
                return False
        return True

    if isinstance(listing, dict):
        return {p: info for p, info in listing.items() if keep(p)}
    return [p for p in paths if keep(p)]


def visible_find(fs: Any, root: str, detail: bool = False) -> Any:
    """``fs.find(root, detail=…)`` as readers see it (see :func:`visible`): the drop-in for listing a folder
    that a transfer may have written."""
    return visible(fs, fs.find(root, detail=detail))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def write_pending(fs: Any, folder: str, journal: dict[str, Any]) -> None:
    fs.pipe_file(f"{folder.rstrip('/')}/{PENDING}", json.dumps(journal, sort_keys=True).encode())


def write_manifest(fs: Any, folder: str, transfer: str, files: dict[str, dict[str, Any]],
                   source: dict[str, Any]) -> None:
    """Publish ``folder``: ``files`` is ``{rel: {"size", "hash"}}``; written last, after every file."""
    doc = {"version": VERSION, "transfer": transfer, "files": files, "source": source, "committed_at": now_iso()}
    fs.pipe_file(f"{folder.rstrip('/')}/{MANIFEST}", json.dumps(doc, sort_keys=True).encode())


def remove_pending(fs: Any, folder: str) -> None:
    try:
        fs.rm_file(f"{folder.rstrip('/')}/{PENDING}")
    except FileNotFoundError:
        pass
