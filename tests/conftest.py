"""Shared test setup: every test runs with its own home and no real credentials."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect offline: no telemetry (it fails without internet and once locked the SQLite database),
# and room for the ephemeral server's start on a loaded 2-core machine.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Prefect's database and result storage for this test session only: caches never leak between sessions.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="zundacast-prefect-")

_CLEARED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "VOICEVOX_URL", "ZUNDACAST_STORE", "ZUNDACAST_WEBHOOK_URL",
            "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "ZUNDACAST_BASE_URL")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ZUNDACAST_HOME at a fresh folder and drop credentials from the environment."""
    home = tmp_path / "zundacast-home"
    home.mkdir()
    monkeypatch.setenv("ZUNDACAST_HOME", str(home))
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real Prefect API (temporary database) for tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def prefect_results(tmp_path: Path, prefect_harness: None) -> Iterator[Path]:
    """Fresh persisted-result storage (the cross-run cache) for one test."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    storage = tmp_path / "prefect-results"
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage}):
        yield storage

