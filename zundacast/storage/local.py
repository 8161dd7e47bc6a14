"""A folder with the exact layout of the bucket: the offline default, and what `file://` means.

Every write goes to a temporary file next to its target and is moved into place with
`os.replace`, so a crash or a full disk never leaves a half-written feed or MP3 behind:
readers see the old file or the new one, nothing in between.

Conditional writes (`put_if`, `delete_if`: the index and the run locks) compare the content's
SHA-256 and replace the file while holding an exclusive `flock` on `.zundacast.lock` in the
folder, so runs in other threads and processes (and other machines, where the file system's
locks reach them) update the index one at a time.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from zundacast.storage import PermanentStoreError, StoreError, VersionConflict, check_key

LOCK_NAME = ".zundacast.lock"  # beside the store's files; every conditional write holds it


def folder_of(url: str) -> Path:
    """The folder a local store URL names: a path, `~/path` or `file:///abs/path`."""
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise PermanentStoreError(
                f"store URL {url!r}: file:// URLs must name a local path (file:///path)"
            )
        return Path(unquote(parsed.path))
    return Path(url).expanduser()


class LocalStore:
    """The Store interface over a local folder (content type and cache control are not kept)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.root = folder_of(url).resolve()

    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    def describe(self, key: str) -> str:
        return str(self.path_of(key))

    def put(self, key: str, data: bytes, content_type: str, cache_control: str = "") -> None:
        self._write_atomically(key, len(data), lambda out: out.write(data))

    def put_file(self, key: str, path: str, content_type: str, cache_control: str = "") -> None:
        source = Path(path)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise StoreError(f"cannot read {source} to store it at {self.describe(key)}: {exc}") from exc

        def copy(out: BinaryIO) -> None:
            with source.open("rb") as src:
                shutil.copyfileobj(src, out, length=1024 * 1024)

        self._write_atomically(key, size, copy)

    def get(self, key: str) -> bytes | None:
        target = self.path_of(key)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {target}: {exc}") from exc

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        data = self.get(key)
        return data, (hashlib.sha256(data).hexdigest() if data is not None else None)

    def put_if(
        self, key: str, data: bytes, content_type: str, expected: str | None, cache_control: str = ""
    ) -> str:
        with self._locked():
            self._check_version(key, expected)
            self.put(key, data, content_type, cache_control)
        return hashlib.sha256(data).hexdigest()

    def delete_if(self, key: str, expected: str) -> None:
        with self._locked():
            if self.get_versioned(key)[1] is None:
                return
            self._check_version(key, expected)
            try:
                self.path_of(key).unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot delete {self.describe(key)}: {exc}") from exc

    def sha256(self, key: str) -> str | None:
        target = self.path_of(key)
        digest = hashlib.sha256()
        try:
            with target.open("rb") as src:
                for block in iter(lambda: src.read(1024 * 1024), b""):
                    digest.update(block)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {target}: {exc}") from exc
        return digest.hexdigest()

    def _check_version(self, key: str, expected: str | None) -> None:
        current = self.get_versioned(key)[1]
        if current != expected:
            raise VersionConflict(
                f"{self.describe(key)} changed since it was read "
                f"(expected version {expected}, found {current})"
            )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the store (flock: per open file, so threads of one process exclude too)."""
        lock_path = self.root / LOCK_NAME
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = lock_path.open("a")
        except OSError as exc:
            raise StoreError(f"cannot open the store's lock file {lock_path}: {exc}") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def public_url(self, key: str, base_url: str = "") -> str:
        if base_url:
            return base_url.rstrip("/") + "/" + check_key(key)
        return self.path_of(key).as_uri()

    def _write_atomically(self, key: str, size: int, write: Callable[[BinaryIO], object]) -> None:
        target = self.path_of(key)
        temp_name = ""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
            ) as out:
                temp_name = out.name
                write(out)
                out.flush()
                os.fsync(out.fileno())
            written = os.path.getsize(temp_name)
            if written != size:
                raise StoreError(f"writing {target}: {written} bytes landed of {size}; nothing was replaced")
            os.chmod(temp_name, 0o644)  # NamedTemporaryFile makes 0600; a served folder must be readable
            os.replace(temp_name, target)
            temp_name = ""
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StoreError(
                    f"no space left on the device writing {target} ({size} bytes): free some space on that "
                    f"disk or publish to another folder or bucket (--store / ZUNDACAST_STORE); "
                    f"the previous file, if any, is intact"
                ) from exc
            raise StoreError(f"cannot write {target}: {exc}") from exc
        finally:
            if temp_name:
                Path(temp_name).unlink(missing_ok=True)
