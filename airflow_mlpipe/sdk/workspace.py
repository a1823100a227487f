"""The v1 ``Workspace`` (``azureml.core.Workspace``): a :class:`WorkspaceLocation` plus the v1 views users
write against (datastores, datasets, experiments, compute targets, models, runs, ``write_config``).

It lives in the SDK because those views are SDK classes; the layers below use the location only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.workspace_location import HOME_DIRNAME, WorkspaceLocation, make_private_dir


class Workspace(WorkspaceLocation):
    """A local or remote workspace (v1 ``azureml.core.Workspace``).

    ``Workspace(subscription_id, resource_group, workspace_name)`` is accepted for ported code; the Azure
    coordinates are kept for display only.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(subscription_id, resource_group, workspace_name, auth, home=home, config=config,
                         config_path=config_path, **kwargs)
        if hasattr(auth, "_bind"):  # an airflow_mlpipe authentication object: this is its default workspace
            auth._bind(self)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def get(name: str | None = None, auth: Any = None, subscription_id: str | None = None,
            resource_group: str | None = None, **_: Any) -> Workspace:
        ws = Workspace.from_config(auth=auth)
        if name and name != ws.name:
            raise UserErrorException(f"Workspace.get: no workspace named {name!r} (found {ws.name!r})")
        return ws

    def write_config(self, path: str | os.PathLike | None = None, file_name: str | None = None) -> Path:
        """Write this workspace's config so that ``from_config()`` finds it from ``path`` downward."""
        folder = Path(path or ".") / HOME_DIRNAME
        make_private_dir(folder)
        target = folder / (file_name or "config.json")
        config = {**self._config, "workspace_name": self.name}
        config.setdefault("home", str(self.home))
        target.write_text(json.dumps(config, indent=2))
        return target

    # ------------------------------------------------------------------ datastores
    def get_default_datastore(self) -> Any:
        from airflow_mlpipe.sdk.datastore import Datastore

        return Datastore.get(self, self._default_datastore_name)

    def set_default_datastore(self, name: str) -> None:
        from airflow_mlpipe.sdk.datastore import Datastore

        Datastore.get(self, name)  # raises for an unknown name
        self._default_datastore_name = name
        self.store.set_setting("default_datastore", name)

    @property
    def datastores(self) -> dict[str, Any]:
        from airflow_mlpipe.sdk.datastore import Datastore

        return Datastore.list(self)

    @property
    def datasets(self) -> dict[str, Any]:
        from airflow_mlpipe.sdk.dataset import Dataset

        return Dataset.get_all(self)

    @property
    def experiments(self) -> dict[str, Any]:
        from airflow_mlpipe.sdk.experiment import Experiment

        return {name: Experiment(self, name) for name in self.store.list_experiments()}

    @property
    def compute_targets(self) -> dict[str, Any]:
        from airflow_mlpipe.sdk.compute import ComputeTarget

        return ComputeTarget.list(self)

    @property
    def models(self) -> dict[str, Any]:
        """Registered models by name (latest version), as v1 ``ws.models``."""
        from airflow_mlpipe.sdk.model import models_of

        return models_of(self)

    def get_run(self, run_id: str) -> Any:
        from airflow_mlpipe.sdk.runs import get_run

        return get_run(self, run_id)

    def __repr__(self) -> str:
        return f"Workspace.create(name='{self.name}', home='{self.home}')"
