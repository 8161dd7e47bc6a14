"""A real `prefect server start` on loopback for one end-to-end test, with only the services it uses.

A server's background services cost CPU for as long as it runs, and the scheduler even starts runs of
its own: a served deployment's cron (the silence check is hourly) could fire in the middle of a test.
Each test names the services it needs (`NEEDED`); every other one is turned off through Prefect's own
`PREFECT_SERVER_SERVICES_*_ENABLED` settings. Orchestration (flow runs, work pools, deployments,
concurrency slots, logs) is the API itself and always on.

The server is up once uvicorn says so on its log: an event, never a clock (pytest-timeout bounds the
wait); a server that exits while starting ends the wait too, and the test fails with its log.

The test run's shared server (`shared_server`, tests/conftest.py's `prefect_harness`) is one such server
for every xdist worker: started by the controller before the workers exist, it tells them it is up
through a file lock (`SHARED_ENV`'s folder: the controller holds `ready.lock` until uvicorn says it runs;
a worker blocks on taking it). Once up, its freshly migrated database is copied (sqlite's backup API) to
`template.db`, and every server started later in the run begins from that copy: no migrations to run.
The tests of served deployments (test_deployment, test_runlock_e2e) use the shared server too: its
scheduler is off, so their runners only run what the test starts with `run_deployment`, and
tests/conftest.py's SAME_WORKER puts them on one worker, one after the other (their deployments' names
are fixed). Tests that need a server of their own start one (test_automation: triggers; test_workers:
a work pool and every deployment listed).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

# Prefect 3.9's services (prefect/settings/models/server/services.py) that a test can do without.
OPTIONAL_SERVICES = {
    "scheduler": "SCHEDULER",  # makes the runs of a deployment's schedules: tests start their runs
    "late_runs": "LATE_RUNS",  # marks scheduled runs Late: a loaded machine must not change states
    "foreman": "FOREMAN",  # marks silent workers offline
    "cancellation_cleanup": "CANCELLATION_CLEANUP",
    "pause_expirations": "PAUSE_EXPIRATIONS",
    "repossessor": "REPOSSESSOR",  # takes back expired concurrency leases (runs here end and release)
    "cleanup_reconciler": "CLEANUP_RECONCILER",
    "task_run_recorder": "TASK_RUN_RECORDER",  # writes task runs' states (from their events) to the database
    "event_persister": "EVENT_PERSISTER",  # stores events (the event feed); triggers read the live stream
    "triggers": "TRIGGERS",  # automations: their triggers and, under the same setting, their actions
}
STARTED = "Uvicorn running on"  # uvicorn's line once the API answers (logged at INFO)
# What Prefect's test harness (an ephemeral server) runs and the flow tests keep: task runs' states and
# events in the database (test_security scans it for secrets). No test automates on the shared server,
# so its triggers stay off; nor does its scheduler run (served deployments run only when a test asks).
SHARED_SERVICES = ("task_run_recorder", "event_persister")
# The folder of this test run's shared server (its home, log, readiness lock, API URL and database
# template), in the environment of the process that starts it and of the xdist workers it spawns.
SHARED_ENV = "ZUNDACAST_TEST_PREFECT_SERVER"


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def services_off(needed: Iterable[str] = ()) -> dict[str, str]:
    """The settings that turn off every service of OPTIONAL_SERVICES not `needed` (for a server's env)."""
    needed = set(needed)
    unknown = needed - set(OPTIONAL_SERVICES)
    assert not unknown, f"not a Prefect service: {unknown}"
    return {f"PREFECT_SERVER_SERVICES_{setting}_ENABLED": "false"
            for service, setting in OPTIONAL_SERVICES.items() if service not in needed}


def server_env(home: Path, needed: Iterable[str] = ()) -> dict[str, str]:
    """The server's environment: its own home, offline, no UI, and every service not `needed` off."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_UI_ENABLED": "false", "PREFECT_SERVER_LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1", **services_off(needed)})
    return env


def said(process: subprocess.Popen[str], log: Path, needle: str) -> threading.Event:
    """Set once `process` prints a line containing `needle`, or ends (the caller checks which).

    Its output is copied to `log` meanwhile. An event, not a clock: pytest-timeout bounds any wait on it.
    """
    assert process.stdout is not None
    stream, event = process.stdout, threading.Event()

    def copy() -> None:
        try:
            with log.open("w", encoding="utf-8") as out:
                for line in stream:
                    out.write(line)
                    out.flush()
                    if needle in line:
                        event.set()
        finally:
            event.set()  # the process ended without saying it (or its log could not be written)

    threading.Thread(target=copy, daemon=True).start()
    return event


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def launch(home: Path, needed: Iterable[str]) -> tuple[subprocess.Popen[str], str]:
    """`prefect server start` on a free loopback port, its database in `home`: the process, its API URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port), "--no-ui"], env=server_env(home, needed),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                               errors="replace")
    return process, f"http://127.0.0.1:{port}/api"


@contextmanager
def starting_prefect_server(home: Path, log: Path, needed: Iterable[str] = ()) -> Iterator[Callable[[], str]]:
    """Start `prefect server start` on a free loopback port with its database in `home`; yields `up`,
    which waits until the server answers and returns its API URL (a test can prepare meanwhile).

    `needed`: the services of OPTIONAL_SERVICES the test uses. The server is stopped on exit. When the
    test run's shared server made a migrated database template, the server starts from a copy of it.
    """
    seed_home(home)
    process, api = launch(home, needed)
    started = said(process, log, STARTED)

    def up() -> str:
        started.wait()
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert httpx.get(f"{api}/health", timeout=30).status_code == 200
        return api

    try:
        yield up
    finally:
        stop(process)


@contextmanager
def running_prefect_server(home: Path, log: Path, needed: Iterable[str] = ()) -> Iterator[str]:
    """`prefect server start` (see starting_prefect_server), once it answers: its API URL."""
    with starting_prefect_server(home, log, needed) as up:
        yield up()


# --- the test run's shared server ------------------------------------------------------------------------


class SharedServer:
    """Where the test run's shared server lives: `folder` holds its home, log and readiness files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.home = folder / "home"  # the server's PREFECT_HOME: its database is home/prefect.db
        self.log = folder / "server.log"
        self.ready_lock = folder / "ready.lock"  # held exclusively by the starter until the server is up
        self.api_file = folder / "api"  # the API URL once up; absent if the server failed to start
        self.template = folder / "template.db"  # the migrated database, before any test used it

    @property
    def database(self) -> Path:
        return self.home / "prefect.db"

    def started(self) -> None:
        """Block until the starter says the server is up or failed (a shared lock on `ready.lock`: an
        event, not a clock; pytest-timeout bounds it)."""
        with self.ready_lock.open("rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)

    def wait(self) -> str:
        """Once started: its API URL. Fails with the server's log if it did not start."""
        self.started()
        assert self.api_file.exists(), "the shared Prefect server did not start:\n" + (
            self.log.read_text(errors="replace")[-3000:] if self.log.exists() else f"no log at {self.log}")
        return self.api_file.read_text(encoding="utf-8")


def snapshot(database: Path, template: Path) -> None:
    """A consistent copy of a live SQLite database (sqlite's backup API), in place once complete."""
    partial = template.with_suffix(".partial")
    source, copy = sqlite3.connect(f"file:{database}?mode=ro", uri=True), sqlite3.connect(partial)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    os.replace(partial, template)


@contextmanager
def shared_server(folder: Path) -> Iterator[SharedServer]:
    """Start the test run's shared server in `folder` and name it in SHARED_ENV (for this process and
    those it spawns later); stopped on exit. Returns at once: `SharedServer.wait` waits until it is up.

    A thread holds `ready.lock` until uvicorn says the server runs, snapshots the migrated database into
    the template, writes the API URL, and only then releases the lock."""
    server = SharedServer(folder)
    server.home.mkdir(parents=True)
    lock = server.ready_lock.open("wb")
    fcntl.flock(lock, fcntl.LOCK_EX)
    process, api = launch(server.home, SHARED_SERVICES)
    started = said(process, server.log, STARTED)
    os.environ[SHARED_ENV] = str(folder)

    def announce() -> None:
        try:
            started.wait()
            if process.poll() is None:
                try:
                    snapshot(server.database, server.template)
                finally:  # without a template, servers started later migrate their own database
                    server.api_file.write_text(api, encoding="utf-8")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    announcer = threading.Thread(target=announce, daemon=True)
    announcer.start()
    try:
        yield server
    finally:
        stop(process)
        announcer.join(timeout=30)
        if os.environ.get(SHARED_ENV) == str(folder):
            del os.environ[SHARED_ENV]


def joined_shared_server() -> SharedServer | None:
    """The test run's shared server, if this process or its parent started one."""
    folder = os.environ.get(SHARED_ENV)
    return SharedServer(Path(folder)) if folder else None


def migrated_template() -> Path | None:
    """The shared server's migrated database, once it is up (waits for that if it is starting); None
    without a shared server (a single module's run) or if it failed to start."""
    server = joined_shared_server()
    if server is None:
        return None
    server.started()
    return server.template if server.template.exists() else None


def seed_home(home: Path) -> None:
    """Give a Prefect home the migrated template as its database, when the test run has one (a server
    started there then has no migrations to run)."""
    template = migrated_template()
    if template is not None:
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, home / "prefect.db")
