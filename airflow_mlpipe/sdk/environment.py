"""Environment, RunConfiguration and CondaDependencies: what a step's process runs with.

Steps run with the worker's Python; the environment spec is kept (it is part of a step's identity) and its
``environment_variables`` are applied. Conda/Docker builds are recorded, not performed.
"""

from __future__ import annotations

import copy
from typing import Any


class CondaDependencies:
    def __init__(self, conda_dependencies_file_path: str | None = None) -> None:
        self.conda_packages: list[str] = []
        self.pip_packages: list[str] = []
        self.conda_channels: list[str] = []
        self.python_version: str | None = None
        if conda_dependencies_file_path:
            self._file = open(conda_dependencies_file_path).read()  # noqa: SIM115 - kept for the spec

    @staticmethod
    def create(pip_indexurl: str | None = None, pip_packages: list[str] | None = None,
               conda_packages: list[str] | None = None, python_version: str | None = None,
               pin_sdk_version: bool = True) -> CondaDependencies:
        deps = CondaDependencies()
        deps.pip_packages = list(pip_packages or [])
        deps.conda_packages = list(conda_packages or [])
        deps.python_version = python_version
        return deps

    def add_pip_package(self, name: str) -> None:
        self.pip_packages.append(name)

    def add_conda_package(self, name: str) -> None:
        self.conda_packages.append(name)

    def add_channel(self, name: str) -> None:
        self.conda_channels.append(name)

    def set_python_version(self, version: str) -> None:
        self.python_version = version

    def to_spec(self) -> dict[str, Any]:
        return {"pip": sorted(self.pip_packages), "conda": sorted(self.conda_packages),
                "channels": list(self.conda_channels), "python": self.python_version}


class _Section:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class Environment:
    """v1 ``Environment(name)``."""

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.version: str | None = None
        self.environment_variables: dict[str, str] = {}
        self.python = _Section(user_managed_dependencies=False, interpreter_path="python",
                               conda_dependencies=CondaDependencies(), conda_dependencies_file=None)
        self.docker = _Section(enabled=False, base_image=None, base_dockerfile=None, arguments=[],
                               shm_size=None)
        from airflow_mlpipe.sdk.databricks_libraries import DatabricksSection

        #: v1 ``environment.databricks``: a DatabricksStep's libraries (and cluster) given through its runconfig
        self.databricks = DatabricksSection()

    @staticmethod
    def from_pip_requirements(name: str, file_path: str, pip_version: str | None = None) -> Environment:
        env = Environment(name)
        with open(file_path) as fh:
            env.python.conda_dependencies.pip_packages = [
                line.strip() for line in fh if line.strip() and not line.startswith("#")
            ]
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str) -> Environment:
        env = Environment(name)
        env.python.conda_dependencies_file = open(file_path).read()  # noqa: SIM115
        return env

    @staticmethod
    def from_docker_image(name: str, image: str, **_: Any) -> Environment:
        env = Environment(name)
        env.docker.enabled = True
        env.docker.base_image = image
        return env

    @staticmethod
    def get(workspace: Any, name: str, version: str | None = None, label: str | None = None) -> Environment:
        return Environment(name)

    def register(self, workspace: Any) -> Environment:
        return self

    def clone(self, new_name: str) -> Environment:
        env = copy.deepcopy(self)
        env.name = new_name
        return env

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "environment_variables": dict(self.environment_variables),
            "python": {"conda": self.python.conda_dependencies.to_spec(),
                       "conda_file": self.python.conda_dependencies_file,
                       "interpreter_path": self.python.interpreter_path,
                       "user_managed": self.python.user_managed_dependencies},
            "docker": {"enabled": bool(self.docker.enabled), "base_image": self.docker.base_image},
        }


class RunConfiguration:
    """v1 ``RunConfiguration``: only the parts that change how a local step runs are used."""

    def __init__(self, script: str | None = None, arguments: list | None = None, framework: str | None = None,
                 communicator: str | None = None, conda_dependencies: CondaDependencies | None = None,
                 _history_enabled: bool | None = None, _path: str | None = None, _name: str | None = None,
                 command: str | None = None) -> None:
        self.script = script
        self.arguments = arguments or []
        self.target = "local"
        self.environment = Environment("default")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.environment_variables: dict[str, str] = {}
        self.max_run_duration_seconds: int | None = None
        self.node_count = 1
        self.docker = _Section(use_docker=False)

    def to_spec(self) -> dict[str, Any]:
        env = self.environment.to_spec()
        env["environment_variables"] = {**env["environment_variables"], **self.environment_variables}
        return {"environment": env, "max_run_duration_seconds": self.max_run_duration_seconds,
                "node_count": self.node_count}


class ScriptRunConfig:
    """Accepted for imports of ported code; pipelines use steps instead."""

    def __init__(self, source_directory: str, script: str | None = None, arguments: list | None = None,
                 run_config: RunConfiguration | None = None, compute_target: Any = None,
                 environment: Environment | None = None, **_: Any) -> None:
        self.source_directory = source_directory
        self.script = script
        self.arguments = arguments or []
        self.run_config = run_config or RunConfiguration()
        if environment is not None:
            self.run_config.environment = environment
        if compute_target is not None:
            self.run_config.target = compute_target
