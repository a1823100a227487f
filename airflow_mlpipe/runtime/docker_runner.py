"""A PythonScriptStep in a Docker container: what it mounts, the environment it gets, and the shared lifecycle.

The step is staged exactly as a local step (source snapshot, inputs, output staging, run context file, metrics
file, the same variables) in a *container work folder* the Docker engine can see, and every path is mounted at the
same path inside the container, so no path in the variables, arguments or run context needs rewriting. Outputs are
committed by the worker afterwards, as for a local step. The engine runs on the host, not in the worker: when the
worker itself runs in a container (the compose setup), a worker folder is only visible to the engine through a
named volume, which the workspace config names (``docker_volumes``: worker folder -> volume).

The container needs no airflow-mlpipe installed: the step runtime's Python sources (``azureml`` compatibility
layer included) are copied once per version into the work folder and put on ``PYTHONPATH``; the image must bring a
Python >= 3.10 that imports them, which is checked before the step starts. Independent of Airflow: the operator
hands in a :class:`ContainerEngine` that runs containers (``DockerOperator`` in a DAG).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from airflow_mlpipe.contract.paths import relative_path
from airflow_mlpipe.runtime.step_env import _PASS_THROUGH, is_secret_name, requested_variables
from airflow_mlpipe.runtime.step_runner import (
    StepExecution,
    StepFailed,
    StepResult,
    StepWork,
    _ingest_run_records,
    _Inputs,
    _token_value,
    execute_step,
    script_failed,
    stage_script,
)

#: the image a step on a Docker compute target runs in when its environment names none
DEFAULT_IMAGE = "python:3.11-slim"
#: compute target types whose steps run in a container
DOCKER_COMPUTE_TYPES = frozenset({"docker"})
#: workspace config keys
CONFIG_URL = "docker_url"  # the engine: unix:///var/run/docker.sock (or DOCKER_HOST) by default
CONFIG_VOLUMES = "docker_volumes"  # {"/shared": "mlpipe_mlpipe-shared"}: worker folders the engine sees as volumes
CONFIG_WORKDIR = "docker_workdir"  # where container work folders go (default <home>/docker-work)
CONFIG_IMAGE = "docker_image"  # the default image of Docker compute targets
CONFIG_USER = "docker_user"  # "uid:gid" the container runs as (default: the worker's; "" = the image's)
CONFIG_NETWORK = "docker_network_mode"  # e.g. "host" for a step that reaches services on the worker's host
#: run in the image before the step: a Python that runs the step runtime (3.10+, imports the compat layer)
PYTHON_CHECK = ("import sys; assert sys.version_info >= (3, 10), 'Python ' + sys.version.split()[0] + "
                "' is older than 3.10'; import azureml.core; print('step runtime OK on Python', "
                "sys.version.split()[0])")


@dataclass
class ContainerPlan:
    """One container run: the fields ``DockerOperator`` takes, ready to hand over."""

    image: str
    command: list[str]
    working_dir: str
    #: shown in the UI (``DockerOperator.environment`` is a rendered template field)
    environment: dict[str, str]
    #: secrets and worker variables passed through (``DockerOperator.private_environment``, never rendered)
    private_environment: dict[str, str]
    #: ``docker.types.Mount`` keyword arguments: target, source, type ("bind" | "volume"), read_only
    mounts: list[dict[str, Any]]
    user: str | None = None
    #: ``Environment.from_dockerfile``: the image is built from this text (tagged ``image``) unless present
    dockerfile: str | None = None
    #: the step runtime's folder (see :func:`runtime_folder`): what the image's Python check imports
    runtime: str = ""
    network_mode: str | None = None
    shm_size: int | None = None
    timeout: int | None = None
    step_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)


class ContainerEngine(Protocol):
    """What the runtime needs from Docker: check an image, run a container to its end."""

    def check_python(self, plan: ContainerPlan) -> None:
        """Raise :class:`StepFailed` unless the image runs :data:`PYTHON_CHECK` (pull it first if needed)."""

    def run(self, plan: ContainerPlan) -> tuple[int, list[str]]:
        """Run the container (output into the task log); returns (exit code, last lines of output)."""


def docker_settings(step: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """How the step runs in Docker (``image``, ``dockerfile``, ``shm_size``), or None for a local step: its
    environment has a base image or Dockerfile (``Environment.from_docker_image``/``from_dockerfile``,
    ``docker.enabled``), or its compute target is a Docker target."""
    runconfig = step.get("runconfig") or {}
    docker = (runconfig.get("environment") or {}).get("docker") or {}
    on_target = (step.get("compute") or {}).get("type") in DOCKER_COMPUTE_TYPES
    if not (docker.get("enabled") or docker.get("base_image") or docker.get("base_dockerfile") or on_target):
        return None
    image = docker.get("base_image")
    if not image and docker.get("base_dockerfile"):  # built once per Dockerfile content, tagged by its hash
        image = "mlpipe-env:" + hashlib.sha256(docker["base_dockerfile"].encode()).hexdigest()[:16]
    image = image or (config or {}).get(CONFIG_IMAGE) or DEFAULT_IMAGE
    return {"image": image, "dockerfile": docker.get("base_dockerfile"), "shm_size": docker.get("shm_size"),
            "arguments": list(docker.get("arguments") or [])}


def uses_docker(step: dict[str, Any]) -> bool:
    return step.get("kind") == "PythonScriptStep" and docker_settings(step) is not None


def work_root(ex: StepExecution) -> Path:
    root = Path(ex.workspace.config.get(CONFIG_WORKDIR) or Path(ex.workspace.home) / "docker-work")
    root.mkdir(parents=True, exist_ok=True)
    return root


def runtime_folder(root: Path) -> Path:
    """The step runtime's Python sources under ``root/runtime/<digest>`` (copied once per version), so an image
    needs no airflow-mlpipe installed and a worker in a container needs no bind mount of its site-packages."""
    package = Path(__file__).resolve().parents[1]
    files = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(f"{p.relative_to(package)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    target = root / "runtime" / digest.hexdigest()[:16]
    if (target / package.name).is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".runtime-", dir=root))
    for p in files:
        dest = staging / package.name / p.relative_to(package)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dest)
    try:
        os.rename(staging, target)  # atomic: concurrent steps copy alike, the first rename wins
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / package.name).is_dir():
            raise
    return target


def container_mounts(paths: list[str], volumes: dict[str, str], read_only: set[str] | None = None,
                     ) -> list[dict[str, Any]]:
    """Mounts that make each worker path visible at the same path in the container: the named volume of the
    worker folder it lies in (``volumes``), else a bind mount of the path; nested paths share their parent's."""
    read_only = read_only or set()
    chosen: dict[str, dict[str, Any]] = {}
    by_depth = sorted({os.path.normpath(p) for p in paths}, key=lambda p: (p.count(os.sep), p))
    for path in by_depth:
        if any(path == t or path.startswith(t.rstrip(os.sep) + os.sep) for t in chosen):
            continue
        volume = next(((prefix, name) for prefix, name in sorted(volumes.items(), key=lambda i: -len(i[0]))
                       if path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep)), None)
        if volume is not None:
            prefix = os.path.normpath(volume[0])
            chosen = {t: m for t, m in chosen.items() if not t.startswith(prefix.rstrip(os.sep) + os.sep)}
            chosen[prefix] = {"target": prefix, "source": volume[1], "type": "volume", "read_only": False}
        else:
            chosen[path] = {"target": path, "source": path, "type": "bind", "read_only": path in read_only}
    return [chosen[t] for t in sorted(chosen)]


def split_environment(step: dict[str, Any], env: dict[str, str], worker: dict[str, str] | None = None,
                      ) -> tuple[dict[str, str], dict[str, str]]:
    """The container's variables from a local step's (``_script_env``): the worker's own variables stay behind
    (the image has its own ``PATH``, ``HOME``, ...) unless the step asked for them; secret-looking names and
    worker variables passed through (``$NAME``) go to the private part, which the UI never renders."""
    worker = dict(os.environ) if worker is None else worker
    requested = requested_variables(step)
    public: dict[str, str] = {}
    private: dict[str, str] = {}
    for name, value in env.items():
        ours = name.startswith(("AZUREML_", "AZ_")) or name == "MLPIPE_WORKSPACE_HOME" or name in requested
        if not ours and worker.get(name) == value:
            continue
        passed = name in requested and _PASS_THROUGH.match(requested[name]) is not None
        (private if is_secret_name(name) or passed else public)[name] = value
    return public, private


def static_environment(step: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """What the UI may show before the run: the runconfig's literal variables (secrets and ``$NAME`` worker
    references kept private)."""
    public: dict[str, str] = {}
    private: dict[str, str] = {}
    for name, value in requested_variables(step).items():
        secret = is_secret_name(name) or _PASS_THROUGH.match(value) is not None
        (private if secret else public)[name] = value
    return public, private


def _local_paths(values: list[str]) -> list[str]:
    return [v for v in values if os.path.isabs(v) and os.path.exists(v)]


def _plan(ex: StepExecution, settings: dict[str, Any], cwork: Path, snapshot: Path, runtime: Path,
          inputs: _Inputs, outputs: Any, env: dict[str, str]) -> ContainerPlan:
    step = ex.step
    config = ex.workspace.config
    interpreter = ((step.get("runconfig") or {}).get("environment") or {}).get("python", {}).get(
        "interpreter_path") or "python"
    script = relative_path(step["script_name"], f"Step {step['name']!r}: script_name")
    argv = [interpreter, script] + [_token_value(ex, t, inputs, outputs) for t in step["arguments"]]
    public, private = split_environment(step, env)
    requested = requested_variables(step)
    pythonpath = [str(runtime / "airflow_mlpipe" / "compat"), str(runtime), str(snapshot)]
    if "PYTHONPATH" in requested:  # what the step asked for, after the worker's compat layer and snapshot
        from airflow_mlpipe.runtime.step_runner import COMPAT_PATH

        pythonpath += [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                       if p and p not in (COMPAT_PATH, str(snapshot))]
    public.update({"PYTHONPATH": os.pathsep.join(pythonpath), "PYTHONUNBUFFERED": "1", "HOME": str(cwork)})
    staging_parents = [str(Path(p).parent) for p in outputs.local_paths().values()]
    paths = [str(cwork), str(runtime), *staging_parents, *_local_paths(list(inputs.arg_values.values()))]
    mounts = container_mounts(paths, dict(config.get(CONFIG_VOLUMES) or {}), read_only={str(runtime)})
    user = config.get(CONFIG_USER)
    if user is None and hasattr(os, "getuid"):
        user = f"{os.getuid()}:{os.getgid()}"  # outputs owned by the worker, which commits (moves) them
    timeout = (step.get("runconfig") or {}).get("max_run_duration_seconds")
    return ContainerPlan(image=settings["image"], command=argv, working_dir=str(snapshot), environment=public,
                         private_environment=private, mounts=mounts, user=user or None,
                         network_mode=config.get(CONFIG_NETWORK), shm_size=settings.get("shm_size"),
                         timeout=timeout, step_name=step["name"],
                         runtime=str(runtime),
                         dockerfile=settings["dockerfile"] if settings["image"].startswith("mlpipe-env:") else None,
                         labels={"mlpipe.step_run": ex.step_run_id, "mlpipe.step": step["name"]})


def _move_object_store_staging(outputs: Any, workdir: Path) -> None:
    """Outputs bound for an object store were staged in the container work folder (removed with it): move them
    to the step's own work folder, from which the commit uploads them."""
    for item in outputs.items:
        if item["store"].is_local or item["on_store"]:
            continue
        dest = workdir / "outputs" / item["spec"]["name"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(item["staging"]):
            shutil.move(item["staging"], dest)
        item["staging"] = str(dest)


def docker_body(engine: ContainerEngine) -> Any:
    """A step body (see ``step_runner.StepBody``) that runs the step's script in a container of ``engine``."""
    def body(ex: StepExecution, workdir: Path, upstream: dict[str, dict[str, Any]], manifest: dict[str, str],
             work: StepWork) -> None:
        step = ex.step
        settings = docker_settings(step, ex.workspace.config)
        if settings is None:
            raise StepFailed(f"Step {step['name']!r} has no Docker image and no Docker compute target")
        root = work_root(ex)
        cwork = Path(tempfile.mkdtemp(prefix=f"{step['task_id']}-", dir=root))
        try:
            stage = stage_script(ex, cwork, upstream, manifest, work)
            snapshot, inputs, outputs = stage.snapshot, stage.inputs, stage.outputs
            env = stage.env(ex)
            plan = _plan(ex, settings, cwork, snapshot, runtime_folder(root), inputs, outputs, env)
            work.details["docker"] = {"image": plan.image, "mounts": plan.mounts}
            ex.log.info("Step %r: running %s in Docker image %s (mounts: %s)", step["name"],
                        " ".join(plan.command[1:]), plan.image,
                        ", ".join(f"{m['source']}->{m['target']}" for m in plan.mounts))
            packages = (((step.get("runconfig") or {}).get("environment") or {}).get("python") or {}).get("conda")
            if packages and (packages.get("pip") or packages.get("conda")):
                ex.log.warning("Step %r: the environment's pip/conda packages are not installed into Docker image "
                               "%s: the image must bring them", step["name"], plan.image)
            engine.check_python(plan)
            code, tail = engine.run(plan)
            script_error = _ingest_run_records(ex, stage.metrics_file)
            _move_object_store_staging(outputs, workdir)
        finally:
            shutil.rmtree(cwork, ignore_errors=True)
        script_failed(ex, code, tail, script_error, where=f" in Docker image {plan.image}")

    return body


def run_docker_step(ex: StepExecution, engine: ContainerEngine) -> StepResult:
    """Run a PythonScriptStep in a container of ``engine``, or reuse a verified earlier result."""
    return execute_step(ex, docker_body(engine))


__all__ = ["DEFAULT_IMAGE", "ContainerEngine", "ContainerPlan", "container_mounts", "docker_settings",
           "run_docker_step", "split_environment", "static_environment", "uses_docker"]
