"""Moving files between local disk and a datastore: atomic local writes, uploads that skip what is already
there, downloads that keep the layout. Generic over fsspec, so the SDK's ``Datastore.upload``/``download``,
dataset downloads and step-input materialisation share one implementation.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.commit_marker import is_marker, visible_find

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def strip_target_path(target_path: str | None) -> str:
    """v1: leading ``./``, ``../`` and ``/`` sequences are dropped; backslashes become slashes."""
    if not target_path:
        return ""
    path = str(target_path).replace("\\", "/")
    path = re.sub(r"^(\.{1,2}/|/)+", "", path)
    return "" if path in (".", "..") else path.rstrip("/")


def _same_stream(a: Any, b: Any) -> bool:
    while True:
        ca, cb = a.read(CHUNK), b.read(CHUNK)
        if ca != cb:
            return False
        if not ca:
            return True


def same_content(local: str, fs: Any, path: str) -> bool:
    """Whether local file ``local`` and ``path`` on ``fs`` hold the same bytes (cheap size check first)."""
    try:
        if fs.size(path) != os.path.getsize(local):
            return False
        with open(local, "rb") as a, fs.open(path, "rb") as b:
            return _same_stream(a, b)
    except OSError:  # FileNotFoundError included
        return False


def atomic_local_copy(read: Any, dst: str) -> None:
    """Copy a readable binary stream to ``dst`` through a temp file in the same folder and ``os.replace``."""
    folder = os.path.dirname(dst) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dst)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(read, out, CHUNK)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def copy_to_local(fs: Any, path: str, local: str, overwrite: bool) -> None:
    """Copy ``path`` on ``fs`` to ``local``; an identical existing file is kept, a different one needs
    ``overwrite``."""
    if os.path.exists(local):
        if same_content(local, fs, path):
            return
        if not overwrite:
            raise UserErrorException(f"{local} already exists with different content; pass overwrite=True")
    with fs.open(path, "rb") as handle:
        atomic_local_copy(handle, local)


@dataclass
class TransferReport:
    """What an upload did; ``failures`` name each file that could not be written and why."""

    uploaded: int = 0
    skipped: int = 0
    unchanged: int = 0
    failures: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"uploaded": self.uploaded, "skipped": self.skipped, "unchanged": self.unchanged}


def upload_plan(location: Any, files: list[str], relative_root: str | None, target: str) -> list[tuple[str, str]]:
    """``(local file, path on the datastore)`` for each file: ``target/<path relative to relative_root>``."""
    root = os.path.abspath(relative_root) if relative_root else os.path.commonpath(
        [os.path.dirname(p) for p in files])
    plan: list[tuple[str, str]] = []
    for path in files:
        rel = os.path.relpath(path, root)
        if rel.startswith(".."):
            raise UserErrorException(f"Datastore.upload_files: {path!r} is not under relative_root {root!r}")
        rel = rel.replace(os.sep, "/")
        plan.append((path, location.full_path(f"{target}/{rel}" if target else rel)))
    return plan


def upload(location: Any, plan: list[tuple[str, str]], overwrite: bool) -> TransferReport:
    """Write each planned file to ``location`` (a datastore location). ``overwrite=False`` skips existing
    targets; ``overwrite=True`` rewrites only targets whose bytes differ. Errors are collected per file."""
    fs = location.fs
    report = TransferReport()
    for src, dst in plan:
        try:
            if fs.exists(dst):
                if not overwrite:
                    report.skipped += 1
                    continue
                if same_content(src, fs, dst):
                    report.unchanged += 1
                    continue
            if location.is_local:
                with open(src, "rb") as handle:
                    atomic_local_copy(handle, dst)
            else:
                parent = dst.rsplit("/", 1)[0]
                if parent:
                    fs.makedirs(parent, exist_ok=True)
                fs.put_file(src, dst)
            report.uploaded += 1
        except Exception as exc:  # collected so that one bad file does not hide the others
            report.failures.append(f"{src} -> {dst}: {exc}")
    return report


def list_prefix(location: Any, prefix: str | None) -> list[str]:
    """Files whose datastore-relative name starts with ``prefix`` (a folder or a name prefix). Folders a
    transfer wrote show only what it committed (markers never; a pending one raises ``IncompleteTransfer``)."""
    fs = location.fs
    if not prefix:
        base = location.root
        return sorted(visible_find(fs, base)) if fs.exists(base) else []
    full = location.full_path(prefix)
    if fs.isfile(full):
        return [] if is_marker(full) else [full]
    if fs.isdir(full):
        return sorted(visible_find(fs, full))
    parent = full.rsplit("/", 1)[0]
    if not fs.exists(parent):
        return []
    return sorted(p for p in visible_find(fs, parent) if p.startswith(full))


def download(location: Any, target_path: str, prefix: str | None, overwrite: bool) -> tuple[int, int]:
    """Write ``target_path/<name on datastore>`` (prefix kept); returns (files written, existing skipped)."""
    fs = location.fs
    root = location.root.rstrip("/")
    count = skipped = 0
    for remote in list_prefix(location, strip_target_path(prefix) or None):
        rel = remote[len(root):].lstrip("/") if remote.startswith(root) else remote.rsplit("/", 1)[-1]
        local = os.path.join(target_path, *rel.split("/"))
        if os.path.exists(local) and not overwrite:
            skipped += 1
            continue
        with fs.open(remote, "rb") as handle:
            atomic_local_copy(handle, local)
        count += 1
    return count, skipped
