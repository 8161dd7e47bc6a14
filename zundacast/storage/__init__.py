"""Where episodes are published: one small interface, two engines.

`open_store(url)` picks the engine from the URL: a folder path or `file://` URL
gives `LocalStore` (the exact layout of the bucket, for the offline default),
`s3://bucket/prefix` gives `S3Store` (S3, MinIO, R2 ... through boto3).
"""

from __future__ import annotations

from typing import Protocol

from zundacast.errors import PermanentError, ZundacastError


class StoreError(ZundacastError):
    """A write or read that failed; the message names the store and the key."""


class PermanentStoreError(StoreError, PermanentError):
    """A store failure a retry cannot heal (no credentials, access denied, no such bucket, a bad key)."""


class Store(Protocol):
    url: str  # as configured, e.g. ./public or s3://bucket/prefix (never holds a secret)

    def put(self, key: str, data: bytes, content_type: str, cache_control: str = "") -> None:
        """Write `data` at `key` (relative to the prefix) and verify it landed whole."""

    def put_file(self, key: str, path: str, content_type: str, cache_control: str = "") -> None:
        """Like put, from a file (multipart for large files on S3)."""

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

    def public_url(self, key: str, base_url: str = "") -> str:
        """The URL listeners use: `base_url` + key when given, else the store's own address."""

    def describe(self, key: str) -> str:
        """A human-readable location of `key` (a path or s3:// URL) for messages."""


def check_key(key: str) -> str:
    """A key relative to the store's prefix: no leading slash, no `..`, no empty parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(part in ("", ".", "..") for part in parts):
        raise PermanentStoreError(
            f"invalid store key {key!r}: use a relative path such as 2025-07-24/episode.mp3"
        )
    return key


def check_store_url(url: str) -> str:
    """`url` if it can name a store: not empty, no `..` segment (a prefix or folder that climbs out of
    where it seems to point, e.g. s3://bucket/../x or ../../etc, is refused rather than guessed at)."""
    if not url.strip():
        raise PermanentStoreError("store URL is empty: give a folder, file:///path or s3://bucket/prefix")
    path = url.split("://", 1)[1] if "://" in url else url
    if ".." in path.replace("\\", "/").split("/"):
        raise PermanentStoreError(
            f"store URL {url!r} has a '..' segment: name the folder or s3://bucket/prefix directly, "
            "without '..' (an absolute path, or one below the show file's folder)")
    return url


def resolve_store_url(url: str) -> str:
    """The store URL in a form that means the same from any working folder (cache keys hold it)."""
    check_store_url(url)
    if url.startswith(("s3://", "file://")):
        return url.rstrip("/")
    from pathlib import Path

    return str(Path(url).expanduser().resolve())


def open_store(url: str) -> Store:
    check_store_url(url)
    if url.startswith("s3://"):
        from zundacast.storage.s3 import S3Store

        return S3Store(url)
    from zundacast.storage.local import LocalStore

    return LocalStore(url)
