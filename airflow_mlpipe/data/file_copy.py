"""The file-copy engine of DataTransferStep: a file or a folder from any fsspec store to any other, streamed in
chunks, folders in parallel, the tree hash computed from the bytes as they pass (never read again), resumable
after a kill, and never visible half-done.

Publication: a LOCAL folder is written into ``<dst>.partial-<token>`` (token fixed by the destination, so a rerun
finds it) and swapped into place with an atomic exchange; a local file via a temp file and ``os.replace``. An
OBJECT-STORE folder gets ``_mlpipe_pending`` first (its content is the resume journal), its files at their final
keys, ``_mlpipe_manifest.json`` last (see :mod:`commit_marker`); a single object is one upload that leaves nothing
when it fails. A rerun skips a file only on evidence: the journal or the previous manifest recorded the same
source identity (size, ETag, version, mtime) and the destination still has a file of the recorded size.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import posixpath
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import blake3

from airflow_mlpipe.contract.exceptions import AzureMLException, UserErrorException
from airflow_mlpipe.data import commit_marker as cm
from airflow_mlpipe.data.hashing import tree_hash

CHUNK = 8 << 20
JOURNAL_EVERY_FILES = 16
JOURNAL_EVERY_S = 2.0
MAX_PARTS = 9000  # S3 allows 10 000 parts: big files get bigger blocks
MIN_BLOCK = 5 << 20  # S3's smallest multipart part
Entry = tuple[str, str, int]


class TransferError(AzureMLException, OSError):
    """A copy failed while reading the source or writing the destination; the message names both paths."""


class _Stopped(Exception):
    """Raised inside a worker when the copy is being aborted."""


class _FromProgress(Exception):
    """Carries an exception raised by the caller's ``progress`` out of the copy unwrapped."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


@dataclass(frozen=True)
class SourceFile:
    """One file to copy: path relative to the source root, full path and what identifies its version."""

    rel: str
    full: str
    size: int
    etag: str | None = None
    version: str | None = None
    mtime: str | None = None

    def identity(self) -> list[Any]:
        return [self.size, self.etag, self.version, self.mtime]


@dataclass
class CopyResult:
    """What a copy published: counts, bytes, and the tree hash (equal to ``hash_tree`` of the destination)."""

    files: int
    bytes: int
    copied: int
    skipped: int
    content_hash: str
    entries: list[Entry] = field(default_factory=list)


def is_local(fs: Any) -> bool:
    proto = getattr(fs, "protocol", ())
    return "file" in ((proto,) if isinstance(proto, str) else tuple(proto))


def _why(exc: BaseException) -> str:
    """An exception as a message, with a hint when the store refused the credentials."""
    name, text = type(exc).__name__, " ".join(str(exc).split())
    denied = isinstance(exc, PermissionError) or "Authentication" in name or any(
        word in text for word in ("AccessDenied", "AuthorizationFailure", "AuthenticationFailed", "authenticate"))
    return f"{name}: {text}" + (" (access denied: check the credentials of the datastore)" if denied else "")


def url(fs: Any, path: str) -> str:
    proto = getattr(fs, "protocol", "file")
    return f"{proto if isinstance(proto, str) else proto[0]}://{path}"


# ---------------------------------------------------------------------------------------------- source
def _identity_fields(info: dict[str, Any]) -> dict[str, Any]:
    etag = info.get("ETag") or info.get("etag")
    version = info.get("VersionId") or info.get("version_id")
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    if hasattr(mtime, "isoformat"):
        mtime = mtime.isoformat()
    return {"etag": None if etag is None else str(etag), "version": None if version is None else str(version),
            "mtime": None if mtime is None else str(mtime)}


def _listing(fs: Any, path: str, reference_type: str | None) -> tuple[str, list[SourceFile]]:
    if reference_type not in (None, "file", "directory"):
        raise UserErrorException(f"DataTransferStep: reference_type must be 'file', 'directory' or None, "
                                 f"not {reference_type!r} (source {url(fs, path)})")
    path = fs._strip_protocol(path).rstrip("/") or "/"
    where = url(fs, path)
    try:
        try:
            info = fs.info(path)
        except FileNotFoundError:
            raise UserErrorException(f"DataTransferStep source {where} does not exist") from None
        kind = "file" if info.get("type") == "file" else "directory"
        if reference_type and reference_type != kind:
            raise UserErrorException(f"DataTransferStep source {where} is a {kind}, but reference_type is "
                                     f"{reference_type!r}")
        if kind == "file":
            return kind, [SourceFile(posixpath.basename(path), path, int(info["size"]), **_identity_fields(info))]
        found = cm.visible(fs, fs.find(path, detail=True))
    except AzureMLException:
        raise
    except Exception as exc:
        raise TransferError(f"DataTransferStep cannot read source {where}: {_why(exc)}") from exc
    files = [SourceFile(p[len(path):].lstrip("/"), p, int(i["size"]), **_identity_fields(i))
             for p, i in sorted(found.items()) if i.get("type", "file") == "file"]
    return kind, files


def source_listing(fs: Any, path: str, reference_type: str | None) -> list[SourceFile]:
    """The files to copy from ``path`` (a file, or a folder's files sorted by relative path; a folder written by
    a transfer counts only its committed files). ``reference_type`` None detects: an existing file is a file."""
    return _listing(fs, path, reference_type)[1]


# ---------------------------------------------------------------------------------------------- one file
class _Streamer:
    """Streams one file at a time from ``src_fs`` to ``dst_fs`` in chunks, hashing what passes."""

    def __init__(self, src_fs: Any, dst_fs: Any, chunk: int, stop: threading.Event) -> None:
        self.src_fs, self.dst_fs, self.chunk, self.stop = src_fs, dst_fs, chunk, stop
        self.src_local = is_local(src_fs)

    def chunks(self, f: SourceFile) -> Iterator[bytes]:
        done = 0
        if self.src_local:
            with open(f.full, "rb") as fh:
                while data := fh.read(self.chunk):
                    done += len(data)
                    yield data
        else:
            while done < f.size or (f.size == 0 and done == 0):
                if self.stop.is_set():
                    raise _Stopped
                end = min(done + self.chunk, f.size)
                data = self.src_fs.cat_file(f.full, start=done, end=end) if f.size else b""
                if len(data) != end - done:
                    break
                done += len(data)
                yield data
                if f.size == 0:
                    break
        if done != f.size:
            raise TransferError(f"{url(self.src_fs, f.full)} changed during the copy ({f.size} bytes listed, "
                                f"{done} read)")

    def to_local(self, f: SourceFile, target: str, tmp: str | None = None) -> tuple[str, int]:
        """Write ``target`` through ``tmp`` (default: a random name beside it) and an atomic replace."""
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        tmp = tmp or f"{target}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as out:
                digest, size = self.pump(f, out)
            _install(tmp, target)
        except BaseException:
            _remove(tmp)
            raise
        return digest, size

    def pump(self, f: SourceFile, out: Any) -> tuple[str, int]:
        """Write ``f``'s chunks to ``out``, hashing them; stops between chunks when the copy is stopped."""
        h = blake3.blake3()
        size = 0
        for data in self.chunks(f):
            if self.stop.is_set():
                raise _Stopped
            h.update(data)
            out.write(data)
            size += len(data)
        return h.hexdigest(), size

    def to_remote(self, f: SourceFile, key: str) -> tuple[str, int]:
        """One PUT for a file of at most a chunk; a streamed block upload beyond, aborted (never committed) if
        anything fails, so a failed upload leaves no object."""
        if f.size <= self.chunk:
            data = b"".join(self.chunks(f))
            digest = blake3.blake3(data).hexdigest()
            if self.stop.is_set():
                raise _Stopped
            self.dst_fs.pipe_file(key, data)
            return digest, len(data)
        block = max(self.chunk, MIN_BLOCK, -(-f.size // MAX_PARTS))
        out = self.dst_fs.open(key, "wb", block_size=block)
        try:
            digest, size = self.pump(f, out)
        except BaseException:
            _abort(out)
            raise
        out.close()
        return digest, size


def _abort(out: Any) -> None:
    """Throw a write file object away without committing it (``close`` would publish the partial object)."""
    try:
        out.discard()  # s3fs: aborts the multipart upload; adlfs: staged blocks stay uncommitted (invisible)
    finally:
        out.closed = True
        out.buffer = None


_libc = ctypes.CDLL(None, use_errno=True)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def _install(new: str, final: str) -> None:
    """Put ``new`` at ``final`` in one step, whatever ``final`` is now (nothing, a file or a folder)."""
    if not os.path.lexists(final) or (not os.path.isdir(final) and not os.path.isdir(new)):
        os.replace(new, final)
        return
    if _exchange(new, final):
        _remove(new)  # the old content, now at the staging name
        return
    old = f"{final}.old-{uuid.uuid4().hex[:8]}"
    os.rename(final, old)
    os.rename(new, final)
    _remove(old)


# ---------------------------------------------------------------------------------------------- the run
class _Run:
    """Copies a list of files with a pool of threads, keeping a journal and reporting progress."""

    def __init__(self, streamer: _Streamer, workers: int, progress: Callable[[str], Any] | None,
                 progress_every: float, total: int, flush: Callable[[dict[str, Any]], None]) -> None:
        self.streamer, self.workers, self.flush_journal = streamer, max(1, workers), flush
        self.progress, self.progress_every = progress, progress_every
        self.total, self.done_files, self.done_bytes, self.copied_bytes = total, 0, 0, 0
        self.journal: dict[str, dict[str, Any]] = {}
        self.dirty = 0
        self.started = self.last_flush = self.last_progress = time.monotonic()

    def record(self, f: SourceFile, digest: str, size: int, copied: bool) -> None:
        self.journal[f.rel] = {"size": size, "hash": digest, "src": f.identity()}
        self.done_files += 1
        self.done_bytes += size
        if copied:
            self.copied_bytes += size
            self.dirty += 1

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.dirty and (force or self.dirty >= JOURNAL_EVERY_FILES or now - self.last_flush >= JOURNAL_EVERY_S):
            self.flush_journal(self.journal)
            self.dirty, self.last_flush = 0, now

    def tick(self, n_files: int) -> None:
        now = time.monotonic()
        if self.progress is None or now - self.last_progress < self.progress_every:
            self.flush()
            return
        self.flush(force=True)  # the journal is never behind what progress reported
        rate = self.copied_bytes / max(now - self.started, 1e-9) / 1e6
        try:
            self.progress(f"{self.done_files}/{n_files} files, {self.done_bytes / 1e6:.1f}/{self.total / 1e6:.1f} "
                          f"MB done, {rate:.1f} MB/s")
        except Exception as exc:
            raise _FromProgress(exc) from exc
        self.last_progress = now

    def run(self, todo: list[tuple[SourceFile, str]], one: Callable[[SourceFile, str], tuple[str, int]],
            n_files: int) -> None:
        items = iter(todo)
        running: dict[Future[tuple[str, int]], SourceFile] = {}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="mlpipe-copy") as pool:
            try:
                while True:
                    while len(running) < 2 * self.workers and (nxt := next(items, None)) is not None:
                        running[pool.submit(one, *nxt)] = nxt[0]
                    if not running:
                        break
                    done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                    for fut in done:
                        self.record(running.pop(fut), *fut.result(), copied=True)
                    self.tick(n_files)
            except BaseException:
                self.streamer.stop.set()
                for fut in running:
                    fut.cancel()
                wait(running)
                for fut, f in running.items():  # what finished still counts for the rerun
                    if not fut.cancelled() and fut.exception() is None:
                        self.record(f, *fut.result(), copied=True)
                try:
                    self.flush(force=True)
                except Exception:  # the original error matters more; the journal is only an optimisation
                    pass
                raise


def _wrap(streamer: _Streamer, write: Callable[[SourceFile, str], tuple[str, int]], dst_fs: Any
          ) -> Callable[[SourceFile, str], tuple[str, int]]:
    def one(f: SourceFile, target: str) -> tuple[str, int]:
        try:
            return write(f, target)
        except (_Stopped, AzureMLException):
            raise
        except Exception as exc:
            raise TransferError(f"copying {url(streamer.src_fs, f.full)} to {url(dst_fs, target)} failed: "
                                f"{_why(exc)}") from exc
    return one


def _same_source(doc: dict[str, Any] | None, source: dict[str, Any]) -> bool:
    recorded = (doc or {}).get("source") or {}
    return bool(doc) and recorded.get("url") == source["url"] and recorded.get("id") == source["id"]


def _evidence(doc: dict[str, Any] | None, source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{rel: {size, hash, src}}`` a journal or manifest vouches for, if it was written for this source."""
    if doc is None or not _same_source(doc, source):
        return {}
    if "src" in next(iter(doc.get("files", {}).values()), {}):  # a journal
        return doc["files"]
    ids = doc["source"].get("files", {})
    return {rel: {**e, "src": ids[rel]} for rel, e in doc.get("files", {}).items() if rel in ids}


def _split(files: list[SourceFile], evidence: dict[str, dict[str, Any]], size_at: Callable[[str], int | None]
           ) -> tuple[list[SourceFile], dict[str, dict[str, Any]]]:
    todo, skipped = [], {}
    for f in files:
        e = evidence.get(f.rel)
        if e and e.get("src") == f.identity() and size_at(f.rel) == e.get("size"):
            skipped[f.rel] = e
        else:
            todo.append(f)
    return todo, skipped


def _result(entries: list[Entry], copied: int, skipped: int) -> CopyResult:
    return CopyResult(len(entries), sum(e[2] for e in entries), copied, skipped, tree_hash(entries),
                      sorted(entries))


def copy(src_fs: Any, src_path: str, dst_fs: Any, dst_path: str, *, reference_type: str | None = None,
         workers: int = 8, progress: Callable[[str], Any] | None = None, chunk: int = CHUNK,
         source_id: dict[str, Any] | None = None, progress_every: float = 2.0) -> CopyResult:
    """Copy a file or a folder from ``src_path`` on ``src_fs`` to ``dst_path`` on ``dst_fs`` (see the module
    docstring for atomicity and resume). ``source_id`` (e.g. datastore and path) is recorded with the
    destination, and a rerun only trusts what was recorded for the same source. ``progress(message)`` is called
    at most every ``progress_every`` seconds; an exception from it aborts the copy (resumable)."""
    kind, files = _listing(src_fs, src_path, reference_type)
    src = src_fs._strip_protocol(src_path).rstrip("/") or "/"
    dst = dst_fs._strip_protocol(dst_path).rstrip("/")
    if not dst:
        raise UserErrorException(f"DataTransferStep destination path {dst_path!r} is empty")
    if is_local(dst_fs):
        dst = os.path.abspath(dst)
        if is_local(src_fs) and (dst == src or dst.startswith(src.rstrip("/") + "/")):
            raise UserErrorException(f"DataTransferStep destination {dst} is inside its source {src}")
    source = {"url": url(src_fs, src), "id": source_id}
    streamer = _Streamer(src_fs, dst_fs, chunk, threading.Event())
    token = "x" + hashlib.sha1(url(dst_fs, dst).encode()).hexdigest()[:12]
    run_args = (workers, progress, progress_every, sum(f.size for f in files))
    try:
        if kind == "file":
            f = files[0]
            if is_local(dst_fs):
                digest, size = streamer.to_local(f, dst, tmp=f"{dst}.partial-{token}")
            else:
                under = [p for p in _find(dst_fs, dst + "/") if p.startswith(dst + "/")]
                digest, size = _wrap(streamer, streamer.to_remote, dst_fs)(f, dst)
                if under:
                    dst_fs.rm(under)
            return _result([(posixpath.basename(dst), digest, size)], 1, 0)
        if is_local(dst_fs):
            return _to_local_folder(streamer, files, dst, f"{dst}.partial-{token}", source, run_args)
        return _to_remote_folder(streamer, files, dst, source, run_args)
    except _FromProgress as exc:
        raise exc.original from None
    except AzureMLException:
        raise
    except Exception as exc:
        raise TransferError(f"DataTransferStep copy {url(src_fs, src)} -> {url(dst_fs, dst)} failed: "
                            f"{_why(exc)}") from exc


def _find(fs: Any, path: str, detail: bool = False) -> Any:
    try:
        return fs.find(path, detail=detail)
    except FileNotFoundError:
        return {} if detail else []


def _journal_doc(transfer: str, source: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    return {"version": cm.VERSION, "transfer": transfer, "source": {k: source[k] for k in ("url", "id")},
            "updated_at": cm.now_iso(), "files": files}


def _to_local_folder(streamer: _Streamer, files: list[SourceFile], dst: str, staging: str,
                     source: dict[str, Any], run_args: tuple[Any, ...]) -> CopyResult:
    os.makedirs(staging, exist_ok=True)
    lock = os.open(staging, os.O_RDONLY)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserErrorException(f"another copy into {dst} is running (it holds {staging})") from None
        journal_path = os.path.join(staging, cm.PENDING)
        try:
            with open(journal_path, "rb") as fh:
                previous = json.load(fh)
        except (OSError, ValueError):
            previous = None

        def size_at(rel: str) -> int | None:
            p = os.path.join(staging, *rel.split("/"))
            return os.path.getsize(p) if os.path.isfile(p) else None

        todo, skipped = _split(files, _evidence(previous, source), size_at)
        transfer = uuid.uuid4().hex

        def flush(journal: dict[str, Any]) -> None:
            tmp = f"{journal_path}.tmp"
            with open(tmp, "w") as fh:
                json.dump(_journal_doc(transfer, source, journal), fh)
            os.replace(tmp, journal_path)

        run = _Run(streamer, *run_args, flush=flush)
        for f in files:
            if f.rel in skipped:
                run.record(f, skipped[f.rel]["hash"], skipped[f.rel]["size"], copied=False)
        flush(run.journal)
        one = _wrap(streamer, streamer.to_local, None)
        run.run([(f, os.path.join(staging, *f.rel.split("/"))) for f in todo], one, len(files))
        planned = {os.path.join(staging, *f.rel.split("/")) for f in files}
        for dirpath, _, names in os.walk(staging, topdown=False):  # leftovers of killed runs, the journal
            for name in names:
                if os.path.join(dirpath, name) not in planned:
                    os.unlink(os.path.join(dirpath, name))
            if dirpath != staging and not os.listdir(dirpath):
                os.rmdir(dirpath)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        _install(staging, dst)
    finally:
        os.close(lock)
    entries = [(rel, e["hash"], e["size"]) for rel, e in run.journal.items()]
    return _result(entries, len(todo), len(skipped))


def _to_remote_folder(streamer: _Streamer, files: list[SourceFile], dst: str, source: dict[str, Any],
                      run_args: tuple[Any, ...]) -> CopyResult:
    fs = streamer.dst_fs
    existing = _find(fs, dst, detail=True)
    names = {posixpath.basename(p) for p in existing if posixpath.dirname(p) == dst}
    manifest = cm.read_manifest(fs, dst) if cm.MANIFEST in names else None
    pending = cm.read_pending(fs, dst) if cm.PENDING in names else None
    # a pending transfer from another source may have overwritten files the manifest vouches for
    trust_manifest = pending is None or _same_source(pending, source)
    evidence = {**(_evidence(manifest, source) if trust_manifest else {}), **_evidence(pending, source)}

    def size_at(rel: str) -> int | None:
        info = existing.get(f"{dst}/{rel}")
        return None if info is None else int(info["size"])

    todo, skipped = _split(files, evidence, size_at)
    planned = {f.rel for f in files}
    if manifest is not None and pending is None and not todo and set(manifest.get("files", {})) == planned:
        entries = [(rel, e["hash"], e["size"]) for rel, e in skipped.items()]
        return _result(entries, 0, len(skipped))  # already published from this very source
    transfer = uuid.uuid4().hex

    def flush(journal: dict[str, Any]) -> None:
        cm.write_pending(fs, dst, _journal_doc(transfer, source, journal))

    run = _Run(streamer, *run_args, flush=flush)
    for f in files:
        if f.rel in skipped:
            run.record(f, skipped[f.rel]["hash"], skipped[f.rel]["size"], copied=False)
    flush(run.journal)  # pending first: from here on readers refuse the folder
    one = _wrap(streamer, streamer.to_remote, fs)
    run.run([(f, f"{dst}/{f.rel}") for f in todo], one, len(files))
    ids = {f.rel: f.identity() for f in files}
    published = {rel: {"size": e["size"], "hash": e["hash"]} for rel, e in run.journal.items()}
    cm.write_manifest(fs, dst, transfer, published, {"url": source["url"], "id": source["id"], "files": ids})
    cm.remove_pending(fs, dst)
    extras = [p for p in existing if not cm.is_marker(p) and p[len(dst) + 1:] not in planned]
    if extras:  # invisible since the manifest; removed so they cannot surface when the folder is rewritten
        fs.rm(extras)
    entries = [(rel, e["hash"], e["size"]) for rel, e in run.journal.items()]
    return _result(entries, len(todo), len(skipped))
