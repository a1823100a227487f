"""v1 ``azureml.core.databricks``: the libraries a DatabricksStep installs, and the runconfig's Databricks section.

Each library becomes the Databricks Jobs API library JSON (``{"jar": ...}``, ``{"pypi": {...}}``, ...) that
the run submission sends as is, so what a v1 script listed is what the cluster installs. Plain strings and
Databricks-style dicts are accepted too, for code that never built the v1 objects.
"""

from __future__ import annotations

from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError

#: the five v1 ``*_libraries`` arguments, in v1 order, and the library class each takes
LIBRARY_ARGUMENTS = ("maven_libraries", "pypi_libraries", "egg_libraries", "jar_libraries", "rcran_libraries")


class MavenLibrary:
    """v1 ``MavenLibrary(coordinates, repo='', exclusions=[])``: a Maven package (``group:artifact:version``)."""

    def __init__(self, coordinates: str, repo: str = "", exclusions: list[str] | None = None) -> None:
        self.coordinates = coordinates
        self.repo = repo
        self.exclusions = list(exclusions or [])

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"coordinates": self.coordinates}
        if self.repo:
            body["repo"] = self.repo
        if self.exclusions:
            body["exclusions"] = list(self.exclusions)
        return {"maven": body}

    def __repr__(self) -> str:
        return f"MavenLibrary(coordinates={self.coordinates!r}, repo={self.repo!r}, exclusions={self.exclusions!r})"


class PyPiLibrary:
    """v1 ``PyPiLibrary(package, repo='')``: a pip requirement, optionally from another index."""

    def __init__(self, package: str, repo: str = "") -> None:
        self.package = package
        self.repo = repo

    def to_json(self) -> dict[str, Any]:
        return {"pypi": {"package": self.package, **({"repo": self.repo} if self.repo else {})}}

    def __repr__(self) -> str:
        return f"PyPiLibrary(package={self.package!r}, repo={self.repo!r})"


class RCranLibrary:
    """v1 ``RCranLibrary(package, repo='')``: an R package from CRAN (or another repository)."""

    def __init__(self, package: str, repo: str = "") -> None:
        self.package = package
        self.repo = repo

    def to_json(self) -> dict[str, Any]:
        return {"cran": {"package": self.package, **({"repo": self.repo} if self.repo else {})}}

    def __repr__(self) -> str:
        return f"RCranLibrary(package={self.package!r}, repo={self.repo!r})"


class EggLibrary:
    """v1 ``EggLibrary(library)``: a DBFS (or cloud storage) path of a Python egg.

    A path ending in ``.whl`` is sent as a wheel: Databricks Runtime 14+ no longer installs eggs, and the v1
    class was the only way to name a Python package file.
    """

    def __init__(self, library: str) -> None:
        self.library = library

    def to_json(self) -> dict[str, Any]:
        return {"whl" if str(self.library).lower().endswith(".whl") else "egg": self.library}

    def __repr__(self) -> str:
        return f"EggLibrary(library={self.library!r})"


class JarLibrary:
    """v1 ``JarLibrary(library)``: a DBFS (or cloud storage) path of a JAR."""

    def __init__(self, library: str) -> None:
        self.library = library

    def to_json(self) -> dict[str, Any]:
        return {"jar": self.library}

    def __repr__(self) -> str:
        return f"JarLibrary(library={self.library!r})"


class DatabricksCluster:
    """v1 ``DatabricksCluster``: the new or existing cluster of ``runconfig.environment.databricks.cluster``."""

    def __init__(self, existing_cluster_id: str | None = None, spark_version: str | None = None,
                 node_type: str | None = None, instance_pool_id: str | None = None, num_workers: int | None = None,
                 min_workers: int | None = None, max_workers: int | None = None,
                 spark_env_variables: dict[str, str] | None = None, spark_conf: dict[str, str] | None = None,
                 init_scripts: list[str] | None = None, cluster_log_dbfs_path: str | None = None) -> None:
        self.existing_cluster_id = existing_cluster_id
        self.spark_version = spark_version
        self.node_type = node_type
        self.instance_pool_id = instance_pool_id
        self.num_workers = num_workers
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.spark_env_variables = spark_env_variables
        self.spark_conf = spark_conf
        self.init_scripts = init_scripts
        self.cluster_log_dbfs_path = cluster_log_dbfs_path


CLUSTER_ARGUMENTS = ("existing_cluster_id", "spark_version", "node_type", "instance_pool_id", "num_workers",
                     "min_workers", "max_workers", "spark_env_variables", "spark_conf", "init_scripts",
                     "cluster_log_dbfs_path")


class DatabricksSection:
    """v1 ``DatabricksSection`` (``runconfig.environment.databricks``): libraries and, optionally, the cluster."""

    def __init__(self, maven_libraries: list | None = None, pypi_libraries: list | None = None,
                 rcran_libraries: list | None = None, jar_libraries: list | None = None,
                 egg_libraries: list | None = None, cluster: DatabricksCluster | None = None) -> None:
        self.maven_libraries = list(maven_libraries or [])
        self.pypi_libraries = list(pypi_libraries or [])
        self.rcran_libraries = list(rcran_libraries or [])
        self.jar_libraries = list(jar_libraries or [])
        self.egg_libraries = list(egg_libraries or [])
        self.cluster = cluster


_CLASSES: dict[str, type] = {"maven_libraries": MavenLibrary, "pypi_libraries": PyPiLibrary,
                             "egg_libraries": EggLibrary, "jar_libraries": JarLibrary,
                             "rcran_libraries": RCranLibrary}
#: the Databricks JSON key(s) a dict given for each argument may already use
_JSON_KEYS = {"maven_libraries": ("maven",), "pypi_libraries": ("pypi",), "egg_libraries": ("egg", "whl"),
              "jar_libraries": ("jar",), "rcran_libraries": ("cran",)}
#: the v1 field a plain string is
_STRING_FIELD = {"maven_libraries": "coordinates", "pypi_libraries": "package", "egg_libraries": "library",
                 "jar_libraries": "library", "rcran_libraries": "package"}


def _from_value(argument: str, value: Any) -> Any:
    """A library object of ``argument``'s class from an object, a string or a dict; None if it is none of those."""
    cls = _CLASSES[argument]
    if isinstance(value, cls):
        return value
    if isinstance(value, str) and value:
        return cls(**{_STRING_FIELD[argument]: value})
    if isinstance(value, dict):
        for key in _JSON_KEYS[argument]:
            if key in value and len(value) == 1:
                inner = value[key]
                if isinstance(inner, str):
                    return EggLibrary(inner) if key in ("egg", "whl") else cls(inner)
                value = inner if isinstance(inner, dict) else value
        try:
            return cls(**value)
        except TypeError:
            return None
    return None


def library_json(argument: str, value: Any, where: str) -> dict[str, Any]:
    """The Databricks library JSON of one entry of ``argument`` (``where`` names the step for errors)."""
    lib = _from_value(argument, value)
    field = _STRING_FIELD[argument]
    if lib is None or not isinstance(getattr(lib, field, None), str) or not getattr(lib, field):
        cls = _CLASSES[argument].__name__
        raise PipelineValidationError(
            f"{where}, argument {argument!r}: expected a {cls} (or a non-empty {field} string, or a Databricks "
            f"library dict), got {value!r}"
        )
    return lib.to_json()


def libraries_json(given: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Databricks library JSON of the five ``*_libraries`` lists, in v1 argument order."""
    out: list[dict[str, Any]] = []
    for argument in LIBRARY_ARGUMENTS:
        items = given.get(argument)
        if items is None:
            continue
        if isinstance(items, str | dict) or not isinstance(items, list | tuple):
            raise PipelineValidationError(f"{where}, argument {argument!r}: expected a list of libraries, got "
                                          f"{type(items).__name__}")
        out.extend(library_json(argument, item, where) for item in items)
    return out


def _field(obj: Any, snake: str) -> Any:
    """``snake`` of a section object or dict, also under v1's serialised camelCase name (``mavenLibraries``)."""
    head, *rest = snake.split("_")
    camel = head + "".join(part.title() for part in rest)
    if isinstance(obj, dict):
        return obj.get(snake, obj.get(camel))
    return getattr(obj, snake, getattr(obj, camel, None))


def runconfig_section(runconfig: Any) -> Any:
    """``runconfig.environment.databricks`` or None (our RunConfiguration has it only when the user set it)."""
    environment = getattr(runconfig, "environment", None)
    return getattr(environment, "databricks", None) if environment is not None else None


def runconfig_libraries(section: Any) -> dict[str, Any]:
    """The five library lists of a runconfig's Databricks section."""
    return {argument: _field(section, argument) for argument in LIBRARY_ARGUMENTS} if section is not None else {}


def runconfig_cluster(section: Any) -> dict[str, Any] | None:
    """The cluster arguments of a runconfig's Databricks section, or None when it names no cluster."""
    cluster = _field(section, "cluster") if section is not None else None
    if cluster is None:
        return None
    return {argument: _field(cluster, argument) for argument in CLUSTER_ARGUMENTS}
