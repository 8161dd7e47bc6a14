"""System tests fail, not skip, when CI requires them and a tool is missing (tests/system.py)."""

from __future__ import annotations

import pytest

from tests.system import require_system_tool, system_unavailable

MISSING = "/nonexistent/zundacast-no-such-tool"


def test_a_missing_tool_fails_when_system_tests_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZUNDACAST_REQUIRE_SYSTEM_TESTS", "1")
    with pytest.raises(pytest.fail.Exception, match="ZUNDACAST_REQUIRE_SYSTEM_TESTS"):
        require_system_tool(MISSING)


def test_a_missing_tool_skips_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZUNDACAST_REQUIRE_SYSTEM_TESTS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_system_tool(MISSING)
    assert require_system_tool("sh").endswith("/sh")


def test_anything_missing_fails_when_system_tests_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one way a test says the machine lacks something (a tool, root, a mount, the reference files)."""
    monkeypatch.setenv("ZUNDACAST_REQUIRE_SYSTEM_TESTS", "1")
    with pytest.raises(pytest.fail.Exception, match=r"no tmpfs here.*ZUNDACAST_REQUIRE_SYSTEM_TESTS"):
        system_unavailable("no tmpfs here")
    monkeypatch.delenv("ZUNDACAST_REQUIRE_SYSTEM_TESTS")
    with pytest.raises(pytest.skip.Exception, match="no tmpfs here"):
        system_unavailable("no tmpfs here")
