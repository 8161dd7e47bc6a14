"""System tests use Debian tools (gpodder, chromium) and root powers (tmpfs mounts) that .ci/run provides.

Nothing here skips silently in CI: with ZUNDACAST_REQUIRE_SYSTEM_TESTS set, a missing tool or power is a
failure. Every test that depends on the machine goes through `require_system_tool` or `system_unavailable`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRED_ENV = "ZUNDACAST_REQUIRE_SYSTEM_TESTS"


def system_tests_required() -> bool:
    return bool(os.environ.get(REQUIRED_ENV))


def system_unavailable(why: str) -> NoReturn:
    """Fail when CI said system tests are required, else skip; `why` names what is missing."""
    if system_tests_required():
        pytest.fail(f"{why} ({REQUIRED_ENV} is set, so this test must run)")
    pytest.skip(why)


def require_system_tool(path_or_name: str) -> str:
    """The tool's path; skips when it is absent, unless CI said system tests are required."""
    found = path_or_name if Path(path_or_name).is_file() else shutil.which(path_or_name)
    if found:
        return found
    system_unavailable(f"{path_or_name} is required but missing (.ci/run installs it)")


@contextmanager
def mounted_tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of `size` (e.g. "64k") at `where`, unmounted afterwards (needs root and mount)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        system_unavailable("mounting a tmpfs needs root and mount")
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        system_unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
