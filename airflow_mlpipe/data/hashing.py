"""Content hashes of files and trees on any fsspec filesystem (blake3: several GB/s, so hashing at commit is
nearly free). Generic: the step cache, snapshots and output commits all name content by these hashes."""

from __future__ import annotations

import os
from typing import Any

import blake3

CHUNK = 1 << 20


def hash_file(path: str | os.PathLike[str]) -> str:
    """blake3 hex digest of a local file's bytes."""
    h = blake3.blake3()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def copy_hashed(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> str:
    """Copy ``src`` to ``dest`` and return the blake3 hex digest of the bytes actually written.

    A content-addressed store must name an object by what it holds, not by a hash taken earlier from a file
    that may have changed since: hashing the copied bytes is the only check that cannot go stale.
    """
    h = blake3.blake3()
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            fout.write(chunk)
    return h.hexdigest()


def hash_tree(fs: Any, root: str) -> tuple[str, int, int]:
    """Hash every file under ``root`` on an fsspec filesystem: (``blake3:<hex>``, total bytes, file count).

    Relative paths and bytes both go in, in sorted order, so renames and moves change the hash too.
    """
    h = blake3.blake3()
    total = count = 0
    root = root.rstrip("/")
    if fs.isfile(root):
        files = [root]
        prefix = root.rsplit("/", 1)[0]
    else:
        files = sorted(p for p in fs.find(root) if not p.endswith("/"))
        prefix = root
    for path in files:
        rel = path[len(prefix):].lstrip("/")
        h.update(rel.encode() + b"\0")
        size = 0
        with fs.open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
        h.update(size.to_bytes(8, "little"))
        total += size
        count += 1
    return f"blake3:{h.hexdigest()}", total, count
