"""The LLM misbehaving: rate limits and 5xx are retried, a rejected key or an empty account stops the run
at once, unusable answers are retried and then written by the offline writer; with no LLM configured the
run says the offline writer writes. All against the strict fake chat-completions server, inside flow runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.summarize import FALLBACK
from tests.fakes.openai_server import FakeOpenAI, Reply, faithful_model, fake_openai
from tests.faults.support import SECRET_KEY, LogCapture, run_flow, sample_site, short_show
from tests.test_llm import article, responder
from zundacast.llm import LLMQuotaError, openai_writer
from zundacast.llm.openai_writer import HTTP_RETRIES, PARSE_ATTEMPTS
from zundacast.sample_day import SAMPLE_DATE
from zundacast.show import LLMConfig

pytestmark = pytest.mark.slow

QUICK = {"retry-after-ms": "10"}  # the writer honours it: retries without the default backoff
EMPTY_FEED = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>空</title>'
              '<link>http://127.0.0.1/</link><description>no items</description></channel></rss>')


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
        llm_server: FakeOpenAI, prefect_results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(openai_writer, "sleep", waits.append)
    llm_server.queue = [Reply(status=429, headers={"Retry-After": "2"}), Reply(status=503, headers=QUICK),
                        Reply(status=500, headers=QUICK)]
    summary = summarize_in_a_flow()
    assert len(llm_server.requests) == 4  # three failures, then the answer
    assert waits == [2.0, 0.01, 0.01]  # what each answer asked
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


# --- row: the account has no credit (429 insufficient_quota) -------------------------------------------


def test_quota_429_insufficient_quota_stops_the_run_at_once_and_publishes_nothing(
        llm_server: FakeOpenAI, prefect_results: Path, tmp_path: Path) -> None:
    llm_server.queue = [Reply(status=429, code="insufficient_quota") for _ in range(20)]
    store = tmp_path / "public"
    with sample_site() as (_site, base), pytest.raises(LLMQuotaError) as caught:
        run_flow(short_show(base, picks=1), store)
    message = str(caught.value)
    assert "OPENAI_API_KEY" in message and "credit" in message and SECRET_KEY not in message
    # one pick, one request: neither the writer nor Prefect retried, and no offline writer stepped in
    assert len(llm_server.requests) == 1
    assert not (store / "feed.xml").exists()
    assert not (store / SAMPLE_DATE.isoformat() / "episode.json").exists()


# --- row: no LLM configured ----------------------------------------------------------------------------


def test_offline_writer_notice_line_when_no_llm_is_configured(
        prefect_results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run says the offline writer writes (and says nothing of it when an LLM is configured). The
    feed has no items, so each run stops in collect, after the notice, without synthesizing anything."""
    from zundacast.errors import NotEnoughCandidates

    notice = "no OPENAI_API_KEY or OPENAI_BASE_URL: the offline writer writes today's episode"
    with sample_site() as (site, base):
        site.route("/feeds/empty.xml", EMPTY_FEED, content_type="application/rss+xml; charset=utf-8")
        show = short_show(base, feeds=[{"name": "空のフィード", "url": f"{base}/feeds/empty.xml"}])
        with LogCapture() as offline, pytest.raises(NotEnoughCandidates):
            run_flow(show, tmp_path / "offline")
        with fake_openai(responder) as llm:
            monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
            with LogCapture() as configured, pytest.raises(NotEnoughCandidates):
                run_flow(show, tmp_path / "llm")
    assert any(line.endswith(notice) for line in offline.lines)  # (root and prefect loggers both see it)
    assert not any(notice in line for line in configured.lines)


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
    assert record["summaries"][0]["spoken_title"] in record["transcript"]  # the host says its spoken title
    assert (store / "feed.xml").is_file()


def test_the_script_artifact_names_the_offline_fallback(llm_runs: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:  # the invalid-answers run's (the server is shared)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"script-zundamon-ai-{SAMPLE_DATE.isoformat()}"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[llm_runs["invalid_run_id"]])))
    assert artifacts, "the script stage published no artifact"
    assert any("Offline fallbacks" in str(artifact.data) for artifact in artifacts)


# --- a rerun never pays for the LLM twice ---------------------------------------------------------------


def test_a_second_run_of_the_same_date_sends_the_llm_no_request(
        llm_server: FakeOpenAI, prefect_results: Path, tmp_path: Path, shared_speech: Path) -> None:
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
