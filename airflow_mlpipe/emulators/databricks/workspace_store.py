"""The workspace tree (``/Users/.../notebook``): notebooks and files under ``<home>/workspace``.

Each object is a file at its workspace path, with a hidden sidecar ``.<name>.dbmeta`` (its type, language
and times). Notebooks keep the format they were imported in (Databricks ``.py`` source or ``.ipynb``) and
are converted on export. A path may be written with the ``/Workspace`` prefix that Databricks shows in
file paths; it names the same object.
"""

from __future__ import annotations

import json
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from airflow_mlpipe.emulators.databricks import notebook_source

_META_SUFFIX = ".dbmeta"
LANGUAGES = ("PYTHON", "SQL", "SCALA", "R")


class WorkspaceError(Exception):
    """An API error: ``error_code`` and HTTP ``status`` as Databricks reports them."""

    def __init__(self, error_code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class WorkspaceObject:
    path: str
    object_type: str  # NOTEBOOK, FILE, DIRECTORY
    language: str | None
    object_id: int
    created_at: int
    modified_at: int
    size: int

    def as_api(self) -> dict:
        data = {"path": self.path, "object_type": self.object_type, "object_id": self.object_id,
                "created_at": self.created_at, "modified_at": self.modified_at}
        if self.language:
            data["language"] = self.language
        if self.object_type == "FILE":
            data["size"] = self.size
        return data


def normalize_workspace_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise WorkspaceError("INVALID_PARAMETER_VALUE", f"Path ({path}) must be absolute and start with /")
    if path == "/Workspace" or path.startswith("/Workspace/"):
        path = path[len("/Workspace"):] or "/"
    parts = [p for p in PurePosixPath(path).parts[1:] if p not in ("", ".")]
    if ".." in parts or any(p.endswith(_META_SUFFIX) for p in parts):
        raise WorkspaceError("INVALID_PARAMETER_VALUE", f"Invalid path: {path}")
    return "/" + "/".join(parts)


class WorkspaceStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _local(self, path: str) -> Path:
        normalized = normalize_workspace_path(path)
        return self.root.joinpath(*PurePosixPath(normalized).parts[1:])

    @staticmethod
    def _meta_file(local: Path) -> Path:
        return local.with_name(f".{local.name}{_META_SUFFIX}")

    def _object(self, path: str, local: Path) -> WorkspaceObject:
        stat = local.stat()
        object_id = zlib.crc32(path.encode()) or 1
        if local.is_dir():
            return WorkspaceObject(path, "DIRECTORY", None, object_id, int(stat.st_mtime * 1000),
                                   int(stat.st_mtime * 1000), 0)
        meta_file = self._meta_file(local)
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        object_type = meta.get("object_type") or ("NOTEBOOK" if _is_notebook(local.read_bytes()) else "FILE")
        language = meta.get("language") or ("PYTHON" if object_type == "NOTEBOOK" else None)
        return WorkspaceObject(path, object_type, language, object_id, meta.get("created_at", int(stat.st_mtime * 1000)),
                               int(stat.st_mtime * 1000), stat.st_size)

    def get_status(self, path: str) -> WorkspaceObject:
        normalized = normalize_workspace_path(path)
        local = self._local(normalized)
        if not local.exists():
            raise WorkspaceError("RESOURCE_DOES_NOT_EXIST", f"Path ({normalized}) doesn't exist.", 404)
        return self._object(normalized, local)

    def mkdirs(self, path: str) -> None:
        normalized = normalize_workspace_path(path)
        local = self._local(normalized)
        for parent in [local, *local.parents]:
            if parent == self.root:
                break
            if parent.exists() and not parent.is_dir():
                raise WorkspaceError("RESOURCE_ALREADY_EXISTS",
                                     f"Cannot create directory {normalized}: a node exists at that path")
        local.mkdir(parents=True, exist_ok=True)

    def list(self, path: str) -> list[WorkspaceObject]:
        normalized = normalize_workspace_path(path)
        local = self._local(normalized)
        if not local.exists():
            raise WorkspaceError("RESOURCE_DOES_NOT_EXIST", f"Path ({normalized}) doesn't exist.", 404)
        if not local.is_dir():
            return [self._object(normalized, local)]
        base = normalized.rstrip("/")
        return [self._object(f"{base}/{child.name}", child) for child in sorted(local.iterdir())
                if not child.name.startswith(".")]

    def import_object(self, path: str, content: bytes, fmt: str = "SOURCE", language: str | None = None,
                      overwrite: bool = False) -> WorkspaceObject:
        """Store an object as ``workspace/import`` does (SOURCE, JUPYTER or AUTO; AUTO keeps plain files)."""
        normalized = normalize_workspace_path(path)
        fmt = (fmt or "SOURCE").upper()
        if fmt not in ("SOURCE", "JUPYTER", "AUTO", "RAW"):
            raise WorkspaceError("INVALID_PARAMETER_VALUE", f"The emulator does not import format {fmt}")
        if fmt == "JUPYTER" and not notebook_source.looks_like_ipynb(content):
            raise WorkspaceError("INVALID_PARAMETER_VALUE", "Content is not a Jupyter notebook")
        notebook = fmt in ("SOURCE", "JUPYTER") or (fmt == "AUTO" and _is_notebook(content))
        if notebook and fmt == "AUTO":
            normalized = _strip_notebook_extension(normalized)
        if language and language.upper() not in LANGUAGES:
            raise WorkspaceError("INVALID_PARAMETER_VALUE", f"Unknown language {language}")
        if notebook and (language or "PYTHON").upper() != "PYTHON":
            raise WorkspaceError("INVALID_PARAMETER_VALUE", "The emulator runs PYTHON notebooks only "
                                 "(SQL cells inside them via %sql)")
        local = self._local(normalized)
        if local.is_dir():
            raise WorkspaceError("RESOURCE_ALREADY_EXISTS", f"{normalized} is a directory")
        if local.exists() and not overwrite:
            raise WorkspaceError("RESOURCE_ALREADY_EXISTS", f"{normalized} already exists. Please use overwrite.")
        local.parent.mkdir(parents=True, exist_ok=True)
        meta_file = self._meta_file(local)
        created = int(time.time() * 1000)
        if meta_file.is_file():
            created = json.loads(meta_file.read_text()).get("created_at", created)
        local.write_bytes(content)
        meta = {"object_type": "NOTEBOOK" if notebook else "FILE",
                "language": "PYTHON" if notebook else None, "created_at": created}
        meta_file.write_text(json.dumps(meta))
        return self._object(normalized, local)

    def read(self, path: str) -> tuple[WorkspaceObject, bytes]:
        obj = self.get_status(path)
        if obj.object_type == "DIRECTORY":
            raise WorkspaceError("INVALID_PARAMETER_VALUE", f"{obj.path} is a directory")
        return obj, self._local(obj.path).read_bytes()

    def export(self, path: str, fmt: str = "SOURCE") -> tuple[WorkspaceObject, bytes]:
        obj, content = self.read(path)
        fmt = (fmt or "SOURCE").upper()
        if obj.object_type == "FILE" or fmt in ("AUTO", "RAW"):
            return obj, content
        if fmt == "SOURCE":
            return obj, notebook_source.to_source_format(content).encode()
        if fmt == "JUPYTER":
            return obj, notebook_source.to_ipynb(content, PurePosixPath(obj.path).name).encode()
        raise WorkspaceError("INVALID_PARAMETER_VALUE", f"The emulator does not export format {fmt}")

    def delete(self, path: str, recursive: bool = False) -> None:
        obj = self.get_status(path)
        local = self._local(obj.path)
        if obj.object_type == "DIRECTORY":
            if any(local.iterdir()) and not recursive:
                raise WorkspaceError("DIRECTORY_NOT_EMPTY", f"Folder ({obj.path}) is not empty")
            shutil.rmtree(local)
        else:
            local.unlink()
            self._meta_file(local).unlink(missing_ok=True)


def _is_notebook(content: bytes) -> bool:
    return notebook_source.is_source_notebook(content) or notebook_source.looks_like_ipynb(content)


def _strip_notebook_extension(path: str) -> str:
    for suffix in (".py", ".ipynb", ".sql", ".scala", ".r"):
        if path.lower().endswith(suffix):
            return path[: -len(suffix)]
    return path
