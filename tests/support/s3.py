"""A real S3 API server for the object-storage tests and benchmarks: moto in server mode,
a process of its own on 127.0.0.1, which every process of a test (web server, workers)
reaches over HTTP as it would a real bucket.

Without moto (a machine set up before it was a dependency) the S3 tests are skipped,
except in CI (``CI=true``), where that is a failure: the bar is that they run there.
``AVITO_TEST_STORAGE=s3`` runs the tests that store files on the S3 server instead of a
local folder (the ``media`` fixture), as .ci/run does for the files that touch storage.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MOTO_MISSING = (
    None if importlib.util.find_spec("moto") else "moto is not installed (bin/setup installs it)"
)
# moto takes any key; boto3 only needs one to sign with.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "avito-test",
    "AWS_SECRET_ACCESS_KEY": "avito-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """``moto.server`` on a free port of 127.0.0.1, its output in ``log``."""

    def __init__(self, log: Path):
        self.port = _free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> MotoServer:
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=output,
                stderr=output,
                env=os.environ | CREDENTIALS,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto did not listen within 30 s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


@dataclass
class S3Place:
    """A bucket and a prefix of one test's own, on the S3 server."""

    server: MotoServer
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def env(self) -> dict[str, str]:
        """What a process needs to use this place as its storage (``AVITO_STORAGE_URL``...)."""
        return CREDENTIALS | {
            "AVITO_STORAGE_URL": self.url,
            "AVITO_S3_ENDPOINT_URL": self.server.endpoint_url,
        }

    def storage_config(self) -> dict:
        from avito_mod.storage import default_storage_config

        config = default_storage_config(self.url, endpoint_url=self.server.endpoint_url)
        options = config["OPTIONS"] | {
            "access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
        }
        return config | {"OPTIONS": options}

    def stored_keys(self) -> list[str]:
        """Every object under this place's prefix, relative to it, sorted."""
        pages = self.server.client().get_paginator("list_objects_v2")
        found = []
        for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix + "/"):
            entries = page.get("Contents", [])  # absent when nothing is stored
            found += [entry["Key"].removeprefix(self.prefix + "/") for entry in entries]
        return sorted(found)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The session's S3 API server, with one bucket (``avito-tests``)."""
    if MOTO_MISSING:
        if IN_CI:
            pytest.fail(f"{MOTO_MISSING}: the object-storage tests must run in CI")
        pytest.skip(f"{MOTO_MISSING}; CI runs these")
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    server.create_bucket("avito-tests")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_place(s3_server) -> S3Place:
    return S3Place(s3_server, "avito-tests", f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3_storage(settings, s3_place) -> S3Place:
    """The default storage on a prefix of this test's own in the S3 server's bucket."""
    settings.STORAGES = settings.STORAGES | {"default": s3_place.storage_config()}
    return s3_place


def storage_wanted() -> str:
    """ "s3" when ``AVITO_TEST_STORAGE`` asks the ``media`` fixture for the S3 server."""
    wanted = os.environ.get("AVITO_TEST_STORAGE", "filesystem")
    if wanted not in ("filesystem", "s3"):
        raise pytest.UsageError(f"AVITO_TEST_STORAGE must be filesystem or s3, not {wanted!r}")
    return wanted
