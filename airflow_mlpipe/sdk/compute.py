"""Compute targets: where a step runs.

Local subprocess on the Airflow worker by default; a named cluster is a Celery queue (workers started with
``-q NAME``). Targets that have no counterpart here fail at definition time.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from airflow_mlpipe.contract.exceptions import ComputeTargetException, PipelineValidationError
from airflow_mlpipe.contract.step_kinds import STEP_KINDS
from airflow_mlpipe.contract.timestamps import iso_utc as _iso
from airflow_mlpipe.sdk.no_effect import warn_no_effect

#: v1 compute types that run a Python step here (as a local subprocess, on the queue of the same name)
QUEUE_TYPES = {"amlcompute", "computeinstance", "virtualmachine", "remotecompute", "local", "kubernetes",
               "kubernetescompute", "aks", "akscompute"}
DATABRICKS_TYPES = {"databricks", "databrickscompute"}
#: a Docker engine the worker reaches: a PythonScriptStep on it runs in a container (any worker, no own queue)
DOCKER_TYPES = {"docker"}
DATAFACTORY_TYPES = {"datafactory", "datafactorycompute"}
UNSUPPORTED_TYPES = {"adla", "adlacompute", "adlanalytics", "batch", "batchcompute", "hdinsight", "hdinsightcompute",
                     "synapse", "synapsecompute"}
#: the key of an attach configuration that carries a token in memory only (``attach`` never stores it)
ACCESS_TOKEN_KEY = "access_token"


class ScaleSettings:
    """v1 ``ScaleSettings``: the node counts a cluster was given (reported; workers are started by you)."""

    def __init__(self, minimum_node_count: int, maximum_node_count: int,
                 idle_seconds_before_scaledown: int | None) -> None:
        self.minimum_node_count = minimum_node_count
        self.maximum_node_count = maximum_node_count
        self.idle_seconds_before_scaledown = idle_seconds_before_scaledown

    def serialize(self) -> dict[str, Any]:
        idle = self.idle_seconds_before_scaledown
        return {"minNodeCount": self.minimum_node_count, "maxNodeCount": self.maximum_node_count,
                "nodeIdleTimeBeforeScaleDown": f"PT{int(idle)}S" if idle else ""}


class AmlComputeNodeStateCounts:
    """v1 ``AmlComputeNodeStateCounts``."""

    def __init__(self, idle_node_count: int = 0, leaving_node_count: int = 0, preempted_node_count: int = 0,
                 preparing_node_count: int = 0, running_node_count: int = 0, unusable_node_count: int = 0) -> None:
        self.idle_node_count = idle_node_count
        self.leaving_node_count = leaving_node_count
        self.preempted_node_count = preempted_node_count
        self.preparing_node_count = preparing_node_count
        self.running_node_count = running_node_count
        self.unusable_node_count = unusable_node_count

    def serialize(self) -> dict[str, int]:
        return {"preparingNodeCount": self.preparing_node_count, "runningNodeCount": self.running_node_count,
                "idleNodeCount": self.idle_node_count, "unusableNodeCount": self.unusable_node_count,
                "leavingNodeCount": self.leaving_node_count, "preemptedNodeCount": self.preempted_node_count}


class AmlComputeStatus:
    """v1 ``AmlComputeStatus`` (``get_status()`` / ``status``): a steady cluster at its minimum node count."""

    def __init__(self, data: dict[str, Any]) -> None:
        scale = data.get("scale_settings") or {}
        nodes = int(scale.get("min_nodes") or 0)
        created = _parse_time(data.get("created"))
        self.allocation_state = "Steady"
        self.allocation_state_transition_time = created
        self.creation_time = created
        self.current_node_count = nodes
        self.target_node_count = nodes
        self.errors = None
        self.modified_time = _parse_time(data.get("modified")) or created
        self.node_state_counts = AmlComputeNodeStateCounts(idle_node_count=nodes)
        self.provisioning_state = "Succeeded"
        self.provisioning_state_transition_time = created
        self.scale_settings = ScaleSettings(nodes, int(scale.get("max_nodes") or 0),
                                            scale.get("idle_seconds_before_scaledown"))
        self.vm_priority = data.get("vm_priority", "dedicated")
        self.vm_size = data.get("vm_size", "")

    def serialize(self) -> dict[str, Any]:
        return {"currentNodeCount": self.current_node_count, "targetNodeCount": self.target_node_count,
                "nodeStateCounts": self.node_state_counts.serialize(), "allocationState": self.allocation_state,
                "allocationStateTransitionTime": _iso(self.allocation_state_transition_time),
                "errors": self.errors, "creationTime": _iso(self.creation_time),
                "modifiedTime": _iso(self.modified_time), "provisioningState": self.provisioning_state,
                "provisioningStateTransitionTime": _iso(self.provisioning_state_transition_time),
                "scaleSettings": self.scale_settings.serialize(), "vmPriority": self.vm_priority,
                "vmSize": self.vm_size}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _not_found(name: str) -> ComputeTargetException:
    return ComputeTargetException(
        f"ComputeTargetNotFound: Compute Target with name {name} not found in provided workspace "
        "(create it with ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(...)))"
    )


class ComputeTarget:
    """A named compute target registered in the workspace (v1 ``ComputeTarget(workspace, name)``).

    ``ComputeTarget(ws, name)`` returns the stored target as its own class (``AmlCompute``, ...) or raises
    :class:`ComputeTargetException` when there is none, so v1's ``try: ... except ComputeTargetException:
    create`` works.
    """

    type = "AmlCompute"

    def __new__(cls, workspace: Any = None, name: str | None = None, **kwargs: Any):
        if workspace is not None and name is not None:
            raw = workspace.store.get_setting(f"compute:{name}")
            data = json.loads(raw) if raw is not None else None
            if data is None or data.get("type") == "deleted":
                raise _not_found(name)
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
        self.provisioning_errors = None
        self.tags = data.get("tags")
        self.description = data.get("description")
        self.created_on = _parse_time(data.get("created"))
        self.modified_on = _parse_time(data.get("modified")) or self.created_on
        self._data = data
        self._operation: str | None = None  # "Creating" right after create/attach, until waited for

    @property
    def queue(self) -> str | None:
        return self._data.get("queue", self.name)

    @staticmethod
    def create(workspace: Any, name: str, provisioning_configuration: dict[str, Any] | None) -> ComputeTarget:
        """Register the target; its steps run on the Celery queue of the same name."""
        data = dict(provisioning_configuration or {"type": "AmlCompute"})
        kind = data.get("type", "AmlCompute")
        check_compute_type(kind, f"ComputeTarget.create({name!r})")
        data.setdefault("created", _now())
        return ComputeTarget._register(workspace, name, data)

    @staticmethod
    def _register(workspace: Any, name: str, record: dict[str, Any]) -> ComputeTarget:
        """Store the target's row and hand it back as being created (``wait_for_completion`` reports it)."""
        record = {k: v for k, v in record.items() if k != ACCESS_TOKEN_KEY}  # secrets never go into the store
        workspace.store.set_setting(f"compute:{name}", json.dumps(record))
        target = ComputeTarget(workspace, name)
        target._operation = "Creating"
        return target

    @staticmethod
    def attach(workspace: Any, name: str, attach_configuration: dict[str, Any]) -> ComputeTarget:
        """Register an existing target. A Databricks workspace also gets its Airflow connection (the token goes
        there, never into the workspace store)."""
        config = attach_configuration or {}
        if check_compute_type(str(config.get("type", "")), f"ComputeTarget.attach({name!r})") not in DATABRICKS_TYPES:
            return ComputeTarget.create(workspace, name, config)
        from airflow_mlpipe.clients.databricks_connection import attach_databricks

        # a complete row (type, created, host, conn_id): see store_record
        return ComputeTarget._register(workspace, name, attach_databricks(workspace, name, dict(config)))

    @staticmethod
    def list(workspace: Any) -> dict[str, ComputeTarget]:
        found = {}
        for key, raw in workspace.store.settings_with_prefix("compute:").items():
            if json.loads(raw).get("type") != "deleted":
                name = key.split(":", 1)[1]
                found[name] = ComputeTarget(workspace, name)
        return found

    def get_status(self) -> Any:
        """v1: the provisioning state (``AmlCompute`` returns its detailed status instead)."""
        return self.provisioning_state

    def refresh_state(self) -> None:
        """Nothing to poll: a target is ready as soon as it is registered."""

    def wait_for_completion(self, show_output: bool = False, is_delete_operation: bool = False) -> None:
        """Print what v1 prints when the provisioning operation has finished (it finishes at once here)."""
        if self._operation is None:
            return
        if show_output:
            sys.stdout.write(f"{self._operation}\nSucceeded")
            sys.stdout.flush()
        print('Provisioning operation finished, operation "Succeeded"')
        self._operation = None

    def delete(self) -> None:
        self.workspace.store.set_setting(f"compute:{self.name}", json.dumps({"type": "deleted"}))

    def detach(self) -> None:
        self.delete()

    def serialize(self) -> dict[str, Any]:
        return {"id": self.name, "name": self.name, "location": None, "type": self.type, "tags": self.tags,
                "description": self.description, "created_on": _iso(self.created_on),
                "modified_on": _iso(self.modified_on), "provisioning_state": self.provisioning_state,
                "provisioning_errors": self.provisioning_errors}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


#: AmlCompute.provisioning_configuration arguments that cannot change anything here, with their v1 defaults
_AML_NO_EFFECT_DEFAULTS: dict[str, Any] = {
    "vm_size": "", "vm_priority": "dedicated", "min_nodes": 0, "max_nodes": None,
    "idle_seconds_before_scaledown": 1800, "admin_username": None, "admin_user_password": None,
    "admin_user_ssh_key": None, "vnet_resourcegroup_name": None, "vnet_name": None, "subnet_name": None,
    "remote_login_port_public_access": "NotSpecified", "identity_type": None, "identity_id": None,
    "location": None, "enable_node_public_ip": True,
}
_SECRET_ARGUMENTS = ("admin_user_password", "admin_user_ssh_key")


class AmlCompute(ComputeTarget):
    """v1 ``AmlCompute``: a Celery queue of that name; its size is that of the workers serving the queue."""

    type = "AmlCompute"

    def _init(self, workspace: Any, name: str, data: dict[str, Any]) -> None:
        super()._init(workspace, name, data)
        self.vm_size = data.get("vm_size", "")
        self.vm_priority = data.get("vm_priority", "dedicated")
        self.status = AmlComputeStatus(data)
        self.scale_settings = self.status.scale_settings

    @staticmethod
    def provisioning_configuration(vm_size: str = "", vm_priority: str = "dedicated", min_nodes: int = 0,
                                   max_nodes: int | None = None, idle_seconds_before_scaledown: int | None = 1800,
                                   admin_username: str | None = None, admin_user_password: str | None = None,
                                   admin_user_ssh_key: str | None = None, vnet_resourcegroup_name: str | None = None,
                                   vnet_name: str | None = None, subnet_name: str | None = None,
                                   tags: dict[str, str] | None = None, description: str | None = None,
                                   remote_login_port_public_access: str = "NotSpecified",
                                   identity_type: str | None = None, identity_id: list[str] | None = None,
                                   location: str | None = None, enable_node_public_ip: bool = True
                                   ) -> dict[str, Any]:
        """The v1 arguments; none sizes anything here (each given one warns once), none secret is kept."""
        given = dict(locals())
        min_nodes = int(min_nodes or 0)
        max_nodes = 4 if max_nodes is None else int(max_nodes)
        if max_nodes < 0 or max_nodes < min_nodes:
            raise ComputeTargetException("Invalid provisioning configuration, max nodes count must be greater than "
                                         "or equal to 0 and to min nodes count")
        for argument, default in _AML_NO_EFFECT_DEFAULTS.items():
            if given[argument] != default:
                instead = ("it is not stored (secrets never go into the workspace store)"
                           if argument in _SECRET_ARGUMENTS else
                           "steps on this target run on the Airflow Celery workers that serve the queue named "
                           "after the target (mlpipe config \"celery_queues\"); the value is only reported by "
                           "get_status()")
                warn_no_effect("AmlCompute.provisioning_configuration", argument, instead)
        return {"type": "AmlCompute", "vm_size": vm_size, "vm_priority": vm_priority,
                "scale_settings": {"min_nodes": min_nodes, "max_nodes": max_nodes,
                                   "idle_seconds_before_scaledown": idle_seconds_before_scaledown},
                "tags": tags, "description": description}

    def get_status(self) -> AmlComputeStatus:
        """v1: the detailed cluster status, whose ``serialize()`` is the dict v1 code prints."""
        return self.status

    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: int = 20, is_delete_operation: bool = False) -> None:
        """v1's output: the provisioning operation, then the node wait (the minimum is there at once)."""
        if min_node_count is not None and min_node_count > self.status.current_node_count:
            warn_no_effect("AmlCompute.wait_for_completion", "min_node_count",
                           "there are no nodes to wait for: steps run on the Celery workers serving the queue "
                           f"{self.queue!r}, started outside airflow-mlpipe")
        super().wait_for_completion(show_output=show_output, is_delete_operation=is_delete_operation)
        if is_delete_operation or not show_output:
            return
        sys.stdout.write(f"{self.status.provisioning_state}\n")
        print("AmlCompute wait for completion finished\n")
        print("Minimum number of nodes requested have been provisioned")

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "properties": {"computeType": self.type, "provisioningState":
                                                      self.provisioning_state, "status": self.status.serialize()}}


class _AttachConfiguration(dict):
    """An attach configuration whose printed form masks the token (it is passed on, never stored or shown)."""

    def __repr__(self) -> str:
        shown = {k: ("***" if k == ACCESS_TOKEN_KEY and v else v) for k, v in self.items()}
        return repr(shown)

    __str__ = __repr__


class DatabricksCompute(ComputeTarget):
    """v1 ``DatabricksCompute``: an Azure Databricks (or the local emulator's) workspace; only a DatabricksStep
    runs on it.

    Attaching writes an Airflow connection (id ``conn_id``, by default ``mlpipe_databricks_<name>``) that holds
    the host and the token; the workspace store keeps only the connection id and where the workspace is. With
    no host known (no existing connection with a host, none in the workspace config), the target is the local
    Databricks emulator of the workspace.
    """

    type = "Databricks"

    @staticmethod
    def attach_configuration(resource_group: str | None = None, workspace_name: str | None = None,
                             resource_id: str | None = None, access_token: str = "", conn_id: str | None = None
                             ) -> dict[str, Any]:
        """v1 arguments plus ``conn_id``; the token stays in memory until ``ComputeTarget.attach`` hands it to
        the Airflow connection."""
        if access_token is not None and not isinstance(access_token, str):
            raise ComputeTargetException("DatabricksCompute.attach_configuration: access_token must be a string")
        return _AttachConfiguration(type="Databricks", conn_id=conn_id, resource_group=resource_group,
                                    workspace_name=workspace_name, resource_id=resource_id,
                                    **{ACCESS_TOKEN_KEY: access_token or ""})

    def import_notebook(self, local_file: str, workspace_path: str, overwrite: bool = True) -> None:
        """Put a local notebook (Databricks ``.py`` source or ``.ipynb``) at ``workspace_path`` of the target's
        workspace, so a pipeline file can ship its notebook. Only the local emulator's workspace is written here
        (it works with the emulator down); a real workspace has its own tools for that."""
        if not self._data.get("emulator"):
            raise ComputeTargetException(
                f"DatabricksCompute({self.name!r}).import_notebook: the target is the Databricks workspace at "
                f"{self._data.get('host') or 'its connection'}, not the local emulator; put {local_file!r} at "
                f"{workspace_path!r} with the Databricks CLI (databricks workspace import {workspace_path} --file "
                f"{local_file} --format AUTO{' --overwrite' if overwrite else ''}) or the workspace UI")
        from airflow_mlpipe.clients.databricks_connection import import_notebook

        import_notebook(self.workspace, local_file, workspace_path, overwrite)


class DataFactoryCompute(ComputeTarget):
    type = "DataFactory"

    @staticmethod
    def provisioning_configuration(location: str | None = None) -> dict[str, Any]:
        if location is not None:
            warn_no_effect("DataFactoryCompute.provisioning_configuration", "location",
                           "nothing is provisioned; transfers run on the Airflow worker")
        return {"type": "DataFactory"}


class _QueueCompute(ComputeTarget):
    """A v1 target type that runs here like AmlCompute: on the Celery queue named after the target."""

    @classmethod
    def _configuration(cls, owner: str, given: dict[str, Any]) -> dict[str, Any]:
        for argument, value in given.items():
            if value is not None:
                warn_no_effect(f"{cls.__name__}.{owner}", argument,
                               "steps on this target run on the Airflow Celery workers that serve the queue named "
                               "after the target (secrets among these arguments are not stored)")
        return {"type": cls.type}


class ComputeInstance(_QueueCompute):
    type = "ComputeInstance"

    @classmethod
    def provisioning_configuration(cls, vm_size: str | None = None, ssh_public_access: bool | None = None,
                                   admin_user_ssh_public_key: str | None = None, **kwargs: Any) -> dict[str, Any]:
        return cls._configuration("provisioning_configuration", {
            "vm_size": vm_size, "ssh_public_access": ssh_public_access,
            "admin_user_ssh_public_key": admin_user_ssh_public_key, **kwargs})


class RemoteCompute(_QueueCompute):
    type = "VirtualMachine"

    @classmethod
    def attach_configuration(cls, address: str | None = None, ssh_port: int | None = None,
                             username: str | None = None, password: str | None = None,
                             private_key_file: str | None = None, private_key_passphrase: str | None = None,
                             **kwargs: Any) -> dict[str, Any]:
        return cls._configuration("attach_configuration", {
            "address": address, "ssh_port": ssh_port, "username": username, "password": password,
            "private_key_file": private_key_file, "private_key_passphrase": private_key_passphrase, **kwargs})


class _UnsupportedCompute(ComputeTarget):
    """A v1 target type with no counterpart here: configuring one fails with the reason."""

    reason = ""

    @classmethod
    def _refuse(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ComputeTargetException(f"{cls.__name__} is not supported by airflow-mlpipe: {cls.reason}; run the "
                                     "step as a PythonScriptStep on an AmlCompute target (a Celery queue) instead")

    attach_configuration = _refuse
    provisioning_configuration = _refuse


class AdlaCompute(_UnsupportedCompute):
    type = "ADLAnalytics"
    reason = "there is no Azure Data Lake Analytics (U-SQL) engine here"


class BatchCompute(_UnsupportedCompute):
    type = "Batch"
    reason = "there is no Azure Batch service here"


class HDInsightCompute(_UnsupportedCompute):
    type = "HDInsight"
    reason = "there is no HDInsight (Spark) cluster here"


_CLASSES = {"amlcompute": AmlCompute, "databricks": DatabricksCompute, "datafactory": DataFactoryCompute,
            "computeinstance": ComputeInstance, "virtualmachine": RemoteCompute}


def check_compute_type(kind: str, where: str) -> str:
    low = kind.lower().replace(" ", "")
    if low in UNSUPPORTED_TYPES:
        raise ComputeTargetException(
            f"{where}: compute type {kind!r} is not supported by airflow-mlpipe; use an AmlCompute target (its "
            "steps run on the Airflow Celery queue of the same name) or 'local'"
        )
    return low


#: compute types only a dedicated step kind can use: the step kind it needs, per type
_STEP_KIND_FOR_TYPE = {**{t: "DatabricksStep" for t in DATABRICKS_TYPES},
                       **{t: "DataTransferStep" for t in DATAFACTORY_TYPES}}


def check_step_compute(step_name: str, step_kind: str, name: str, kind: str) -> None:
    """A step whose kind cannot run on the target fails at definition time instead of running locally."""
    needed = _STEP_KIND_FOR_TYPE.get(kind.lower().replace(" ", ""))
    if needed == step_kind:
        return
    if needed is None:
        if step_kind == "DatabricksStep":
            raise PipelineValidationError(
                f"Step {step_name!r}, argument 'compute_target': {name!r} is a {kind} compute target; a "
                "DatabricksStep runs only on a Databricks target (ComputeTarget.attach(ws, name, "
                "DatabricksCompute.attach_configuration(...)))"
            )
        return
    pending = "" if needed in STEP_KINDS else f" (airflow-mlpipe does not provide {needed} yet)"
    raise PipelineValidationError(
        f"Step {step_name!r}, argument 'compute_target': {name!r} is a {kind} compute target, which only a "
        f"{needed} can run on{pending}; a {step_kind} needs an AmlCompute target (a Celery queue) or 'local'"
    )


def check_named_target(step_name: str, step_kind: str, compute: dict[str, Any], workspace: Any) -> None:
    """A target given by name only: look its type up in the workspace (v1 resolves names there too)."""
    store = getattr(workspace, "store", None)
    if store is None or compute.get("type") != "amlcompute":
        return
    raw = store.get_setting(f"compute:{compute['name']}")
    if raw is not None:
        check_step_compute(step_name, step_kind, compute["name"], json.loads(raw).get("type", "AmlCompute"))


def compute_spec(step_name: str, compute_target: Any, runconfig: Any = None,
                 step_kind: str = "PythonScriptStep") -> dict[str, Any]:
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
    check_step_compute(step_name, step_kind, name, kind)
    queue = getattr(target, "queue", name) if isinstance(target, ComputeTarget) else name
    if low in DOCKER_TYPES:
        queue = None
    return {"name": name, "type": low, "queue": queue}
