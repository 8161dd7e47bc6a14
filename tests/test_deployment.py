"""A real Prefect server on loopback, the served deployment, a run for a past date through the API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.support import share_speech_cache
from tests.prefect_server import said, stop

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def test_served_deployment_renders_a_past_date_triggered_through_the_api(
        tmp_path: Path, served_deployment_client: dict[str, str]) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.faults.support import short_show
    from zundacast.sample_day import SAMPLE_DATE, serve_sample_day

    store = tmp_path / "public"
    with serve_sample_day(port=0) as base_url:
        show = short_show(base_url, picks=1)  # about serving, not length: test_flow makes the full episode
        # about serving, not speech: the utterances come from the test run's shared cache
        # the runner asks for scheduled runs every second (Prefect's default: every 10): the test triggers
        # one and waits for it
        env = {**os.environ, **served_deployment_client,
               "ZUNDACAST_HOME": str(share_speech_cache(tmp_path / "home")),
               "TEST_SHOW_JSON": show.model_dump_json(), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        script = ("import os; from deployments.serve import serve; from zundacast.show import Show; "
                  f"serve(Show.model_validate_json(os.environ['TEST_SHOW_JSON']), store={str(store)!r})")
        server = subprocess.Popen([sys.executable, "-c", script], env={**env, "PYTHONUNBUFFERED": "1"},
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  encoding="utf-8", errors="replace")
        try:
            # Prefect prints this once the deployment is registered with the API
            said(server, tmp_path / "serve.log", "being served").wait()  # "is" (one) or "are" (several)
            assert server.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
            with temporary_settings({PREFECT_API_URL: served_deployment_client["PREFECT_API_URL"]}):
                flow_run = run_deployment(f"daily-episode/{show.show.id}-daily",
                                          parameters={"episode_date": SAMPLE_DATE.isoformat()},
                                          timeout=None, poll_interval=1)  # pytest-timeout bounds it
        finally:
            stop(server)
    assert flow_run.state is not None and flow_run.state.is_completed(), (
        flow_run.state, (tmp_path / "serve.log").read_text(errors="replace")[-3000:])
    assert (store / SAMPLE_DATE.isoformat() / "episode.json").is_file()
    assert (store / "feed.xml").is_file()
