"""Built step environments: a uv virtual environment per environment content, shared by every step and run.

A step whose runconfig environment names pip or conda packages (or a Python version) runs with the Python of a
virtual environment that holds exactly those packages plus what the step runtime needs to serve
``Run.get_context()``, ``run.log`` and input datasets (:data:`RUNTIME_PACKAGES`, at the worker's versions, which
therefore constrain the user's pins). ``airflow_mlpipe`` itself is made importable through a ``.pth`` file naming
a folder that holds only a link to the package, so nothing else of the worker leaks in. Rules:

- uv only (``uv venv``, ``uv pip install``) with ``UV_PYTHON_DOWNLOADS=never``: a Python version the worker does
  not have is an error naming the environment, never a download;
- ``azureml-*`` requirements are not installed (the compatibility layer provides ``azureml.*``), said once;
- conda package names map to their PyPI names (:mod:`airflow_mlpipe.contract.curated_environments`);
- an unpinned requirement the worker also has resolves to the worker's version (reproducible across the workers
  of one image, and installed from uv's cache); pin a version to get another;
- no packages and no Python version, or ``python.user_managed_dependencies=True``: the worker's interpreter (or
  the runconfig's ``interpreter_path``), nothing is built.

An environment lives in ``<workspace home>/environments/<content hash>``; it is built once under an exclusive
file lock (concurrent steps wait for the first builder) and is complete only once its marker file exists.
Environments unused for ``environment_max_age_days`` (workspace config, or ``MLPIPE_ENVIRONMENT_MAX_AGE_DAYS``;
14 by default) are removed after a build.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata as md
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract.curated_environments import conda_python_version, conda_to_pip, parse_conda_yaml

ENVIRONMENTS_DIRNAME = "environments"
MARKER = ".mlpipe-env.json"
LAST_USED = ".last-used"
FORMAT = 1
MAX_AGE_OPTION = "environment_max_age_days"
MAX_AGE_ENV = "MLPIPE_ENVIRONMENT_MAX_AGE_DAYS"
DEFAULT_MAX_AGE_DAYS = 14.0
#: what a step script needs from the worker to run our ``azureml.*`` layer: run context, metrics, datasets
RUNTIME_PACKAGES = ("pandas", "numpy", "pyarrow", "fsspec", "sqlalchemy", "blake3", "requests", "tqdm")
#: the metadata store's driver, by the SQLAlchemy URL's dialect+driver (the step reads and writes the store)
STORE_DRIVERS = {"postgresql": ("psycopg2-binary",), "postgresql+psycopg2": ("psycopg2-binary",),
                 "postgresql+psycopg": ("psycopg", "psycopg-binary"), "mysql+pymysql": ("pymysql",),
                 "mariadb+pymysql": ("pymysql",), "mssql+pymssql": ("pymssql",)}
MIN_PYTHON = (3, 11)
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


class EnvironmentBuildError(RuntimeError):
    """An environment could not be built; the message names it and carries uv's own error."""


@dataclass(frozen=True)
class EnvironmentPlan:
    """What an environment is made of; its content hash names its folder."""

    name: str
    python: str
    python_version: str
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    skipped: tuple[str, ...]
    index_url: str | None = None

    @property
    def content_hash(self) -> str:
        content = {"format": FORMAT, "python": self.python_version, "requirements": sorted(self.requirements),
                   "constraints": sorted(self.constraints), "index_url": self.index_url,
                   "runtime": str(_PACKAGE_DIR), "runtime_version": _version("airflow-mlpipe")}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _parse(line: str) -> Any:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(line)
    except InvalidRequirement:
        return None  # a URL, a path or an option: passed to uv as written


def _requested(env: Mapping[str, Any], where: str) -> tuple[list[str], str | None, str | None]:
    """(pip requirements incl. mapped conda packages, Python version, index URL) of an environment spec."""
    python = env.get("python") or {}
    conda = dict(python.get("conda") or {})
    if python.get("conda_file"):
        parsed = parse_conda_yaml(python["conda_file"], f"{where}: conda specification")
        for key in ("pip", "conda"):
            conda[key] = list(conda.get(key) or []) + parsed[key]
        conda["python"] = conda.get("python") or parsed["python"]
    pip = [str(p).strip() for p in conda.get("pip") or [] if str(p).strip()]
    version = conda.get("python")
    for spec in conda.get("conda") or []:
        version = version or conda_python_version(spec)
        try:
            mapped = conda_to_pip(spec)
        except ValueError as exc:
            raise EnvironmentBuildError(f"{where}: {exc}") from None
        if mapped:
            pip.append(mapped)
    return pip, (str(version) if version else None), conda.get("index_url")


def _runtime_distributions(store_url: str | None) -> list[str]:
    names = list(RUNTIME_PACKAGES)
    if store_url:
        scheme = store_url.split("://", 1)[0].lower()
        names.extend(STORE_DRIVERS.get(scheme, ()))
    return [n for n in names if _version(n) is not None]


def _find_python(version: str, where: str) -> tuple[str, str]:
    """(interpreter path, full version) for a requested ``X.Y[.Z]``; the worker's own when it matches."""
    if platform.python_version() == version or platform.python_version().startswith(version + "."):
        return sys.executable, platform.python_version()
    import uv

    found = subprocess.run([uv.find_uv_bin(), "python", "find", "--no-config", version], capture_output=True,
                           text=True, env=_uv_env(), timeout=60)
    path = found.stdout.strip()
    if found.returncode != 0 or not path:
        raise EnvironmentBuildError(
            f"{where}: Python {version} is not installed on this worker (environments never download a Python: "
            f"UV_PYTHON_DOWNLOADS=never); install it on the workers or ask for Python "
            f"{platform.python_version()}. uv: {found.stderr.strip()}")
    full = subprocess.run([path, "-c", "import platform; print(platform.python_version())"], capture_output=True,
                          text=True, timeout=60).stdout.strip()
    if tuple(int(p) for p in full.split(".")[:2]) < MIN_PYTHON:
        raise EnvironmentBuildError(f"{where}: Python {full} is older than the step runtime needs "
                                    f"({'.'.join(map(str, MIN_PYTHON))} or newer)")
    return path, full


def plan_environment(env: Mapping[str, Any] | None, store_url: str | None = None,
                     where: str = "Environment") -> EnvironmentPlan | None:
    """The plan of a runconfig environment spec (``Environment.to_spec()``), or None to use the worker's
    interpreter (no packages and no Python version asked for, or user-managed dependencies)."""
    if not env or (env.get("python") or {}).get("user_managed"):
        return None
    name = str(env.get("name") or "default")
    where = f"{where}: environment {name!r}"
    pip, version, index_url = _requested(env, where)
    if not pip and not version:
        return None
    python, full_version = _find_python(version, where) if version else (sys.executable,
                                                                         platform.python_version())
    requirements: list[str] = []
    skipped: list[str] = []
    constraints: dict[str, str] = {}
    for line in pip:
        req = _parse(line)
        if req is not None and (_canonical(req.name) == "azureml" or _canonical(req.name).startswith("azureml-")):
            skipped.append(line)
            continue
        requirements.append(line)
        if req is not None and not req.specifier and not req.url:
            installed = _version(req.name)
            if installed is not None:
                constraints[_canonical(req.name)] = f"{_canonical(req.name)}=={installed}"
    for dist in _runtime_distributions(store_url):
        requirements.append(dist)
        constraints[_canonical(dist)] = f"{_canonical(dist)}=={_version(dist)}"
    return EnvironmentPlan(name, python, full_version, tuple(dict.fromkeys(requirements)),
                           tuple(sorted(constraints.values())), tuple(skipped), index_url)


def _uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    return env


@contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive lock on ``path`` (across processes); yields False if not blocking and already held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def environments_root(home: str | os.PathLike) -> Path:
    return Path(home) / ENVIRONMENTS_DIRNAME


def _python_in(folder: Path) -> Path:
    return folder / "bin" / "python"


def _uv(args: list[str], plan: EnvironmentPlan, cwd: Path) -> subprocess.CompletedProcess[str]:
    import uv

    return subprocess.run([uv.find_uv_bin(), *args], capture_output=True, text=True, env=_uv_env(), cwd=cwd)


def _build(folder: Path, plan: EnvironmentPlan, log: logging.Logger) -> None:
    label = f"environment {plan.name!r} ({plan.content_hash})"
    shutil.rmtree(folder, ignore_errors=True)  # a build that died half-way
    made = _uv(["venv", "--no-config", "--quiet", "--python", plan.python, str(folder)], plan, folder.parent)
    if made.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise EnvironmentBuildError(f"Building {label} failed: uv venv: {made.stderr.strip()}")
    (folder / "requirements.txt").write_text("\n".join(plan.requirements) + "\n")
    (folder / "constraints.txt").write_text("\n".join(plan.constraints) + "\n")
    args = ["pip", "install", "--no-config", "--python", str(_python_in(folder)), "-r", "requirements.txt",
            "-c", "constraints.txt"]
    if plan.index_url:
        args += ["--index-url", plan.index_url]
    log.info("Building %s with uv: %s (constraints: the step runtime's packages and unpinned requirements at "
             "the worker's versions)", label, ", ".join(plan.requirements))
    installed = _uv(args, plan, folder)
    if installed.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise EnvironmentBuildError(f"Building {label} failed: uv pip install: {installed.stderr.strip()}")
    runtime = folder / "mlpipe-runtime"  # holds only a link to airflow_mlpipe, so no other worker package leaks
    runtime.mkdir()
    (runtime / "airflow_mlpipe").symlink_to(_PACKAGE_DIR, target_is_directory=True)
    site = subprocess.run([str(_python_in(folder)), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "airflow_mlpipe_runtime.pth").write_text(str(runtime) + "\n")
    marker = {**asdict(plan), "content_hash": plan.content_hash, "built_at": time.time()}
    (folder / MARKER).write_text(json.dumps(marker, indent=1))


def ensure_environment(home: str | os.PathLike, plan: EnvironmentPlan, log: logging.Logger) -> tuple[Path, bool]:
    """The interpreter of ``plan``'s environment, built unless another step built it; (python, built now)."""
    root = environments_root(home)
    folder = root / plan.content_hash
    built = False
    if not (folder / MARKER).exists():
        with _locked(root / f"{plan.content_hash}.lock"):
            if not (folder / MARKER).exists():
                start = time.monotonic()
                _build(folder, plan, log)
                built = True
                log.info("Environment %r (hash %s) built in %.1f s at %s", plan.name, plan.content_hash,
                         time.monotonic() - start, folder)
    if not built:
        log.info("Environment %r (hash %s) reused from %s", plan.name, plan.content_hash, folder)
    (folder / LAST_USED).touch()
    return _python_in(folder), built


def max_age_days(config: Mapping[str, Any] | None = None) -> float:
    value = (config or {}).get(MAX_AGE_OPTION) or os.environ.get(MAX_AGE_ENV) or DEFAULT_MAX_AGE_DAYS
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EnvironmentBuildError(f"{MAX_AGE_OPTION}={value!r}: expected a number of days") from None


def collect_garbage(home: str | os.PathLike, max_age: float, log: logging.Logger | None = None) -> list[str]:
    """Remove environments not used for ``max_age`` days (skipping any being built); returns their hashes."""
    root = environments_root(home)
    if not root.is_dir():
        return []
    cutoff = time.time() - max_age * 86400
    removed: list[str] = []
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        stamp = folder / LAST_USED if (folder / LAST_USED).exists() else folder
        if stamp.stat().st_mtime >= cutoff:
            continue
        with _locked(root / f"{folder.name}.lock", blocking=False) as got:
            if got and stamp.exists() and stamp.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    if removed and log is not None:
        log.info("Removed %d environment(s) unused for %g days: %s", len(removed), max_age, ", ".join(removed))
    return removed


def python_for_step(ex: Any) -> str:
    """The interpreter a PythonScriptStep's script runs with: its built environment's, or the worker's."""
    step = ex.step
    env = (step.get("runconfig") or {}).get("environment")
    where = f"Step {step['name']!r}"
    if env and (env.get("python") or {}).get("user_managed"):
        path = (env.get("python") or {}).get("interpreter_path") or "python"
        if path != "python":
            found = shutil.which(path)
            if found is None:
                raise EnvironmentBuildError(f"{where}: environment {env.get('name')!r} is user-managed with "
                                            f"interpreter_path={path!r}, which is not on this worker")
            ex.log.info("%s: environment %r is user-managed: running with %s", where, env.get("name"), found)
            return found
    plan = plan_environment(env, ex.workspace.store_url, where)
    if plan is None:
        return sys.executable
    if plan.skipped:
        ex.log.info("Environment %r: not installing %s: airflow-mlpipe's compatibility layer provides azureml.* "
                    "in every step", plan.name, ", ".join(plan.skipped))
    python, built = ensure_environment(ex.workspace.home, plan, ex.log)
    if built:
        collect_garbage(ex.workspace.home, max_age_days(ex.workspace.config), ex.log)
    return str(python)
