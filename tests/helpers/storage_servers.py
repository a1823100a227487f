"""Real storage servers for the datastore and transfer tests: Azurite (Azure Blob) and moto's S3 server.

Both bind 127.0.0.1 on a free port, keep their data in a temporary folder and live for the test session. A
missing server program fails the test loudly with the command that installs it (``python3 scripts/test.py``
installs Azurite with npm; moto comes with the locked environment).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO / "deploy" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's well-known development account (public, documented by Microsoft; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Azurite:
    port: int

    account_name: str = AZURITE_ACCOUNT
    account_key: str = AZURITE_KEY

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def host(self) -> str:
        """What v1's ``endpoint=`` names for the emulator (``protocol='http'``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account_name};AccountKey={self.account_key};"
                f"BlobEndpoint={self.blob_endpoint};")

    def filesystem(self):
        from adlfs import AzureBlobFileSystem

        return AzureBlobFileSystem(connection_string=self.connection_string, skip_instance_cache=True)

    def sas_token(self, container: str) -> str:
        """A container SAS with every permission, valid for a day."""
        from datetime import UTC, datetime, timedelta

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(self.account_name, container, account_key=self.account_key,
                                      permission=ContainerSasPermissions(read=True, write=True, delete=True,
                                                                         list=True, add=True, create=True),
                                      expiry=datetime.now(UTC) + timedelta(days=1))


@dataclass(frozen=True)
class MotoS3:
    port: int
    access_key_id: str = "mlpipe-test-key"
    secret_access_key: str = "mlpipe-test-secret"
    region: str = "us-east-1"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key=self.access_key_id, secret=self.secret_access_key,
                                 endpoint_url=self.endpoint_url, skip_instance_cache=True)


def start_azurite(location: str) -> tuple[subprocess.Popen, Azurite]:
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"Azurite is not installed at {AZURITE_BIN}; run `python3 scripts/test.py` once or "
                           f"`npm ci --prefix {AZURITE_BIN.parents[2]}`")
    port = free_port()
    log = Path(location) / "azurite.log"
    proc = subprocess.Popen([str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--skipApiVersionCheck", "--loose", "--location", location],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait_listening(port, proc, "Azurite", log)
    return proc, Azurite(port)


def start_moto(location: str) -> tuple[subprocess.Popen, MotoS3]:
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    if server is None:
        raise RuntimeError("moto_server is missing; run `python3 -m uv sync --frozen --all-extras`")
    port = free_port()
    log = Path(location) / "moto.log"
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    _wait_listening(port, proc, "moto S3 server", log)
    return proc, MotoS3(port)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite's Blob service for the session."""
    folder = tempfile.mkdtemp(prefix="mlpipe-azurite-")
    proc, server = start_azurite(folder)
    yield server
    _stop(proc)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 server for the session."""
    folder = tempfile.mkdtemp(prefix="mlpipe-moto-")
    proc, server = start_moto(folder)
    yield server
    _stop(proc)
    shutil.rmtree(folder, ignore_errors=True)


def new_container(azurite: Azurite, prefix: str = "c") -> str:
    """A fresh container name (created)."""
    import uuid

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    azurite.filesystem().mkdir(name)
    return name


def new_bucket(moto_s3: MotoS3, prefix: str = "b") -> str:
    """A fresh bucket name (created)."""
    import uuid

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    moto_s3.filesystem().mkdir(name)
    return name


@pytest.fixture
def fresh_stores(azurite, moto_s3):
    """A fresh container and bucket (removed afterwards) and the filesystems:
    ``{"az", "s3", "container", "bucket"}``."""
    azfs, s3 = azurite.filesystem(), moto_s3.filesystem()
    container, bucket = new_container(azurite), new_bucket(moto_s3)
    yield {"az": azfs, "s3": s3, "container": container, "bucket": bucket}
    azfs.rm(container, recursive=True)
    s3.rm(bucket, recursive=True)
