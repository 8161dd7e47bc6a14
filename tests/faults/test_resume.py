"""A run killed after summarize resumes without asking the LLM again.

For real: the flow runs in a subprocess (its own PREFECT_HOME and result storage, reporting to this test
session's Prefect API: no server start per run) against the fake OpenAI server and the sample day served by
this test process. The fake holds the script stage's
requests; once it has seen one (so every summary is done and persisted), the subprocess and its children
get SIGKILL. A second subprocess reruns the same date: the fake must see no new summarize request, and the
episode must be published with the LLM's summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_server import fake_openai
from tests.faults.support import share_speech_cache, short_show
from tests.test_llm import responder
from zundacast.sample_day import SAMPLE_DATE, serve_sample_day

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN = """
import sys, datetime as dt, pathlib
from flows.daily_episode import daily_episode
from zundacast.show import Show
show = Show.model_validate_json(pathlib.Path(sys.argv[1]).read_text("utf-8"))
summary = daily_episode(episode_date=dt.date.fromisoformat(sys.argv[2]), show=show, store=sys.argv[3])
print(summary.model_dump_json())
"""


def _env(tmp_path: Path, base_url: str) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()  # the session's server (prefect_harness): each run skips its own start
    assert api_url, "no Prefect API for the runs"
    return {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api_url,
        # the session's utterance cache: this test is about the LLM's stages, not about speech
        "ZUNDACAST_HOME": str(share_speech_cache(tmp_path / "home")), "ZUNDACAST_PROGRESS": "1",
        "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-test-resume-0000000000",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }


def _count(requests: list[Any], schema: str) -> int:
    return sum(1 for request in list(requests) if request.schema_name == schema)


def test_killed_after_summarize_the_rerun_asks_the_llm_for_no_summary(tmp_path: Path,
                                                                      prefect_harness: None) -> None:
    script_gate, script_reached = threading.Event(), threading.Event()

    def answer(request: dict[str, Any]) -> str:
        if request["response_format"]["json_schema"]["name"] == "SegmentDraft":
            script_reached.set()
            script_gate.wait()  # the first run dies waiting here (the test opens the gate before it ends)
        return responder(request)

    store = tmp_path / "public"
    with serve_sample_day(port=0) as base, fake_openai(answer) as llm:
        show_file = tmp_path / "show.json"
        # the default sound (44.1 kHz, 96 kbps, the jingle): the resumed path is the one a show runs
        default_sound = {"sample_rate": 44100, "bitrate_kbps": 96}
        show_file.write_text(short_show(base, audio=default_sound).model_dump_json(), "utf-8")
        command = [sys.executable, "-c", RUN, str(show_file), SAMPLE_DATE.isoformat(), str(store)]
        env = _env(tmp_path, llm.base_url)

        first_log = tmp_path / "first.log"  # a file, not a pipe: nobody reads while the run works
        with first_log.open("wb") as log:
            first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # own process group: the ephemeral server too
        # Events, not a clock: the fake says when the script stage asked; a watcher says if the run ended
        # first. pytest-timeout bounds the wait.
        threading.Thread(target=lambda: (first.wait(), script_reached.set()), daemon=True).start()
        try:
            script_reached.wait()
            assert first.poll() is None, "the first run ended before the script stage"
        finally:
            with contextlib.suppress(ProcessLookupError):  # the group is gone if the run ended by itself
                os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            if first.returncode != -signal.SIGKILL:
                script_gate.set()  # no request stays held by the fake
        assert first.returncode == -signal.SIGKILL, first_log.read_text(errors="replace")[-3000:]
        assert _count(llm.requests, "SegmentDraft") >= 1
        summaries_first = _count(llm.requests, "SummaryDraft")
        segments_first = _count(llm.requests, "SegmentDraft")
        assert summaries_first >= 1
        assert not (store / "feed.xml").exists()  # killed before anything was published

        script_gate.set()
        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        assert second.returncode == 0, second.stderr[-3000:]

        assert _count(llm.requests, "SummaryDraft") == summaries_first  # zero repeated summaries
        assert _count(llm.requests, "SegmentDraft") > segments_first  # the script was written this time
    assert "✓ summarize: cached" in second.stderr
    record = json.loads((store / SAMPLE_DATE.isoformat() / "episode.json").read_text("utf-8"))
    assert [summary["writer"] for summary in record["summaries"]] == ["gpt-4o-mini"]  # the LLM's, reused
    assert (store / "feed.xml").is_file()
