"""The store's private work area: files a later stage needs, readable from any machine.

A stage result must not name a file on one machine's disk: a rerun of a later stage on another
worker (with the results shared) would not find it. So the rendered MP3 also goes to
`{prefix}/.work/{sha256}.mp3` in the store. Keys are the content's SHA-256, so an object never
changes once written and a fetched copy is checked against its name. Nothing under `.work/` is
listed in episodes.json, the feed or the pages.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from zundacast.storage import Store, StoreError

WORK_AREA = ".work"
WORK_CACHE = "private, max-age=31536000, immutable"  # content-addressed: never changes


def work_key(sha256: str, suffix: str) -> str:
    """`.work/<sha256>.<suffix>` (relative to the store's prefix)."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"{WORK_AREA}/{sha256}.{suffix.lstrip('.')}"


def put_work_file(store: Store, path: str | Path, sha256: str, suffix: str, content_type: str) -> str:
    """Copy a local file into the work area under its hash; returns its key."""
    key = work_key(sha256, suffix)
    store.put_file(key, str(path), content_type, WORK_CACHE)
    return key


def fetch_work_file(store: Store, key: str, sha256: str, size: int, dest: Path) -> Path | None:
    """Download `key` to `dest` when it holds exactly `size` bytes with this SHA-256.

    None when the object does not exist; StoreError when it exists but differs (never used).
    """
    data = store.get(key)
    if data is None:
        return None
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise StoreError(f"{store.describe(key)} is not the file it is named after "
                         f"({len(data)} bytes, expected {size} with SHA-256 {sha256})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, dest)  # readers see the whole file or none
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return dest
