"""Which files a dataset definition reads: its path entries matched at read time.

Folders expand to their files (hidden and ``_``-prefixed files skipped, filtered by the format's extensions),
globs are honoured, and files come in sorted path order. Each match keeps its path relative to the common
base of all matches, which is the layout downloads and mounts reproduce.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.commit_marker import committed_files, is_marker, visible_find
from airflow_mlpipe.data.datastore_location import resolve_uri

FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "delimited": (".csv", ".tsv", ".txt", ".psv"),
    "parquet": (".parquet", ".parq", ".pq"),
    "json_lines": (".jsonl", ".json", ".ndjson"),
    "files": (),
}
GLOB_CHARS = re.compile(r"[*?\[]")


def fs_protocols(fs: Any) -> tuple[str, ...]:
    proto = getattr(fs, "protocol", ())
    return (proto,) if isinstance(proto, str) else tuple(proto)


@dataclass
class FileMatch:
    """One file a dataset reads: its filesystem, its path there, the base it was found under and, once the
    whole listing is known, its path relative to the listing's common base."""

    fs: Any
    path: str
    base: str
    direct_file: bool
    rel: str = ""

    @property
    def is_local(self) -> bool:
        return "file" in fs_protocols(self.fs)


@dataclass
class FileListing:
    """The matches of a definition's source; ``base`` is their common folder (None across filesystems) and
    ``single_file`` says the dataset was defined on exactly one file."""

    matches: list[FileMatch]
    base: str | None
    single_file: bool


def entry_label(entry: dict[str, Any]) -> str:
    return entry["uri"] if "uri" in entry else f"{entry['datastore']}:/{entry.get('path', '')}"


def format_extensions(fmt: str, options: dict[str, Any]) -> tuple[str, ...] | None:
    """The extensions a folder of format ``fmt`` is filtered by (None: every file)."""
    ext = options.get("file_extension")
    if ext is None:
        return FORMAT_EXTENSIONS.get(fmt) or None
    if not ext:
        return None
    return tuple(e if e.startswith(".") else "." + e for e in ([ext] if isinstance(ext, str) else ext))


def _committed_only(fs: Any, files: list[str]) -> list[str]:
    """Glob matches minus files a transfer did not commit: each distinct parent folder's markers are checked
    (a folder with a pending transfer raises ``IncompleteTransfer``)."""
    allowed: dict[str, set[str] | None] = {}
    out = []
    for p in files:
        parent = posixpath.dirname(p)
        if parent not in allowed:
            listed = committed_files(fs, parent)
            allowed[parent] = None if listed is None else set(listed)
        if allowed[parent] is None or p in allowed[parent]:
            out.append(p)
    return out


def match_entry(workspace: Any, entry: dict[str, Any], fmt: str, options: dict[str, Any]) -> list[FileMatch]:
    """The files one path entry (``{"uri"}`` or ``{"datastore", "path"}``) stands for, sorted."""
    if "datastore" in entry and workspace is None:
        raise UserErrorException(
            f"Dataset path {entry_label(entry)} names a datastore but the dataset has no workspace; use "
            "Dataset.from_definition(workspace, …) or register the dataset"
        )
    fs, full = resolve_uri(workspace, entry)
    if GLOB_CHARS.search(full):
        prefix = []
        for part in full.split("/"):
            if GLOB_CHARS.search(part):
                break
            prefix.append(part)
        base = "/".join(prefix) or "/"
        found = fs.glob(full, detail=True)
        files = [p for p, info in sorted(found.items()) if info.get("type") == "file" and not is_marker(p)]
        return [FileMatch(fs, p, base, False) for p in _committed_only(fs, files)]
    if not fs.exists(full):
        return []
    if fs.isfile(full):
        return [FileMatch(fs, full, posixpath.dirname(full) or "/", True)]
    exts = format_extensions(fmt, options)
    out = []
    for p in sorted(visible_find(fs, full)):  # a folder a transfer wrote: only what it committed
        name = posixpath.basename(p)
        if fmt != "files" and name.startswith((".", "_")):
            continue
        if exts and not name.lower().endswith(exts):
            continue
        out.append(FileMatch(fs, p, full.rstrip("/") or "/", False))
    return out


def list_files(workspace: Any, source: dict[str, Any], ignore_not_found: bool = False) -> FileListing:
    """Match every path entry of a definition's ``source``; an entry matching nothing is an error unless
    ``ignore_not_found``."""
    fmt = source.get("format", "files")
    options = source.get("options") or {}
    entries = source.get("paths") or []
    matches: list[FileMatch] = []
    for entry in entries:
        found = match_entry(workspace, entry, fmt, options)
        if not found and not ignore_not_found:
            hint = f" with extension {', '.join(format_extensions(fmt, options) or ())}" if fmt != "files" else ""
            raise UserErrorException(f"Dataset path {entry_label(entry)} matches no file{hint}")
        matches.extend(found)
    base = None
    same_fs = len({fs_protocols(m.fs) for m in matches}) <= 1
    if matches and same_fs:
        try:
            base = posixpath.commonpath([m.base for m in matches]) or None
        except ValueError:
            base = None
    for m in matches:
        root = base or m.base
        m.rel = posixpath.relpath(m.path, root) if root not in ("", "/") else m.path.lstrip("/")
    single = len(entries) == 1 and len(matches) == 1 and matches[0].direct_file
    return FileListing(matches, base, single)
