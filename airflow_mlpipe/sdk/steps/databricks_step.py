"""DatabricksStep: a notebook, a Python file (on DBFS or local) or a JAR run as a Databricks job.

Every v1 argument and v1 rule (``_databricks_step_base.py``). The step's spec carries the Databricks Jobs API
pieces (task, cluster, libraries) plus the compute target's Airflow connection id; the token stays in that
connection and never reaches the spec or the workspace store.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.exceptions import ComputeTargetException
from airflow_mlpipe.sdk.compute import ComputeTarget, check_compute_type, check_step_compute
from airflow_mlpipe.sdk.databricks_libraries import (
    CLUSTER_ARGUMENTS,
    LIBRARY_ARGUMENTS,
    libraries_json,
    runconfig_cluster,
    runconfig_libraries,
    runconfig_section,
)
from airflow_mlpipe.sdk.environment import RunConfiguration
from airflow_mlpipe.sdk.no_effect import warn_no_effect
from airflow_mlpipe.sdk.parameters import PipelineParameter
from airflow_mlpipe.sdk.steps.base import PipelineStep
from airflow_mlpipe.sdk.steps.databricks_data import check_remote_reachable

DEFAULT_SPARK_VERSION = "10.4.x-scala2.12"
DEFAULT_NODE_TYPE = "Standard_D3_v2"
DEFAULT_SPARK_ENV = {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"}
TASK_ARGUMENTS = ("notebook_path", "python_script_path", "python_script_name", "main_class_name")
#: the new-cluster arguments an existing cluster excludes
NEW_CLUSTER_ARGUMENTS = tuple(a for a in CLUSTER_ARGUMENTS if a != "existing_cluster_id")
_EXACTLY_ONE = "exactly one of notebook_path, python_script_path, python_script_name or main_class_name is required"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class DatabricksStep(PipelineStep):
    """v1 ``DatabricksStep`` with every v1 argument, in v1 order."""

    kind = "DatabricksStep"

    def __init__(self, name: str, inputs: list | None = None, outputs: list | None = None,
                 existing_cluster_id: str | None = None, spark_version: str | None = None,
                 node_type: str | None = None, instance_pool_id: str | None = None, num_workers: int | None = None,
                 min_workers: int | None = None, max_workers: int | None = None,
                 spark_env_variables: dict[str, str] | None = None, spark_conf: dict[str, str] | None = None,
                 init_scripts: list[str] | None = None, cluster_log_dbfs_path: str | None = None,
                 notebook_path: str | None = None, notebook_params: dict[str, Any] | None = None,
                 python_script_path: str | None = None, python_script_params: list | None = None,
                 main_class_name: str | None = None, jar_params: list | None = None,
                 python_script_name: str | None = None, source_directory: str | None = None,
                 hash_paths: list[str] | None = None, run_name: str | None = None,
                 timeout_seconds: int | None = None, runconfig: Any = None, maven_libraries: list | None = None,
                 pypi_libraries: list | None = None, egg_libraries: list | None = None,
                 jar_libraries: list | None = None, rcran_libraries: list | None = None,
                 compute_target: Any = None, allow_reuse: bool = True, version: str | None = None,
                 permit_cluster_restart: bool | None = None) -> None:
        super().__init__(name, inputs, outputs, None, fix_port_name_collisions=False, allow_reuse=allow_reuse,
                         version=version)
        given = dict(locals())
        cluster = {a: given[a] for a in CLUSTER_ARGUMENTS}
        libraries = {a: given[a] for a in LIBRARY_ARGUMENTS}
        self.runconfig = runconfig
        if runconfig is not None:
            cluster, libraries = self._from_runconfig(runconfig, cluster, libraries)
        self.task = self._check_task(notebook_path, python_script_path, python_script_name, main_class_name,
                                     source_directory)
        self.notebook_path, self.python_script_path = notebook_path, python_script_path
        self.python_script_name, self.main_class_name = python_script_name, main_class_name
        self.source_directory = (str(Path(source_directory).resolve())
                                 if python_script_name is not None else None)
        if python_script_name is not None:
            self._check_script(Path(self.source_directory))
        elif source_directory is not None:
            warn_no_effect("DatabricksStep", "source_directory", "only a python_script_name step uploads a local "
                                                                 "folder; notebooks, DBFS scripts and JARs are "
                                                                 "already in the Databricks workspace")
        self.notebook_params = self._param_dict(notebook_params)
        self.python_script_params = self._param_list("python_script_params", python_script_params)
        self.jar_params = self._param_list("jar_params", jar_params)
        self._warn_unused_params(notebook_params, python_script_params, jar_params)
        self.cluster = self._cluster_json(cluster, permit_cluster_restart)
        self.permit_cluster_restart = permit_cluster_restart
        self.libraries = libraries_json(libraries, f"Step {self.name!r}")
        if self.task == "jar" and not any("jar" in lib for lib in self.libraries):
            raise self._err("jar_libraries", f"main_class_name {main_class_name!r} needs the JAR that holds it: "
                                             "give jar_libraries=[JarLibrary('dbfs:/path/to/app.jar')] (or list it "
                                             "in runconfig.environment.databricks.jar_libraries)")
        if timeout_seconds is not None and not _is_int(timeout_seconds):
            raise self._err("timeout_seconds", f"must be an int, got {timeout_seconds!r}")
        if run_name is not None and not isinstance(run_name, str):
            raise self._err("run_name", f"must be a string, got {run_name!r}")
        self.timeout_seconds, self.run_name = timeout_seconds, run_name
        self.hash_paths = list(hash_paths or [])
        if hash_paths:
            warn_no_effect("DatabricksStep", "hash_paths", "the whole source_directory (minus .amlignore/"
                                                           ".gitignore matches) is hashed for reuse, as in v1")
        self._compute_target = self._check_target(compute_target)

    # ------------------------------------------------------------------ v1 rules
    def _from_runconfig(self, runconfig: Any, cluster: dict[str, Any], libraries: dict[str, Any]
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(runconfig, RunConfiguration):
            raise self._err("runconfig", f"expected a RunConfiguration, got {type(runconfig).__name__}")
        given_libraries = [a for a, v in libraries.items() if v is not None]
        if given_libraries:
            raise self._err("runconfig", f"give the libraries either in runconfig.environment.databricks or as "
                                         f"separate arguments ({', '.join(given_libraries)}), not both")
        section = runconfig_section(runconfig)
        from_runconfig = runconfig_cluster(section)
        if from_runconfig is not None:
            given_cluster = [a for a, v in cluster.items() if v is not None]
            if given_cluster:
                raise self._err("runconfig", f"give the cluster either in runconfig.environment.databricks.cluster "
                                             f"or as separate arguments ({', '.join(given_cluster)}), not both")
            cluster = from_runconfig
        return cluster, {**libraries, **runconfig_libraries(section)}

    def _check_task(self, notebook_path: Any, python_script_path: Any, python_script_name: Any,
                    main_class_name: Any, source_directory: Any) -> str:
        values = dict(zip(TASK_ARGUMENTS, (notebook_path, python_script_path, python_script_name, main_class_name),
                          strict=True))
        given = [a for a, v in values.items() if v is not None]
        if len(given) != 1:
            argument = given[1] if len(given) > 1 else "notebook_path"
            detail = f"got {', '.join(given)}" if given else "got none"
            raise self._err(argument, f"{_EXACTLY_ONE} ({detail})")
        argument = given[0]
        if not isinstance(values[argument], str) or not values[argument]:
            raise self._err(argument, f"must be a non-empty string, got {values[argument]!r}")
        if argument == "python_script_name" and source_directory is None:
            raise self._err("source_directory", "is required with python_script_name (the folder holding the "
                                                "script, uploaded to DBFS)")
        return {"notebook_path": "notebook", "main_class_name": "jar"}.get(argument, argument)

    def _check_script(self, folder: Path) -> None:
        if not folder.is_dir():
            raise self._err("source_directory", f"folder {str(folder)!r} does not exist")
        if not (folder / self.python_script_name).is_file():
            raise self._err("python_script_name", f"script not found at: {folder / self.python_script_name}")

    def _token(self, argument: str, where: str, value: Any) -> dict[str, str]:
        if isinstance(value, PipelineParameter):
            self._parameters[value.name] = value
            return {"parameter": value.name}
        if isinstance(value, str | int | float | bool):
            return {"literal": str(value)}
        raise self._err(argument, f"{where} must be a str, number, bool or PipelineParameter, got "
                                  f"{type(value).__name__}")

    def _param_dict(self, params: Any) -> dict[str, dict[str, str]]:
        if params is None:
            return {}
        if not isinstance(params, dict):
            raise self._err("notebook_params", f"expected a dict of widget name to value, got {type(params).__name__}")
        for key in params:
            if not isinstance(key, str) or not key:
                raise self._err("notebook_params", f"widget names must be non-empty strings, got {key!r}")
        return {key: self._token("notebook_params", f"the value of {key!r}", value) for key, value in params.items()}

    def _param_list(self, argument: str, params: Any) -> list[dict[str, str]]:
        if params is None:
            return []
        if isinstance(params, str) or not isinstance(params, list | tuple):
            raise self._err(argument, f"expected a list, got {type(params).__name__}")
        return [self._token(argument, f"item {i}", value) for i, value in enumerate(params)]

    def _warn_unused_params(self, notebook_params: Any, python_script_params: Any, jar_params: Any) -> None:
        used = {"notebook": "notebook_params", "jar": "jar_params"}.get(self.task, "python_script_params")
        for argument, value in (("notebook_params", notebook_params), ("python_script_params", python_script_params),
                                ("jar_params", jar_params)):
            if value and argument != used:
                warn_no_effect("DatabricksStep", argument, f"a {self.task} step passes only {used} (as in v1)")

    def _cluster_json(self, c: dict[str, Any], permit_cluster_restart: Any) -> dict[str, Any]:
        if permit_cluster_restart is not None and not isinstance(permit_cluster_restart, bool):
            raise self._err("permit_cluster_restart", f"must be a bool, got {permit_cluster_restart!r}")
        if c["existing_cluster_id"] is not None:
            if not isinstance(c["existing_cluster_id"], str) or not c["existing_cluster_id"]:
                raise self._err("existing_cluster_id", f"must be a non-empty string, got {c['existing_cluster_id']!r}")
            clash = [a for a in NEW_CLUSTER_ARGUMENTS if c[a] is not None]
            if clash:
                raise self._err(clash[0], "configures a new job cluster, which existing_cluster_id excludes: give "
                                          "either existing_cluster_id or the new-cluster arguments")
            return {"existing_cluster_id": c["existing_cluster_id"]}
        if permit_cluster_restart is not None:
            raise self._err("permit_cluster_restart", "is only allowed with existing_cluster_id (a new job cluster "
                                                      "is created for the run)")
        new: dict[str, Any] = {"spark_version": self._string(c, "spark_version", DEFAULT_SPARK_VERSION)}
        if c["node_type"] is not None and c["instance_pool_id"] is not None:
            raise self._err("instance_pool_id", "give node_type or instance_pool_id, not both")
        if c["instance_pool_id"] is not None:
            new["instance_pool_id"] = self._string(c, "instance_pool_id", None)
        else:
            new["node_type_id"] = self._string(c, "node_type", DEFAULT_NODE_TYPE)
        for argument in ("num_workers", "min_workers", "max_workers"):
            if c[argument] is not None and not _is_int(c[argument]):
                raise self._err(argument, f"must be an int, got {c[argument]!r}")
        autoscale = c["min_workers"] is not None or c["max_workers"] is not None
        if c["num_workers"] is None and (c["min_workers"] is None or c["max_workers"] is None):
            missing = "num_workers" if not autoscale else ("min_workers" if c["min_workers"] is None else "max_workers")
            raise self._err(missing, "a new cluster needs num_workers, or min_workers and max_workers")
        if c["num_workers"] is not None and autoscale:
            raise self._err("num_workers", "give exactly one of num_workers or (min_workers and max_workers)")
        if c["num_workers"] is not None:
            if c["num_workers"] < 0:
                raise self._err("num_workers", f"must be 0 or more, got {c['num_workers']}")
            new["num_workers"] = c["num_workers"]
        else:
            if not 0 <= c["min_workers"] <= c["max_workers"]:
                raise self._err("max_workers", f"min_workers ({c['min_workers']}) must be between 0 and max_workers "
                                               f"({c['max_workers']})")
            new["autoscale"] = {"min_workers": c["min_workers"], "max_workers": c["max_workers"]}
        env = DEFAULT_SPARK_ENV if c["spark_env_variables"] is None else c["spark_env_variables"]
        new["spark_env_vars"] = self._string_dict("spark_env_variables", env)
        if c["spark_conf"] is not None:
            new["spark_conf"] = self._string_dict("spark_conf", c["spark_conf"])
        if c["init_scripts"] is not None:
            new["init_scripts"] = self._init_scripts(c["init_scripts"])
        if c["cluster_log_dbfs_path"] is not None:
            new["cluster_log_conf"] = {"dbfs": {"destination": self._string(c, "cluster_log_dbfs_path", None)}}
        return {"new_cluster": new}

    def _string(self, c: dict[str, Any], argument: str, default: str | None) -> str:
        value = default if c[argument] is None else c[argument]
        if not isinstance(value, str) or not value:
            raise self._err(argument, f"must be a non-empty string, got {value!r}")
        return value

    def _string_dict(self, argument: str, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self._err(argument, f"expected a dict of string keys, got {value!r}")
        return {k: str(v) for k, v in value.items()}

    def _init_scripts(self, scripts: Any) -> list[dict[str, Any]]:
        if not isinstance(scripts, list) or not all(isinstance(s, str) and s for s in scripts):
            raise self._err("init_scripts", "should be a list of strings (DBFS paths)")
        warnings.warn(f"Step {self.name!r}: init_scripts is deprecated (as in v1): Databricks stopped running "
                      "init scripts stored on DBFS in December 2023; keep them in workspace files or Unity Catalog "
                      "volumes, or configure the cluster instead", DeprecationWarning, stacklevel=4)
        return [{"dbfs": {"destination": s}} for s in scripts]

    def _check_target(self, target: Any) -> Any:
        if target is None:
            raise self._err("compute_target", "is required: a DatabricksCompute or the name of one attached with "
                                              "ComputeTarget.attach(ws, name, DatabricksCompute.attach_configuration("
                                              "...))")
        if isinstance(target, ComputeTarget):
            check_step_compute(self.name, self.kind, target.name, target.type)
        elif isinstance(target, tuple) and len(target) == 2 and all(isinstance(t, str) for t in target):
            check_compute_type(target[1], f"Step {self.name!r}")
            check_step_compute(self.name, self.kind, target[0], target[1])
        elif not isinstance(target, str) or not target:
            raise self._err("compute_target", f"expected a DatabricksCompute or its name, got {target!r}")
        return target

    # ------------------------------------------------------------------ spec
    def _compute(self, workspace: Any) -> dict[str, Any]:
        """The target's store record as the spec's compute (looked up now: v1 resolves names in the workspace);
        ``workspace`` is the pipeline's, else the target's own."""
        target = self._compute_target
        name = target.name if isinstance(target, ComputeTarget) else (target[0] if isinstance(target, tuple)
                                                                      else target)
        record = None
        if getattr(workspace, "store", None) is not None:
            try:
                record = ComputeTarget(workspace, name)._data
            except ComputeTargetException:  # none, or deleted
                record = None
        elif isinstance(target, ComputeTarget):
            record = target._data
        if record is None or record.get("type") == "deleted":
            raise self._err("compute_target", f"no compute target named {name!r} in this workspace; attach the "
                                              f"Databricks workspace first: ComputeTarget.attach(ws, {name!r}, "
                                              "DatabricksCompute.attach_configuration(...))")
        check_step_compute(self.name, self.kind, name, str(record.get("type", "AmlCompute")))
        conn_id = record.get("conn_id")
        if not conn_id:  # a record written before connections were attached: the default id
            from airflow_mlpipe.clients.databricks_connection import default_conn_id

            conn_id = default_conn_id(name)
        return {"name": name, "type": "databricks", "queue": None, "conn_id": conn_id,
                "emulator": bool(record.get("emulator"))}

    def _kind_spec(self, pipeline: Any) -> dict[str, Any]:
        workspace = getattr(pipeline, "_workspace", None)
        if workspace is None and isinstance(self._compute_target, ComputeTarget):
            workspace = self._compute_target.workspace
        compute = self._compute(workspace)
        if not compute["emulator"]:
            check_remote_reachable(self, pipeline, workspace)
        return {
            "compute": compute,
            "script_name": self.python_script_name,
            "source_directory": self.source_directory,
            "hash_paths": list(self.hash_paths),
            "databricks": {
                "task": self.task,
                "notebook_path": self.notebook_path,
                "python_script_path": self.python_script_path,
                "main_class_name": self.main_class_name,
                "notebook_params": {k: dict(v) for k, v in self.notebook_params.items()},
                "python_script_params": [dict(t) for t in self.python_script_params],
                "jar_params": [dict(t) for t in self.jar_params],
                "cluster": json.loads(json.dumps(self.cluster)),
                "permit_cluster_restart": self.permit_cluster_restart,
                "libraries": json.loads(json.dumps(self.libraries)),
                "timeout_seconds": self.timeout_seconds,
                "run_name": self.run_name,
            },
        }
