"""The store failing: S3 refusing a write mid-upload keeps the old feed and a rerun completes the episode;
a full local disk fails with a StoreError naming the path and leaves the old files whole.

S3 is moto's server behind a loopback proxy that speaks plain HTTP both ways and can answer an S3 error
for chosen requests, as a bucket policy or a flaky endpoint would.
"""

from __future__ import annotations

import datetime as dt
import errno
import http.client
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest

from tests.fakes.s3 import running_s3
from tests.faults.support import flow_env, run_flow, sample_site, short_show
from tests.system import system_unavailable
from zundacast.sample_day import SAMPLE_DATE
from zundacast.storage import PermanentStoreError, StoreError, open_store

pytestmark = pytest.mark.slow

DAY_BEFORE = SAMPLE_DATE - dt.timedelta(days=1)
Fault = Callable[[str, str], tuple[int, str] | None]  # (method, path) -> (status, S3 error code) or None


class S3Proxy:
    """Forwards every request to moto unchanged, unless `fault(method, path)` names an error to answer."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.fault: Fault | None = None
        self.seen: list[tuple[str, str, int]] = []  # method, path, status answered
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                injected = proxy.fault(self.command, self.path) if proxy.fault else None
                if injected:
                    status, code = injected
                    error = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                             f"<Message>injected by the test proxy</Message><RequestId>proxy</RequestId>"
                             "</Error>").encode()
                    self._answer(status, [("Content-Type", "application/xml")], error)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port,
                                                      timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                passed = [(k, v) for k, v in answer.getheaders()
                          if k.lower() not in ("transfer-encoding", "connection", "content-length")]
                length_header = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self._answer(answer.status, passed, data, length_header)

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes,
                        length: str | None = None) -> None:
                with proxy.lock:
                    proxy.seen.append((self.command, self.path, status))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", length if length is not None else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def puts(self, suffix: str) -> list[int]:
        with self.lock:
            return [status for method, path, status in self.seen if method == "PUT" and
                    urlsplit(path).path.endswith(suffix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def deny_put(suffix: str, status: int = 403, code: str = "AccessDenied", times: int | None = None) -> Fault:
    left = [times]

    def fault(method: str, path: str) -> tuple[int, str] | None:
        if method != "PUT" or not urlsplit(path).path.endswith(suffix):
            return None
        if left[0] is not None:
            if left[0] <= 0:
                return None
            left[0] -= 1
        return status, code

    return fault


# --- row 8: S3 failing mid-upload -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_runs(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[dict[str, Any]]:
    from tasks.upload import publish_episode
    from tests.test_upload import sample_inputs

    root = tmp_path_factory.mktemp("s3-faults")
    mp = pytest.MonkeyPatch()
    with running_s3(mp) as s3, sample_site() as (_site, base), flow_env(root, shared_speech=True) as env:
        proxy = S3Proxy(s3.endpoint)
        env.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        try:
            show = short_show(base)
            store = open_store(s3.url)
            # The day before is already published (its feed is what must survive): published as the
            # upload stage does, from a short made-up episode; the runs below are what is under test.
            publish_episode(*sample_inputs(DAY_BEFORE, root / "day-before"), show, store)
            before = {key: store.get(key) for key in ("feed.xml", "episodes.json", "index.html")}

            proxy.fault = deny_put("/episodes.json")  # a bucket policy refusing the index, mid-upload
            with pytest.raises(StoreError) as failed:
                run_flow(show, s3.url)
            after_failure = {key: store.get(key) for key in before}
            keys_after_failure = s3.keys()

            proxy.fault = deny_put("/feed.xml", status=500, code="InternalError", times=1)  # one hiccup
            feed_puts_before_rerun = len(proxy.puts("/feed.xml"))
            rerun = run_flow(show, s3.url)
            yield {"before": before, "error": failed.value, "after_failure": after_failure,
                   "keys_after_failure": keys_after_failure, "rerun": rerun, "store": store, "s3": s3,
                   "rerun_feed_puts": proxy.puts("/feed.xml")[feed_puts_before_rerun:]}
        finally:
            proxy.close()
    mp.undo()


def test_s3_refusing_a_write_fails_the_run_naming_bucket_and_key(s3_runs: dict[str, Any]) -> None:
    error = s3_runs["error"]
    assert isinstance(error, PermanentStoreError)  # AccessDenied: not retried, the message says what to fix
    assert "AccessDenied" in str(error) and "podcast/episodes.json" in str(error)
    assert "zundacast-test" in str(error)


def test_s3_failure_mid_upload_leaves_the_old_feed_untouched(s3_runs: dict[str, Any]) -> None:
    assert s3_runs["after_failure"] == s3_runs["before"]  # feed.xml, episodes.json, index.html: byte for byte
    keys = s3_runs["keys_after_failure"]
    assert f"podcast/{SAMPLE_DATE}/zundamon-ai-{SAMPLE_DATE}.mp3" in keys  # the upload had started ...
    assert f"podcast/{SAMPLE_DATE}/index.html" in keys  # ... the episode's own files went first
    feed = feedparser.parse(s3_runs["after_failure"]["feed.xml"])
    assert [f"/{DAY_BEFORE}/" in entry.enclosures[0].href for entry in feed.entries] == [True]


def test_a_rerun_completes_the_episode_from_the_cached_stages(s3_runs: dict[str, Any]) -> None:
    statuses = {name: report.status for name, report in s3_runs["rerun"].stages.items()}
    assert statuses == {"collect": "cached", "rank": "cached", "summarize": "cached", "script": "cached",
                        "synthesize": "cached", "upload": "computed"}
    store = s3_runs["store"]
    feed = feedparser.parse(store.get("feed.xml"))
    assert not feed.bozo
    assert len(feed.entries) == 2
    episodes = store.get("episodes.json") or b""
    assert SAMPLE_DATE.isoformat().encode() in episodes and DAY_BEFORE.isoformat().encode() in episodes


def test_a_transient_s3_error_is_retried_within_the_upload(s3_runs: dict[str, Any]) -> None:
    assert s3_runs["rerun_feed_puts"][:2] == [500, 200]


# --- row 11: a full local disk --------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs holding an old feed, then filled to the last byte (needs root and mount)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        system_unavailable("mounting a tiny tmpfs needs root and mount")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        system_unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        (mount_point / "feed.xml").write_bytes(b"<rss>old feed</rss>")
        try:
            with (mount_point / "filler").open("wb") as filler:
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_fails_the_run_with_a_store_error_naming_the_path(
        full_disk: Path, prefect_results: Path) -> None:
    with sample_site() as (_site, base), pytest.raises(StoreError) as failed:
        run_flow(short_show(base), full_disk)
    message = str(failed.value)
    assert "no space left" in message
    assert str(full_disk / ".locks") in message  # the run's first write into the store: its lock
    assert (full_disk / "feed.xml").read_bytes() == b"<rss>old feed</rss>"
    leftovers = [p.name for p in full_disk.rglob("*")
                 if p.is_file() and p.name not in ("feed.xml", "filler", ".zundacast.lock")]
    assert leftovers == []  # no half-written file stays behind
