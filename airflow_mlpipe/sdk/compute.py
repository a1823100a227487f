"""Compute targets: where a step runs.

Local subprocess on the Airflow worker by default; a named cluster is a Celery queue (workers started with
``-q NAME``). Targets that have no counterpart here fail at definition time.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_mlpipe.exceptions import ComputeTargetException

#: v1 compute types that run a Python step here (as a local subprocess, on the queue of the same name)
QUEUE_TYPES = {"amlcompute", "computeinstance", "virtualmachine", "remotecompute", "local", "kubernetes",
               "kubernetescompute", "aks", "akscompute"}
DATABRICKS_TYPES = {"databricks", "databrickscompute"}
DATAFACTORY_TYPES = {"datafactory", "datafactorycompute"}
UNSUPPORTED_TYPES = {"adla", "adlacompute", "batch", "batchcompute", "hdinsight", "hdinsightcompute",
                     "synapse", "synapsecompute"}


class ComputeTarget:
    """A named compute target registered in the workspace (v1 ``ComputeTarget(workspace, name)``)."""

    type = "AmlCompute"

    def __new__(cls, workspace: Any = None, name: str | None = None, **kwargs: Any):
        if cls is ComputeTarget and workspace is not None and name is not None:
            raw = workspace.store.get_setting(f"compute:{name}")
            if raw is None:
                raise ComputeTargetException(f"ComputeTargetNotFound: compute target {name!r} not found in workspace")
            data = json.loads(raw)
            target_cls = _CLASSES.get(data.get("type", "AmlCompute").lower(), ComputeTarget)
            obj = object.__new__(target_cls)
            obj._init(workspace, name, data)
            return obj
        return object.__new__(cls)

    def __init__(self, workspace: Any = None, name: str | None = None, **kwargs: Any) -> None:
        if not hasattr(self, "name"):
            self._init(workspace, name or "local", {"type": self.type})

    def _init(self, workspace: Any, name: str, data: dict[str, Any]) -> None:
        self.workspace = workspace
        self.name = name
        self.provisioning_state = "Succeeded"
        self._data = data

    @property
    def queue(self) -> str | None:
        return self._data.get("queue", self.name)

    @staticmethod
    def create(workspace: Any, name: str, provisioning_configuration: dict[str, Any] | None) -> ComputeTarget:
        data = dict(provisioning_configuration or {"type": "AmlCompute"})
        kind = data.get("type", "AmlCompute")
        check_compute_type(kind, f"ComputeTarget.create({name!r})")
        workspace.store.set_setting(f"compute:{name}", json.dumps(data))
        return ComputeTarget(workspace, name)

    @staticmethod
    def attach(workspace: Any, name: str, attach_configuration: dict[str, Any]) -> ComputeTarget:
        return ComputeTarget.create(workspace, name, attach_configuration)

    @staticmethod
    def list(workspace: Any) -> dict[str, ComputeTarget]:
        keys = list(workspace.store.settings_with_prefix("compute:"))
        return {k.split(":", 1)[1]: ComputeTarget(workspace, k.split(":", 1)[1]) for k in keys}

    def wait_for_completion(self, show_output: bool = False, **_: Any) -> None:
        if show_output:
            print(f"Compute target {self.name!r} is ready (runs as Airflow queue {self.queue!r})")

    def delete(self) -> None:
        self.workspace.store.set_setting(f"compute:{self.name}", json.dumps({"type": "deleted"}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class AmlCompute(ComputeTarget):
    type = "AmlCompute"

    @staticmethod
    def provisioning_configuration(vm_size: str = "", min_nodes: int = 0, max_nodes: int = 4, **kwargs: Any
                                   ) -> dict[str, Any]:
        return {"type": "AmlCompute", "vm_size": vm_size, "min_nodes": min_nodes, "max_nodes": max_nodes}


class DatabricksCompute(ComputeTarget):
    type = "Databricks"

    @staticmethod
    def attach_configuration(resource_group: str | None = None, workspace_name: str | None = None,
                             access_token: str | None = None, conn_id: str = "databricks_default", **_: Any
                             ) -> dict[str, Any]:
        if access_token:
            raise ComputeTargetException(
                "DatabricksCompute: put the access token in an Airflow connection and pass conn_id; "
                "secrets never go into specs"
            )
        return {"type": "Databricks", "conn_id": conn_id}


class DataFactoryCompute(ComputeTarget):
    type = "DataFactory"

    @staticmethod
    def provisioning_configuration(**_: Any) -> dict[str, Any]:
        return {"type": "DataFactory"}


_CLASSES = {"amlcompute": AmlCompute, "databricks": DatabricksCompute, "datafactory": DataFactoryCompute}


def check_compute_type(kind: str, where: str) -> str:
    low = kind.lower().replace(" ", "")
    if low in UNSUPPORTED_TYPES:
        raise ComputeTargetException(
            f"{where}: compute type {kind!r} is not supported by airflow-mlpipe; use a local/AmlCompute target "
            "(an Airflow queue), a Databricks connection or a DataFactory-style transfer"
        )
    return low


def compute_spec(step_name: str, compute_target: Any, runconfig: Any = None) -> dict[str, Any]:
    """Normalise the v1 ways of naming compute into ``{"name", "type", "queue"}``."""
    target = compute_target
    if target is None and runconfig is not None:
        target = getattr(runconfig, "target", None)
    if target is None or target == "local":
        return {"name": "local", "type": "local", "queue": None}
    if isinstance(target, tuple):
        if len(target) != 2:
            raise ComputeTargetException(f"Step {step_name!r}: compute_target tuple must be (name, type)")
        name, kind = target
    elif isinstance(target, str):
        name, kind = target, "AmlCompute"
    elif isinstance(target, ComputeTarget):
        name, kind = target.name, target.type
    else:
        raise ComputeTargetException(
            f"Step {step_name!r}: compute_target must be a compute target, a name or a (name, type) tuple, "
            f"got {type(target).__name__}"
        )
    low = check_compute_type(kind, f"Step {step_name!r}")
    queue = getattr(target, "queue", name) if isinstance(target, ComputeTarget) else name
    return {"name": name, "type": low, "queue": queue}
