"""Content hashes of files and trees on any fsspec filesystem (blake3: several GB/s, so hashing at commit is
nearly free). Generic: the step cache, snapshots and output commits all name content by these hashes."""

from __future__ import annotations

import os
from collections.abc import Iterable
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


def tree_hash(entries: Iterable[tuple[str, str, int]]) -> str:
    """``blake3:<hex>`` of a tree from its files' ``(relative path, blake3 hex, size)``: a Merkle form, so a
    copy can hash each file while streaming it (in parallel) and name the tree without reading it again.

    Relative paths go in, in sorted order, so renames and moves change the hash too.
    """
    h = blake3.blake3()
    for rel, digest, size in sorted(entries, key=lambda e: e[0]):
        h.update(rel.encode() + b"\0" + bytes.fromhex(digest) + int(size).to_bytes(8, "little"))
    return f"blake3:{h.hexdigest()}"


def hash_stream(fh: Any) -> tuple[str, int]:
    """(blake3 hex, size) of what a binary stream yields."""
    h = blake3.blake3()
    size = 0
    while chunk := fh.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def hash_tree(fs: Any, root: str) -> tuple[str, int, int]:
    """Hash every file under ``root`` on an fsspec filesystem: (:func:`tree_hash`, total bytes, file count).

    A single file is a tree of one entry named by its basename. A folder published by a transfer counts only its
    manifest's files (markers are never data; a folder with a transfer pending raises ``IncompleteTransfer``).
    """
    from airflow_mlpipe.data.commit_marker import visible

    root = root.rstrip("/")
    if fs.isfile(root):
        files = [root]
        prefix = root.rsplit("/", 1)[0]
    else:
        files = sorted(p for p in visible(fs, fs.find(root)) if not p.endswith("/"))
        prefix = root
    entries = []
    for path in files:
        with fs.open(path, "rb") as fh:
            digest, size = hash_stream(fh)
        entries.append((path[len(prefix):].lstrip("/"), digest, size))
    return tree_hash(entries), sum(e[2] for e in entries), len(entries)
