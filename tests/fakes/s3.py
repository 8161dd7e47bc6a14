"""S3 over real HTTP: moto's server mode on a loopback port, with fake credentials.

A server starts in well under a second, so each test gets its own:

    @pytest.fixture
    def s3(monkeypatch):
        with running_s3(monkeypatch) as fake:
            yield fake

    def test_x(s3): store = open_store(s3.url)
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

FAKE_ACCESS_KEY = "AKIAFAKEFORTESTS0001"
FAKE_SECRET_KEY = "fake-secret-key-for-moto-never-real-0000000"
BUCKET = "zundacast-test"


@dataclass
class FakeS3:
    server: ThreadedMotoServer
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    url: str  # s3://bucket/prefix, for open_store

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=FAKE_ACCESS_KEY,
            aws_secret_access_key=FAKE_SECRET_KEY,
        )

    def keys(self) -> list[str]:
        """Every object key in the bucket, sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def head(self, key: str) -> dict[str, Any]:
        return self.client().head_object(Bucket=self.bucket, Key=key)


class AtomicWrites:
    """WSGI middleware: one write request at a time.

    moto checks `If-Match` / `If-None-Match` and then stores the object in two steps, with the
    server's other threads free to run in between, so two concurrent conditional PUTs of one key can
    both succeed. S3 makes each conditional write atomic; serializing writes gives moto that property.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("PUT", "POST", "DELETE"):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))  # the whole answer, inside the lock


class AtomicMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose writes are atomic (see AtomicWrites)."""

    def _server_entry(self) -> None:
        app = AtomicWrites(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def start_moto() -> tuple[ThreadedMotoServer, str]:
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


@contextmanager
def running_s3(
    monkeypatch: pytest.MonkeyPatch, bucket: str = BUCKET, prefix: str = "podcast"
) -> Iterator[FakeS3]:
    """A moto S3 server on 127.0.0.1 with an empty bucket, and an environment that points boto3 at it.

    Use it in a fixture: `with running_s3(monkeypatch) as s3: yield s3`; `s3.url` is s3://bucket/prefix.
    """
    server, endpoint = start_moto()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    # no ~/.aws files on a developer's machine may leak into the tests
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    fake = FakeS3(server=server, endpoint=endpoint, bucket=bucket, url=f"s3://{bucket}/{prefix}")
    # moto keeps its state per process, not per server: start every test from an empty S3
    reset_moto(endpoint)
    try:
        if bucket:
            fake.client().create_bucket(Bucket=bucket)
        yield fake
    finally:
        reset_moto(endpoint)
        server.stop()


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
