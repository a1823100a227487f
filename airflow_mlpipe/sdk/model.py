"""Model registry (v1 ``azureml.core.Model``): versions per name in the store, files on the default datastore.

``Model.register`` copies the file or folder to ``azureml-models/<name>/<version>/<file or folder name>`` on the
workspace's default datastore and records a row; versions count from 1 per name. ``Model.get_model_path``
returns that path (a local datastore is read in place; a remote one is downloaded to
``./azureml-models/<name>/<version>/``).
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from airflow_mlpipe.contract.exceptions import ModelNotFoundException, UserErrorException
from airflow_mlpipe.store.db import utcnow
from airflow_mlpipe.store.tables_models import TABLES, models

MODELS_PREFIX = "azureml-models"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_READY: set[str] = set()


def _store(workspace: Any):
    store = workspace.store
    if store.url not in _READY:  # a database migrated before this table existed gets it here
        models.metadata.create_all(store.engine, tables=TABLES)
        _READY.add(store.url)
    return store


def _row(conn: Any, stmt: Any) -> dict[str, Any] | None:
    found = conn.execute(stmt).mappings().first()
    return dict(found) if found else None


def _current_run_id() -> str | None:
    from airflow_mlpipe.contract import run_context as contract

    return os.environ.get(contract.ENV_RUN_ID) if os.environ.get(contract.ENV_RUN_CONTEXT) else None


def _context_workspace() -> Any:
    """The workspace of the step this code runs in, else ``Workspace.from_config()`` (v1 behaviour)."""
    from airflow_mlpipe.sdk.run import Run
    from airflow_mlpipe.sdk.workspace import Workspace

    run = Run.get_context()
    experiment = getattr(run, "experiment", None)
    workspace = getattr(experiment, "workspace", None)
    return workspace if workspace is not None else Workspace.from_config()


class Model:
    """v1 ``Model(workspace, name=None, id=None, tags=None, properties=None, version=None, run_id=None, ...)``:
    a registered model version; a name without a version is the latest version."""

    def __init__(self, workspace: Any, name: str | None = None, id: str | None = None, tags: Any = None,
                 properties: Any = None, version: int | None = None, run_id: str | None = None,
                 model_framework: str | None = None, expand: bool = True, _row: dict | None = None,
                 **kwargs: Any) -> None:
        self.workspace = workspace
        if _row is None:
            if id is not None:
                if ":" not in id:
                    raise UserErrorException(f"Model: id must be '<name>:<version>', got {id!r}")
                name, _, ver = id.rpartition(":")
                version = int(ver)
            if not name:
                raise UserErrorException("Model: give a name (and optionally a version) or an id")
            _row = self._find(workspace, name, version, tags, properties, run_id, model_framework)
        self._load(_row)

    @staticmethod
    def _find(workspace: Any, name: str, version: int | None, tags: Any, properties: Any, run_id: str | None,
              framework: str | None) -> dict[str, Any]:
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise UserErrorException(f"Model {name!r}: version must be an int, got {version!r}")
        rows = Model._rows(workspace, name=name, tags=tags, properties=properties, run_id=run_id,
                           framework=framework)
        if version is not None:
            rows = [r for r in rows if r["version"] == version]
        if not rows:
            what = f"{name!r} version {version}" if version is not None else repr(name)
            raise ModelNotFoundException(f"ModelNotFound: no registered model {what} in workspace "
                                         f"{workspace.name!r}")
        return max(rows, key=lambda r: r["version"])

    def _load(self, row: dict[str, Any]) -> None:
        self._row = dict(row)
        self.name: str = row["name"]
        self.version: int = row["version"]
        self.id: str = row["id"]
        self.description: str | None = row["description"]
        self.tags: dict[str, Any] = dict(row["tags"] or {})
        self.properties: dict[str, Any] = dict(row["properties"] or {})
        self.model_framework: str | None = row["framework"]
        self.model_framework_version: str | None = row["framework_version"]
        self.run_id: str | None = row["run_id"]
        self.created_time: datetime = row["created_at"]
        self.datastore_name: str = row["datastore"]
        self.path_on_datastore: str = f"{row['path']}/{row['root']}"

    # ------------------------------------------------------------------ queries
    @staticmethod
    def _rows(workspace: Any, name: str | None = None, tags: Any = None, properties: Any = None,
              run_id: str | None = None, framework: str | None = None) -> list[dict[str, Any]]:
        store = _store(workspace)
        q = select(models).order_by(models.c.name, models.c.version)
        if name:
            q = q.where(models.c.name == name)
        if run_id:
            q = q.where(models.c.run_id == run_id)
        if framework:
            q = q.where(models.c.framework == framework)
        with store.begin() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        return [r for r in rows if _matches(r["tags"], tags) and _matches(r["properties"], properties)]

    @staticmethod
    def list(workspace: Any, name: str | None = None, tags: Any = None, properties: Any = None,
             run_id: str | None = None, latest: bool = False, dataset_id: str | None = None, expand: bool = True,
             page_count: int = 255, model_framework: str | None = None) -> list[Model]:
        rows = Model._rows(workspace, name, tags, properties, run_id, model_framework)
        if dataset_id:
            rows = [r for r in rows if any(d.get("id") == dataset_id for d in r["datasets"] or [])]
        if latest:
            newest: dict[str, dict[str, Any]] = {}
            for r in rows:
                if r["name"] not in newest or r["version"] > newest[r["name"]]["version"]:
                    newest[r["name"]] = r
            rows = list(newest.values())
        rows.sort(key=lambda r: (r["created_at"], r["version"]), reverse=True)
        return [Model(workspace, _row=r) for r in rows]

    # ------------------------------------------------------------------ register
    @staticmethod
    def register(workspace: Any, model_path: str, model_name: str, tags: dict | None = None,
                 properties: dict | None = None, description: str | None = None, datasets: list | None = None,
                 model_framework: str | None = None, model_framework_version: str | None = None,
                 child_paths: list[str] | None = None, sample_input_dataset: Any = None,
                 sample_output_dataset: Any = None, resource_configuration: Any = None, **kwargs: Any) -> Model:
        """Upload ``model_path`` (a file or folder) and record it as the next version of ``model_name``."""
        if not isinstance(model_name, str) or not _NAME.match(model_name):
            raise UserErrorException(f"Model.register: model_name must be 1-255 letters, digits, '-', '_' or '.', "
                                     f"starting with a letter or digit; got {model_name!r}")
        if not isinstance(model_path, str | os.PathLike):
            hint = (" (a step output: download it first, e.g. port.download('.'), then pass "
                    "port._path_on_datastore)" if hasattr(model_path, "path_on_datastore") else "")
            raise UserErrorException(f"Model.register: model_path must be a local file or folder path, got "
                                     f"{type(model_path).__name__}{hint}")
        src = Path(os.fspath(model_path)).expanduser()
        if not src.exists():
            raise UserErrorException(f"Model.register: model_path {str(src)!r} does not exist")
        src = src.resolve()
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        if child_paths:
            wanted = {os.path.normpath(c) for c in child_paths}
            files = [f for f in files if os.path.normpath(os.path.relpath(f, src)) in wanted]
        if not files:
            raise UserErrorException(f"Model.register: model_path {str(src)!r} holds no files")
        dataset_refs = []
        for item in datasets or []:
            purpose, ds = item if isinstance(item, tuple) else ("training", item)
            dataset_refs.append({"purpose": purpose, "id": getattr(ds, "id", None), "name": getattr(ds, "name", None),
                                 "version": getattr(ds, "version", None)})
        store = _store(workspace)
        datastore = workspace.get_default_datastore()
        row = None
        for _attempt in range(20):
            try:
                with store.begin() as conn:
                    latest = conn.scalar(select(func.max(models.c.version)).where(models.c.name == model_name))
                    version = (latest or 0) + 1
                    row = {
                        "id": f"{model_name}:{version}", "name": model_name, "version": version,
                        "datastore": datastore.name, "path": f"{MODELS_PREFIX}/{model_name}/{version}",
                        "root": src.name, "description": description, "tags": dict(tags or {}),
                        "properties": dict(properties or {}), "framework": model_framework,
                        "framework_version": model_framework_version, "run_id": _current_run_id(),
                        "datasets": dataset_refs, "created_at": utcnow(),
                    }
                    conn.execute(insert(models).values(**row))
                break
            except IntegrityError:  # another process took this version number: take the next one
                row = None
        if row is None:
            raise UserErrorException(f"Model.register: could not allocate a version for {model_name!r}")
        try:
            datastore.upload_files([str(f) for f in files], relative_root=str(src.parent), target_path=row["path"],
                                   overwrite=True, show_progress=False)
        except BaseException:
            with store.begin() as conn:
                conn.execute(delete(models).where(models.c.id == row["id"]))
            raise
        return Model(workspace, _row=row)

    # ------------------------------------------------------------------ files
    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Any = None) -> str:
        """The local path of a registered model's file or folder (v1: inside a run, the run's workspace)."""
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise UserErrorException(f"Model.get_model_path: version must be an int, got {version!r}")
        workspace = _workspace if _workspace is not None else _context_workspace()
        model = Model(workspace, name=model_name, version=version)
        store = model._datastore()
        if store.is_local:
            return store.full_path(model.path_on_datastore)
        target = Path.cwd() / MODELS_PREFIX / model.name / str(model.version)
        if not (target / model._row["root"]).exists():
            model.download(str(target), exist_ok=True)
        return str(target / model._row["root"])

    def _datastore(self) -> Any:
        from airflow_mlpipe.sdk.datastore import Datastore

        return Datastore.get(self.workspace, self.datastore_name)

    @property
    def url(self) -> str:
        return self._datastore().uri(self.path_on_datastore)

    def download(self, target_dir: str = ".", exist_ok: bool = False, exists_ok: bool | None = None) -> str:
        """Copy the model's file or folder into ``target_dir``; returns the local path."""
        exist_ok = exist_ok if exists_ok is None else exists_ok
        store = self._datastore()
        dest = Path(target_dir) / self._row["root"]
        if dest.exists() and not exist_ok:
            raise UserErrorException(f"Model.download: {str(dest)!r} exists; pass exist_ok=True to overwrite")
        src = store.full_path(self.path_on_datastore)
        fs = store.fs
        Path(target_dir).mkdir(parents=True, exist_ok=True)
        if fs.isfile(src):
            fs.get_file(src, str(dest))
        else:
            if dest.exists():
                shutil.rmtree(dest)
            fs.get(src.rstrip("/") + "/", str(dest) + "/", recursive=True)
        return str(dest)

    # ------------------------------------------------------------------ metadata updates
    def _update(self, **values: Any) -> None:
        with _store(self.workspace).begin() as conn:
            conn.execute(update(models).where(models.c.id == self.id).values(**values))
            self._load(_row(conn, select(models).where(models.c.id == self.id)) or self._row)

    def update(self, tags: dict | None = None, description: str | None = None, **kwargs: Any) -> None:
        values: dict[str, Any] = {}
        if tags is not None:
            values["tags"] = dict(tags)
        if description is not None:
            values["description"] = description
        if values:
            self._update(**values)

    def add_tags(self, tags: dict) -> None:
        self._update(tags={**self.tags, **dict(tags)})

    def remove_tags(self, tags: list[str]) -> None:
        self._update(tags={k: v for k, v in self.tags.items() if k not in set(tags)})

    def add_properties(self, properties: dict) -> None:
        clash = [k for k in properties if k in self.properties and self.properties[k] != properties[k]]
        if clash:
            raise UserErrorException(f"Model {self.id}: properties {clash} exist and cannot be changed")
        self._update(properties={**self.properties, **dict(properties)})

    def delete(self) -> None:
        store = self._datastore()
        full = store.full_path(self._row["path"])
        if store.fs.exists(full):
            store.fs.rm(full, recursive=True)
        with _store(self.workspace).begin() as conn:
            conn.execute(delete(models).where(models.c.id == self.id))

    def serialize(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "version": self.version, "description": self.description,
                "tags": self.tags, "properties": self.properties, "createdTime": self.created_time.isoformat(),
                "runId": self.run_id, "url": self.url, "modelFramework": self.model_framework}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.id == self.id and other.workspace == self.workspace

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, version={self.version}, " \
               f"tags={self.tags}, properties={self.properties})"


def _matches(values: dict | None, wanted: Any) -> bool:
    """v1 filters: a list of keys, ``[[key, value], ...]``, or a dict."""
    if not wanted:
        return True
    values = values or {}
    items = wanted.items() if isinstance(wanted, dict) else wanted
    for item in items:
        if isinstance(item, list | tuple):
            key, value = item[0], (item[1] if len(item) > 1 else None)
            if key not in values or (value is not None and str(values[key]) != str(value)):
                return False
        elif item not in values:
            return False
    return True


def models_of(workspace: Any) -> dict[str, Model]:
    """``ws.models``: the latest version of every registered model, by name."""
    return {m.name: m for m in Model.list(workspace, latest=True)}
