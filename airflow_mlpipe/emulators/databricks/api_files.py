"""The DBFS API (``/api/2.0/dbfs/...``) and the Workspace API (``/api/2.0/workspace/...``).

DBFS: ``put`` (base64 ``contents`` up to 1 MB), the streaming upload ``create`` → ``add-block`` (base64
blocks of at most 1 MB) → ``close`` (the file appears at ``close``), ``get-status``, ``read`` (``offset``,
``length`` up to 1 MB, base64 ``data``), ``delete``, ``mkdirs``, ``list``, ``move``. Errors carry Databricks'
``error_code``: RESOURCE_DOES_NOT_EXIST (404), RESOURCE_ALREADY_EXISTS, MAX_BLOCK_SIZE_EXCEEDED,
MAX_READ_SIZE_EXCEEDED, INVALID_PARAMETER_VALUE, IO_ERROR (400).
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from airflow_mlpipe.emulators.databricks.dbfs_paths import DbfsPathError, DbfsRoot, normalize_dbfs_path
from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceError, WorkspaceStore

MAX_BLOCK = 1024 * 1024
DEFAULT_READ = 512 * 1024


def _decode(data: Any, what: str) -> bytes:
    if data is None:
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise WorkspaceError("INVALID_PARAMETER_VALUE", f"{what} must be base64") from None


def _required(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value in (None, ""):
        raise WorkspaceError("INVALID_PARAMETER_VALUE", f"{name} is required")
    return value


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class DbfsApi:
    def __init__(self, dbfs: DbfsRoot, staging: Path) -> None:
        self.dbfs = dbfs
        self.staging = staging
        self.staging.mkdir(parents=True, exist_ok=True)
        self._handles: dict[int, tuple[str, Path]] = {}
        self._lock = threading.Lock()

    def _path(self, params: dict[str, Any], name: str = "path") -> tuple[str, Path]:
        raw = _required(params, name)
        try:
            normalized = normalize_dbfs_path(str(raw))
        except DbfsPathError as err:
            raise WorkspaceError("INVALID_PARAMETER_VALUE", str(err)) from None
        return normalized, self.dbfs.local(normalized)

    def _info(self, path: str, local: Path) -> dict[str, Any]:
        stat = local.stat()
        return {"path": path, "is_dir": local.is_dir(), "file_size": 0 if local.is_dir() else stat.st_size,
                "modification_time": int(stat.st_mtime * 1000)}

    def _check_writable(self, path: str, local: Path, overwrite: bool) -> None:
        if local.is_dir():
            raise WorkspaceError("RESOURCE_ALREADY_EXISTS", f"A directory already exists at {path}")
        if local.exists() and not overwrite:
            raise WorkspaceError("RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at the input "
                                 f"path {path}.")
        for parent in local.parents:
            if parent == self.dbfs.root:
                break
            if parent.exists() and not parent.is_dir():
                raise WorkspaceError("RESOURCE_ALREADY_EXISTS", f"A file exists at {self.dbfs.dbfs_path(parent)}")

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        path, local = self._path(body)
        contents = _decode(body.get("contents"), "contents")
        if len(contents) > MAX_BLOCK:
            raise WorkspaceError("MAX_BLOCK_SIZE_EXCEEDED", "The contents of a put are limited to 1 MB; use "
                                 "create, add-block and close for larger files")
        self._check_writable(path, local, _flag(body.get("overwrite")))
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(contents)
        os.replace(tmp, local)
        return {}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        path, local = self._path(body)
        self._check_writable(path, local, _flag(body.get("overwrite")))
        with self._lock:
            handle = (max(self._handles) + 1) if self._handles else 1 + (uuid.uuid4().int % 1_000_000)
            staged = self.staging / f"{handle}.part"
            staged.write_bytes(b"")
            self._handles[handle] = (path, staged)
        return {"handle": handle}

    def _handle(self, body: dict[str, Any]) -> tuple[int, str, Path]:
        try:
            handle = int(_required(body, "handle"))
        except (TypeError, ValueError):
            raise WorkspaceError("INVALID_PARAMETER_VALUE", "handle must be an integer") from None
        with self._lock:
            entry = self._handles.get(handle)
        if entry is None:
            raise WorkspaceError("RESOURCE_DOES_NOT_EXIST", f"The handle {handle} does not exist", 404)
        return handle, *entry

    def add_block(self, body: dict[str, Any]) -> dict[str, Any]:
        _, _, staged = self._handle(body)
        data = _decode(body.get("data"), "data")
        if len(data) > MAX_BLOCK:
            raise WorkspaceError("MAX_BLOCK_SIZE_EXCEEDED", "A block is limited to 1 MB")
        with open(staged, "ab") as handle:
            handle.write(data)
        return {}

    def close(self, body: dict[str, Any]) -> dict[str, Any]:
        handle, path, staged = self._handle(body)
        local = self.dbfs.local(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, local)
        with self._lock:
            self._handles.pop(handle, None)
        return {}

    def get_status(self, params: dict[str, Any]) -> dict[str, Any]:
        path, local = self._path(params)
        if not local.exists():
            raise WorkspaceError("RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path}.", 404)
        return self._info(path, local)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        path, local = self._path(params)
        if not local.exists():
            raise WorkspaceError("RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path}.", 404)
        if not local.is_dir():
            return {"files": [self._info(path, local)]}
        base = path.rstrip("/")
        return {"files": [self._info(f"{base}/{child.name}", child) for child in sorted(local.iterdir())
                          if not child.name.endswith(".tmp")]}

    def read(self, params: dict[str, Any]) -> dict[str, Any]:
        path, local = self._path(params)
        try:
            offset = int(params.get("offset") or 0)
            length = int(params.get("length") if params.get("length") not in (None, "") else DEFAULT_READ)
        except (TypeError, ValueError):
            raise WorkspaceError("INVALID_PARAMETER_VALUE", "offset and length must be integers") from None
        if not local.exists():
            raise WorkspaceError("RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path}.", 404)
        if local.is_dir() or offset < 0 or length < 0:
            raise WorkspaceError("INVALID_PARAMETER_VALUE", f"Cannot read {path} at offset {offset}, length "
                                 f"{length}")
        if length > MAX_BLOCK:
            raise WorkspaceError("MAX_READ_SIZE_EXCEEDED", "A read is limited to 1 MB")
        with open(local, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        return {"bytes_read": len(data), "data": base64.b64encode(data).decode("ascii")}

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        path, local = self._path(body)
        if local == self.dbfs.root:
            raise WorkspaceError("INVALID_PARAMETER_VALUE", "Cannot delete the DBFS root")
        if local.is_dir():
            if any(local.iterdir()) and not _flag(body.get("recursive")):
                raise WorkspaceError("IO_ERROR", f"Directory {path} is not empty; use recursive")
            shutil.rmtree(local)
        elif local.exists():
            local.unlink()
        return {}

    def mkdirs(self, body: dict[str, Any]) -> dict[str, Any]:
        path, local = self._path(body)
        for candidate in [local, *local.parents]:
            if candidate == self.dbfs.root:
                break
            if candidate.exists() and not candidate.is_dir():
                raise WorkspaceError("RESOURCE_ALREADY_EXISTS", f"A file exists at {self.dbfs.dbfs_path(candidate)}")
        local.mkdir(parents=True, exist_ok=True)
        return {}

    def move(self, body: dict[str, Any]) -> dict[str, Any]:
        source, src = self._path(body, "source_path")
        destination, dst = self._path(body, "destination_path")
        if not src.exists():
            raise WorkspaceError("RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {source}.", 404)
        if dst.exists():
            raise WorkspaceError("RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {destination}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
        return {}


class WorkspaceApi:
    def __init__(self, store: WorkspaceStore) -> None:
        self.store = store

    def import_(self, body: dict[str, Any]) -> dict[str, Any]:
        content = _decode(body.get("content"), "content")
        self.store.import_object(str(_required(body, "path")), content, body.get("format") or "SOURCE",
                                 body.get("language"), _flag(body.get("overwrite")))
        return {}

    def export(self, params: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        obj, content = self.store.export(str(_required(params, "path")), params.get("format") or "SOURCE")
        if _flag(params.get("direct_download")):
            return {}, content
        fmt = (params.get("format") or "SOURCE").upper()
        file_type = "ipynb" if fmt == "JUPYTER" and obj.object_type == "NOTEBOOK" else (
            "py" if obj.object_type == "NOTEBOOK" else Path(obj.path).suffix.lstrip("."))
        return {"content": base64.b64encode(content).decode("ascii"), "file_type": file_type}, None

    def get_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.store.get_status(str(_required(params, "path"))).as_api()

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        objects = [obj.as_api() for obj in self.store.list(str(_required(params, "path")))]
        return {"objects": objects} if objects else {}

    def mkdirs(self, body: dict[str, Any]) -> dict[str, Any]:
        self.store.mkdirs(str(_required(body, "path")))
        return {}

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        self.store.delete(str(_required(body, "path")), _flag(body.get("recursive")))
        return {}
