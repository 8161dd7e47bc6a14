"""Flow runs shared by several failure-matrix files (see tests/faults/support.py for the helpers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.openai_server import Reply, fake_openai
from tests.faults.support import (
    SECRET_KEY,
    LogCapture,
    WebhookReceiver,
    flow_env,
    run_flow,
    sample_site,
    short_show,
)
from zundacast.llm import LLMError

INVALID_JSON = '{"spoken_title": "途中で切れた'


@pytest.fixture(scope="session")
def llm_runs(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[dict[str, Any]]:
    """Two runs against the fake OpenAI server with a secret-looking OPENAI_API_KEY:

    - `invalid`: every answer is unusable JSON: the run must still publish, from the offline writer;
    - `rejected`: the key is rejected (HTTP 401), with a failure webhook configured.
    Logs are captured throughout; every folder they wrote is returned for scanning (the `invalid` home's
    utterance cache is a symlink to the test run's shared one: a scan must follow it).
    """
    root = tmp_path_factory.mktemp("llm-faults")
    with sample_site() as (_site, base), LogCapture() as logs, WebhookReceiver() as hook:
        show = short_show(base, picks=1)
        # Its utterance cache is the test run's (not about speech: the offline writer's script, as other
        # modules speak it); the rejected run stops before synthesis, with a home of its own.
        with fake_openai(lambda request: INVALID_JSON) as invalid_server, \
                flow_env(root / "invalid", shared_speech=True, OPENAI_API_KEY=SECRET_KEY,
                         OPENAI_BASE_URL=invalid_server.base_url):
            invalid_state = run_flow(show, root / "invalid" / "public", return_state=True)
            invalid_summary = invalid_state.result()
            invalid_requests = list(invalid_server.requests)
        with fake_openai(lambda request: json.dumps({})) as rejecting_server, \
                flow_env(root / "rejected", OPENAI_API_KEY=SECRET_KEY,
                         OPENAI_BASE_URL=rejecting_server.base_url, ZUNDACAST_WEBHOOK_URL=hook.url):
            rejecting_server.queue = [Reply(status=401, content=f"Incorrect API key provided: {SECRET_KEY}")
                                      for _ in range(20)]
            with pytest.raises(LLMError) as rejected:
                run_flow(show, root / "rejected" / "public")
            rejected_requests = list(rejecting_server.requests)
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # Prefect's API logs land in its database before anyone scans it
    yield {"root": root, "show": show, "invalid_summary": invalid_summary,
           "invalid_run_id": invalid_state.state_details.flow_run_id,
           "invalid_requests": invalid_requests,
           "rejected": rejected.value, "rejected_requests": rejected_requests, "logs": logs.lines,
           "webhook": hook.payloads, "webhook_url": hook.url}
