"""A real Prefect server on loopback, the served deployment, a run for a past date through the API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prefect server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"prefect server at {url} not healthy after {seconds} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


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


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-server"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false",
           "PREFECT_SERVER_LOGGING_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}  # INFO: uvicorn says it is up
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port), "--no-ui"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
    api = f"http://127.0.0.1:{port}/api"
    log = tmp_path / "server.log"
    try:
        said(process, log, "Uvicorn running on").wait()  # uvicorn says it once the API is up
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert httpx.get(f"{api}/health", timeout=30).status_code == 200
        yield {"PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect-client")}
    finally:
        _stop(process)


def test_served_deployment_renders_a_past_date_triggered_through_the_api(
        tmp_path: Path, prefect_server: dict[str, str]) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.faults.support import short_show
    from zundacast.sample_day import SAMPLE_DATE, serve_sample_day

    store = tmp_path / "public"
    with serve_sample_day(port=0) as base_url:
        show = short_show(base_url, picks=1)  # about serving, not length: test_flow makes the full episode
        env = {**os.environ, **prefect_server, "ZUNDACAST_HOME": str(tmp_path / "home"),
               "TEST_SHOW_JSON": show.model_dump_json()}
        script = ("import os; from deployments.serve import serve; from zundacast.show import Show; "
                  f"serve(Show.model_validate_json(os.environ['TEST_SHOW_JSON']), store={str(store)!r})")
        server = subprocess.Popen([sys.executable, "-c", script], env={**env, "PYTHONUNBUFFERED": "1"},
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  encoding="utf-8", errors="replace")
        try:
            # Prefect prints this once the deployment is registered with the API
            said(server, tmp_path / "serve.log", "being served").wait()  # "is" (one) or "are" (several)
            assert server.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
            with temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}):
                flow_run = run_deployment(f"daily-episode/{show.show.id}-daily",
                                          parameters={"episode_date": SAMPLE_DATE.isoformat()},
                                          timeout=None, poll_interval=1)  # pytest-timeout bounds it
        finally:
            _stop(server)
    assert flow_run.state is not None and flow_run.state.is_completed(), (
        flow_run.state, (tmp_path / "serve.log").read_text(errors="replace")[-3000:])
    assert (store / SAMPLE_DATE.isoformat() / "episode.json").is_file()
    assert (store / "feed.xml").is_file()
