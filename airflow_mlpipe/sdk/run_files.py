"""A run's files: what ``upload_file``/``download_file``/``register_model`` read and write.

Every run keeps its uploaded files (and the images it logs) in its own folder of the workspace home,
``<home>/runs/<run_id>``; names are checked to stay inside it. Kept apart from ``run.py`` so the ``Run``
class there keeps to identity, metrics and status.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException


def run_artifact_dir(workspace_home: str | os.PathLike, run_id: str) -> Path:
    """Where a run's uploaded files live: ``<home>/runs/<run_id>`` (path separators in the id made safe)."""
    safe = str(run_id).replace("/", "_").replace("\\", "_").replace("..", "_")
    return Path(workspace_home) / "runs" / safe


def safe_relpath(name: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside the run's folder (else a ``UserErrorException``)."""
    rel = PurePosixPath(str(name).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UserErrorException(f"artifact name {name!r} must be a relative path inside the run's folder")
    return rel


class RunFiles:
    """The v1 file methods of ``Run`` (a mixin), on the folder ``run_artifact_dir(<home>, <run id>)``."""

    _run_id: str

    def _get_workspace(self) -> Any:
        raise NotImplementedError  # Run provides it

    def _run_dir(self) -> Path:
        return run_artifact_dir(self._get_workspace().home, self._run_id)

    def upload_file(self, name: str, path_or_stream: Any, datastore_name: str | None = None) -> str:
        """Copy a file (or a stream's content) to ``<workspace home>/runs/<run_id>/<name>``; returns that path."""
        target = self._run_dir() / safe_relpath(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(path_or_stream, str | os.PathLike):
            src = Path(path_or_stream)
            if not src.is_file():
                raise UserErrorException(f"Run.upload_file({name!r}): no file at {str(src)!r}")
            shutil.copyfile(src, target)
        elif hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        else:
            raise UserErrorException(f"Run.upload_file({name!r}): give a file path or a readable stream")
        return str(target)

    def upload_files(
        self,
        names: list[str],
        paths: list[Any],
        return_artifacts: bool = False,
        timeout_seconds: int | None = None,
        datastore_name: str | None = None,
    ) -> list[str]:
        if len(names) != len(paths):
            raise UserErrorException("Run.upload_files: names and paths must have the same length")
        return [self.upload_file(n, p) for n, p in zip(names, paths, strict=True)]

    def upload_folder(
        self, name: str, path: str | os.PathLike, datastore_name: str | None = None
    ) -> list[str]:
        root = Path(path)
        if not root.is_dir():
            raise UserErrorException(f"Run.upload_folder({name!r}): no folder at {str(root)!r}")
        return [
            self.upload_file(str(PurePosixPath(name) / f.relative_to(root).as_posix()), f)
            for f in sorted(root.rglob("*"))
            if f.is_file()
        ]

    def get_file_names(self) -> list[str]:
        root = self._run_dir()
        if not root.is_dir():
            return []
        return sorted(f.relative_to(root).as_posix() for f in root.rglob("*") if f.is_file())

    def download_file(
        self, name: str, output_file_path: str | os.PathLike | None = None, _validate_checksum: bool = False
    ) -> str:
        src = self._run_dir() / safe_relpath(name)
        if not src.is_file():
            raise UserErrorException(
                f"Run.download_file: run {self._run_id} has no file {name!r}; files: {self.get_file_names()}"
            )
        dest = Path(output_file_path) if output_file_path else Path.cwd() / src.name
        if dest.is_dir():
            dest = dest / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return str(dest)

    def download_files(
        self, prefix: str | None = None, output_directory: str | os.PathLike | None = None, **_: Any
    ) -> list[str]:
        out = Path(output_directory or ".")
        return [
            self.download_file(n, out / n)
            for n in self.get_file_names()
            if prefix is None or n.startswith(prefix)
        ]

    def register_model(self, model_name: str, model_path: str | None = None, **kwargs: Any) -> Any:
        """Register a file of this run (or a local path) as a model; ``Model.register`` does the work."""
        import airflow_mlpipe

        if model_path is None:
            raise UserErrorException("Run.register_model: model_path is required")
        candidate = self._run_dir() / safe_relpath(model_path)
        path = candidate if candidate.exists() else Path(model_path)
        if not path.exists():
            raise UserErrorException(
                f"Run.register_model: {model_path!r} is neither a file of run {self._run_id} nor a local path"
            )
        model_cls = airflow_mlpipe.Model
        return model_cls.register(
            self._get_workspace(), model_path=str(path), model_name=model_name, **kwargs
        )
