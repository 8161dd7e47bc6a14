"""Shared test setup: every test runs with its own home and no real credentials."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

# Prefect offline: no telemetry (it fails without internet and once locked the SQLite database),
# and room for the ephemeral server's start on a loaded 2-core machine.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Prefect's database and result storage for this test session only (each xdist worker is a session of its
# own): caches never leak between sessions.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="zundacast-prefect-")
# Retries wait for nothing here (zundacast/backoff.py): retry tests assert the delays asked, not elapsed time.
os.environ.setdefault("ZUNDACAST_RETRY_DELAY_SCALE", "0")

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


@pytest.fixture
def shared_speech(isolated_env: Path) -> Path:
    """This test's ZUNDACAST_HOME with the session's utterance cache: for flow runs not about caching."""
    from tests.faults.support import share_speech_cache

    return share_speech_cache(isolated_env)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real Prefect API for tests that run flows: the test run's one shared `prefect server start`
    (tests/prefect_server.py), which the xdist controller started before its workers (see
    pytest_configure); without xdist this session starts it. This session's flows report to it: its
    PREFECT_API_URL, and the database setting names the server's database (what it stores is scanned).

    Workers share the server, not their caches: each session keeps its own PREFECT_HOME and result
    storage. Tests reading Prefect objects by key or name filter by their own flow runs' ids.
    """
    import prefect.context
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    from tests.prefect_server import joined_shared_server, shared_server

    with ExitStack() as stack:
        server = joined_shared_server()
        if server is None:  # not under xdist: this session's server, stopped when the session ends
            server = stack.enter_context(shared_server(tmp_path_factory.getbasetemp() / "prefect-server"))
        api = server.wait()
        stack.enter_context(temporary_settings({
            PREFECT_API_URL: api, PREFECT_SERVER_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{server.database}"}))
        # as Prefect's own test harness does: code in a context copied before this one sees the server too
        stack.enter_context(prefect.context._temporary_global_settings_context(
            prefect.context.get_settings_context()))
        yield
        drain_prefect_workers()


def drain_prefect_workers() -> None:
    """Send the logs and events still queued in this process before the session ends (as Prefect's test
    harness does before it stops its server)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness: None) -> str:
    """The shared server's API URL, for CLI subprocesses whose subject is not Prefect's temporary API.

    Without PREFECT_API_URL every `zundacast demo|run` starts a temporary API of its own (a second Python
    process, migrations on a fresh database): measured, a warm-cache demo took 41 CPU-s with it and
    20-23 (+4 in the server) pointed at a running one. Their PREFECT_HOME stays fresh, so every stage
    still computes.
    """
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the harness sets the API URL"
    return str(url)


@pytest.fixture
def served_deployment_client(tmp_path: Path, prefect_api_url: str) -> dict[str, str]:
    """The client settings (API URL, a Prefect home of the test's own) of a process serving deployments on
    the test run's shared server: its scheduler is off (no schedules made: the test makes its runs), and
    the served deployments' names are fixed, so SAME_WORKER keeps the modules that serve them apart in
    time (test_deployment, test_runlock_e2e)."""
    return {"PREFECT_API_URL": prefect_api_url, "PREFECT_HOME": str(tmp_path / "prefect-client")}


@pytest.fixture(scope="session")
def plain_demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`zundacast demo --json --store FOLDER` as a newcomer runs it: nothing set, a fresh ZUNDACAST_HOME
    and PREFECT_HOME, so Prefect's temporary API starts (the README's first command). The suite's one cold
    full episode: it speaks every sentence of the sample day into the test run's utterance cache, which
    later runs speak from. Inspected by test_flow (the JSON summary, and a rerun from its results) and
    test_cli_publish (the closing notes)."""
    import subprocess
    import sys

    from tests.faults.support import share_speech_cache

    root = tmp_path_factory.mktemp("plain-demo")
    store, home, prefect_home = root / "public", root / "home", root / "prefect"
    env = {"ZUNDACAST_HOME": str(share_speech_cache(home)), "PREFECT_HOME": str(prefect_home),
           "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": str(root)}
    done = subprocess.run([sys.executable, "-m", "zundacast.cli", "demo", "--json", "--store", str(store)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, env=env,
                          timeout=1200, check=False)
    return {"done": done, "root": root, "store": store, "home": home, "prefect_home": prefect_home}


@pytest.fixture
def prefect_results(tmp_path: Path, prefect_harness: None) -> Iterator[Path]:
    """Fresh persisted-result storage (the cross-run cache) for one test."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    storage = tmp_path / "prefect-results"
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage}):
        yield storage



# --- parallel workers (pytest-xdist; `-n`, `--dist loadscope` are in pyproject's addopts) ----------------

# A test module's tests run on one worker, so its module-scoped fixtures (a flow run inspected many ways)
# are made once. Modules sharing a session-scoped fixture of the suite go to the same worker for the same
# reason: module -> the scope they share. (xdist's `xdist_group` marks would say this per test, but they
# do nothing under pytest 9: xdist 3.8 renames `item._nodeid`, which pytest 9 no longer reads.)
SAME_WORKER = {
    "tests/faults/test_llm_faults.py": "tests/faults::llm_runs",
    "tests/faults/test_security.py": "tests/faults::llm_runs",
    # the suite's one cold full episode (`plain_demo`), inspected by both modules; test_flow's rerun and
    # test_cli_publish's second demo speak from its utterance cache
    "tests/test_flow.py": "shared speech: full episode",
    "tests/test_cli_publish.py": "shared speech: full episode",
    # both serve `daily-episode/<show>-daily` (and the silence check) on the shared Prefect server: at the
    # same time, one module's runner could pick up the other's run
    "tests/test_runlock_e2e.py": "served deployments",
    "tests/test_deployment.py": "served deployments",
}


@pytest.hookimpl(optionalhook=True)  # xdist's hook: unknown under `-p no:xdist`
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadscope`: one work unit per module (or per shared session fixture), in the order
    collected (`--no-loadscope-reorder`), so the slow modules put first below start first."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SAME_WORKER.get(module, module)

    return ModuleScheduling(config, log)


# The modules (work units) by the wall time they took, longest first, measured at 4 workers on a quiet
# machine (test_workers ~90 s, each test_review module ~80 s, test_flow with test_cli_publish ~80 s, the
# served deployments ~50 s, the rest 15-50 s): the scheduler hands them out in this order, so no long one
# starts last (the modules not listed take a few seconds each). A SAME_WORKER group starts where its first
# module is listed (its modules are listed together).
LONGEST_FIRST = ("tests/test_workers.py", "tests/test_review_upload.py", "tests/test_review.py",
                 "tests/test_flow.py", "tests/test_cli_publish.py",
                 "tests/test_runlock_e2e.py", "tests/test_deployment.py",
                 "tests/faults/test_llm_faults.py", "tests/faults/test_security.py",
                 "tests/test_index.py", "tests/test_audio.py", "tests/test_voices.py", "tests/test_server.py",
                 "tests/faults/test_environment.py", "tests/faults/test_resume.py", "tests/test_archives.py",
                 "tests/test_cohost.py", "tests/faults/test_injection.py", "tests/test_automation.py",
                 "tests/test_runlock.py", "tests/faults/test_store_faults.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first, then those with a slow test, then the rest (each part as collected),
    so no worker starts a long module last."""
    slow_modules = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        if module in LONGEST_FIRST:
            return LONGEST_FIRST.index(module)
        return len(LONGEST_FIRST) + (0 if module in slow_modules else 1)

    items.sort(key=rank)


# --- the test run's shared Prefect server ----------------------------------------------------------------


_SHARED_SERVER = pytest.StashKey[ExitStack]()  # the controller's: stops the shared server


def _under_xdist(config: pytest.Config) -> bool:
    """This process is xdist's controller and will spawn workers (`-n N`, N > 0)."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


@pytest.hookimpl(trylast=True)  # after pytest's tmpdir plugin: the run's base temp folder exists
def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, the controller starts the run's one Prefect server before it spawns the workers, which
    inherit its environment (tests/prefect_server.SHARED_ENV) and wait for it only when a test needs it:
    they collect meanwhile. Its log: <basetemp>/prefect-server/server.log."""
    if not _under_xdist(config):
        return
    from tests.prefect_server import shared_server

    folder = config._tmp_path_factory.getbasetemp() / "prefect-server"  # type: ignore[attr-defined]
    config.stash[_SHARED_SERVER] = stack = ExitStack()
    stack.enter_context(shared_server(folder))


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(_SHARED_SERVER, None)
    if stack is not None:
        stack.close()
