"""Content fingerprints that never re-read unchanged bytes.

A file's blake3 hash is cached in the store against (path, size, mtime_ns): a cache check over a gigabyte of
unchanged data costs one ``stat`` per file and one query, and any write (new content, same path) is seen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import blake3
from sqlalchemy import delete, insert, select

from airflow_mlpipe.runtime.hashing import CHUNK
from airflow_mlpipe.spec import canonical_json
from airflow_mlpipe.store.tables_cache import file_hashes

_BATCH = 500


def hash_bytes(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def hash_json(value: Any) -> str:
    return blake3.blake3(canonical_json(value).encode()).hexdigest()


def _hash_file(path: str) -> str:
    h = blake3.blake3()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def local_file_hashes(store: Any, paths: list[str]) -> dict[str, str]:
    """Content hash of each local file (absolute paths), hashing only files whose size/mtime changed."""
    stats: dict[str, os.stat_result] = {}
    for p in paths:
        stats[p] = os.stat(p)
    known: dict[str, tuple[int, int, str]] = {}
    with store.begin() as conn:
        for i in range(0, len(paths), _BATCH):
            chunk = paths[i:i + _BATCH]
            for row in conn.execute(select(file_hashes).where(file_hashes.c.path.in_(chunk))).mappings():
                known[row["path"]] = (row["size"], row["mtime_ns"], row["hash"])
    out: dict[str, str] = {}
    fresh: list[dict[str, Any]] = []
    for p in paths:
        st = stats[p]
        cached = known.get(p)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            out[p] = cached[2]
        else:
            out[p] = _hash_file(p)
            fresh.append({"path": p, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "hash": out[p]})
    if fresh:
        with store.begin() as conn:
            conn.execute(delete(file_hashes).where(file_hashes.c.path.in_([f["path"] for f in fresh])))
            conn.execute(insert(file_hashes), fresh)
    return out


def tree_manifest(store: Any, folder: str | Path, extra_paths: list[str] | None = None) -> dict[str, str]:
    """``{relative path: content hash}`` of a step's source snapshot (ignore files honoured)."""
    from airflow_mlpipe.runtime.snapshot import snapshot_files

    folder = Path(folder)
    rels = snapshot_files(folder)
    for extra in extra_paths or []:
        p = Path(extra) if Path(extra).is_absolute() else folder / extra
        if p.is_file():
            rels.append(os.path.relpath(p, folder))
        elif p.is_dir():
            rels.extend(os.path.relpath(Path(root) / f, folder) for root, _, files in os.walk(p) for f in files)
    rels = sorted(set(rels))
    hashes = local_file_hashes(store, [str((folder / r).resolve()) for r in rels])
    return {r: hashes[str((folder / r).resolve())] for r in rels}


def dataset_fingerprint(workspace: Any, definition: dict[str, Any]) -> str:
    """Content identity of a dataset: its definition (minus identity fields) and every selected file's content.

    Local files use the cached content hash; remote objects use their ETag/MD5 when the store provides one
    (a content hash already), else size + modification time.
    """
    from airflow_mlpipe.sdk.dataset import Dataset

    ds = Dataset.from_definition(workspace, definition)
    listing = ds._listing(ignore_not_found=True)
    local: list[tuple[str, str]] = []
    remote: list[list[Any]] = []
    for m in listing.matches:
        if m.is_local:
            local.append((m.rel, m.path))
        else:
            info = m.fs.info(m.path)
            stamp = (info.get("ETag") or info.get("etag") or info.get("md5") or info.get("mtime")
                     or info.get("LastModified") or info.get("last_modified") or info.get("created"))
            remote.append([m.rel, info.get("size"), str(stamp)])
    hashes = local_file_hashes(workspace.store, [p for _, p in local]) if local else {}
    core = {k: v for k, v in definition.items() if k not in ("id", "name", "version", "description", "tags")}
    files = sorted([[rel, hashes[p]] for rel, p in local] + remote)
    return hash_json({"definition": core, "files": files})
