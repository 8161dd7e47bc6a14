"""System tests use Debian tools (gpodder, chromium) that .ci/run installs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def require_system_tool(path_or_name: str) -> str:
    """The tool's path; skips when it is absent, unless CI said system tests are required."""
    found = path_or_name if Path(path_or_name).is_file() else shutil.which(path_or_name)
    if found:
        return found
    if os.environ.get("ZUNDACAST_REQUIRE_SYSTEM_TESTS"):
        pytest.fail(f"{path_or_name} is required here (ZUNDACAST_REQUIRE_SYSTEM_TESTS is set) but missing")
    pytest.skip(f"{path_or_name} not installed (.ci/run installs it)")
