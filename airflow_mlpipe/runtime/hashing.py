"""Content hashes of committed outputs (blake3: several GB/s, so hashing at commit is nearly free)."""

from __future__ import annotations

from typing import Any

import blake3

CHUNK = 1 << 20


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
