"""The README's Prefect automation, created on a real `prefect server start` exactly as printed there.

The JSON is read out of README.md ("Hearing about failures"), the block id is put in place of the
placeholder, and `prefect automation create --from-json` must accept it. Then a daily-episode run that
fails makes the server's automation post through the webhook block to a loopback receiver.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.prefect_server import running_prefect_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "<your Slack webhook block id>"


def readme_automation_json() -> str:
    """The JSON argument of the `prefect automation create --from-json '…'` under "Hearing about failures"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Hearing about failures", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"prefect automation create --from-json '(.*?)'\n", section, re.S)
    assert found, "README: no `prefect automation create --from-json '…'` under Hearing about failures"
    return found.group(1)


class Receiver:
    """A loopback webhook that records POSTed JSON and wakes whoever waits for the first one."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.payloads.append(json.loads(body))
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/automation"


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real server on loopback with what automations use: the triggers service (which also runs their
    actions) and the event persister; the client settings that reach it."""
    with running_prefect_server(tmp_path / "prefect-server", tmp_path / "server.log",
                                needed=("triggers", "event_persister")) as api:
        yield {"PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect-client")}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    thread = threading.Thread(target=state.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()


def test_the_readme_automation_is_accepted_and_fires(
        tmp_path: Path, prefect_server: dict[str, str], receiver: Receiver) -> None:
    import asyncio

    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env = {**os.environ, **prefect_server}
    with temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}):
        block = CustomWebhookNotificationBlock(name="zundacast", url=receiver.url,
                                               json_data={"text": "{{subject}}\n{{body}}"})
        block_id = block.save("zundacast-alerts")
        automation = readme_automation_json().replace(PLACEHOLDER, str(block_id))
        assert PLACEHOLDER not in automation and str(block_id) in automation
        created = subprocess.run([sys.executable, "-m", "prefect", "automation", "create", "--from-json",
                                  automation], env=env, cwd=tmp_path, capture_output=True, text=True,
                                 timeout=120)
        assert created.returncode == 0, created.stdout + created.stderr

        async def stored() -> list[Any]:
            async with get_client() as client:
                return await client.read_automations_by_name("zundacast failed")

        (saved,) = asyncio.run(stored())
        expected = json.loads(automation)
        assert saved.trigger.posture.value == expected["trigger"]["posture"]
        assert set(saved.trigger.expect) == set(expected["trigger"]["expect"])
        assert str(saved.actions[0].block_document_id) == str(block_id)

    # A daily-episode run that fails (here: a show that does not exist) must reach the webhook.
    failing = subprocess.run(
        [sys.executable, "-c", "from flows.daily_episode import daily_episode; "
                               "daily_episode(show='no-such-show')"],
        env={**env, "ZUNDACAST_HOME": str(tmp_path / "home")}, cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert failing.returncode != 0 and "no-such-show" in failing.stderr + failing.stdout
    receiver.arrived.wait()  # no clock: pytest-timeout bounds the wait for the automation's post
    assert receiver.payloads, "the automation never posted to the webhook block"
    text = receiver.payloads[0]["text"]
    assert text.startswith("zundacast failed") and "no-such-show-today" in text
