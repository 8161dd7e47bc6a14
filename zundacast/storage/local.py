"""A folder with the exact layout of the bucket: the offline default, and what `file://` means.

Every write goes to a temporary file next to its target and is moved into place with
`os.replace`, so a crash or a full disk never leaves a half-written feed or MP3 behind:
readers see the old file or the new one, nothing in between.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from zundacast.storage import PermanentStoreError, StoreError, check_key


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
