"""Content fingerprints that never re-read unchanged bytes.

A file's blake3 hash is cached in the store against its path and stat signature (size, mtime, ctime, inode,
device: the fields git and Bazel trust). A cache check over a gigabyte of unchanged data costs one ``stat`` per
file and one query; any write is seen even when size and mtime are restored (``os.utime`` cannot set ctime, and
a replaced file has a new inode). A file whose mtime or ctime falls within :data:`RACY_WINDOW_NS` of its hashing
is "racily clean" (git): a later write in the same timestamp tick would leave the stat unchanged, so its cached
hash is not trusted and it is re-hashed until the hash was taken comfortably after the last change.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import blake3
from sqlalchemy import delete, insert, select

from airflow_mlpipe.contract.spec import canonical_json
from airflow_mlpipe.data.hashing import hash_file
from airflow_mlpipe.store.tables_cache import file_hashes

_BATCH = 500


def hash_json(value: Any) -> str:
    return blake3.blake3(canonical_json(value).encode()).hexdigest()


#: timestamp granularity assumed when deciding that a file is racily clean: 2 s covers the coarsest common
#: filesystems (FAT 2 s, ext3/HFS+/some NFS 1 s); finer filesystems only pay a re-hash in the 2 s after a write
RACY_WINDOW_NS = 2_000_000_000

_I64 = 1 << 63


def _i64(value: int) -> int:
    """An unsigned 64-bit stat field (inode, device) as the signed 64-bit integer SQL columns hold."""
    return value - (1 << 64) if value >= _I64 else value


def stat_signature(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """(size, mtime_ns, ctime_ns, inode, device): any difference means the bytes may differ."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, _i64(st.st_ino), _i64(st.st_dev)


def is_racy(mtime_ns: int, ctime_ns: int | None, hashed_at_ns: int | None) -> bool:
    """True when a change in the same timestamp tick as the hashing could have left the stat unchanged."""
    if hashed_at_ns is None:
        return True
    return max(mtime_ns, ctime_ns or 0) > hashed_at_ns - RACY_WINDOW_NS


def _row_signature(row: Any) -> tuple[Any, ...]:
    return row["size"], row["mtime_ns"], row["ctime_ns"], row["inode"], row["device"]


def local_file_hashes(store: Any, paths: list[str]) -> dict[str, str]:
    """Content hash of each local file (absolute paths), re-hashing every file whose stat signature changed or
    whose cached hash is racily clean; unchanged files cost one ``stat``."""
    paths = list(dict.fromkeys(paths))  # two links to one file resolve to the same path: one row
    hashed_at = time.time_ns()  # before the stats: a change after this instant is never masked
    stats = {p: stat_signature(os.stat(p)) for p in paths}
    known: dict[str, Any] = {}
    with store.begin() as conn:
        for i in range(0, len(paths), _BATCH):
            chunk = paths[i:i + _BATCH]
            for row in conn.execute(select(file_hashes).where(file_hashes.c.path.in_(chunk))).mappings():
                known[row["path"]] = row
    out: dict[str, str] = {}
    fresh: list[dict[str, Any]] = []
    for p in paths:
        sig = stats[p]
        row = known.get(p)
        if row is not None and _row_signature(row) == sig and not is_racy(sig[1], sig[2], row["hashed_at_ns"]):
            out[p] = row["hash"]
            continue
        out[p] = hash_file(p)
        if row is not None and row["hash"] == out[p] and is_racy(sig[1], sig[2], hashed_at):
            continue  # still racy and unchanged: rewriting the row would buy nothing
        size, mtime_ns, ctime_ns, inode, device = sig
        fresh.append({"path": p, "size": size, "mtime_ns": mtime_ns, "ctime_ns": ctime_ns, "inode": inode,
                      "device": device, "hashed_at_ns": hashed_at, "hash": out[p]})
    if fresh:
        with store.begin() as conn:
            conn.execute(delete(file_hashes).where(file_hashes.c.path.in_([f["path"] for f in fresh])))
            conn.execute(insert(file_hashes), fresh)
    return out


def tree_manifest(store: Any, folder: str | Path, extra_paths: list[str] | None = None,
                  step: str | None = None) -> dict[str, str]:
    """``{relative path: content hash}`` of a step's source snapshot (ignore files honoured, symbolic links
    followed; ``step`` names the step in errors)."""
    from airflow_mlpipe.runtime.snapshot import snapshot_files

    folder = Path(folder)
    rels = snapshot_files(folder, step)
    for extra in extra_paths or []:
        p = Path(extra) if Path(extra).is_absolute() else folder / extra
        if p.is_file():
            rels.append(os.path.relpath(p, folder))
        elif p.is_dir():
            rels.extend(os.path.relpath(p / rel, folder) for rel in snapshot_files(p, step))  # links followed
    rels = sorted(set(rels))
    hashes = local_file_hashes(store, [str((folder / r).resolve()) for r in rels])
    return {r: hashes[str((folder / r).resolve())] for r in rels}


def dataset_fingerprint(workspace: Any, definition: dict[str, Any]) -> str:
    """Content identity of a dataset: its definition (minus identity fields) and every selected file's content.

    Local files use the cached content hash; remote objects use their ETag/MD5 when the store provides one
    (a content hash already), else size + modification time.
    """
    from airflow_mlpipe.data.dataset_definition import check_definition
    from airflow_mlpipe.data.transforms import selected_files

    core = {k: v for k, v in definition.items() if k not in ("id", "name", "version", "description", "tags")}
    if (definition.get("source") or {}).get("format") == "sql":  # known only by reading it
        from airflow_mlpipe.data.sql_dataset import sql_result_hash

        return hash_json({"definition": core, "result": sql_result_hash(workspace, definition["source"])})
    listing = selected_files(workspace, check_definition(definition), ignore_not_found=True)
    local: list[tuple[str, str]] = []
    remote: list[list[Any]] = []
    for m in listing.matches:
        if m.is_local:
            local.append((m.rel, m.path))
        else:
            info = m.fs.info(m.path)
            # an ETag is opaque (a multipart upload's is not an MD5) but changes with the content; a version id
            # tells apart objects rewritten with the same bytes and ETag by a versioned store
            stamp = (info.get("ETag") or info.get("etag") or info.get("md5") or info.get("mtime")
                     or info.get("LastModified") or info.get("last_modified") or info.get("created"))
            version = info.get("VersionId") or info.get("version_id") or info.get("generation")
            remote.append([m.rel, info.get("size"), str(stamp)] + ([str(version)] if version else []))
    hashes = local_file_hashes(workspace.store, [p for _, p in local]) if local else {}
    files = sorted([[rel, hashes[p]] for rel, p in local] + remote)
    return hash_json({"definition": core, "files": files})
