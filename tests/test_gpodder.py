"""A real podcast client (gPodder's `gpo`) subscribes to the published feed and downloads the episode.

Two stores, no base URL in either, as a new user would publish: an S3 bucket (moto's server over
HTTP: the feed holds the bucket's own URLs) and a folder served by `zundacast preview`.
Needs Debian's gpodder (`apt-get install -y --no-install-recommends gpodder`; .ci/run installs it).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.s3 import FakeS3, running_s3
from tests.system import require_system_tool
from tests.test_preview import running_preview
from tests.test_upload import DAY1, DAY2, publish, sample_show
from zundacast.storage import Store, open_store

pytestmark = pytest.mark.system

GUID1, GUID2 = "zundacast:zundamon-test:2025-07-23", "zundacast:zundamon-test:2025-07-24"


@pytest.fixture
def gpo_tool() -> str:
    return require_system_tool("gpo")  # fails when CI requires system tests and gpodder is missing


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeS3]:
    with running_s3(monkeypatch) as fake:
        yield fake


def gpo(tool: str, tmp_path: Path, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(GPODDER_HOME=str(tmp_path / "gpodder-home"), GPODDER_DOWNLOAD_DIR=str(tmp_path / "downloads"),
               HOME=str(tmp_path / "home"))
    done = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"gpo {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    assert "No connection adapters" not in done.stdout + done.stderr
    return done.stdout


def subscribe_and_download(tool: str, tmp_path: Path, feed_url: str, store: Store, published: Path) -> Path:
    """Subscribe, list both episodes, download the newest; the file gPodder saved is the published MP3."""
    gpo(tool, tmp_path, "subscribe", feed_url)
    gpo(tool, tmp_path, "update", feed_url)
    listed = gpo(tool, tmp_path, "episodes", "--guid", feed_url)
    assert GUID1 in listed and GUID2 in listed
    gpo(tool, tmp_path, "download", feed_url, GUID2)
    downloads = [path for path in (tmp_path / "downloads").rglob("*") if path.is_file()]
    assert len(downloads) == 1, downloads
    assert not downloads[0].name.endswith(".partial")
    assert downloads[0].stat().st_size > 0 and downloads[0].read_bytes() == published.read_bytes()
    assert store.get("2025-07-24/zundamon-test-2025-07-24.mp3") == published.read_bytes()
    return downloads[0]


def allow_public_reads(s3: FakeS3) -> None:
    """The bucket policy a podcast bucket needs (S3 refuses anonymous GETs without one, as moto does)."""
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{s3.bucket}/*"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    s3.client().put_bucket_policy(Bucket=s3.bucket, Policy=json.dumps(policy))


def test_gpodder_downloads_from_an_s3_store_without_base_url(s3: FakeS3, tmp_path: Path,
                                                              gpo_tool: str) -> None:
    allow_public_reads(s3)
    store = open_store(s3.url)
    publish(DAY1, tmp_path / "work", store, show=sample_show(), frequency=330)
    result, bundle = publish(DAY2, tmp_path / "work", store, show=sample_show())
    assert result.feed_url == f"{s3.endpoint}/{s3.bucket}/podcast/feed.xml"  # the bucket's own URL

    saved = subscribe_and_download(gpo_tool, tmp_path, result.feed_url, store, Path(bundle.mp3_path))
    assert saved.name.startswith("zundamon-test-2025-07-24")  # a name of its own, not episode.mp3

    # a re-render of the date replaces the episode in the client instead of adding a second one
    publish(DAY2, tmp_path / "work", store, show=sample_show(), frequency=660)
    gpo(gpo_tool, tmp_path, "update", result.feed_url)
    assert gpo(gpo_tool, tmp_path, "episodes", "--guid", result.feed_url).count(GUID2) == 1


def test_gpodder_downloads_from_a_folder_served_by_zundacast_preview(tmp_path: Path, gpo_tool: str) -> None:
    folder = tmp_path / "public"
    store = open_store(str(folder))
    publish(DAY1, tmp_path / "work", store, show=sample_show(), frequency=330)
    result, bundle = publish(DAY2, tmp_path / "work", store, show=sample_show())
    assert result.feed_url.startswith("file:///")  # no base URL: only the preview makes it fetchable

    with running_preview(folder) as preview:
        saved = subscribe_and_download(gpo_tool, tmp_path, preview.feed, store, Path(bundle.mp3_path))
    assert saved.name.startswith("zundamon-test-2025-07-24")
    assert any(line.startswith("GET /2025-07-24/zundamon-test-2025-07-24.mp3") for line in preview.requests)
