"""A Docker Engine API double on a unix socket, for driving the real ``docker`` client and ``DockerOperator``.

No Docker engine runs on the test machines. This double speaks the Engine HTTP API (the subset a container's
life uses: ping, version, image list/pull/inspect, container create/inspect/attach/start/logs/wait/stop/kill/
remove, volume inspect) and runs a container's command as a local subprocess: the image's ``python`` is a real
host interpreter, the container's environment is exactly what was created (plus the image's ``PATH``), and its
mounts must be at the same path as on the host (bind source == target, or a named volume whose host folder is the
target), which is what airflow-mlpipe's Docker steps do. Anything else is refused with an error, as an engine
would refuse a bad mount, so the double never pretends to isolate what it cannot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_VERSION = "1.44"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ImageDouble:
    """An image the double's registry can pull: its ``python`` runs as ``python`` (None: the image has none)."""

    name: str
    python: str | None = None
    env: list[str] = field(default_factory=lambda: [f"PATH={IMAGE_PATH}"])
    id: str = field(default_factory=lambda: "sha256:" + uuid.uuid4().hex * 2)


@dataclass
class ContainerDouble:
    id: str
    name: str
    image: str
    config: dict[str, Any]
    mounts: list[dict[str, Any]]
    env: dict[str, str]
    status: str = "created"
    exit_code: int | None = None
    proc: subprocess.Popen | None = None
    #: (stream, bytes): 1 stdout, 2 stderr, in the order the process wrote them
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    readers: list[threading.Thread] = field(default_factory=list)
    stopped_by: str | None = None

    def output(self) -> str:
        return b"".join(data for _, data in self.frames).decode(errors="replace")


def _frame(stream: int, data: bytes) -> bytes:
    """The Engine's multiplexed stream format: 8-byte header (stream, 0, 0, 0, big-endian size), then data."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def _normal(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class DockerEngineDouble:
    """Start with :meth:`start` (or as a context manager); ``url`` is what ``docker_url`` takes."""

    def __init__(self, folder: str | None = None) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="mlpipe-docker-"))
        self.socket_path = str(self.folder / "docker.sock")
        self.url = f"unix://{self.socket_path}"
        self.registry: dict[str, ImageDouble] = {}
        self.present: set[str] = set()  # pulled images
        self.containers: dict[str, ContainerDouble] = {}
        self.removed: dict[str, ContainerDouble] = {}
        self.volumes: dict[str, str] = {}  # named volume -> host folder
        self.builds: list[dict[str, str]] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    # ------------------------------------------------------------------ setup
    def add_image(self, name: str, python: str | None = None, pulled: bool = False) -> ImageDouble:
        image = ImageDouble(_normal(name), python)
        self.registry[image.name] = image
        if pulled:
            self.present.add(image.name)
        return image

    def add_volume(self, name: str, host_folder: str) -> None:
        self.volumes[name] = host_folder

    def start(self) -> DockerEngineDouble:
        double = self

        class Handler(_Handler):
            engine = double

        self._server = socketserver.ThreadingUnixStreamServer(self.socket_path, Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="docker-double", daemon=True).start()
        return self

    def stop(self) -> None:
        for c in list(self.containers.values()):
            self._signal(c, signal.SIGKILL)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> DockerEngineDouble:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ what tests look at
    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p in self.requests if method is None or m == method]

    def all_containers(self) -> list[ContainerDouble]:
        return list(self.removed.values()) + list(self.containers.values())

    def wait_for_running(self, timeout: float = 60.0, where: Any = None) -> ContainerDouble:
        """The first running container that wrote output (and for which ``where(container)`` holds, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in list(self.containers.values()):
                if where is not None and not where(c):
                    continue
                if c.status == "running" and c.frames:
                    return c
            time.sleep(0.05)
        raise AssertionError("no container started (and wrote output) in time")

    # ------------------------------------------------------------------ container life
    def create(self, name: str | None, body: dict[str, Any]) -> ContainerDouble:
        image = _normal(body["Image"])
        if image not in self.present:
            raise _ApiError(404, f"No such image: {image}")
        host = body.get("HostConfig") or {}
        mounts = []
        for m in host.get("Mounts") or []:
            mounts.append({"Type": m.get("Type", "volume"), "Source": m.get("Source"), "Target": m["Target"],
                           "ReadOnly": bool(m.get("ReadOnly"))})
        for b in host.get("Binds") or []:  # "src:dst[:ro]"
            src, dst, *mode = b.split(":")
            mounts.append({"Type": "bind", "Source": src, "Target": dst, "ReadOnly": mode == ["ro"]})
        env = dict(e.split("=", 1) for e in self.registry[image].env)
        env.update(e.split("=", 1) for e in body.get("Env") or [])
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        container = ContainerDouble(cid, name or cid[:12], image, body, mounts, env)
        with self.lock:
            if name and any(c.name == name for c in self.containers.values()):
                raise _ApiError(409, f'Conflict. The container name "/{name}" is already in use')
            self.containers[cid] = container
        return container

    def find(self, ref: str) -> ContainerDouble:
        for c in self.containers.values():
            if c.id.startswith(ref) or c.name == ref:
                return c
        raise _ApiError(404, f"No such container: {ref}")

    def _argv(self, c: ContainerDouble) -> list[str]:
        cfg = c.config
        entry = cfg.get("Entrypoint") or []
        cmd = cfg.get("Cmd") or []
        argv = list(entry if isinstance(entry, list) else [entry]) + list(cmd if isinstance(cmd, list) else [cmd])
        if not argv:
            raise _ApiError(400, "no command specified")
        exe = os.path.basename(argv[0])
        python = self.registry[c.image].python
        if re.fullmatch(r"python(3(\.\d+)?)?", exe) and python:
            return [python, *argv[1:]]
        if argv[0] in ("sh", "/bin/sh"):
            return ["/bin/sh", *argv[1:]]
        raise _ApiError(400, "failed to create task for container: failed to create shim task: OCI runtime "
                             "create failed: runc create failed: unable to start container process: exec: "
                             f'"{argv[0]}": executable file not found in $PATH: unknown')

    def _check_mounts(self, c: ContainerDouble) -> None:
        for m in c.mounts:
            if m["Type"] == "bind":
                if not os.path.exists(m["Source"]):
                    raise _ApiError(400, f'invalid mount config for type "bind": bind source path does not '
                                         f'exist: {m["Source"]}')
                host = m["Source"]
            elif m["Type"] == "volume":
                if m["Source"] not in self.volumes:
                    raise _ApiError(404, f"no such volume: {m['Source']} (the double knows "
                                         f"{sorted(self.volumes)})")
                host = self.volumes[m["Source"]]
            else:
                raise _ApiError(400, f"mount type {m['Type']!r} is not supported by the double")
            if os.path.realpath(host) != os.path.realpath(m["Target"]):
                raise _ApiError(400, f"the docker engine double runs containers as host processes and cannot "
                                     f"remap {host} to {m['Target']}: mount at the same path")

    def run(self, c: ContainerDouble) -> None:
        if c.status == "running":
            return
        argv = self._argv(c)
        self._check_mounts(c)
        cwd = c.config.get("WorkingDir") or ""
        if not cwd or not os.path.isdir(cwd):
            cwd = tempfile.mkdtemp(prefix="container-root-", dir=self.folder)
        c.proc = subprocess.Popen(argv, cwd=cwd, env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        c.status = "running"
        c.readers = [threading.Thread(target=self._pump, args=(c, c.proc.stdout, 1), daemon=True),
                     threading.Thread(target=self._pump, args=(c, c.proc.stderr, 2), daemon=True)]
        for t in c.readers:
            t.start()
        threading.Thread(target=self._reap, args=(c,), daemon=True).start()

    @staticmethod
    def _pump(c: ContainerDouble, pipe: Any, stream: int) -> None:
        for line in iter(pipe.readline, b""):
            with c.changed:
                c.frames.append((stream, line))
                c.changed.notify_all()
        pipe.close()

    @staticmethod
    def _reap(c: ContainerDouble) -> None:
        assert c.proc is not None
        code = c.proc.wait()
        for t in c.readers:
            t.join()
        with c.changed:
            c.exit_code = code if code >= 0 else 128 - code  # killed by a signal: 128 + signal, as Docker reports
            c.status = "exited"
            c.changed.notify_all()

    def _signal(self, c: ContainerDouble, sig: int) -> None:
        if c.proc is not None and c.status == "running":
            try:
                os.killpg(c.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop_container(self, c: ContainerDouble, timeout: float) -> bool:
        if c.status != "running":
            return False
        c.stopped_by = "stop"
        self._signal(c, signal.SIGTERM)
        with c.changed:
            if not c.changed.wait_for(lambda: c.status == "exited", timeout=timeout):
                self._signal(c, signal.SIGKILL)
                c.changed.wait_for(lambda: c.status == "exited", timeout=10)
        return True

    def remove(self, c: ContainerDouble, force: bool) -> None:
        if c.status == "running":
            if not force:
                raise _ApiError(409, f"cannot remove container {c.name}: container is running: stop the "
                                     "container before removing or force remove")
            c.stopped_by = c.stopped_by or "remove"
            self._signal(c, signal.SIGKILL)
            with c.changed:
                c.changed.wait_for(lambda: c.status == "exited", timeout=10)
        with self.lock:
            self.removed[c.id] = self.containers.pop(c.id)
        c.status = "removed"

    def inspect(self, c: ContainerDouble) -> dict[str, Any]:
        running = c.status == "running"
        return {"Id": c.id, "Name": f"/{c.name}", "Image": self.registry[c.image].id,
                "Config": {**c.config, "Tty": bool(c.config.get("Tty")), "Env": [f"{k}={v}" for k, v in
                                                                                    c.env.items()]},
                "State": {"Status": c.status, "Running": running, "ExitCode": c.exit_code or 0,
                          "Pid": c.proc.pid if c.proc and running else 0},
                "Mounts": [{"Type": m["Type"], "Source": m["Source"], "Destination": m["Target"],
                            "RW": not m["ReadOnly"]} for m in c.mounts]}


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: DockerEngineDouble

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass

    def address_string(self) -> str:  # a unix socket has no (host, port) peer
        return "unix"

    # ------------------------------------------------------------------ plumbing
    def _send_json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _body(self) -> dict[str, Any]:
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else b""
        return json.loads(raw) if raw.strip() else {}

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = re.sub(r"^/v[\d.]+", "", unquote(url.path))
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.engine.requests.append((method, path))
        try:
            self._dispatch(method, path, query)
        except _ApiError as exc:
            self._send_json(exc.status, {"message": exc.message})

    do_GET = lambda self: self._route("GET")  # noqa: E731
    do_POST = lambda self: self._route("POST")  # noqa: E731
    do_DELETE = lambda self: self._route("DELETE")  # noqa: E731
    do_HEAD = lambda self: self._route("HEAD")  # noqa: E731

    # ------------------------------------------------------------------ the API
    def _dispatch(self, method: str, path: str, q: dict[str, str]) -> None:  # noqa: C901 - one route table
        e = self.engine
        if path == "/_ping":
            body = b"OK"
            self.send_response(200)
            self.send_header("Api-Version", API_VERSION)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)
            return
        if path == "/version":
            return self._send_json(200, {"Version": "25.0.0-mlpipe-double", "ApiVersion": API_VERSION,
                                         "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"})
        if path == "/images/json":
            refs = json.loads(q.get("filters") or "{}").get("reference") or []
            refs = list(refs) if isinstance(refs, list) else list(refs)
            found = [e.registry[n] for n in sorted(e.present) if not refs or n in {_normal(r) for r in refs}]
            return self._send_json(200, [{"Id": i.id, "RepoTags": [i.name]} for i in found])
        if path == "/build" and method == "POST":
            return self._build(q.get("t") or "")
        if path == "/images/create" and method == "POST":
            return self._pull(_normal(f"{q['fromImage']}:{q['tag']}" if q.get("tag") else q["fromImage"]))
        m = re.fullmatch(r"/images/(.+)/json", path)
        if m:
            name = _normal(m.group(1))
            if name not in e.present:
                raise _ApiError(404, f"No such image: {name}")
            image = e.registry[name]
            return self._send_json(200, {"Id": image.id, "RepoTags": [name], "Config": {"Env": image.env}})
        m = re.fullmatch(r"/volumes/([^/]+)", path)
        if m and method == "GET":
            if m.group(1) not in e.volumes:
                raise _ApiError(404, f"get {m.group(1)}: no such volume")
            return self._send_json(200, {"Name": m.group(1), "Mountpoint": e.volumes[m.group(1)]})
        if path == "/containers/create" and method == "POST":
            c = e.create(q.get("name"), self._body())
            return self._send_json(201, {"Id": c.id, "Warnings": []})
        m = re.fullmatch(r"/containers/([^/]+)(/[a-z]+)?", path)
        if not m:
            raise _ApiError(404, f"page not found: {method} {path}")
        c = e.find(m.group(1))
        action = m.group(2) or ""
        if action == "/json":
            return self._send_json(200, e.inspect(c))
        if action == "/start":
            self._body()
            e.run(c)
            return self._send_empty(204)
        if action == "/attach":
            return self._stream(c, follow=True, hijack=True)
        if action == "/logs":
            return self._stream(c, follow=q.get("follow") in ("1", "true", "True"), hijack=False,
                                tail=q.get("tail"))
        if action == "/wait":
            with c.changed:
                c.changed.wait_for(lambda: c.status in ("exited", "created", "removed"))
            return self._send_json(200, {"StatusCode": c.exit_code if c.exit_code is not None else 0,
                                         "Error": None})
        if action == "/stop":
            stopped = e.stop_container(c, float(q.get("t") or 10))
            return self._send_empty(204 if stopped else 304)
        if action == "/kill":
            if c.status != "running":
                raise _ApiError(409, f"Container {c.id} is not running")
            c.stopped_by = "kill"
            e._signal(c, getattr(signal, q.get("signal") or "SIGKILL", signal.SIGKILL))
            return self._send_empty(204)
        if action == "" and method == "DELETE":
            e.remove(c, q.get("force") in ("1", "true", "True"))
            return self._send_empty(204)
        raise _ApiError(404, f"page not found: {method} {path}")

    def _pull(self, name: str) -> None:
        e = self.engine
        if name not in e.registry:
            repo = name.rsplit(":", 1)[0]
            raise _ApiError(404, f"pull access denied for {repo}, repository does not exist or may require "
                                 "'docker login': denied: requested access to the resource is denied")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        tag = name.rsplit(":", 1)[1]
        for event in ({"status": f"Pulling from {name.rsplit(':', 1)[0]}", "id": tag},
                      {"status": "Pulling fs layer", "id": "0f1e2d3c4b5a"},
                      {"status": "Pull complete", "id": "0f1e2d3c4b5a"},
                      {"status": f"Digest: {e.registry[name].id}"},
                      {"status": f"Status: Downloaded newer image for {name}"}):
            self._chunk(json.dumps(event).encode() + b"\r\n")
        self._chunk(b"")
        e.present.add(name)

    def _build(self, tag: str) -> None:
        """A build context (tar) with a Dockerfile: the new image is its ``FROM`` image (pulled from the double's
        registry) under ``tag``; the double does not execute ``RUN`` instructions (it says so in the stream)."""
        import io
        import tarfile

        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else self._read_chunked()
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.extractfile("Dockerfile")
            dockerfile = member.read().decode() if member else ""
        lines = [ln.strip() for ln in dockerfile.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        base = next((ln.split()[1] for ln in lines if ln.upper().startswith("FROM ")), None)
        e = self.engine
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if base is None or _normal(base) not in e.registry:
            self._chunk(json.dumps({"error": f"pull access denied for {base}, repository does not exist",
                                    "errorDetail": {"message": f"no image {base}"}}).encode() + b"\r\n")
            return self._chunk(b"")
        for i, line in enumerate(lines, 1):
            note = "  (not executed by the docker engine double)" if line.upper().startswith("RUN ") else ""
            self._chunk(json.dumps({"stream": f"Step {i}/{len(lines)} : {line}{note}\n"}).encode() + b"\r\n")
        e.present.add(_normal(base))
        image = e.add_image(tag, python=e.registry[_normal(base)].python, pulled=True)
        e.builds.append({"tag": image.name, "dockerfile": dockerfile})
        self._chunk(json.dumps({"stream": f"Successfully tagged {image.name}\n"}).encode() + b"\r\n")
        self._chunk(b"")

    def _read_chunked(self) -> bytes:
        data = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self, c: ContainerDouble, follow: bool, hijack: bool, tail: str | None = None) -> None:
        """Attach (a hijacked connection: 101, then raw frames until the container ends) or logs."""
        if hijack:
            self.send_response(101, "UPGRADED")
            self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "tcp")
        elif not follow:
            frames = list(c.frames)
            if tail and tail != "all":
                frames = frames[-int(tail):]
            body = b"".join(_frame(s, d) for s, d in frames)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        sent = 0
        try:
            while True:
                with c.changed:
                    c.changed.wait_for(lambda n=sent: len(c.frames) > n or c.status in ("exited", "removed"),
                                       timeout=1.0)
                    pending = c.frames[sent:]
                    done = c.status in ("exited", "removed") and len(c.frames) == sent + len(pending)
                for stream, data in pending:
                    self.wfile.write(_frame(stream, data))
                sent += len(pending)
                self.wfile.flush()
                if done:
                    break
        except (BrokenPipeError, ConnectionResetError):
            return
