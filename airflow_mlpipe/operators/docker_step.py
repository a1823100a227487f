"""DockerStepOperator: a PythonScriptStep whose environment has a Docker image (or whose compute target is a
Docker target), run in a container through the Airflow Docker provider's ``DockerOperator``.

It *is* a ``DockerOperator`` (the provider's container life: pull, create with mounts and environment, attach
the output to the task log, wait, remove; stop on kill), wrapped in the shared step lifecycle of every step kind
(cache key, reuse, staged outputs committed atomically). What is mounted and which variables the container gets
is decided in :mod:`airflow_mlpipe.runtime.docker_runner`; the container's fields are set just before it runs.
Secrets go to ``private_environment``: ``environment`` is a template field the UI renders.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator

from airflow_mlpipe.operators.base import MlpipeStepOperator
from airflow_mlpipe.runtime import docker_runner as dr
from airflow_mlpipe.runtime.step_runner import StepExecution, StepFailed, StepResult

#: seconds the Docker client waits on one read: the container's output stream is a read, and a step may print
#: nothing for hours (``docker_client_timeout`` in the workspace config changes it)
CLIENT_TIMEOUT_S = 7 * 24 * 3600
#: images that passed the Python check in this process: (engine, image id, runtime folder)
_CHECKED: set[tuple[str, str, str]] = set()


class DockerStepOperator(MlpipeStepOperator, DockerOperator):
    """A PythonScriptStep in a Docker container; the container is stopped and removed when the task is killed."""

    ui_color = "#bae6fd"
    cache_wait_defers = True  # the shared lifecycle passes the wait signal on: a waiting step holds no slot
    template_fields = ("image", "environment")
    template_ext = ()

    def __init__(self, *, step: dict[str, Any], pipeline: dict[str, Any], **kwargs: Any) -> None:
        settings = dr.docker_settings(step) or {"image": dr.DEFAULT_IMAGE}
        public, private = dr.static_environment(step)
        kwargs.setdefault("image", settings["image"])
        kwargs.setdefault("environment", public)
        kwargs.setdefault("private_environment", {k: "(resolved on the worker)" for k in private})
        kwargs.setdefault("mount_tmp_dir", False)  # a worker temp folder is not visible to a host's engine
        kwargs.setdefault("auto_remove", "force")  # removed after it ends, failed or not, and when killed
        kwargs.setdefault("tty", False)
        super().__init__(step=step, pipeline=pipeline, **kwargs)

    # ------------------------------------------------------------------ the step
    def execute(self, context: Any) -> dict[str, Any]:
        self._context = context
        return super().execute(context)

    def run_step(self, execution: StepExecution) -> StepResult:
        config = execution.workspace.config
        if config.get(dr.CONFIG_URL):
            self.docker_url = config[dr.CONFIG_URL]
        self.timeout = int(config.get("docker_client_timeout") or CLIENT_TIMEOUT_S)
        return dr.run_docker_step(execution, self)

    def _use(self, plan: dr.ContainerPlan) -> None:
        from docker.types import Mount

        self.image = plan.image
        self.command = plan.command
        self.working_dir = plan.working_dir
        self.environment = dict(plan.environment)
        self._private_environment = dict(plan.private_environment)
        self.mounts = [Mount(**m) for m in plan.mounts]
        self.user = plan.user
        self.network_mode = plan.network_mode or self.network_mode
        self.shm_size = plan.shm_size or self.shm_size
        self.labels = plan.labels

    def _pull(self, image: str) -> None:
        if self.cli.images(name=image):
            return
        self.log.info("Pulling Docker image %s", image)
        try:
            for event in self.cli.pull(image, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise StepFailed(f"Step {self.step['name']!r}: pulling Docker image {image!r} failed: "
                                     f"{event['error']}")
                if isinstance(event, dict) and "id" not in event and event.get("status"):
                    self.log.info("%s", event["status"])
        except Exception as exc:
            if isinstance(exc, StepFailed):
                raise
            raise StepFailed(f"Step {self.step['name']!r}: pulling Docker image {image!r} failed: "
                             f"{getattr(exc, 'explanation', None) or exc}") from None

    def _build(self, plan: dr.ContainerPlan) -> None:
        """``Environment.from_dockerfile``: build the image once per Dockerfile content (its tag is the hash)."""
        import io

        if self.cli.images(name=plan.image):
            return
        self.log.info("Building Docker image %s from the environment's Dockerfile", plan.image)
        try:
            for event in self.cli.build(fileobj=io.BytesIO(plan.dockerfile.encode()), tag=plan.image, rm=True,
                                        decode=True):
                if event.get("error"):
                    raise StepFailed(f"Step {plan.step_name!r}: building the Dockerfile image failed: "
                                     f"{event['error'].strip()}")
                if event.get("stream", "").strip():
                    self.log.info("%s", event["stream"].rstrip())
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(f"Step {plan.step_name!r}: building the Dockerfile image failed: "
                             f"{getattr(exc, 'explanation', None) or exc}") from None

    # ------------------------------------------------------------------ ContainerEngine
    def check_python(self, plan: dr.ContainerPlan) -> None:
        """Run the step runtime's check in the image before the step: a clear error when the image has no
        Python, or one too old to run the step runtime (cached per image and runtime version)."""
        from docker.errors import APIError
        from docker.types import Mount

        if plan.dockerfile:
            self._build(plan)
        else:
            self._pull(plan.image)
        image_id = self.cli.inspect_image(plan.image)["Id"]
        runtime = plan.runtime
        if (self.docker_url, image_id, runtime) in _CHECKED:
            return
        where = (f"Step {plan.step_name!r}: Docker image {plan.image!r} cannot run the step runtime (it needs a "
                 "Python >= 3.10 as 'python', or the environment's python.interpreter_path)")
        env = {k: v for k, v in plan.environment.items() if k in ("PYTHONPATH", "HOME")}
        container = self.cli.create_container(
            image=plan.image, command=[plan.command[0], "-c", dr.PYTHON_CHECK], environment=env,
            working_dir=plan.working_dir, user=plan.user, labels={**plan.labels, "mlpipe.check": "python"},
            host_config=self.cli.create_host_config(mounts=[Mount(**m) for m in plan.mounts],
                                                    network_mode=plan.network_mode))
        try:
            try:
                self.cli.start(container["Id"])
            except APIError as exc:
                raise StepFailed(f"{where}: {exc.explanation or exc}") from None
            code = self.cli.wait(container["Id"])["StatusCode"]
            output = self.cli.logs(container["Id"], stdout=True, stderr=True).decode(errors="replace").strip()
        finally:
            self.cli.remove_container(container["Id"], force=True)
        if code != 0:
            last = output.splitlines()[-1] if output else f"exit code {code}"
            raise StepFailed(f"{where}: {last}")
        self.log.info("Docker image %s: %s", plan.image, output.splitlines()[-1] if output else "OK")
        _CHECKED.add((self.docker_url, image_id, runtime))

    def run(self, plan: dr.ContainerPlan) -> tuple[int, list[str]]:
        """The provider's container life with this plan; returns (exit code, last lines of output)."""
        from docker.errors import APIError

        if getattr(self, "_killed", False):  # stopped while the image was being checked: never start the step
            raise StepFailed(f"Step {plan.step_name!r}: the task was stopped before its container started")
        self._use(plan)
        timer = None
        if plan.timeout:
            timer = threading.Timer(plan.timeout, self._time_out, args=(plan.timeout,))
            timer.daemon = True
            timer.start()
        try:
            DockerOperator.execute(self, self._context)
            return 0, []
        except APIError as exc:
            raise StepFailed(f"Step {plan.step_name!r}: the Docker engine refused the container of image "
                             f"{plan.image!r}: {exc.explanation or exc}") from None
        except DockerContainerFailedException as exc:
            found = re.search(r"'StatusCode': (-?\d+)", str(exc))
            tail = list(exc.logs or [])[-40:]
            if getattr(self, "_timed_out", None):
                tail.append(f"killed: the step ran longer than max_run_duration_seconds={self._timed_out}")
            return (int(found.group(1)) if found else 1), tail
        finally:
            if timer is not None:
                timer.cancel()

    def _time_out(self, seconds: int) -> None:
        self._timed_out = seconds
        if self.container is not None:
            self.log.warning("Step %r ran longer than max_run_duration_seconds=%s: stopping its container",
                             self.step["name"], seconds)
            self.cli.stop(self.container["Id"], timeout=5)

    def on_kill(self) -> None:
        """Airflow stops the task: stop the container (SIGTERM, SIGKILL after 10 s); its output stream then ends,
        the provider removes it and the step ends Canceled. Called from the SIGTERM handler, i.e. on the thread
        that may be inside the Docker client or a logging call: the stop runs on its own thread."""
        self._killed = True
        container = self.container
        if container is None:
            return
        threading.Thread(target=self._stop, args=(container["Id"],), name="mlpipe-docker-stop", daemon=True).start()

    def _stop(self, container_id: str) -> None:
        from docker.errors import APIError

        try:
            self.cli.stop(container_id)
            self.log.info("on_kill: stopped Docker container %s", container_id[:12])
        except APIError as exc:  # already gone
            self.log.info("on_kill: Docker container %s: %s", container_id[:12], exc.explanation or exc)
