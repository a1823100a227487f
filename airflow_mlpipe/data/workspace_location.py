"""Where a workspace lives: its home folder, its config, its metadata store and the Airflow it runs on.

The runtime, the operators, the compiler, the clients and the plugins need only this (to open the store, find
datastores, reach Airflow); the v1 ``Workspace`` of the SDK (datastores, datasets, experiments, models …)
subclasses it, so these layers never import the authoring SDK.

v1 finds ``config.json`` by walking up from the working directory; we do the same (``.mlpipe/``, then
``.azureml/``, then the folder itself). With no config at all the *embedded default* is used: everything
lives under ``<project>/.mlpipe`` (SQLite store, local datastores, an Airflow home run on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException

CONFIG_DIRS = (".mlpipe", ".azureml", "aml_config", "")
CONFIG_FILES = ("config.json", "project.json")
HOME_DIRNAME = ".mlpipe"
DEFAULT_WORKSPACE_NAME = "local"
DEFAULT_DATASTORE = "workspaceblobstore"
#: environment variable naming a workspace home; set by operators for step scripts and usable by deployments
ENV_WORKSPACE_HOME = "MLPIPE_WORKSPACE_HOME"
ENV_WORKSPACE_CONFIG = "MLPIPE_WORKSPACE_CONFIG"
ENV_STORE_URL = "MLPIPE_STORE_URL"
ENV_AIRFLOW_URL = "MLPIPE_AIRFLOW_URL"


def make_private_dir(folder: Path) -> None:
    """Create ``folder`` owner-only (0700), or tighten an existing one of ours: a workspace home holds the store,
    the Airflow home with its secrets, logs and data, so other local users have no business in it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = folder.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            folder.chmod(0o700)
    except OSError:  # a folder we do not own (a shared mount): leave its mode to its owner
        pass


def find_config(start: Path, file_name: str | None) -> Path | None:
    """The first workspace config file at or above ``start`` (``start`` itself when it is a file)."""
    names = (file_name,) if file_name else CONFIG_FILES
    if start.is_file():
        return start
    for folder in (start, *start.parents):
        for sub in CONFIG_DIRS:
            for name in names:
                candidate = folder / sub / name if sub else folder / name
                if candidate.is_file():
                    return candidate
    return None


class WorkspaceLocation:
    """A local or remote workspace seen from below the SDK: home, config, store and Airflow settings.

    The constructor takes the v1 ``Workspace`` arguments so that the SDK subclass keeps them; the Azure
    coordinates are kept for display only. The ``from_*`` constructors build an instance of the class they
    are called on (``Workspace.from_config()`` gives a v1 Workspace, ``WorkspaceLocation.from_config()`` this).
    """

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: Any = None,
        *,
        home: str | os.PathLike | None = None,
        config: dict[str, Any] | None = None,
        config_path: str | os.PathLike | None = None,
        **_: Any,
    ) -> None:
        self._config: dict[str, Any] = dict(config or {})
        self.subscription_id = subscription_id or self._config.get("subscription_id") or "local"
        self.resource_group = resource_group or self._config.get("resource_group") or "local"
        self.name = workspace_name or self._config.get("workspace_name") or DEFAULT_WORKSPACE_NAME
        self.config_path = Path(config_path).resolve() if config_path else None
        base = self.config_path.parent if self.config_path else Path.cwd()
        if base.name in (".mlpipe", ".azureml", "aml_config"):
            base = base.parent
        if home is None:
            home = self._config.get("home") or os.environ.get(ENV_WORKSPACE_HOME) or base / HOME_DIRNAME
        self.home = (base / home).resolve() if not Path(home).is_absolute() else Path(home)
        make_private_dir(self.home)
        self.location = self._config.get("location", "local")
        self.sku = "basic"
        self.tags = self._config.get("tags", {})
        self._default_datastore_name: str = self._config.get("default_datastore", DEFAULT_DATASTORE)
        self._auth = auth

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike | None = None,
        auth: Any = None,
        _logger: Any = None,
        _file_name: str | None = None,
    ) -> Any:
        """Find ``config.json`` upward from ``path`` (default: cwd); none found → the embedded default.

        ``MLPIPE_WORKSPACE_CONFIG`` (a path) or ``MLPIPE_WORKSPACE_HOME`` win when set, so that step scripts
        and DAG files parsed by Airflow land on the workspace that submitted them.
        """
        env_config = os.environ.get(ENV_WORKSPACE_CONFIG)
        if path is None and env_config:
            path = env_config
        if path is None and os.environ.get(ENV_WORKSPACE_HOME):
            home = Path(os.environ[ENV_WORKSPACE_HOME])
            cfg = home / "config.json"
            if cfg.is_file():
                return cls._from_file(cfg, auth)
            return cls(home=home, auth=auth)
        start = Path(path or ".").resolve()
        if path is not None and not start.exists():
            raise UserErrorException(f"Workspace.from_config: path {str(start)!r} does not exist")
        found = find_config(start, _file_name)
        if found is None:
            if path is not None and _file_name:
                raise UserErrorException(
                    f"Workspace.from_config: {_file_name!r} could not be found in {start} or its parent directories"
                )
            root = start if start.is_dir() else start.parent
            return cls(home=root / HOME_DIRNAME, auth=auth)
        return cls._from_file(found, auth)

    @classmethod
    def _from_file(cls, path: Path, auth: Any = None) -> Any:
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserErrorException(f"Workspace config {path} is not valid JSON: {exc}") from exc
        if not isinstance(config, dict):
            raise UserErrorException(f"Workspace config {path} must hold a JSON object")
        if "Scope" in config and "workspace_name" not in config:
            parts = str(config["Scope"]).split("/")
            if len(parts) > 8:
                config.update(subscription_id=parts[2], resource_group=parts[4], workspace_name=parts[8])
        return cls(config=config, config_path=path, auth=auth)

    # ------------------------------------------------------------------ references for specs and env
    def to_ref(self) -> dict[str, Any]:
        """What a spec or a step process needs to reopen this workspace (never secrets)."""
        ref: dict[str, Any] = {"name": self.name, "home": str(self.home)}
        if self.config_path:
            ref["config_path"] = str(self.config_path)
        return ref

    @classmethod
    def from_ref(cls, ref: dict[str, Any] | None) -> Any:
        """Reopen a workspace from :meth:`to_ref`; the environment overrides so a cluster can remap homes."""
        if os.environ.get(ENV_WORKSPACE_CONFIG) or os.environ.get(ENV_WORKSPACE_HOME) or not ref:
            return cls.from_config()
        if ref.get("config_path") and Path(ref["config_path"]).is_file():
            return cls._from_file(Path(ref["config_path"]))
        return cls(workspace_name=ref.get("name"), home=ref["home"])

    # ------------------------------------------------------------------ configuration views
    @property
    def config(self) -> dict[str, Any]:
        return self._config

    @property
    def store_url(self) -> str:
        return (
            os.environ.get(ENV_STORE_URL)
            or self._config.get("store_url")
            or f"sqlite:///{self.home / 'mlpipe.db'}"
        )

    @property
    def airflow_config(self) -> dict[str, Any]:
        """``{"url": …, "username": …, "password": …}`` for a remote Airflow, or ``{}`` for the embedded one."""
        cfg = dict(self._config.get("airflow") or {})
        if os.environ.get(ENV_AIRFLOW_URL):
            cfg["url"] = os.environ[ENV_AIRFLOW_URL]
        if "password_env" in cfg:
            cfg["password"] = os.environ.get(cfg.pop("password_env"), "")
        if "token_env" in cfg:
            token = os.environ.get(cfg.pop("token_env"))
            if token:
                cfg.setdefault("token", token)
        return cfg

    @property
    def auth(self) -> Any:
        """The authentication object given as ``auth=`` (None: the config's credentials); the REST client uses it."""
        return self._auth

    @property
    def is_embedded(self) -> bool:
        return not self.airflow_config.get("url")

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def service_context(self) -> dict[str, Any]:
        return self.to_ref()

    @property
    def discovery_url(self) -> str:
        return self.airflow_config.get("url", "embedded")

    # ------------------------------------------------------------------ store
    @property
    def store(self) -> Any:
        """The metadata store (SQLAlchemy) of this workspace."""
        from airflow_mlpipe.store.db import Store

        return Store.for_url(self.store_url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, home='{self.home}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkspaceLocation) and other.home == self.home

    def __hash__(self) -> int:
        return hash(self.home)
