"""A real S3 endpoint for tests: moto's server in its own process (docs/architecture.md, "Tests"), and a switch that
points Django's default storage at it for one test (or, ``local_storage``, at a folder of the test's own).

Use from a conftest: ``from tests.s3 import moto_s3, s3_storage  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from django.core.files.storage import FileSystemStorage, default_storage
from pytest_django.fixtures import Settings as SettingsWrapper
from storages.backends.s3 import S3Storage

BUCKET = "screenreel-test"
REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # moto accepts any credentials


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]

    def client(self, **config: Any) -> Any:
        """A boto3 client of the moto server, separate from the storage's own."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY,
                            config=Config(retries={"max_attempts": 2, "mode": "standard"}, **config))

    def storage_options(self) -> dict[str, Any]:
        return {"bucket_name": self.bucket, "endpoint_url": self.endpoint, "region_name": REGION,
                "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "default_acl": None,
                "file_overwrite": True, "querystring_auth": True, "querystring_expire": 300,
                "signature_version": "s3v4"}  # as config.settings sets it

    def env(self) -> dict[str, str]:
        """What a child process needs so that config.settings picks S3 on this server."""
        return {"SCREENREEL_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": self.bucket,
                "AWS_S3_ENDPOINT_URL": self.endpoint, "AWS_S3_REGION_NAME": REGION,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def moto_start(log_path: Path, *, timeout: float = 30.0) -> MotoS3:
    """Start ``moto_server`` on a free port, wait until it answers, create the bucket; returns it."""
    moto_bin = Path(sys.executable).with_name("moto_server")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:  # the server logs every request: never into a pipe nobody reads
        process = subprocess.Popen([str(moto_bin), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    server = MotoS3(endpoint=endpoint, bucket=BUCKET, process=process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            server.client().create_bucket(Bucket=BUCKET)
            return server
        except Exception:
            if time.monotonic() > deadline:
                moto_stop(server)
                raise
            time.sleep(0.1)


def moto_stop(server: MotoS3) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = moto_start(tmp_path_factory.mktemp("moto") / "moto_server.log")
    try:
        yield server
    finally:
        moto_stop(server)


@pytest.fixture
def s3_storage(moto_s3: MotoS3, settings: SettingsWrapper) -> Iterator[MotoS3]:
    """Django's default storage is S3Storage on the moto server for this test."""
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "storages.backends.s3.S3Storage",
                                     "OPTIONS": moto_s3.storage_options()}}
    # Django's setting_changed handler (django.test.signals.storages_changed) resets the lazy
    # default_storage; fail loudly if a Django upgrade ever stops doing that.
    assert isinstance(default_storage, S3Storage), type(default_storage)
    assert default_storage.endpoint_url == moto_s3.endpoint
    yield moto_s3


class S3Outage:
    """A TCP relay in front of moto's server that can go away and come back: storage pointed at ``endpoint``
    meets refused connections while it is down, as during a storage outage, and finds every object again when it
    is back (moto itself keeps running, and keeps them)."""

    def __init__(self, server: MotoS3) -> None:
        self.target = ("127.0.0.1", int(server.endpoint.rsplit(":", 1)[1]))
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._open = self._open, set()
        for sock in ([listener] if listener else []) + list(conns):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept() or recv()
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def s3_outage(moto_s3: MotoS3, settings: SettingsWrapper) -> Iterator[S3Outage]:
    """Django's default storage is S3Storage on moto's server through a relay the test can take down."""
    relay = S3Outage(moto_s3)
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "storages.backends.s3.S3Storage",
                                     "OPTIONS": {**moto_s3.storage_options(), "endpoint_url": relay.endpoint}}}
    assert isinstance(default_storage, S3Storage) and default_storage.endpoint_url == relay.endpoint
    try:
        yield relay
    finally:
        relay.down()


@pytest.fixture
def local_storage(tmp_path: Path, settings: SettingsWrapper) -> Iterator[Path]:
    """Django's default storage is a FileSystemStorage in this test's own directory."""
    root = tmp_path / "media"
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                     "OPTIONS": {"location": str(root)}}}
    assert isinstance(default_storage, FileSystemStorage) and Path(default_storage.location) == root
    yield root
