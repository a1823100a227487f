"""The one test command: set up everything the suite needs on a fresh machine, then run pytest.

    python3 scripts/test.py [pytest arguments]

On the machines we run on (Debian, root) it installs what is missing: uv (from PyPI), the locked Python
environment (``uv sync --frozen --all-extras``), Debian's ``chromium`` (the UI browser test), ``docker-compose`` (the
compose file check) and ``openjdk-17-jdk-headless`` (Spark and the emulator's JAR task); it starts PostgreSQL
Redis and MariaDB when they are installed but stopped, and installs Azurite (the Azure Storage emulator) with
npm into ``deploy/azurite/node_modules`` from its committed lock file, and the UI bundle's build and test tools into
``airflow_mlpipe/plugins/www/node_modules`` from theirs. Where it cannot do a step itself it stops at once and prints the
exact command to run. Then: ``uv run pytest -q`` with your arguments.
Only the standard library is used here: this runs before any dependency is installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: command the suite needs -> the Debian package that provides it (javac/jar: the Databricks emulator's JAR task;
#: the JDK also brings the Java 17 runtime PySpark needs)
DEBIAN_PACKAGES = {"chromium": "chromium", "docker-compose": "docker-compose",
                   "javac": "openjdk-17-jdk-headless", "jar": "openjdk-17-jdk-headless"}
SERVICES = {
    "PostgreSQL": (5432, "pg_ctlcluster --skip-systemctl-redirect {version} main start"),
    "Redis": (6379, "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no "
                    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"),
    "MariaDB": (3306, "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"),
}
#: what provides each service's start command, and the Debian package to install when it is missing
SERVICE_BINARIES = {"PostgreSQL": ("pg_ctlcluster", "postgresql"), "Redis": ("redis-server", "redis-server"),
                    "MariaDB": ("mariadbd", "mariadb-server")}
AZURITE = REPO / "deploy" / "azurite"
WWW = REPO / "airflow_mlpipe" / "plugins" / "www"



class SetupError(SystemExit):
    def __init__(self, what: str, command: str) -> None:
        super().__init__(f"test set-up: {what}.\nRun this, then run the tests again:\n    {command}")


def say(message: str) -> None:
    print(f"== {message}", flush=True)


def run(cmd: list[str] | str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, shell=isinstance(cmd, str), **kwargs)


def ensure_uv() -> list[str]:
    if run([sys.executable, "-m", "uv", "--version"], capture_output=True).returncode != 0:
        say("installing uv from PyPI")
        if run([sys.executable, "-m", "pip", "install", "--quiet", "uv"]).returncode != 0:
            raise SetupError("uv is missing and could not be installed", f"{sys.executable} -m pip install uv")
    return [sys.executable, "-m", "uv"]


def ensure_debian_packages() -> None:
    missing = sorted({pkg for cmd, pkg in DEBIAN_PACKAGES.items() if shutil.which(cmd) is None})
    if not missing:
        return
    command = f"apt-get update && apt-get install -y {' '.join(missing)}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SetupError(f"the Debian packages {', '.join(missing)} are missing", f"sudo sh -c '{command}'")
    say(f"installing Debian packages: {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if run("apt-get update -qq", env=env).returncode != 0 or run(
            ["apt-get", "install", "-y", "-qq", *missing], env=env, stdout=subprocess.DEVNULL).returncode != 0:
        raise SetupError(f"installing {', '.join(missing)} failed", command)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def _start_command(name: str, template: str) -> str | None:
    if name == "PostgreSQL":
        versions = sorted(Path(p).name for p in glob.glob("/etc/postgresql/*"))
        return template.format(version=versions[-1]) if versions and shutil.which("pg_ctlcluster") else None
    binary = SERVICE_BINARIES[name][0]
    return template if shutil.which(binary) or os.path.exists(f"/usr/sbin/{binary}") else None


def ensure_services() -> None:
    import time

    for name, (port, template) in SERVICES.items():
        if _listening(port):
            continue
        command = _start_command(name, template)
        if command is None:
            raise SetupError(f"{name} is not running on 127.0.0.1:{port} and is not installed",
                             f"apt-get install -y {SERVICE_BINARIES[name][1]}")
        say(f"starting {name}: {command}")
        run(command)
        deadline = time.monotonic() + 30
        while not _listening(port):
            if time.monotonic() > deadline:
                raise SetupError(f"{name} did not start listening on 127.0.0.1:{port}", command)
            time.sleep(0.5)


def ensure_npm_packages() -> None:
    """The npm projects the suite uses, each pinned by its committed ``package-lock.json``: Azurite (the Blob
    tests start it themselves) and the UI bundle's build and component-test tools (``plugins/www``)."""
    for folder, why in ((AZURITE, "Azurite, the Azure Storage emulator"), (WWW, "the UI bundle's build and tests")):
        installed = folder / "node_modules" / ".package-lock.json"
        if installed.exists() and installed.stat().st_mtime >= (folder / "package-lock.json").stat().st_mtime:
            continue
        command = f"npm ci --no-audit --no-fund --prefix {folder}"
        if shutil.which("npm") is None:
            raise SetupError(f"npm is missing (needed for {why})", "apt-get install -y nodejs npm")
        say(f"installing {why}: {command}")
        if run(command).returncode != 0:
            raise SetupError(f"installing {why} with npm failed", command)


def main(argv: list[str]) -> int:
    os.chdir(REPO)
    uv = ensure_uv()
    say("installing the locked environment (uv sync --frozen --all-extras)")
    if run([*uv, "sync", "--frozen", "--all-extras"]).returncode != 0:
        raise SetupError("uv sync failed", f"cd {REPO} && {sys.executable} -m uv sync --frozen --all-extras")
    ensure_debian_packages()
    ensure_services()
    ensure_npm_packages()
    say("tests: uv run pytest -q " + " ".join(argv))
    code = run([*uv, "run", "pytest", "-q", *argv]).returncode
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
