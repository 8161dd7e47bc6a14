"""The two stores: a local folder (atomic writes, full disk) and S3 over moto's HTTP server."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.s3 import FakeS3, running_s3
from tests.system import system_unavailable
from zundacast.errors import PermanentError
from zundacast.storage import PermanentStoreError, StoreError, open_store
from zundacast.storage.local import LocalStore
from zundacast.storage.s3 import S3Store

# --- local folder -------------------------------------------------------------------------------------


def test_local_put_get_and_nested_keys(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "public"))
    assert isinstance(store, LocalStore)
    store.put("2025-07-24/episode.json", b'{"a": 1}', "application/json")
    assert store.get("2025-07-24/episode.json") == b'{"a": 1}'
    assert (tmp_path / "public" / "2025-07-24" / "episode.json").read_bytes() == b'{"a": 1}'
    assert store.get("missing.json") is None
    assert oct((tmp_path / "public" / "2025-07-24" / "episode.json").stat().st_mode & 0o777) == "0o644"


def test_local_file_url_and_public_url(tmp_path: Path) -> None:
    store = open_store((tmp_path / "pub").as_uri())
    store.put("feed.xml", b"<rss/>", "application/rss+xml")
    assert (tmp_path / "pub" / "feed.xml").read_bytes() == b"<rss/>"
    assert store.public_url("feed.xml") == (tmp_path / "pub" / "feed.xml").as_uri()
    assert (
        store.public_url("a/b.mp3", "https://cdn.example.com/show/") == "https://cdn.example.com/show/a/b.mp3"
    )


def test_local_put_file_replaces_whole_file(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "pub"))
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    store.put("x/big.bin", b"old", "application/octet-stream")
    store.put_file("x/big.bin", str(source), "application/octet-stream")
    assert (tmp_path / "pub" / "x" / "big.bin").read_bytes() == source.read_bytes()
    assert [p.name for p in (tmp_path / "pub" / "x").iterdir()] == ["big.bin"]  # no temp file left


def test_local_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "pub"))
    store.put("feed.xml", b"old feed", "application/rss+xml")

    def broken(out: object) -> None:
        out.write(b"half a fe")  # type: ignore[attr-defined]
        raise OSError(5, "Input/output error")

    with pytest.raises(StoreError, match=r"feed\.xml"):
        store._write_atomically("feed.xml", 100, broken)
    assert (tmp_path / "pub" / "feed.xml").read_bytes() == b"old feed"
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == ["feed.xml"]


def test_local_rejects_keys_outside_the_folder(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "pub"))
    for key in ("../escape.txt", "/etc/passwd", "a//b", ""):
        with pytest.raises(PermanentStoreError, match="invalid store key"):
            store.put(key, b"x", "text/plain")
    assert not (tmp_path / "escape.txt").exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk (needs root and mount permission, else skipped)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        system_unavailable("mounting a tiny tmpfs needs root and mount")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        system_unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_local_full_disk_names_the_path_and_keeps_old_file(tiny_disk: Path) -> None:
    store = LocalStore(str(tiny_disk))
    store.put("feed.xml", b"old feed", "application/rss+xml")
    with pytest.raises(StoreError) as caught:
        store.put("feed.xml", os.urandom(256 * 1024), "application/rss+xml")
    message = str(caught.value)
    assert "no space left" in message and str(tiny_disk / "feed.xml") in message
    assert "--store" in message  # says what to do
    assert (tiny_disk / "feed.xml").read_bytes() == b"old feed"
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["feed.xml"]


# --- S3 through moto over HTTP --------------------------------------------------------------------------


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeS3]:
    with running_s3(monkeypatch) as fake:
        yield fake


def test_s3_put_get_headers_and_checksum(s3_bucket: FakeS3) -> None:
    store = open_store(s3_bucket.url)
    assert isinstance(store, S3Store)
    body = "ずんだもん & <feed>".encode()
    store.put("feed.xml", body, "application/rss+xml; charset=utf-8", "public, max-age=300")
    assert store.get("feed.xml") == body
    assert store.get("nothing-here.xml") is None
    head = s3_bucket.client().head_object(
        Bucket=s3_bucket.bucket, Key="podcast/feed.xml", ChecksumMode="ENABLED"
    )
    assert head["ContentType"] == "application/rss+xml; charset=utf-8"
    assert head["CacheControl"] == "public, max-age=300"
    assert head["ContentLength"] == len(body)
    assert head["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert "ChecksumSHA256" in head
    assert store.describe("feed.xml") == f"s3://{s3_bucket.bucket}/podcast/feed.xml"
    assert s3_bucket.keys() == ["podcast/feed.xml"]
    assert store.list_keys() == ["feed.xml"]


def test_s3_put_file_multipart_is_verified(s3_bucket: FakeS3, tmp_path: Path) -> None:
    source = tmp_path / "episode.mp3"
    source.write_bytes(os.urandom(11 * 1024 * 1024))
    store = S3Store(s3_bucket.url, multipart_threshold=5 * 1024 * 1024, multipart_chunk=5 * 1024 * 1024)
    store.put_file("2025-07-24/episode.mp3", str(source), "audio/mpeg", "public, max-age=31536000, immutable")
    assert store.get("2025-07-24/episode.mp3") == source.read_bytes()
    head = s3_bucket.head("podcast/2025-07-24/episode.mp3")
    assert head["ContentType"] == "audio/mpeg"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert head["ETag"].strip('"').endswith("-3")  # really went up in three parts


def test_s3_verify_catches_a_wrong_object(s3_bucket: FakeS3) -> None:
    store = S3Store(s3_bucket.url)
    store.put("a.txt", b"hello", "text/plain")
    with pytest.raises(StoreError, match="bytes after upload"):
        store.verify("a.txt", 6, hashlib.sha256(b"hello!").hexdigest())
    with pytest.raises(StoreError, match="SHA-256"):
        store.verify("a.txt", 5, hashlib.sha256(b"world").hexdigest())


def test_s3_public_url(s3_bucket: FakeS3, monkeypatch: pytest.MonkeyPatch) -> None:
    store = S3Store(s3_bucket.url)
    assert store.public_url("feed.xml") == f"{s3_bucket.endpoint}/{s3_bucket.bucket}/podcast/feed.xml"
    assert store.public_url("feed.xml", "https://pod.example.com/z") == "https://pod.example.com/z/feed.xml"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_REGION", "ap-northeast-1")
    aws = S3Store("s3://my-bucket/show")
    assert aws.public_url("2025-07-24/episode.mp3") == (
        "https://my-bucket.s3.ap-northeast-1.amazonaws.com/show/2025-07-24/episode.mp3"
    )


def test_s3_missing_bucket_is_permanent_and_named(s3_bucket: FakeS3) -> None:
    store = S3Store("s3://no-such-bucket-here/prefix")
    with pytest.raises(PermanentError) as caught:
        store.put("feed.xml", b"x", "application/rss+xml")
    assert "no-such-bucket-here" in str(caught.value) and "prefix/feed.xml" in str(caught.value)


def test_s3_no_credentials_is_permanent_and_secret_free(
    s3_bucket: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PermanentStoreError, match="AWS_ACCESS_KEY_ID"):
        S3Store("s3://zundacast-test/p").put("x.txt", b"x", "text/plain")


def test_s3_url_with_credentials_is_refused() -> None:
    with pytest.raises(PermanentStoreError, match="credentials come from the environment"):
        S3Store("s3://AKIA:secret@bucket/prefix")
    with pytest.raises(PermanentStoreError, match="s3://bucket"):
        S3Store("s3:///prefix-only")


# --- compare-and-swap (the index and the run locks) on both stores ----------------------------------------


@pytest.fixture(params=["folder", "s3"])
def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    if request.param == "folder":
        yield open_store(str(tmp_path / "public"))
        return
    with running_s3(monkeypatch) as fake:
        yield open_store(fake.url)


def test_put_if_creates_only_once_and_replaces_only_the_version_read(any_store: object) -> None:
    from zundacast.storage import Store, VersionConflict

    store: Store = any_store  # type: ignore[assignment]
    assert store.get_versioned("episodes.json") == (None, None)
    first = store.put_if("episodes.json", b"[1]", "application/json", expected=None)
    with pytest.raises(VersionConflict, match=r"episodes\.json"):  # If-None-Match: * on an existing object
        store.put_if("episodes.json", b"[2]", "application/json", expected=None)
    assert store.get_versioned("episodes.json") == (b"[1]", first)
    second = store.put_if("episodes.json", b"[1, 2]", "application/json", expected=first)
    assert second != first
    with pytest.raises(VersionConflict):  # If-Match on the version another run replaced: 412
        store.put_if("episodes.json", b"[1, 3]", "application/json", expected=first)
    assert store.get("episodes.json") == b"[1, 2]"
    with pytest.raises(VersionConflict):  # If-Match on an object that is gone
        store.put_if("nothing.json", b"x", "application/json", expected=second)
    assert store.get("nothing.json") is None
    assert store.sha256("episodes.json") == hashlib.sha256(b"[1, 2]").hexdigest()
    assert store.sha256("nothing.json") is None


def test_delete_if_deletes_only_the_version_read(any_store: object) -> None:
    from zundacast.storage import Store, VersionConflict

    store: Store = any_store  # type: ignore[assignment]
    old = store.put_if(".locks/a.json", b"lease 1", "application/json", expected=None)
    new = store.put_if(".locks/a.json", b"lease 2", "application/json", expected=old)
    with pytest.raises(VersionConflict):
        store.delete_if(".locks/a.json", old)
    assert store.get(".locks/a.json") == b"lease 2"
    store.delete_if(".locks/a.json", new)
    assert store.get(".locks/a.json") is None
    store.delete_if(".locks/a.json", new)  # already gone: fine


def test_of_racing_conditional_writes_on_one_version_exactly_one_wins(any_store: object) -> None:
    """What compare-and-swap needs from the store (and what the moto fake's AtomicWrites provides)."""
    import threading

    from zundacast.storage import Store, VersionConflict

    store: Store = any_store  # type: ignore[assignment]
    base = store.put_if("episodes.json", b"base", "application/json", expected=None)
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def write(number: int) -> None:
        own = open_store(store.url)
        start.wait()
        try:
            own.put_if("episodes.json", f"writer {number}".encode(), "application/json", expected=base)
            outcomes.append(f"won {number}")
        except VersionConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [outcome for outcome in outcomes if outcome.startswith("won")]
    assert len(outcomes) == 8 and len(winners) == 1
    assert store.get("episodes.json") == f"writer {winners[0].split()[1]}".encode()
