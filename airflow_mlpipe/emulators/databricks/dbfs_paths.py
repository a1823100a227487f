"""Where a DBFS path lives on this machine: DBFS is the folder ``<home>/dbfs``.

Databricks code names the same file three ways: ``dbfs:/data/x.csv`` (Spark, ``dbutils.fs``), ``/data/x.csv``
(the DBFS REST API and ``dbutils.fs``, where bare paths are DBFS paths) and ``/dbfs/data/x.csv`` (the FUSE mount
that plain Python file APIs see). Every DBFS path is kept inside the root: ``..`` cannot climb out of it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

FUSE_PREFIX = "/dbfs"


class DbfsPathError(ValueError):
    """A path that is not a valid DBFS path (relative, or climbing out of the root)."""


def normalize_dbfs_path(path: str) -> str:
    """``dbfs:/a/b``, ``dbfs:///a/b`` or ``/a/b`` as the absolute DBFS path ``/a/b``."""
    if not isinstance(path, str) or not path:
        raise DbfsPathError("path must be a non-empty string")
    value = path
    if value.startswith("dbfs:"):
        value = value[len("dbfs:"):]
        while value.startswith("//"):
            value = value[1:]
    if not value.startswith("/"):
        raise DbfsPathError(f"Path must be absolute: {path}")
    parts: list[str] = []
    for part in PurePosixPath(value).parts[1:]:
        if part == "..":
            if not parts:
                raise DbfsPathError(f"Path escapes the DBFS root: {path}")
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


class DbfsRoot:
    """The local folder behind DBFS and the translations between the three spellings of a path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def local(self, dbfs_path: str) -> Path:
        """The local file behind a DBFS path (``dbfs:/x`` or ``/x``)."""
        normalized = normalize_dbfs_path(dbfs_path)
        return self.root.joinpath(*PurePosixPath(normalized).parts[1:])

    def dbfs_path(self, local: Path) -> str:
        relative = Path(local).resolve().relative_to(self.root)
        return "/" + relative.as_posix() if relative.as_posix() != "." else "/"

    def from_notebook_path(self, path: str | os.PathLike) -> str | os.PathLike:
        """A path a notebook's Python code uses, with ``/dbfs/...`` FUSE paths mapped to the local root.

        Everything else is returned unchanged (it is a local path, as on a Databricks driver).
        """
        if isinstance(path, bytes):
            return path
        text = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(text, str):
            return path
        if text == FUSE_PREFIX or text.startswith(FUSE_PREFIX + "/"):
            return str(self.local(text[len(FUSE_PREFIX):] or "/"))
        if text.startswith("dbfs:"):
            return str(self.local(text))
        return path

    def for_utilities(self, path: str) -> Path:
        """A path given to ``dbutils.fs``: ``dbfs:/x`` and ``/x`` are DBFS, ``file:/x`` is local."""
        if path.startswith("file:"):
            return Path("/" + path[len("file:"):].lstrip("/"))
        if path.startswith(FUSE_PREFIX + "/"):
            return self.local(path[len(FUSE_PREFIX):])
        return self.local(path)

    def for_spark(self, path: str) -> str:
        """A path given to Spark's readers and writers, as a ``file://`` URI when it names DBFS."""
        if isinstance(path, str) and (path.startswith("dbfs:") or path == FUSE_PREFIX
                                      or path.startswith(FUSE_PREFIX + "/")):
            local = self.local(path) if path.startswith("dbfs:") else self.local(path[len(FUSE_PREFIX):] or "/")
            return local.as_uri()
        return path
