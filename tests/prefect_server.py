"""A real `prefect server start` on loopback for one end-to-end test, with only the services it uses.

A server's background services cost CPU for as long as it runs, and the scheduler even starts runs of
its own: a served deployment's cron (the silence check is hourly) could fire in the middle of a test.
Each test names the services it needs (`NEEDED`); every other one is turned off through Prefect's own
`PREFECT_SERVER_SERVICES_*_ENABLED` settings. Orchestration (flow runs, work pools, deployments,
concurrency slots, logs) is the API itself and always on.

The server is up once uvicorn says so on its log: an event, never a clock (pytest-timeout bounds the
wait); a server that exits while starting ends the wait too, and the test fails with its log.
"""

from __future__ import annotations

import os
import socket
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
        with log.open("w", encoding="utf-8") as out:
            for line in stream:
                out.write(line)
                out.flush()
                if needle in line:
                    event.set()
        event.set()  # the process ended without saying it

    threading.Thread(target=copy, daemon=True).start()
    return event


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def starting_prefect_server(home: Path, log: Path, needed: Iterable[str] = ()) -> Iterator[Callable[[], str]]:
    """Start `prefect server start` on a free loopback port with its database in `home`; yields `up`,
    which waits until the server answers and returns its API URL (a test can prepare meanwhile).

    `needed`: the services of OPTIONAL_SERVICES the test uses. The server is stopped on exit.
    """
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port), "--no-ui"], env=server_env(home, needed),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                               errors="replace")
    api = f"http://127.0.0.1:{port}/api"
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
