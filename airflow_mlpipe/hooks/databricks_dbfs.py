"""The worker-side I/O of a DatabricksStep: snapshot uploads to DBFS and content hashes of remote code.

The Databricks provider has no DBFS or Workspace calls, so the REST endpoints are called through the
provider's ``DatabricksHook._do_api_call`` (it brings the connection's auth, host, schema and port, and the
retries). A snapshot goes to a content-addressed folder ``<dbfs_root>/<tree digest>/``: a step whose sources did
not change finds the folder complete (one ``get-status`` on its marker) and uploads nothing. The hashes of a
DBFS file or a workspace notebook use the same blake3 hex digest as a local source manifest, so a remote
script's hash goes into the cache key exactly as a local file's would.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from airflow_mlpipe.contract.paths import relative_path
from airflow_mlpipe.contract.spec import canonical_json

if TYPE_CHECKING:
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

#: the DBFS limit of one ``put`` body, one ``add-block`` block and one ``read``
BLOCK = 1 << 20
MARKER = ".mlpipe-complete"
DEFAULT_ROOT = "dbfs:/mlpipe/snapshots"

GET_STATUS = ("GET", "2.0/dbfs/get-status")
READ = ("GET", "2.0/dbfs/read")
PUT = ("POST", "2.0/dbfs/put")
CREATE = ("POST", "2.0/dbfs/create")
ADD_BLOCK = ("POST", "2.0/dbfs/add-block")
CLOSE = ("POST", "2.0/dbfs/close")
WORKSPACE_EXPORT = ("GET", "2.0/workspace/export")


class DbfsError(RuntimeError):
    """A DBFS or Workspace operation of a DatabricksStep failed (missing file, changed source, bad path)."""


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _is_missing(err: Exception) -> bool:
    """A ``RESOURCE_DOES_NOT_EXIST`` answer (404), as opposed to an outage or a refused request."""
    return getattr(err, "http_status_code", None) == 404 or "RESOURCE_DOES_NOT_EXIST" in str(err)


def _api_error() -> type[Exception]:
    # imported here: importing this module (e.g. to name DbfsError) must not load the provider
    from airflow.providers.databricks.exceptions import DatabricksApiError

    return DatabricksApiError


def api_path(dbfs_path: str, what: str = "DBFS path") -> str:
    """``dbfs:/a/b`` or ``/a/b`` as the absolute path the DBFS REST API takes (``/a/b``), refusing ``..``."""
    if not isinstance(dbfs_path, str) or not dbfs_path:
        raise DbfsError(f"{what} must be a non-empty DBFS path like 'dbfs:/folder/file', not {dbfs_path!r}")
    value = dbfs_path[len("dbfs:"):] if dbfs_path.startswith("dbfs:") else dbfs_path
    if not value.startswith("/"):
        raise DbfsError(f"{what} {dbfs_path!r} must be absolute, like 'dbfs:/folder/file'")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts or "\x00" in value:
        raise DbfsError(f"{what} {dbfs_path!r} must not contain '..' or NUL bytes")
    return "/" + "/".join(parts)


def tree_digest(files: dict[str, str]) -> str:
    """The name of a snapshot's DBFS folder: stable over the sorted manifest (paths and content hashes), so the
    same sources on any machine land in the same folder and changed sources in a new one."""
    return hashlib.sha256(canonical_json({"files": files}).encode()).hexdigest()[:32]


def _checked_manifest(files: dict[str, str], where: str) -> dict[str, str]:
    """The manifest with every path normalised and kept inside the tree (never the marker's name)."""
    if not isinstance(files, dict):
        raise DbfsError(f"{_prefix(where)}the snapshot manifest must map relative paths to content hashes, "
                        f"not {type(files).__name__}")
    out: dict[str, str] = {}
    for rel, digest in files.items():
        norm = relative_path(rel, f"{_prefix(where)}snapshot file")
        if not isinstance(digest, str) or not digest:
            raise DbfsError(f"{_prefix(where)}snapshot file {rel!r} needs a content hash, not {digest!r}")
        if norm == MARKER:
            raise DbfsError(f"{_prefix(where)}snapshot file {rel!r} has the name of the upload's completion "
                            f"marker; rename it")
        if norm in out:
            raise DbfsError(f"{_prefix(where)}snapshot files {rel!r} and another entry name the same file {norm!r}")
        out[norm] = digest
    return out


def _exists(hook: DatabricksHook, path: str) -> bool:
    try:
        hook._do_api_call(GET_STATUS, {"path": path})
    except _api_error() as err:
        if _is_missing(err):
            return False
        raise
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _upload_file(hook: DatabricksHook, local: Path, target: str) -> str:
    """Upload one local file to ``target`` and return the blake3 hex digest of the bytes actually sent."""
    h = blake3.blake3()
    size = os.path.getsize(local)
    with open(local, "rb") as fh:
        if size <= BLOCK:
            data = fh.read(BLOCK + 1)
            if len(data) <= BLOCK:  # the file may have grown since the stat: then stream it
                h.update(data)
                hook._do_api_call(PUT, {"path": target, "contents": _b64(data), "overwrite": True})
                return h.hexdigest()
            fh.seek(0)
        handle = hook._do_api_call(CREATE, {"path": target, "overwrite": True})["handle"]
        sent = 0
        while chunk := fh.read(BLOCK):
            h.update(chunk)
            hook._do_api_call(ADD_BLOCK, {"handle": handle, "data": _b64(chunk)})
            sent += len(chunk)
        hook._do_api_call(CLOSE, {"handle": handle})
    # a block retried after a lost answer would be appended twice: the size on DBFS tells
    remote = hook._do_api_call(GET_STATUS, {"path": target}).get("file_size")
    if remote != sent:
        raise DbfsError(f"uploading {local} to dbfs:{target}: DBFS holds {remote} bytes, {sent} were sent "
                        f"(a block was repeated or lost); the upload is retried on the next try")
    return h.hexdigest()


def upload_tree(hook: DatabricksHook, local_root: Path, files: dict[str, str],
                dbfs_root: str = DEFAULT_ROOT, *, where: str = "") -> str:
    """Upload a step's source snapshot to ``<dbfs_root>/<tree digest>/`` and return that folder (``dbfs:/...``).

    ``files`` is the snapshot manifest ``{relative POSIX path: content hash}`` (the one the cache key was made
    from). A folder whose marker ``.mlpipe-complete`` exists is complete and costs one call; otherwise every
    file is uploaded (``put`` up to 1 MB, ``create``/``add-block``/``close`` above) and the marker is written
    last, so a crashed upload is never taken for a complete one. Every file's bytes are hashed as they are
    sent: a file changed since the manifest was made would put other content under the manifest's name, so
    it fails the upload instead. ``where`` (e.g. "step 'aggregate'") prefixes error messages.
    """
    manifest = _checked_manifest(files, where)
    root = api_path(dbfs_root, f"{_prefix(where)}DBFS snapshot root")
    folder = f"{root.rstrip('/')}/{tree_digest(manifest)}"
    marker = f"{folder}/{MARKER}"
    if _exists(hook, marker):
        return f"dbfs:{folder}"
    local_root = Path(local_root)
    for rel in sorted(manifest):
        local = local_root / rel
        if not local.is_file():
            raise DbfsError(f"{_prefix(where)}snapshot file {rel!r} is missing from {local_root} (it was in the "
                            f"manifest the cache key was computed from)")
        sent = _upload_file(hook, local, f"{folder}/{rel}")
        if sent != manifest[rel]:
            raise DbfsError(f"{_prefix(where)}snapshot file {rel!r} ({local}) changed after it was hashed for the "
                            f"cache key (expected {manifest[rel]}, uploaded {sent}); run the step again")
    body = canonical_json({"digest": tree_digest(manifest), "files": len(manifest)}).encode()
    hook._do_api_call(PUT, {"path": marker, "contents": _b64(body), "overwrite": True})
    return f"dbfs:{folder}"


def dbfs_file_hash(hook: DatabricksHook, dbfs_path: str, *, where: str = "") -> str:
    """The blake3 hex digest of a DBFS file's bytes (a ``python_script_path`` or a DBFS jar in the cache key),
    read in 1 MB chunks; a missing file or a folder is a :class:`DbfsError` naming the path."""
    path = api_path(dbfs_path, f"{_prefix(where)}DBFS path")
    try:
        status = hook._do_api_call(GET_STATUS, {"path": path})
    except _api_error() as err:
        if _is_missing(err):
            raise DbfsError(f"{_prefix(where)}DBFS file {dbfs_path!r} does not exist (expected a file uploaded to "
                            f"DBFS, e.g. with 'databricks fs cp')") from None
        raise
    if status.get("is_dir"):
        raise DbfsError(f"{_prefix(where)}DBFS path {dbfs_path!r} is a directory, expected a file")
    size = int(status.get("file_size") or 0)
    h = blake3.blake3()
    offset = 0
    while offset < size:
        try:
            answer = hook._do_api_call(READ, {"path": path, "offset": offset, "length": BLOCK})
        except _api_error() as err:
            if _is_missing(err):
                raise DbfsError(f"{_prefix(where)}DBFS file {dbfs_path!r} was deleted while it was read") from None
            raise
        data = base64.b64decode(answer.get("data") or "")
        if not data:
            break
        h.update(data)
        offset += len(data)
    return h.hexdigest()


def notebook_hash(hook: DatabricksHook, workspace_path: str, *, where: str = "") -> str:
    """The blake3 hex digest of a workspace notebook's source (``workspace/export``, format SOURCE), so editing
    the notebook invalidates the step's cache; a missing notebook is a :class:`DbfsError` naming the path."""
    if not isinstance(workspace_path, str) or not workspace_path.startswith("/"):
        raise DbfsError(f"{_prefix(where)}notebook_path must be an absolute workspace path like "
                        f"'/Users/me/notebook', not {workspace_path!r}")
    try:
        answer: dict[str, Any] = hook._do_api_call(WORKSPACE_EXPORT, {"path": workspace_path, "format": "SOURCE"})
    except _api_error() as err:
        if _is_missing(err):
            raise DbfsError(f"{_prefix(where)}notebook {workspace_path!r} does not exist in the Databricks "
                            f"workspace (expected a notebook imported at that path)") from None
        raise
    return blake3.blake3(base64.b64decode(answer.get("content") or "")).hexdigest()
