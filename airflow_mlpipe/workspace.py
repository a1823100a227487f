"""``airflow_mlpipe.workspace``: the public import path of the v1 ``Workspace`` (users and step scripts import
it from here). The class is :mod:`airflow_mlpipe.sdk.workspace`; its location part (home, config, store,
Airflow settings), which the lower layers use, is :mod:`airflow_mlpipe.data.workspace_location`.
"""

from __future__ import annotations

from airflow_mlpipe.data.workspace_location import (
    CONFIG_DIRS,
    CONFIG_FILES,
    DEFAULT_DATASTORE,
    DEFAULT_WORKSPACE_NAME,
    ENV_WORKSPACE_CONFIG,
    ENV_WORKSPACE_HOME,
    HOME_DIRNAME,
    WorkspaceLocation,
    make_private_dir,
)
from airflow_mlpipe.sdk.workspace import Workspace

__all__ = [
    "CONFIG_DIRS",
    "CONFIG_FILES",
    "DEFAULT_DATASTORE",
    "DEFAULT_WORKSPACE_NAME",
    "ENV_WORKSPACE_CONFIG",
    "ENV_WORKSPACE_HOME",
    "HOME_DIRNAME",
    "Workspace",
    "WorkspaceLocation",
    "make_private_dir",
]
