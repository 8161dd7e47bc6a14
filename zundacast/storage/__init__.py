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


class VersionConflict(StoreError):
    """A conditional write or delete found another version of the object than the caller read."""


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

    # Compare-and-swap, for the objects several runs update (the index, the run locks). A version is
    # opaque: the ETag on S3, the content's SHA-256 in a folder; None means "the object does not exist".

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """The object's bytes and version, or (None, None) when it does not exist."""

    def put_if(
        self, key: str, data: bytes, content_type: str, expected: str | None, cache_control: str = ""
    ) -> str:
        """Write `data` only if the object is still at version `expected` (None: only if it does not
        exist); raise VersionConflict otherwise. Returns the new version."""

    def delete_if(self, key: str, expected: str) -> None:
        """Delete the object only if it is at version `expected` (VersionConflict otherwise); gone is fine."""

    def sha256(self, key: str) -> str | None:
        """The stored object's SHA-256 (hex), or None when it does not exist."""


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


class TemporaryStoreError(PermanentStoreError):
    """A worker's run would publish into its own temporary folder (lost when the run ends)."""


def check_store_outlives_run(configured: str, resolved: str) -> None:
    """A run started by a Prefect worker publishes where the next run finds it, never into its own
    working folder: that is the worker's temporary clone of the repository, deleted after the run."""
    import os
    from pathlib import Path

    if resolved.startswith("s3://") or not os.environ.get("PREFECT__WORKER_NAME"):
        return
    from zundacast.storage.local import folder_of

    folder = folder_of(resolved).resolve()
    cwd = Path.cwd().resolve()
    relative = not configured.startswith("file://") and not Path(configured).expanduser().is_absolute()
    if relative or folder == cwd or cwd in folder.parents:
        raise TemporaryStoreError(
            f"ZUNDACAST_STORE: the store {configured!r} resolves to {folder}, inside this run's temporary "
            f"working folder {cwd} (the worker's clone, deleted after the run): nothing was published; "
            "deploy with ZUNDACAST_STORE set to s3://bucket/prefix or an absolute path every worker shares "
            "(python -m deployments.deploy --store ...)"
        )
