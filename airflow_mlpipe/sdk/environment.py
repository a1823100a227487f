"""Environment, RunConfiguration and CondaDependencies: what a step's process runs with.

A step whose environment names pip or conda packages (or a Python version) runs in a uv environment built from
them (:mod:`airflow_mlpipe.runtime.environments`); ``python.user_managed_dependencies=True`` or an environment
without packages runs with the worker's Python. The spec is part of a step's identity (its cache key) and its
``environment_variables`` are applied. ``Environment.get`` knows the curated names
(:mod:`airflow_mlpipe.contract.curated_environments`) and the environments registered in the workspace, which
live as JSON files in ``<workspace home>/registered_environments/<name>/<version>.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.curated_environments import CURATED, parse_conda_yaml
from airflow_mlpipe.contract.exceptions import UserErrorException

REGISTRY_DIRNAME = "registered_environments"


class CondaDependencies:
    def __init__(self, conda_dependencies_file_path: str | None = None) -> None:
        self.conda_packages: list[str] = []
        self.pip_packages: list[str] = []
        self.conda_channels: list[str] = []
        self.python_version: str | None = None
        self.pip_indexurl: str | None = None
        if conda_dependencies_file_path:  # v1 reads the conda environment file's packages
            parsed = parse_conda_yaml(Path(conda_dependencies_file_path).read_text(),
                                      f"CondaDependencies({conda_dependencies_file_path!r})")
            self.conda_packages, self.pip_packages = parsed["conda"], parsed["pip"]
            self.conda_channels, self.python_version = parsed["channels"], parsed["python"]

    @staticmethod
    def create(pip_indexurl: str | None = None, pip_packages: list[str] | None = None,
               conda_packages: list[str] | None = None, python_version: str | None = None,
               pin_sdk_version: bool = True) -> CondaDependencies:
        deps = CondaDependencies()
        deps.pip_packages = list(pip_packages or [])
        deps.conda_packages = list(conda_packages or [])
        deps.python_version = python_version
        deps.pip_indexurl = pip_indexurl
        return deps

    def get_python_version(self) -> str | None:
        return self.python_version

    def remove_pip_package(self, name: str) -> None:
        self.pip_packages = [p for p in self.pip_packages if p.split("=")[0].split("<")[0].split(">")[0] != name]

    def remove_conda_package(self, name: str) -> None:
        self.conda_packages = [p for p in self.conda_packages if p.split("=")[0].split("<")[0].split(">")[0] != name]

    def add_pip_package(self, name: str) -> None:
        self.pip_packages.append(name)

    def add_conda_package(self, name: str) -> None:
        self.conda_packages.append(name)

    def add_channel(self, name: str) -> None:
        self.conda_channels.append(name)

    def set_python_version(self, version: str) -> None:
        self.python_version = version

    def to_spec(self) -> dict[str, Any]:
        spec = {"pip": sorted(self.pip_packages), "conda": sorted(self.conda_packages),
                "channels": list(self.conda_channels), "python": self.python_version}
        if self.pip_indexurl:  # only when set: existing specs (and their cache keys) stay as they were
            spec["index_url"] = self.pip_indexurl
        return spec

    @staticmethod
    def _from_spec(spec: dict[str, Any]) -> CondaDependencies:
        deps = CondaDependencies.create(pip_indexurl=spec.get("index_url"), pip_packages=spec.get("pip"),
                                        conda_packages=spec.get("conda"), python_version=spec.get("python"))
        deps.conda_channels = list(spec.get("channels") or [])
        return deps


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
        """v1: the requirements file's packages as the environment's pip packages (comments dropped)."""
        env = Environment(name)
        with open(file_path) as fh:
            env.python.conda_dependencies.pip_packages = [
                line.split(" #")[0].strip() for line in fh if line.strip() and not line.lstrip().startswith("#")
            ]
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str) -> Environment:
        """v1: the conda YAML file's conda packages, ``pip:`` packages, channels and Python version."""
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @staticmethod
    def from_docker_image(name: str, image: str, **_: Any) -> Environment:
        env = Environment(name)
        env.docker.enabled = True
        env.docker.base_image = image
        return env

    @staticmethod
    def from_dockerfile(name: str, dockerfile: str, conda_specification: str | None = None,
                        pip_requirements: str | None = None) -> Environment:
        """v1: the image is built from a Dockerfile (its text, or a path to it); the step then runs in it."""
        import os

        env = Environment(name)
        if conda_specification:
            env = Environment.from_conda_specification(name, conda_specification)
        elif pip_requirements:
            env = Environment.from_pip_requirements(name, pip_requirements)
        if "\n" not in dockerfile and os.path.isfile(dockerfile):
            with open(dockerfile) as fh:
                dockerfile = fh.read()
        env.docker.enabled = True
        env.docker.base_image = None
        env.docker.base_dockerfile = dockerfile
        return env

    @staticmethod
    def get(workspace: Any, name: str, version: str | None = None, label: str | None = None) -> Environment:
        """v1: a registered environment (its latest version, or ``version``) or a curated one."""
        versions = _registered_versions(workspace, name)
        if versions:
            chosen = str(version) if version is not None else str(max(int(v) for v in versions))
            if chosen not in versions:
                raise UserErrorException(f"Environment {name!r} has no version {chosen!r} in this workspace "
                                         f"(registered versions: {', '.join(sorted(versions, key=int))})")
            return Environment._from_spec(json.loads(versions[chosen].read_text()))
        if name in CURATED and version is None:
            return _curated(name)
        known = sorted(set(CURATED) | set(_registered_names(workspace)))
        raise UserErrorException(f"Environment {name!r}" + (f" version {version!r}" if version else "")
                                 + f" is neither registered in this workspace nor curated; known: {', '.join(known)}")

    @staticmethod
    def list(workspace: Any) -> dict[str, Environment]:
        """v1: every curated and registered environment by name (registered ones at their latest version)."""
        found = {name: _curated(name) for name in CURATED}
        for name in _registered_names(workspace):
            found[name] = Environment.get(workspace, name)
        return found

    def register(self, workspace: Any) -> Environment:
        """v1: store this definition in the workspace; a changed definition gets the next version."""
        if self.name.lower().startswith("azureml"):
            raise UserErrorException(f"Environment name {self.name!r}: names starting with 'AzureML' are reserved "
                                     "for curated environments; register it under another name")
        versions = _registered_versions(workspace, self.name)
        spec = self.to_spec()
        if versions:
            latest = max(versions, key=int)
            if {**json.loads(versions[latest].read_text()), "version": None} == {**spec, "version": None}:
                self.version = latest
                return self
        self.version = str(max((int(v) for v in versions), default=0) + 1)
        folder = _registry(workspace) / self.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.version}.json").write_text(json.dumps(self.to_spec(), indent=1))
        return self

    @staticmethod
    def _from_spec(spec: dict[str, Any]) -> Environment:
        env = Environment(spec.get("name") or "default")
        env.version = spec.get("version")
        env.environment_variables = dict(spec.get("environment_variables") or {})
        python = spec.get("python") or {}
        env.python.conda_dependencies = CondaDependencies._from_spec(python.get("conda") or {})
        env.python.conda_dependencies_file = python.get("conda_file")
        env.python.interpreter_path = python.get("interpreter_path") or "python"
        env.python.user_managed_dependencies = bool(python.get("user_managed"))
        docker = spec.get("docker") or {}
        env.docker.enabled = bool(docker.get("enabled"))
        env.docker.base_image = docker.get("base_image")
        env.docker.base_dockerfile = docker.get("base_dockerfile")
        env.docker.shm_size = docker.get("shm_size")
        return env

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
            "docker": self._docker_spec(),
        }

    def _docker_spec(self) -> dict[str, Any]:
        """Only what is set beyond image and switch, so specs without Docker keep their hash."""
        spec: dict[str, Any] = {"enabled": bool(self.docker.enabled), "base_image": self.docker.base_image}
        if self.docker.base_dockerfile:
            spec["base_dockerfile"] = self.docker.base_dockerfile
        if self.docker.shm_size:
            spec["shm_size"] = self.docker.shm_size
        return spec


def _registry(workspace: Any) -> Path:
    home = getattr(workspace, "home", None)
    if home is None:
        raise UserErrorException(f"Environment registry: {workspace!r} is not an airflow-mlpipe workspace")
    return Path(home) / REGISTRY_DIRNAME


def _registered_versions(workspace: Any, name: str) -> dict[str, Path]:
    folder = _registry(workspace) / name
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in folder.glob("*.json") if p.stem.isdigit()}


def _registered_names(workspace: Any) -> list[str]:
    root = _registry(workspace)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _curated(name: str) -> Environment:
    """A curated environment (see :data:`CURATED` for what each holds and why)."""
    entry = CURATED[name]
    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=entry["pip"],
                                                             conda_packages=entry["conda"],
                                                             python_version=entry["python"])
    return env


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
