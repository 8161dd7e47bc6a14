"""A real Prefect server on loopback, the served deployment, a run for a past date through the API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-server"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port), "--no-ui"], env=env, stdout=log, stderr=log)
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(api, process, 120)
        yield {"PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect-client")}
    finally:
        _stop(process)


def test_served_deployment_renders_a_past_date_triggered_through_the_api(
        tmp_path: Path, prefect_server: dict[str, str]) -> None:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from zundacast.sample_day import SAMPLE_DATE, sample_show, serve_sample_day

    store = tmp_path / "public"
    with serve_sample_day(port=0) as base_url:
        show = sample_show(base_url)
        env = {**os.environ, **prefect_server, "ZUNDACAST_HOME": str(tmp_path / "home"),
               "TEST_SHOW_JSON": show.model_dump_json()}
        script = ("import os; from deployments.serve import serve; from zundacast.show import Show; "
                  f"serve(Show.model_validate_json(os.environ['TEST_SHOW_JSON']), store={str(store)!r})")
        log = (tmp_path / "serve.log").open("wb")
        server = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT, stdout=log, stderr=log)
        try:
            with temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}):
                deployment = f"daily-episode/{show.show.id}-daily"
                for _ in range(120):  # the serve process registers the deployment when it starts
                    if server.poll() is not None:
                        raise AssertionError((tmp_path / "serve.log").read_text(errors="replace")[-3000:])
                    try:
                        flow_run = run_deployment(
                            deployment, parameters={"episode_date": SAMPLE_DATE.isoformat()},
                            timeout=600, poll_interval=2)
                        break
                    except ObjectNotFound:  # the serve process has not registered it yet
                        time.sleep(1)
                else:
                    raise AssertionError("deployment never appeared")
        finally:
            _stop(server)
    assert flow_run.state is not None and flow_run.state.is_completed(), (
        flow_run.state, (tmp_path / "serve.log").read_text(errors="replace")[-3000:])
    assert (store / SAMPLE_DATE.isoformat() / "episode.json").is_file()
    assert (store / "feed.xml").is_file()
