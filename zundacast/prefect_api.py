"""Which Prefect API a command-line run talks to, and `zundacast server start|stop|status`.

A run with no `PREFECT_API_URL` starts Prefect's temporary (ephemeral) API: a second Python process
that imports Prefect's server and checks the database's migrations before the flow can start, which is
most of a cached rerun's seconds. A local server started once with `zundacast server start` (the real
`prefect server start`, on loopback, with its UI) takes that away: the command line uses it whenever it
answers `/api/health`, and falls back to the temporary API when it does not. The server's PID and port
live in `$PREFECT_HOME/zundacast-server.json`, so it serves the same Prefect home (database, results)
the runs use. Nothing here imports Prefect: choosing the API must happen before Prefect reads its
settings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import BaseModel

from zundacast.errors import ZundacastError

DEFAULT_PORT = 4200
STATE_FILE = "zundacast-server.json"
LOG_FILE = "zundacast-server.log"
START_TIMEOUT_S = 180.0  # `prefect server start` answered after about 12 s on a quiet 2-core machine
STOP_TIMEOUT_S = 30.0
# The server's environment: offline-safe (no telemetry: it fails without internet and once locked the
# SQLite database), and its own, not a remote API a shell may point at.
SERVER_SETTINGS = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
NOT_INHERITED = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")


class ServerState(BaseModel):
    """What `zundacast server start` leaves behind for the runs and for `stop`."""

    pid: int
    port: int
    api_url: str
    prefect_home: str
    log: str


def prefect_home() -> Path:
    """Prefect's home as Prefect will resolve it (its default is ~/.prefect)."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def state_path() -> Path:
    return prefect_home() / STATE_FILE


def read_state() -> ServerState | None:
    try:
        return ServerState.model_validate_json(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    """True when a Prefect API answers `GET /health` with 200."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def is_our_server(pid: int) -> bool:
    """The process is alive and is a `prefect server start` (a PID file can outlive its process)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"prefect" in command and b"server" in command and b"start" in command


def running_server() -> ServerState | None:
    """The server `zundacast server start` left for this Prefect home, if it is up and answers."""
    state = read_state()
    if state is None or not is_our_server(state.pid) or not healthy(state.api_url):
        return None
    return state


def use_running_server() -> str | None:
    """Point this process's Prefect at the running local server, if there is one; its API URL.

    An explicit `PREFECT_API_URL` is left alone (the person chose an API). Call before importing Prefect.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    state = running_server()
    if state is None:
        return None
    os.environ["PREFECT_API_URL"] = state.api_url
    return state.api_url


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_server(port: int = DEFAULT_PORT, timeout_s: float = START_TIMEOUT_S) -> tuple[ServerState, bool]:
    """Start `prefect server start` on 127.0.0.1 in the background, wait until it answers; (state, started).

    Already running for this Prefect home: that one, started False. `port` 0 picks any free port.
    """
    running = running_server()
    if running is not None:
        return running, False
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    if not _port_free(port):
        raise ZundacastError(f"port {port} on 127.0.0.1 is taken: start the server on another one "
                             f"(zundacast server start --port N, or --port 0 for any free port)")
    log = home / LOG_FILE
    env = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
    env.update(SERVER_SETTINGS, PREFECT_HOME=str(home))
    with log.open("wb") as log_file:
        # Its own session: it outlives this command, and `stop` can end it with its children.
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
    state = ServerState(pid=process.pid, port=port, api_url=f"http://127.0.0.1:{port}/api",
                        prefect_home=str(home), log=str(log))
    state_path().write_text(state.model_dump_json(), encoding="utf-8")  # `stop` finds it even half-started
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            state_path().unlink(missing_ok=True)
            raise ZundacastError(f"the Prefect server exited with {process.returncode} while starting; "
                                 f"its log {log} ends:\n{_log_tail(log)}")
        if healthy(state.api_url):
            return state, True
        time.sleep(0.25)
    stop_server()
    raise ZundacastError(f"the Prefect server did not answer {state.api_url}/health within {timeout_s:.0f} s "
                         f"(stopped it); its log: {log}")


def _gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaps it when this process started it (tests, start then stop)
    return not is_our_server(pid)


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:  # the session `start` made: the server and its children
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def stop_server(timeout_s: float = STOP_TIMEOUT_S) -> ServerState | None:
    """Stop the server `start` left for this Prefect home; the state it had, None if none was running."""
    state = read_state()
    if state is None:
        return None
    if not is_our_server(state.pid):  # died or never started: only the file is left
        state_path().unlink(missing_ok=True)
        return None
    _signal(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while not _gone(state.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not _gone(state.pid):
        _signal(state.pid, signal.SIGKILL)
    state_path().unlink(missing_ok=True)
    return state


def status_lines() -> tuple[bool, list[str]]:
    """(running, what to print) for `zundacast server status`."""
    state = read_state()
    if state is None:
        return False, [f"not running (no {state_path()}); runs start Prefect's temporary API each time"]
    if not is_our_server(state.pid):
        return False, [f"not running (process {state.pid} is not its server any more); "
                       f"`zundacast server start` starts one"]
    if not healthy(state.api_url):
        return False, [f"process {state.pid} is up but {state.api_url}/health does not answer yet; "
                       f"its log: {state.log}"]
    ui = state.api_url.removesuffix("/api")
    return True, [f"running: {state.api_url} (pid {state.pid}, Prefect home {state.prefect_home})",
                  f"UI: {ui}", f"log: {state.log}"]
