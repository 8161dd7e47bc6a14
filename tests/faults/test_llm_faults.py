"""The LLM misbehaving: rate limits and 5xx are retried, a rejected key stops the run at once, unusable
answers are retried and then written by the offline writer. All against the fake chat-completions server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.summarize import FALLBACK
from tests.fakes.openai_server import FakeOpenAI, Reply, faithful_model, fake_openai
from tests.faults.support import SECRET_KEY
from tests.test_llm import article, responder
from zundacast.llm.openai_writer import HTTP_RETRIES, PARSE_ATTEMPTS
from zundacast.sample_day import SAMPLE_DATE
from zundacast.show import LLMConfig

pytestmark = pytest.mark.slow

QUICK = {"retry-after-ms": "10"}  # the client honours it: retries without the default backoff


@pytest.fixture
def llm_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with fake_openai(responder) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
        yield fake


def summarize_in_a_flow() -> Any:
    """The summarize stage task, with its Prefect retry policy, inside a flow run."""
    from prefect import flow

    from tasks.summarize import summarize

    @flow(name="summarize-only")
    def one_summary() -> Any:
        return summarize(article(), LLMConfig(), "openai:gpt-4o-mini:test")

    return one_summary()


def summarize_requests(requests: list[Any]) -> int:
    return sum(1 for request in requests if request.schema_name == "SummaryDraft")


def segment_requests(requests: list[Any]) -> int:
    return sum(1 for request in requests if request.schema_name == "SegmentDraft")


# --- row 4: 429 and 5xx are retried ---------------------------------------------------------------------


def test_rate_limits_and_server_errors_are_retried_and_the_llm_writes(
        llm_server: FakeOpenAI, prefect_results: Path) -> None:
    llm_server.queue = [Reply(status=429, headers=QUICK), Reply(status=503, headers=QUICK),
                        Reply(status=500, headers=QUICK)]
    summary = summarize_in_a_flow()
    assert len(llm_server.requests) == 4  # three failures, then the answer
    assert summary.writer == "gpt-4o-mini"  # the model wrote it: no fallback
    assert summary.usage.requests == 1


def test_an_endpoint_that_stays_down_is_retried_then_the_offline_writer_takes_over(
        llm_server: FakeOpenAI, prefect_results: Path) -> None:
    llm_server.queue = [Reply(status=503, headers=QUICK) for _ in range(HTTP_RETRIES + 5)]
    summary = summarize_in_a_flow()
    assert len(llm_server.requests) == HTTP_RETRIES + 1  # the client's retries, then no Prefect retry
    assert summary.writer == FALLBACK
    assert summary.summary  # the offline writer's extract


# --- row 5: a rejected key ------------------------------------------------------------------------------


def test_rejected_key_fails_at_once_naming_the_variable(llm_runs: dict[str, Any]) -> None:
    message = str(llm_runs["rejected"])
    assert "OPENAI_API_KEY" in message and "401" in message
    assert SECRET_KEY not in message
    # one pick, one request: neither the client nor Prefect retried, and no second stage asked
    assert len(llm_runs["rejected_requests"]) == 1


def test_rejected_key_publishes_nothing_and_does_not_fall_back(llm_runs: dict[str, Any]) -> None:
    store = llm_runs["root"] / "rejected" / "public"
    assert not (store / "feed.xml").exists()
    assert not (store / SAMPLE_DATE.isoformat() / "episode.json").exists()
    assert not list((llm_runs["root"] / "rejected" / "home").rglob("*.mp3"))


# --- row 6: unusable answers ----------------------------------------------------------------------------


def test_unusable_answers_are_retried_then_the_offline_writer_writes_the_episode(
        llm_runs: dict[str, Any]) -> None:
    requests = llm_runs["invalid_requests"]
    # one pick: the summary and the segment were each asked PARSE_ATTEMPTS times, then handed over
    assert summarize_requests(requests) == PARSE_ATTEMPTS
    assert segment_requests(requests) == PARSE_ATTEMPTS
    store = llm_runs["root"] / "invalid" / "public"
    record = json.loads((store / SAMPLE_DATE.isoformat() / "episode.json").read_text("utf-8"))
    assert [summary["writer"] for summary in record["summaries"]] == [FALLBACK]
    assert record["picks"][0]["title"] in record["transcript"]
    assert (store / "feed.xml").is_file()


def test_the_script_artifact_names_the_offline_fallback(llm_runs: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"script-zundamon-ai-{SAMPLE_DATE.isoformat()}"])))
    assert artifacts, "the script stage published no artifact"
    assert any("Offline fallbacks" in str(artifact.data) for artifact in artifacts)


# --- a rerun never pays for the LLM twice ---------------------------------------------------------------


def test_a_second_run_of_the_same_date_sends_the_llm_no_request(
        llm_server: FakeOpenAI, prefect_results: Path, tmp_path: Path) -> None:
    from tests.faults.support import run_flow, sample_site, short_show

    llm_server.responder = faithful_model  # a summary of the article actually served, so the gate keeps it
    with sample_site() as (_site, base):
        show = short_show(base, picks=1)
        first = run_flow(show, tmp_path / "public")
        asked = len(llm_server.requests)
        second = run_flow(show, tmp_path / "public")
    assert summarize_requests(llm_server.requests[:asked]) == 1  # the model wrote the summary ...
    assert segment_requests(llm_server.requests[:asked]) >= 1  # ... and the segment
    assert first.stages["summarize"].status == "computed"
    assert len(llm_server.requests) == asked  # the rerun asked nothing
    assert {name: report.status for name, report in second.stages.items()} == dict.fromkeys(
        ["collect", "rank", "summarize", "script", "synthesize", "upload"], "cached")
    episode = json.loads((tmp_path / "public" / SAMPLE_DATE.isoformat() / "episode.json").read_text("utf-8"))
    assert episode["usage"]["requests"] >= 2 and episode["usage"]["prompt_tokens"] > 0
